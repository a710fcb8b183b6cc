package tiles

import (
	"bytes"
	"compress/gzip"
	"io"
	"log/slog"
	"math"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// fixtureFiles is a small hand-made log directory, including files that
// must never be served.
var fixtureFiles = map[string]string{
	"checkpoint":                               "example.com/log\n300\nAAAA\n\n— sig\n",
	"tile/0/000":                               strings.Repeat("a", 8192),
	"tile/0/001.p/44":                          strings.Repeat("b", 44*32),
	"tile/0/x001/x234/067.p/8":                 strings.Repeat("c", 8*32),
	"tile/1/000.p/1":                           strings.Repeat("d", 32),
	"tile/63/000":                              strings.Repeat("e", 8192),
	"tile/entries/000":                         "\x00\x03abc",
	"tile/entries/001.p/44":                    "\x00\x01z",
	"tile/entries/x001/000":                    "\x00\x01y",
	".state/treeState":                         `{"size":300}`,
	".state/treeState.lock":                    "",
	".state/publish.lock":                      "",
	"tile/0/000.tmp123":                        "temp",
	"tile/0/000.p/5x":                          "junk",
	"tile/0/x000/000":                          "junk", // non-canonical alias of tile/0/000
	"tile/01/000":                              "junk",
	"tile/entries/000.p/0":                     "junk",
	"secret.txt":                               "SECRET",
	"tile/0/000.p/256":                         "junk",
	"tile/entries/x000/x001/000":               "junk",
	"tile/0/x018/x446/x744/x073/x709/x551/616": "junk", // overflow
}

func writeFixture(t testing.TB) string {
	dir := t.TempDir()
	for p, c := range fixtureFiles {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

var (
	// An independent description of canonical tlog-tiles paths.
	reTile    = regexp.MustCompile(`^tile/(0|[1-9][0-9]?)/((?:x[0-9]{3}/)*[0-9]{3})(?:\.p/([1-9][0-9]{0,2}))?$`)
	reEntries = regexp.MustCompile(`^tile/entries/((?:x[0-9]{3}/)*[0-9]{3})(?:\.p/([1-9][0-9]{0,2}))?$`)
)

// isCanonical reports whether p (relative to the handler root, with at most
// one leading slash) names a tlog-tiles resource in canonical form.
func isCanonical(p string) bool {
	p = strings.TrimPrefix(p, "/")
	if p == "checkpoint" {
		return true
	}
	var n, w string
	if m := reEntries.FindStringSubmatch(p); m != nil {
		n, w = m[1], m[2]
	} else if m := reTile.FindStringSubmatch(p); m != nil {
		l, _ := strconv.Atoi(m[1])
		if l > 63 {
			return false
		}
		n, w = m[2], m[3]
	} else {
		return false
	}
	if w != "" {
		if v, _ := strconv.Atoi(w); v < 1 || v > 255 {
			return false
		}
	}
	groups := strings.Split(n, "/")
	if len(groups) > 1 && groups[0] == "x000" {
		return false // leading zero group
	}
	digits := strings.ReplaceAll(strings.ReplaceAll(n, "/", ""), "x", "")
	v, ok := new(big.Int).SetString(digits, 10)
	return ok && v.IsUint64() && v.Cmp(new(big.Int).SetUint64(math.MaxUint64)) <= 0
}

func FuzzHandlerPath(f *testing.F) {
	for _, s := range []string{
		"/checkpoint", "checkpoint", "/tile/0/000", "/tile/0/001.p/44", "/tile/0/x001/x234/067.p/8",
		"/tile/1/000.p/1", "/tile/63/000", "/tile/entries/000", "/tile/entries/001.p/44",
		"/tile/entries/x001/000", "/tile/01/000", "/tile/0/5", "/tile/0/000.p/0", "/tile/0/000.p/256",
		"/tile/64/000", "/tile/0/x000/005", "/tile/0/x000/000", "/.state/treeState", "/tile/../checkpoint",
		"/tile/entries/000.p/", "/tile/entries/000.p/0", "/tile/0/000.tmp123", "/secret.txt",
		"/tile/0/x018/x446/x744/x073/x709/x551/616", "/tile/0/x018/x446/x744/x073/x709/x551/615",
		"//checkpoint", "/tile//0/000", "/tile/0/000/", "", "/", "*", "/tile/0/000.p/5x",
		"/tile/entries/x000/x001/000", "/tile/8/entries/000", "/tile/0/000.p/1/", "/tile/0/000.p/01",
	} {
		f.Add(s, false, false)
	}
	dir := writeFixture(f)
	h := NewHandler(DirReader(dir), WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))

	f.Fuzz(func(t *testing.T, p string, head bool, gz bool) {
		method := http.MethodGet
		if head {
			method = http.MethodHead
		}
		req := httptest.NewRequest(method, "/", nil)
		req.URL = &url.URL{Path: p}
		req.RequestURI = p
		if gz {
			req.Header.Set("Accept-Encoding", "gzip")
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req) // a panic fails the fuzz run

		resp := w.Result()
		if resp.StatusCode >= 500 {
			t.Fatalf("%q: status %d", p, resp.StatusCode)
		}
		if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNotFound {
			t.Fatalf("%q: unexpected status %d", p, resp.StatusCode)
		}
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Fatalf("%q: missing nosniff", p)
		}
		want, inFixture := fixtureFiles[strings.TrimPrefix(p, "/")]
		if resp.StatusCode != http.StatusOK {
			if inFixture && isCanonical(p) {
				t.Fatalf("%q: status %d for a canonical path that exists", p, resp.StatusCode)
			}
			return
		}
		if !isCanonical(p) {
			t.Fatalf("%q: 200 for a non-canonical path", p)
		}
		// A 200 must be exactly the file at that path.
		if !inFixture {
			t.Fatalf("%q: 200 for a path that is not in the fixture", p)
		}
		if head {
			if w.Body.Len() != 0 {
				t.Fatalf("%q: HEAD with a body", p)
			}
			return
		}
		body := w.Body.Bytes()
		if resp.Header.Get("Content-Encoding") == "gzip" {
			var err error
			body, err = gunzip(body)
			if err != nil {
				t.Fatalf("%q: %v", p, err)
			}
		}
		if !bytes.Equal(body, []byte(want)) {
			t.Fatalf("%q: wrong body", p)
		}
	})
}

func gunzip(b []byte) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(zr)
}
