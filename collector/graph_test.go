package collector_test

import (
	crand "crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"maps"
	"math/big"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// graphEmu is a local HTTPS server that implements what the Graph source
// uses, as Microsoft documents it: the Microsoft identity platform's
// OpenID configuration and client-credentials token endpoint
// (/{tenant}/v2.0/.well-known/openid-configuration,
// /{tenant}/oauth2/v2.0/token), and GET /v1.0/auditLogs/directoryAudits and
// /v1.0/auditLogs/signIns with $filter (ge/le on activityDateTime or
// createdDateTime), $top (at most 1000), newest first, @odata.nextLink
// with a $skiptoken, 429 with Retry-After, 401 for a missing or expired
// token.
type graphEmu struct {
	httpsEmu
	tenant    string
	client    string
	secret    string
	secretEnv string // the environment variable holding secret

	recs     map[string][]graphRec // log → records as published
	requests int
	// throttleEvery makes every n-th audit-log request a 429 (odd
	// throttles) or a 503 (even), with Retry-After: 1.
	throttleEvery int
	throttled     int
	unauthorized  int
	certKey       *rsa.PrivateKey // the app's registered certificate's key
	badRequests   []string
}

type graphRec struct {
	at        time.Time // activityDateTime / createdDateTime
	published time.Time // when it became visible
	raw       []byte
}

func newGraphEmu(t testing.TB) *graphEmu {
	e := &graphEmu{tenant: randomGUID(), client: randomGUID(), secret: "s3cr3t~" + randomGUID(), recs: map[string][]graphRec{}}
	e.secretEnv = secretEnv(e.secret)
	e.start(t, e.serve)
	return e
}

func graphError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"error": {"code": %q, "message": %q, "innerError": {"date": %q, "request-id": %q, "client-request-id": %q}}}`,
		code, msg, time.Now().UTC().Format("2006-01-02T15:04:05"), randomGUID(), randomGUID())
}

var graphFilter = regexp.MustCompile(`^(activityDateTime|createdDateTime) ge (\S+)(?: and (activityDateTime|createdDateTime) le (\S+))?$`)

func (e *graphEmu) serve(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == "GET" && r.URL.Path == "/"+e.tenant+"/v2.0/.well-known/openid-configuration":
		base := e.srv.URL + "/" + e.tenant
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"token_endpoint":                        base + "/oauth2/v2.0/token",
			"authorization_endpoint":                base + "/oauth2/v2.0/authorize",
			"issuer":                                base + "/v2.0",
			"jwks_uri":                              base + "/discovery/v2.0/keys",
			"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
			"response_types_supported":              []string{"code", "id_token", "code id_token", "id_token token"},
			"tenant_region_scope":                   "EU",
		})
	case r.Method == "POST" && r.URL.Path == "/"+e.tenant+"/oauth2/v2.0/token":
		r.ParseForm()
		switch {
		case r.PostForm.Get("grant_type") != "client_credentials":
			graphTokenError(w, "unsupported_grant_type", "AADSTS70003")
		case r.PostForm.Get("client_id") != e.client:
			graphTokenError(w, "unauthorized_client", "AADSTS700016: Application not found in the directory")
		case r.PostForm.Get("client_assertion") != "" && !e.assertionOK(r.PostForm):
			graphTokenError(w, "invalid_client", "AADSTS700027: The certificate with identifier used to sign the client assertion is not registered on application.")
		case r.PostForm.Get("client_assertion") == "" && r.PostForm.Get("client_secret") != e.secret:
			graphTokenError(w, "invalid_client", "AADSTS7000215: Invalid client secret provided.")
		case !slices.Contains(strings.Fields(r.PostForm.Get("scope")), e.srv.URL+"/.default"):
			// (MSAL adds openid, offline_access and profile.)
			graphTokenError(w, "invalid_scope", "AADSTS1002012: The provided value for scope "+r.PostForm.Get("scope")+" is not valid.")
		default:
			tok := e.issue("eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9")
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"token_type":"Bearer","expires_in":%d,"ext_expires_in":%d,"access_token":%q}`,
				int(e.tokenTTL.Seconds()), int(e.tokenTTL.Seconds()), tok)
		}
	case r.Method == "GET" && strings.HasPrefix(r.URL.Path, "/v1.0/auditLogs/"):
		e.list(w, r, strings.TrimPrefix(r.URL.Path, "/v1.0/auditLogs/"))
	default:
		graphError(w, http.StatusNotFound, "ResourceNotFound", "Resource not found for the segment '"+r.URL.Path+"'.")
	}
}

