package report

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	mproof "github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/drift"
	"github.com/stele-dev/stele/ledger"
	"github.com/stele-dev/stele/monitor"
)

// maxAlertsListed bounds the monitor alerts listed; counts cover all.
const maxAlertsListed = 200

// DriftEvidence is a drift check (`stele drift --json`) given to the
// report, with what the report verified of it.
type DriftEvidence struct {
	// SHA256 is the digest of the file as given.
	SHA256 string `json:"sha256"`
	Origin string `json:"origin"`
	// Size and Root are the log tree the check replayed.
	Size uint64 `json:"size"`
	Root string `json:"root"`
	// TreeVerified: the log's tree of Size has Root (proven consistent
	// with the log's latest checkpoint); TreeError says why not.
	TreeVerified bool     `json:"tree_verified"`
	TreeError    string   `json:"tree_error,omitempty"`
	Tenant       string   `json:"tenant,omitempty"`
	TakenAt      string   `json:"snapshot_taken_at,omitempty"`
	Compared     []string `json:"compared"`
	// Mismatches counts findings other than not yet propagated;
	// Propagating the rest.
	Mismatches  int         `json:"mismatches"`
	Propagating int         `json:"not_yet_propagated"`
	Findings    []DriftItem `json:"findings"`
	Deviations  []DriftItem `json:"baseline_deviations"`
}

// DriftItem is one drift finding or baseline deviation, with the ledger
// events it cites.
type DriftItem struct {
	// What is the verdict (findings) or the rule (deviations).
	What   string          `json:"what"`
	Text   string          `json:"text"`
	Events []EventEvidence `json:"events"`
}

// EventEvidence is a log entry a finding cites, with its receipt checked.
type EventEvidence struct {
	Index   uint64 `json:"index"`
	Source  string `json:"source,omitempty"`
	Kind    string `json:"kind,omitempty"`
	EventID string `json:"event_id,omitempty"`
	// Verified: the receipt's checkpoint is signed by the log's key and
	// proven consistent with its latest, and its inclusion proof leads
	// from the entry's leaf to that checkpoint's root.
	Verified       bool   `json:"receipt_verified"`
	Error          string `json:"error,omitempty"`
	CheckpointSize uint64 `json:"checkpoint_size,omitempty"`
}

// MonitorEvidence is the alert stream `stele monitor` wrote (JSON lines),
// given to the report; the alerts raised in the period are listed.
type MonitorEvidence struct {
	SHA256 string `json:"sha256"`
	// Alerts is how many the file holds; InPeriod how many were raised in
	// the period.
	Alerts   int `json:"alerts"`
	InPeriod int `json:"in_period"`
	// Integrity counts the period's alerts that say the log misbehaved
	// (fork, rollback, split view, an entry that is not a leaf v1, a
	// checkpoint short of the witness policy).
	Integrity  int            `json:"integrity_alerts"`
	ByType     map[string]int `json:"by_type"`
	BySeverity map[string]int `json:"by_severity"`
	// Unverified counts the period's alerts whose cited entry's receipt
	// did not verify (alerts without a receipt are not counted).
	Unverified int            `json:"unverified_receipts"`
	Listed     []MonitorAlert `json:"listed"`
}

// MonitorAlert is one alert of the period. The event view a monitor with
// reader credentials attaches is left out: the report holds no payloads.
type MonitorAlert struct {
	Type     string         `json:"type"`
	Time     time.Time      `json:"time"`
	Rule     string         `json:"rule,omitempty"`
	Severity string         `json:"severity,omitempty"`
	Message  string         `json:"message,omitempty"`
	Event    *EventEvidence `json:"event,omitempty"`
}

// integrityAlerts are the monitor's alert types about the log itself.
var integrityAlerts = []string{monitor.AlertFork, monitor.AlertRollback, monitor.AlertSplitView, monitor.AlertBadEntry, monitor.AlertWitnessPolicy}

// prefixProver proves trees of the log prefixes of its latest checkpoint,
// remembering what it proved.
type prefixProver struct {
	tl     *client.TileLog
	latest *client.Checkpoint
	done   map[string]error
}

func newPrefixProver(tl *client.TileLog, latest *client.Checkpoint) *prefixProver {
	return &prefixProver{tl: tl, latest: latest, done: map[string]error{}}
}

