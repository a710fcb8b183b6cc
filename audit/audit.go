// Package audit reads a whole Stele log over the C2SP tlog-tiles HTTP API and
// checks it: the checkpoint's signature, every entry bundle against the
// level-0 tiles, the root of the tree against the checkpoint, that every
// leaf is leaf v1, and, per source, sequence gaps and regressions,
// duplicates of (source, event_id) and time anomalies.
//
// An audit can be resumed: State holds the verified position (tree size,
// root and compact range) plus what the content checks need to carry on,
// and the next Run only reads the new entries, after proving the old
// checkpoint consistent with the new one.
package audit

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/transparency-dev/merkle/compact"
	mproof "github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api/layout"
	tclient "github.com/transparency-dev/tessera/client"
	"golang.org/x/mod/sumdb/note"

	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/leaf"
)

// Default thresholds of the time checks.
const (
	DefaultMaxEventAhead       = time.Hour
	DefaultMaxAdmittedBackstep = 5 * time.Minute
)

// maxPresize bounds the entries the (source, event_id) set is sized for
// up front.
const maxPresize = 1 << 20

// maxListed bounds how many failures and findings a report lists; the
// counts always cover all of them.
const maxListed = 100000

// Config says what to audit and how.
type Config struct {
	// LogURL is the root of the log's tlog-tiles HTTP API.
	LogURL string
	// Verifier checks the checkpoint's log signature; its name is the origin.
	Verifier note.Verifier
	// Workers is the number of parallel fetches (default 4).
	Workers int
	// HTTPClient is used for every request; nil means a client tuned for
	// Workers parallel keep-alive connections.
	HTTPClient *http.Client
	// State is where the last audit stopped; nil audits from the start.
	State *State
	// Policy, if set, is a witness policy the checkpoint's cosignatures
	// must satisfy; otherwise the audit fails with FailWitnesses.
	Policy *client.Policy
	// MaxEventAhead: an event_time later than its admitted_time by more
	// than this is a finding (default DefaultMaxEventAhead).
	MaxEventAhead time.Duration
	// MaxAdmittedBackstep: an admitted_time earlier than the previous
	// entry's by more than this is a finding (default DefaultMaxAdmittedBackstep).
	MaxAdmittedBackstep time.Duration
	// Progress, if set, is called from time to time with the entries read
	// so far and the number to read.
	Progress func(read, total uint64, elapsed time.Duration)
	// ProgressEvery is the least time between two Progress calls (default 2s).
	ProgressEvery time.Duration
	// Payloads, if set, fetches the payload behind every entry read (from
	// a Stele server, with reader credentials) and the audit checks it
	// against the leaf's salted commitment; see PayloadFetcher.
	Payloads PayloadFetcher
}

// PayloadFetcher returns what the log's operator holds behind the entry at
// index. The audit trusts nothing it returns: a payload must match the
// commitment in the leaf the audit read from the tiles, and an erased one
// must name an erasure event that is in the log and names this entry.
type PayloadFetcher func(ctx context.Context, index uint64) (*StoredPayload, error)

// StoredPayload is a payload as its server holds it.
type StoredPayload struct {
	// Salt and Payload are the committed bytes; empty when Erased.
	Salt, Payload []byte
	// Erased is set when the payload was erased; ErasureIndex is then the
	// index of the erasure event the tombstone names.
	Erased       bool
	ErasureIndex uint64
}

// Report is the outcome of an audit; it is what `stele audit` writes as JSON.
type Report struct {
	Log        string          `json:"log"`
	Checkpoint *CheckpointInfo `json:"checkpoint,omitempty"`
	// Previous is the checkpoint the audit resumed from, if any.
	Previous *CheckpointInfo `json:"previous,omitempty"`
	// Verified is true when every entry and tile matched and the root is
	// the checkpoint's.
	Verified bool `json:"verified"`
	// EntriesRead counts the entries read by this run (not earlier runs).
	EntriesRead   uint64    `json:"entries_read"`
	BundlesRead   uint64    `json:"bundles_read"`
	Seconds       float64   `json:"seconds"`
	EntriesPerSec float64   `json:"entries_per_second"`
	FailureCount  int       `json:"failure_count"`
	Failures      []Failure `json:"failures"`
	FindingCount  int       `json:"finding_count"`
	Findings      []Finding `json:"findings"`
	// Sources holds per-source totals over the whole log (this run and
	// the runs it resumed from).
	Sources map[string]*SourceStats `json:"sources"`
	// Erased lists the entries this run saw erasure events for: their
	// payloads were erased on purpose (the leaves and proofs are intact).
	Erased []Erasure `json:"erased"`
	// PayloadsChecked counts the payloads fetched and found to match their
	// leaves; PayloadsErased the entries whose server holds a tombstone
	// (only when Config.Payloads is set).
	PayloadsChecked uint64 `json:"payloads_checked,omitempty"`
	PayloadsErased  uint64 `json:"payloads_erased,omitempty"`
}