// assertionOK checks a certificate credential's client assertion: signed
// by the registered certificate's key, for this app and token endpoint.
func (e *graphEmu) assertionOK(f url.Values) bool {
	if e.certKey == nil || f.Get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
		return false
	}
	_, err := jwt.Parse(f.Get("client_assertion"), func(*jwt.Token) (any, error) { return &e.certKey.PublicKey, nil },
		jwt.WithValidMethods([]string{"RS256", "PS256"}), jwt.WithAudience(e.srv.URL+"/"+e.tenant+"/oauth2/v2.0/token"),
		jwt.WithIssuer(e.client), jwt.WithSubject(e.client), jwt.WithExpirationRequired())
	if err != nil {
		e.badRequests = append(e.badRequests, "client assertion: "+err.Error())
	}
	return err == nil
}

// registerCertificate makes a key and self-signed certificate for the app
// and returns a PEM file holding both, as certificate_file takes it.
func (e *graphEmu) registerCertificate(t testing.TB) string {
	k, err := rsa.GenerateKey(crand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "stele-collector"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(crand.Reader, tpl, tpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(k)
	e.mu.Lock()
	e.certKey = k
	e.mu.Unlock()
	p := filepath.Join(t.TempDir(), "app.pem")
	os.WriteFile(p, append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})...), 0o600)
	return p
}

func graphTokenError(w http.ResponseWriter, code, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusBadRequest)
	fmt.Fprintf(w, `{"error":%q,"error_description":%q,"error_codes":[7000215],"timestamp":%q}`, code, desc, time.Now().UTC().Format(time.DateTime))
}

// skiptoken is the emulator's paging state: the query, the offset, and
// the moment the first page was served (later events are not in it).
type skiptoken struct {
	Log    string    `json:"l"`
	From   time.Time `json:"f"`
	To     time.Time `json:"t"`
	Top    int       `json:"n"`
	Offset int       `json:"o"`
	AsOf   time.Time `json:"a"`
}

func (e *graphEmu) list(w http.ResponseWriter, r *http.Request, log string) {
	field := map[string]string{"directoryAudits": "activityDateTime", "signIns": "createdDateTime"}[log]
	if field == "" {
		graphError(w, http.StatusNotFound, "ResourceNotFound", "Resource not found for the segment '"+log+"'.")
		return
	}
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); !ok || !e.valid(tok) {
		e.unauthorized++
		graphError(w, http.StatusUnauthorized, "InvalidAuthenticationToken", "Access token has expired or is not yet valid.")
		return
	}
	e.requests++
	if e.throttleEvery > 0 && e.requests%e.throttleEvery == 0 {
		e.throttled++
		w.Header().Set("Retry-After", "1")
		if e.throttled%2 == 1 {
			graphError(w, http.StatusTooManyRequests, "TooManyRequests", "Too many requests.")
		} else {
			graphError(w, http.StatusServiceUnavailable, "UnknownError", "Service unavailable.")
		}
		return
	}
	q := r.URL.Query()
	var st skiptoken
	if s := q.Get("$skiptoken"); s != "" {
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil || json.Unmarshal(b, &st) != nil || st.Log != log {
			graphError(w, http.StatusBadRequest, "Request_BadRequest", "Invalid $skiptoken.")
			return
		}
	} else {
		st = skiptoken{Log: log, Top: 1000, AsOf: time.Now()}
		if s := q.Get("$top"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 || n > 1000 {
				e.badRequests = append(e.badRequests, r.URL.RawQuery)
				graphError(w, http.StatusBadRequest, "Request_BadRequest", "Invalid page size specified: '"+s+"'. Must be between 1 and 1000 inclusive.")
				return
			}
			st.Top = n
		}
		m := graphFilter.FindStringSubmatch(q.Get("$filter"))
		if m == nil || m[1] != field || (m[3] != "" && m[3] != field) {
			e.badRequests = append(e.badRequests, r.URL.RawQuery)
			graphError(w, http.StatusBadRequest, "Request_UnsupportedQuery", "Unsupported or invalid query filter clause specified for property '"+field+"'.")
			return
		}
		var err error
		if st.From, err = time.Parse(time.RFC3339Nano, m[2]); err != nil {
			graphError(w, http.StatusBadRequest, "Request_BadRequest", "Invalid filter clause: "+err.Error())
			return
		}
		st.To = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
		if m[4] != "" {
			if st.To, err = time.Parse(time.RFC3339Nano, m[4]); err != nil {
				graphError(w, http.StatusBadRequest, "Request_BadRequest", "Invalid filter clause: "+err.Error())
				return
			}
		}
	}
	// Newest first, as Graph returns activity logs.
	var match []graphRec
	for _, rec := range e.recs[log] {
		if !rec.published.After(st.AsOf) && !rec.at.Before(st.From) && !rec.at.After(st.To) {
			match = append(match, rec)
		}
	}
	slices.SortStableFunc(match, func(a, b graphRec) int { return b.at.Compare(a.at) })
	end := min(st.Offset+st.Top, len(match))
	var body strings.Builder
	fmt.Fprintf(&body, `{"@odata.context":"https://graph.microsoft.com/v1.0/$metadata#auditLogs/%s","value":[`, log)
	for i, rec := range match[min(st.Offset, len(match)):end] {
		if i > 0 {
			body.WriteByte(',')
		}
		body.Write(rec.raw)
	}
	body.WriteString("]")
	if end < len(match) {
		st.Offset = end
		b, _ := json.Marshal(st)
		fmt.Fprintf(&body, `,"@odata.nextLink":"%s/v1.0/auditLogs/%s?$top=%d&$skiptoken=%s"`, e.srv.URL, log, st.Top, base64.RawURLEncoding.EncodeToString(b))
	}
	body.WriteString("}")
	w.Header().Set("Content-Type", "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8")
	w.Write([]byte(body.String()))
}

