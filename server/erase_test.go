package server_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"time"

	mproof "github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"google.golang.org/grpc/codes"

	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/internal/testlog"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
	"github.com/stele-dev/stele/server"
)

// filesHolding lists the files under dir that contain marker.
func filesHolding(t *testing.T, dir string, marker []byte) []string {
	return testlog.FilesHolding(t, dir, marker)
}

func awaitNoMarker(t *testing.T, dir string, marker []byte) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		hits := filesHolding(t, dir, marker)
		if len(hits) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("erased bytes still on disk in %v", hits)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// markedEvents makes n events of size bytes whose ids start with prefix;
// the record of event target holds marker, for scanning the disk after an
// erasure.
func markedEvents(prefix string, n, size, target int, marker string) []*stelev1.Event {
	var evs []*stelev1.Event
	for i := range n {
		ev := event("entra/t1/audit", prefix+string(rune('a'+i%26))+string(rune('a'+i/26)), size)
		if i == target {
			// A generic JSON record (its id is the event_id, as the
			// normaliser requires) holding the personal data to erase.
			ev.Format, ev.Record = "json", []byte(`{"id":"`+ev.EventId+`","userPrincipalName":"`+marker+`"}`)
		}
		evs = append(evs, ev)
	}
	return evs
}

// TestErase: erase one event's payload; every proof still verifies,
// GetEvent gives the tombstone, the erasure event is in the log, and the
// payload's bytes are in no file of the data directory.
func TestErase(t *testing.T) {
	dir := t.TempDir()
	ts := startServer(t, dir, server.Config{})
	ctx := ctxT(t, 2*time.Minute)
	marker := "ERASE-MARKER-c4f1e2d9-bob@contoso.example"
	evs := markedEvents("ev-", 40, 2000, 13, marker)
	mustAppend(t, ts.cli, evs[:20])
	mustAppend(t, ts.cli, evs[20:])
	target := uint64(13)
	before, err := ts.cli.Receipt(ctx, 39)
	if err != nil {
		t.Fatal(err)
	}
	oldRc, err := client.VerifyReceipt(before, ts.verifier)
	if err != nil {
		t.Fatal(err)
	}
	oldSize := oldRc.Checkpoint.Size
	// Make sure the marker reached the store's files (past the memtable),
	// so that the scan below proves something.
	if ev, err := ts.cli.Event(ctx, target); err != nil || !bytes.Contains(ev.Record, []byte(marker)) {
		t.Fatalf("event before erasure: %v", err)
	}
	if len(filesHolding(t, dir, []byte(marker))) == 0 {
		t.Fatal("the marker is in no file before erasure: the scan would prove nothing")
	}

	// Validation.
	_, err = ts.cli.Erase(ctx, target, "", "REQ-1")
	wantCode(t, "erase without reason", errors.Unwrap(err), codes.InvalidArgument)
	_, err = ts.cli.Erase(ctx, target, "GDPR Art. 17", "")
	wantCode(t, "erase without reference", errors.Unwrap(err), codes.InvalidArgument)
	_, err = ts.cli.Erase(ctx, 10_000, "GDPR Art. 17", "REQ-1")
	wantCode(t, "erase past the end", errors.Unwrap(err), codes.NotFound)

	resp, err := ts.cli.Erase(ctx, target, "GDPR Art. 17 request", "REQ-2026-0042")
	if err != nil {
		t.Fatalf("erase: %v", err)
	}
	tomb := resp.Tombstone
	if resp.AlreadyErased || tomb.Index != target || tomb.ErasedBy != "anonymous" || tomb.RequestReference != "REQ-2026-0042" || tomb.ErasureIndex != 40 {
		t.Fatalf("tombstone %+v (already %v)", tomb, resp.AlreadyErased)
	}
	// Idempotent.
	again, err := ts.cli.Erase(ctx, target, "another reason", "REQ-other")
	if err != nil || !again.AlreadyErased || again.Tombstone.ErasureIndex != 40 || again.Tombstone.RequestReference != "REQ-2026-0042" {
		t.Fatalf("second erase: %+v %v", again, err)
	}
	// The erasure event cannot itself be erased.
	_, err = ts.cli.Erase(ctx, 40, "x", "y")
	wantCode(t, "erase an erasure event", errors.Unwrap(err), codes.FailedPrecondition)
	// Producers may not write to the reserved source.
	forged := event(server.ErasureSource, server.ErasureEventID(3), 200)
	if r, err := ts.cli.Append(ctx, []*stelev1.Event{forged}); err != nil || codes.Code(r[0].Code) != codes.PermissionDenied {
		t.Fatalf("forged erasure event: %+v %v", r, err)
	}

	// GetEvent gives the leaf, a proof and the tombstone; no payload.
	ev, err := ts.cli.Event(ctx, target)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Tombstone == nil || len(ev.Payload) != 0 || len(ev.Salt) != 0 || len(ev.Record) != 0 || len(ev.Leaf) == 0 {
		t.Fatalf("GetEvent after erasure: %+v", ev)
	}
	_, _, err = ts.cli.VerifiedEvent(ctx, target, ts.verifier, nil)
	var ee *client.ErasedError
	if !errors.As(err, &ee) || errors.Is(err, client.ErrVerification) {
		t.Fatalf("VerifiedEvent on an erased entry: %v", err)
	}

	// The erasure event is in the log and names the erased entry.
	rc, err := ts.cli.Receipt(ctx, 40)
	if err != nil {
		t.Fatal(err)
	}
	er, err := client.VerifyReceipt(rc, ts.verifier)
	if err != nil {
		t.Fatal(err)
	}
	if er.Leaf.Source != server.ErasureSource || er.Leaf.Kind != server.ErasureKind || er.Leaf.EventID != server.ErasureEventID(target) {
		t.Fatalf("erasure leaf %+v", er.Leaf)
	}
	_, p, err := ts.cli.VerifiedEvent(ctx, 40, ts.verifier, nil)
	if err != nil {
		t.Fatal(err)
	}
	var rec server.ErasureRecord
	if err := json.Unmarshal(p.Record, &rec); err != nil || rec.ErasedIndex != target || rec.RequestReference != "REQ-2026-0042" {
		t.Fatalf("erasure record %s: %v", p.Record, err)
	}

	// Every receipt, inclusion proof and a consistency proof still verify.
	cpRaw, err := ts.cli.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := client.ParseCheckpoint(cpRaw, ts.verifier)
	if err != nil {
		t.Fatal(err)
	}
	for i := uint64(0); i < cp.Size; i++ {
		raw, err := ts.cli.Receipt(ctx, i)
		if err != nil {
			t.Fatal(err)
		}
		r, err := client.VerifyReceipt(raw, ts.verifier)
		if err != nil {
			t.Fatalf("receipt %d after erasure: %v", i, err)
		}
		lb, _ := r.Leaf.Marshal()
		ip, err := ts.cli.Log.GetInclusionProof(ctx, &stelev1.GetInclusionProofRequest{Leaf: &stelev1.GetInclusionProofRequest_Index{Index: i}, TreeSize: cp.Size})
		if err != nil {
			t.Fatal(err)
		}
		if err := mproof.VerifyInclusion(rfc6962.DefaultHasher, i, cp.Size, rfc6962.DefaultHasher.HashLeaf(lb), ip.Hashes, cp.Root[:]); err != nil {
			t.Fatalf("inclusion %d: %v", i, err)
		}
	}
	cons, err := ts.cli.Log.GetConsistencyProof(ctx, &stelev1.GetConsistencyProofRequest{FromSize: oldSize, ToSize: cp.Size})
	if err != nil {
		t.Fatal(err)
	}
	if err := mproof.VerifyConsistency(rfc6962.DefaultHasher, oldSize, cp.Size, cons.Hashes, oldRc.Checkpoint.Root[:], cp.Root[:]); err != nil {
		t.Fatalf("consistency %d..%d: %v", oldSize, cp.Size, err)
	}

	// The marker is in no file of the data directory.
	awaitNoMarker(t, dir, []byte(marker))
	// Nor after a restart (the tombstone survives it).
	ts.stop(t)
	ts = startServer(t, dir, server.Config{})
	ev, err = ts.cli.Event(ctxT(t, time.Minute), target)
	if err != nil || ev.Tombstone == nil || ev.Tombstone.ErasureIndex != 40 {
		t.Fatalf("GetEvent after restart: %+v %v", ev, err)
	}
	ts.stop(t)
	awaitNoMarker(t, dir, []byte(marker))
}

