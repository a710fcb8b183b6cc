package monitor

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/transparency-dev/formats/proof"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api/layout"
	tclient "github.com/transparency-dev/tessera/client"

	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/leaf"
)

// Alert types.
const (
	AlertRule      = "rule"       // an alert rule fired on an entry
	AlertFork      = "fork"       // the log's checkpoint does not extend the trusted one
	AlertRollback  = "rollback"   // the log's checkpoint is older than the trusted one
	AlertSplitView = "split_view" // a witness has seen a checkpoint the log's does not agree with
	AlertBadEntry  = "bad_entry"  // an entry is not a leaf v1
	// AlertWitnessPolicy: the log's checkpoint lacks the cosignatures the
	// witness policy requires; it is not trusted.
	AlertWitnessPolicy = "witness_policy"
	// AlertDrift: the ledger's identity state and the tenant's differ;
	// AlertBaseline: a baseline rule does not hold (Config.Checks).
	AlertDrift    = "drift"
	AlertBaseline = "baseline"
)

// Alert is one line of the monitor's output.
type Alert struct {
	Type        string `json:"type"`
	Time        string `json:"time"`
	Origin      string `json:"origin"`
	Rule        string `json:"rule,omitempty"`
	Severity    string `json:"severity,omitempty"`
	Description string `json:"description,omitempty"`
	Message     string `json:"message,omitempty"`

	Index *uint64   `json:"index,omitempty"`
	Leaf  *LeafJSON `json:"leaf,omitempty"`
	// Count and FirstIndex: for counting rules.
	Count      int     `json:"count,omitempty"`
	FirstIndex *uint64 `json:"first_index,omitempty"`
	// Checkpoint is the checkpoint the inclusion proof leads to.
	Checkpoint *Head    `json:"checkpoint,omitempty"`
	Inclusion  []string `json:"inclusion,omitempty"`
	// Receipt is the entry's C2SP tlog-proof with the leaf as extra data,
	// the format of `stele receipt`: `stele verify` checks it offline.
	Receipt string `json:"receipt,omitempty"`
	// Event is the entry's normalised view, when the rule needed it (it
	// holds personal data: the monitor had reader credentials).
	Event map[string]any `json:"event,omitempty"`
	// FieldsChecked is set for rules with field conditions: false means
	// the rule fired on kind and source alone (FieldsError says why).
	FieldsChecked *bool  `json:"fields_checked,omitempty"`
	FieldsError   string `json:"fields_error,omitempty"`

	// For fork, rollback and split_view.
	Trusted           *Head  `json:"trusted,omitempty"`
	Seen              *Head  `json:"seen,omitempty"`
	Witness           string `json:"witness,omitempty"`
	WitnessCheckpoint string `json:"witness_checkpoint,omitempty"`
	LogCheckpoint     string `json:"log_checkpoint,omitempty"`

	// Finding is the drift finding or baseline deviation, for drift and
	// baseline alerts.
	Finding any `json:"finding,omitempty"`
}

// Head is a tree size and root.
type Head struct {
	Size uint64 `json:"size"`
	Root string `json:"root"`
}

func head(size uint64, root [32]byte) *Head { return &Head{size, hex.EncodeToString(root[:])} }

// LeafJSON is the public part of an entry: its leaf v1 fields.
type LeafJSON struct {
	Source        string `json:"source"`
	SourceSeq     uint64 `json:"source_seq"`
	EventID       string `json:"event_id"`
	Kind          string `json:"kind"`
	EventTime     string `json:"event_time"`
	AdmittedTime  string `json:"admitted_time"`
	PayloadDigest string `json:"payload_digest"`
	PayloadSize   uint32 `json:"payload_size"`
}

func leafJSON(l *leaf.Leaf) *LeafJSON {
	return &LeafJSON{Source: l.Source, SourceSeq: l.SourceSeq, EventID: l.EventID, Kind: l.Kind,
		EventTime: l.EventTime.UTC().Format(time.RFC3339Nano), AdmittedTime: l.AdmittedTime.UTC().Format(time.RFC3339Nano),
		PayloadDigest: hex.EncodeToString(l.PayloadDigest[:]), PayloadSize: l.PayloadSize}
}

