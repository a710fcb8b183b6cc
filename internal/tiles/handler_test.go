package tiles

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/api/layout"
	"github.com/transparency-dev/tessera/client"
	"github.com/transparency-dev/tessera/storage/posix"
	"golang.org/x/mod/sumdb/note"
)

// tessera.LogReader must satisfy Reader.
var _ Reader = tessera.LogReader(nil)

const testOrigin = "example.com/stele/tiles-test"

// testLog is a real Tessera POSIX log on disk.
type testLog struct {
	dir      string
	verifier note.Verifier
	reader   tessera.LogReader // Tessera's own reader (falls back partial->full)
	entries  [][]byte          // entries[i] is the entry at index i
	cp300    []byte            // checkpoint published at size 300
	cp700    []byte            // checkpoint published at size 700
}

// newTestLog builds a log of 700 entries in two phases (300, then 400 more),
// so that partials from size 300 were superseded and garbage-collected.
func newTestLog(t *testing.T) *testLog {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	dir := t.TempDir()

	skey, vkey, err := note.GenerateKey(rand.Reader, testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}

	driver, err := posix.New(ctx, posix.Config{Path: dir})
	if err != nil {
		t.Fatal(err)
	}
	appender, shutdown, reader, err := tessera.NewAppender(ctx, driver, tessera.NewAppendOptions().
		WithCheckpointSigner(signer).
		WithCheckpointInterval(100*time.Millisecond).
		WithBatching(64, 20*time.Millisecond).
		WithGarbageCollectionInterval(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		if err := shutdown(sctx); err != nil {
			t.Logf("shutdown: %v", err)
		}
		cancel()
	})
	awaiter := tessera.NewPublicationAwaiter(ctx, reader.ReadCheckpoint, 20*time.Millisecond)

	tl := &testLog{dir: dir, verifier: verifier, reader: reader, entries: make([][]byte, 700)}
	add := func(from, to int) []byte {
		futures := make([]tessera.IndexFuture, 0, to-from)
		data := make([][]byte, 0, to-from)
		for i := from; i < to; i++ {
			d := fmt.Appendf(nil, "stele tiles test entry %d %s", i, strings.Repeat("x", i%97))
			data = append(data, d)
			futures = append(futures, appender.Add(ctx, tessera.NewEntry(d)))
		}
		var cp []byte
		actx, acancel := context.WithTimeout(ctx, 30*time.Second)
		defer acancel()
		for i, f := range futures {
			idx, c, err := awaiter.Await(actx, f)
			if err != nil {
				t.Fatalf("Await(%d): %v", from+i, err)
			}
			if idx.Index >= uint64(len(tl.entries)) || tl.entries[idx.Index] != nil {
				t.Fatalf("unexpected index %d", idx.Index)
			}
			tl.entries[idx.Index] = data[i]
			cp = c
		}
		return cp
	}
	tl.cp300 = add(0, 300)
	// The size-300 partials must exist on disk now.
	for _, p := range []string{layout.EntriesPath(1, 44), layout.TilePath(0, 1, 44), layout.TilePath(1, 0, 1)} {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			t.Fatalf("expected %s on disk at size 300: %v", p, err)
		}
	}
	tl.cp700 = add(300, 700)

	// Wait for Tessera's GC to remove the superseded partials of bundle 1.
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err1 := os.Stat(filepath.Join(dir, layout.EntriesPath(1, 44)))
		_, err2 := os.Stat(filepath.Join(dir, layout.TilePath(0, 1, 44)))
		if errors.Is(err1, fs.ErrNotExist) && errors.Is(err2, fs.ErrNotExist) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("partials of bundle 1 not garbage-collected: %v %v", err1, err2)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return tl
}

// statusRecorder wraps a handler and records every response status.
type statusRecorder struct {
	h        http.Handler
	mu       sync.Mutex
	statuses map[string]int
}

type recordingWriter struct {
	http.ResponseWriter
	status int
}

func (w *recordingWriter) WriteHeader(s int) {
	if w.status == 0 {
		w.status = s
	}
	w.ResponseWriter.WriteHeader(s)
}

