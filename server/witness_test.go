package server_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/internal/logkey"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
	"github.com/stele-dev/stele/server"
)

// witnessProc is a real stele-witness process.
type witnessProc struct {
	dir, addr, name string
	cmd             *exec.Cmd
	logs            *bytes.Buffer
}

func (w *witnessProc) start(t *testing.T) {
	t.Helper()
	w.logs = &bytes.Buffer{}
	w.cmd = exec.Command(binary(t, "stele-witness"), "--data-dir", w.dir, "--listen", w.addr, "--name", w.name)
	w.cmd.Stderr = w.logs
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	cmd := w.cmd
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + w.addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("witness %s did not come up: %v\n%s", w.name, err, w.logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (w *witnessProc) kill(t *testing.T) {
	t.Helper()
	w.cmd.Process.Kill()
	w.cmd.Wait()
}

// appendOne admits one fresh event and returns its index.
func appendOne(t *testing.T, p *proc, id string) uint64 {
	t.Helper()
	rs := mustAppend(t, p.cli, []*stelev1.Event{event("entra/w/audit", id, 500)})
	return rs[0].Index
}

// TestWitnessQuorum runs a server with a 2-of-3 policy across three real
// stele-witness processes: it keeps publishing with one witness down, stops
// (while still admitting events) with two down, and resumes when one is back.
// Every receipt carries a quorum of valid cosignatures.
func TestWitnessQuorum(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data") // created 0700: t.TempDir is 0755
	key, err := logkey.LoadOrCreate(dir, "", server.DefaultOrigin, logkey.MLDSAAuto)
	if err != nil {
		t.Fatal(err)
	}
	ws := make([]*witnessProc, 3)
	var policy strings.Builder
	for i := range ws {
		ws[i] = &witnessProc{dir: filepath.Join(t.TempDir(), "w"), addr: freeAddr(t), name: fmt.Sprintf("w%d.stele.test/witness", i)}
		ws[i].start(t)
		out, err := exec.Command(binary(t, "stele-witness"), "add-log", "--data-dir", ws[i].dir, "--origin", key.Signer.Name(), "--key", key.VKey).CombinedOutput()
		if err != nil {
			t.Fatalf("add-log: %v\n%s", err, out)
		}
		pub, err := os.ReadFile(filepath.Join(ws[i].dir, "witness.pub"))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&policy, "witness w%d %s http://%s/\n", i, strings.TrimSpace(string(pub)), ws[i].addr)
	}
	policy.WriteString("group g 2 w0 w1 w2\nquorum g\n")
	policyPath, pol := writeWitnessPolicy(t, policy.String())
	v, err := note.NewVerifier(key.VKey)
	if err != nil {
		t.Fatal(err)
	}

	p := startProcess(t, dir, "--witness-policy", policyPath, "--witness-timeout", "1s")
	defer p.cli.Close()
	receipt := func(idx uint64, wait time.Duration) (*client.Receipt, error) {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		raw, err := p.cli.Receipt(ctx, idx)
		if err != nil {
			return nil, err
		}
		r, err := client.VerifyReceipt(raw, v)
		if err != nil {
			t.Fatalf("receipt %d does not verify: %v", idx, err)
		}
		if err := pol.Check(r.Checkpoint); err != nil {
			t.Fatalf("receipt %d: %v", idx, err)
		}
		return r, nil
	}

	// All three up.
	idx := appendOne(t, p, "all-up")
	r, err := receipt(idx, 30*time.Second)
	if err != nil {
		t.Fatalf("with three witnesses: %v\n%s", err, p.logs)
	}
	if n := len(r.Checkpoint.Note.Sigs); n < 1 {
		t.Fatalf("checkpoint has %d verified signatures", n)
	}

	// One down: still published.
	ws[0].kill(t)
	idx = appendOne(t, p, "one-down")
	if _, err := receipt(idx, 30*time.Second); err != nil {
		t.Fatalf("with two of three witnesses: %v\n%s", err, p.logs)
	}

	// Two down: events are still admitted, but no checkpoint covers them.
	ws[1].kill(t)
	stuck := appendOne(t, p, "two-down")
	_, err = receipt(stuck, 4*time.Second)
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("with one of three witnesses a checkpoint was published (or another error): %v", err)
	}
	cpRaw, err := p.cli.Checkpoint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	cp, err := client.ParseCheckpoint(cpRaw, v)
	if err != nil {
		t.Fatal(err)
	}
	if cp.Size > stuck {
		t.Fatalf("checkpoint size %d covers index %d without a quorum", cp.Size, stuck)
	}
	resp, err := http.Get("http://" + p.httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	var metrics bytes.Buffer
	metrics.ReadFrom(resp.Body)
	resp.Body.Close()
	if !strings.Contains(metrics.String(), "stele_checkpoint_stalled 1") {
		t.Errorf("stele_checkpoint_stalled is not 1 while the policy cannot be met")
	}
	if !strings.Contains(metrics.String(), `stele_witness_request_seconds_count{code="200",witness="`+ws[2].addr+`/add-checkpoint"}`) {
		t.Errorf("no per-witness latency metric for %s", ws[2].addr)
	}

	// One witness back: the quorum is met again and the stuck entry is covered.
	ws[1].start(t)
	if _, err := receipt(stuck, 30*time.Second); err != nil {
		t.Fatalf("after a witness came back: %v\n%s", err, p.logs)
	}

	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("SIGTERM: %v\n%s", err, p.logs)
	}
}

// writeWitnessPolicy writes a witness policy for --witness-policy and
// returns its path and the policy parsed as a verifier would.
func writeWitnessPolicy(t *testing.T, policy string) (string, *client.Policy) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "policy")
	if err := os.WriteFile(path, []byte(policy), 0o644); err != nil {
		t.Fatal(err)
	}
	pol, err := client.ParsePolicy([]byte(policy))
	if err != nil {
		t.Fatal(err)
	}
	return path, pol
}