// Erasure is an erasure event seen in the log.
type Erasure struct {
	// Index is the erased entry; ErasureIndex the erasure event's entry.
	Index        uint64 `json:"index"`
	ErasureIndex uint64 `json:"erasure_index"`
}

// OK reports whether the log verified and nothing was found.
func (r *Report) OK() bool {
	return r.Verified && r.FailureCount == 0 && r.FindingCount == 0
}

// CheckpointInfo describes a verified checkpoint.
type CheckpointInfo struct {
	Origin string `json:"origin"`
	Size   uint64 `json:"size"`
	Root   []byte `json:"root"`
	Raw    string `json:"raw,omitempty"`
}

// erasureSource is the source of the erasure events the server appends.
const erasureSource = "stele/erasure"

// Failure kinds: the log does not verify.
const (
	FailCheckpoint  = "checkpoint"   // cannot fetch or verify the checkpoint
	FailRollback    = "rollback"     // the log is smaller than the audited size
	FailConsistency = "consistency"  // new checkpoint not consistent with the audited one
	FailFetch       = "fetch"        // a tile or bundle cannot be read
	FailBundle      = "entry_bundle" // an entry bundle is malformed or has the wrong number of entries
	FailTile        = "tile"         // a level-0 tile is malformed
	FailLeafHash    = "leaf_hash"    // an entry's hash differs from its level-0 tile
	FailRoot        = "root"         // the entries' root differs from the checkpoint's
	FailState       = "state"        // the saved state is not consistent with itself
	FailWitnesses   = "witnesses"    // the checkpoint lacks the witness policy's quorum
)

// Finding kinds: the log verifies, its content is suspicious.
const (
	FindNotLeafV1        = "not_leaf_v1"
	FindSeqGap           = "source_seq_gap"
	FindSeqRegression    = "source_seq_regression"
	FindDuplicate        = "duplicate_event"
	FindBadErasure       = "bad_erasure_event" // an erasure event that names no earlier entry
	FindEventAhead       = "event_time_after_admitted"
	FindAdmittedBackward = "admitted_time_backwards"
	// With Config.Payloads: the payload does not match the leaf's
	// commitment, cannot be fetched, or is erased without an erasure
	// event in the log that names it.
	FindPayloadMismatch    = "payload_mismatch"
	FindPayloadUnavailable = "payload_unavailable"
	FindErasedWithoutEvent = "erased_without_event"
)

// Failure is a verification failure.
type Failure struct {
	Kind     string  `json:"kind"`
	Index    *uint64 `json:"index,omitempty"`
	Resource string  `json:"resource,omitempty"`
	Message  string  `json:"message"`
}

// Finding is a content anomaly in a log that verifies.
type Finding struct {
	Kind   string `json:"kind"`
	Index  uint64 `json:"index"`
	Source string `json:"source,omitempty"`
	// Other is the other entry involved: the earlier duplicate, the
	// previous entry in the sequence or in admission order.
	Other   *uint64 `json:"other_index,omitempty"`
	Message string  `json:"message"`
}

// SourceStats are per-source totals.
type SourceStats struct {
	Count         uint64 `json:"count"`
	Gaps          uint64 `json:"source_seq_gaps"`
	Regressions   uint64 `json:"source_seq_regressions"`
	Duplicates    uint64 `json:"duplicates"`
	TimeAnomalies uint64 `json:"time_anomalies"`
	// LastSeq is the last non-zero source_seq seen, at LastSeqIndex.
	LastSeq      uint64 `json:"last_seq,omitempty"`
	LastSeqIndex uint64 `json:"last_seq_index,omitempty"`
}

// Error is returned by Run when the log does not verify; the report lists
// every failure.
var ErrVerification = errors.New("log verification failed")

func u64(v uint64) *uint64 { return &v }

type tileKey struct{ level, index uint64 }