func (s *statusRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rw := &recordingWriter{ResponseWriter: w}
	s.h.ServeHTTP(rw, r)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.statuses[r.URL.Path] = rw.status
}

func TestPOSIXLog(t *testing.T) {
	tl := newTestLog(t)
	h := NewHandler(DirReader(tl.dir), WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))

	t.Run("Client", func(t *testing.T) { testClient(t, tl, h) })
	t.Run("Paths", func(t *testing.T) { testPaths(t, tl, h) })
	t.Run("Methods", func(t *testing.T) { testMethods(t, h) })
	t.Run("Gzip", func(t *testing.T) { testGzip(t, tl, h) })
	t.Run("NoFallback", func(t *testing.T) { testNoFallback(t, tl) })
	t.Run("Escape", func(t *testing.T) { testEscape(t, tl) })
}

// testClient reads the whole log through the handler (mounted under a
// prefix) with Tessera's HTTP client and verifies it cryptographically.
func testClient(t *testing.T, tl *testLog, h http.Handler) {
	ctx := context.Background()
	rec := &statusRecorder{h: h, statuses: map[string]int{}}
	mux := http.NewServeMux()
	mux.Handle("/log/", http.StripPrefix("/log", rec))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	u, err := url.Parse(srv.URL + "/log/")
	if err != nil {
		t.Fatal(err)
	}
	f, err := client.NewHTTPFetcher(u, srv.Client())
	if err != nil {
		t.Fatal(err)
	}

	cp, cpRaw, _, err := client.FetchCheckpoint(ctx, f.ReadCheckpoint, tl.verifier, testOrigin)
	if err != nil {
		t.Fatalf("FetchCheckpoint: %v", err)
	}
	if !bytes.Equal(cpRaw, tl.cp700) {
		t.Errorf("checkpoint = %q, want %q", cpRaw, tl.cp700)
	}
	if _, err := note.Open(cpRaw, note.VerifierList(tl.verifier)); err != nil {
		t.Errorf("note.Open: %v", err)
	}
	if cp.Size != 700 {
		t.Fatalf("checkpoint size = %d, want 700", cp.Size)
	}

	// Entry bundles.
	var leafHashes [][]byte
	for i := uint64(0); i*layout.EntryBundleWidth < cp.Size; i++ {
		b, err := client.GetEntryBundle(ctx, f.ReadEntryBundle, i, cp.Size)
		if err != nil {
			t.Fatalf("GetEntryBundle(%d): %v", i, err)
		}
		for j, e := range b.Entries {
			idx := i*layout.EntryBundleWidth + uint64(j)
			if !bytes.Equal(e, tl.entries[idx]) {
				t.Fatalf("entry %d = %q, want %q", idx, e, tl.entries[idx])
			}
			leafHashes = append(leafHashes, rfc6962.DefaultHasher.HashLeaf(e))
		}
	}
	if uint64(len(leafHashes)) != cp.Size {
		t.Fatalf("got %d entries, want %d", len(leafHashes), cp.Size)
	}

	// Level-0 tiles must agree with the entries.
	got, err := client.FetchLeafHashes(ctx, f.ReadTile, 0, cp.Size, cp.Size)
	if err != nil {
		t.Fatalf("FetchLeafHashes: %v", err)
	}
	for i := range got {
		if !bytes.Equal(got[i], leafHashes[i]) {
			t.Fatalf("leaf hash %d from tiles != hash of entry", i)
		}
	}

	// The leaves must hash to the checkpoint root.
	rf := compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	cr := rf.NewEmptyRange(0)
	for _, lh := range leafHashes {
		if err := cr.Append(lh, nil); err != nil {
			t.Fatal(err)
		}
	}
	root, err := cr.GetRootHash(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(root, cp.Hash) {
		t.Fatalf("root of entries %x != checkpoint root %x", root, cp.Hash)
	}

	// Proofs exercise the higher-level (and partial) tiles.
	pb, err := client.NewProofBuilder(ctx, cp.Size, f.ReadTile)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []uint64{0, 5, 255, 256, 299, 511, 512, 600, 699} {
		p, err := pb.InclusionProof(ctx, i)
		if err != nil {
			t.Fatalf("InclusionProof(%d): %v", i, err)
		}
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, i, cp.Size, leafHashes[i], p, cp.Hash); err != nil {
			t.Errorf("VerifyInclusion(%d): %v", i, err)
		}
	}
	cp300, _, _, err := client.FetchCheckpoint(ctx,
		func(context.Context) ([]byte, error) { return tl.cp300, nil }, tl.verifier, testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	cproof, err := pb.ConsistencyProof(ctx, cp300.Size, cp.Size)
	if err != nil {
		t.Fatalf("ConsistencyProof: %v", err)
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, cp300.Size, cp.Size, cproof, cp300.Hash, cp.Hash); err != nil {
		t.Errorf("VerifyConsistency: %v", err)
	}

	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.statuses) == 0 {
		t.Fatal("no requests recorded")
	}
	for p, s := range rec.statuses {
		if s != http.StatusOK {
			t.Errorf("%s: status %d during a clean read", p, s)
		}
	}
}

