// Package store keeps what Stele holds beside the Tessera log on one
// machine: the salted payloads that leaves commit to, the exact dedup index
// on (source, event_id), and an index from leaf hash to log index.
//
// It is backed by Pebble, an LSM key-value store with a write-ahead log, so
// a crash at any moment leaves a consistent store: every batch is applied
// whole or not at all, and batches survive in the order they were written.
//
// Payloads are written with a synced commit before their leaf is handed to
// Tessera. The dedup and leaf-hash indexes are derived data: they are written
// without an fsync and can always be rebuilt from the log, because leaves
// carry source and event_id. The store keeps a watermark, the log size below
// which both indexes are known complete, so recovery only rescans the tail.
package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// SaltSize is the length of a payload salt.
const SaltSize = 32

// MaxSourceLen is the longest source the indexes take (leaf v1's limit).
const MaxSourceLen = 255

// ErrNotFound is returned when a key is absent.
var ErrNotFound = errors.New("not found")

const (
	prefixDedup    = 'd' // d | u8 len(source) | source | event_id -> u64 index (index version 1; migrated to 'e')
	prefixLeafHash = 'h' // h | leaf hash (32)                      -> u64 index
	prefixEventID  = 'e' // e | u16 len(event_id) | event_id | source -> u64 index: the dedup index
	prefixPayload  = 'P' // P | admitted (u64 ns) | digest (32)     -> salt (32) | payload
	prefixLegacy   = 'p' // p | digest (32)                         -> salt (32) | payload, without an admission time
	prefixErased   = 't' // t | digest (32)                         -> tombstone (opaque to the store)
	prefixPurge    = 'u' // u | digest (32)                         -> admitted (u64 ns, or empty) while the erased bytes may still be on disk
)

var (
	// keyWatermark is index version 2's watermark. Version 1's
	// (keyWatermarkV1) is moved to it by the migration, so that a binary
	// of version 1 opened on a migrated store finds no watermark and
	// rebuilds its 'd' keys from the log rather than deduplicating against
	// keys that are no longer written.
	keyWatermark    = []byte("m/watermark-v2")
	keyWatermarkV1  = []byte("m/watermark")
	keyIndexVersion = []byte("m/index-version")
)

// indexVersion is the layout of the index database this version writes.
// Version 1 (no version key) kept the dedup index twice, by source first
// ('d') and by event id first ('e', added later, so older entries have
// only 'd'); version 2 keeps only 'e', which answers both LookupEvent and
// EventsElsewhere, a third fewer keys to write and compact per event.
// Open migrates a version 1 store (migrateIndexes).
const indexVersion = 2

// Options tune the store. The zero value is fine.
type Options struct {
	// CacheBytes is the block cache size; 0 means 32 MiB.
	CacheBytes int64
	// InMemory keeps everything in memory (for tests of code that is not
	// about durability).
	InMemory bool
	// ReadOnly opens the store without writing to it (a read-only server):
	// writes fail.
	ReadOnly bool
}

// Store is the payload and index store. It is safe for concurrent use.
//
// Payloads and indexes live in two Pebble databases (subdirectories
// "payloads" and "index" of the store's directory): the indexes are small and
// read on every admission, and keeping them apart from the bulky payloads
// keeps those reads in memory.
type Store struct {
	db       *pebble.DB // payloads
	idx      *pebble.DB // dedup and leaf-hash indexes, watermark
	readOnly bool
	// legacyDedup is set on a read-only store of index version 1, which
	// Open cannot migrate: LookupEvent reads the 'd' keys.
	legacyDedup bool
}

