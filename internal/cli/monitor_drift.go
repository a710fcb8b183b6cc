package cli

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/drift"
	"github.com/stele-dev/stele/ledger"
	"github.com/stele-dev/stele/monitor"
	"github.com/stele-dev/stele/state"
)

// driftFollower keeps the ledger's identity state up to date as the
// monitor follows the log, and after each step compares it with the
// snapshot directory and the baseline (both re-read every step, so a job
// that refreshes the snapshot needs no restart). A finding is alerted
// once: again only when it changes (another verdict, a newer event).
type driftFollower struct {
	reader       *ledger.Reader
	snapDir      string
	baselinePath string
	propagation  time.Duration
	st           *state.State
	next         uint64
	alerted      map[string]bool
}

func newDriftFollower(r *ledger.Reader, snapDir, baselinePath string, propagation time.Duration) (*driftFollower, error) {
	f := &driftFollower{reader: r, snapDir: snapDir, baselinePath: baselinePath, propagation: propagation, st: state.New(), alerted: map[string]bool{}}
	// Fail at start on files that do not parse, not at the first step.
	if _, _, err := f.load(); err != nil {
		return nil, usagef("%v", err)
	}
	return f, nil
}

func (f *driftFollower) load() (*drift.Snapshot, *drift.Baseline, error) {
	var snap *drift.Snapshot
	var bl *drift.Baseline
	var err error
	if f.snapDir != "" {
		if snap, err = drift.ReadSnapshot(f.snapDir); err != nil {
			return nil, nil, err
		}
	}
	if f.baselinePath != "" {
		b, err := os.ReadFile(f.baselinePath)
		if err != nil {
			return nil, nil, err
		}
		if bl, err = drift.ParseBaseline(b); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", f.baselinePath, err)
		}
	}
	return snap, bl, nil
}

// check is a monitor.Config.Checks.
func (f *driftFollower) check(ctx context.Context, cp *client.Checkpoint) ([]monitor.Alert, error) {
	if cp.Size > f.next {
		// Replay into a copy-on-failure: a walk that fails verification
		// must not leave half a range applied.
		pending := []*ledger.Entry{}
		if _, err := f.reader.Walk(ctx, cp, f.next, cp.Size, func(en *ledger.Entry) error {
			pending = append(pending, en)
			return nil
		}); err != nil {
			return nil, err
		}
		for _, en := range pending {
			applyEntry(f.st, en)
		}
		f.next = cp.Size
	}
	snap, bl, err := f.load()
	if err != nil {
		return nil, err
	}
	prover, err := ledger.NewProver(ctx, f.reader.Log, cp)
	if err != nil {
		return nil, err
	}
	tenant := ""
	if snap != nil {
		tenant = snap.Tenant
	}
	rep := &driftReport{st: f.st, snap: snap, bl: bl, tenant: tenant, propagation: f.propagation, now: time.Now()}
	out, err := rep.run(ctx, prover)
	if err != nil {
		return nil, err
	}
	var alerts []monitor.Alert
	add := func(typ, rule, severity, id, msg string, refs []eventRef, finding any) {
		if f.alerted[id] {
			return
		}
		f.alerted[id] = true
		a := monitor.Alert{Type: typ, Rule: rule, Severity: severity, Message: msg, Finding: finding,
			Checkpoint: &monitor.Head{Size: cp.Size, Root: out.Checkpoint.Root}}
		if n := len(refs); n > 0 {
			last := refs[n-1]
			i := last.Index
			a.Index, a.Inclusion, a.Receipt = &i, last.Proof.Inclusion, last.Proof.Receipt
		}
		alerts = append(alerts, a)
	}
	for _, fd := range out.Findings {
		sev := "high"
		if fd.Verdict == drift.NotYetPropagated {
			sev = "low"
		}
		what := fd.Side
		if fd.Field != "" {
			what += " " + fd.Field
		}
		add(monitor.AlertDrift, fd.Verdict, sev, "drift\x00"+fd.ID(),
			fmt.Sprintf("%s %s (%s): ledger %s, tenant %s", fd.Type, fd.Key, what, fd.Ledger, fd.Live), fd.LastEvents, fd)
	}
	for _, d := range out.Deviations {
		add(monitor.AlertBaseline, d.Rule, "high", "baseline\x00"+d.ID(), d.Message+" ("+d.Source+")", d.Caused, d)
	}
	return alerts, nil
}
