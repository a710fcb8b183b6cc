// Package witness is Stele's transparency-log witness: it implements C2SP
// tlog-witness (add-checkpoint) and tlog-cosignature v1 (Ed25519, type
// 0x04) for any number of logs, each configured by origin and verifier
// key(s).
//
// For every log it keeps the latest checkpoint it cosigned in a durable
// store, and only cosigns a new checkpoint that is provably consistent
// with it: the state is updated by compare-and-swap under a per-log lock
// and synced to disk before the cosignature is returned, so a crash or a
// race can never make it cosign an older or conflicting checkpoint. A
// checkpoint that conflicts with what it cosigned is refused and kept as
// evidence.
//
// Logs can push checkpoints (the log calls add-checkpoint, as Tessera's
// WithWitnesses does) or be pulled: the witness fetches the log's
// tlog-tiles checkpoint and builds the consistency proof itself.
//
// A Witness is embeddable: [Open] it on a data directory, serve
// [Witness.Handler] over HTTP (with header, read and idle timeouts, as
// internal/connlimit sets them), optionally [Witness.ListenAdmin] and
// [Witness.ServeAdminOn] on its unix socket, [Witness.RunPull],
// [Witness.RunLogLists] and [Witness.RunRecosign]. The stele-witness
// command does exactly that; [Manage] changes a witness's logs, running
// or not.
package witness

import (
	"bytes"
	"context"
	"crypto"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/stele-dev/stele/internal/durable"
)

// Options configure a Witness. The zero value works.
type Options struct {
	// Name is the cosigner name for a new key (DefaultName if empty). If the
	// data directory already has a key, Name must be empty or match it.
	Name string
	// Logs are logs configured statically (from a config file). Logs added
	// with AddLog are kept in the store and merged with these.
	Logs []LogConfig
	// Logger receives operational logs; evidence is logged at ERROR.
	// Default: slog.Default().
	Logger *slog.Logger
	// HTTPClient is used for pulling; default: a client with a 30s timeout.
	HTTPClient *http.Client
	// AfterCommit, if set, is called after a new state has been durably
	// stored and before the cosignature is returned. It exists for crash
	// tests that must kill the witness at exactly that point.
	AfterCommit func(origin string, size uint64)
	// FixPermissions tightens a data directory that other users can reach
	// (and everything in it) instead of refusing to open it.
	FixPermissions bool
	// EvidenceKeep is how many of a log's latest evidence records are
	// kept besides its first one; older ones are dropped and counted.
	// 0 means 32.
	EvidenceKeep int
	// KeySigner, if set, is the witness's Ed25519 key held outside the data
	// directory (an HSM through PKCS#11, a cloud KMS); Name must then be
	// given, and the data directory must hold no witness.key.
	KeySigner crypto.Signer
}

// defaultEvidenceKeep is how many of a log's latest evidence records the
// witness keeps, besides the first one ever recorded.
const defaultEvidenceKeep = 32

// Witness is a running witness. It is safe for concurrent use.
type Witness struct {
	dir    string
	store  *stateStore
	key    *witnessKey
	log    *slog.Logger
	client *http.Client
	m      *metrics

	afterCommit  func(origin string, size uint64)
	evidenceKeep int
	badProofs    badProofWarner

	mu      sync.RWMutex
	static  map[string]LogConfig
	added   map[string]LogConfig
	vs      map[string]note.Verifiers // effective verifiers by origin
	byID    map[string]string         // monitoringID -> origin, for logs with state
	changed chan struct{}             // pull configuration changed
	lists   *logLists                 // log lists (loglists.go), nil without
	fresh   freshness                 // re-cosigning idle logs (recosign.go)
	quotas  map[string]*quota         // listed logs' request quotas (quota.go)

	locks sync.Map // origin -> *sync.Mutex

	closeOnce sync.Once
	closeErr  error
}