func testPaths(t *testing.T, tl *testLog, h http.Handler) {
	srv := httptest.NewServer(h)
	defer srv.Close()

	file := func(p string) []byte {
		b, err := os.ReadFile(filepath.Join(tl.dir, p))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	const (
		bin  = contentTypeTile
		text = contentTypeCheckpoint
	)
	for _, tc := range []struct {
		path   string
		status int
		ctype  string
		cache  string
		body   []byte // nil: not checked
	}{
		// Good.
		{"/checkpoint", 200, text, "no-cache", tl.cp700},
		{"/tile/0/000", 200, bin, "max-age=31536000, immutable", file("tile/0/000")},
		{"/tile/0/001", 200, bin, "max-age=31536000, immutable", file("tile/0/001")},
		{"/tile/0/002.p/188", 200, bin, "max-age=31536000, immutable", file("tile/0/002.p/188")},
		{"/tile/1/000.p/2", 200, bin, "max-age=31536000, immutable", file("tile/1/000.p/2")},
		// Superseded at level 1 but still on disk (Tessera only GCs it once
		// the level-1 tile is full): partials are immutable, so serve it.
		{"/tile/1/000.p/1", 200, bin, "max-age=31536000, immutable", file("tile/1/000.p/1")},
		{"/tile/entries/000", 200, bin, "max-age=31536000, immutable", file("tile/entries/000")},
		{"/tile/entries/002.p/188", 200, bin, "max-age=31536000, immutable", file("tile/entries/002.p/188")},

		// Canonical but absent.
		{"/tile/entries/001.p/44", 404, text, "no-store", nil}, // superseded, GC'd
		{"/tile/0/001.p/44", 404, text, "no-store", nil},       // superseded, GC'd
		{"/tile/0/000.p/7", 404, text, "no-store", nil},        // never existed; full tile does
		{"/tile/entries/000.p/255", 404, text, "no-store", nil},
		{"/tile/0/003", 404, text, "no-store", nil},
		{"/tile/1/000", 404, text, "no-store", nil},
		{"/tile/5/000", 404, text, "no-store", nil},
		{"/tile/63/x018/x446/x744/x073/x709/x551/615", 404, text, "no-store", nil},
		{"/tile/entries/x001/000", 404, text, "no-store", nil},

		// Not canonical.
		{"/tile/01/000", 404, text, "no-store", nil},
		{"/tile/0/5", 404, text, "no-store", nil},
		{"/tile/0/000.p/0", 404, text, "no-store", nil},
		{"/tile/0/000.p/256", 404, text, "no-store", nil},
		{"/tile/0/000.p/01", 404, text, "no-store", nil},
		{"/tile/0/000.p/+1", 404, text, "no-store", nil},
		{"/tile/0/000.P/1", 404, text, "no-store", nil},
		{"/tile/64/000", 404, text, "no-store", nil},
		{"/tile/-1/000", 404, text, "no-store", nil},
		{"/tile/+0/000", 404, text, "no-store", nil},
		{"/tile/0/x000/005", 404, text, "no-store", nil},
		{"/tile/0/x000/000", 404, text, "no-store", nil},
		{"/tile/0/x001", 404, text, "no-store", nil},
		{"/tile/0/0000", 404, text, "no-store", nil},
		{"/tile/0/00a", 404, text, "no-store", nil},
		{"/tile/0/x018/x446/x744/x073/x709/x551/616", 404, text, "no-store", nil}, // > MaxUint64
		{"/tile/0/000/", 404, text, "no-store", nil},
		{"/tile/0//000", 404, text, "no-store", nil},
		{"/tile//0/000", 404, text, "no-store", nil},
		{"//tile/0/000", 404, text, "no-store", nil},
		{"/tile/0/./000", 404, text, "no-store", nil},
		{"/tile/0/000.p", 404, text, "no-store", nil},
		{"/tile/0/000.p/", 404, text, "no-store", nil},
		{"/tile/0/002.p/188/", 404, text, "no-store", nil},
		{"/tile/0/%30%30%30", 404, text, "no-store", nil},
		{"/tile%2F0%2F000", 404, text, "no-store", nil},
		{"/tile/entries/000.p/", 404, text, "no-store", nil},
		{"/tile/entries/000.p/0", 404, text, "no-store", nil},
		{"/tile/entries/0", 404, text, "no-store", nil},
		{"/tile/entries/", 404, text, "no-store", nil},
		{"/tile/entries", 404, text, "no-store", nil},
		{"/tile/", 404, text, "no-store", nil},
		{"/tile", 404, text, "no-store", nil},
		{"/tile/0", 404, text, "no-store", nil},
		{"/tile/0/", 404, text, "no-store", nil},
		{"/tile/8/entries/000", 404, text, "no-store", nil},
		{"/tile/data/000", 404, text, "no-store", nil},
		{"/checkpoint/", 404, text, "no-store", nil},
		{"/Checkpoint", 404, text, "no-store", nil},
		{"/checkpoint.sig", 404, text, "no-store", nil},
		{"/tile/../checkpoint", 404, text, "no-store", nil},
		{"/tile/0/../../checkpoint", 404, text, "no-store", nil},
		{"/./checkpoint", 404, text, "no-store", nil},
		{"/.state/treeState", 404, text, "no-store", nil},
		{"/.state/publish.lock", 404, text, "no-store", nil},
		{"/.state/treeState.lock", 404, text, "no-store", nil},
		{"/.state/", 404, text, "no-store", nil},
		{"/", 404, text, "no-store", nil},
		{"/index.html", 404, text, "no-store", nil},
	} {
		t.Run(tc.path, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodGet, srv.URL+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			// Make sure the path reaches the server unnormalised.
			req.URL.Opaque = tc.path
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = resp.Body.Close() }()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.status {
				t.Fatalf("status = %d, want %d (body %q)", resp.StatusCode, tc.status, body)
			}
			if got := resp.Header.Get("Content-Type"); got != tc.ctype {
				t.Errorf("Content-Type = %q, want %q", got, tc.ctype)
			}
			if got := resp.Header.Get("Cache-Control"); got != tc.cache {
				t.Errorf("Cache-Control = %q, want %q", got, tc.cache)
			}
			if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("X-Content-Type-Options = %q", got)
			}
			if tc.body != nil && !bytes.Equal(body, tc.body) {
				t.Errorf("body mismatch: got %d bytes, want %d", len(body), len(tc.body))
			}
			if tc.status != 200 && strings.Contains(string(body), tl.dir) {
				t.Errorf("error body leaks path: %q", body)
			}
		})
	}
}

