package tiles_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stele-dev/stele/internal/tiles"
)

func TestRedirect(t *testing.T) {
	h := tiles.NewRedirect("https://cdn.example/log/")
	for _, tc := range []struct {
		method, path string
		code         int
		location     string
	}{
		{"GET", "/checkpoint", http.StatusFound, "https://cdn.example/log/checkpoint"},
		{"HEAD", "/tile/0/001", http.StatusFound, "https://cdn.example/log/tile/0/001"},
		{"GET", "/tile/2/x123/456.p/7", http.StatusFound, "https://cdn.example/log/tile/2/x123/456.p/7"},
		{"GET", "/tile/entries/000.p/9", http.StatusFound, "https://cdn.example/log/tile/entries/000.p/9"},
		{"GET", "/tile/0/1", http.StatusNotFound, ""},               // not canonical
		{"GET", "/tile/entries/000.p/256", http.StatusNotFound, ""}, // width out of range
		{"GET", "/../etc/passwd", http.StatusNotFound, ""},
		{"GET", "/tile/0/%30%30%31", http.StatusNotFound, ""}, // escaped
		{"POST", "/checkpoint", http.StatusMethodNotAllowed, ""},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(tc.method, "http://stele.example"+tc.path, nil))
		if rec.Code != tc.code || rec.Header().Get("Location") != tc.location {
			t.Errorf("%s %s: %d %q, want %d %q", tc.method, tc.path, rec.Code, rec.Header().Get("Location"), tc.code, tc.location)
		}
		if tc.code == http.StatusFound && rec.Header().Get("Cache-Control") != "no-store" {
			t.Errorf("%s: redirect is cacheable: %q", tc.path, rec.Header().Get("Cache-Control"))
		}
	}
}