type auditor struct {
	// upper holds the hashes this run computed for the tiles above
	// level 0, by tile, then position in the tile.
	upper   map[tileKey]map[uint64][]byte
	cfg     Config
	fetcher *tclient.HTTPFetcher
	rd      *reader // tiles and entry bundles, into reused buffers
	rep     *Report
	st      *State
	ahead   int64
	back    int64
	// claims are the tombstones seen by the payload check: erased entry
	// -> the erasure event's index the tombstone names.
	claims map[uint64]uint64
}

func (a *auditor) fail(kind string, index *uint64, resource, format string, args ...any) {
	a.rep.FailureCount++
	if len(a.rep.Failures) < maxListed {
		a.rep.Failures = append(a.rep.Failures, Failure{Kind: kind, Index: index, Resource: resource, Message: fmt.Sprintf(format, args...)})
	}
}

func (a *auditor) find(f Finding) {
	a.rep.FindingCount++
	if len(a.rep.Findings) < maxListed {
		a.rep.Findings = append(a.rep.Findings, f)
	}
}

// Run audits the log. It returns the report and the new state. The error is
// ErrVerification (wrapped) when the log does not verify, another error when
// the audit could not be carried out; the report is never nil and the state
// is nil unless the log verified (findings do not prevent a new state).
func Run(ctx context.Context, cfg Config) (*Report, *State, error) {
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	if cfg.MaxEventAhead == 0 {
		cfg.MaxEventAhead = DefaultMaxEventAhead
	}
	if cfg.MaxAdmittedBackstep == 0 {
		cfg.MaxAdmittedBackstep = DefaultMaxAdmittedBackstep
	}
	if cfg.ProgressEvery == 0 {
		cfg.ProgressEvery = 2 * time.Second
	}
	rep := &Report{Log: cfg.LogURL, Failures: []Failure{}, Findings: []Finding{}, Sources: map[string]*SourceStats{}}
	if cfg.Verifier == nil {
		return rep, nil, errors.New("audit: no log verifier")
	}
	u, err := url.Parse(cfg.LogURL)
	if err != nil {
		return rep, nil, fmt.Errorf("audit: log URL: %v", err)
	}
	hc := cfg.HTTPClient
	if hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 2 * cfg.Workers
		// Entry bundles are mostly digests and compress poorly; asking
		// for gzip costs the server more CPU than it saves bandwidth.
		tr.DisableCompression = true
		hc = &http.Client{Transport: tr, Timeout: 2 * time.Minute}
	}
	f, err := tclient.NewHTTPFetcher(u, hc)
	if err != nil {
		return rep, nil, err
	}
	a := &auditor{cfg: cfg, fetcher: f, rd: &reader{root: u, hc: hc}, rep: rep, ahead: int64(cfg.MaxEventAhead), back: int64(cfg.MaxAdmittedBackstep)}
	start := time.Now()
	st, err := a.run(ctx)
	rep.Seconds = time.Since(start).Seconds()
	if rep.Seconds > 0 {
		rep.EntriesPerSec = float64(rep.EntriesRead) / rep.Seconds
	}
	if err != nil {
		return rep, nil, err
	}
	if rep.FailureCount > 0 {
		return rep, nil, fmt.Errorf("%w: %d failure(s), first: %s", ErrVerification, rep.FailureCount, rep.Failures[0].Message)
	}
	rep.Verified = true
	return rep, st, nil
}

