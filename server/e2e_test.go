package server_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/formats/proof"
	"github.com/transparency-dev/merkle/compact"
	mproof "github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	tclient "github.com/transparency-dev/tessera/client"
	"golang.org/x/mod/sumdb/note"

	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/leaf"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
	"github.com/stele-dev/stele/server"
)

// independentCheck verifies a receipt without Stele's client code: the
// checkpoint is opened with x/mod's note package and parsed by hand, and the
// inclusion proof is checked with the merkle module.
func independentCheck(t *testing.T, v note.Verifier, origin string, receipt []byte, wantLeaf []byte) {
	t.Helper()
	var p proof.TLogProof
	if err := p.Unmarshal(receipt); err != nil {
		t.Fatalf("tlog-proof: %v", err)
	}
	n, err := note.Open(p.Checkpoint, note.VerifierList(v))
	if err != nil {
		t.Fatalf("checkpoint signature: %v", err)
	}
	lines := strings.Split(n.Text, "\n")
	if len(lines) != 4 || lines[0] != origin || lines[3] != "" {
		t.Fatalf("checkpoint body %q", n.Text)
	}
	size, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil {
		t.Fatalf("checkpoint size: %v", err)
	}
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(root) != 32 {
		t.Fatalf("checkpoint root %q: %v", lines[2], err)
	}
	if !bytes.Equal(p.ExtraData, wantLeaf) {
		t.Fatalf("receipt leaf differs from GetReceipt's leaf")
	}
	hashes := make([][]byte, len(p.Hashes))
	for i := range p.Hashes {
		hashes[i] = p.Hashes[i][:]
	}
	if err := mproof.VerifyInclusion(rfc6962.DefaultHasher, p.Index, size, rfc6962.DefaultHasher.HashLeaf(wantLeaf), hashes, root); err != nil {
		t.Fatalf("inclusion of %d in %d: %v", p.Index, size, err)
	}
}

func TestEndToEnd(t *testing.T) {
	ts := startServer(t, t.TempDir(), server.Config{})
	const producers, batches, perBatch = 4, 5, 150 // 3000 events
	all := appendConcurrently(t, ts.cli, producers, batches, perBatch, 1024)
	n := len(all)

	ctx := ctxT(t, 2*time.Minute)
	for i, s := range all {
		resp, err := ts.cli.Log.GetReceipt(ctx, &stelev1.GetReceiptRequest{Index: s.idx})
		if err != nil {
			t.Fatalf("receipt %d: %v", s.idx, err)
		}
		r, err := client.VerifyReceipt(resp.Proof, ts.verifier)
		if err != nil {
			t.Fatalf("receipt %d does not verify: %v", s.idx, err)
		}
		if r.Index != s.idx || r.Leaf.EventID != s.ev.EventId || r.Leaf.Source != s.ev.Source || r.Leaf.Kind != s.ev.Kind {
			t.Fatalf("receipt %d is for %+v, want event %s", s.idx, r.Leaf, s.ev.EventId)
		}
		if !r.Leaf.EventTime.Equal(s.ev.EventTime.AsTime()) {
			t.Fatalf("leaf event time %v, want %v", r.Leaf.EventTime, s.ev.EventTime.AsTime())
		}
		independentCheck(t, ts.verifier, ts.srv.Origin(), resp.Proof, resp.Leaf)
		if i%100 == 0 {
			ev, err := ts.cli.Event(ctx, s.idx)
			if err != nil {
				t.Fatal(err)
			}
			p, err := client.VerifyEvent(r, ev.Leaf, ev.Salt, ev.Payload)
			if err != nil {
				t.Fatalf("event %d: %v", s.idx, err)
			}
			if !bytes.Equal(p.Record, s.ev.Record) || !bytes.Equal(ev.Record, s.ev.Record) || p.Format != s.ev.Format {
				t.Fatalf("event %d payload differs from what was submitted", s.idx)
			}
		}
	}

	// Inclusion by leaf hash, and consistency between two checkpoints.
	first, err := ts.cli.Log.GetReceipt(ctx, &stelev1.GetReceiptRequest{Index: 0})
	if err != nil {
		t.Fatal(err)
	}
	lh := rfc6962.DefaultHasher.HashLeaf(first.Leaf)
	ip, err := ts.cli.Log.GetInclusionProof(ctx, &stelev1.GetInclusionProofRequest{Leaf: &stelev1.GetInclusionProofRequest_LeafHash{LeafHash: lh}})
	if err != nil {
		t.Fatal(err)
	}
	cpRaw, err := ts.cli.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := client.ParseCheckpoint(cpRaw, ts.verifier)
	if err != nil {
		t.Fatal(err)
	}
	if ip.Index != 0 || ip.TreeSize != cp.Size {
		t.Fatalf("inclusion proof for index %d size %d, want 0 and %d", ip.Index, ip.TreeSize, cp.Size)
	}
	if err := mproof.VerifyInclusion(rfc6962.DefaultHasher, 0, cp.Size, lh, ip.Hashes, cp.Root[:]); err != nil {
		t.Fatalf("inclusion by leaf hash: %v", err)
	}
	mid := uint64(n / 3)
	small, err := rootAt(ctx, ts, mid)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := ts.cli.Log.GetConsistencyProof(ctx, &stelev1.GetConsistencyProofRequest{FromSize: mid, ToSize: cp.Size})
	if err != nil {
		t.Fatal(err)
	}
	if err := mproof.VerifyConsistency(rfc6962.DefaultHasher, mid, cp.Size, cons.Hashes, small, cp.Root[:]); err != nil {
		t.Fatalf("consistency %d..%d: %v", mid, cp.Size, err)
	}
}

