package witness

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"github.com/stele-dev/stele/internal/jsontime"
)

// storeDir is the Pebble database's directory inside the data directory.
const storeDir = "state"

// Key prefixes in the store.
const (
	prefixLog      = 'l' // l | origin           -> JSON LogConfig (logs added with add-log)
	prefixState    = 's' // s | origin           -> JSON State (kept when a log is removed)
	prefixEvidence = 'e' // e | u64 id           -> JSON Evidence
	prefixEvDedup  = 'x' // x | sha256(evidence) -> u64 id
	prefixEvDrop   = 'c' // c | origin           -> u64 evidence records dropped
)

// Evidence reasons: the two ways a log can be caught showing two
// histories, each shown by two checkpoints that carry its signature.
const (
	// evidenceSameSize: two signed checkpoints of one size with different
	// roots.
	evidenceSameSize = "same_size_different_root"
	// evidenceInconsistent: a signed checkpoint with a consistency proof
	// that rebuilds its root from a tree whose prefix is not the tree of
	// the checkpoint this witness cosigned (see Evidence.Proof).
	evidenceInconsistent = "inconsistent_proof"
)

// LogConfig configures one log this witness cosigns for.
type LogConfig struct {
	// Origin is the log's checkpoint origin (first body line).
	Origin string `json:"origin"`
	// Keys are the log's signed-note verifier keys (Ed25519, type 0x01).
	// A checkpoint needs a valid signature from at least one; give several
	// while the log rotates its key.
	Keys []string `json:"keys"`
	// PullURL, if set, is the log's tlog-tiles URL prefix: the witness then
	// fetches the checkpoint itself every PullInterval and builds the
	// consistency proof from the tiles.
	PullURL string `json:"pull_url,omitempty"`
	// PullInterval is how often to pull; 0 means once a minute.
	PullInterval Duration `json:"pull_interval,omitempty"`
}

// Duration is a time.Duration written in JSON as a string such as "30s".
type Duration = jsontime.Duration

// validate checks a log configuration and returns its verifiers.
func (c LogConfig) validate() ([]note.Verifier, error) {
	if err := checkOrigin(c.Origin); err != nil {
		return nil, fmt.Errorf("log origin: %w", err)
	}
	if len(c.Keys) == 0 {
		return nil, fmt.Errorf("log %s: at least one verifier key is needed (the log's <name>+<id>+<key>, e.g. its log.pub)", c.Origin)
	}
	var vs []note.Verifier
	for _, k := range c.Keys {
		v, err := parseLogKey(k)
		if err != nil {
			return nil, fmt.Errorf("log %s: %w", c.Origin, err)
		}
		vs = append(vs, v)
	}
	if c.PullURL != "" {
		u, err := url.Parse(c.PullURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("log %s: pull URL %q must be an http:// or https:// tlog-tiles prefix", c.Origin, c.PullURL)
		}
	}
	if c.PullInterval < 0 || (c.PullInterval > 0 && time.Duration(c.PullInterval) < 100*time.Millisecond) {
		return nil, fmt.Errorf("log %s: pull interval %v is too short (at least 100ms)", c.Origin, time.Duration(c.PullInterval))
	}
	return vs, nil
}

// parseLogKey parses a log's verifier key: Ed25519 (type 0x01) or
// ML-DSA-44 (type 0x06, a tlog-cosignature signature by the log itself,
// as tlog-checkpoint recommends). A log that signs with both is added
// with both keys; either signature then suffices.
func parseLogKey(k string) (note.Verifier, error) {
	if keyType(k) == algMLDSA44 {
		v, err := fnote.NewVerifierForCosignatureV1(k)
		if err != nil {
			return nil, fmt.Errorf("key %q is not an ML-DSA-44 signed-note verifier key (<name>+<8 hex>+<base64>): %v", truncate(k), err)
		}
		return v, nil
	}
	v, err := note.NewVerifier(k)
	if err != nil {
		if len(k) > 1 {
			if _, rest, ok := cutLast(k, "+"); ok && len(rest) > 0 && rest[0] == 'B' {
				return nil, fmt.Errorf("key %q is a cosignature (witness) key, not a log key: give the log's Ed25519 verifier key", truncate(k))
			}
		}
		return nil, fmt.Errorf("key %q is not an Ed25519 signed-note verifier key (<name>+<8 hex>+<base64>): %v", truncate(k), err)
	}
	return v, nil
}

