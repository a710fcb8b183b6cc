package store

// EraseWithoutPurge leaves the store as a crash between the tombstone and
// the purge of ErasePayload would: tombstone and marker written, no purge.
func EraseWithoutPurge(s *Store, digest [32]byte, tombstone []byte) error {
	b := s.db.NewBatch()
	defer b.Close()
	b.Delete(payloadKey(digest), nil)
	b.Set(erasedKey(digest), tombstone, nil)
	b.Set(purgeKey(digest), nil, nil)
	return b.Commit(nil)
}