func (a *auditor) run(ctx context.Context) (*State, error) {
	rf := &compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	raw, err := a.fetcher.ReadCheckpoint(ctx)
	if err != nil {
		a.fail(FailCheckpoint, nil, layout.CheckpointPath, "fetching the checkpoint: %v", err)
		return nil, nil
	}
	cp, err := client.ParseCheckpoint(raw, a.cfg.Verifier)
	if err != nil {
		a.fail(FailCheckpoint, nil, layout.CheckpointPath, "%v", err)
		return nil, nil
	}
	a.rep.Checkpoint = &CheckpointInfo{Origin: cp.Origin, Size: cp.Size, Root: cp.Root[:], Raw: string(raw)}
	if a.cfg.Policy != nil {
		if err := a.cfg.Policy.Check(cp); err != nil {
			a.fail(FailWitnesses, nil, layout.CheckpointPath, "%v", err)
			return nil, nil
		}
	}

	// Where to start: from scratch, or from the saved state once the new
	// checkpoint is proven consistent with it.
	st := a.cfg.State
	var rng *compact.Range
	if st == nil {
		st = newState(cp.Origin)
		rng = rf.NewEmptyRange(0)
	} else {
		if st.Origin != cp.Origin {
			return nil, fmt.Errorf("audit: the state is for log %q, this log is %q", st.Origin, cp.Origin)
		}
		a.rep.Previous = &CheckpointInfo{Origin: st.Origin, Size: st.Size, Root: st.Root}
		rng, err = rf.NewRange(0, st.Size, st.Range)
		if err != nil {
			a.fail(FailState, nil, "", "the saved compact range does not fit size %d: %v", st.Size, err)
			return nil, nil
		}
		if root, err := rng.GetRootHash(nil); st.Size > 0 && (err != nil || !bytes.Equal(root, st.Root)) {
			a.fail(FailState, nil, "", "the saved compact range does not hash to the saved root %x", st.Root)
			return nil, nil
		}
		if !a.consistent(ctx, st, cp) {
			return nil, nil
		}
		if st.dedup == nil {
			st.dedup = map[[16]byte]uint64{}
		}
		for k, v := range st.Sources {
			c := *v
			a.rep.Sources[k] = &c
		}
	}
	from, size := st.Size, cp.Size
	a.claims = map[uint64]uint64{}
	if size > from {
		// Room for the entries to read, up to a bound (the size is the
		// log's claim): growing a large set step by step costs more
		// than the checks that fill it.
		n := int(min(size-from, maxPresize))
		if len(st.dedup) == 0 {
			st.dedup = make(map[[16]byte]uint64, n)
		}
		st.dedupOrder = slices.Grow(st.dedupOrder, n)
	}
	a.process(ctx, rf, rng, st, from, size)
	if a.rep.FailureCount > 0 {
		return nil, nil
	}
	a.checkClaims(size)
	if a.upperTiles(ctx, size); a.rep.FailureCount > 0 {
		return nil, nil
	}
	root, err := rng.GetRootHash(nil)
	if size == 0 {
		root, err = rfc6962.DefaultHasher.EmptyRoot(), nil
	}
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(root, cp.Root[:]) {
		a.fail(FailRoot, nil, layout.CheckpointPath, "the %d entries hash to root %x, the checkpoint says %x", size, root, cp.Root)
		return nil, nil
	}
	st.Size, st.Root, st.Range = size, cp.Root[:], rng.Hashes()
	st.Sources = a.rep.Sources
	return st, nil
}

// consistent checks that the checkpoint cp extends the audited tree in st.
func (a *auditor) consistent(ctx context.Context, st *State, cp *client.Checkpoint) bool {
	switch {
	case cp.Size < st.Size:
		a.fail(FailRollback, nil, layout.CheckpointPath, "rollback: the log's checkpoint has size %d (root %x) but size %d (root %x) was already audited", cp.Size, cp.Root, st.Size, st.Root)
		return false
	case cp.Size == st.Size:
		if !bytes.Equal(cp.Root[:], st.Root) {
			a.fail(FailConsistency, nil, layout.CheckpointPath, "fork: the log's checkpoint has root %x at size %d, the audited root at that size is %x", cp.Root, cp.Size, st.Root)
			return false
		}
		return true
	case st.Size == 0:
		return true
	}
	pb, err := tclient.NewProofBuilder(ctx, cp.Size, a.fetcher.ReadTile)
	if err == nil {
		var p [][]byte
		p, err = pb.ConsistencyProof(ctx, st.Size, cp.Size)
		if err == nil {
			err = mproof.VerifyConsistency(rfc6962.DefaultHasher, st.Size, cp.Size, p, st.Root, cp.Root[:])
		}
	}
	if err != nil {
		a.fail(FailConsistency, nil, layout.CheckpointPath, "the log's checkpoint (size %d, root %x) is not consistent with the audited one (size %d, root %x): %s", cp.Size, cp.Root, st.Size, st.Root, strings.Join(strings.Fields(err.Error()), " "))
		return false
	}
	return true
}

// bundleResult is what a worker makes of one entry bundle and its tile.
type bundleResult struct {
	first  uint64 // index of the first entry looked at
	fails  []Failure
	abort  bool // structural failure: stop the audit
	sub    *compact.Range
	leaves []*leaf.Leaf // nil where the entry is not leaf v1
	bad    []error
	keys   [][16]byte
	n      int
	nodes  []node // tile-row nodes above level 0 completed inside the bundle
	// With Config.Payloads: findings, counts and tombstones' claims
	// (erased entry -> erasure event index).
	payFinds        []Finding
	checked, erased uint64
	claims          map[uint64]uint64
}

