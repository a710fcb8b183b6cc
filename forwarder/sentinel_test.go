package forwarder_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stele-dev/stele/forwarder"
	"github.com/stele-dev/stele/forwarder/record"
)

// ingestion is a local HTTPS server implementing the two services the
// sink calls: Entra's v2.0 token endpoint (OIDC metadata, client
// credentials grant) and the Logs Ingestion API (POST a JSON array to
// /dataCollectionRules/{id}/streams/{stream}?api-version=2023-01-01,
// 204 on success, 413 over 1 MB, 429 with Retry-After, 401 without a
// valid token, 400 for a body that is not an array of objects).
type ingestion struct {
	url, tenant, clientID, secret, dcr, stream string
	throttle                                   int

	mu        sync.Mutex
	rows      []json.RawMessage
	tokens    int
	throttled int
	tooLarge  int
}

func (s *ingestion) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	base := s.url + "/" + s.tenant
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/"+s.tenant+"/v2.0/.well-known/openid-configuration":
		json.NewEncoder(w).Encode(map[string]any{"token_endpoint": base + "/oauth2/v2.0/token", "authorization_endpoint": base + "/oauth2/v2.0/authorize",
			"issuer": base + "/v2.0", "token_endpoint_auth_methods_supported": []string{"client_secret_post"}})
	case r.Method == http.MethodPost && r.URL.Path == "/"+s.tenant+"/oauth2/v2.0/token":
		r.ParseForm()
		if r.Form.Get("grant_type") != "client_credentials" || r.Form.Get("client_id") != s.clientID || r.Form.Get("client_secret") != s.secret ||
			!slices.Contains(strings.Fields(r.Form.Get("scope")), "https://monitor.azure.com//.default") {
			w.WriteHeader(401)
			json.NewEncoder(w).Encode(map[string]any{"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided."})
			return
		}
		s.tokens++
		json.NewEncoder(w).Encode(map[string]any{"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": "token-for-monitor"})
	case r.Method == http.MethodPost && r.URL.Path == "/dataCollectionRules/"+s.dcr+"/streams/"+s.stream:
		if r.URL.Query().Get("api-version") != "2023-01-01" {
			w.WriteHeader(400)
			fmt.Fprint(w, `{"error":{"code":"InvalidApiVersionParameter","message":"The api-version is invalid."}}`)
			return
		}
		if r.Header.Get("Authorization") != "Bearer token-for-monitor" {
			w.WriteHeader(401)
			fmt.Fprint(w, `{"error":{"code":"InvalidToken","message":"The provided token is invalid."}}`)
			return
		}
		// The lock guards the server's state, not the request: requests
		// sent at once are read and parsed at once, as by the real API.
		s.mu.Unlock()
		body, _ := io.ReadAll(r.Body)
		var rows []json.RawMessage
		bad := json.Unmarshal(body, &rows)
		s.mu.Lock()
		if len(body) > 1_000_000 {
			s.tooLarge++
			w.WriteHeader(413)
			fmt.Fprint(w, `{"error":{"code":"ContentLengthLimitExceeded","message":"Maximum allowed content length: 1048576 bytes (1 MB)."}}`)
			return
		}
		if s.throttled < s.throttle {
			s.throttled++
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(429)
			fmt.Fprint(w, `{"error":{"code":"TooManyRequests","message":"Rate limit exceeded."}}`)
			return
		}
		if bad != nil {
			w.WriteHeader(400)
			fmt.Fprint(w, `{"error":{"code":"InvalidContent","message":"The content is not a JSON array."}}`)
			return
		}
		s.rows = append(s.rows, rows...)
		w.WriteHeader(204)
	default:
		w.WriteHeader(404)
	}
}

// TestSentinelLogsIngestion forwards a real log to a Logs Ingestion API
// server that throttles the first call: every row arrives once, with the
// DCR's columns, and a row as a Log Analytics query returns it verifies.
func TestSentinelLogsIngestion(t *testing.T) {
	l := startLog(t)
	idx := l.appendAll(t, goldenEvents(t, 400))
	total := slices.Max(idx) + 1
	s := &ingestion{tenant: "00000000-0000-4000-8000-0000000000aa", clientID: "11111111-0000-4000-8000-000000000001", secret: "s3cret~value",
		dcr: "dcr-00000000000000000000000000000000", stream: "Custom-SteleRecords", throttle: 1}
	u, ca := startHTTPS(t, s)
	s.url = u
	settings, _ := json.Marshal(map[string]any{"endpoint": u, "dcr_immutable_id": s.dcr, "tenant_id": s.tenant, "client_id": s.clientID,
		"client_secret_file": writeSecret(t, s.secret), "authority_host": u + "/", "tls": map[string]any{"ca_file": ca}})
	cfg := l.config(t, t.TempDir(), forwarder.SinkConfig{Name: "sentinel", Type: "sentinel", Settings: settings})
	cfg.BatchSize = 400
	f, stop := l.runForwarder(t, cfg)
	waitDelivered(t, f, total, time.Minute)
	stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.throttled != 1 || s.tokens == 0 {
		t.Fatalf("throttled %d, tokens %d", s.throttled, s.tokens)
	}
	seen := map[uint64]int{}
	var last forwarder.SentinelRow
	for _, r := range s.rows {
		var row forwarder.SentinelRow
		if err := json.Unmarshal(r, &row); err != nil {
			t.Fatal(err)
		}
		v, err := record.Verify(row.SteleRecord, l.verifier, nil)
		if err != nil || v.Doc.Index != row.SteleIndex || row.TimeGenerated == "" {
			t.Fatalf("row %d: %v", row.SteleIndex, err)
		}
		seen[row.SteleIndex]++
		last = row
	}
	for i := range total {
		if seen[i] != 1 {
			t.Fatalf("entry %d: %d rows", i, seen[i])
		}
	}
	// A Log Analytics query answer: dynamic columns come back as JSON text.
	q, _ := json.Marshal(map[string]any{"tables": []any{map[string]any{"name": "PrimaryResult",
		"columns": []any{map[string]any{"name": "SteleIndex", "type": "long"}, map[string]any{"name": "SteleRecord", "type": "dynamic"}},
		"rows":    []any{[]any{last.SteleIndex, string(last.SteleRecord)}}}}})
	p := filepath.Join(t.TempDir(), "query.json")
	os.WriteFile(p, q, 0o600)
	if code, o, e := runCLI("verify", "--log-key", l.keyFile, p); code != 0 || !strings.Contains(o, "record OK") {
		t.Fatalf("stele verify of a Log Analytics row: exit %d\n%s%s", code, o, e)
	}
}
