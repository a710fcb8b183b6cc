package server

import (
	"context"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/transparency-dev/tessera"
)

// tileKey names a tile or entry bundle as requested: level (-1 for entry
// bundles), index and partial width. What is stored under a key never
// changes: tiles and bundles are immutable once written, a partial of width
// p included, and when a partial has been replaced by its full tile the
// reader returns the full one, whose prefix is the partial.
type tileKey struct {
	level int64
	index uint64
	p     uint8
}

// cachingReader keeps recently read tiles and entry bundles in memory, so
// proofs and receipts do not read the same files again and again, and the
// hashed subtrees of recently used tiles, so a proof is a few lookups.
type cachingReader struct {
	tessera.LogReader
	tiles   *lru.Cache[tileKey, []byte]
	bundles *lru.Cache[tileKey, []byte]
	nodes   *lru.Cache[tileKey, tileNodes]
	// roots holds tree roots below the latest checkpoint's size that the
	// self-check has proven consistent with a signed checkpoint.
	roots *lru.Cache[uint64, []byte]
}

// The caches are bounded by entries, sized for memory: a tile is at most
// 8 KiB, an entry bundle about 64 KiB (256 leaves of ~250 bytes), a tile's
// nodes 8 KiB above the tile itself (which they share with the tile cache
// while it holds it) — at most 16 + 16 + 32 MiB. The nodes cache covers the
// level-0 tiles of a log of half a million entries; past that, a proof for a
// random old entry rehashes one tile (255 hashes) about every other time.
const (
	tileCacheEntries   = 2048
	bundleCacheEntries = 256
	nodeCacheEntries   = 2048
	rootCacheEntries   = 4096
)

func newCachingReader(r tessera.LogReader) *cachingReader {
	return &cachingReader{
		LogReader: r,
		tiles:     newLRU[[]byte](tileCacheEntries),
		bundles:   newLRU[[]byte](bundleCacheEntries),
		nodes:     newLRU[tileNodes](nodeCacheEntries),
		roots:     must(lru.New[uint64, []byte](rootCacheEntries)),
	}
}

func newLRU[V any](n int) *lru.Cache[tileKey, V] { return must(lru.New[tileKey, V](n)) }

func must[C any](c C, err error) C {
	if err != nil {
		panic(err) // only for a non-positive size
	}
	return c
}

func (c *cachingReader) ReadTile(ctx context.Context, level, index uint64, p uint8) ([]byte, error) {
	return cached(c.tiles, tileKey{int64(level), index, p}, func() ([]byte, error) { return c.LogReader.ReadTile(ctx, level, index, p) })
}

func (c *cachingReader) ReadEntryBundle(ctx context.Context, index uint64, p uint8) ([]byte, error) {
	return cached(c.bundles, tileKey{-1, index, p}, func() ([]byte, error) { return c.LogReader.ReadEntryBundle(ctx, index, p) })
}

func cached(c *lru.Cache[tileKey, []byte], k tileKey, read func() ([]byte, error)) ([]byte, error) {
	if b, ok := c.Get(k); ok {
		return b, nil
	}
	b, err := read()
	if err != nil {
		return nil, err
	}
	c.Add(k, b)
	return b, nil
}