// keyType is a verifier key's signature type byte, or 0.
func keyType(k string) byte {
	parts := strings.SplitN(k, "+", 3)
	if len(parts) != 3 {
		return 0
	}
	raw, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil || len(raw) == 0 {
		return 0
	}
	return raw[0]
}

func cutLast(s, sep string) (string, string, bool) {
	i := bytes.LastIndex([]byte(s), []byte(sep))
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}

// logState is what the witness holds for a log: the latest checkpoint it
// cosigned.
type logState struct {
	Size uint64   `json:"size"`
	Root [32]byte `json:"root"`
	// Checkpoint is the latest cosigned checkpoint: the body, the log's
	// verified signatures and this witness's cosignature.
	Checkpoint []byte    `json:"checkpoint"`
	Updated    time.Time `json:"updated"`
}

// Evidence records a checkpoint that conflicts with one this witness
// cosigned: proof that the log showed two histories.
type Evidence struct {
	ID     uint64    `json:"id"`
	Origin string    `json:"origin"`
	Time   time.Time `json:"time"`
	// Reason is "same_size_different_root" or "inconsistent_proof".
	Reason string `json:"reason"`
	Detail string `json:"detail"`
	// Status is the HTTP status the witness answered with.
	Status int `json:"status"`
	// Cosigned is the checkpoint this witness had cosigned (log signature
	// and cosignature).
	Cosigned string `json:"cosigned_checkpoint"`
	// Offending is the conflicting checkpoint: its body and the log
	// signatures that verified (other signature lines are not kept).
	Offending string `json:"offending_checkpoint"`
	// Old is the request's old size. Proof, for evidenceInconsistent, is
	// the consistency proof (base64 lines) from Old to the offending size:
	// it rebuilds the offending root, and the prefix root it implies is
	// not the cosigned root.
	Old   uint64   `json:"old"`
	Proof []string `json:"proof,omitempty"`
	// Via tells how the checkpoint arrived: "push" or "pull <url>".
	Via string `json:"via"`
}

// stateStore is the witness's durable state: logs added with add-log, the
// latest cosigned checkpoint per log, and evidence. It is a Pebble
// database in <data-dir>/state; Pebble's lock file lets one process open
// it at a time. Writes are synced before they return.
type stateStore struct {
	db     *pebble.DB
	evMu   sync.Mutex
	nextEv uint64
	// states holds every log's state (origin -> State), loaded when the
	// store opens and replaced after each synced write: this process is
	// the store's only writer (Pebble's lock), and every add-checkpoint
	// reads its log's state, which need not cost a Pebble read and a JSON
	// decode each time. It is never filled from a read, so a reader racing
	// a writer cannot put back an older state.
	states sync.Map
}

// openStateStore opens (creating if needed) the store in dataDir.
func openStateStore(dataDir string) (*stateStore, error) {
	dir := filepath.Join(dataDir, storeDir)
	db, err := pebble.Open(dir, &pebble.Options{Logger: pebbleLogger{}})
	if err != nil {
		return nil, fmt.Errorf("opening the witness store in %s (is another stele-witness using this data directory?): %w", dir, err)
	}
	s := &stateStore{db: db, nextEv: 1}
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixEvidence}, UpperBound: []byte{prefixEvidence + 1}})
	if err != nil {
		db.Close()
		return nil, err
	}
	if it.Last() && len(it.Key()) == 9 {
		s.nextEv = binary.BigEndian.Uint64(it.Key()[1:]) + 1
	}
	if err := it.Close(); err != nil {
		db.Close()
		return nil, err
	}
	states, err := s.readStates()
	if err != nil {
		db.Close()
		return nil, err
	}
	for origin, st := range states {
		s.states.Store(origin, st)
	}
	return s, nil
}

// close closes the store.
func (s *stateStore) close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("closing witness store: %w", err)
	}
	return nil
}

func key(prefix byte, s string) []byte { return append([]byte{prefix}, s...) }

func (s *stateStore) getJSON(k []byte, v any) (bool, error) {
	raw, closer, err := s.db.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading witness store: %w", err)
	}
	defer closer.Close()
	if err := json.Unmarshal(raw, v); err != nil {
		return false, fmt.Errorf("witness store record %q is corrupt: %w", k, err)
	}
	return true, nil
}