// Open opens the witness in dataDir (created with mode 0700 if needed; an
// existing one that other users can reach is refused unless
// Options.FixPermissions): it loads or creates the key (witness.key,
// witness.pub) and opens the store.
func Open(dataDir string, o Options) (*Witness, error) {
	fixed, err := durable.PrivateDir(dataDir, o.FixPermissions)
	if err != nil {
		return nil, err
	}
	var key *witnessKey
	if o.KeySigner != nil {
		key, err = keyFromSigner(dataDir, o.Name, o.KeySigner)
	} else {
		key, err = loadOrCreateKey(dataDir, o.Name)
	}
	if err != nil {
		return nil, err
	}
	w := &Witness{
		dir:     dataDir,
		key:     key,
		log:     o.Logger,
		client:  o.HTTPClient,
		m:       newMetrics(),
		static:  map[string]LogConfig{},
		added:   map[string]LogConfig{},
		byID:    map[string]string{},
		changed: make(chan struct{}, 1),

		afterCommit:  o.AfterCommit,
		evidenceKeep: o.EvidenceKeep,
	}
	w.badProofs.sometimes.Interval = badProofWarnInterval
	if w.evidenceKeep <= 0 {
		w.evidenceKeep = defaultEvidenceKeep
	}
	if w.log == nil {
		w.log = slog.Default()
	}
	if fixed > 0 {
		w.log.Warn("tightened the data directory's permissions (go-rwx)", "dir", dataDir, "entries", fixed)
	}
	if w.client == nil {
		w.client = &http.Client{Timeout: 30 * time.Second}
	}
	for _, c := range o.Logs {
		if _, err := c.validate(); err != nil {
			return nil, err
		}
		if prev, ok := w.static[c.Origin]; ok {
			c = mergeLog(prev, c)
		}
		w.static[c.Origin] = c
	}
	if w.store, err = openStateStore(dataDir); err != nil {
		return nil, err
	}
	added, err := w.store.addedLogs()
	if err != nil {
		w.store.close()
		return nil, err
	}
	for _, c := range added {
		w.added[c.Origin] = c
	}
	states, err := w.store.allStates()
	if err != nil {
		w.store.close()
		return nil, err
	}
	for origin, st := range states {
		w.byID[monitoringID(origin)] = origin
		w.m.size.WithLabelValues(origin).Set(float64(st.Size))
	}
	evs, err := w.store.evidence("")
	if err != nil {
		w.store.close()
		return nil, err
	}
	for _, ev := range evs {
		w.m.evidence.WithLabelValues(ev.Origin).Inc()
	}
	dropped, err := w.store.evidenceDropped()
	if err != nil {
		w.store.close()
		return nil, err
	}
	for origin, n := range dropped {
		w.m.evidenceDropped.WithLabelValues(origin).Set(float64(n))
	}
	if err := w.rebuild(); err != nil {
		w.store.close()
		return nil, err
	}
	return w, nil
}

// Close closes the store; later calls do nothing. Stop serving first.
func (w *Witness) Close() error {
	w.closeOnce.Do(func() { w.closeErr = w.store.close() })
	return w.closeErr
}

// Name is the witness's cosigner name.
func (w *Witness) Name() string { return w.key.signer.Name() }

// VerifierKey is the witness's cosignature verifier key (type 0x04), for
// log operators' witness policies.
func (w *Witness) VerifierKey() string { return w.key.vkey }

// MLDSAVerifierKey is the witness's ML-DSA-44 cosignature verifier key
// (type 0x06, tlog-cosignature v1.1), for policies that name that key.
func (w *Witness) MLDSAVerifierKey() string { return w.key.mvkey }

// Dir is the data directory.
func (w *Witness) Dir() string { return w.dir }

// rebuild recomputes the effective verifiers. Callers hold w.mu (or own w).
func (w *Witness) rebuild() error {
	vs := map[string]note.Verifiers{}
	for _, c := range w.effective() {
		v, err := c.validate()
		if err != nil {
			return err
		}
		vs[c.Origin] = note.VerifierList(v...)
	}
	w.vs = vs
	w.rebuildQuotas()
	select {
	case w.changed <- struct{}{}:
	default:
	}
	return nil
}

