// Package report builds a compliance evidence report for one audit period
// of a Stele log: what the log is (origin, key fingerprints, witnesses and
// the policy in force), the checkpoints of the period the reporter saw and
// who cosigned them, a consistency proof across the period, a full audit
// (package audit), per-source counts, source_seq gaps, admission delays,
// erasures with their reasons, and a controls section that maps each
// claim to the evidence above.
//
// The report is a Report value; its JSON encoding (the "twin") is the
// document of record. The HTML (RenderHTML) is rendered from the same
// value, self-contained (inline CSS and SVG, no scripts, no external
// assets), and shows the SHA-256 of the JSON twin. Seal signs the digests
// of the files of a report directory with an operator Ed25519 key as a
// C2SP signed note; VerifyDir checks it (see docs/auditor.md).
package report

import (
	"cmp"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	mproof "github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api/layout"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/sync/errgroup"

	"github.com/stele-dev/stele/audit"
	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/internal/cosig"
	"github.com/stele-dev/stele/leaf"
	"github.com/stele-dev/stele/payload"
)

// Version names the layout of Report; it changes when a field changes meaning.
const Version = "stele-report/v1"

// erasureSource is the source of the erasure events the server appends
// (server.ErasureSource; the report reads logs, it does not import the server).
const erasureSource = "stele/erasure"

// maxGapsListed bounds the gap ranges listed per source; counts cover all.
const maxGapsListed = 50

// ErasureFetcher returns the record of the erasure event at index (format
// "json": erased_index, reason, request_reference, erased_by, time), from a
// Stele server with reader credentials. The report checks the record
// against the leaf's payload commitment before it quotes it.
type ErasureFetcher func(ctx context.Context, index uint64) (salt, payload []byte, err error)

// Config says what to report on.
type Config struct {
	// LogURL is the root of the log's tlog-tiles HTTP API.
	LogURL string
	// VerifierKey is the log's signed-note verifier key (log.pub).
	VerifierKey string
	// PolicyText, if set, is the C2SP tlog-policy in force: its witnesses
	// are listed and the audit requires its quorum.
	PolicyText []byte
	// From and To bound the period [From, To) by admitted_time.
	From, To time.Time
	// Checkpoints are the signed checkpoints the reporter saw (e.g. a
	// directory `stele report --checkpoints` keeps). The log's latest
	// checkpoint is added to them.
	Checkpoints [][]byte
	// Erasures, if set, fetches erasure events' payloads for their reasons.
	Erasures ErasureFetcher
	// Payloads, if set, has the audit check every payload against its leaf.
	Payloads audit.PayloadFetcher
	// Drift, if set, is the output of `stele drift --json`: its findings
	// and baseline deviations are reported, with their receipts checked.
	Drift []byte
	// MonitorAlerts, if set, are the alerts `stele monitor` wrote (JSON
	// lines): those raised in the period are reported.
	MonitorAlerts []byte
	// HTTPClient reads the log; nil means http.DefaultClient.
	HTTPClient *http.Client
	// Workers is the number of parallel fetches (default 4).
	Workers int
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Report is the JSON twin: everything the HTML shows.
type Report struct {
	Version     string    `json:"version"`
	GeneratedAt time.Time `json:"generated_at"`
	Period      Period    `json:"period"`
	Log         LogInfo   `json:"log"`
	Witnesses   []Witness `json:"witnesses"`
	// Policy is the witness policy text in force ("" when none was given).
	Policy      string       `json:"policy"`
	Checkpoints []Checkpoint `json:"checkpoints"`
	// Rejected lists checkpoints the reporter had that did not verify.
	Rejected    []Rejected    `json:"rejected_checkpoints"`
	Consistency *Consistency  `json:"consistency"`
	Audit       *audit.Report `json:"audit"`
	// AuditError is set when the audit could not run to the end.
	AuditError string     `json:"audit_error,omitempty"`
	Entries    EntryStats `json:"entries"`
	Erasures   []Erasure  `json:"erasures"`
	// Drift and Monitor are the drift check and monitor alerts given to
	// the report; nil when none were.
	Drift   *DriftEvidence   `json:"drift,omitempty"`
	Monitor *MonitorEvidence `json:"monitor,omitempty"`
	// NotCovered says what this report does not show.
	NotCovered []string  `json:"not_covered"`
	Controls   []Control `json:"controls"`
	Reverify   []string  `json:"reverify_commands"`
}

// Period is the audit period, [From, To).
type Period struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
}