// Open opens (creating if needed) the store in dir.
func Open(dir string, o Options) (*Store, error) {
	cache := o.CacheBytes
	if cache == 0 {
		cache = 32 << 20
	}
	c := pebble.NewCache(cache)
	defer c.Unref()
	open := func(name string, memtable uint64) (*pebble.DB, error) {
		opts := &pebble.Options{
			Cache:                       c,
			MemTableSize:                memtable,
			MemTableStopWritesThreshold: 4,
			Logger:                      quietLogger{},
			ReadOnly:                    o.ReadOnly,
		}
		// Bloom filters let a lookup for an absent key (every new event's
		// dedup check) skip reading data blocks.
		for i := range opts.Levels {
			opts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
		}
		opts.FS = vfs.Default
		if o.InMemory {
			opts.FS = vfs.NewMem()
		}
		if name == "payloads" {
			// Erased payloads must not linger in old write-ahead logs:
			// see scrubCleaner.
			opts.Cleaner = scrubCleaner{}
			opts.FS = scrubFS{opts.FS}
		}
		db, err := pebble.Open(filepath.Join(dir, name), opts)
		if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EWOULDBLOCK) || (err != nil && strings.Contains(err.Error(), "lock held")) {
			return nil, fmt.Errorf("the store in %s is locked by another process: is another stele-server running on this data directory? stop it first", dir)
		}
		if err != nil {
			return nil, fmt.Errorf("opening the %s store in %s: %w", name, dir, err)
		}
		return db, nil
	}
	// Payload memtables of 8 MiB, not 32: Pebble grows a new database's
	// memtables from 256 KiB by doubling and reuses a flushed one's memory
	// only at the full size, so each smaller step is fresh memory that
	// faults in page by page as payloads are copied into it (10 % of a
	// fresh server's ingest CPU with 32 MiB; the same bytes are copied
	// either way). Up to 4 memtables queue (MemTableStopWritesThreshold):
	// 32 MiB at most instead of 128. Payload keys arrive in admission
	// order, so the extra, smaller flushes are moved down the levels
	// rather than rewritten. docs/performance.md, "Admission path".
	db, err := open("payloads", 8<<20)
	if err != nil {
		return nil, err
	}
	idx, err := open("index", 16<<20)
	if err != nil {
		db.Close()
		return nil, err
	}
	s := &Store{db: db, idx: idx, readOnly: o.ReadOnly}
	if err := s.migrateIndexes(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// migrateIndexes brings the index database to indexVersion: each 'd'
// dedup key is written again as its 'e' key (the same entry, so rewriting
// one that exists changes nothing), and then, in one synced batch, the 'd'
// keys are deleted and the version recorded. A crash part way leaves the
// 'd' keys and no version, and the next Open starts over. A read-only
// store is left as it is and read the old way.
func (s *Store) migrateIndexes() error {
	v, ok, err := s.getIndex(keyIndexVersion)
	if err != nil {
		return err
	}
	// A version 1 watermark on a store of version 2 means a version 1
	// binary ran on it since (it rebuilt its own keys from the log, having
	// found no watermark of its own): migrate what it wrote too.
	_, v1ran, err := s.getIndex(keyWatermarkV1)
	if err != nil {
		return err
	}
	if ok && v >= indexVersion && !v1ran {
		return nil
	}
	if s.readOnly {
		s.legacyDedup = true
		return nil
	}
	it, err := s.idx.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixDedup}, UpperBound: []byte{prefixDedup + 1}})
	if err != nil {
		return fmt.Errorf("migrating the dedup index: %w", err)
	}
	b := s.idx.NewBatch()
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		if len(k) < 2 || len(k) < 2+int(k[1]) || len(it.Value()) != 8 {
			b.Close()
			it.Close()
			return fmt.Errorf("migrating the dedup index: record %x is corrupt", k)
		}
		source, eventID := string(k[2:2+int(k[1])]), string(k[2+int(k[1]):])
		if err := b.Set(eventIDKey(eventID, source), it.Value(), nil); err != nil {
			b.Close()
			it.Close()
			return fmt.Errorf("migrating the dedup index: %w", err)
		}
		if b.Len() >= 4<<20 {
			// Not synced: the final batch is, and is written after these.
			if err := b.Commit(pebble.NoSync); err != nil {
				it.Close()
				return fmt.Errorf("migrating the dedup index: %w", err)
			}
			b.Close()
			b = s.idx.NewBatch()
		}
	}
	err = it.Close()
	defer b.Close()
	if err != nil {
		return fmt.Errorf("migrating the dedup index: %w", err)
	}
	var ver [8]byte
	binary.BigEndian.PutUint64(ver[:], indexVersion)
	if err := b.DeleteRange([]byte{prefixDedup}, []byte{prefixDedup + 1}, nil); err != nil {
		return fmt.Errorf("migrating the dedup index: %w", err)
	}
	if w, ok, err := s.getIndex(keyWatermarkV1); err != nil {
		return fmt.Errorf("migrating the dedup index: %w", err)
	} else if ok {
		var v [8]byte
		binary.BigEndian.PutUint64(v[:], w)
		if err := b.Set(keyWatermark, v[:], nil); err != nil {
			return fmt.Errorf("migrating the dedup index: %w", err)
		}
	} else if err := b.Delete(keyWatermark, nil); err != nil {
		// No version 1 watermark: rescan the whole log to be sure.
		return fmt.Errorf("migrating the dedup index: %w", err)
	}
	if err := b.Delete(keyWatermarkV1, nil); err != nil {
		return fmt.Errorf("migrating the dedup index: %w", err)
	}
	if err := b.Set(keyIndexVersion, ver[:], nil); err != nil {
		return fmt.Errorf("migrating the dedup index: %w", err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("migrating the dedup index: %w", err)
	}
	return nil
}

