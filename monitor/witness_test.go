package monitor_test

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/monitor"
)

// TestSplitViewRealWitness runs a real stele-witness that cosigns log A's
// checkpoints (Tessera asks it, as stele-server does). A forked log B,
// signed with the same key, shows a monitor a tree of the same size with
// another root: comparing with the witness exposes it.
func TestSplitViewRealWitness(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs stele-witness")
	}
	bin := filepath.Join(t.TempDir(), "stele-witness")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/stele-witness").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	wdir := filepath.Join(t.TempDir(), "w")
	var logs bytes.Buffer
	cmd := exec.Command(bin, "--data-dir", wdir, "--listen", addr, "--name", "w0.stele.test/witness")
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for deadline := time.Now().Add(20 * time.Second); ; {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("witness did not come up: %v\n%s", err, &logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	k := newKey(t)
	if out, err := exec.Command(bin, "add-log", "--data-dir", wdir, "--origin", origin, "--key", k.vkey).CombinedOutput(); err != nil {
		t.Fatalf("add-log: %v\n%s", err, out)
	}
	pub, err := os.ReadFile(filepath.Join(wdir, "witness.pub"))
	if err != nil {
		t.Fatal(err)
	}
	policy := fmt.Appendf(nil, "witness w0 %s http://%s/\nquorum w0\n", strings.TrimSpace(string(pub)), addr)

	ctx := ctxT(t)
	evs := identityEvents(30)
	dirA := t.TempDir()
	appendWitnessed(t, dirA, k, mkLeaves(t, evs), policy)
	dirB := t.TempDir()
	appendEntries(t, dirB, k, mkLeaves(t, evs[:29]))
	appendEntries(t, dirB, k, mkLeaves(t, []ev{{"entra/t1/audit", "other", "user.update", base}}))
	witnessURL := "http://" + addr

	// Log A agrees with its witness.
	s := &sink{}
	if err := newMonitor(t, serve(t, dirA), k, "", []string{witnessURL}, s).Step(ctx); err != nil {
		t.Fatalf("honest log: %v\n%s", err, &logs)
	}
	for _, a := range s.alerts {
		if a.Type != monitor.AlertRule {
			t.Fatalf("honest log: %+v", a)
		}
	}
	// With the witness policy: log A's checkpoints meet it, log B's
	// (never cosigned) do not, and are not trusted.
	pol, err := client.ParsePolicy(policy)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		dir  string
		fail bool
	}{{dirA, false}, {dirB, true}} {
		lg, _ := client.NewTileLog(serve(t, tc.dir), k.verifier, nil)
		s := &sink{}
		m, _ := monitor.New(monitor.Config{Log: lg, Rules: monitor.DefaultRules(), Policy: pol, Alert: s.add})
		err := m.Step(ctx)
		if tc.fail != (err != nil) || tc.fail && (len(s.alerts) != 1 || s.alerts[0].Type != monitor.AlertWitnessPolicy) {
			t.Fatalf("policy on %s: %v, %+v", tc.dir, err, s.alerts)
		}
	}

	// Log B, same size, another root: split view.
	s = &sink{}
	err = newMonitor(t, serve(t, dirB), k, "", []string{witnessURL}, s).Step(ctx)
	if !errors.Is(err, client.ErrVerification) {
		t.Fatalf("forked log: %v", err)
	}
	var split *monitor.Alert
	for i, a := range s.alerts {
		if a.Type == monitor.AlertSplitView {
			split = &s.alerts[i]
		}
	}
	if split == nil || split.Seen.Size != 30 || split.Trusted.Size != 30 || split.Seen.Root == split.Trusted.Root ||
		!strings.Contains(split.WitnessCheckpoint, "— w0.stele.test/witness ") {
		t.Fatalf("split-view alert: %+v", split)
	}
	t.Logf("%s", split.Message)
}