// effective merges listed, added and static logs (a log added with add-log
// or in the config file replaces a listed one). Callers hold w.mu.
func (w *Witness) effective() map[string]LogConfig {
	out := w.listedConfigs()
	for o, c := range w.added {
		out[o] = c
	}
	for o, c := range w.static {
		if a, ok := out[o]; ok {
			c = mergeLog(a, c) // the config file's pull settings win
		}
		out[o] = c
	}
	return out
}

// LogInfo describes a configured log and what the witness holds for it.
type LogInfo struct {
	LogConfig
	// InConfig is true if the log comes from the config file (remove it
	// there); Added if it was added with add-log. Both can be true.
	InConfig bool `json:"in_config,omitempty"`
	Added    bool `json:"added,omitempty"`
	// Listed is the log list it comes from, if neither.
	Listed string `json:"listed,omitempty"`
	// Size and Root are the latest cosigned checkpoint's, if any.
	Size     uint64 `json:"size"`
	Root     string `json:"root,omitempty"`
	Cosigned bool   `json:"cosigned"`
	// evidenceDropped is how many evidence records were dropped for this
	// log to keep its first and latest ones (see Options.EvidenceKeep).
	EvidenceDropped uint64 `json:"evidence_dropped,omitempty"`
}

// Logs returns the configured logs, by origin.
func (w *Witness) Logs() ([]LogInfo, error) {
	w.mu.RLock()
	eff := w.effective()
	var out []LogInfo
	for o, c := range eff {
		_, inCfg := w.static[o]
		_, added := w.added[o]
		li := LogInfo{LogConfig: c, InConfig: inCfg, Added: added}
		if !inCfg && !added {
			li.Listed = w.listedSource(o)
		}
		out = append(out, li)
	}
	w.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Origin < out[j].Origin })
	dropped, err := w.store.evidenceDropped()
	if err != nil {
		return nil, err
	}
	for i := range out {
		out[i].EvidenceDropped = dropped[out[i].Origin]
		st, ok, err := w.store.state(out[i].Origin)
		if err != nil {
			return nil, err
		}
		if ok {
			out[i].Size, out[i].Root, out[i].Cosigned = st.Size, base64.StdEncoding.EncodeToString(st.Root[:]), true
		}
	}
	return out, nil
}

// AddLog adds a log (or, for a known origin, more keys or new pull
// settings) while the witness runs. It is recorded in the store.
func (w *Witness) AddLog(c LogConfig) (LogConfig, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	rec, err := w.store.addLog(c)
	if err != nil {
		return LogConfig{}, err
	}
	w.added[rec.Origin] = rec
	if err := w.rebuild(); err != nil {
		return LogConfig{}, err
	}
	w.log.Info("log added", "origin", rec.Origin, "keys", len(rec.Keys), "pull_url", rec.PullURL)
	return rec, nil
}

// RemoveLog removes a log added with AddLog. The witness stops cosigning
// for it but keeps its latest cosigned size and root, so re-adding it
// cannot make the witness accept a conflicting history. A log from the
// config file must be removed there.
func (w *Witness) RemoveLog(origin string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.static[origin]; ok {
		if _, added := w.added[origin]; !added {
			return fmt.Errorf("log %q comes from the config file: remove it there and restart the witness", origin)
		}
	}
	if err := w.store.removeLog(origin); err != nil {
		return err
	}
	delete(w.added, origin)
	if err := w.rebuild(); err != nil {
		return err
	}
	w.log.Info("log removed; its last cosigned state is kept", "origin", origin)
	return nil
}

// Evidence returns recorded evidence, oldest first; only origin's if
// origin is not empty.
func (w *Witness) Evidence(origin string) ([]Evidence, error) { return w.store.evidence(origin) }

// state returns the latest cosigned state of a log.
func (w *Witness) state(origin string) (logState, bool, error) { return w.store.state(origin) }

// verifiers returns the verifiers for origin, or nil if it is unknown.
func (w *Witness) verifiers(origin string) note.Verifiers {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return w.vs[origin]
}

