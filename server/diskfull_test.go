package server_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stele-dev/stele/audit"
	"github.com/stele-dev/stele/internal/logkey"
	"github.com/stele-dev/stele/leaf"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
)

// mountTmpfs mounts a tmpfs of the given size on a fresh directory and
// unmounts it when the test ends. Mounting needs root (or CAP_SYS_ADMIN):
// where that is missing the test is skipped loudly, except in CI (CI set),
// where it fails.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput()
	if err != nil {
		msg := fmt.Sprintf("cannot mount a %s tmpfs (needs root or CAP_SYS_ADMIN): %v %s", size, err, bytes.TrimSpace(out))
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip("SKIPPED, NOT RUN: " + msg)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", dir, err, out)
		}
	})
	return dir
}

// writeFiller writes a file of n MiB of zeros.
func writeFiller(t *testing.T, path string, n int) {
	t.Helper()
	if err := os.WriteFile(path, make([]byte, n<<20), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestDiskFull runs the real binary on a small tmpfs (320 MiB, 64 MiB of it
// taken by a filler file, a 128 MiB reserve: Pebble preallocates ~36 MiB
// for each payload WAL), fills the disk by appending
// until the server refuses, and checks that the refusals are Unavailable
// naming the disk, the server stays up, nothing acknowledged is lost, and
// that once the filler is removed appends succeed again without a restart
// and the log audits clean.
func TestDiskFull(t *testing.T) {
	dir := mountTmpfs(t, "320m")
	filler := filepath.Join(dir, "filler")
	writeFiller(t, filler, 64)
	data := filepath.Join(dir, "data")
	p := startProcess(t, data, "--min-free-disk-mib", "128")
	defer p.cli.Close()

	acked := map[uint64]*stelev1.Event{}
	n := 0
	appendBatch := func() ([]*stelev1.AppendResult, []*stelev1.Event, error) {
		evs := make([]*stelev1.Event, 50)
		for i := range evs {
			evs[i] = event("entra/full/audit", fmt.Sprintf("e%d", n), 1024)
			n++
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		rs, err := p.cli.Append(ctx, evs)
		for i, r := range rs {
			if r.Code == 0 {
				acked[r.Index] = evs[i]
			}
		}
		return rs, evs, err
	}
	// Some appends succeed first (the stores' write-ahead logs, preallocated
	// ~36 MiB each as they rotate, soon take the rest of the margin).
	for range 10 {
		rs, _, err := appendBatch()
		if err != nil || rs[0].Code != 0 {
			t.Fatalf("append before the disk is full: %v %v", err, rs[0])
		}
	}

	// Keep appending until the server refuses.
	var refusal *stelev1.AppendResult
	deadline := time.Now().Add(3 * time.Minute)
	for refusal == nil {
		if time.Now().After(deadline) {
			t.Fatalf("appends still succeed after %d events\n%s", n, p.logs)
		}
		rs, _, err := appendBatch()
		if err != nil {
			t.Fatalf("append on a full disk failed as a call, want per-event Unavailable: %v (code %v)\n%s", err, status.Code(errors.Unwrap(err)), p.logs)
		}
		for _, r := range rs {
			if r.Code != 0 {
				refusal = r
				break
			}
		}
	}
	if codes.Code(refusal.Code) != codes.Unavailable || !strings.Contains(refusal.Message, "disk") {
		t.Fatalf("refused with code %v %q, want Unavailable naming the disk\n%s", codes.Code(refusal.Code), refusal.Message, p.logs)
	}
	t.Logf("refused after %d events (%d acknowledged): %s", n, len(acked), refusal.Message)
	// Refusals are steady, not a one-off, and the server is still up.
	for range 3 {
		rs, _, err := appendBatch()
		if err != nil {
			t.Fatalf("append on a full disk: %v\n%s", err, p.logs)
		}
		for _, r := range rs {
			if r.Code != 0 && codes.Code(r.Code) != codes.Unavailable {
				t.Fatalf("refused with %v %q on a full disk, want Unavailable", codes.Code(r.Code), r.Message)
			}
		}
	}
	if p.cmd.ProcessState != nil {
		t.Fatalf("the server exited on a full disk\n%s", p.logs)
	}
	checkAcked(t, p, acked)

	// Free the space: appends are admitted again, without a restart.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(time.Minute)
	for {
		rs, _, err := appendBatch()
		if err == nil && rs[0].Code == 0 && rs[len(rs)-1].Code == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("appends still refused a minute after space was freed: %v %v\n%s", err, rs[0], p.logs)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for range 5 {
		rs, _, err := appendBatch()
		if err != nil || rs[0].Code != 0 {
			t.Fatalf("append after space was freed: %v %v", err, rs[0])
		}
	}
	checkAcked(t, p, acked)

	// Restart: everything acknowledged is still there and the log audits clean.
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("graceful stop after the disk-full episode: %v\n%s", err, p.logs)
	}
	p.cli.Close()
	p = startProcess(t, data, "--min-free-disk-mib", "128")
	defer p.cli.Close()
	checkAcked(t, p, acked)
	v, err := logkey.ReadVerifier(filepath.Join(data, "log.pub"))
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse("http://" + p.httpAddr + "/")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, _, err := audit.Run(ctx, audit.Config{LogURL: u.String(), Verifier: v})
	if err != nil || !rep.Verified || rep.FailureCount > 0 {
		t.Fatalf("stele audit after the disk-full episode: %v (%+v)", err, rep.Failures)
	}
	for _, f := range rep.Findings {
		if f.Kind == audit.FindDuplicate {
			t.Fatalf("audit finds a duplicate: %+v", f)
		}
	}
	t.Logf("%d acknowledged events, all present; log of %d entries audits clean", len(acked), rep.Checkpoint.Size)
}

// checkAcked checks that every acknowledged event is at its index with its
// payload.
func checkAcked(t *testing.T, p *proc, acked map[uint64]*stelev1.Event) {
	t.Helper()
	var maxIdx uint64
	for i := range acked {
		maxIdx = max(maxIdx, i)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := p.cli.Receipt(ctx, maxIdx); err != nil {
		t.Fatalf("receipt for the highest acknowledged index %d: %v\n%s", maxIdx, err, p.logs)
	}
	for idx, ev := range acked {
		got, err := p.cli.Event(ctx, idx)
		if err != nil {
			t.Fatalf("acknowledged index %d: %v", idx, err)
		}
		l, err := leaf.Unmarshal(got.Leaf)
		if err != nil {
			t.Fatalf("index %d: %v", idx, err)
		}
		if l.EventID != ev.EventId || !bytes.Equal(got.Record, ev.Record) {
			t.Fatalf("index %d holds %s, want %s", idx, l.EventID, ev.EventId)
		}
		if err := l.VerifyPayload(got.Salt, got.Payload); err != nil {
			t.Fatalf("index %d: %v", idx, err)
		}
	}
}
