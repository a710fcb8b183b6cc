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
// proofs and receipts do not read the same files again and again.
type cachingReader struct {
	tessera.LogReader
	cache *lru.Cache[tileKey, []byte]
}

// tileCacheEntries bounds the cache: at most 8 KiB per tile, 64 KiB per
// bundle (entries are small leaves), so well under 64 MiB.
const tileCacheEntries = 4096

func newCachingReader(r tessera.LogReader) tessera.LogReader {
	c, err := lru.New[tileKey, []byte](tileCacheEntries)
	if err != nil {
		panic(err) // only for a non-positive size
	}
	return &cachingReader{LogReader: r, cache: c}
}

func (c *cachingReader) ReadTile(ctx context.Context, level, index uint64, p uint8) ([]byte, error) {
	return c.get(ctx, tileKey{int64(level), index, p}, func() ([]byte, error) { return c.LogReader.ReadTile(ctx, level, index, p) })
}

func (c *cachingReader) ReadEntryBundle(ctx context.Context, index uint64, p uint8) ([]byte, error) {
	return c.get(ctx, tileKey{-1, index, p}, func() ([]byte, error) { return c.LogReader.ReadEntryBundle(ctx, index, p) })
}

func (c *cachingReader) get(_ context.Context, k tileKey, read func() ([]byte, error)) ([]byte, error) {
	if b, ok := c.cache.Get(k); ok {
		return b, nil
	}
	b, err := read()
	if err != nil {
		return nil, err
	}
	c.cache.Add(k, b)
	return b, nil
}