func (w *Witness) lockFor(origin string) *sync.Mutex {
	l, _ := w.locks.LoadOrStore(origin, &sync.Mutex{})
	return l.(*sync.Mutex)
}

// Error is a refusal of an add-checkpoint request, with the HTTP status
// the C2SP tlog-witness spec assigns to it.
type Error struct {
	// Status is the HTTP status code (400, 403, 404, 409, 422, 429 or 500).
	Status int
	// Reason is a short machine-readable reason, also the metrics label.
	Reason string
	// Size is, for a 409, the size of the latest checkpoint the witness
	// cosigned for the origin (0 if none).
	Size uint64
	// Msg says what was wrong and what to do.
	Msg string

	retryAfter int // seconds, for a 429
}

func (e *Error) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Reason, e.Msg) }

func refuse(status int, reason, format string, args ...any) *Error {
	return &Error{Status: status, Reason: reason, Msg: fmt.Sprintf(format, args...)}
}

// Reasons for refusals (the "reason" metrics label and Error.Reason).
const (
	reasonMalformed        = "malformed"
	reasonTooLarge         = "too_large"
	reasonUnknownOrigin    = "unknown_origin"
	reasonNoTrustedSig     = "no_trusted_signature"
	reasonBadSignature     = "bad_signature"
	reasonOldTooLarge      = "old_too_large"
	reasonOldMismatch      = "old_mismatch"
	reasonBadProof         = "bad_proof"
	reasonInconsistent     = "inconsistent"
	reasonProofWithOldZero = "proof_with_old_zero"
	reasonBadEmptyRoot     = "bad_empty_root"
	reasonRootMismatch     = "root_mismatch"
	reasonInternal         = "internal"
)

// AddCheckpoint handles an add-checkpoint request body. On success it
// returns the cosignature line(s) to send back; otherwise an *Error.
func (w *Witness) AddCheckpoint(ctx context.Context, body []byte) ([]byte, error) {
	start := time.Now()
	req, err := parseRequest(body)
	if err != nil {
		e := refuse(http.StatusBadRequest, reasonMalformed, "%v", err)
		w.m.observe(e, start)
		return nil, e
	}
	return w.submitVia(ctx, req, "push")
}

// submitVia runs the add-checkpoint checks on a parsed request and, if it
// passes, durably records and cosigns the checkpoint. via is recorded in
// evidence ("push", or "pull <url>").
func (w *Witness) submitVia(ctx context.Context, req *request, via string) ([]byte, error) {
	start := time.Now()
	cosig, err := w.submit(req, via)
	var e *Error
	if err != nil && !errors.As(err, &e) {
		e = refuse(http.StatusInternalServerError, reasonInternal, "%v", err)
		err = e
		w.log.Error("add-checkpoint failed", "err", e.Msg)
	}
	w.m.observe(e, start)
	if e != nil && e.Reason == reasonBadProof {
		w.badProofs.warn(w.log, req, via, e)
	}
	return cosig, err
}

