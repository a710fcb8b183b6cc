package tiles

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// countingReader counts the entry bundles read from the log.
type countingReader struct {
	Reader
	bundles atomic.Int64
}

func (c *countingReader) ReadEntryBundle(ctx context.Context, index uint64, p uint8) ([]byte, error) {
	c.bundles.Add(1)
	return c.Reader.ReadEntryBundle(ctx, index, p)
}

// TestGzipCache checks that full entry bundles are compressed once and then
// served from memory, partial ones every time, that clients not accepting
// gzip get the bundle as stored, and the ETag / If-None-Match behaviour.
func TestGzipCache(t *testing.T) {
	tl := newTestLog(t)
	quiet := WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))
	cr := &countingReader{Reader: DirReader(tl.dir)}
	srv := httptest.NewServer(NewHandler(cr, quiet))
	defer srv.Close()
	tr := srv.Client().Transport.(*http.Transport).Clone()
	tr.DisableCompression = true // see the encoded body
	c := &http.Client{Transport: tr}
	defer c.CloseIdleConnections()
	do := func(method, path string, hdr ...string) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, b
	}
	gunzip := func(b []byte) []byte {
		t.Helper()
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		out, err := io.ReadAll(zr)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	file := func(p string) []byte {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(tl.dir, p))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	full := "/tile/entries/000"
	want := file(full)
	r1, gz1 := do("GET", full, "Accept-Encoding", "gzip")
	r2, gz2 := do("GET", full, "Accept-Encoding", "gzip")
	if n := cr.bundles.Load(); n != 1 {
		t.Errorf("two gzip requests for a full bundle read it %d times, want once (then from the cache)", n)
	}
	if !bytes.Equal(gz1, gz2) || !bytes.Equal(gunzip(gz2), want) {
		t.Errorf("cached gzip body differs from the first or does not decompress to the bundle")
	}
	for _, r := range []*http.Response{r1, r2} {
		if r.Header.Get("Content-Encoding") != "gzip" || r.Header.Get("Cache-Control") != cacheControlImmutable ||
			r.Header.Get("Vary") != "Accept-Encoding" || r.ContentLength != int64(len(gz1)) {
			t.Errorf("gzip response headers: %v (Content-Length %d, body %d)", r.Header, r.ContentLength, len(gz1))
		}
	}
	gzTag := r1.Header.Get("ETag")
	if gzTag == "" || r2.Header.Get("ETag") != gzTag {
		t.Errorf("ETag of the compressed bundle: first %q, from the cache %q", gzTag, r2.Header.Get("ETag"))
	}

	// A client that does not accept gzip gets the stored bytes, with its
	// own ETag, even though the compressed form is cached.
	for _, ae := range []string{"", "identity", "gzip;q=0"} {
		r, b := do("GET", full, "Accept-Encoding", ae)
		if r.Header.Get("Content-Encoding") != "" || !bytes.Equal(b, want) || r.ContentLength != int64(len(want)) {
			t.Errorf("Accept-Encoding %q: Content-Encoding %q, body equal %v", ae, r.Header.Get("Content-Encoding"), bytes.Equal(b, want))
		}
		if tag := r.Header.Get("ETag"); tag == "" || tag == gzTag {
			t.Errorf("Accept-Encoding %q: ETag %q (gzip's is %q)", ae, tag, gzTag)
		}
	}

	// HEAD of a cached bundle: same headers, no body.
	if r, b := do("HEAD", full, "Accept-Encoding", "gzip"); len(b) != 0 || r.ContentLength != int64(len(gz1)) || r.Header.Get("ETag") != gzTag {
		t.Errorf("HEAD: Content-Length %d, ETag %q, body %d bytes", r.ContentLength, r.Header.Get("ETag"), len(b))
	}

	// Conditional requests.
	for _, tc := range []struct {
		ae, inm string
		status  int
	}{
		{"gzip", gzTag, http.StatusNotModified},
		{"gzip", "W/" + gzTag, http.StatusNotModified},
		{"gzip", `"other", ` + gzTag, http.StatusNotModified},
		{"gzip", "*", http.StatusNotModified},
		{"gzip", `"other"`, http.StatusOK},
		{"", gzTag, http.StatusOK}, // the identity body is another representation
	} {
		r, b := do("GET", full, "Accept-Encoding", tc.ae, "If-None-Match", tc.inm)
		if r.StatusCode != tc.status {
			t.Errorf("If-None-Match %q, Accept-Encoding %q: status %d, want %d", tc.inm, tc.ae, r.StatusCode, tc.status)
		}
		if tc.status == http.StatusNotModified && (len(b) != 0 || r.Header.Get("ETag") == "") {
			t.Errorf("304 with a %d-byte body, ETag %q", len(b), r.Header.Get("ETag"))
		}
	}

	// A partial bundle is compressed on every request, not cached.
	before := cr.bundles.Load()
	partial := "/tile/entries/002.p/188"
	_, p1 := do("GET", partial, "Accept-Encoding", "gzip")
	_, p2 := do("GET", partial, "Accept-Encoding", "gzip")
	if n := cr.bundles.Load() - before; n != 2 {
		t.Errorf("two requests for a partial bundle read it %d times, want 2", n)
	}
	if !bytes.Equal(gunzip(p1), file(partial)) || !bytes.Equal(gunzip(p2), file(partial)) {
		t.Errorf("partial bundle body mismatch")
	}

	// Tiles carry an ETag too; the checkpoint, which changes, none.
	r, _ := do("GET", "/tile/0/000")
	if tag := r.Header.Get("ETag"); tag == "" {
		t.Errorf("tile without ETag")
	} else if r, _ := do("GET", "/tile/0/000", "If-None-Match", tag); r.StatusCode != http.StatusNotModified {
		t.Errorf("tile If-None-Match: status %d", r.StatusCode)
	}
	if r, _ := do("GET", "/checkpoint", "If-None-Match", "*"); r.StatusCode != http.StatusOK || r.Header.Get("ETag") != "" {
		t.Errorf("checkpoint: status %d, ETag %q", r.StatusCode, r.Header.Get("ETag"))
	}
}

