package monitor_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/internal/testlog"
	"github.com/stele-dev/stele/monitor"
)

type sink struct{ alerts []monitor.Alert }

func (s *sink) add(a monitor.Alert) error { s.alerts = append(s.alerts, a); return nil }

func (s *sink) take() []monitor.Alert { a := s.alerts; s.alerts = nil; return a }

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newMonitor(t testing.TB, url string, k logKey, stateDir string, witnesses []string, s *sink) *monitor.Monitor {
	t.Helper()
	lg, err := client.NewTileLog(url, k.verifier, nil)
	if err != nil {
		t.Fatal(err)
	}
	var st *client.StateStore
	if stateDir != "" {
		if st, err = client.NewStateStore(stateDir, k.verifier, lg.ConsistencyProof); err != nil {
			t.Fatal(err)
		}
	}
	m, err := monitor.New(monitor.Config{Log: lg, State: st, Rules: monitor.DefaultRules(), Witnesses: witnesses, Alert: s.add,
		Warn: func(w string) { t.Log("warn:", w) }})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func identityEvents(n int) []ev {
	var out []ev
	kinds := []string{"signin.success", "directory.role.member.add", "user.update", "consent.admin.grant", "group.member.add"}
	for i := range n {
		out = append(out, ev{"entra/t1/audit", "id-" + string(rune('a'+i%26)) + strings.Repeat("x", i/26), kinds[i%len(kinds)], base.Add(time.Duration(i) * time.Minute)})
	}
	return out
}

func TestMonitorFollowsAndAlerts(t *testing.T) {
	ctx := ctxT(t)
	k := newKey(t)
	dir := t.TempDir()
	appendEntries(t, dir, k, mkLeaves(t, identityEvents(300)))
	url := serve(t, dir)
	s := &sink{}
	stateDir := t.TempDir()
	m := newMonitor(t, url, k, stateDir, nil, s)
	if err := m.Step(ctx); err != nil {
		t.Fatal(err)
	}
	as := s.take()
	// 300 events, kinds cycling through 5: 60 role grants, 60 consents.
	counts := map[string]int{}
	for _, a := range as {
		counts[a.Rule]++
		if a.Type != monitor.AlertRule || a.Index == nil || a.Leaf == nil || a.Checkpoint.Size != 300 {
			t.Fatalf("alert: %+v", a)
		}
		r, err := client.VerifyReceipt([]byte(a.Receipt), k.verifier)
		if err != nil || r.Index != *a.Index || r.Leaf.Kind != a.Leaf.Kind {
			t.Fatalf("alert %d receipt: %v", *a.Index, err)
		}
	}
	if counts["privileged-role-granted"] != 60 || counts["tenant-wide-admin-consent"] != 60 || len(as) != 120 {
		t.Fatalf("alerts by rule: %v (total %d)", counts, len(as))
	}

	// A second monitor resumes from the trusted state: it reads only the
	// new entries, proves the new checkpoint consistent, and alerts on
	// those alone, including a burst of failed sign-ins.
	var more []ev
	for i := range 10 {
		more = append(more, ev{"entra/t1/signin", "f" + string(rune('a'+i)), "signin.interactive.failure", base.Add(time.Duration(i) * time.Second)})
	}
	more = append(more, ev{"entra/t1/audit", "mfa", "user.security_info.remove", base}, ev{"entra/t1/audit", "ok", "signin.interactive.success", base})
	appendEntries(t, dir, k, mkLeaves(t, more))
	m2 := newMonitor(t, url, k, stateDir, nil, s)
	if err := m2.Step(ctx); err != nil {
		t.Fatal(err)
	}
	as = s.take()
	if len(as) != 2 || as[0].Rule != "signin-failure-burst" || as[0].Count != 10 || *as[0].FirstIndex != 300 || *as[0].Index != 309 ||
		as[1].Rule != "mfa-method-removed" || *as[1].Index != 310 {
		t.Fatalf("resumed alerts: %+v", as)
	}
	if m2.Trusted().Size != 312 {
		t.Fatalf("trusted size %d", m2.Trusted().Size)
	}
	// Nothing new: nothing to say.
	if err := m2.Step(ctx); err != nil || len(s.take()) != 0 {
		t.Fatalf("idle step: %v", err)
	}
}

// copyDir copies the public files of a log.
func copyDir(t testing.TB, src string) string { return testlog.Copy(t, src) }

func TestMonitorDetectsTampering(t *testing.T) {
	ctx := ctxT(t)
	k := newKey(t)
	dir := t.TempDir()
	evs := identityEvents(20)
	appendEntries(t, dir, k, mkLeaves(t, evs))
	firstCP, _ := os.ReadFile(filepath.Join(dir, "checkpoint"))
	// A fork signed with the same key: same first 10 entries, then others.
	forkDir := t.TempDir()
	appendEntries(t, forkDir, k, mkLeaves(t, evs[:10]))
	forked := identityEvents(40)[20:30]
	appendEntries(t, forkDir, k, mkLeaves(t, forked))

	t.Run("fork", func(t *testing.T) {
		stateDir := t.TempDir()
		s := &sink{}
		if err := newMonitor(t, serve(t, dir), k, stateDir, nil, s).Step(ctx); err != nil {
			t.Fatal(err)
		}
		s.take()
		m := newMonitor(t, serve(t, forkDir), k, stateDir, nil, s)
		err := m.Step(ctx)
		var fe *client.ForkError
		if !errors.As(err, &fe) {
			t.Fatalf("fork: %v", err)
		}
		as := s.take()
		if len(as) != 1 || as[0].Type != monitor.AlertFork || as[0].Trusted.Size != 20 || as[0].Seen.Size != 20 || as[0].Trusted.Root == as[0].Seen.Root {
			t.Fatalf("fork alerts: %+v", as)
		}
		// Polling again does not repeat the alert.
		if err := m.Step(ctx); err == nil || len(s.take()) != 0 {
			t.Fatalf("second poll: %v", err)
		}
	})

	t.Run("rollback", func(t *testing.T) {
		old := copyDir(t, dir)
		appendEntries(t, dir, k, mkLeaves(t, identityEvents(60)[40:45]))
		stateDir := t.TempDir()
		s := &sink{}
		if err := newMonitor(t, serve(t, dir), k, stateDir, nil, s).Step(ctx); err != nil {
			t.Fatal(err)
		}
		s.take()
		err := newMonitor(t, serve(t, old), k, stateDir, nil, s).Step(ctx)
		var re *client.RollbackError
		if !errors.As(err, &re) || re.SeenSize != 20 || re.TrustedSize != 25 {
			t.Fatalf("rollback: %v", err)
		}
		if as := s.take(); len(as) != 1 || as[0].Type != monitor.AlertRollback {
			t.Fatalf("rollback alerts: %+v", as)
		}
	})

	t.Run("entry bundle changed", func(t *testing.T) {
		bad := copyDir(t, dir)
		filepath.Walk(filepath.Join(bad, "tile", "entries"), func(p string, fi os.FileInfo, err error) error {
			if err == nil && !fi.IsDir() {
				b, _ := os.ReadFile(p)
				b[len(b)-3] ^= 1
				os.WriteFile(p, b, 0o644)
			}
			return nil
		})
		s := &sink{}
		err := newMonitor(t, serve(t, bad), k, "", nil, s).Step(ctx)
		if !errors.Is(err, client.ErrVerification) || !strings.Contains(err.Error(), "do not hash to the checkpoint's root") {
			t.Fatalf("tampered bundle: %v", err)
		}
		if len(s.alerts) != 0 {
			t.Fatalf("alerted on entries that do not verify: %+v", s.alerts)
		}
	})

	t.Run("entry dropped", func(t *testing.T) {
		bad := copyDir(t, dir)
		// Rewrite the bundle without its last entry (each entry is a
		// big-endian u16 length and the bytes).
		filepath.Walk(filepath.Join(bad, "tile", "entries"), func(p string, fi os.FileInfo, err error) error {
			if err != nil || fi.IsDir() {
				return nil
			}
			b, _ := os.ReadFile(p)
			var offs []int
			for off := 0; off+2 <= len(b); off += 2 + (int(b[off])<<8 | int(b[off+1])) {
				offs = append(offs, off)
			}
			os.WriteFile(p, b[:offs[len(offs)-1]], 0o644)
			return nil
		})
		err := newMonitor(t, serve(t, bad), k, "", nil, &sink{}).Step(ctx)
		if !errors.Is(err, client.ErrVerification) || !strings.Contains(err.Error(), "holds 24 entries, want 25") {
			t.Fatalf("dropped entry: %v", err)
		}
	})

	t.Run("tile changed", func(t *testing.T) {
		// A monitor resuming from size 20 reads the tree's edge from the
		// tiles; a changed tile does not hash to the trusted root.
		stateDir := t.TempDir()
		lg, _ := client.NewTileLog(serve(t, dir), k.verifier, nil)
		st, _ := client.NewStateStore(stateDir, k.verifier, lg.ConsistencyProof)
		old, err := client.ParseCheckpoint(firstCP, k.verifier)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Update(ctx, old); err != nil {
			t.Fatal(err)
		}
		bad := copyDir(t, dir)
		filepath.Walk(filepath.Join(bad, "tile", "0"), func(p string, fi os.FileInfo, err error) error {
			if err == nil && !fi.IsDir() {
				b, _ := os.ReadFile(p)
				b[0] ^= 1
				os.WriteFile(p, b, 0o644)
			}
			return nil
		})
		s := &sink{}
		err = newMonitor(t, serve(t, bad), k, stateDir, nil, s).Step(ctx)
		if !errors.Is(err, client.ErrVerification) {
			t.Fatalf("changed tile: %v", err)
		}
		if len(s.alerts) != 0 && s.alerts[0].Type == monitor.AlertRule {
			t.Fatalf("alerted from a log that does not verify: %+v", s.alerts)
		}
		t.Log(err)
	})

	t.Run("split view", func(t *testing.T) {
		// A witness that has cosigned the forked log's checkpoint (same
		// size as the log's): the log showed the witness another tree.
		forkCP, _ := os.ReadFile(filepath.Join(forkDir, "checkpoint"))
		lg, _ := client.NewTileLog(serve(t, dir), k.verifier, nil)
		cp, err := lg.Checkpoint(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// Grow the fork to the log's size so the sizes match.
		if n := checkpointSize(forkDir); n < cp.Size {
			appendEntries(t, forkDir, k, mkLeaves(t, identityEvents(200)[100:100+int(cp.Size-n)]))
			forkCP, _ = os.ReadFile(filepath.Join(forkDir, "checkpoint"))
		}
		w := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/"+monitor.WitnessPath(origin) {
				http.NotFound(rw, r)
				return
			}
			rw.Write(forkCP)
		}))
		defer w.Close()
		s := &sink{}
		err = newMonitor(t, serve(t, dir), k, "", []string{w.URL}, s).Step(ctx)
		if !errors.Is(err, client.ErrVerification) || !strings.Contains(err.Error(), "split view") {
			t.Fatalf("split view: %v", err)
		}
		var split []monitor.Alert
		for _, a := range s.alerts {
			if a.Type == monitor.AlertSplitView {
				split = append(split, a)
			}
		}
		if len(split) != 1 || split[0].Witness != w.URL || !strings.Contains(split[0].Message, "two different trees of the same size") {
			t.Fatalf("split-view alerts: %+v", split)
		}
		// An honest witness (same checkpoint as the log): no alert.
		logCP, _ := os.ReadFile(filepath.Join(dir, "checkpoint"))
		forkCP = logCP
		s2 := &sink{}
		if err := newMonitor(t, serve(t, dir), k, "", []string{w.URL}, s2).Step(ctx); err != nil {
			t.Fatal(err)
		}
		for _, a := range s2.alerts {
			if a.Type != monitor.AlertRule {
				t.Fatalf("honest witness: %+v", a)
			}
		}
	})
}
