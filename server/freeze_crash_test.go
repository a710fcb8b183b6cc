package server_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/internal/logkey"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
)

// TestKillFreeze SIGKILLs `stele-server freeze` at random moments
// (-torture-cycles times, plus two) on a log whose server was itself
// SIGKILLed with acknowledged entries not yet integrated, then runs it to
// the end. The log ends frozen once: the statement, once written, never
// changes, and freezing again returns it unchanged; the final checkpoint
// is consistent with the checkpoint published before and holds every
// acknowledged event (its receipt verifies); the frozen log refuses
// appends after a restart.
func TestKillFreeze(t *testing.T) {
	dir := t.TempDir()
	p := startProcess(t, dir)
	v, err := logkey.ReadVerifier(filepath.Join(dir, logkey.PublicFile))
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t, 2*time.Minute)
	var acked []uint64
	for b := range 8 {
		var evs []*stelev1.Event
		for i := range 40 {
			evs = append(evs, event("entra/freeze/audit", fmt.Sprintf("fz-%d-%d", b, i), 300))
		}
		rs, err := p.cli.Append(ctx, evs)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			if r.Code != 0 {
				t.Fatalf("append: %d %s", r.Code, r.Message)
			}
			acked = append(acked, r.Index)
		}
		if b == 3 {
			if _, err := p.cli.Receipt(ctx, acked[len(acked)-1]); err != nil {
				t.Fatal(err)
			}
		}
	}
	before, err := client.ParseCheckpoint(mustRead(t, filepath.Join(dir, "log", "checkpoint")), v)
	if err != nil {
		t.Fatal(err)
	}
	// The server dies with the last batches acknowledged, maybe not yet
	// integrated: the freeze must integrate them before the final checkpoint.
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.cmd.Wait()

	succ := newVKey(t, "next.stele.test/log")
	freeze := func() *exec.Cmd {
		return exec.Command(serverBinary(t), "freeze", "--data-dir", dir, "--checkpoint-interval", "100ms",
			"--successor-key", succ, "--successor-url", "https://next.stele.test/log/")
	}
	frozenPath := filepath.Join(dir, "log", client.FreezePath)
	var statement []byte
	for c := range *tortureCycles + 2 {
		cmd := freeze()
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Growing windows: the early cycles die while the log opens and
		// integrates, the later ones about when the statement is written.
		d := time.Duration(rand.IntN(150*(c+1))) * time.Millisecond
		time.Sleep(d)
		cmd.Process.Signal(syscall.SIGKILL)
		werr := cmd.Wait()
		got, err := os.ReadFile(frozenPath)
		switch {
		case err == nil && statement == nil:
			statement = got
		case err == nil && !bytes.Equal(got, statement):
			t.Fatalf("cycle %d: the freeze statement changed:\n%s\nwas\n%s", c, got, statement)
		case err != nil && statement != nil:
			t.Fatalf("cycle %d: the freeze statement disappeared: %v", c, err)
		}
		t.Logf("cycle %d: killed after %v (%v), frozen: %v", c, d, werr, statement != nil)
	}
	t0 := time.Now()
	out, err := freeze().CombinedOutput()
	t.Logf("the last freeze run took %v", time.Since(t0))
	if err != nil {
		t.Fatalf("freeze after the kills: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "is frozen at size") {
		t.Fatalf("freeze printed:\n%s", out)
	}
	final := mustRead(t, frozenPath)
	if statement != nil && !bytes.Equal(final, statement) {
		t.Fatalf("the freeze statement changed on the last run")
	}
	if again, err := freeze().CombinedOutput(); err != nil || !bytes.Equal(mustRead(t, frozenPath), final) {
		t.Fatalf("freezing again: %v\n%s", err, again)
	}
	f, err := client.ParseFreeze(final, v)
	if err != nil {
		t.Fatal(err)
	}
	if f.Size != uint64(len(acked)) || f.Successor != "next.stele.test/log" {
		t.Fatalf("frozen at size %d (%v), want the %d acknowledged events", f.Size, f, len(acked))
	}

	// Served again: read-only by itself, the final checkpoint is the
	// statement's tree, consistent with the one published before, and
	// every acknowledged event has a receipt in it.
	p = startProcess(t, dir)
	lg, err := client.NewTileLog("http://"+p.httpAddr+"/", v, nil)
	if err != nil {
		t.Fatal(err)
	}
	fr, cp, err := lg.Freeze(ctx)
	if err != nil || fr == nil || cp.Size != f.Size {
		t.Fatalf("the served freeze statement: %v %v", fr, err)
	}
	if err := client.CheckConsistent(ctx, before, cp, lg.ConsistencyProof); err != nil {
		t.Fatalf("the final checkpoint is not consistent with size %d published before: %v", before.Size, err)
	}
	for _, i := range acked {
		raw, err := p.cli.Receipt(ctx, i)
		if err != nil {
			t.Fatalf("receipt %d: %v", i, err)
		}
		r, err := client.VerifyReceipt(raw, v)
		if err != nil || r.Checkpoint.Size != f.Size {
			t.Fatalf("receipt %d: %v (checkpoint %v)", i, err, r)
		}
	}
	_, err = p.cli.Append(ctx, []*stelev1.Event{event("entra/freeze/audit", "after", 200)})
	if ro, ok := client.AsReadOnly(err); !ok || !ro.Frozen || ro.FrozenSize != f.Size {
		t.Fatalf("append to the frozen log: %v", err)
	}
}