// Close flushes and closes the store.
func (s *Store) Close() error {
	var errs []error
	for _, db := range []*pebble.DB{s.db, s.idx} {
		if s.readOnly {
			// nothing to flush
		} else if err := db.Flush(); err != nil {
			errs = append(errs, fmt.Errorf("flushing store: %w", err))
		}
		if err := db.Close(); err != nil {
			errs = append(errs, fmt.Errorf("closing store: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Ref names a stored payload by what its leaf records: the digest the leaf
// commits to and the time the leaf says it was admitted.
//
// The store lays payloads out in admission order, so that the bulk of its
// bytes arrive in key order: Pebble then moves flushed tables down its
// levels without rewriting them, and ingest costs the same on a log of ten
// million entries as on an empty one (keyed by digest alone, every
// compaction rewrote payloads scattered over the whole key space). A zero
// Admitted names a payload stored by digest alone, as stores written before
// this layout hold them; GetPayload falls back to that key, so old stores
// read on.
type Ref struct {
	Admitted time.Time
	Digest   [32]byte
}

// Payload is one payload to store.
type Payload struct {
	Digest [32]byte
	// Admitted is the admission time its leaf records (see Ref); zero
	// stores it by digest alone.
	Admitted time.Time
	Salt     []byte
	Data     []byte
}

// Ref returns the reference that reads p back.
func (p Payload) Ref() Ref { return Ref{Admitted: p.Admitted, Digest: p.Digest} }

// PutPayloads stores payloads with a synced commit: when it returns nil they
// survive a crash.
func (s *Store) PutPayloads(ps []Payload) error {
	if len(ps) == 0 {
		return nil
	}
	// Sized up front, so the batch's buffer is not regrown (and copied)
	// while staging: key, salt, payload and a record header each.
	size := 0
	for _, p := range ps {
		size += 1 + 8 + 32 + SaltSize + len(p.Data) + 16
	}
	b := s.db.NewBatchWithSize(size)
	defer b.Close()
	for _, p := range ps {
		if len(p.Salt) != SaltSize {
			return fmt.Errorf("payload %x: salt is %d bytes, want %d", p.Digest, len(p.Salt), SaltSize)
		}
		// Salt and payload are copied straight into the batch (no
		// intermediate value).
		k := payloadKey(p.Ref())
		op := b.SetDeferred(len(k), SaltSize+len(p.Data))
		copy(op.Key, k)
		copy(op.Value, p.Salt)
		copy(op.Value[SaltSize:], p.Data)
		if err := op.Finish(); err != nil {
			return fmt.Errorf("staging payload: %w", err)
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("writing payloads: %w", err)
	}
	return nil
}

// GetPayload returns the salt and payload bytes stored under r, ErrErased
// for an erased payload, or ErrNotFound.
func (s *Store) GetPayload(r Ref) (salt, data []byte, err error) {
	digest := r.Digest
	v, closer, err := s.db.Get(payloadKey(r))
	if errors.Is(err, pebble.ErrNotFound) && !r.Admitted.IsZero() {
		v, closer, err = s.db.Get(legacyKey(digest))
	}
	if errors.Is(err, pebble.ErrNotFound) {
		if _, terr := s.Tombstone(digest); terr == nil {
			return nil, nil, ErrErased
		}
		return nil, nil, ErrNotFound
	}
	if err != nil {
		return nil, nil, fmt.Errorf("reading payload: %w", err)
	}
	defer closer.Close()
	if len(v) < SaltSize {
		return nil, nil, fmt.Errorf("payload record for %x is corrupt: %d bytes", digest, len(v))
	}
	out := append([]byte(nil), v...)
	return out[:SaltSize:SaltSize], out[SaltSize:], nil
}

// ErrErased is returned by GetPayload for a payload replaced by a tombstone.
var ErrErased = errors.New("payload erased")

// Tombstone returns the tombstone stored in place of an erased payload, or
// ErrNotFound if the payload was never erased.
func (s *Store) Tombstone(digest [32]byte) ([]byte, error) {
	v, closer, err := s.db.Get(erasedKey(digest))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("reading tombstone: %w", err)
	}
	defer closer.Close()
	return append([]byte(nil), v...), nil
}

// ErasePayload replaces the payload (and salt) stored under r by
// tombstone, in one synced batch, and then pushes the deletion down to disk:
// it flushes the memtable and compacts the payload's key range to the
// bottom level, so that no live SSTable holds the old value any more, and
// the write-ahead log that held it becomes obsolete. Obsolete files are
// removed by Pebble in the background, write-ahead logs zero-filled first
// (scrubCleaner); see docs/security.md for what this does and does not
// guarantee. If a tombstone already exists it is returned with
// already=true and nothing changes.
func (s *Store) ErasePayload(ctx context.Context, r Ref, tombstone []byte) (existing []byte, already bool, err error) {
	if t, err := s.Tombstone(r.Digest); err == nil {
		return t, true, nil
	} else if !errors.Is(err, ErrNotFound) {
		return nil, false, err
	}
	b := s.db.NewBatch()
	defer b.Close()
	if err := stageErasure(b, r, tombstone); err != nil {
		return nil, false, err
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return nil, false, fmt.Errorf("writing tombstone: %w", err)
	}
	if err := s.purgeMarked(ctx, r); err != nil {
		return nil, false, err
	}
	return tombstone, false, nil
}

// stageErasure stages in b the deletion of r's payload, its tombstone and
// the marker that says its bytes may still be on disk until the purge has
// run (so a crash before the purge finishes is caught on the next start by
// PurgePending).
func stageErasure(b *pebble.Batch, r Ref, tombstone []byte) error {
	for _, k := range payloadKeys(r) {
		if err := b.Delete(k, nil); err != nil {
			return fmt.Errorf("staging erasure: %w", err)
		}
	}
	if err := b.Set(erasedKey(r.Digest), tombstone, nil); err != nil {
		return fmt.Errorf("staging tombstone: %w", err)
	}
	if err := b.Set(purgeKey(r.Digest), admittedBytes(r.Admitted), nil); err != nil {
		return fmt.Errorf("staging purge marker: %w", err)
	}
	return nil
}

// purgeMarked purges r's erased bytes and then drops its marker.
func (s *Store) purgeMarked(ctx context.Context, r Ref) error {
	if err := s.Purge(ctx, r); err != nil {
		return err
	}
	// Losing this delete in a crash only means purging again: no sync.
	if err := s.db.Delete(purgeKey(r.Digest), pebble.NoSync); err != nil {
		return fmt.Errorf("clearing purge marker: %w", err)
	}
	return nil
}

// PurgePending finishes the purges that a crash interrupted: every erased
// payload whose bytes may still be on disk is purged again. It returns how
// many there were. The server calls it on start.
func (s *Store) PurgePending(ctx context.Context) (int, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixPurge}, UpperBound: []byte{prefixPurge + 1}})
	if err != nil {
		return 0, fmt.Errorf("listing pending purges: %w", err)
	}
	var pending []Ref
	for it.First(); it.Valid(); it.Next() {
		if k := it.Key(); len(k) == 33 {
			r := Ref{Digest: [32]byte(k[1:])}
			if v := it.Value(); len(v) == 8 {
				r.Admitted = time.Unix(0, int64(binary.BigEndian.Uint64(v)))
			}
			pending = append(pending, r)
		}
	}
	if err := it.Close(); err != nil {
		return 0, fmt.Errorf("listing pending purges: %w", err)
	}
	for _, r := range pending {
		if err := s.purgeMarked(ctx, r); err != nil {
			return 0, err
		}
	}
	return len(pending), nil
}

// Purge flushes the payload store and compacts the key range of r's
// payload, so that the bytes of a deleted payload leave the live SSTables
// and the write-ahead log. ErasePayload calls it; calling it again (after a
// crash between the tombstone and the compaction) is harmless.
func (s *Store) Purge(ctx context.Context, r Ref) error {
	if err := s.db.Flush(); err != nil {
		return fmt.Errorf("flushing payload store: %w", err)
	}
	for _, k := range payloadKeys(r) {
		if err := s.db.Compact(ctx, k, append(k, 0), true); err != nil {
			return fmt.Errorf("compacting erased payload: %w", err)
		}
	}
	return nil
}

// Indexed is one log entry to record in the dedup and leaf-hash indexes.
type Indexed struct {
	Source   string
	EventID  string
	LeafHash [32]byte
	Index    uint64
}

// LookupEvent returns the index of the entry holding (source, eventID).
func (s *Store) LookupEvent(source, eventID string) (uint64, bool, error) {
	if len(source) > MaxSourceLen {
		return 0, false, fmt.Errorf("source is %d bytes, over the limit of %d", len(source), MaxSourceLen)
	}
	if s.legacyDedup {
		return s.getIndex(legacyDedupKey(source, eventID))
	}
	return s.getIndex(eventIDKey(eventID, source))
}

// LookupLeafHash returns the index of the entry with the given leaf hash.
func (s *Store) LookupLeafHash(h [32]byte) (uint64, bool, error) {
	return s.getIndex(leafHashKey(h))
}

func (s *Store) getIndex(k []byte) (uint64, bool, error) {
	v, closer, err := s.idx.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("reading index: %w", err)
	}
	defer closer.Close()
	if len(v) != 8 {
		return 0, false, fmt.Errorf("index record is corrupt: %d bytes", len(v))
	}
	return binary.BigEndian.Uint64(v), true, nil
}

// PutIndexes records entries in the dedup and leaf-hash indexes. It does not
// fsync: the indexes are rebuilt from the log past the watermark on start.
func (s *Store) PutIndexes(es []Indexed) error {
	b := s.idx.NewBatch()
	defer b.Close()
	var v [8]byte
	for _, e := range es {
		if len(e.Source) > MaxSourceLen {
			return fmt.Errorf("entry %d: source is %d bytes, over the limit of %d", e.Index, len(e.Source), MaxSourceLen)
		}
		binary.BigEndian.PutUint64(v[:], e.Index)
		if err := b.Set(eventIDKey(e.EventID, e.Source), v[:], nil); err != nil {
			return fmt.Errorf("staging dedup entry: %w", err)
		}
		if err := b.Set(leafHashKey(e.LeafHash), v[:], nil); err != nil {
			return fmt.Errorf("staging leaf hash entry: %w", err)
		}
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("writing indexes: %w", err)
	}
	return nil
}

// Watermark returns the log size below which every entry is in the indexes.
func (s *Store) Watermark() (uint64, error) {
	key := keyWatermark
	if s.legacyDedup {
		key = keyWatermarkV1
	}
	n, ok, err := s.getIndex(key)
	if !ok || err != nil {
		return 0, err
	}
	return n, nil
}

// SetWatermark records that every entry below size is in the indexes. Call it
// only after the PutIndexes calls for those entries have returned.
func (s *Store) SetWatermark(size uint64) error {
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], size)
	if err := s.idx.Set(keyWatermark, v[:], pebble.NoSync); err != nil {
		return fmt.Errorf("writing watermark: %w", err)
	}
	return nil
}