// Config configures a Monitor.
type Config struct {
	Log *client.TileLog
	// State keeps the trusted checkpoint between runs; the monitor
	// resumes reading entries after it. Nil: in memory, from entry 0.
	State *client.StateStore
	Rules *Rules
	// Events, when set, returns the normalised view of the event at an
	// entry (see View; nil for an erased payload), for rules with field
	// conditions. l is the entry's leaf as the monitor verified it: the
	// payload must be checked against it (leaf.VerifyPayload), or a
	// lying server could hide an event from the rules. It needs reader
	// credentials on the log's server.
	Events func(ctx context.Context, index uint64, l *leaf.Leaf) (map[string]any, error)
	// Policy, when set, is a witness policy every checkpoint must meet
	// before it is trusted.
	Policy *client.Policy
	// Checks, when set, runs once a step's new entries have verified and
	// their rule alerts are out, with the checkpoint they verified
	// against; the alerts it returns (drift, baseline) are emitted before
	// the checkpoint is trusted.
	Checks func(ctx context.Context, cp *client.Checkpoint) ([]Alert, error)
	// Witnesses are witness base URLs serving the C2SP monitoring path
	// GET <url>/<hex sha256(origin)>/checkpoint.
	Witnesses []string
	// Alert receives every alert, in order. Required.
	Alert func(Alert) error
	// Warn receives problems that are not alerts (an unreachable witness).
	Warn       func(string)
	HTTPClient *http.Client
	// Now is the clock for alert times (default time.Now).
	Now func() time.Time
}

// Monitor follows one log.
type Monitor struct {
	cfg     Config
	eng     *Engine
	trusted *client.Checkpoint
	// reported suppresses repeating the same checkpoint alert every poll.
	reported map[string]bool
}

