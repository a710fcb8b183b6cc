package store

import (
	"encoding/binary"

	"github.com/cockroachdb/pebble/v2"
)

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

// PutVersion1Indexes leaves the store as index version 1 wrote it: es in
// the 'd' dedup keys and, where withEventID, also in the 'e' keys (stores
// written before the 'e' keys existed have only 'd'), and no version key.
func PutVersion1Indexes(s *Store, es []Indexed, withEventID bool) error {
	b := s.idx.NewBatch()
	defer b.Close()
	var v [8]byte
	for _, e := range es {
		binary.BigEndian.PutUint64(v[:], e.Index)
		if err := b.Set(legacyDedupKey(e.Source, e.EventID), v[:], nil); err != nil {
			return err
		}
		if withEventID {
			if err := b.Set(eventIDKey(e.EventID, e.Source), v[:], nil); err != nil {
				return err
			}
		}
		if err := b.Set(leafHashKey(e.LeafHash), v[:], nil); err != nil {
			return err
		}
	}
	if err := b.Delete(keyIndexVersion, nil); err != nil {
		return err
	}
	return b.Commit(pebble.Sync)
}

// IndexKeys counts the index database's keys with the given prefix byte.
func IndexKeys(s *Store, prefix byte) (int, error) {
	it, err := s.idx.NewIter(&pebble.IterOptions{LowerBound: []byte{prefix}, UpperBound: []byte{prefix + 1}})
	if err != nil {
		return 0, err
	}
	n := 0
	for it.First(); it.Valid(); it.Next() {
		n++
	}
	return n, it.Close()
}
