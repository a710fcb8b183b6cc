package server_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	mproof "github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/stele-dev/stele/client"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
	"github.com/stele-dev/stele/server"
)

// allLeaves reads the first size leaves with GetEntries.
func allLeaves(t *testing.T, ctx context.Context, ts *testServer, size uint64) [][]byte {
	t.Helper()
	stream, err := ts.cli.Log.GetEntries(ctx, &stelev1.GetEntriesRequest{Start: 0, Count: size})
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for {
		chunk, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, chunk.Leaves...)
	}
	if uint64(len(out)) != size {
		t.Fatalf("GetEntries gave %d leaves, want %d", len(out), size)
	}
	return out
}

// TestGetInclusionProofs checks the batch RPC on a 600-entry log (two full
// level-0 tiles and a partial one): in the latest tree and in trees of
// 437, 256 and 1 entries, the proof of every index verifies against the
// tree's root (the signed checkpoint's for the latest, else computed from
// the leaves) and is byte for byte GetInclusionProof's; order is the
// request's, repeats are answered, and bad requests fail whole. The
// client's VerifiedInclusionProofs splits a longer list into calls the
// server accepts and refuses a leaf that is not the log's.
func TestGetInclusionProofs(t *testing.T) {
	ts := startServer(t, t.TempDir(), server.Config{})
	const n = 600
	for b := 0; b < n; b += 200 {
		evs := make([]*stelev1.Event, 200)
		for i := range evs {
			evs[i] = event("entra/batch/audit", fmt.Sprintf("b-%d", b+i), 200)
		}
		mustAppend(t, ts.cli, evs)
	}
	ctx := ctxT(t, 2*time.Minute)
	if _, err := ts.cli.Receipt(ctx, n-1); err != nil {
		t.Fatal(err)
	}
	cp, err := ts.cli.VerifiedCheckpoint(ctx, ts.verifier, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cp.Size != n {
		t.Fatalf("checkpoint size %d, want %d", cp.Size, n)
	}
	leaves := allLeaves(t, ctx, ts, n)
	marshal := func(m proto.Message) []byte {
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// single[size][i] is GetInclusionProof's answer for i in the tree of size.
	single := map[uint64][][]byte{}

	for _, size := range []uint64{n, 437, 256, 1} {
		root := cp.Root[:]
		if size != n {
			if root, err = rootAt(ctx, ts, size); err != nil {
				t.Fatal(err)
			}
		}
		req := &stelev1.GetInclusionProofsRequest{TreeSize: size}
		if size == n {
			req.TreeSize = 0 // the latest checkpoint's
		}
		for i := range size {
			req.Indexes = append(req.Indexes, i)
		}
		resp, err := ts.cli.Log.GetInclusionProofs(ctx, req)
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		if resp.TreeSize != size || uint64(len(resp.Proofs)) != size {
			t.Fatalf("size %d: answered %d proofs in a tree of %d", size, len(resp.Proofs), resp.TreeSize)
		}
		for i, p := range resp.Proofs {
			idx := uint64(i)
			if p.Index != idx || p.TreeSize != size {
				t.Fatalf("size %d: proof %d is for index %d in %d", size, i, p.Index, p.TreeSize)
			}
			if err := mproof.VerifyInclusion(rfc6962.DefaultHasher, idx, size, rfc6962.DefaultHasher.HashLeaf(leaves[idx]), p.Hashes, root); err != nil {
				t.Fatalf("size %d: proof of %d does not verify: %v", size, idx, err)
			}
			one, err := ts.cli.Log.GetInclusionProof(ctx, &stelev1.GetInclusionProofRequest{Leaf: &stelev1.GetInclusionProofRequest_Index{Index: idx}, TreeSize: size})
			if err != nil {
				t.Fatal(err)
			}
			single[size] = append(single[size], marshal(one))
			if !bytes.Equal(marshal(p), single[size][idx]) {
				t.Fatalf("size %d: batch proof of %d differs from GetInclusionProof's", size, idx)
			}
		}
	}

	// Request order, repeats, and exactly the limit.
	mixed := []uint64{n - 1, 0, 300, 0, n - 1, 17, 256, 255, 17}
	for len(mixed) < server.MaxInclusionProofsPerCall {
		mixed = append(mixed, uint64(len(mixed)*7%n))
	}
	resp, err := ts.cli.Log.GetInclusionProofs(ctx, &stelev1.GetInclusionProofsRequest{Indexes: mixed, TreeSize: n})
	if err != nil {
		t.Fatalf("%d indexes: %v", len(mixed), err)
	}
	if len(resp.Proofs) != len(mixed) {
		t.Fatalf("%d proofs for %d indexes", len(resp.Proofs), len(mixed))
	}
	for i, idx := range mixed {
		if !bytes.Equal(marshal(resp.Proofs[i]), single[n][idx]) {
			t.Fatalf("answer %d is not the proof of index %d (it is for %d)", i, idx, resp.Proofs[i].Index)
		}
	}

	// Bad requests fail whole, with the reason.
	check := func(name string, req *stelev1.GetInclusionProofsRequest, want codes.Code, says ...string) {
		t.Helper()
		resp, err := ts.cli.Log.GetInclusionProofs(ctx, req)
		if status.Code(err) != want {
			t.Errorf("%s: got %v, want %v", name, err, want)
			return
		}
		if resp != nil {
			t.Errorf("%s: partial answer of %d proofs", name, len(resp.Proofs))
		}
		for _, s := range says {
			if !strings.Contains(status.Convert(err).Message(), s) {
				t.Errorf("%s: message %q does not say %q", name, status.Convert(err).Message(), s)
			}
		}
	}
	check("no indexes", &stelev1.GetInclusionProofsRequest{}, codes.InvalidArgument)
	over := make([]uint64, server.MaxInclusionProofsPerCall+1)
	check("over the limit", &stelev1.GetInclusionProofsRequest{Indexes: over}, codes.InvalidArgument,
		fmt.Sprint(server.MaxInclusionProofsPerCall+1), fmt.Sprintf("limit of %d", server.MaxInclusionProofsPerCall), "split")
	check("index past the latest tree", &stelev1.GetInclusionProofsRequest{Indexes: []uint64{0, 5, n + 1, 1}}, codes.OutOfRange,
		fmt.Sprintf("index %d", n+1), fmt.Sprintf("size %d", n))
	check("index at the tree size", &stelev1.GetInclusionProofsRequest{Indexes: []uint64{0, 437}, TreeSize: 437}, codes.OutOfRange,
		"index 437", "size 437")
	// A tree size past the latest checkpoint: what GetInclusionProof does.
	_, oneErr := ts.cli.Log.GetInclusionProof(ctx, &stelev1.GetInclusionProofRequest{Leaf: &stelev1.GetInclusionProofRequest_Index{Index: 0}, TreeSize: n + 1})
	if status.Code(oneErr) != codes.OutOfRange {
		t.Fatalf("GetInclusionProof with a tree size past the checkpoint: %v", oneErr)
	}
	check("tree size past the checkpoint", &stelev1.GetInclusionProofsRequest{Indexes: []uint64{0}, TreeSize: n + 1}, status.Code(oneErr),
		status.Convert(oneErr).Message())

	// The client verifies every proof, across calls of at most the limit.
	many := make([]uint64, 2*server.MaxInclusionProofsPerCall+5)
	manyLeaves := make([][]byte, len(many))
	for i := range many {
		many[i] = uint64(i*13) % n
		manyLeaves[i] = leaves[many[i]]
	}
	proofs, err := ts.cli.VerifiedInclusionProofs(ctx, cp, many, manyLeaves)
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	if len(proofs) != len(many) {
		t.Fatalf("client: %d proofs for %d indexes", len(proofs), len(many))
	}
	for i, idx := range many {
		var want stelev1.GetInclusionProofResponse
		if err := proto.Unmarshal(single[n][idx], &want); err != nil {
			t.Fatal(err)
		}
		if len(proofs[i]) != len(want.Hashes) {
			t.Fatalf("client: proof %d of index %d has %d hashes, want %d", i, idx, len(proofs[i]), len(want.Hashes))
		}
		for j := range want.Hashes {
			if !bytes.Equal(proofs[i][j][:], want.Hashes[j]) {
				t.Fatalf("client: proof %d of index %d differs at hash %d", i, idx, j)
			}
		}
	}
	// A leaf that is not the log's fails verification, naming the entry.
	bad := append([][]byte(nil), manyLeaves...)
	bad[1500] = append(bytes.Clone(bad[1500]), 'x')
	_, err = ts.cli.VerifiedInclusionProofs(ctx, cp, many, bad)
	if !errors.Is(err, client.ErrVerification) || !strings.Contains(err.Error(), fmt.Sprintf("leaf %d ", many[1500])) {
		t.Fatalf("client with a wrong leaf for %d: %v", many[1500], err)
	}
}

// TestGetInclusionProofsStopsWhenCancelled: a call whose context is
// cancelled (here by an interceptor, before the handler runs) ends with
// Canceled instead of building its proofs.
func TestGetInclusionProofsStopsWhenCancelled(t *testing.T) {
	srv, err := server.New(context.Background(), server.Config{DataDir: t.TempDir(), CheckpointInterval: 200 * time.Millisecond, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	cancelled := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if info.FullMethod == stelev1.LogService_GetInclusionProofs_FullMethodName {
			c, cancel := context.WithCancel(ctx)
			cancel()
			ctx = c
		}
		return h(ctx, req)
	}
	gs := grpc.NewServer(append(srv.GRPCOptions(), grpc.ChainUnaryInterceptor(cancelled))...)
	srv.RegisterGRPC(gs)
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go gs.Serve(gl)
	c, err := client.Dial(gl.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		gs.Stop()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := srv.Close(ctx); err != nil {
			t.Errorf("closing server: %v", err)
		}
	})
	mustAppend(t, c, []*stelev1.Event{event("entra/t/audit", "a", 100), event("entra/t/audit", "b", 100)})
	ctx := ctxT(t, time.Minute)
	if _, err := c.Receipt(ctx, 1); err != nil {
		t.Fatal(err)
	}
	_, err = c.Log.GetInclusionProofs(ctx, &stelev1.GetInclusionProofsRequest{Indexes: []uint64{0, 1}})
	if status.Code(err) != codes.Canceled {
		t.Fatalf("cancelled call: got %v, want Canceled", err)
	}
	// The same server answers an uncancelled proof.
	if _, err := c.Log.GetInclusionProof(ctx, &stelev1.GetInclusionProofRequest{Leaf: &stelev1.GetInclusionProofRequest_Index{Index: 1}}); err != nil {
		t.Fatal(err)
	}
}