func (w *Witness) submit(req *request, via string) ([]byte, error) {
	// 400: parse.
	cp, err := parseSignedCheckpoint(req.Checkpoint)
	if err != nil {
		return nil, refuse(http.StatusBadRequest, reasonMalformed, "%v", err)
	}
	// 404: origin.
	vs := w.verifiers(cp.Origin)
	if vs == nil {
		return nil, refuse(http.StatusNotFound, reasonUnknownOrigin, "this witness does not witness the log %q (ask its operator to run stele-witness add-log)", cp.Origin)
	}
	// 403: a valid signature from a configured key.
	sigs, err := cp.verify(vs)
	if err != nil {
		var inv *note.InvalidSignatureError
		if errors.As(err, &inv) {
			return nil, refuse(http.StatusForbidden, reasonBadSignature, "the signature by %s+%08x does not verify", inv.Name, inv.Hash)
		}
		return nil, refuse(http.StatusForbidden, reasonNoTrustedSig, "no signature from a key configured for %s: %v", cp.Origin, err)
	}
	// 429: a listed log over its quota (pushed requests only).
	if via == "push" {
		if e := w.overQuota(cp.Origin); e != nil {
			return nil, e
		}
	}
	// 400: old beyond the checkpoint.
	if req.Old > cp.Size {
		return nil, refuse(http.StatusBadRequest, reasonOldTooLarge, "old size %d is larger than the checkpoint size %d", req.Old, cp.Size)
	}

	lock := w.lockFor(cp.Origin)
	lock.Lock()
	defer lock.Unlock()
	st, have, err := w.store.state(cp.Origin)
	if err != nil {
		return nil, err
	}
	if have && cp.Size == st.Size && cp.Root != st.Root {
		// A split view, whatever old says.
		status := http.StatusConflict
		if req.Old == st.Size {
			status = http.StatusUnprocessableEntity
		}
		if err := w.recordEvidence(st, cp, sigs, req, via, evidenceSameSize, status,
			fmt.Sprintf("checkpoint of size %d has root %x, but this witness cosigned root %x for that size", cp.Size, cp.Root, st.Root)); err != nil {
			return nil, err
		}
	}
	// 409: old is not what we hold.
	if req.Old != st.Size {
		e := refuse(http.StatusConflict, reasonOldMismatch, "old size %d is not the size %d of the latest checkpoint this witness cosigned for %s", req.Old, st.Size, cp.Origin)
		e.Size = st.Size
		return nil, e
	}
	// 422: proof and roots.
	if cp.Size == 0 && cp.Root != emptyRoot {
		return nil, refuse(http.StatusUnprocessableEntity, reasonBadEmptyRoot, "a size-0 checkpoint must have the empty-tree root %s", base64.StdEncoding.EncodeToString(emptyRoot[:]))
	}
	if req.Old == 0 && len(req.Proof) > 0 {
		return nil, refuse(http.StatusUnprocessableEntity, reasonProofWithOldZero, "old is 0, so the consistency proof must be empty, but it has %d lines", len(req.Proof))
	}
	if req.Old == cp.Size {
		if have && cp.Root != st.Root {
			return nil, refuse(http.StatusUnprocessableEntity, reasonRootMismatch, "checkpoint of size %d has a different root from the one this witness cosigned for that size; the conflict is recorded as evidence", cp.Size)
		}
		if len(req.Proof) > 0 {
			return nil, refuse(http.StatusUnprocessableEntity, reasonBadProof, "old equals the checkpoint size, so the consistency proof must be empty, but it has %d lines", len(req.Proof))
		}
	} else if req.Old > 0 {
		p := make([][]byte, len(req.Proof))
		for i := range req.Proof {
			p[i] = req.Proof[i][:]
		}
		if err := proof.VerifyConsistency(rfc6962.DefaultHasher, req.Old, cp.Size, p, st.Root[:], cp.Root[:]); err != nil {
			// A proof that fails proves nothing by itself: anyone can post
			// a log's genuine checkpoint with junk hashes. Only a proof
			// that rebuilds the log-signed root of cp, from a tree whose
			// first old entries are not the ones this witness cosigned,
			// shows two histories under the log's key.
			prefix, forked := forkProven(req.Old, cp.Size, p, st.Root[:], cp.Root[:])
			if !forked {
				return nil, refuse(http.StatusUnprocessableEntity, reasonBadProof, "the consistency proof from size %d to %d does not verify against the root this witness cosigned: %v", req.Old, cp.Size, err)
			}
			if err := w.recordEvidence(st, cp, sigs, req, via, evidenceInconsistent, http.StatusUnprocessableEntity,
				fmt.Sprintf("the consistency proof rebuilds the signed root %x of size %d from a tree whose first %d entries have root %x, but this witness cosigned root %x for size %d", cp.Root, cp.Size, req.Old, prefix, st.Root, st.Size)); err != nil {
				return nil, err
			}
			return nil, refuse(http.StatusUnprocessableEntity, reasonInconsistent, "the checkpoint of size %d does not extend the one of size %d this witness cosigned: its proof shows another history; the conflict is recorded as evidence", cp.Size, req.Old)
		}
	}

	// Cosign, persist, then answer.
	full := make([]byte, 0, len(cp.Text)+1+len(cp.Raw)-len(cp.Text)+4096)
	full = append(full, cp.Text...)
	full = append(full, '\n')
	full = appendSignatureLines(full, sigs)
	cosigAt := len(full)
	full, err = w.key.cosign(full, cp)
	if err != nil {
		return nil, fmt.Errorf("cosigning: %w", err)
	}
	cosig := full[cosigAt:]
	next := logState{Size: cp.Size, Root: cp.Root, Checkpoint: full, Updated: time.Now().UTC()}
	if err := w.store.putState(cp.Origin, next); err != nil {
		return nil, err
	}
	if w.afterCommit != nil {
		w.afterCommit(cp.Origin, cp.Size)
	}
	if !have {
		w.mu.Lock()
		w.byID[monitoringID(cp.Origin)] = cp.Origin
		w.mu.Unlock()
	}
	w.m.size.WithLabelValues(cp.Origin).Set(float64(cp.Size))
	return slices.Clone(cosig), nil
}