func (s *stateStore) scan(prefix byte, f func(k, v []byte) error) error {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefix}, UpperBound: []byte{prefix + 1}})
	if err != nil {
		return err
	}
	for it.First(); it.Valid(); it.Next() {
		if err := f(it.Key(), it.Value()); err != nil {
			it.Close()
			return err
		}
	}
	return it.Close()
}

// addLog records a log added at run time. If the origin is already
// recorded, the keys are merged (so a new key can be added for rotation)
// and a non-empty PullURL or PullInterval replaces the old one. It returns
// the recorded configuration.
func (s *stateStore) addLog(c LogConfig) (LogConfig, error) {
	if _, err := c.validate(); err != nil {
		return LogConfig{}, err
	}
	var old LogConfig
	found, err := s.getJSON(key(prefixLog, c.Origin), &old)
	if err != nil {
		return LogConfig{}, err
	}
	if found {
		c = mergeLog(old, c)
	}
	raw, _ := json.Marshal(c)
	if err := s.db.Set(key(prefixLog, c.Origin), raw, pebble.Sync); err != nil {
		return LogConfig{}, fmt.Errorf("recording log %s: %w", c.Origin, err)
	}
	return c, nil
}

// mergeLog merges b into a: keys are united, pull settings in b win.
func mergeLog(a, b LogConfig) LogConfig {
	out := a
	out.Keys = slices.Clone(a.Keys)
	for _, k := range b.Keys {
		if !slices.Contains(out.Keys, k) {
			out.Keys = append(out.Keys, k)
		}
	}
	if b.PullURL != "" {
		out.PullURL = b.PullURL
	}
	if b.PullInterval != 0 {
		out.PullInterval = b.PullInterval
	}
	return out
}

// removeLog forgets a log added at run time. Its state (the latest
// cosigned size and root) is kept, so that if it is added again the
// witness still refuses any history that conflicts with what it cosigned.
func (s *stateStore) removeLog(origin string) error {
	var c LogConfig
	found, err := s.getJSON(key(prefixLog, origin), &c)
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("log %q was not added with add-log (see list-logs)", origin)
	}
	if err := s.db.Delete(key(prefixLog, origin), pebble.Sync); err != nil {
		return fmt.Errorf("removing log %s: %w", origin, err)
	}
	return nil
}

// addedLogs returns the logs added at run time, by origin.
func (s *stateStore) addedLogs() ([]LogConfig, error) {
	var out []LogConfig
	err := s.scan(prefixLog, func(k, v []byte) error {
		var c LogConfig
		if err := json.Unmarshal(v, &c); err != nil {
			return fmt.Errorf("witness store record %q is corrupt: %w", k, err)
		}
		out = append(out, c)
		return nil
	})
	return out, err
}

// state returns the latest cosigned state for origin.
func (s *stateStore) state(origin string) (logState, bool, error) {
	if st, ok := s.states.Load(origin); ok {
		return st.(logState), true, nil
	}
	return logState{}, false, nil
}

// readable reads from the database, for health checks (State is answered
// from memory).
func (s *stateStore) readable() error {
	_, err := s.getJSON(key(prefixState, ""), &logState{})
	return err
}

// allStates returns every log's state by origin, including removed logs'.
func (s *stateStore) allStates() (map[string]logState, error) {
	out := map[string]logState{}
	s.states.Range(func(k, v any) bool {
		out[k.(string)] = v.(logState)
		return true
	})
	return out, nil
}

// readStates reads every log's state from the database.
func (s *stateStore) readStates() (map[string]logState, error) {
	out := map[string]logState{}
	err := s.scan(prefixState, func(k, v []byte) error {
		var st logState
		if err := json.Unmarshal(v, &st); err != nil {
			return fmt.Errorf("witness store record %q is corrupt: %w", k, err)
		}
		out[string(k[1:])] = st
		return nil
	})
	return out, err
}

// putState writes a log's state with a synced commit. Callers serialise
// per origin and check the previous state first (compare-and-swap).
func (s *stateStore) putState(origin string, st logState) error {
	raw, _ := json.Marshal(st)
	if err := s.db.Set(key(prefixState, origin), raw, pebble.Sync); err != nil {
		return fmt.Errorf("saving state of %s: %w", origin, err)
	}
	s.states.Store(origin, st)
	return nil
}

