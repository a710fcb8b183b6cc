package store

import (
	"bytes"
	"fmt"
	"slices"
)

// Fetched is one payload GetPayloads read: its salt and bytes, or Err
// (ErrErased, ErrNotFound or a read error), as GetPayload would answer.
type Fetched struct {
	Salt, Data []byte
	Err        error
}

// GetPayloads reads the payloads under refs, answering for each what
// GetPayload would, with one iterator over their keys instead of a point
// lookup each. Payload keys lead with the admission time, so the payloads
// of a run of consecutive log entries sit side by side: the iterator walks
// their blocks once (a lookup each would open every table's index and
// filter again), and steps from one payload to the next without a seek
// where they are neighbours. A ref not found under its key (stored by
// digest alone, erased, or missing) is answered by GetPayload. The
// returned error is the iterator's; per-payload outcomes are in Err.
func (s *Store) GetPayloads(refs []Ref) ([]Fetched, error) {
	out := make([]Fetched, len(refs))
	type keyed struct {
		key []byte
		i   int
	}
	ks := make([]keyed, 0, len(refs))
	for i, r := range refs {
		if r.Admitted.IsZero() {
			out[i].Salt, out[i].Data, out[i].Err = s.GetPayload(r)
			continue
		}
		ks = append(ks, keyed{payloadKey(r), i})
	}
	if len(ks) == 0 {
		return out, nil
	}
	slices.SortFunc(ks, func(a, b keyed) int { return bytes.Compare(a.key, b.key) })
	it, err := s.db.NewIter(nil)
	if err != nil {
		return nil, fmt.Errorf("reading payloads: %w", err)
	}
	// Values are copied into one buffer, grown in steps: the callers
	// keep them as long as they keep the answer.
	var arena []byte
	take := func(v []byte) []byte {
		if cap(arena)-len(arena) < len(v) {
			arena = make([]byte, 0, max(len(v), 256<<10))
		}
		arena = append(arena, v...)
		return arena[len(arena)-len(v) : len(arena) : len(arena)]
	}
	var missing []int
	valid := it.SeekGE(ks[0].key)
	for _, k := range ks {
		if valid && bytes.Compare(it.Key(), k.key) < 0 {
			// The next payload is usually the next key.
			if valid = it.Next(); valid && bytes.Compare(it.Key(), k.key) < 0 {
				valid = it.SeekGE(k.key)
			}
		}
		if !valid || !bytes.Equal(it.Key(), k.key) {
			missing = append(missing, k.i)
			continue
		}
		v, err := it.ValueAndErr()
		if err != nil {
			it.Close()
			return nil, fmt.Errorf("reading payload: %w", err)
		}
		if len(v) < SaltSize {
			out[k.i].Err = fmt.Errorf("payload record for %x is corrupt: %d bytes", refs[k.i].Digest, len(v))
			continue
		}
		c := take(v)
		out[k.i].Salt, out[k.i].Data = c[:SaltSize:SaltSize], c[SaltSize:]
	}
	if err := it.Close(); err != nil {
		return nil, fmt.Errorf("reading payloads: %w", err)
	}
	for _, i := range missing {
		out[i].Salt, out[i].Data, out[i].Err = s.GetPayload(refs[i])
	}
	return out, nil
}