// prove checks that the log's tree of size has root.
func (p *prefixProver) prove(ctx context.Context, size uint64, root [32]byte) error {
	k := fmt.Sprintf("%d/%x", size, root)
	if err, ok := p.done[k]; ok {
		return err
	}
	var err error
	switch {
	case size > p.latest.Size:
		err = fmt.Errorf("size %d is beyond the log's latest checkpoint (%d)", size, p.latest.Size)
	case size == 0:
		if !bytes.Equal(root[:], rfc6962.DefaultHasher.EmptyRoot()) {
			err = errors.New("the empty tree's root is wrong")
		}
	case size == p.latest.Size:
		if root != p.latest.Root {
			err = fmt.Errorf("root %x differs from the log's %x at size %d: a fork", root, p.latest.Root, size)
		}
	default:
		var proof [][]byte
		if proof, err = p.tl.ConsistencyProof(ctx, size, p.latest.Size); err == nil {
			if err = mproof.VerifyConsistency(rfc6962.DefaultHasher, size, p.latest.Size, proof, root[:], p.latest.Root[:]); err != nil {
				err = fmt.Errorf("the log's tree of size %d does not have root %x: %v", size, root, err)
			}
		}
	}
	p.done[k] = err
	return err
}

// receipt checks a receipt an outside tool wrote for entry index.
func (p *prefixProver) receipt(ctx context.Context, v note.Verifier, index uint64, receipt string) EventEvidence {
	ev := EventEvidence{Index: index}
	if receipt == "" {
		ev.Error = "no receipt given"
		return ev
	}
	r, err := client.VerifyReceipt([]byte(receipt), v)
	if err == nil && r.Index != index {
		err = fmt.Errorf("the receipt is for entry %d", r.Index)
	}
	if err == nil {
		ev.CheckpointSize = r.Checkpoint.Size
		ev.Source, ev.Kind, ev.EventID = r.Leaf.Source, r.Leaf.Kind, r.Leaf.EventID
		err = p.prove(ctx, r.Checkpoint.Size, r.Checkpoint.Root)
	}
	if err != nil {
		ev.Error = err.Error()
	} else {
		ev.Verified = true
	}
	return ev
}

// driftFile is the output of `stele drift --json`.
type driftFile struct {
	Origin     string `json:"origin"`
	Checkpoint struct {
		Size uint64 `json:"size"`
		Root string `json:"root"`
	} `json:"checkpoint"`
	Tenant   string `json:"tenant"`
	TakenAt  string `json:"snapshot_taken_at"`
	Findings []struct {
		drift.Finding
		LastEvents []driftRef `json:"last_events"`
	} `json:"findings"`
	Deviations []struct {
		drift.Deviation
		Caused []driftRef `json:"caused_by"`
	} `json:"deviations"`
	Compared []string `json:"compared"`
}

type driftRef struct {
	Index     uint64        `json:"index"`
	Source    string        `json:"source"`
	Kind      string        `json:"kind"`
	EventID   string        `json:"event_id"`
	EventTime string        `json:"event_time"`
	Proof     *ledger.Proof `json:"proof"`
}

// parseDrift reads a `stele drift --json` output of the log origin.
func parseDrift(b []byte, origin string) (*driftFile, error) {
	var f driftFile
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("drift: not the output of `stele drift --json`: %v", err)
	}
	if dec.More() {
		return nil, errors.New("drift: not the output of `stele drift --json`: more than one JSON value")
	}
	if f.Origin == "" || f.Findings == nil || f.Deviations == nil {
		return nil, errors.New("drift: not the output of `stele drift --json` (no origin, findings or deviations)")
	}
	if f.Origin != origin {
		return nil, fmt.Errorf("drift: the check is of log %q, this report of %q", f.Origin, origin)
	}
	return &f, nil
}

