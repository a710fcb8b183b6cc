// Package tiles serves the read side of a transparency log, as specified by
// C2SP tlog-tiles (https://c2sp.org/tlog-tiles), over HTTP.
//
// The handler answers only the three tlog-tiles resources, relative to the
// handler root:
//
//	GET|HEAD /checkpoint
//	GET|HEAD /tile/<L>/<N>[.p/<W>]
//	GET|HEAD /tile/entries/<N>[.p/<W>]
//
// Paths are parsed strictly: a path is only served if re-encoding the parsed
// coordinates with Tessera's layout package yields exactly the requested path.
// Everything else (including any other file that happens to live next to the
// log, such as Tessera's .state directory) is a 404.
package tiles

import (
	"context"
	"encoding/binary"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/transparency-dev/tessera/api/layout"
)

// Reader is what the handler needs from a log; tessera.LogReader satisfies it.
//
// Implementations must report a resource that does not exist with an error
// that wraps fs.ErrNotExist (os.ErrNotExist), which the handler turns into a
// 404. Any other error is a 500.
//
// ReadTile and ReadEntryBundle must return exactly the requested resource: in
// particular, a request for a partial tile (p > 0) must not silently fall back
// to the full tile. Tessera's own LogReaders do fall back (they are client
// helpers); use DirReader for a POSIX log.
type Reader interface {
	ReadCheckpoint(ctx context.Context) ([]byte, error)
	ReadTile(ctx context.Context, level, index uint64, p uint8) ([]byte, error)
	ReadEntryBundle(ctx context.Context, index uint64, p uint8) ([]byte, error)
}

// Header values used by the handler.
const (
	contentTypeCheckpoint = "text/plain; charset=utf-8"
	contentTypeTile       = "application/octet-stream"

	// cacheControlCheckpoint is sent with the checkpoint, which changes as the log grows.
	cacheControlCheckpoint = "no-cache"
	// cacheControlImmutable is sent with full and partial tiles and entry bundles:
	// the content at a given path (including a partial of width W) never changes.
	cacheControlImmutable = "max-age=31536000, immutable"
	// cacheControlError is sent with every error response: a tile that does
	// not exist yet may exist later.
	cacheControlError = "no-store"
)

// Option configures the handler.
type Option func(*handler)

// WithLogger sets the logger used to report storage errors. The default is slog.Default().
func WithLogger(l *slog.Logger) Option {
	return func(h *handler) {
		if l != nil {
			h.log = l
		}
	}
}

// WithGzipCache bounds the memory that keeps full entry bundles gzipped,
// so that each is compressed once (default DefaultGzipCacheBytes); 0
// compresses on every request that asks for gzip.
func WithGzipCache(maxBytes int64) Option {
	return func(h *handler) {
		h.gz = nil
		if maxBytes > 0 {
			h.gz = newGzipCache(maxBytes)
		}
	}
}

// NewHandler returns an http.Handler serving the tlog-tiles read API of the
// log read by r. Mount it with http.StripPrefix to serve under a prefix.
//
// Entry bundles are sent gzipped to clients that accept it, full ones from a
// bounded cache of their compressed bytes (WithGzipCache). Tiles and entry
// bundles carry a strong ETag per representation and are answered with 304
// Not Modified when the client already holds them (If-None-Match).
func NewHandler(r Reader, opts ...Option) http.Handler {
	h := &handler{r: r, log: slog.Default(), gz: newGzipCache(DefaultGzipCacheBytes)}
	for _, o := range opts {
		o(h)
	}
	return h
}

type handler struct {
	r   Reader
	log *slog.Logger
	gz  *gzipCache // nil: no cache
}

type kind int

const (
	kindCheckpoint kind = iota + 1
	kindTile
	kindEntries
)

// resource is a parsed, canonical request path.
type resource struct {
	kind  kind
	level uint64
	index uint64
	width uint8
	path  string // the canonical layout path, without a leading slash
}

// parsePath parses p, the path relative to the handler root, with or without
// a single leading slash. It returns false unless p is exactly the canonical
// tlog-tiles path of a checkpoint, tile or entry bundle.
func parsePath(p string) (resource, bool) {
	p = strings.TrimPrefix(p, "/")
	if p == layout.CheckpointPath {
		return resource{kind: kindCheckpoint, path: p}, true
	}
	if rest, ok := strings.CutPrefix(p, "tile/entries/"); ok {
		n, w, err := layout.ParseTileIndexPartial(rest)
		if err != nil || layout.EntriesPath(n, w) != p {
			return resource{}, false
		}
		return resource{kind: kindEntries, index: n, width: w, path: p}, true
	}
	if rest, ok := strings.CutPrefix(p, "tile/"); ok {
		level, nw, ok := strings.Cut(rest, "/")
		if !ok {
			return resource{}, false
		}
		l, n, w, err := layout.ParseTileLevelIndexPartial(level, nw)
		if err != nil || layout.TilePath(l, n, w) != p {
			return resource{}, false
		}
		return resource{kind: kindTile, level: l, index: n, width: w, path: p}, true
	}
	return resource{}, false
}

