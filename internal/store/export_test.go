package store

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