// evidenceResult is what putEvidence did.
type evidenceResult struct {
	added   bool   // a new record was stored
	held    int    // records now held for the origin
	dropped uint64 // records dropped for the origin so far
}

// evidenceDedup identifies a conflict: the same two checkpoints (bodies)
// for the same reason are one record, however often they are sent.
func evidenceDedup(ev *Evidence) []byte {
	body := func(n string) string {
		if i := strings.Index(n, "\n\n"); i >= 0 {
			return n[:i+1]
		}
		return n
	}
	h := sha256.Sum256(fmt.Appendf(nil, "%s\n%s\n%s\n%s", ev.Origin, ev.Reason, body(ev.Cosigned), body(ev.Offending)))
	return append([]byte{prefixEvDedup}, h[:]...)
}

// putEvidence records evidence with a synced commit, unless the same
// conflict is already recorded. A log keeps its first record and its keep
// latest ones: older ones are deleted and counted, so the store stays
// bounded even for a log that signs conflicts without end.
func (s *stateStore) putEvidence(ev *Evidence, keep int) (evidenceResult, error) {
	s.evMu.Lock()
	defer s.evMu.Unlock()
	var res evidenceResult
	dk := evidenceDedup(ev)
	if _, closer, err := s.db.Get(dk); err == nil {
		closer.Close()
		return res, nil
	} else if !errors.Is(err, pebble.ErrNotFound) {
		return res, fmt.Errorf("reading witness store: %w", err)
	}
	held, err := s.evidence(ev.Origin)
	if err != nil {
		return res, err
	}
	ck := key(prefixEvDrop, ev.Origin)
	if raw, closer, err := s.db.Get(ck); err == nil {
		if len(raw) == 8 {
			res.dropped = binary.BigEndian.Uint64(raw)
		}
		closer.Close()
	} else if !errors.Is(err, pebble.ErrNotFound) {
		return res, fmt.Errorf("reading witness store: %w", err)
	}
	ev.ID = s.nextEv
	raw, _ := json.Marshal(ev)
	b := s.db.NewBatch()
	defer b.Close()
	ek := binary.BigEndian.AppendUint64([]byte{prefixEvidence}, ev.ID)
	b.Set(ek, raw, nil)
	b.Set(dk, ek[1:], nil)
	// Keep held[0] (the first) and the keep latest of held+ev.
	if drop := len(held) + 1 - (1 + keep); drop > 0 {
		for _, old := range held[1 : 1+drop] {
			b.Delete(binary.BigEndian.AppendUint64([]byte{prefixEvidence}, old.ID), nil)
			b.Delete(evidenceDedup(&old), nil)
		}
		res.dropped += uint64(drop)
		b.Set(ck, binary.BigEndian.AppendUint64(nil, res.dropped), nil)
		held = slices.Delete(held, 1, 1+drop)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return res, fmt.Errorf("saving evidence: %w", err)
	}
	s.nextEv++
	res.added, res.held = true, len(held)+1
	return res, nil
}

// evidenceDropped returns, by origin, how many evidence records were
// dropped to keep each log's first and latest ones.
func (s *stateStore) evidenceDropped() (map[string]uint64, error) {
	out := map[string]uint64{}
	err := s.scan(prefixEvDrop, func(k, v []byte) error {
		if len(v) != 8 {
			return fmt.Errorf("witness store record %q is corrupt", k)
		}
		out[string(k[1:])] = binary.BigEndian.Uint64(v)
		return nil
	})
	return out, err
}

// evidence returns recorded evidence, oldest first; only origin's if
// origin is not empty.
func (s *stateStore) evidence(origin string) ([]Evidence, error) {
	out := []Evidence{}
	err := s.scan(prefixEvidence, func(k, v []byte) error {
		var ev Evidence
		if err := json.Unmarshal(v, &ev); err != nil {
			return fmt.Errorf("witness store record %q is corrupt: %w", k, err)
		}
		if origin == "" || ev.Origin == origin {
			out = append(out, ev)
		}
		return nil
	})
	return out, err
}

// pebbleLogger drops Pebble's informational chatter; errors surface through
// the returned errors.
type pebbleLogger struct{}

func (pebbleLogger) Infof(string, ...any)  {}
func (pebbleLogger) Errorf(string, ...any) {}
func (pebbleLogger) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf("pebble: "+format, args...))
}
