package server_test

import (
	"bytes"
	"context"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	mproof "github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/stele-dev/stele/audit"
	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/internal/logkey"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
	"github.com/stele-dev/stele/server"
)

// TestEraseCrashBeforeTombstone kills a real stele-server (SIGKILL) after
// it appended an erasure event and before it wrote the tombstone (held
// there by $STELE_TEST_HOLD_BEFORE_TOMBSTONE), restarts it, and checks
// that erasing the entry again completes the first erasure under its own
// terms without a second erasure event: the payload's bytes leave the
// disk, and every receipt, inclusion and consistency proof and the audit
// still verify.
func TestEraseCrashBeforeTombstone(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("STELE_TEST_HOLD_BEFORE_TOMBSTONE", "1h")
	p := startProcess(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	marker := "ERASE-CRASH-MARKER-7d3c-alice@contoso.example"
	mustAppend(t, p.cli, markedEvents("ec-", 30, 1500, 7, marker))
	const target, erasureIdx = uint64(7), uint64(30)
	v, err := logkey.ReadVerifier(filepath.Join(dir, "log.pub"))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := p.cli.Receipt(ctx, 29)
	if err != nil {
		t.Fatal(err)
	}
	old, err := client.VerifyReceipt(raw, v)
	if err != nil {
		t.Fatal(err)
	}
	if len(filesHolding(t, dir, []byte(marker))) == 0 {
		t.Fatal("the marker is in no file before erasure: the scans below would prove nothing")
	}

	// The erase call appends its erasure event, then hangs in the hook.
	done := make(chan error, 1)
	go func() {
		_, err := p.cli.Erase(ctx, target, "GDPR Art. 17 request", "REQ-CRASH-1")
		done <- err
	}()
	for {
		_, err := p.cli.Receipt(ctx, erasureIdx)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the erasure event never reached the log: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	ev, err := p.cli.Event(ctx, target)
	if err != nil || ev.Tombstone != nil || !bytes.Contains(ev.Record, []byte(marker)) {
		t.Fatalf("before the kill the payload should still be there (held before the tombstone): %+v %v", ev, err)
	}
	if err := p.cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	p.cmd.Wait()
	if err := <-done; err == nil {
		t.Fatal("the erase call succeeded although the server was killed before the tombstone")
	}
	p.cli.Close()

	// Restarted: the erasure event is in the log, the payload still in
	// the store (the erasure is incomplete until erased again).
	t.Setenv("STELE_TEST_HOLD_BEFORE_TOMBSTONE", "")
	p = startProcess(t, dir)
	defer p.cli.Close()
	ev, err = p.cli.Event(ctx, target)
	if err != nil || ev.Tombstone != nil {
		t.Fatalf("after restart: %+v %v", ev, err)
	}
	// Erasing again, under other terms, completes the first erasure.
	resp, err := p.cli.Erase(ctx, target, "a retry", "REQ-CRASH-2")
	if err != nil {
		t.Fatalf("erase after restart: %v", err)
	}
	tomb := resp.Tombstone
	if tomb.ErasureIndex != erasureIdx || tomb.RequestReference != "REQ-CRASH-1" || tomb.Reason != "GDPR Art. 17 request" || tomb.Index != target {
		t.Fatalf("tombstone %+v: want the first erasure's terms and its event at %d", tomb, erasureIdx)
	}
	// No second erasure event: the next entry takes index 31.
	rs := mustAppend(t, p.cli, []*stelev1.Event{event("entra/t1/audit", "ec-after", 500)})
	if rs[0].Index != erasureIdx+1 {
		t.Fatalf("next entry at %d, want %d: a second erasure event was appended", rs[0].Index, erasureIdx+1)
	}
	ev, err = p.cli.Event(ctx, target)
	if err != nil || ev.Tombstone == nil || len(ev.Record) != 0 {
		t.Fatalf("GetEvent after the completed erasure: %+v %v", ev, err)
	}
	awaitNoMarker(t, dir, []byte(marker))

	// Every receipt and inclusion proof, and a consistency proof from
	// before the erasure, verify.
	raw, err = p.cli.Receipt(ctx, erasureIdx+1)
	if err != nil {
		t.Fatal(err)
	}
	last, err := client.VerifyReceipt(raw, v)
	if err != nil {
		t.Fatal(err)
	}
	size := last.Checkpoint.Size
	for i := range size {
		raw, err := p.cli.Receipt(ctx, i)
		if err != nil {
			t.Fatal(err)
		}
		r, err := client.VerifyReceipt(raw, v)
		if err != nil {
			t.Fatalf("receipt %d: %v", i, err)
		}
		if i == erasureIdx && (r.Leaf.Source != server.ErasureSource || r.Leaf.EventID != server.ErasureEventID(target)) {
			t.Fatalf("entry %d is %s/%s, want the erasure event", i, r.Leaf.Source, r.Leaf.EventID)
		}
	}
	cons, err := p.cli.Log.GetConsistencyProof(ctx, &stelev1.GetConsistencyProofRequest{FromSize: old.Checkpoint.Size, ToSize: size})
	if err != nil {
		t.Fatal(err)
	}
	if err := mproof.VerifyConsistency(rfc6962.DefaultHasher, old.Checkpoint.Size, size, cons.Hashes, old.Checkpoint.Root[:], last.Checkpoint.Root[:]); err != nil {
		t.Fatalf("consistency %d..%d: %v", old.Checkpoint.Size, size, err)
	}
	u, _ := url.Parse("http://" + p.httpAddr + "/")
	rep, _, err := audit.Run(ctx, audit.Config{LogURL: u.String(), Verifier: v})
	if err != nil {
		t.Fatalf("audit: %v (%+v)", err, rep.Failures)
	}
	if len(rep.Erased) != 1 || rep.Erased[0].Index != target || rep.Erased[0].ErasureIndex != erasureIdx {
		t.Fatalf("audit lists erased %+v, want entry %d erased by %d", rep.Erased, target, erasureIdx)
	}
}