func testMethods(t *testing.T, h http.Handler) {
	srv := httptest.NewServer(h)
	defer srv.Close()

	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch, http.MethodOptions, "PROPFIND"} {
		for _, p := range []string{"/checkpoint", "/tile/0/000", "/tile/entries/000", "/nope"} {
			req, err := http.NewRequest(m, srv.URL+p, strings.NewReader("x"))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusMethodNotAllowed {
				t.Errorf("%s %s: status %d, want 405", m, p, resp.StatusCode)
			}
			if got := resp.Header.Get("Allow"); got != "GET, HEAD" {
				t.Errorf("%s %s: Allow = %q", m, p, got)
			}
		}
	}

	// HEAD: same headers as GET, no body.
	for _, tc := range []struct {
		path   string
		status int
	}{
		{"/checkpoint", 200},
		{"/tile/0/000", 200},
		{"/tile/0/002.p/188", 200},
		{"/tile/entries/002.p/188", 200},
		{"/tile/0/000.p/7", 404},
		{"/.state/treeState", 404},
	} {
		get, err := srv.Client().Get(srv.URL + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		getBody, _ := io.ReadAll(get.Body)
		_ = get.Body.Close()

		head, err := srv.Client().Head(srv.URL + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		headBody, _ := io.ReadAll(head.Body)
		_ = head.Body.Close()
		if head.StatusCode != tc.status || get.StatusCode != tc.status {
			t.Errorf("HEAD/GET %s: status %d/%d, want %d", tc.path, head.StatusCode, get.StatusCode, tc.status)
		}
		if len(headBody) != 0 {
			t.Errorf("HEAD %s: non-empty body", tc.path)
		}
		for _, k := range []string{"Content-Type", "Cache-Control", "X-Content-Type-Options"} {
			if head.Header.Get(k) != get.Header.Get(k) {
				t.Errorf("HEAD %s: %s = %q, GET has %q", tc.path, k, head.Header.Get(k), get.Header.Get(k))
			}
		}
		if tc.status == 200 && head.ContentLength != int64(len(getBody)) {
			t.Errorf("HEAD %s: Content-Length %d, want %d", tc.path, head.ContentLength, len(getBody))
		}
	}
}

func testGzip(t *testing.T, tl *testLog, h http.Handler) {
	srv := httptest.NewServer(h)
	defer srv.Close()

	want, err := os.ReadFile(filepath.Join(tl.dir, "tile/entries/000"))
	if err != nil {
		t.Fatal(err)
	}
	// A client without transparent decompression, so we see the raw body.
	tr := srv.Client().Transport.(*http.Transport).Clone()
	tr.DisableCompression = true
	c := &http.Client{Transport: tr}
	defer c.CloseIdleConnections()
	do := func(path, ae string) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if ae != "" {
			req.Header.Set("Accept-Encoding", ae)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, b
	}

	for _, tc := range []struct {
		ae   string
		gzip bool
	}{
		{"", false},
		{"gzip", true},
		{"GZIP", true},
		{"x-gzip", true},
		{"br, gzip;q=0.5", true},
		{"deflate, gzip ; q=1.0", true},
		{"*", true},
		{"gzip;q=0", false},
		{"gzip;q=0.000, *", false},
		{"*;q=0", false},
		{"identity", false},
		{"br, deflate", false},
		{"gzipx", false},
	} {
		resp, body := do("/tile/entries/000", tc.ae)
		if resp.StatusCode != 200 {
			t.Fatalf("%q: status %d", tc.ae, resp.StatusCode)
		}
		if got := resp.Header.Get("Vary"); got != "Accept-Encoding" {
			t.Errorf("%q: Vary = %q", tc.ae, got)
		}
		if got := resp.Header.Get("Content-Type"); got != contentTypeTile {
			t.Errorf("%q: Content-Type = %q", tc.ae, got)
		}
		if got := resp.Header.Get("Cache-Control"); got != cacheControlImmutable {
			t.Errorf("%q: Cache-Control = %q", tc.ae, got)
		}
		if tc.gzip {
			if got := resp.Header.Get("Content-Encoding"); got != "gzip" {
				t.Fatalf("%q: Content-Encoding = %q, want gzip", tc.ae, got)
			}
			zr, err := gzip.NewReader(bytes.NewReader(body))
			if err != nil {
				t.Fatalf("%q: %v", tc.ae, err)
			}
			body, err = io.ReadAll(zr)
			if err != nil {
				t.Fatalf("%q: %v", tc.ae, err)
			}
		} else if got := resp.Header.Get("Content-Encoding"); got != "" {
			t.Fatalf("%q: Content-Encoding = %q, want none", tc.ae, got)
		}
		if !bytes.Equal(body, want) {
			t.Errorf("%q: body mismatch", tc.ae)
		}
	}

	// Only entry bundles are compressed.
	for _, p := range []string{"/checkpoint", "/tile/0/000"} {
		resp, _ := do(p, "gzip")
		if got := resp.Header.Get("Content-Encoding"); got != "" {
			t.Errorf("%s: Content-Encoding = %q", p, got)
		}
	}
}

// testNoFallback documents why DirReader exists: Tessera's reader silently
// returns the full bundle for a GC'd partial, DirReader reports not-found.
func testNoFallback(t *testing.T, tl *testLog) {
	ctx := context.Background()
	full, err := tl.reader.ReadEntryBundle(ctx, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	fb, err := tl.reader.ReadEntryBundle(ctx, 1, 44)
	if err != nil || !bytes.Equal(fb, full) {
		t.Logf("note: tessera reader no longer falls back (err=%v)", err)
	}
	d := DirReader(tl.dir)
	if _, err := d.ReadEntryBundle(ctx, 1, 44); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("DirReader.ReadEntryBundle(1, 44) err = %v, want fs.ErrNotExist", err)
	}
	if _, err := d.ReadTile(ctx, 0, 1, 44); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("DirReader.ReadTile(0, 1, 44) err = %v, want fs.ErrNotExist", err)
	}
	got, err := d.ReadEntryBundle(ctx, 1, 0)
	if err != nil || !bytes.Equal(got, full) {
		t.Errorf("DirReader.ReadEntryBundle(1, 0) = %d bytes, %v", len(got), err)
	}
	if err != nil && strings.Contains(err.Error(), tl.dir) {
		t.Errorf("error leaks root: %v", err)
	}
	if _, err := DirReader(filepath.Join(tl.dir, "nope")).ReadCheckpoint(ctx); err == nil || errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing root: err = %v, want a non-not-found error", err)
	}
}

