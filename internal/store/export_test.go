package store

import "encoding/binary"

// EraseWithoutPurge leaves the store as a crash between the tombstone and
// the purge of ErasePayload would: tombstone and marker written, no purge.
func EraseWithoutPurge(s *Store, r Ref, tombstone []byte) error {
	b := s.db.NewBatch()
	defer b.Close()
	if err := stageErasure(b, r, tombstone); err != nil {
		return err
	}
	return b.Commit(nil)
}

// MakeIndexV0 turns s's index into one written before index format 1:
// dedup entries under format-0 keys, no format key.
func MakeIndexV0(s *Store, es []Indexed) error {
	b := s.idx.NewBatch()
	defer b.Close()
	if err := b.DeleteRange([]byte{prefixDedup}, []byte{prefixDedup + 1}, nil); err != nil {
		return err
	}
	for _, e := range es {
		v := binary.BigEndian.AppendUint64(nil, e.Index)
		if err := b.Set(dedupKeyV0(e.Source, e.EventID), v, nil); err != nil {
			return err
		}
		if err := b.Set(leafHashKey(e.LeafHash), v, nil); err != nil {
			return err
		}
	}
	if err := b.Delete(keyIndexVersion, nil); err != nil {
		return err
	}
	return b.Commit(nil)
}

// DedupKey is dedupKey.
var DedupKey = dedupKey

// UseIndexV0 makes s read and write format-0 dedup keys, for benchmarks
// that compare the two layouts.
func UseIndexV0(s *Store) { s.dedupV0 = true }