// ResetIndexes deletes the dedup and leaf-hash indexes and the watermark, so
// that they can be rebuilt from the log. Payloads are untouched.
func (s *Store) ResetIndexes() error {
	b := s.idx.NewBatch()
	defer b.Close()
	for _, p := range []byte{prefixDedup, prefixLeafHash, prefixEventID} {
		if err := b.DeleteRange([]byte{p}, []byte{p + 1}, nil); err != nil {
			return fmt.Errorf("staging index reset: %w", err)
		}
	}
	for _, k := range [][]byte{keyWatermark, keyWatermarkV1} {
		if err := b.Delete(k, nil); err != nil {
			return fmt.Errorf("staging index reset: %w", err)
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("resetting indexes: %w", err)
	}
	return nil
}

// legacyDedupKey is index version 1's dedup key, read only on a read-only
// store of that version.
func legacyDedupKey(source, eventID string) []byte {
	k := make([]byte, 0, 2+len(source)+len(eventID))
	k = append(k, prefixDedup, byte(len(source)))
	k = append(k, source...)
	return append(k, eventID...)
}

// eventIDKey is an entry's dedup key: by its event id first, so that the
// sources holding one event id are one prefix scan apart
// (EventsElsewhere).
func eventIDKey(eventID, source string) []byte {
	k := make([]byte, 0, 3+len(eventID)+len(source))
	k = append(k, prefixEventID, byte(len(eventID)>>8), byte(len(eventID)))
	k = append(k, eventID...)
	return append(k, source...)
}

// Located is an entry of the log found by its event id under a source.
type Located struct {
	Source string
	Index  uint64
}

// MaxElsewhere is the most entries EventsElsewhere returns per key.
const MaxElsewhere = 8

// EventKey is a dedup key: an event id under a source.
type EventKey struct{ Source, EventID string }

// EventsElsewhere returns, for each key in order, up to MaxElsewhere
// entries whose event id is the key's under a source other than the key's,
// in source order. It reads them through one iterator: opening and closing an iterator per event cost as much as
// the lookup itself, and seeking in key order lets each seek start where
// the last one ended.
func (s *Store) EventsElsewhere(keys []EventKey) ([][]Located, error) {
	out := make([][]Located, len(keys))
	prefixes := make([][]byte, len(keys))
	order := make([]int, 0, len(keys))
	for i, k := range keys {
		if len(k.EventID) > 0xffff {
			continue // no event id this long is indexed (the leaf limits it far lower)
		}
		prefixes[i] = eventIDKey(k.EventID, "")
		order = append(order, i)
	}
	if len(order) == 0 {
		return out, nil
	}
	slices.SortFunc(order, func(a, b int) int { return bytes.Compare(prefixes[a], prefixes[b]) })
	it, err := s.idx.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixEventID}, UpperBound: []byte{prefixEventID + 1}})
	if err != nil {
		return nil, fmt.Errorf("reading event id index: %w", err)
	}
	defer it.Close()
	for _, i := range order {
		prefix := prefixes[i]
		for ok := it.SeekGE(prefix); ok && bytes.HasPrefix(it.Key(), prefix) && len(out[i]) < MaxElsewhere; ok = it.Next() {
			src := string(it.Key()[len(prefix):])
			if src == keys[i].Source {
				continue
			}
			v := it.Value()
			if len(v) != 8 {
				return nil, fmt.Errorf("event id index record is corrupt: %d bytes", len(v))
			}
			out[i] = append(out[i], Located{Source: src, Index: binary.BigEndian.Uint64(v)})
		}
		if err := it.Error(); err != nil {
			return nil, fmt.Errorf("reading event id index: %w", err)
		}
	}
	return out, nil
}

