package monitor_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/monitor"
)

// TestChecks: the Checks hook runs after a step's entries verified, with
// the checkpoint they verified against; its alerts are emitted with the
// log's origin, and its error leaves the checkpoint untrusted.
func TestChecks(t *testing.T) {
	ctx := ctxT(t)
	k := newKey(t)
	dir := t.TempDir()
	appendEntries(t, dir, k, mkLeaves(t, identityEvents(3)))
	lg, err := client.NewTileLog(serve(t, dir), k.verifier, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := &sink{}
	fail := errors.New("snapshot unreadable")
	var sizes []uint64
	var checkErr error
	m, err := monitor.New(monitor.Config{Log: lg, Rules: &monitor.Rules{}, Alert: s.add,
		Checks: func(_ context.Context, cp *client.Checkpoint) ([]monitor.Alert, error) {
			sizes = append(sizes, cp.Size)
			if checkErr != nil {
				return nil, checkErr
			}
			return []monitor.Alert{{Type: monitor.AlertDrift, Rule: "changed_without_logged_event", Finding: map[string]string{"key": "k"}}}, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	checkErr = fail
	if err := m.Step(ctx); !errors.Is(err, fail) || m.Trusted() != nil || len(s.take()) != 0 {
		t.Fatalf("failing check: %v, trusted %v", err, m.Trusted())
	}
	checkErr = nil
	if err := m.Step(ctx); err != nil {
		t.Fatal(err)
	}
	as := s.take()
	if len(as) != 1 || as[0].Type != monitor.AlertDrift || as[0].Origin != origin || as[0].Time == "" || m.Trusted().Size != 3 {
		t.Fatalf("alerts %+v", as)
	}
	if len(sizes) != 2 || sizes[1] != 3 {
		t.Errorf("checks saw sizes %v", sizes)
	}
}