// TestEraseNeedsAdmin: with an access policy, a producer or a reader
// calling EraseEvent gets PermissionDenied and nothing changes; an admin
// may erase, and is named in the tombstone.
func TestEraseNeedsAdmin(t *testing.T) {
	p := newPKI(t)
	pol := policyJSON(t,
		map[string]any{"name": "collector", "cert": "spiffe://test.example/producer", "roles": []string{"producer"}, "sources": []string{"entra/t1/*"}},
		map[string]any{"name": "auditor", "cert": "reader", "roles": []string{"reader"}},
		map[string]any{"name": "dpo", "token_sha256": tokenHash("tok-admin"), "roles": []string{"admin"}},
	)
	as := startAuthServer(t, server.Config{TLSCertFile: p.serverCert, TLSKeyFile: p.serverKey, ClientCAFile: p.caFile, AuthPolicyFile: writeFile(t, p.dir, "policy.json", pol)})
	prod := p.dial(t, as.grpcAddr, p.producer, "")
	reader := p.dial(t, as.grpcAddr, p.reader, "")
	admin := p.dial(t, as.grpcAddr, [2]string{}, "tok-admin")
	rs, err := authAppend(t, prod, event("entra/t1/audit", "a", 500), event("entra/t1/audit", "b", 500))
	if err != nil || rs[0].Code != 0 || rs[1].Code != 0 {
		t.Fatalf("append: %+v %v", rs, err)
	}
	ctx := ctxT(t, time.Minute)
	for name, c := range map[string]*client.Client{"producer": prod, "reader": reader} {
		_, err := c.Erase(ctx, 0, "GDPR Art. 17", "REQ-1")
		wantCode(t, name+" erasing", errors.Unwrap(err), codes.PermissionDenied)
	}
	ev, err := reader.Event(ctx, 0)
	if err != nil || ev.Tombstone != nil || len(ev.Payload) == 0 {
		t.Fatalf("payload after refused erasures: %+v %v", ev, err)
	}
	if cp, err := reader.Log.GetCheckpoint(ctx, &stelev1.GetCheckpointRequest{}); err != nil || cp.Size != 2 {
		t.Fatalf("log after refused erasures: %+v %v", cp, err)
	}
	resp, err := admin.Erase(ctx, 0, "GDPR Art. 17", "REQ-1")
	if err != nil || resp.Tombstone.ErasedBy != "dpo" || resp.Tombstone.ErasureIndex != 2 {
		t.Fatalf("admin erase: %+v %v", resp, err)
	}
	ev, err = reader.Event(ctx, 0)
	if err != nil || ev.Tombstone == nil || ev.Tombstone.ErasedBy != "dpo" {
		t.Fatalf("GetEvent after erasure: %+v %v", ev, err)
	}
	// The producer may not forge an erasure event even with a wildcard grant.
	rs, err = authAppend(t, prod, event(server.ErasureSource, server.ErasureEventID(1), 200))
	if err != nil || codes.Code(rs[0].Code) != codes.PermissionDenied {
		t.Fatalf("forged erasure event: %+v %v", rs, err)
	}
}
