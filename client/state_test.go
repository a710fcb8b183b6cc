package client_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stele-dev/stele/client"
)

func ctxFor(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestStateStore(t *testing.T) {
	ctx := ctxFor(t)
	k := newTestKey(t)
	dirA := t.TempDir()
	appendLeaves(t, dirA, k, testLeaves(t, "a", 0, 5))
	cp5 := readCheckpoint(t, dirA, k.verifier)

	// A fork: the same key signs a second log that shares the first 5
	// entries and then diverges.
	dirB := t.TempDir()
	appendLeaves(t, dirB, k, testLeaves(t, "a", 0, 5))
	appendLeaves(t, dirB, k, testLeaves(t, "b", 5, 300))
	cpB305 := readCheckpoint(t, dirB, k.verifier)

	appendLeaves(t, dirA, k, testLeaves(t, "a", 5, 300))
	cp305 := readCheckpoint(t, dirA, k.verifier)
	if cp305.Size != 305 || cpB305.Size != 305 || cp305.Root == cpB305.Root {
		t.Fatalf("fixture: sizes %d %d, roots equal %v", cp305.Size, cpB305.Size, cp305.Root == cpB305.Root)
	}
	appendLeaves(t, dirB, k, testLeaves(t, "b", 305, 10))
	cpB315 := readCheckpoint(t, dirB, k.verifier)

	logA, err := client.NewTileLog(serveLog(t, dirA), k.verifier, nil)
	if err != nil {
		t.Fatal(err)
	}
	logB, err := client.NewTileLog(serveLog(t, dirB), k.verifier, nil)
	if err != nil {
		t.Fatal(err)
	}
	stateDir := t.TempDir()
	st, err := client.NewStateStore(stateDir, k.verifier, logA.ConsistencyProof)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := st.Trusted(); err != nil || got != nil {
		t.Fatalf("empty store: %v, %v", got, err)
	}
	if old, err := st.Update(ctx, cp5); err != nil || old != nil {
		t.Fatalf("first update: %v, %v", old, err)
	}
	if old, err := st.Update(ctx, cp305); err != nil || old.Size != 5 {
		t.Fatalf("growing update: %v, %v", old, err)
	}
	if _, err := st.Update(ctx, cp305); err != nil {
		t.Fatalf("same checkpoint again: %v", err)
	}
	saved, _ := os.ReadFile(st.Path())

	// Rollback: an older checkpoint.
	_, err = st.Update(ctx, cp5)
	var rb *client.RollbackError
	if !errors.As(err, &rb) || rb.SeenSize != 5 || rb.TrustedSize != 305 || rb.TrustedRoot != cp305.Root || !errors.Is(err, client.ErrVerification) {
		t.Fatalf("rollback: got %v", err)
	}
	mustContainStr(t, err.Error(), "rollback: log \"example.com/stele-test\" shows size 5")

	// Fork at the same size.
	_, err = st.Update(ctx, cpB305)
	var fe *client.ForkError
	if !errors.As(err, &fe) || fe.SeenRoot != cpB305.Root || fe.TrustedRoot != cp305.Root || fe.SeenSize != 305 {
		t.Fatalf("same-size fork: got %v", err)
	}
	mustContainStr(t, err.Error(), "at size 305, but the trusted root at that size is")

	// Fork at a larger size: the forked log's proof cannot link them.
	stB, err := client.NewStateStore(stateDir, k.verifier, logB.ConsistencyProof)
	if err != nil {
		t.Fatal(err)
	}
	_, err = stB.Update(ctx, cpB315)
	if !errors.As(err, &fe) || fe.SeenSize != 315 || fe.TrustedSize != 305 || fe.Err == nil {
		t.Fatalf("larger fork: got %v", err)
	}
	mustContainStr(t, err.Error(), "which is not consistent with the trusted size 305")

	// Nothing of that changed the trusted state.
	if now, _ := os.ReadFile(st.Path()); !bytes.Equal(now, saved) {
		t.Fatal("a refused checkpoint changed the trusted state")
	}
	if got, err := st.Trusted(); err != nil || got.Size != 305 || got.Root != cp305.Root {
		t.Fatalf("trusted: %v, %v", got, err)
	}

	// Another key's checkpoint is refused before any comparison.
	other := newTestKey(t)
	stO, err := client.NewStateStore(stateDir, other.verifier, logA.ConsistencyProof)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stO.Update(ctx, cp305); err == nil {
		t.Fatal("a checkpoint of another key was accepted")
	}
}

func TestStateStoreUnreachable(t *testing.T) {
	ctx := ctxFor(t)
	k := newTestKey(t)
	dir := t.TempDir()
	appendLeaves(t, dir, k, testLeaves(t, "a", 0, 3))
	cp3 := readCheckpoint(t, dir, k.verifier)
	appendLeaves(t, dir, k, testLeaves(t, "a", 3, 3))
	cp6 := readCheckpoint(t, dir, k.verifier)
	lg, err := client.NewTileLog("http://127.0.0.1:1/", k.verifier, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := client.NewStateStore(t.TempDir(), k.verifier, lg.ConsistencyProof)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Update(ctx, cp3); err != nil {
		t.Fatal(err)
	}
	_, err = st.Update(ctx, cp6)
	var ue *client.UnreachableError
	if !errors.As(err, &ue) || errors.Is(err, client.ErrVerification) {
		t.Fatalf("unreachable log: got %v", err)
	}
	if got, _ := st.Trusted(); got.Size != 3 {
		t.Fatalf("trusted size %d after a failed update", got.Size)
	}
}

func TestTileLogProveEntry(t *testing.T) {
	ctx := ctxFor(t)
	k := newTestKey(t)
	dir := t.TempDir()
	entries := testLeaves(t, "a", 0, 300)
	appendLeaves(t, dir, k, entries)
	lg, err := client.NewTileLog(serveLog(t, dir), k.verifier, nil)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := lg.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []uint64{0, 255, 256, 299} {
		pe, err := lg.ProveEntry(ctx, cp, i)
		if err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		if !bytes.Equal(pe.Bytes, entries[i]) {
			t.Fatalf("entry %d: wrong bytes", i)
		}
	}
	if _, err := lg.ProveEntry(ctx, cp, 300); err == nil {
		t.Fatal("entry past the end")
	}
}

func mustContainStr(t testing.TB, s, sub string) {
	t.Helper()
	if !strings.Contains(s, sub) {
		t.Fatalf("%q does not contain %q", s, sub)
	}
}

// TestStateStoreLock: two stores on one directory (as two processes
// would have) never update the same log's state at once: while one is
// proving consistency, the other waits for the lock until its deadline.
func TestStateStoreLock(t *testing.T) {
	ctx := ctxFor(t)
	k := newTestKey(t)
	dir := t.TempDir()
	appendLeaves(t, dir, k, testLeaves(t, "a", 0, 3))
	cp3 := readCheckpoint(t, dir, k.verifier)
	appendLeaves(t, dir, k, testLeaves(t, "a", 3, 3))
	cp6 := readCheckpoint(t, dir, k.verifier)
	lg, err := client.NewTileLog(serveLog(t, dir), k.verifier, nil)
	if err != nil {
		t.Fatal(err)
	}
	entered, release := make(chan struct{}), make(chan struct{})
	slow := func(ctx context.Context, from, to uint64) ([][]byte, error) {
		close(entered)
		<-release
		return lg.ConsistencyProof(ctx, from, to)
	}
	stateDir := t.TempDir()
	a, err := client.NewStateStore(stateDir, k.verifier, slow)
	if err != nil {
		t.Fatal(err)
	}
	b, err := client.NewStateStore(stateDir, k.verifier, lg.ConsistencyProof)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Update(ctx, cp3); err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() { _, err := a.Update(ctx, cp6); done <- err }()
	<-entered
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	_, err = b.Update(short, cp6)
	if err == nil || !strings.Contains(err.Error(), "another process") {
		t.Fatalf("update while another store holds the lock: got %v", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("the lock holder's update: %v", err)
	}
	if old, err := b.Update(ctx, cp6); err != nil || old.Size != 6 {
		t.Fatalf("update after the lock was released: old %v, err %v", old, err)
	}
}