type node struct {
	id   compact.NodeID
	hash []byte
}

// tileRowNode reports whether a tree node is stored in a tile above level 0:
// tile level t holds the tree nodes of level 8t.
func tileRowNode(id compact.NodeID) bool {
	return id.Level > 0 && id.Level%layout.TileHeight == 0
}

func (a *auditor) process(ctx context.Context, rf *compact.RangeFactory, rng *compact.Range, st *State, from, size uint64) {
	if from >= size {
		return
	}
	ctx, cancel := context.WithCancel(ctx)
	type job struct {
		bi uint64
		ch chan *bundleResult
	}
	firstB, endB := from/layout.EntryBundleWidth, (size+layout.EntryBundleWidth-1)/layout.EntryBundleWidth
	jobs := make(chan job)
	order := make(chan chan *bundleResult, 4*a.cfg.Workers)
	go func() {
		defer close(order)
		defer close(jobs)
		for bi := firstB; bi < endB; bi++ {
			ch := make(chan *bundleResult, 1)
			select {
			case order <- ch:
			case <-ctx.Done():
				return
			}
			select {
			case jobs <- job{bi, ch}:
			case <-ctx.Done():
				return
			}
		}
	}()
	var wg sync.WaitGroup
	for range a.cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := &scratch{}
			for j := range jobs {
				j.ch <- a.bundle(ctx, rf, s, j.bi, from, size)
			}
		}()
	}
	// On an early return (a structural failure), stop the dispatcher and
	// the workers before waiting for them.
	defer func() {
		cancel()
		wg.Wait()
	}()

	start, lastProgress := time.Now(), time.Now()
	total := size - from
	for ch := range order {
		var r *bundleResult
		select {
		case r = <-ch:
		case <-ctx.Done():
			a.fail(FailFetch, nil, "", "%v", ctx.Err())
			return
		}
		for _, f := range r.fails {
			a.fail(f.Kind, f.Index, f.Resource, "%s", f.Message)
		}
		if r.abort {
			return
		}
		for _, n := range r.nodes {
			a.upperNode(n.id, n.hash)
		}
		if err := rng.AppendRange(r.sub, a.upperNode); err != nil {
			a.fail(FailState, nil, "", "merging range at %d: %v", r.first, err)
			return
		}
		a.rep.BundlesRead++
		a.rep.EntriesRead += uint64(r.n)
		a.content(st, r)
		for _, f := range r.payFinds {
			a.find(f)
		}
		a.rep.PayloadsChecked += r.checked
		a.rep.PayloadsErased += r.erased
		for idx, by := range r.claims {
			a.claims[idx] = by
		}
		if a.cfg.Progress != nil && time.Since(lastProgress) >= a.cfg.ProgressEvery {
			lastProgress = time.Now()
			a.cfg.Progress(a.rep.EntriesRead, total, time.Since(start))
		}
	}
	if a.cfg.Progress != nil {
		a.cfg.Progress(a.rep.EntriesRead, total, time.Since(start))
	}
}