// TestGzipCacheOff: with the cache off every gzip request reads and
// compresses the bundle again.
func TestGzipCacheOff(t *testing.T) {
	tl := newTestLog(t)
	cr := &countingReader{Reader: DirReader(tl.dir)}
	h := NewHandler(cr, WithGzipCache(0))
	for range 3 {
		req := httptest.NewRequest("GET", "/tile/entries/000", nil)
		req.Header.Set("Accept-Encoding", "gzip")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 200 || w.Header().Get("Content-Encoding") != "gzip" {
			t.Fatalf("status %d, Content-Encoding %q", w.Code, w.Header().Get("Content-Encoding"))
		}
	}
	if n := cr.bundles.Load(); n != 3 {
		t.Errorf("read %d times, want 3", n)
	}
}

// TestGzipCacheBound: the cache never holds more compressed bytes than its
// bound, drops the least recently used first, and skips what cannot fit.
func TestGzipCacheBound(t *testing.T) {
	c := newGzipCache(100)
	c.add("a", make([]byte, 40))
	c.add("b", make([]byte, 40))
	c.get("a") // b is now the least recently used
	c.add("c", make([]byte, 40))
	if got := c.bytes.Load(); got != 80 {
		t.Errorf("cache holds %d bytes, want 80", got)
	}
	if _, ok := c.get("b"); ok {
		t.Errorf("b should have been evicted first")
	}
	for _, k := range []string{"a", "c"} {
		if _, ok := c.get(k); !ok {
			t.Errorf("%s evicted", k)
		}
	}
	c.add("big", make([]byte, 101))
	if _, ok := c.get("big"); ok || c.bytes.Load() != 80 {
		t.Errorf("an entry larger than the bound was cached (%d bytes held)", c.bytes.Load())
	}
	c.add("a", make([]byte, 40)) // already there: no double count
	if got := c.bytes.Load(); got != 80 {
		t.Errorf("re-adding counted twice: %d bytes", got)
	}
	if !strings.HasSuffix(etag([]byte("x"), true), `-gz"`) || etag([]byte("x"), true) == etag([]byte("x"), false) {
		t.Errorf("ETags of the two representations must differ")
	}
}
