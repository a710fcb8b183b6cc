package collector_test

import (
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// httpsEmu is what the local provider servers (Graph's, Okta's) share: an
// HTTPS server on loopback whose certificate is written as a CA file for
// the source's tls_ca, one lock over the emulator's state (every request
// is served under it), and the OAuth access tokens it issued.
type httpsEmu struct {
	t      testing.TB
	srv    *httptest.Server
	caFile string

	mu       sync.Mutex
	tokenTTL time.Duration        // lifetime of the tokens issued from now on (default 1h)
	tokens   map[string]time.Time // access token → expiry
	nTokens  int
}

// start serves serve (called with mu held) until the test ends.
func (e *httpsEmu) start(t testing.TB, serve func(http.ResponseWriter, *http.Request)) {
	t.Helper()
	e.t, e.tokenTTL, e.tokens = t, time.Hour, map[string]time.Time{}
	e.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		defer e.mu.Unlock()
		serve(w, r)
	}))
	t.Cleanup(e.srv.Close)
	e.caFile = writeCA(t, e.srv)
}

// issue makes a new access token, valid for tokenTTL (mu held).
func (e *httpsEmu) issue(prefix string) string {
	e.nTokens++
	tok := fmt.Sprintf("%s.%d.%s", prefix, e.nTokens, randomGUID())
	e.tokens[tok] = time.Now().Add(e.tokenTTL)
	return tok
}

// valid tells a token this server issued and that has not expired (mu held).
func (e *httpsEmu) valid(tok string) bool {
	exp, ok := e.tokens[tok]
	return ok && time.Now().Before(exp)
}

// writeCA writes a test server's certificate, for tls_ca.
func writeCA(t testing.TB, srv *httptest.Server) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
