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
	return putVersion1(s, es, withEventID, false)
}

// PutAsVersion1Binary writes es as a binary of index version 1 (from before
// the 'e' keys) running on a migrated store would: 'd' and 'h' keys, the
// version key left as it is.
func PutAsVersion1Binary(s *Store, es []Indexed) error {
	return putVersion1(s, es, false, true)
}

func putVersion1(s *Store, es []Indexed, withEventID, keepVersion bool) error {
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
	if !keepVersion {
		if err := b.Delete(keyIndexVersion, nil); err != nil {
			return err
		}
	}
	return b.Commit(pebble.Sync)
}

// SetVersion1Watermark writes the watermark where index version 1 kept it.
func SetVersion1Watermark(s *Store, size uint64) error {
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], size)
	return s.idx.Set(keyWatermarkV1, v[:], pebble.Sync)
}

// HasVersion1Watermark says whether version 1's watermark key is present.
func HasVersion1Watermark(s *Store) (bool, error) {
	_, ok, err := s.getIndex(keyWatermarkV1)
	return ok, err
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

// EventElsewhere is EventsElsewhere for one key (the server asks for a
// whole Append at once).
func (s *Store) EventElsewhere(eventID, source string) ([]Located, error) {
	out, err := s.EventsElsewhere([]EventKey{{Source: source, EventID: eventID}})
	if err != nil {
		return nil, err
	}
	return out[0], nil
}
