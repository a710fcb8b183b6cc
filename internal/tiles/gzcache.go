package tiles

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"hash/crc32"
	"sync"
	"sync/atomic"

	lru "github.com/hashicorp/golang-lru/v2"
)

// DefaultGzipCacheBytes bounds the compressed full entry bundles a handler
// keeps in memory (WithGzipCache).
const DefaultGzipCacheBytes = 32 << 20

// gzipCacheMaxEntries bounds the number of cached bundles, whatever their
// size, so the LRU's own bookkeeping stays small.
const gzipCacheMaxEntries = 4096

// gzipCache holds the gzip encoding of full entry bundles by path, so each
// is compressed once however many clients read it. Only full bundles are
// cached: a partial is served while its tile fills and is then deleted, so
// compressing it once more is cheap and keeping it would waste the space.
// The cache is bounded by the compressed bytes it holds (plus a bound on
// entries); when full, the least recently used bundles go first.
type gzipCache struct {
	max   int64
	bytes atomic.Int64
	lru   *lru.Cache[string, []byte]
	mu    sync.Mutex // serialises Add and the evictions that follow it
}

func newGzipCache(maxBytes int64) *gzipCache {
	c := &gzipCache{max: maxBytes}
	l, err := lru.NewWithEvict(gzipCacheMaxEntries, func(_ string, gz []byte) { c.bytes.Add(-int64(len(gz))) })
	if err != nil {
		panic(err) // only for a non-positive size
	}
	c.lru = l
	return c
}

func (c *gzipCache) get(path string) ([]byte, bool) { return c.lru.Get(path) }

func (c *gzipCache) add(path string, gz []byte) {
	if int64(len(gz)) > c.max {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lru.Contains(path) {
		return
	}
	c.bytes.Add(int64(len(gz)))
	c.lru.Add(path, gz)
	for c.bytes.Load() > c.max {
		if _, _, ok := c.lru.RemoveOldest(); !ok {
			break
		}
	}
}

// gzipWriters reuses compressors: a gzip.Writer holds ~800 KiB of state.
var gzipWriters = sync.Pool{New: func() any {
	w, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed) // BestSpeed is a valid level
	return w
}}

// gzipBytes compresses b. BestSpeed: entry bundles are mostly digests and
// compress little better at higher levels, and a bundle that is not cached
// is compressed on the request's time.
func gzipBytes(b []byte) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(len(b)/2 + 64)
	zw := gzipWriters.Get().(*gzip.Writer)
	defer gzipWriters.Put(zw)
	zw.Reset(&buf)
	if _, err := zw.Write(b); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// etag is the strong entity tag of a tile or entry bundle's bytes b in one
// representation (RFC 9110 section 8.8.3): the CRC-32 and length of the
// uncompressed bytes, which name the content at a path that never changes
// (a different log served at the same URL gives different bytes), and the
// content coding, since the gzip and identity bodies differ.
func etag(b []byte, gzipped bool) string { return etagOf(crc32.ChecksumIEEE(b), len(b), gzipped) }

func etagOf(crc uint32, n int, gzipped bool) string {
	coding := "id"
	if gzipped {
		coding = "gz"
	}
	return fmt.Sprintf(`"%08x-%x-%s"`, crc, n, coding)
}