// bundle fetches and checks entry bundle bi and its level-0 tile, looking
// at the entries in [from, size). s is the calling worker's scratch memory.
func (a *auditor) bundle(ctx context.Context, rf *compact.RangeFactory, s *scratch, bi, from, size uint64) *bundleResult {
	r := &bundleResult{}
	p := layout.PartialTileSize(0, bi, size)
	width := uint64(p)
	if p == 0 {
		width = layout.EntryBundleWidth
	}
	base := bi * layout.EntryBundleWidth
	r.first = max(base, from)
	bpath, tpath := layout.EntriesPath(bi, p), layout.TilePath(0, bi, p)
	abort := func(kind, res, format string, args ...any) *bundleResult {
		r.fails = append(r.fails, Failure{Kind: kind, Resource: res, Message: fmt.Sprintf(format, args...)})
		r.abort = true
		return r
	}
	var braw, traw []byte
	var berr, terr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); traw, terr = a.rd.tile(ctx, 0, bi, p, s.tile) }()
	braw, berr = a.rd.bundle(ctx, bi, p, s.bundle)
	wg.Wait()
	if berr != nil {
		return abort(FailFetch, bpath, "entry bundle %s: %v", bpath, berr)
	}
	if terr != nil {
		return abort(FailFetch, tpath, "tile %s: %v", tpath, terr)
	}
	s.bundle, s.tile = braw, traw // keep grown buffers for the next bundle
	entries, err := splitBundle(s.entries[:0], braw, int(width))
	if err != nil {
		return abort(FailBundle, bpath, "entry bundle %s (entries %d-%d): %v", bpath, base, base+width-1, err)
	}
	s.entries = entries
	if !tileFits(len(traw), width) {
		return abort(FailTile, tpath, "tile %s is %d bytes, want %d (%d hashes)", tpath, len(traw), 32*width, width)
	}
	skip := r.first - base
	entries = entries[skip:]
	r.n = len(entries)

	// Every entry's hash against the tile's: one comparison when all
	// match, then entry by entry to name the ones that differ.
	hashes := s.leafHashes(entries)
	if tile := traw[32*skip : 32*(skip+uint64(len(entries)))]; !bytes.Equal(hashes, tile) {
		for i := range entries {
			h, th := hashes[32*i:32*i+32], tile[32*i:32*i+32]
			if !bytes.Equal(h, th) {
				idx := r.first + uint64(i)
				r.fails = append(r.fails, Failure{Kind: FailLeafHash, Index: u64(idx), Resource: tpath,
					Message: fmt.Sprintf("entry %d in %s hashes to %x, tile %s says %x", idx, bpath, h, tpath, th)})
			}
		}
	}
	// The entries' subtree, from the hashes computed (not the tile's). A
	// whole bundle is one node of level 8, which a level-1 tile holds.
	if skip == 0 && len(entries) == layout.EntryBundleWidth {
		root := bundleRoot(hashes)
		if r.sub, err = rf.NewRange(base, base+layout.EntryBundleWidth, [][]byte{root}); err != nil {
			return abort(FailState, bpath, "subtree of %s: %v", bpath, err)
		}
		r.nodes = append(r.nodes, node{compact.NewNodeID(layout.TileHeight, bi), root})
	} else {
		r.sub = rf.NewEmptyRange(r.first)
		for i := range entries {
			_ = r.sub.Append(slices.Clone(hashes[32*i:32*i+32]), func(id compact.NodeID, hash []byte) {
				if tileRowNode(id) {
					r.nodes = append(r.nodes, node{id, hash})
				}
			})
		}
	}

	r.leaves = make([]*leaf.Leaf, len(entries))
	r.keys = make([][16]byte, len(entries))
	decoded := make([]leaf.Leaf, len(entries)) // one allocation for the bundle's leaves
	for i, e := range entries {
		l := &decoded[i]
		if err := l.UnmarshalBinary(e); err != nil {
			if r.bad == nil {
				r.bad = make([]error, len(entries))
			}
			r.bad[i] = err
			continue
		}
		r.leaves[i] = l
		s.key = dedupKey(s.key[:0], l.Source, l.EventID)
		sum := sha256.Sum256(s.key)
		copy(r.keys[i][:], sum[:16])
	}
	if a.cfg.Payloads != nil {
		a.payloads(ctx, r)
	}
	return r
}

// payloads checks the payload behind every leaf of r against the leaf's
// commitment.
func (a *auditor) payloads(ctx context.Context, r *bundleResult) {
	for i, l := range r.leaves {
		if l == nil {
			continue
		}
		idx := r.first + uint64(i)
		sp, err := a.cfg.Payloads(ctx, idx)
		switch {
		case err != nil:
			r.payFinds = append(r.payFinds, Finding{Kind: FindPayloadUnavailable, Index: idx, Source: l.Source,
				Message: fmt.Sprintf("entry %d: fetching its payload: %v", idx, err)})
		case sp.Erased:
			r.erased++
			if r.claims == nil {
				r.claims = map[uint64]uint64{}
			}
			r.claims[idx] = sp.ErasureIndex
		default:
			if err := l.VerifyPayload(sp.Salt, sp.Payload); err != nil {
				r.payFinds = append(r.payFinds, Finding{Kind: FindPayloadMismatch, Index: idx, Source: l.Source,
					Message: fmt.Sprintf("entry %d: the server's payload is not the one the leaf commits to: %v", idx, err)})
				continue
			}
			r.checked++
		}
	}
}