// rootAt computes the root of the first size leaves from GetEntries.
func rootAt(ctx context.Context, ts *testServer, size uint64) ([]byte, error) {
	stream, err := ts.cli.Log.GetEntries(ctx, &stelev1.GetEntriesRequest{Start: 0, Count: size})
	if err != nil {
		return nil, err
	}
	rf := compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	r := rf.NewEmptyRange(0)
	for {
		chunk, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if chunk.Start != r.End() {
			return nil, fmt.Errorf("chunk starts at %d, want %d", chunk.Start, r.End())
		}
		for _, l := range chunk.Leaves {
			if err := r.Append(rfc6962.DefaultHasher.HashLeaf(l), nil); err != nil {
				return nil, err
			}
		}
	}
	if r.End() != size {
		return nil, fmt.Errorf("GetEntries gave %d leaves, want %d", r.End(), size)
	}
	return r.GetRootHash(nil)
}

// TestTesseraClientReadsLog reads the whole log over the tlog-tiles HTTP
// API with Tessera's own client and checks every leaf against the root.
func TestTesseraClientReadsLog(t *testing.T) {
	ts := startServer(t, t.TempDir(), server.Config{})
	const n = 700
	var want [][]byte
	for b := 0; b < n; b += 100 {
		evs := make([]*stelev1.Event, 100)
		for i := range evs {
			evs[i] = event("okta/acme/system", fmt.Sprintf("okta-%d", b+i), 600)
		}
		mustAppend(t, ts.cli, evs)
	}
	ctx := ctxT(t, time.Minute)
	if _, err := ts.cli.Receipt(ctx, n-1); err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(ts.httpURL)
	f, err := tclient.NewHTTPFetcher(u, nil)
	if err != nil {
		t.Fatal(err)
	}
	cp, _, _, err := tclient.FetchCheckpoint(ctx, f.ReadCheckpoint, ts.verifier, ts.srv.Origin())
	if err != nil {
		t.Fatalf("fetching checkpoint over HTTP: %v", err)
	}
	if cp.Size < n {
		t.Fatalf("checkpoint size %d, want >= %d", cp.Size, n)
	}
	rf := compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	r := rf.NewEmptyRange(0)
	for bi := uint64(0); bi*256 < cp.Size; bi++ {
		b, err := tclient.GetEntryBundle(ctx, f.ReadEntryBundle, bi, cp.Size)
		if err != nil {
			t.Fatalf("entry bundle %d: %v", bi, err)
		}
		for _, e := range b.Entries {
			l, err := leaf.Unmarshal(e)
			if err != nil {
				t.Fatalf("entry %d is not leaf v1: %v", r.End(), err)
			}
			if l.Source != "okta/acme/system" {
				t.Fatalf("entry %d has source %q", r.End(), l.Source)
			}
			want = append(want, e)
			if err := r.Append(rfc6962.DefaultHasher.HashLeaf(e), nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	if r.End() != cp.Size {
		t.Fatalf("read %d entries, checkpoint says %d", r.End(), cp.Size)
	}
	root, err := r.GetRootHash(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(root, cp.Hash) {
		t.Fatalf("root over entries %x != checkpoint root %x", root, cp.Hash)
	}
	// Tile hashes agree with the entries too.
	hashes, err := tclient.FetchLeafHashes(ctx, f.ReadTile, 0, cp.Size, cp.Size)
	if err != nil {
		t.Fatal(err)
	}
	for i, h := range hashes {
		if !bytes.Equal(h, rfc6962.DefaultHasher.HashLeaf(want[i])) {
			t.Fatalf("tile leaf hash %d differs from the entry's hash", i)
		}
	}
}
