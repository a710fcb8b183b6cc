package server_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stele-dev/stele/client"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
	"github.com/stele-dev/stele/server"
)

// snapshotDir records every file and directory under dir: name, mode,
// size, modification time (but Pebble's LOCK files') and a hash of the
// contents.
func snapshotDir(t *testing.T, dir string) map[string]string {
	t.Helper()
	snap := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		desc := fmt.Sprintf("%v %d", fi.Mode(), fi.Size())
		if d.Name() != "LOCK" {
			// Pebble's directory lock opens its empty LOCK file for
			// writing (to flock it), which sets its modification time:
			// the one change a read-only server makes.
			desc += fmt.Sprintf(" %d", fi.ModTime().UnixNano())
		}
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			desc += fmt.Sprintf(" %x", sha256.Sum256(b))
		}
		snap[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

func diffSnapshots(a, b map[string]string) []string {
	var d []string
	for k, v := range a {
		if w, ok := b[k]; !ok {
			d = append(d, "removed "+k)
		} else if v != w {
			d = append(d, fmt.Sprintf("changed %s: %s -> %s", k, v, w))
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			d = append(d, "added "+k)
		}
	}
	return d
}

// newVKey makes a verifier key for a successor log of the given origin.
func newVKey(t *testing.T, origin string) string {
	t.Helper()
	_, vkey, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		t.Fatal(err)
	}
	return vkey
}

// wantReadOnly checks that err is a read-only refusal naming successor.
func wantReadOnly(t *testing.T, what string, err error, frozen bool, successor, url string) {
	t.Helper()
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("%s on a read-only log: %v, want FailedPrecondition", what, err)
	}
	ro, ok := client.AsReadOnly(err)
	if !ok {
		t.Fatalf("%s: the refusal carries no read-only ErrorInfo: %v", what, err)
	}
	if ro.Frozen != frozen || ro.Successor != successor || ro.SuccessorURL != url {
		t.Fatalf("%s: refusal %+v, want frozen=%v successor %q at %q", what, ro, frozen, successor, url)
	}
	if successor != "" && !strings.Contains(ro.Message, successor) {
		t.Fatalf("%s: the message does not name the successor: %s", what, ro.Message)
	}
}

// TestReadOnlyServesWithoutWriting: a read-only server of a stopped log
// serves checkpoints, tiles, receipts, proofs and payloads, refuses appends
// and erasures naming the configured successor, and leaves the data
// directory exactly as it was (names, modes, sizes, times, contents). On a
// directory a running server holds, it refuses to start, saying so.
func TestReadOnlyServesWithoutWriting(t *testing.T) {
	dir := t.TempDir()
	ts := startServer(t, dir, server.Config{})
	sent := appendConcurrently(t, ts.cli, 2, 2, 50, 300)
	if _, err := ts.cli.Receipt(ctxT(t, time.Minute), sent[len(sent)-1].idx); err != nil {
		t.Fatal(err)
	}

	// Held by a running server: refused, with the reason.
	_, err := server.New(context.Background(), server.Config{DataDir: dir, ReadOnly: true, Logger: quietLogger()})
	if err == nil || !strings.Contains(err.Error(), "another stele-server") {
		t.Fatalf("read-only on a directory a running server holds: %v, want a refusal naming the other server", err)
	}
	ts.stop(t)

	before := snapshotDir(t, dir)
	succ := newVKey(t, "next.stele.test/log")
	ro := startServer(t, dir, server.Config{ReadOnly: true, SuccessorKey: succ, SuccessorURL: "https://next.stele.test/log/"})
	if !ro.srv.ReadOnly() || ro.srv.Frozen() != nil {
		t.Fatalf("ReadOnly %v, Frozen %v", ro.srv.ReadOnly(), ro.srv.Frozen())
	}
	ctx := ctxT(t, time.Minute)
	for _, s := range sent[:5] {
		raw, err := ro.cli.Receipt(ctx, s.idx)
		if err != nil {
			t.Fatalf("receipt %d from the read-only server: %v", s.idx, err)
		}
		if _, err := client.VerifyReceipt(raw, ro.verifier); err != nil {
			t.Fatal(err)
		}
		if _, _, err := ro.cli.VerifiedEvent(ctx, s.idx, ro.verifier, nil); err != nil {
			t.Fatalf("event %d from the read-only server: %v", s.idx, err)
		}
	}
	lg, err := client.NewTileLog(ro.httpURL, ro.verifier, nil)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := lg.Checkpoint(ctx)
	if err != nil || cp.Size != uint64(len(sent)) {
		t.Fatalf("tlog-tiles checkpoint: %v, %v; want size %d", cp, err, len(sent))
	}
	if _, err := lg.ConsistencyProof(ctx, 7, cp.Size); err != nil {
		t.Fatal(err)
	}
	if f, _, err := lg.Freeze(ctx); f != nil || err != nil {
		t.Fatalf("a read-only (not frozen) log's freeze statement: %v, %v", f, err)
	}
	_, err = ro.cli.Append(ctx, []*stelev1.Event{event("entra/ro/audit", "ro-1", 200)})
	wantReadOnly(t, "Append", err, false, "next.stele.test/log", "https://next.stele.test/log/")
	_, err = ro.cli.Erase(ctx, sent[0].idx, "test", "REQ-1")
	wantReadOnly(t, "EraseEvent", err, false, "next.stele.test/log", "https://next.stele.test/log/")
	resp, err := http.Get(ro.httpURL + "healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz of the read-only server: %v %v", resp, err)
	}
	resp.Body.Close()
	ro.stop(t)
	if d := diffSnapshots(before, snapshotDir(t, dir)); len(d) > 0 {
		t.Fatalf("the read-only server changed the data directory:\n%s", strings.Join(d, "\n"))
	}
}

