package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/stele-dev/stele/drift"
	"github.com/stele-dev/stele/leaf"
	"github.com/stele-dev/stele/ledger"
	"github.com/stele-dev/stele/state"
)

// Exit statuses of stele drift.
const (
	// ExitDrift: a mismatch (other than not yet propagated) or a baseline
	// deviation was found.
	ExitDrift = 4
	// ExitPropagating: the only mismatches are changes logged so
	// recently that the tenant may not show them yet; run again later.
	ExitPropagating = 5
)

// eventRef is a ledger event a finding points at, with its proof.
type eventRef struct {
	Index     uint64        `json:"index"`
	Source    string        `json:"source"`
	Kind      string        `json:"kind"`
	EventID   string        `json:"event_id"`
	EventTime string        `json:"event_time"`
	Proof     *ledger.Proof `json:"proof"`
}

type driftFinding struct {
	drift.Finding
	LastEvents []eventRef `json:"last_events"`
}

type deviation struct {
	drift.Deviation
	Caused []eventRef `json:"caused_by"`
}

type driftOutput struct {
	Origin     string         `json:"origin"`
	Checkpoint treeHead       `json:"checkpoint"`
	Tenant     string         `json:"tenant,omitempty"`
	TakenAt    string         `json:"snapshot_taken_at,omitempty"`
	Findings   []driftFinding `json:"findings"`
	Deviations []deviation    `json:"deviations"`
	Compared   []string       `json:"compared"`
}

func cmdDrift(e *env, args []string) error {
	fs := newFlags("drift")
	lf := addLedgerFlags(fs)
	snapDir := fs.String("snapshot", "", "Graph snapshot directory (snapshot.json and the collection responses; see docs/state.md)")
	baselinePath := fs.String("baseline", "", "baseline.json: report every deviation from it (in the ledger's state, and in the snapshot's)")
	tenant := fs.String("tenant", "", "with --baseline and no --snapshot: only this tenant")
	propagation := fs.Duration("propagation", drift.DefaultPropagation, "a logged change this recent (before the snapshot's time) may not show in the tenant yet")
	asJSON := fs.Bool("json", false, "write JSON")
	if err := parseNoArgs(e, fs, args); err != nil {
		return err
	}
	if *snapDir == "" && *baselinePath == "" {
		return usagef("--snapshot DIR or --baseline FILE (or both) is required")
	}
	if *propagation < 0 {
		return usagef("--propagation must not be negative")
	}
	var snap *drift.Snapshot
	if *snapDir != "" {
		var err error
		if snap, err = drift.ReadSnapshot(*snapDir); err != nil {
			return usagef("%v", err)
		}
		*tenant = snap.Tenant
	}
	var bl *drift.Baseline
	if *baselinePath != "" {
		b, err := os.ReadFile(*baselinePath)
		if err != nil {
			return err
		}
		if bl, err = drift.ParseBaseline(b); err != nil {
			return usagef("%s: %v", *baselinePath, err)
		}
	}
	ctx, r, cp, done, err := lf.open()
	if err != nil {
		return err
	}
	defer done()
	st, _, err := replayLog(ctx, r, cp, cp.Size)
	if err != nil {
		return ledgerError(err)
	}
	prover, err := ledger.NewProver(ctx, r.Log, cp)
	if err != nil {
		return logError(err)
	}
	rep := &driftReport{st: st, snap: snap, bl: bl, tenant: *tenant, propagation: *propagation, now: time.Now()}
	out, err := rep.run(ctx, prover)
	if err != nil {
		return ledgerError(err)
	}
	if *asJSON {
		if err := writeJSON(e, out); err != nil {
			return err
		}
	} else {
		writeDriftText(e.stdout, out)
	}
	return driftExit(out)
}

// driftExit is the exit status for a report.
func driftExit(out *driftOutput) error {
	if len(out.Deviations) > 0 || slices.ContainsFunc(out.Findings, func(f driftFinding) bool { return f.Verdict != drift.NotYetPropagated }) {
		return exitError{ExitDrift, fmt.Errorf("%d mismatches with the tenant, %d baseline deviations", len(out.Findings), len(out.Deviations))}
	}
	if len(out.Findings) > 0 {
		return exitError{ExitPropagating, fmt.Errorf("%d logged changes not yet propagated to the tenant", len(out.Findings))}
	}
	return nil
}

// driftReport computes findings and deviations for a replayed state.
type driftReport struct {
	st          *state.State
	snap        *drift.Snapshot
	bl          *drift.Baseline
	tenant      string
	propagation time.Duration
	now         time.Time
}