// New returns a monitor, loading the trusted state if there is one.
func New(cfg Config) (*Monitor, error) {
	if cfg.Log == nil || cfg.Alert == nil {
		return nil, errors.New("monitor: a log and an alert sink are required")
	}
	if cfg.Rules == nil {
		cfg.Rules = &Rules{}
	}
	if cfg.Warn == nil {
		cfg.Warn = func(string) {}
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	m := &Monitor{cfg: cfg, eng: NewEngine(cfg.Rules), reported: map[string]bool{}}
	if cfg.State != nil {
		t, err := cfg.State.Trusted()
		if err != nil {
			return nil, err
		}
		m.trusted = t
	}
	return m, nil
}

// Trusted is the latest checkpoint the monitor verified and processed.
func (m *Monitor) Trusted() *client.Checkpoint { return m.trusted }

// Run calls Step every interval until ctx ends. Errors of one step are
// passed to Warn (alerts have been emitted already) and the next step
// tries again.
func (m *Monitor) Run(ctx context.Context, interval time.Duration) error {
	for {
		if err := m.Step(ctx); err != nil && ctx.Err() == nil {
			m.cfg.Warn(err.Error())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
	}
}

// Step fetches the log's checkpoint, proves it consistent with the trusted
// one, compares it with each witness, reads the new entries (checking that
// they hash to the checkpoint's root) and evaluates the rules on them, then
// trusts the checkpoint. An error wrapping client.ErrVerification means a
// fork, rollback, split view or entries that do not match the checkpoint;
// the alert for it has been emitted and the trusted state is unchanged.
func (m *Monitor) Step(ctx context.Context) error {
	lg := m.cfg.Log
	cp, err := lg.Checkpoint(ctx)
	if err != nil {
		return fmt.Errorf("log checkpoint: %w", err)
	}
	if m.cfg.Policy != nil {
		if err := m.cfg.Policy.Check(cp); err != nil {
			m.once(Alert{Type: AlertWitnessPolicy, Origin: cp.Origin, Severity: "high", Message: err.Error(),
				Seen: head(cp.Size, cp.Root), LogCheckpoint: string(cp.Raw)})
			return fmt.Errorf("%w: %v", client.ErrVerification, err)
		}
	}
	if m.trusted != nil {
		if err := client.CheckConsistent(ctx, m.trusted, cp, lg.ConsistencyProof); err != nil {
			var fe *client.ForkError
			var re *client.RollbackError
			switch {
			case errors.As(err, &re):
				m.once(Alert{Type: AlertRollback, Origin: cp.Origin, Severity: "critical", Message: err.Error(),
					Trusted: head(re.TrustedSize, re.TrustedRoot), Seen: head(re.SeenSize, re.SeenRoot), LogCheckpoint: string(cp.Raw)})
			case errors.As(err, &fe):
				m.once(Alert{Type: AlertFork, Origin: cp.Origin, Severity: "critical", Message: err.Error(),
					Trusted: head(fe.TrustedSize, fe.TrustedRoot), Seen: head(fe.SeenSize, fe.SeenRoot), LogCheckpoint: string(cp.Raw)})
			}
			return err
		}
	}
	var splitErr error
	for _, w := range m.cfg.Witnesses {
		if err := m.checkWitness(ctx, w, cp); err != nil && splitErr == nil {
			splitErr = err
		}
	}
	from := uint64(0)
	if m.trusted != nil {
		from = m.trusted.Size
	}
	if err := m.entries(ctx, cp, from); err != nil {
		return err
	}
	if m.cfg.Checks != nil {
		as, err := m.cfg.Checks(ctx, cp)
		if err != nil {
			return err
		}
		for _, a := range as {
			a.Origin = cp.Origin
			m.emit(a)
		}
	}
	if m.cfg.State != nil {
		if _, err := m.cfg.State.Update(ctx, cp); err != nil {
			return err
		}
	}
	m.trusted = cp
	return splitErr
}

// once emits a checkpoint-level alert unless the same one was emitted
// before by this monitor.
func (m *Monitor) once(a Alert) {
	key := a.Type + "\x00" + a.Witness + "\x00" + a.LogCheckpoint + "\x00" + a.WitnessCheckpoint
	if m.reported[key] {
		return
	}
	m.reported[key] = true
	m.emit(a)
}

func (m *Monitor) emit(a Alert) {
	a.Time = m.cfg.Now().UTC().Format(time.RFC3339Nano)
	if err := m.cfg.Alert(a); err != nil {
		m.cfg.Warn(fmt.Sprintf("delivering a %s alert: %v", a.Type, err))
	}
}

// WitnessPath is the C2SP monitoring path of a log's checkpoint on a witness.
func WitnessPath(origin string) string {
	h := sha256.Sum256([]byte(origin))
	return hex.EncodeToString(h[:]) + "/checkpoint"
}

// checkWitness compares the log's checkpoint with the one a witness serves.
func (m *Monitor) checkWitness(ctx context.Context, base string, cp *client.Checkpoint) error {
	u := strings.TrimSuffix(base, "/") + "/" + WitnessPath(cp.Origin)
	raw, err := getURL(ctx, m.cfg.HTTPClient, u)
	if errors.Is(err, os.ErrNotExist) {
		m.cfg.Warn(fmt.Sprintf("witness %s has no checkpoint of %s yet", base, cp.Origin))
		return nil
	}
	if err != nil {
		m.cfg.Warn(fmt.Sprintf("witness %s: %v", base, err))
		return nil
	}
	wcp, err := client.ParseCheckpoint(raw, m.cfg.Log.Verifier())
	if err != nil {
		// Not signed by the log: the witness is broken or not this
		// log's; either way it proves nothing about the log.
		m.cfg.Warn(fmt.Sprintf("witness %s serves a checkpoint that does not verify with the log's key: %v", base, err))
		return nil
	}
	split := func(msg string) error {
		m.once(Alert{Type: AlertSplitView, Origin: cp.Origin, Severity: "critical", Witness: base, Message: msg,
			Seen: head(cp.Size, cp.Root), Trusted: head(wcp.Size, wcp.Root),
			LogCheckpoint: string(cp.Raw), WitnessCheckpoint: string(raw)})
		return fmt.Errorf("%w: split view: %s", client.ErrVerification, msg)
	}
	switch {
	case wcp.Size == cp.Size:
		if wcp.Root != cp.Root {
			return split(fmt.Sprintf("witness %s has root %x at size %d, the log shows root %x: the log signed two different trees of the same size", base, wcp.Root, wcp.Size, cp.Root))
		}
	case wcp.Size < cp.Size:
		if err := client.CheckConsistent(ctx, wcp, cp, m.cfg.Log.ConsistencyProof); err != nil {
			var ue *client.UnreachableError
			if errors.As(err, &ue) {
				return err
			}
			return split(fmt.Sprintf("witness %s has size %d (root %x), which the log's checkpoint (size %d, root %x) does not extend: %v", base, wcp.Size, wcp.Root, cp.Size, cp.Root, err))
		}
	default:
		// The witness is ahead: normal for a moment (the log has it
		// cosigned before it publishes it). Its tiles should already
		// prove the step.
		err := client.CheckConsistent(ctx, cp, wcp, m.cfg.Log.ConsistencyProof)
		var fe *client.ForkError
		if errors.As(err, &fe) && fe.Err != nil && strings.Contains(fe.Err.Error(), "no consistency proof") {
			m.cfg.Warn(fmt.Sprintf("witness %s is ahead of the log (size %d > %d) and the log cannot prove it yet", base, wcp.Size, cp.Size))
			return nil
		}
		if errors.As(err, &fe) {
			return split(fmt.Sprintf("witness %s has size %d (root %x), which does not extend the log's checkpoint (size %d, root %x): %v", base, wcp.Size, wcp.Root, cp.Size, cp.Root, err))
		}
	}
	return nil
}

func getURL(ctx context.Context, hc *http.Client, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, &client.UnreachableError{URL: u, Err: err}
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(http.MaxBytesReader(nil, resp.Body, 1<<20)); err != nil {
		return nil, &client.UnreachableError{URL: u, Err: err}
	}
	switch resp.StatusCode {
	case http.StatusOK:
		return buf.Bytes(), nil
	case http.StatusNotFound:
		return nil, os.ErrNotExist
	}
	return nil, &client.UnreachableError{URL: u, Err: fmt.Errorf("HTTP status %s", resp.Status)}
}

// entries reads entries [from, cp.Size), checks that together with the
// trusted tree they hash to cp's root, and evaluates the rules. Alerts for
// a batch are emitted only once the whole range has verified.
func (m *Monitor) entries(ctx context.Context, cp *client.Checkpoint, from uint64) error {
	if from >= cp.Size {
		return nil
	}
	lg := m.cfg.Log
	rf := &compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	rng := rf.NewEmptyRange(0)
	if from > 0 {
		nodes, err := tclient.FetchRangeNodes(ctx, from, lg.ReadTile)
		if err != nil {
			return fmt.Errorf("reading the tree at size %d: %w", from, err)
		}
		if rng, err = rf.NewRange(0, from, nodes); err != nil {
			return fmt.Errorf("%w: the log's tiles do not make a tree of size %d: %v", client.ErrVerification, from, err)
		}
		if root, err := rng.GetRootHash(nil); err != nil || !bytes.Equal(root, m.trusted.Root[:]) {
			return fmt.Errorf("%w: the log's tiles at size %d do not hash to the trusted root %x", client.ErrVerification, from, m.trusted.Root)
		}
	}
	type pending struct {
		index uint64
		bytes []byte
		leaf  *leaf.Leaf
		err   error
	}
	var ps []pending
	for bi := from / layout.EntryBundleWidth; bi*layout.EntryBundleWidth < cp.Size; bi++ {
		es, err := lg.Bundle(ctx, bi, cp.Size)
		if err != nil {
			return fmt.Errorf("entry bundle %d: %w", bi, err)
		}
		for j, e := range es {
			i := bi*layout.EntryBundleWidth + uint64(j)
			if i < from {
				continue
			}
			if err := rng.Append(rfc6962.DefaultHasher.HashLeaf(e), nil); err != nil {
				return err
			}
			l, perr := leaf.Unmarshal(e)
			ps = append(ps, pending{i, e, l, perr})
		}
	}
	root, err := rng.GetRootHash(nil)
	if err != nil {
		return err
	}
	if !bytes.Equal(root, cp.Root[:]) {
		return fmt.Errorf("%w: entries %d..%d do not hash to the checkpoint's root: they give %x, the checkpoint (size %d) says %x", client.ErrVerification, from, cp.Size-1, root, cp.Size, cp.Root)
	}
	var pb *tclient.ProofBuilder
	for _, p := range ps {
		if p.err != nil {
			i := p.index
			m.emit(Alert{Type: AlertBadEntry, Origin: cp.Origin, Severity: "high", Index: &i, Message: fmt.Sprintf("entry %d is not a leaf v1: %v", i, p.err)})
			continue
		}
		var view EventView
		var viewed map[string]any
		if m.cfg.Events != nil {
			view = func() (map[string]any, error) {
				v, err := m.cfg.Events(ctx, p.index, p.leaf)
				viewed = v
				return v, err
			}
		}
		ms := m.eng.EvalWith(p.index, p.leaf, view)
		if len(ms) == 0 {
			continue
		}
		if pb == nil {
			if pb, err = tclient.NewProofBuilder(ctx, cp.Size, lg.ReadTile); err != nil {
				return err
			}
		}
		incl, err := pb.InclusionProof(ctx, p.index)
		if err != nil {
			return fmt.Errorf("inclusion proof of entry %d: %w", p.index, err)
		}
		hs := make([][32]byte, len(incl))
		hexes := make([]string, len(incl))
		for k, h := range incl {
			if len(h) != 32 {
				return fmt.Errorf("inclusion proof of entry %d: a hash of %d bytes", p.index, len(h))
			}
			hs[k], hexes[k] = [32]byte(h), hex.EncodeToString(h)
		}
		if err := client.VerifyInclusion(cp, p.index, p.bytes, hs); err != nil {
			return fmt.Errorf("%w: %v", client.ErrVerification, err)
		}
		receipt := (&proof.TLogProof{Index: p.index, Hashes: hs, Checkpoint: cp.Raw, ExtraData: p.bytes}).Marshal()
		for _, mt := range ms {
			i := p.index
			a := Alert{Type: AlertRule, Origin: cp.Origin, Rule: mt.Rule.Name, Severity: mt.Rule.Severity, Description: mt.Rule.Description,
				Index: &i, Leaf: leafJSON(p.leaf), Checkpoint: head(cp.Size, cp.Root), Inclusion: hexes, Receipt: string(receipt)}
			if len(mt.Rule.Fields) > 0 {
				checked := mt.FieldsChecked
				a.FieldsChecked, a.FieldsError, a.Event = &checked, mt.FieldsError, viewed
			}
			if mt.Count > 0 {
				fi := mt.FirstIndex
				a.Count, a.FirstIndex = mt.Count, &fi
				a.Message = fmt.Sprintf("%d %s events from %s within %s", mt.Count, p.leaf.Kind, p.leaf.Source, time.Duration(mt.Rule.Window))
			} else {
				a.Message = fmt.Sprintf("%s from %s (event %s)", p.leaf.Kind, p.leaf.Source, p.leaf.EventID)
			}
			m.emit(a)
		}
	}
	return nil
}

// JSONLines returns an Alert sink writing one JSON object per line.
func JSONLines(w interface{ Write([]byte) (int, error) }) func(Alert) error {
	return func(a Alert) error {
		b, err := json.Marshal(a)
		if err != nil {
			return err
		}
		_, err = w.Write(append(b, '\n'))
		return err
	}
}

// Webhook returns an Alert sink POSTing each alert as JSON to url. A
// delivery that fails is retried once.
func Webhook(hc *http.Client, url string) func(Alert) error {
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	return func(a Alert) error {
		b, err := json.Marshal(a)
		if err != nil {
			return err
		}
		for try := 0; ; try++ {
			resp, err := hc.Post(url, "application/json", bytes.NewReader(b))
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode/100 == 2 {
					return nil
				}
				err = fmt.Errorf("webhook %s answered %s", url, resp.Status)
			}
			if try == 1 {
				return err
			}
			time.Sleep(time.Second)
		}
	}
}