// forkProven reports whether p, a consistency proof from size old to
// size whose verification against (oldRoot, newRoot) failed, nevertheless
// rebuilds newRoot exactly, from a tree whose first old entries have
// another root than oldRoot. Every proof hash enters the computation of
// the new root, so (short of a SHA-256 collision) such a proof shows that
// the tree behind newRoot does not extend the one behind oldRoot. It
// returns the prefix root the proof commits to.
//
// A junk proof, one of the wrong length, or one that does not rebuild
// newRoot proves nothing and returns false. When old is a power of two the
// RFC 6962 proof carries no hash for the prefix (the verifier starts from
// oldRoot itself), so it can never show a fork: false.
func forkProven(old, size uint64, p [][]byte, oldRoot, newRoot []byte) ([]byte, bool) {
	err := proof.VerifyConsistency(rfc6962.DefaultHasher, old, size, p, oldRoot, newRoot)
	var rm proof.RootMismatchError
	if !errors.As(err, &rm) || !bytes.Equal(rm.ExpectedRoot, oldRoot) || bytes.Equal(rm.CalculatedRoot, oldRoot) {
		return nil, false // the proof is malformed, or it failed on the new root
	}
	if proof.VerifyConsistency(rfc6962.DefaultHasher, old, size, p, rm.CalculatedRoot, newRoot) != nil {
		return nil, false
	}
	return rm.CalculatedRoot, true
}

// recordEvidence stores two validly signed, conflicting statements by a
// log: the checkpoint this witness cosigned (st) and cp, whose log
// signatures sigs were verified. Only the verified signatures are kept, so
// a sender cannot pad the record.
func (w *Witness) recordEvidence(st logState, cp *signedCheckpoint, sigs []note.Signature, req *request, via, reason string, status int, detail string) error {
	ev := &Evidence{
		Origin:    cp.Origin,
		Time:      time.Now().UTC(),
		Reason:    reason,
		Detail:    detail,
		Status:    status,
		Cosigned:  string(st.Checkpoint),
		Offending: cp.Text + "\n" + string(appendSignatureLines(nil, sigs)),
		Old:       req.Old,
		Via:       via,
	}
	if reason == evidenceInconsistent {
		for _, h := range req.Proof {
			ev.Proof = append(ev.Proof, base64.StdEncoding.EncodeToString(h[:]))
		}
	}
	res, err := w.store.putEvidence(ev, w.evidenceKeep)
	if err != nil {
		return err
	}
	if res.added {
		w.m.evidence.WithLabelValues(cp.Origin).Set(float64(res.held))
		w.m.evidenceDropped.WithLabelValues(cp.Origin).Set(float64(res.dropped))
		w.log.Error("EVIDENCE OF LOG MISBEHAVIOUR: conflicting checkpoint refused and recorded",
			"origin", cp.Origin, "reason", reason, "evidence_id", ev.ID, "detail", detail, "via", via,
			"cosigned_size", st.Size, "offending_size", cp.Size, "records_dropped", res.dropped)
	}
	return nil
}