// LogInfo identifies the log.
type LogInfo struct {
	URL         string `json:"url"`
	Origin      string `json:"origin"`
	VerifierKey string `json:"verifier_key"`
	// KeyHash is the signed-note key ID (4 bytes, hex); KeySHA256 the
	// SHA-256 of the raw Ed25519 public key, hex.
	KeyHash   string `json:"key_hash"`
	KeySHA256 string `json:"key_sha256"`
	// LatestSize and LatestRoot are the log's checkpoint when the report
	// was made.
	LatestSize uint64 `json:"latest_size"`
	LatestRoot string `json:"latest_root"`
	// LatestCheckpoint is that checkpoint, as signed.
	LatestCheckpoint string `json:"latest_checkpoint"`
}

// Witness is a witness of the policy.
type Witness struct {
	Name      string `json:"name"`
	Key       string `json:"key"`
	KeyHash   string `json:"key_hash"`
	KeySHA256 string `json:"key_sha256"`
	URL       string `json:"url"`
	// Cosigned counts the period's checkpoints it cosigned; LastCosigned
	// is its latest cosignature's timestamp in the period.
	Cosigned     int        `json:"cosigned"`
	LastCosigned *time.Time `json:"last_cosigned,omitempty"`
}

// Checkpoint is a checkpoint of the period, verified.
type Checkpoint struct {
	Size uint64 `json:"size"`
	Root string `json:"root"`
	// Time is when the checkpoint existed by: its earliest verified
	// cosignature, or else its last entry's admitted_time.
	Time       time.Time   `json:"time"`
	TimeSource string      `json:"time_source"`
	Cosigners  []Cosigning `json:"cosigners"`
	// PolicyMet is whether its cosignatures meet the policy (nil: no policy).
	PolicyMet *bool  `json:"policy_met,omitempty"`
	Raw       string `json:"raw"`
}

// Cosigning is one verified cosignature of a checkpoint.
type Cosigning struct {
	Witness string    `json:"witness"`
	Time    time.Time `json:"time"`
	// LatencySeconds is from the checkpoint's last entry's admission to
	// the cosignature.
	LatencySeconds float64 `json:"latency_seconds"`
}

// Rejected is a checkpoint that did not verify.
type Rejected struct {
	Reason string `json:"reason"`
	Raw    string `json:"raw"`
}

// Consistency is the proof that the period's last checkpoint extends its first.
type Consistency struct {
	FromSize uint64 `json:"from_size"`
	FromRoot string `json:"from_root"`
	ToSize   uint64 `json:"to_size"`
	ToRoot   string `json:"to_root"`
	// ProofHashes is the number of hashes in the first→last proof.
	ProofHashes int `json:"proof_hashes"`
	// Steps are the proofs between consecutive checkpoints of the period,
	// and from the last to the log's latest.
	Steps    []Step `json:"steps"`
	Verified bool   `json:"verified"`
	Error    string `json:"error,omitempty"`
}

// Step is one consistency proof.
type Step struct {
	FromSize    uint64 `json:"from_size"`
	ToSize      uint64 `json:"to_size"`
	ProofHashes int    `json:"proof_hashes"`
	Verified    bool   `json:"verified"`
	Error       string `json:"error,omitempty"`
}