// successor is the least key greater than every key that starts with
// prefix (nil when there is none: all 0xff).
func successor(prefix []byte) []byte {
	for i := len(prefix) - 1; i >= 0; i-- {
		if prefix[i] != 0xff {
			s := append([]byte(nil), prefix[:i+1]...)
			s[i]++
			return s
		}
	}
	return nil
}

func leafHashKey(h [32]byte) []byte {
	return append([]byte{prefixLeafHash}, h[:]...)
}

func purgeKey(d [32]byte) []byte {
	return append([]byte{prefixPurge}, d[:]...)
}

// payloadKey is where PutPayloads stores a payload: in admission order, or
// by digest alone when the admission time is zero.
func payloadKey(r Ref) []byte {
	if r.Admitted.IsZero() {
		return legacyKey(r.Digest)
	}
	k := make([]byte, 0, 1+8+32)
	k = append(k, prefixPayload)
	k = append(k, admittedBytes(r.Admitted)...)
	return append(k, r.Digest[:]...)
}

// payloadKeys are the keys a payload may be under: where this version
// stores it and, for a stored admission time, where earlier ones did.
func payloadKeys(r Ref) [][]byte {
	if r.Admitted.IsZero() {
		return [][]byte{legacyKey(r.Digest)}
	}
	return [][]byte{payloadKey(r), legacyKey(r.Digest)}
}