// TestFreeze: freezing publishes the statement for the final checkpoint;
// afterwards the log opens read-only by itself (a restart cannot append),
// serves the statement at /frozen for clients to verify, and refuses
// appends naming the successor from the statement. Freezing again with the
// same successor is a no-op, with another refused.
func TestFreeze(t *testing.T) {
	dir := t.TempDir()
	ts := startServer(t, dir, server.Config{})
	sent := appendConcurrently(t, ts.cli, 1, 2, 40, 300)
	old, err := ts.cli.Receipt(ctxT(t, time.Minute), sent[3].idx)
	if err != nil {
		t.Fatal(err)
	}
	v := ts.verifier
	ts.stop(t)

	succ := newVKey(t, "next.stele.test/log")
	succURL := "http://127.0.0.1:1/next/"
	if _, err := server.Freeze(ctxT(t, time.Minute), server.Config{DataDir: dir, Logger: quietLogger(), CheckpointInterval: 100 * time.Millisecond}, server.Successor{Key: "not a key"}); err == nil {
		t.Fatal("froze with a bad successor key")
	}
	f, err := server.Freeze(ctxT(t, time.Minute), server.Config{DataDir: dir, Logger: quietLogger(), CheckpointInterval: 100 * time.Millisecond}, server.Successor{Key: succ, URL: succURL})
	if err != nil {
		t.Fatal(err)
	}
	if f.Size != uint64(len(sent)) || f.Successor != "next.stele.test/log" {
		t.Fatalf("freeze statement %v, want size %d", f, len(sent))
	}
	if _, err := client.ParseFreeze(f.Raw, v); err != nil {
		t.Fatal(err)
	}
	if _, err := client.ParseCheckpoint(f.Raw, v); err == nil {
		t.Fatal("the freeze statement parses as a checkpoint")
	}

	// Again, the same: unchanged. Another successor: refused.
	again, err := server.Freeze(ctxT(t, time.Minute), server.Config{DataDir: dir, Logger: quietLogger()}, server.Successor{Key: succ, URL: succURL})
	if err != nil || string(again.Raw) != string(f.Raw) {
		t.Fatalf("freezing again: %v", err)
	}
	if _, err := server.Freeze(ctxT(t, time.Minute), server.Config{DataDir: dir, Logger: quietLogger()}, server.Successor{Key: newVKey(t, "other.stele.test/log")}); err == nil || !strings.Contains(err.Error(), "frozen") {
		t.Fatalf("freezing again with another successor: %v", err)
	}

	// A normal start of the frozen log: read-only by itself.
	ts = startServer(t, dir, server.Config{})
	if !ts.srv.ReadOnly() || ts.srv.Frozen() == nil {
		t.Fatal("the frozen log did not open read-only")
	}
	ctx := ctxT(t, time.Minute)
	_, err = ts.cli.Append(ctx, []*stelev1.Event{event("entra/frozen/audit", "after-freeze", 200)})
	wantReadOnly(t, "Append after freezing", err, true, "next.stele.test/log", succURL)
	ro, _ := client.AsReadOnly(err)
	if ro.FrozenSize != f.Size || ro.SuccessorKey != succ {
		t.Fatalf("refusal %+v", ro)
	}
	lg, err := client.NewTileLog(ts.httpURL, v, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, final, err := lg.Freeze(ctx)
	if err != nil || got == nil || got.Size != f.Size || final.Size != f.Size {
		t.Fatalf("the served freeze statement: %v, %v", got, err)
	}
	if r, err := client.VerifyReceipt(old, v); err != nil || r.Checkpoint.Size > f.Size {
		t.Fatalf("a receipt from before the freeze: %v", err)
	}
	// The chain: this log, then its successor (not served here).
	chain := &client.Chain{}
	links, err := chain.Follow(ctx, ts.httpURL, v)
	if len(links) != 2 || links[0].Freeze == nil || links[1].Origin() != "next.stele.test/log" || err == nil || !errors.As(err, new(*client.UnreachableError)) {
		t.Fatalf("following to an unreachable successor: %d links, %v", len(links), err)
	}
}

// TestLifecycleHealthAndMetrics: /healthz says how the log is served
// (read-write, read-only naming the successor, frozen with its final size
// and successor), and the stele_log_read_only, stele_log_frozen and
// stele_log_frozen_size gauges agree.
func TestLifecycleHealthAndMetrics(t *testing.T) {
	dir := t.TempDir()
	check := func(ts *testServer, what string, health map[string]any, metrics ...string) {
		t.Helper()
		resp, err := http.Get(ts.httpURL + "healthz")
		if err != nil {
			t.Fatal(err)
		}
		var got map[string]any
		err = json.NewDecoder(resp.Body).Decode(&got)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: healthz %d %v", what, resp.StatusCode, err)
		}
		for k, v := range health {
			if fmt.Sprint(got[k]) != fmt.Sprint(v) {
				t.Errorf("%s: healthz %s = %v, want %v (%v)", what, k, got[k], v, got)
			}
		}
		resp, err = http.Get(ts.httpURL + "metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, m := range metrics {
			if !strings.Contains(string(b), "\n"+m+"\n") {
				t.Errorf("%s: /metrics lacks %q", what, m)
			}
		}
	}
	ts := startServer(t, dir, server.Config{})
	sent := appendConcurrently(t, ts.cli, 1, 1, 7, 200)
	if _, err := ts.cli.Receipt(ctxT(t, time.Minute), sent[len(sent)-1].idx); err != nil {
		t.Fatal(err)
	}
	check(ts, "read-write", map[string]any{"status": "ok", "mode": "read-write", "successor": nil}, "stele_log_read_only 0", "stele_log_frozen 0", "stele_log_frozen_size 0")
	ts.stop(t)

	succ := newVKey(t, "next.stele.test/log")
	ro := startServer(t, dir, server.Config{ReadOnly: true, SuccessorKey: succ, SuccessorURL: "https://next.stele.test/log/"})
	check(ro, "read-only", map[string]any{"status": "ok", "mode": "read-only", "successor": "next.stele.test/log", "successor_url": "https://next.stele.test/log/"},
		"stele_log_read_only 1", "stele_log_frozen 0")
	ro.stop(t)

	if _, err := server.Freeze(ctxT(t, time.Minute), server.Config{DataDir: dir, Logger: quietLogger(), CheckpointInterval: 100 * time.Millisecond}, server.Successor{Key: succ, URL: "https://next.stele.test/log/"}); err != nil {
		t.Fatal(err)
	}
	fz := startServer(t, dir, server.Config{})
	check(fz, "frozen", map[string]any{"status": "ok", "mode": "frozen", "frozen_size": len(sent), "successor": "next.stele.test/log"},
		"stele_log_read_only 1", "stele_log_frozen 1", fmt.Sprintf("stele_log_frozen_size %d", len(sent)))
}