func dedupKey(b []byte, source, eventID string) []byte {
	b = append(b, byte(len(source)))
	b = append(b, source...)
	return append(b, eventID...)
}

// tileFits reports whether a tile of n bytes holds the width hashes a
// checkpoint needs. A partial tile must have exactly width hashes; when the
// partial is gone (garbage-collected after the log grew) the fetcher falls
// back to the full tile, whose first width hashes are the ones checked.
func tileFits(n int, width uint64) bool {
	return n%32 == 0 && uint64(n) >= 32*width && n <= 32*layout.TileWidth
}

// splitBundle parses a tlog-tiles entry bundle strictly: entries each a
// big-endian u16 length and that many bytes, nothing after, and returns
// out with the first want appended. The bundle must hold want entries, or be a full bundle
// (the fetcher falls back to it when the partial one is gone).
func splitBundle(out [][]byte, b []byte, want int) ([][]byte, error) {
	for off := 0; off < len(b); {
		if len(b)-off < 2 {
			return nil, fmt.Errorf("truncated length prefix at byte %d", off)
		}
		n := int(binary.BigEndian.Uint16(b[off:]))
		off += 2
		if len(b)-off < n {
			return nil, fmt.Errorf("entry %d is truncated: %d bytes declared, %d left", len(out), n, len(b)-off)
		}
		out = append(out, b[off:off+n])
		off += n
	}
	if len(out) != want && len(out) != layout.EntryBundleWidth {
		return nil, fmt.Errorf("has %d entries, the checkpoint needs %d", len(out), want)
	}
	return out[:want], nil
}

// content runs the per-source checks over one bundle's entries, in order.
func (a *auditor) content(st *State, r *bundleResult) {
	for i, l := range r.leaves {
		idx := r.first + uint64(i)
		if l == nil {
			a.find(Finding{Kind: FindNotLeafV1, Index: idx, Message: fmt.Sprintf("entry %d is not leaf v1: %v", idx, r.bad[i])})
			continue
		}
		s := a.rep.Sources[l.Source]
		if s == nil {
			s = &SourceStats{}
			a.rep.Sources[l.Source] = s
		}
		s.Count++
		if seq := l.SourceSeq; seq != 0 {
			if s.LastSeq != 0 {
				switch {
				case seq <= s.LastSeq:
					s.Regressions++
					a.find(Finding{Kind: FindSeqRegression, Index: idx, Source: l.Source, Other: u64(s.LastSeqIndex),
						Message: fmt.Sprintf("source %s: source_seq %d at entry %d after %d at entry %d", l.Source, seq, idx, s.LastSeq, s.LastSeqIndex)})
				case seq > s.LastSeq+1:
					s.Gaps++
					a.find(Finding{Kind: FindSeqGap, Index: idx, Source: l.Source, Other: u64(s.LastSeqIndex),
						Message: fmt.Sprintf("source %s: source_seq jumps from %d at entry %d to %d at entry %d (%d missing)", l.Source, s.LastSeq, s.LastSeqIndex, seq, idx, seq-s.LastSeq-1)})
				}
			}
			if seq > s.LastSeq || s.LastSeq == 0 {
				s.LastSeq, s.LastSeqIndex = seq, idx
			}
		}
		if prev, dup := st.dedup[r.keys[i]]; dup {
			s.Duplicates++
			a.find(Finding{Kind: FindDuplicate, Index: idx, Source: l.Source, Other: u64(prev),
				Message: fmt.Sprintf("source %s: event_id %q at entry %d was already logged at entry %d", l.Source, l.EventID, idx, prev)})
		} else {
			st.dedup[r.keys[i]] = idx
			st.dedupOrder = append(st.dedupOrder, dedupRec{r.keys[i], idx})
		}
		if l.Source == erasureSource {
			n, err := strconv.ParseUint(strings.TrimPrefix(l.EventID, "erase/"), 10, 64)
			switch {
			case err != nil || !strings.HasPrefix(l.EventID, "erase/"):
				a.find(Finding{Kind: FindBadErasure, Index: idx, Source: l.Source,
					Message: fmt.Sprintf("entry %d: erasure event with event_id %q, want erase/<index>", idx, l.EventID)})
			case n >= idx:
				a.find(Finding{Kind: FindBadErasure, Index: idx, Source: l.Source, Other: u64(n),
					Message: fmt.Sprintf("entry %d: erasure event names entry %d, which is not earlier", idx, n)})
			default:
				a.rep.Erased = append(a.rep.Erased, Erasure{Index: n, ErasureIndex: idx})
			}
		}
		et, at := l.EventTime.UnixNano(), l.AdmittedTime.UnixNano()
		if et-at > a.ahead {
			s.TimeAnomalies++
			a.find(Finding{Kind: FindEventAhead, Index: idx, Source: l.Source,
				Message: fmt.Sprintf("entry %d: event_time %s is %s after its admitted_time %s", idx, fmtTime(l.EventTime), time.Duration(et-at), fmtTime(l.AdmittedTime))})
		}
		if st.HaveAdmitted && st.LastAdmitted-at > a.back {
			s.TimeAnomalies++
			a.find(Finding{Kind: FindAdmittedBackward, Index: idx, Source: l.Source, Other: u64(st.LastAdmittedIndex),
				Message: fmt.Sprintf("entry %d: admitted_time %s is %s before that of entry %d (%s)", idx, fmtTime(l.AdmittedTime), time.Duration(st.LastAdmitted-at), st.LastAdmittedIndex, fmtTime(time.Unix(0, st.LastAdmitted)))})
		}
		st.HaveAdmitted, st.LastAdmitted, st.LastAdmittedIndex = true, at, idx
	}
}