// graphGen makes Graph records from Microsoft's published examples (the
// identity package's golden inputs), each with a fresh id and time.
type graphGen struct {
	mu     sync.Mutex
	e      *graphEmu
	audit  string
	signin string
	n      int
	wanted map[string][]byte
}

func newGraphGen(t testing.TB, e *graphEmu) *graphGen {
	rd := func(p string) string {
		b, err := os.ReadFile(filepath.Join("..", "identity", "testdata", "golden", p))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	return &graphGen{e: e, audit: rd("entra.directoryAudit/user-create.json"), signin: rd("entra.signIn/graph-interactive-success.json"), wanted: map[string][]byte{}}
}

// add publishes n records of log with times at (± spread), now.
func (g *graphGen) add(log string, n int, at time.Time, spread time.Duration) {
	g.mu.Lock()
	var recs []graphRec
	for range n {
		g.n++
		t := at.Add(-time.Duration(rand.Int64N(int64(spread) + 1))).UTC()
		id := fmt.Sprintf("%s-%08d", randomGUID()[:27], g.n)
		var s string
		if log == "directoryAudits" {
			s = strings.Replace(g.audit, `"id": "00000000-0000-4000-8000-000000000116"`, `"id": "`+id+`"`, 1)
			s = strings.Replace(s, `"activityDateTime": "2026-03-06T08:00:00.0000000Z"`, `"activityDateTime": "`+t.Format("2006-01-02T15:04:05.0000000Z")+`"`, 1)
		} else {
			s = strings.Replace(g.signin, `"id": "00000000-0000-4000-8000-000000000160"`, `"id": "`+id+`"`, 1)
			s = strings.Replace(s, `"createdDateTime": "2026-03-09T07:00:00Z"`, `"createdDateTime": "`+t.Format(time.RFC3339)+`"`, 1)
		}
		if !strings.Contains(s, id) || !strings.Contains(s, t.Format("2006-01-02T15:04:05")) {
			panic("template changed: " + s[:100])
		}
		g.wanted[id] = []byte(s)
		recs = append(recs, graphRec{at: t, raw: []byte(s)})
	}
	g.mu.Unlock()
	g.e.mu.Lock()
	now := time.Now()
	for i := range recs {
		recs[i].published = now
	}
	g.e.recs[log] = append(g.e.recs[log], recs...)
	g.e.mu.Unlock()
}

func (g *graphGen) want() map[string][]byte {
	g.mu.Lock()
	defer g.mu.Unlock()
	return maps.Clone(g.wanted)
}

func graphConfig(ts *testServer, stateDir string, e *graphEmu, extra string) string {
	return fmt.Sprintf(`{
  "server": {"address": %q},
  "state_dir": %q,
  "listen": "-",
  "sources": [{"name": "entra-graph", "entra_graph": {
    "tenant": %q, "client_id": %q, "auth": "client_secret", "client_secret_env": %q,
    "endpoint": %q, "authority_host": %q, "tls_ca": %q,
    "poll_interval": "200ms", "window": "24h", "top": 50%s}}]
}`, ts.addr, stateDir, e.tenant, e.client, e.secretEnv, e.srv.URL, e.srv.URL+"/", e.caFile, extra)
}

// TestGraphEndToEnd polls the emulated Graph: a backlog over several
// pages, both logs, throttling (429 and 503 with Retry-After), short-lived
// tokens, events published late (inside the overlap) and new ones, into a
// real stele-server; then restarts from the cursor.
func TestGraphEndToEnd(t *testing.T) {
	t.Parallel()
	e := newGraphEmu(t)
	e.tokenTTL = 2 * time.Second // shorter than the SDK's refresh margin: a token per request
	e.throttleEvery = 7
	ts := startServer(t, t.TempDir(), "")
	g := newGraphGen(t, e)
	now := time.Now()
	g.add("directoryAudits", 230, now.Add(-time.Hour), 2*time.Hour)
	g.add("signIns", 120, now.Add(-time.Hour), 30*time.Hour) // more than one day: two windows
	cfg := writeConfig(t, t.TempDir(), graphConfig(ts, t.TempDir(), e, ""))
	c, stop := runCollector(t, cfg, ts.cli)
	l := newLogged()
	l.waitFor(t, ts.cli, len(g.want()), time.Minute)
	// Late: published now, dated 10 minutes ago (inside the 15m overlap).
	g.add("directoryAudits", 20, now.Add(-10*time.Minute), time.Minute)
	g.add("signIns", 60, time.Now(), 0)
	l.waitFor(t, ts.cli, len(g.want()), time.Minute)
	time.Sleep(500 * time.Millisecond) // more polls over the same overlap
	st := statusOf(c)
	want := g.want()
	if st.Events["admitted"] != uint64(len(want)) || st.Events["duplicate"] != 0 || st.Events["malformed"]+st.Events["refused"] != 0 {
		t.Errorf("events by outcome = %v, want %d admitted and nothing else (the overlap is not sent again)", st.Events, len(want))
	}
	metrics := scrape(t, c)
	if !strings.Contains(metrics, `stele_collector_throttled_total{source="entra-graph"}`) {
		t.Errorf("no throttling in the metrics:\n%s", metrics)
	}
	stop()
	e.mu.Lock()
	if e.throttled == 0 || e.nTokens < 2 || e.unauthorized != 0 || len(e.badRequests) != 0 {
		t.Errorf("throttled %d times (want some), %d tokens (want several), %d requests with an expired token (want 0), bad requests %q",
			e.throttled, e.nTokens, e.unauthorized, e.badRequests)
	}
	e.mu.Unlock()

	// A restart resumes at the watermark: the overlap comes back as
	// duplicates, nothing is missed.
	c, stop = runCollector(t, cfg, ts.cli)
	g.add("signIns", 15, time.Now(), 0)
	l.waitFor(t, ts.cli, len(g.want()), time.Minute)
	time.Sleep(300 * time.Millisecond)
	if st := statusOf(c); st.Events["admitted"] != 15 {
		t.Errorf("after a restart: events by outcome = %v, want 15 admitted", st.Events)
	}
	stop()
	l.sync(t, ts.cli)
	checkExactlyOnce(t, l, g.want())
}

// scrape reads a collector's /metrics.
func scrape(t testing.TB, c interface{ Handler() http.Handler }) string {
	rec := httptest.NewRecorder()
	c.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	return rec.Body.String()
}

// graphFeed publishes records while the collector runs, some of them late.
type graphFeed struct {
	g    *graphGen
	left int
}

func (f *graphFeed) step(t testing.TB) bool {
	if f.left == 0 {
		return false
	}
	n := min(f.left, 1+rand.IntN(30))
	f.left -= n
	log := []string{"directoryAudits", "signIns"}[rand.IntN(2)]
	f.g.add(log, n, time.Now(), time.Duration(rand.IntN(5))*time.Minute)
	return true
}

func (f *graphFeed) want() map[string][]byte { return f.g.want() }

// TestCrashGraph SIGKILLs the collector while it polls Graph.
func TestCrashGraph(t *testing.T) {
	t.Parallel()
	e := newGraphEmu(t)
	e.throttleEvery = 9
	ts := startServer(t, t.TempDir(), "")
	g := newGraphGen(t, e)
	g.add("directoryAudits", 100, time.Now(), 3*time.Hour)
	cfg := writeConfig(t, t.TempDir(), graphConfig(ts, t.TempDir(), e, ""))
	torture(t, ts, cfg, &graphFeed{g: g, left: 400*cycles() + 200})
}

// TestGraphCertificate authenticates with a client certificate (a signed
// client assertion) instead of a secret.
func TestGraphCertificate(t *testing.T) {
	t.Parallel()
	e := newGraphEmu(t)
	certFile := e.registerCertificate(t)
	ts := startServer(t, t.TempDir(), "")
	g := newGraphGen(t, e)
	g.add("directoryAudits", 40, time.Now(), time.Hour)
	cfg := strings.Replace(graphConfig(ts, t.TempDir(), e, ""), `"auth": "client_secret", "client_secret_env": "`+e.secretEnv+`"`,
		`"auth": "client_certificate", "certificate_file": "`+certFile+`"`, 1)
	_, stop := runCollector(t, writeConfig(t, t.TempDir(), cfg), ts.cli)
	l := newLogged()
	l.waitFor(t, ts.cli, len(g.want()), time.Minute)
	stop()
	checkExactlyOnce(t, l, g.want())
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.nTokens == 0 || len(e.badRequests) != 0 {
		t.Errorf("%d tokens issued; bad requests: %q", e.nTokens, e.badRequests)
	}
}