func (d *driftReport) run(ctx context.Context, prover *ledger.Prover) (*driftOutput, error) {
	cp := prover.Checkpoint()
	out := &driftOutput{Origin: cp.Origin, Checkpoint: head(cp.Size, cp.Root), Tenant: d.tenant, Findings: []driftFinding{}, Deviations: []deviation{}, Compared: []string{}}
	refs := map[uint64]eventRef{}
	resolve := func(idx []uint64) ([]eventRef, error) {
		var rs []eventRef
		for _, i := range idx {
			ref, ok := refs[i]
			if !ok {
				p, err := prover.Prove(ctx, i, nil)
				if err != nil {
					return nil, err
				}
				ref = eventRef{Index: i, Proof: p}
				if l, err := leaf.Unmarshal(p.Leaf); err == nil {
					ref.Source, ref.Kind, ref.EventID, ref.EventTime = l.Source, l.Kind, l.EventID, l.EventTime.UTC().Format(time.RFC3339Nano)
				}
				refs[i] = ref
			}
			rs = append(rs, ref)
		}
		return rs, nil
	}
	at := d.now
	if d.snap != nil {
		at = d.snap.TakenAt
		out.TakenAt = at.UTC().Format(time.RFC3339)
		for c := range d.snap.Compared {
			out.Compared = append(out.Compared, c)
		}
		slices.Sort(out.Compared)
		for _, f := range drift.Compare(d.st, d.snap, d.propagation) {
			evs, err := resolve(f.Events)
			if err != nil {
				return nil, err
			}
			out.Findings = append(out.Findings, driftFinding{f, evs})
		}
	}
	if d.bl != nil {
		names := d.names()
		devs := d.bl.Check("ledger", d.st.Current(d.tenant, at), at, names)
		if d.snap != nil {
			var live []*state.Fact
			for _, f := range d.snap.Facts {
				live = append(live, f)
			}
			devs = append(devs, d.bl.Check("tenant", live, at, names)...)
		}
		for _, dv := range devs {
			evs, err := resolve(dv.Events)
			if err != nil {
				return nil, err
			}
			out.Deviations = append(out.Deviations, deviation{dv, evs})
		}
	}
	return out, nil
}

// names maps a principal id to the logins the ledger and the snapshot know
// for it.
func (d *driftReport) names() func(tenant, id string) []string {
	logins := map[string][]string{}
	add := func(f *state.Fact, login string) {
		if login != "" && !slices.Contains(logins[f.Tenant+"\x00"+f.Subject], login) {
			logins[f.Tenant+"\x00"+f.Subject] = append(logins[f.Tenant+"\x00"+f.Subject], login)
		}
	}
	for _, f := range d.st.Facts() {
		add(f, f.Attr("login"))
		add(f, f.Attr("assignee_login"))
	}
	if d.snap != nil {
		for _, f := range d.snap.Facts {
			add(f, f.Attr("login"))
		}
	}
	return func(tenant, id string) []string { return logins[tenant+"\x00"+id] }
}

func writeDriftText(w io.Writer, out *driftOutput) {
	fmt.Fprintf(w, "ledger: %s at size %d (root %s)\n", out.Origin, out.Checkpoint.Size, out.Checkpoint.Root)
	if out.TakenAt != "" {
		fmt.Fprintf(w, "tenant: %s snapshot taken %s; compared: %s\n", out.Tenant, out.TakenAt, strings.Join(out.Compared, ", "))
	}
	for _, f := range out.Findings {
		what := f.Side
		if f.Field != "" {
			what += " " + f.Field
		}
		fmt.Fprintf(w, "DRIFT %s: %s %s (%s): ledger %s, tenant %s\n", f.Verdict, f.Type, f.Key, what, f.Ledger, f.Live)
		writeRefs(w, f.LastEvents)
	}
	for _, d := range out.Deviations {
		fmt.Fprintf(w, "BASELINE %s (%s): %s\n", d.Rule, d.Source, d.Message)
		writeRefs(w, d.Caused)
	}
	fmt.Fprintf(w, "%d mismatches, %d baseline deviations\n", len(out.Findings), len(out.Deviations))
}

func writeRefs(w io.Writer, refs []eventRef) {
	for _, r := range refs {
		fmt.Fprintf(w, "  event %d %s %s %s (inclusion proven at size %d)\n", r.Index, r.EventTime, r.Kind, r.EventID, r.Proof.TreeSize)
	}
}