// checkClaims checks every tombstone the payload check saw against the
// erasure events in the log: an erased payload needs an erasure event that
// names it. A tombstone naming an event past the audited size is not
// judged: the server appends the erasure event before it writes the
// tombstone, so a newer checkpoint covers it.
func (a *auditor) checkClaims(size uint64) {
	if len(a.claims) == 0 {
		return
	}
	seen := make(map[Erasure]bool, len(a.rep.Erased))
	for _, e := range a.rep.Erased {
		seen[e] = true
	}
	for _, idx := range slices.Sorted(maps.Keys(a.claims)) {
		by := a.claims[idx]
		if by >= size && by > idx {
			continue
		}
		if !seen[Erasure{Index: idx, ErasureIndex: by}] {
			a.find(Finding{Kind: FindErasedWithoutEvent, Index: idx, Other: u64(by),
				Message: fmt.Sprintf("entry %d: its payload is erased, but entry %d of the log is not an erasure event naming it", idx, by)})
		}
	}
}

// upperNode records a tree node that a tile above level 0 must hold.
func (a *auditor) upperNode(id compact.NodeID, hash []byte) {
	if !tileRowNode(id) {
		return
	}
	if a.upper == nil {
		a.upper = map[tileKey]map[uint64][]byte{}
	}
	k := tileKey{uint64(id.Level) / layout.TileHeight, id.Index / layout.TileWidth}
	m := a.upper[k]
	if m == nil {
		m = map[uint64][]byte{}
		a.upper[k] = m
	}
	m[id.Index%layout.TileWidth] = hash
}

// upperTiles fetches every tile above level 0 that holds a node this run
// computed, and checks it holds the computed hash.
func (a *auditor) upperTiles(ctx context.Context, size uint64) {
	keys := make([]tileKey, 0, len(a.upper))
	for k := range a.upper {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(x, y tileKey) int {
		return cmp.Or(cmp.Compare(x.level, y.level), cmp.Compare(x.index, y.index))
	})
	for _, k := range keys {
		p := layout.PartialTileSize(k.level, k.index, size)
		width := uint64(p)
		if p == 0 {
			width = layout.TileWidth
		}
		path := layout.TilePath(k.level, k.index, p)
		t, err := a.fetcher.ReadTile(ctx, k.level, k.index, p)
		if err != nil {
			a.fail(FailFetch, nil, path, "tile %s: %v", path, err)
			continue
		}
		if !tileFits(len(t), width) {
			a.fail(FailTile, nil, path, "tile %s is %d bytes, want %d (%d hashes)", path, len(t), 32*width, width)
			continue
		}
		for pos, h := range a.upper[k] {
			if pos >= width {
				a.fail(FailTile, nil, path, "tile %s has %d hashes, the entries complete node %d", path, width, pos)
				continue
			}
			if th := t[32*pos:][:32]; !bytes.Equal(th, h) {
				lvl := k.level * layout.TileHeight
				a.fail(FailTile, nil, path, "tile %s: hash %d (tree node level %d index %d) is %x, the entries give %x", path, pos, lvl, k.index*layout.TileWidth+pos, th, h)
			}
		}
	}
}

func fmtTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