// EntryStats describes the entries admitted in the period.
type EntryStats struct {
	Count      uint64         `json:"count"`
	FirstIndex *uint64        `json:"first_index,omitempty"`
	LastIndex  *uint64        `json:"last_index,omitempty"`
	Sources    []SourceCount  `json:"sources"`
	PerDay     []DayCount     `json:"per_day"`
	Delay      DelayStats     `json:"admission_delay"`
	Kinds      map[string]int `json:"kinds"`
}

// SourceCount is one source's entries in the period.
type SourceCount struct {
	Source string `json:"source"`
	Count  uint64 `json:"count"`
	// Gaps counts the source_seq numbers missing between consecutive
	// entries of the source in the period; GapRanges lists some.
	Gaps      uint64     `json:"source_seq_gaps"`
	GapRanges []GapRange `json:"gap_ranges,omitempty"`
	FirstSeq  uint64     `json:"first_seq,omitempty"`
	LastSeq   uint64     `json:"last_seq,omitempty"`
}

// GapRange is a run of missing source_seq numbers, between two entries.
type GapRange struct {
	FirstMissing uint64 `json:"first_missing"`
	LastMissing  uint64 `json:"last_missing"`
	AfterIndex   uint64 `json:"after_index"`
	BeforeIndex  uint64 `json:"before_index"`
}

// DayCount is the entries admitted on one UTC day.
type DayCount struct {
	Day   string `json:"day"`
	Count uint64 `json:"count"`
}

// DelayStats is the distribution of admitted_time - event_time, in seconds.
type DelayStats struct {
	Count    int           `json:"count"`
	Min      float64       `json:"min_seconds"`
	P50      float64       `json:"p50_seconds"`
	P90      float64       `json:"p90_seconds"`
	P99      float64       `json:"p99_seconds"`
	Max      float64       `json:"max_seconds"`
	Buckets  []DelayBucket `json:"buckets"`
	Negative int           `json:"negative"`
}

// DelayBucket counts delays up to UpTo (exclusive of the previous bucket).
type DelayBucket struct {
	Label string `json:"label"`
	UpTo  string `json:"up_to"`
	Count int    `json:"count"`
}

// Erasure is an erasure event admitted in the period.
type Erasure struct {
	ErasureIndex uint64    `json:"erasure_index"`
	ErasedIndex  *uint64   `json:"erased_index,omitempty"`
	Admitted     time.Time `json:"admitted"`
	Reason       string    `json:"reason,omitempty"`
	Reference    string    `json:"request_reference,omitempty"`
	ErasedBy     string    `json:"erased_by,omitempty"`
	// Detail says why the reason is missing, when it is.
	Detail string `json:"detail,omitempty"`
}