// testEscape checks that symlinks and odd files in the log directory cannot
// be used to read outside it.
func testEscape(t *testing.T, tl *testLog) {
	outside := t.TempDir()
	secret := filepath.Join(outside, "secret")
	if err := os.WriteFile(secret, []byte("TOP SECRET"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Canonical paths that don't exist in the log yet.
	mustLink := func(target, p string) {
		full := filepath.Join(tl.dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, full); err != nil {
			t.Skipf("symlink: %v", err)
		}
		t.Cleanup(func() { _ = os.Remove(full) })
	}
	mustLink(secret, "tile/0/x999/999")
	mustLink("../../entries/000", "tile/0/x999/998") // inside root: allowed
	if err := os.MkdirAll(filepath.Join(tl.dir, "tile/0/x999/997"), 0o755); err != nil {
		t.Fatal(err)
	}
	// A FIFO must be refused without blocking the handler on its open.
	fifo := filepath.Join(tl.dir, "tile/0/x999/996")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Remove(fifo) })

	srv := httptest.NewServer(NewHandler(DirReader(tl.dir), WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))))
	defer srv.Close()
	srv.Client().Timeout = 10 * time.Second
	for _, tc := range []struct {
		path string
		ok   bool
	}{
		{"/tile/0/x999/999", false},
		{"/tile/0/x999/998", true},
		{"/tile/0/x999/997", false},
		{"/tile/0/x999/996", false},
	} {
		resp, err := srv.Client().Get(srv.URL + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if bytes.Contains(body, []byte("SECRET")) || strings.Contains(string(body), tl.dir) || strings.Contains(string(body), outside) {
			t.Errorf("%s: body leaks: %q", tc.path, body)
		}
		if got := resp.StatusCode == 200; got != tc.ok {
			t.Errorf("%s: status %d", tc.path, resp.StatusCode)
		}
	}
}
