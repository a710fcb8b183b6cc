package audit

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"

	"github.com/stele-dev/stele/internal/durable"
)

// stateVersion is the version of the state file format.
const stateVersion = 1

// State is where an audit stopped: the verified tree (size, root and the
// hashes of the compact range [0, size)), the per-source sequence
// positions and the (source, event_id) set, so that the next audit only
// reads new entries.
//
// The (source, event_id) set is kept as 16-byte truncated SHA-256 hashes
// of (len(source), source, event_id), with the index of the entry. A
// collision would hide a duplicate; with n events its chance is about
// n²/2^129, which is accepted.
type State struct {
	Version           int                     `json:"version"`
	Origin            string                  `json:"origin"`
	Size              uint64                  `json:"size"`
	Root              []byte                  `json:"root"`
	Range             [][]byte                `json:"range"`
	Sources           map[string]*SourceStats `json:"sources"`
	HaveAdmitted      bool                    `json:"have_admitted,omitempty"`
	LastAdmitted      int64                   `json:"last_admitted_unix_nano,omitempty"`
	LastAdmittedIndex uint64                  `json:"last_admitted_index,omitempty"`
	// DedupCount is the number of records of the dedup file that belong
	// to this state.
	DedupCount uint64 `json:"dedup_count"`

	dedup      map[[16]byte]uint64
	dedupOrder []dedupRec
}

type dedupRec struct {
	key [16]byte
	idx uint64
}

const dedupRecSize = 24

func newState(origin string) *State {
	return &State{Version: stateVersion, Origin: origin, Sources: map[string]*SourceStats{}, dedup: map[[16]byte]uint64{}}
}

// dedupPath is where the dedup set of the state file path lives.
func dedupPath(path string) string { return path + ".dedup" }

// LoadState reads a state file written by Save, and its dedup file
// (path + ".dedup"). A missing state file is (nil, nil): start afresh.
func LoadState(path string) (*State, error) {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	st := &State{}
	if err := json.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("state file %s: %v", path, err)
	}
	if st.Version != stateVersion {
		return nil, fmt.Errorf("state file %s: version %d, want %d", path, st.Version, stateVersion)
	}
	if len(st.Root) != 32 && st.Size > 0 {
		return nil, fmt.Errorf("state file %s: root is %d bytes", path, len(st.Root))
	}
	if st.Sources == nil {
		st.Sources = map[string]*SourceStats{}
	}
	d, err := os.ReadFile(dedupPath(path))
	if err != nil && !(os.IsNotExist(err) && st.DedupCount == 0) {
		return nil, fmt.Errorf("state dedup file: %v", err)
	}
	if uint64(len(d)) < st.DedupCount*dedupRecSize {
		return nil, fmt.Errorf("state dedup file %s: %d bytes, the state needs %d records", dedupPath(path), len(d), st.DedupCount)
	}
	st.dedup = make(map[[16]byte]uint64, st.DedupCount)
	st.dedupOrder = make([]dedupRec, 0, st.DedupCount)
	for i := uint64(0); i < st.DedupCount; i++ {
		var r dedupRec
		rec := d[i*dedupRecSize:]
		copy(r.key[:], rec[:16])
		r.idx = binary.BigEndian.Uint64(rec[16:24])
		st.dedup[r.key] = r.idx
		st.dedupOrder = append(st.dedupOrder, r)
	}
	return st, nil
}

// Save writes the state durably: first the dedup file, then the state
// file, each replaced atomically. The state file names how many dedup
// records are its own, so a crash in between leaves a usable pair.
func (st *State) Save(path string) error {
	d := make([]byte, 0, len(st.dedupOrder)*dedupRecSize)
	for _, r := range st.dedupOrder {
		d = append(d, r.key[:]...)
		d = binary.BigEndian.AppendUint64(d, r.idx)
	}
	if err := durable.WriteAtomic(dedupPath(path), d, 0o644); err != nil {
		return err
	}
	st.DedupCount = uint64(len(st.dedupOrder))
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return durable.WriteAtomic(path, append(b, '\n'), 0o644)
}