func legacyKey(d [32]byte) []byte {
	return append([]byte{prefixLegacy}, d[:]...)
}

// admittedBytes encodes an admission time so that keys sort by it; nil for
// the zero time.
func admittedBytes(t time.Time) []byte {
	if t.IsZero() {
		return nil
	}
	return binary.BigEndian.AppendUint64(nil, uint64(t.UnixNano()))
}

func erasedKey(d [32]byte) []byte {
	return append([]byte{prefixErased}, d[:]...)
}

// scrubCleaner and scrubFS together make the payload store remove its
// obsolete files without recycling write-ahead logs, and zero-fill each
// obsolete log (with a sync) before removing it. A recycled log is rewritten
// from its start and keeps the old bytes past its new end, which could hold
// an erased payload.
//
// Pebble does not recycle logs when its cleaner "needs file contents",
// which only its ArchiveCleaner can say (the marker method is unexported),
// so the payload store runs ArchiveCleaner over scrubFS, which turns the
// archiver's "move into archive/" into "zero-fill a log, then remove".
type scrubCleaner struct{ pebble.ArchiveCleaner }

func (scrubCleaner) String() string { return "scrub" }

type scrubFS struct{ vfs.FS }

const archiveDir = "archive"

func isArchive(fs vfs.FS, dir string) bool { return fs.PathBase(dir) == archiveDir }