// driftEvidence reads and checks a `stele drift --json` output.
func driftEvidence(ctx context.Context, b []byte, v note.Verifier, pp *prefixProver) (*DriftEvidence, error) {
	f, err := parseDrift(b, v.Name())
	if err != nil {
		return nil, err
	}
	d := &DriftEvidence{SHA256: Digest(b), Origin: f.Origin, Size: f.Checkpoint.Size, Root: f.Checkpoint.Root, Tenant: f.Tenant, TakenAt: f.TakenAt,
		Compared: append([]string{}, f.Compared...), Findings: []DriftItem{}, Deviations: []DriftItem{}}
	root, err := hex.DecodeString(f.Checkpoint.Root)
	if err == nil && len(root) != 32 {
		err = errors.New("not 32 bytes")
	}
	if err != nil {
		d.TreeError = fmt.Sprintf("root %q is not a SHA-256 hash in hex: %v", f.Checkpoint.Root, err)
	} else if err := pp.prove(ctx, f.Checkpoint.Size, [32]byte(root)); err != nil {
		d.TreeError = err.Error()
	} else {
		d.TreeVerified = true
	}
	refs := func(rs []driftRef) []EventEvidence {
		out := []EventEvidence{}
		for _, r := range rs {
			receipt := ""
			if r.Proof != nil {
				receipt = r.Proof.Receipt
			}
			out = append(out, pp.receipt(ctx, v, r.Index, receipt))
		}
		return out
	}
	for _, x := range f.Findings {
		what := x.Side
		if x.Field != "" {
			what += " " + x.Field
		}
		d.Findings = append(d.Findings, DriftItem{What: x.Verdict,
			Text:   fmt.Sprintf("%s %s (%s): ledger %s, tenant %s", x.Type, x.Key, what, x.Ledger, x.Live),
			Events: refs(x.LastEvents)})
		if x.Verdict == drift.NotYetPropagated {
			d.Propagating++
		} else {
			d.Mismatches++
		}
	}
	for _, x := range f.Deviations {
		d.Deviations = append(d.Deviations, DriftItem{What: x.Rule, Text: fmt.Sprintf("(%s) %s", x.Source, x.Message), Events: refs(x.Caused)})
	}
	return d, nil
}

// alertLine is one alert of a monitor's output, with its time parsed.
type alertLine struct {
	monitor.Alert
	t time.Time
}

// parseAlerts reads the JSON lines `stele monitor` writes for the log
// origin; blank lines are skipped.
func parseAlerts(b []byte, origin string) ([]alertLine, error) {
	var out []alertLine
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var a monitor.Alert
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&a); err != nil {
			return nil, fmt.Errorf("monitor alerts, line %d: not an alert `stele monitor` writes: %v", n, err)
		}
		if dec.More() {
			return nil, fmt.Errorf("monitor alerts, line %d: not an alert `stele monitor` writes: more than one JSON value", n)
		}
		t, err := time.Parse(time.RFC3339Nano, a.Time)
		if a.Type == "" || err != nil {
			return nil, fmt.Errorf("monitor alerts, line %d: an alert needs a type and an RFC 3339 time (got %q, %q)", n, a.Type, a.Time)
		}
		if a.Origin != "" && a.Origin != origin {
			return nil, fmt.Errorf("monitor alerts, line %d: an alert of log %q, this report is of %q", n, a.Origin, origin)
		}
		out = append(out, alertLine{a, t})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("monitor alerts: %v", err)
	}
	return out, nil
}

// monitorEvidence reads the monitor's alert lines and lists those raised
// in the period p.
func monitorEvidence(ctx context.Context, b []byte, p Period, v note.Verifier, pp *prefixProver) (*MonitorEvidence, error) {
	alerts, err := parseAlerts(b, v.Name())
	if err != nil {
		return nil, err
	}
	m := &MonitorEvidence{SHA256: Digest(b), Alerts: len(alerts), ByType: map[string]int{}, BySeverity: map[string]int{}, Listed: []MonitorAlert{}}
	for _, a := range alerts {
		if !in(p, a.t) {
			continue
		}
		m.InPeriod++
		m.ByType[a.Type]++
		if a.Severity != "" {
			m.BySeverity[a.Severity]++
		}
		if slices.Contains(integrityAlerts, a.Type) {
			m.Integrity++
		}
		ma := MonitorAlert{Type: a.Type, Time: a.t.UTC(), Rule: a.Rule, Severity: a.Severity, Message: firstNonEmpty(a.Message, a.Description)}
		switch {
		case a.Index != nil && a.Receipt != "":
			ev := pp.receipt(ctx, v, *a.Index, a.Receipt)
			if !ev.Verified {
				m.Unverified++
			}
			ma.Event = &ev
		case a.Index != nil:
			// A bad_entry alert: the entry has no leaf v1 to prove.
			ma.Event = &EventEvidence{Index: *a.Index, Error: "the alert carries no receipt"}
		}
		if len(m.Listed) < maxAlertsListed {
			m.Listed = append(m.Listed, ma)
		}
	}
	return m, nil
}