// requested parses the resource a GET or HEAD request names, or answers
// the request itself (405 for another method, 404 for a path that is not a
// canonical tlog-tiles resource) and returns false.
func requested(w http.ResponseWriter, r *http.Request) (resource, bool) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		w.Header().Set("Cache-Control", cacheControlError)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return resource{}, false
	}
	// A canonical path never needs escaping, so a non-default escaping
	// (RawPath set, e.g. %2F or %30) is not canonical.
	if r.URL.RawPath != "" {
		notFound(w)
		return resource{}, false
	}
	res, ok := parsePath(r.URL.Path)
	if !ok {
		notFound(w)
	}
	return res, ok
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("X-Content-Type-Options", "nosniff")

	res, ok := requested(w, r)
	if !ok {
		return
	}

	ctx := r.Context()
	gzipOK := res.kind == kindEntries && acceptsGzip(r.Header)
	cacheable := gzipOK && res.width == 0 && h.gz != nil
	if cacheable {
		if gz, ok := h.gz.get(res.path); ok {
			// The gzip trailer holds the CRC-32 and length of the bundle.
			crc, n := binary.LittleEndian.Uint32(gz[len(gz)-8:]), binary.LittleEndian.Uint32(gz[len(gz)-4:])
			h.write(w, r, res, gz, etagOf(crc, int(n), true), true)
			return
		}
	}

	var (
		body []byte
		err  error
	)
	switch res.kind {
	case kindCheckpoint:
		body, err = h.r.ReadCheckpoint(ctx)
	case kindTile:
		body, err = h.r.ReadTile(ctx, res.level, res.index, res.width)
	case kindEntries:
		body, err = h.r.ReadEntryBundle(ctx, res.index, res.width)
	}
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			notFound(w)
			return
		}
		lvl := slog.LevelError
		if ctx.Err() != nil {
			// The client went away; not a storage problem.
			lvl = slog.LevelDebug
		}
		h.log.Log(ctx, lvl, "tlog-tiles: read failed", slog.String("resource", res.path), slog.Any("error", err))
		hdr.Set("Cache-Control", cacheControlError)
		http.Error(w, "internal server error", http.StatusInternalServerError)
		return
	}
	if res.kind == kindCheckpoint {
		h.write(w, r, res, body, "", false)
		return
	}
	if gzipOK {
		gz, err := gzipBytes(body)
		if err == nil {
			if cacheable {
				h.gz.add(res.path, gz)
			}
			h.write(w, r, res, gz, etag(body, true), true)
			return
		}
		// Cannot happen when writing to a bytes.Buffer; serve plain.
		h.log.ErrorContext(ctx, "tlog-tiles: gzip failed", slog.String("resource", res.path), slog.Any("error", err))
	}
	h.write(w, r, res, body, etag(body, false), false)
}

// write answers a request for res with body (gzip-encoded if gzipped) and
// its entity tag, or with 304 Not Modified when the client holds that tag.
func (h *handler) write(w http.ResponseWriter, r *http.Request, res resource, body []byte, tag string, gzipped bool) {
	hdr := w.Header()
	switch res.kind {
	case kindCheckpoint:
		hdr.Set("Content-Type", contentTypeCheckpoint)
		hdr.Set("Cache-Control", cacheControlCheckpoint)
	case kindTile:
		hdr.Set("Content-Type", contentTypeTile)
		hdr.Set("Cache-Control", cacheControlImmutable)
	case kindEntries:
		hdr.Set("Content-Type", contentTypeTile)
		hdr.Set("Cache-Control", cacheControlImmutable)
		hdr.Add("Vary", "Accept-Encoding")
		if gzipped {
			hdr.Set("Content-Encoding", "gzip")
		}
	}
	if tag != "" {
		hdr.Set("ETag", tag)
		if noneMatch(r.Header, tag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
	}
	hdr.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	if _, err := w.Write(body); err != nil {
		h.log.DebugContext(r.Context(), "tlog-tiles: write failed", slog.String("resource", res.path), slog.Any("error", err))
	}
}

// noneMatch reports whether the If-None-Match request header names tag or
// is "*" (RFC 9110 section 13.1.2; weak comparison, so W/"x" matches "x").
func noneMatch(h http.Header, tag string) bool {
	for _, v := range h.Values("If-None-Match") {
		for _, t := range strings.Split(v, ",") {
			t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
			if t == "*" || t == tag {
				return true
			}
		}
	}
	return false
}

func notFound(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", cacheControlError)
	http.Error(w, "not found", http.StatusNotFound)
}

// acceptsGzip reports whether the Accept-Encoding request header allows a
// gzip-encoded response (RFC 9110 section 12.5.3): an explicit gzip (or
// x-gzip) coding wins over "*", and q=0 means "not acceptable".
func acceptsGzip(h http.Header) bool {
	gzipQ, starQ := -1.0, -1.0
	for _, v := range h.Values("Accept-Encoding") {
		for _, elem := range strings.Split(v, ",") {
			coding, params, _ := strings.Cut(elem, ";")
			q := 1.0
			for _, param := range strings.Split(params, ";") {
				k, v, ok := strings.Cut(param, "=")
				if !ok || !strings.EqualFold(strings.TrimSpace(k), "q") {
					continue
				}
				f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
				if err != nil || !(f > 0) || f > 1 {
					f = 0
				}
				q = f
			}
			switch strings.ToLower(strings.TrimSpace(coding)) {
			case "gzip", "x-gzip":
				gzipQ = max(gzipQ, q)
			case "*":
				starQ = max(starQ, q)
			}
		}
	}
	if gzipQ >= 0 {
		return gzipQ > 0
	}
	return starQ > 0
}