// MkdirAll skips the archive directory: nothing is ever put in it.
func (f scrubFS) MkdirAll(dir string, perm os.FileMode) error {
	if isArchive(f.FS, dir) {
		return nil
	}
	return f.FS.MkdirAll(dir, perm)
}

// Rename into the archive directory removes oldname instead, zero-filling
// it first if it is a write-ahead log.
func (f scrubFS) Rename(oldname, newname string) error {
	if !isArchive(f.FS, f.FS.PathDir(newname)) || f.FS.PathDir(f.FS.PathDir(newname)) != f.FS.PathDir(oldname) {
		return f.FS.Rename(oldname, newname)
	}
	if strings.HasSuffix(oldname, ".log") {
		if err := zeroFile(f.FS, oldname); err != nil {
			return fmt.Errorf("scrubbing %s: %w", oldname, err)
		}
	}
	return f.FS.Remove(oldname)
}

func zeroFile(fs vfs.FS, path string) error {
	fi, err := fs.Stat(path)
	if err != nil {
		return err
	}
	f, err := fs.OpenReadWrite(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	zeros := make([]byte, 1<<16)
	for off := int64(0); off < fi.Size(); off += int64(len(zeros)) {
		n := min(int64(len(zeros)), fi.Size()-off)
		if _, err := f.WriteAt(zeros[:n], off); err != nil {
			f.Close()
			return err
		}
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// quietLogger drops Pebble's informational chatter; errors surface through
// the returned errors.
type quietLogger struct{}

func (quietLogger) Infof(string, ...any)  {}
func (quietLogger) Errorf(string, ...any) {}
func (quietLogger) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf("pebble: "+format, args...))
}