// Build gathers the evidence and returns the report. Errors reading the log
// are returned; what the log fails (a bad proof, audit failures) is
// recorded in the report, which then says so in its controls.
func Build(ctx context.Context, cfg Config) (*Report, error) {
	if !cfg.To.After(cfg.From) {
		return nil, fmt.Errorf("the period is empty: --to (%s) must be after --from (%s)", cfg.To.Format(time.RFC3339), cfg.From.Format(time.RFC3339))
	}
	if cfg.Workers < 1 {
		cfg.Workers = 4
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	// log.pub: the Ed25519 key and, for a log that also signs with
	// ML-DSA-44, that key; a checkpoint signed by either passes.
	vkeys := strings.Fields(cfg.VerifierKey)
	v, err := client.NewLogVerifier(vkeys...)
	if err != nil {
		return nil, fmt.Errorf("log verifier key: %w", err)
	}
	tl, err := client.NewTileLog(cfg.LogURL, v, hc)
	if err != nil {
		return nil, err
	}
	r := &Report{Version: Version, GeneratedAt: cfg.Now().UTC().Truncate(time.Second),
		Period: Period{cfg.From.UTC(), cfg.To.UTC()}, Policy: string(cfg.PolicyText),
		Witnesses: []Witness{}, Checkpoints: []Checkpoint{}, Rejected: []Rejected{}, Erasures: []Erasure{}}
	r.Log, err = logInfo(cfg.LogURL, vkeys[0], v)
	if err != nil {
		return nil, err
	}
	var policy *client.Policy
	var wvs []cosig.Witness
	if len(cfg.PolicyText) > 0 {
		if policy, err = client.ParsePolicy(cfg.PolicyText); err != nil {
			return nil, err
		}
		if wvs, err = cosig.Witnesses(cfg.PolicyText); err != nil {
			return nil, err
		}
		for _, w := range wvs {
			r.Witnesses = append(r.Witnesses, Witness{Name: w.Name, Key: w.Key, KeyHash: w.KeyHash, KeySHA256: w.KeySHA256, URL: w.URL})
		}
	}

	latest, err := tl.Checkpoint(ctx)
	if err != nil {
		return nil, err
	}
	r.Log.LatestSize, r.Log.LatestRoot, r.Log.LatestCheckpoint = latest.Size, hex.EncodeToString(latest.Root[:]), string(latest.Raw)

	// The full audit, at the log's latest checkpoint.
	acfg := audit.Config{LogURL: cfg.LogURL, Verifier: v, Workers: cfg.Workers, Policy: policy, Payloads: cfg.Payloads, HTTPClient: cfg.HTTPClient}
	rep, _, aerr := audit.Run(ctx, acfg)
	r.Audit = rep
	if aerr != nil && !errors.Is(aerr, audit.ErrVerification) {
		r.AuditError = aerr.Error()
	}
	size := latest.Size
	if rep != nil && rep.Checkpoint != nil && rep.Checkpoint.Size > size {
		size = rep.Checkpoint.Size
	}

	leaves, err := readLeaves(ctx, tl, size, cfg.Workers)
	if err != nil {
		return nil, err
	}
	r.Entries = entryStats(leaves, r.Period)
	r.Erasures = erasures(ctx, leaves, r.Period, cfg.Erasures)

	// Checkpoints of the period: the reporter's, plus the latest.
	cps := map[string]*client.Checkpoint{}
	for _, raw := range append(slices.Clone(cfg.Checkpoints), latest.Raw) {
		cp, err := client.ParseCheckpoint(raw, v)
		if err != nil {
			r.Rejected = append(r.Rejected, Rejected{Reason: err.Error(), Raw: string(raw)})
			continue
		}
		if cp.Size > size {
			r.Rejected = append(r.Rejected, Rejected{Reason: fmt.Sprintf("size %d is larger than the log's latest checkpoint (%d)", cp.Size, size), Raw: string(raw)})
			continue
		}
		k := fmt.Sprintf("%d/%x", cp.Size, cp.Root)
		if prev, ok := cps[k]; !ok || len(cp.Note.Sigs) > len(prev.Note.Sigs) {
			cps[k] = cp
		}
	}
	var inPeriod []*client.Checkpoint
	for _, cp := range cps {
		c := checkpointInfo(cp, leaves, wvs, policy)
		if c.Time.Before(r.Period.From) || !c.Time.Before(r.Period.To) {
			continue
		}
		r.Checkpoints = append(r.Checkpoints, c)
		inPeriod = append(inPeriod, cp)
	}
	slices.SortFunc(r.Checkpoints, func(a, b Checkpoint) int { return cmp.Or(cmp.Compare(a.Size, b.Size), a.Time.Compare(b.Time)) })
	slices.SortFunc(inPeriod, func(a, b *client.Checkpoint) int { return cmp.Compare(a.Size, b.Size) })
	for i := range r.Witnesses {
		w := &r.Witnesses[i]
		for _, c := range r.Checkpoints {
			for _, s := range c.Cosigners {
				if s.Witness == w.Name {
					w.Cosigned++
					if w.LastCosigned == nil || s.Time.After(*w.LastCosigned) {
						t := s.Time
						w.LastCosigned = &t
					}
				}
			}
		}
	}
	if len(inPeriod) > 0 {
		r.Consistency = consistency(ctx, tl, inPeriod, latest)
	}
	pp := newPrefixProver(tl, latest)
	r.NotCovered = []string{}
	if cfg.Drift != nil {
		if r.Drift, err = driftEvidence(ctx, cfg.Drift, v, pp); err != nil {
			return nil, err
		}
	} else {
		r.NotCovered = append(r.NotCovered, "drift findings: no drift check was given to this report (stele drift --json, then stele report --drift FILE)")
	}
	if cfg.MonitorAlerts != nil {
		if r.Monitor, err = monitorEvidence(ctx, cfg.MonitorAlerts, r.Period, v, pp); err != nil {
			return nil, err
		}
		r.NotCovered = append(r.NotCovered, "that the monitor ran throughout the period: its alert stream shows what it raised, not that it was running")
	} else {
		r.NotCovered = append(r.NotCovered, "monitor alerts: no monitor alert stream was given to this report (stele monitor's output, then stele report --monitor-alerts FILE)")
	}
	// The report reads the log over HTTP; it cannot see whether the
	// storage under it refuses deletion.
	r.NotCovered = append(r.NotCovered, "that the log's storage refuses deletion (WORM retention): check it with stele retention-check on the aws backend (docs/security.md, WORM retention)")
	r.Reverify = reverify(r)
	r.Controls = controls(r)
	return r, nil
}

func logInfo(url, vkey string, v note.Verifier) (LogInfo, error) {
	h, s, err := cosig.KeyHashes(vkey)
	if err != nil {
		return LogInfo{}, err
	}
	return LogInfo{URL: url, Origin: v.Name(), VerifierKey: vkey, KeyHash: h, KeySHA256: s}, nil
}

// readLeaves reads and decodes every entry of the tree of size size. An
// entry that is not leaf v1 is nil (the audit reports it).
func readLeaves(ctx context.Context, tl *client.TileLog, size uint64, workers int) ([]*leaf.Leaf, error) {
	out := make([]*leaf.Leaf, size)
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(workers)
	bundles := (size + layout.EntryBundleWidth - 1) / layout.EntryBundleWidth
	for bi := range bundles {
		g.Go(func() error {
			es, err := tl.Bundle(ctx, bi, size)
			if err != nil {
				return err
			}
			for i, e := range es {
				if l, err := leaf.Unmarshal(e); err == nil {
					out[bi*layout.EntryBundleWidth+uint64(i)] = l
				}
			}
			return nil
		})
	}
	return out, g.Wait()
}

func in(p Period, t time.Time) bool { return !t.Before(p.From) && t.Before(p.To) }

var delayBuckets = []struct {
	label string
	upTo  time.Duration
}{
	{"< 1s", time.Second}, {"1–10s", 10 * time.Second}, {"10s–1m", time.Minute}, {"1–10m", 10 * time.Minute},
	{"10m–1h", time.Hour}, {"1–6h", 6 * time.Hour}, {"6–24h", 24 * time.Hour}, {"≥ 24h", 1<<63 - 1},
}

func entryStats(leaves []*leaf.Leaf, p Period) EntryStats {
	st := EntryStats{Sources: []SourceCount{}, PerDay: []DayCount{}, Kinds: map[string]int{}}
	type srcState struct {
		sc        *SourceCount
		last      uint64
		lastIndex uint64
	}
	srcs := map[string]*srcState{}
	days := map[string]uint64{}
	var delays []float64
	for i, l := range leaves {
		if l == nil || !in(p, l.AdmittedTime) {
			continue
		}
		idx := uint64(i)
		st.Count++
		if st.FirstIndex == nil {
			st.FirstIndex = &idx
		}
		last := idx
		st.LastIndex = &last
		st.Kinds[l.Kind]++
		days[l.AdmittedTime.UTC().Format(time.DateOnly)]++
		d := l.AdmittedTime.Sub(l.EventTime).Seconds()
		delays = append(delays, d)
		s := srcs[l.Source]
		if s == nil {
			s = &srcState{sc: &SourceCount{Source: l.Source}}
			srcs[l.Source] = s
		}
		s.sc.Count++
		if l.SourceSeq == 0 {
			continue
		}
		if s.sc.FirstSeq == 0 {
			s.sc.FirstSeq = l.SourceSeq
		} else if l.SourceSeq > s.last+1 {
			s.sc.Gaps += l.SourceSeq - s.last - 1
			if len(s.sc.GapRanges) < maxGapsListed {
				s.sc.GapRanges = append(s.sc.GapRanges, GapRange{s.last + 1, l.SourceSeq - 1, s.lastIndex, idx})
			}
		}
		if l.SourceSeq > s.last {
			s.last, s.lastIndex = l.SourceSeq, idx
			s.sc.LastSeq = l.SourceSeq
		}
	}
	for _, k := range slices.Sorted(mapsKeys(srcs)) {
		st.Sources = append(st.Sources, *srcs[k].sc)
	}
	// Every day of the period, also the empty ones (bounded: long periods
	// only list days with entries).
	start := p.From.UTC().Truncate(24 * time.Hour)
	if p.To.Sub(start) <= 400*24*time.Hour {
		for d := start; d.Before(p.To); d = d.Add(24 * time.Hour) {
			k := d.Format(time.DateOnly)
			st.PerDay = append(st.PerDay, DayCount{k, days[k]})
		}
	} else {
		for _, k := range slices.Sorted(mapsKeys(days)) {
			st.PerDay = append(st.PerDay, DayCount{k, days[k]})
		}
	}
	st.Delay = delayStats(delays)
	return st
}

func mapsKeys[M ~map[string]V, V any](m M) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func delayStats(ds []float64) DelayStats {
	st := DelayStats{Count: len(ds), Buckets: make([]DelayBucket, len(delayBuckets))}
	for i, b := range delayBuckets {
		st.Buckets[i].Label = b.label
		if b.upTo < 1<<62 {
			st.Buckets[i].UpTo = b.upTo.String()
		}
	}
	if len(ds) == 0 {
		return st
	}
	sort.Float64s(ds)
	q := func(p float64) float64 { return ds[min(len(ds)-1, int(p*float64(len(ds))))] }
	st.Min, st.P50, st.P90, st.P99, st.Max = ds[0], q(0.5), q(0.9), q(0.99), ds[len(ds)-1]
	for _, d := range ds {
		if d < 0 {
			st.Negative++
		}
		dd := time.Duration(d * float64(time.Second))
		for i, b := range delayBuckets {
			if dd < b.upTo {
				st.Buckets[i].Count++
				break
			}
		}
	}
	return st
}

// erasures lists the erasure events admitted in the period, with their
// reasons when fetch can read them (checked against the leaf's commitment).
func erasures(ctx context.Context, leaves []*leaf.Leaf, p Period, fetch ErasureFetcher) []Erasure {
	out := []Erasure{}
	for i, l := range leaves {
		if l == nil || l.Source != erasureSource || !in(p, l.AdmittedTime) {
			continue
		}
		e := Erasure{ErasureIndex: uint64(i), Admitted: l.AdmittedTime.UTC()}
		var n uint64
		if _, err := fmt.Sscanf(l.EventID, "erase/%d", &n); err == nil {
			e.ErasedIndex = &n
		}
		if fetch == nil {
			e.Detail = "reason not read: the report was made without a server to read erasure records from"
			out = append(out, e)
			continue
		}
		salt, pl, err := fetch(ctx, uint64(i))
		if err == nil {
			err = l.VerifyPayload(salt, pl)
		}
		var rec struct {
			ErasedIndex      uint64 `json:"erased_index"`
			Reason           string `json:"reason"`
			RequestReference string `json:"request_reference"`
			ErasedBy         string `json:"erased_by"`
		}
		if err == nil {
			err = decodeErasureRecord(pl, &rec)
		}
		if err != nil {
			e.Detail = "reason not read: " + err.Error()
		} else {
			e.Reason, e.Reference, e.ErasedBy = rec.Reason, rec.RequestReference, rec.ErasedBy
			e.ErasedIndex = &rec.ErasedIndex
		}
		out = append(out, e)
	}
	return out
}

// checkpointInfo describes cp: its cosignatures by the policy's witnesses
// and when it existed.
func checkpointInfo(cp *client.Checkpoint, leaves []*leaf.Leaf, wvs []cosig.Witness, policy *client.Policy) Checkpoint {
	c := Checkpoint{Size: cp.Size, Root: hex.EncodeToString(cp.Root[:]), Raw: string(cp.Raw), Cosigners: []Cosigning{}}
	var lastAdmitted time.Time
	if cp.Size > 0 && leaves[cp.Size-1] != nil {
		lastAdmitted = leaves[cp.Size-1].AdmittedTime.UTC()
	}
	for _, wv := range wvs {
		ts, ok := wv.Time(cp.Raw)
		if !ok {
			continue
		}
		cs := Cosigning{Witness: wv.Name, Time: ts}
		if !lastAdmitted.IsZero() {
			cs.LatencySeconds = ts.Sub(lastAdmitted).Seconds()
		}
		c.Cosigners = append(c.Cosigners, cs)
	}
	slices.SortFunc(c.Cosigners, func(a, b Cosigning) int { return a.Time.Compare(b.Time) })
	if len(c.Cosigners) > 0 {
		c.Time, c.TimeSource = c.Cosigners[0].Time, "earliest cosignature"
	} else {
		c.Time, c.TimeSource = lastAdmitted, "admitted_time of its last entry"
	}
	if policy != nil {
		met := policy.Check(cp) == nil
		c.PolicyMet = &met
	}
	return c
}

// consistency proves each checkpoint of the period consistent with the
// next, the last with the log's latest, and the first with the last.
func consistency(ctx context.Context, tl *client.TileLog, cps []*client.Checkpoint, latest *client.Checkpoint) *Consistency {
	first, last := cps[0], cps[len(cps)-1]
	c := &Consistency{FromSize: first.Size, FromRoot: hex.EncodeToString(first.Root[:]), ToSize: last.Size, ToRoot: hex.EncodeToString(last.Root[:]), Steps: []Step{}}
	prove := func(a, b *client.Checkpoint) (int, error) {
		if a.Size == 0 {
			return 0, nil
		}
		p, err := tl.ConsistencyProof(ctx, a.Size, b.Size)
		if err != nil {
			return 0, err
		}
		return len(p), mproof.VerifyConsistency(rfc6962.DefaultHasher, a.Size, b.Size, p, a.Root[:], b.Root[:])
	}
	n, err := prove(first, last)
	c.ProofHashes = n
	c.Verified = err == nil
	if err != nil {
		c.Error = err.Error()
	}
	chain := append(slices.Clone(cps), latest)
	for i := 1; i < len(chain); i++ {
		a, b := chain[i-1], chain[i]
		if a.Size == b.Size && a.Root == b.Root {
			continue
		}
		n, err := prove(a, b)
		s := Step{FromSize: a.Size, ToSize: b.Size, ProofHashes: n, Verified: err == nil}
		if err != nil {
			s.Error = err.Error()
			c.Verified = false
		}
		c.Steps = append(c.Steps, s)
	}
	return c
}

func decodeErasureRecord(payloadBytes []byte, rec any) error {
	p, err := payload.Unmarshal(payloadBytes)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(p.Record, rec); err != nil {
		return fmt.Errorf("erasure record is not the JSON the server writes: %v", err)
	}
	return nil
}

// JSON is the twin: the report's indented JSON encoding, as written to
// report.json and digested by Seal.
func (r *Report) JSON() ([]byte, error) {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}
