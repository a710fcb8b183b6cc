package collector_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// oktaEmu is a local HTTPS server implementing what the Okta source uses,
// as Okta documents it: GET /api/v1/logs with since, limit (at most 1000),
// sortOrder=ASCENDING and the opaque after cursor of the
// Link: <…>; rel="next" header (given on every polling answer, empty
// pages included); SSWS API tokens; POST /oauth2/v1/token with the client
// credentials grant and a private_key_jwt client assertion (signature,
// iss, sub, aud, exp, a jti never reused) for scope okta.logs.read; the
// X-Rate-Limit-Limit/-Remaining/-Reset headers and 429 (E0000047) once a
// window's requests are used up.
type oktaEmu struct {
	httpsEmu
	org      string
	token    string // SSWS API token
	tokenEnv string // the environment variable holding token
	client   string
	key      *ecdsa.PrivateKey
	keyPEM   string // file

	events []oktaEvent
	// dpop: the app requires DPoP; tokens are bound to the proof's key.
	dpop       bool
	dpopNonce  string
	nonceAsked int               // use_dpop_nonce answers
	bound      map[string]string // access token → the key it is bound to
	dpopCalls  int
	jtis       map[string]bool
	// rate limit: perWindow requests per 1-second window (0: none).
	perWindow  int
	window     int64
	used       int
	ignored    int // requests while the window was used up
	forceEvery int // every n-th request is a 429 anyway
	requests   int
	forced     int
	rejected   []string
}

type oktaEvent struct {
	published time.Time
	raw       []byte
}

func newOktaEmu(t testing.TB) *oktaEmu {
	e := &oktaEmu{token: "00" + strings.ReplaceAll(randomGUID(), "-", ""), client: "0oa" + randomGUID()[:17], jtis: map[string]bool{}, bound: map[string]string{}, dpopNonce: "nonce-" + randomGUID()}
	e.tokenEnv = secretEnv(e.token)
	e.start(t, e.serve)
	e.org = e.srv.URL
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	e.key = k
	der, _ := x509.MarshalPKCS8PrivateKey(k)
	e.keyPEM = filepath.Join(t.TempDir(), "okta-app.pem")
	os.WriteFile(e.keyPEM, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	return e
}

func oktaError(w http.ResponseWriter, status int, code, summary string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"errorCode":%q,"errorSummary":%q,"errorLink":%q,"errorId":"oae%s","errorCauses":[]}`, code, summary, code, randomGUID()[:20])
}

func (e *oktaEmu) serve(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == "POST" && r.URL.Path == "/oauth2/v1/token":
		e.tokenEndpoint(w, r)
	case r.Method == "GET" && r.URL.Path == "/api/v1/logs":
		e.logs(w, r)
	default:
		oktaError(w, http.StatusNotFound, "E0000022", "The endpoint does not support the provided HTTP method")
	}
}

func (e *oktaEmu) tokenEndpoint(w http.ResponseWriter, r *http.Request) {
	r.ParseForm()
	fail := func(code, desc string) {
		e.rejected = append(e.rejected, desc)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprintf(w, `{"error":%q,"error_description":%q}`, code, desc)
	}
	f := r.PostForm
	if f.Get("grant_type") != "client_credentials" {
		fail("unsupported_grant_type", "grant_type "+f.Get("grant_type"))
		return
	}
	if !strings.Contains(" "+f.Get("scope")+" ", " okta.logs.read ") {
		fail("invalid_scope", "scope "+f.Get("scope"))
		return
	}
	if f.Get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
		fail("invalid_client", "client_assertion_type")
		return
	}
	var claims jwt.RegisteredClaims
	_, err := jwt.ParseWithClaims(f.Get("client_assertion"), &claims, func(*jwt.Token) (any, error) { return &e.key.PublicKey, nil },
		jwt.WithValidMethods([]string{"ES256"}), jwt.WithAudience(e.org+"/oauth2/v1/token"), jwt.WithIssuer(e.client),
		jwt.WithSubject(e.client), jwt.WithExpirationRequired(), jwt.WithIssuedAt())
	switch {
	case err != nil:
		fail("invalid_client", "The client_assertion signature or claims are invalid: "+err.Error())
		return
	case claims.ExpiresAt.Time.After(time.Now().Add(time.Hour)):
		fail("invalid_client", "The client_assertion token has an expiration too far into the future.")
		return
	case claims.ID == "" || e.jtis[claims.ID]:
		fail("invalid_client", "The client_assertion token has already been used (jti).")
		return
	}
	e.jtis[claims.ID] = true
	tokenType, jwk := "Bearer", ""
	if e.dpop {
		if r.Header.Get("DPoP") == "" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			e.rejected = append(e.rejected, "token request without a DPoP proof")
			fmt.Fprint(w, `{"error":"invalid_dpop_proof","error_description":"The DPoP proof JWT header is missing."}`)
			return
		}
		var err error
		if jwk, err = e.checkDPoP(r, "", e.dpopNonce); errors.Is(err, errUseDPoPNonce) {
			e.nonceAsked++
			w.Header().Set("DPoP-Nonce", e.dpopNonce)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, `{"error":"use_dpop_nonce","error_description":%q}`, err.Error())
			return
		} else if err != nil {
			fail("invalid_dpop_proof", err.Error())
			return
		}
		tokenType = "DPoP"
	}
	tok := e.issue("eyJraWQiOiJ")
	e.bound[tok] = jwk
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"token_type":%q,"expires_in":%d,"access_token":%q,"scope":"okta.logs.read"}`, tokenType, int(e.tokenTTL.Seconds()), tok)
}

func (e *oktaEmu) logs(w http.ResponseWriter, r *http.Request) {
	authz := r.Header.Get("Authorization")
	if e.dpop {
		tok, ok := strings.CutPrefix(authz, "DPoP ")
		jwk, err := e.checkDPoP(r, tok, "")
		if !ok || !e.valid(tok) || err != nil || jwk != e.bound[tok] {
			e.rejected = append(e.rejected, fmt.Sprintf("DPoP call: %q, proof %v, bound to its key %v", authz, err, jwk == e.bound[tok]))
			oktaError(w, http.StatusUnauthorized, "E0000011", "Invalid token provided")
			return
		}
		e.dpopCalls++
	} else if bearer, ok := strings.CutPrefix(authz, "Bearer "); ok {
		if !e.valid(bearer) {
			e.rejected = append(e.rejected, "expired or unknown access token")
			oktaError(w, http.StatusUnauthorized, "E0000011", "Invalid token provided")
			return
		}
	} else if authz != "SSWS "+e.token {
		e.rejected = append(e.rejected, "bad Authorization "+authz)
		oktaError(w, http.StatusUnauthorized, "E0000011", "Invalid token provided")
		return
	}
	// The rate limit: perWindow requests per second.
	now := time.Now()
	if e.perWindow > 0 {
		if now.Unix() != e.window {
			e.window, e.used = now.Unix(), 0
		}
		reset := strconv.FormatInt(e.window+1, 10)
		e.requests++
		w.Header().Set("X-Rate-Limit-Limit", strconv.Itoa(e.perWindow))
		w.Header().Set("X-Rate-Limit-Reset", reset)
		forced := e.forceEvery > 0 && e.requests%e.forceEvery == 0
		if e.used >= e.perWindow || forced {
			if forced {
				e.forced++
			} else {
				e.ignored++
			}
			w.Header().Set("X-Rate-Limit-Remaining", "0")
			oktaError(w, http.StatusTooManyRequests, "E0000047", "API call exceeded rate limit due to too many requests.")
			return
		}
		e.used++
		w.Header().Set("X-Rate-Limit-Remaining", strconv.Itoa(e.perWindow-e.used))
	}
	q := r.URL.Query()
	limit := 100
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			oktaError(w, http.StatusBadRequest, "E0000001", "Api validation failed: limit")
			return
		}
		limit = n
	}
	if q.Get("sortOrder") != "ASCENDING" {
		oktaError(w, http.StatusBadRequest, "E0000001", "this emulator serves polling requests only (sortOrder=ASCENDING)")
		return
	}
	start := 0
	if a := q.Get("after"); a != "" {
		_, idx, ok := strings.Cut(a, "_")
		n, err := strconv.Atoi(idx)
		if !ok || err != nil || n < 0 || n > len(e.events) {
			oktaError(w, http.StatusBadRequest, "E0000001", "Api validation failed: after")
			return
		}
		start = n
	} else {
		since := now.Add(-7 * 24 * time.Hour)
		if s := q.Get("since"); s != "" {
			t, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				oktaError(w, http.StatusBadRequest, "E0000001", "Api validation failed: since")
				return
			}
			since = t
		}
		for start < len(e.events) && e.events[start].published.Before(since) {
			start++
		}
	}
	end := min(start+limit, len(e.events))
	var body strings.Builder
	body.WriteByte('[')
	for i, ev := range e.events[start:end] {
		if i > 0 {
			body.WriteByte(',')
		}
		body.Write(ev.raw)
	}
	body.WriteByte(']')
	self := e.org + "/api/v1/logs?" + r.URL.RawQuery
	nq := url.Values{"limit": {strconv.Itoa(limit)}, "sortOrder": {"ASCENDING"}, "after": {fmt.Sprintf("%d_%d", now.UnixMilli(), end)}}
	w.Header().Add("Link", "<"+self+`>; rel="self"`)
	w.Header().Add("Link", "<"+e.org+"/api/v1/logs?"+nq.Encode()+`>; rel="next"`)
	w.Header().Set("Content-Type", "application/json")
	w.Write([]byte(body.String()))
}

// oktaGen publishes Okta's documented LogEvent example (the identity
// package's golden input), each with a fresh uuid.
type oktaGen struct {
	mu     sync.Mutex
	e      *oktaEmu
	tpl    string
	n      int
	wanted map[string][]byte
}

func newOktaGen(t testing.TB, e *oktaEmu) *oktaGen {
	b, err := os.ReadFile("../identity/testdata/golden/okta.systemLog/session-start-success-docs-shape.json")
	if err != nil {
		t.Fatal(err)
	}
	return &oktaGen{e: e, tpl: strings.TrimSpace(string(b)), wanted: map[string][]byte{}}
}

func (g *oktaGen) add(n int) {
	g.mu.Lock()
	var evs []oktaEvent
	now := time.Now().UTC()
	for range n {
		g.n++
		id := fmt.Sprintf("%s-%012d", randomGUID()[:23], g.n)
		s := strings.Replace(g.tpl, `"uuid": "f0c8a0a2-0000-11f0-8000-000000000904"`, `"uuid": "`+id+`"`, 1)
		s = strings.Replace(s, `"published": "2025-11-14T10:00:00.123Z"`, `"published": "`+now.Format("2006-01-02T15:04:05.000Z")+`"`, 1)
		if !strings.Contains(s, id) {
			panic("template changed")
		}
		g.wanted[id] = []byte(s)
		evs = append(evs, oktaEvent{published: now, raw: []byte(s)})
	}
	g.mu.Unlock()
	g.e.mu.Lock()
	g.e.events = append(g.e.events, evs...)
	g.e.mu.Unlock()
}

func (g *oktaGen) want() map[string][]byte {
	g.mu.Lock()
	defer g.mu.Unlock()
	return maps.Clone(g.wanted)
}

func oktaConfig(ts *testServer, stateDir string, e *oktaEmu, auth string) string {
	a := fmt.Sprintf(`"auth": "api_token", "api_token_env": %q`, e.tokenEnv)
	if auth == "private_key_jwt" {
		a = fmt.Sprintf(`"auth": "private_key_jwt", "client_id": %q, "private_key_file": %q, "key_id": "stele-test"`, e.client, e.keyPEM)
	}
	return fmt.Sprintf(`{
  "server": {"address": %q},
  "state_dir": %q,
  "listen": "-",
  "sources": [{"name": "okta", "okta_systemlog": {
    "org_url": %q, %s, "tls_ca": %q, "limit": 100, "poll_interval": "200ms"}}]
}`, ts.addr, stateDir, e.org, a, e.caFile)
}

// TestOktaEndToEnd polls the emulated System Log with both kinds of
// credentials, a backlog over many pages under a tight rate limit and
// forced 429s, events published while it runs, into a real stele-server;
// then restarts from the next link it saved.
func TestOktaEndToEnd(t *testing.T) {
	t.Parallel()
	for _, auth := range []string{"api_token", "private_key_jwt"} {
		t.Run(auth, func(t *testing.T) {
			t.Parallel()
			e := newOktaEmu(t)
			e.perWindow, e.forceEvery = 4, 9
			e.tokenTTL = 12 * time.Second // x/oauth2 renews 10 s before expiry
			ts := startServer(t, t.TempDir(), "")
			g := newOktaGen(t, e)
			g.add(950)
			cfg := writeConfig(t, t.TempDir(), oktaConfig(ts, t.TempDir(), e, auth))
			c, stop := runCollector(t, cfg, ts.cli)
			l := newLogged()
			l.waitFor(t, ts.cli, len(g.want()), time.Minute)
			for range 5 {
				g.add(7)
				time.Sleep(100 * time.Millisecond)
			}
			l.waitFor(t, ts.cli, len(g.want()), time.Minute)
			time.Sleep(300 * time.Millisecond)
			st := statusOf(c)
			if st.Events["admitted"] != uint64(len(g.want())) || st.Events["duplicate"] != 0 || len(st.Events) != 1 {
				t.Errorf("events by outcome = %v, want %d admitted and nothing else", st.Events, len(g.want()))
			}
			if m := scrape(t, c); !strings.Contains(m, `stele_collector_throttled_total{source="okta"}`) {
				t.Errorf("no throttling in the metrics")
			}
			stop()
			// A new process cannot know that the last one used up the
			// current rate-limit window: start it in the next one.
			time.Sleep(1100 * time.Millisecond)
			c, stop = runCollector(t, cfg, ts.cli)
			g.add(33)
			l.waitFor(t, ts.cli, len(g.want()), time.Minute)
			time.Sleep(300 * time.Millisecond)
			if st := statusOf(c); st.Events["admitted"] != 33 || st.Events["duplicate"] != 0 {
				t.Errorf("after a restart: events by outcome = %v, want 33 admitted, nothing twice", st.Events)
			}
			stop()
			l.sync(t, ts.cli)
			checkExactlyOnce(t, l, g.want())
			e.mu.Lock()
			defer e.mu.Unlock()
			if e.ignored != 0 || e.forced == 0 || len(e.rejected) != 0 {
				t.Errorf("requests past the rate limit: %d (want 0); forced 429s: %d (want some); rejected: %q", e.ignored, e.forced, e.rejected)
			}
			if auth == "private_key_jwt" && e.nTokens < 2 {
				t.Errorf("%d access tokens asked for; want them renewed", e.nTokens)
			}
		})
	}
}

// oktaFeed publishes events while the collector runs.
type oktaFeed struct {
	g    *oktaGen
	left int
}

func (f *oktaFeed) step(t testing.TB) bool {
	if f.left == 0 {
		return false
	}
	n := min(f.left, 1+mrand.IntN(30))
	f.left -= n
	f.g.add(n)
	return true
}

func (f *oktaFeed) want() map[string][]byte { return f.g.want() }

// TestCrashOkta SIGKILLs the collector while it follows the System Log.
func TestCrashOkta(t *testing.T) {
	t.Parallel()
	e := newOktaEmu(t)
	e.perWindow = 20
	ts := startServer(t, t.TempDir(), "")
	g := newOktaGen(t, e)
	cfg := writeConfig(t, t.TempDir(), oktaConfig(ts, t.TempDir(), e, "private_key_jwt"))
	torture(t, ts, cfg, &oktaFeed{g: g, left: 400*cycles() + 200})
}

// checkDPoP checks a DPoP proof (RFC 9449 as Okta takes it) for a request
// and returns its key (jwk x and y). tok, when set, is the access token
// the proof must hash (ath); nonce, when set, the nonce it must carry
// (mu held).
func (e *oktaEmu) checkDPoP(r *http.Request, tok, nonce string) (string, error) {
	var claims jwt.MapClaims
	var jwk string
	_, err := jwt.ParseWithClaims(r.Header.Get("DPoP"), &claims, func(t *jwt.Token) (any, error) {
		if t.Header["typ"] != "dpop+jwt" {
			return nil, fmt.Errorf("typ %v, want dpop+jwt", t.Header["typ"])
		}
		k, _ := t.Header["jwk"].(map[string]any)
		x, _ := k["x"].(string)
		y, _ := k["y"].(string)
		if k["kty"] != "EC" || k["crv"] != "P-256" || k["d"] != nil {
			return nil, fmt.Errorf("jwk %v is not a public P-256 key", k)
		}
		xb, err1 := base64.RawURLEncoding.DecodeString(x)
		yb, err2 := base64.RawURLEncoding.DecodeString(y)
		if err1 != nil || err2 != nil || len(xb) != 32 || len(yb) != 32 {
			return nil, errors.New("jwk x/y")
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, xb...), yb...))
		if err != nil {
			return nil, err
		}
		jwk = x + "." + y
		return pub, nil
	}, jwt.WithValidMethods([]string{"ES256"}))
	if err != nil {
		return "", fmt.Errorf("DPoP proof: %v", err)
	}
	htu := e.org + r.URL.Path
	iat, _ := claims["iat"].(float64)
	jti, _ := claims["jti"].(string)
	switch {
	case claims["htm"] != r.Method || claims["htu"] != htu:
		return "", fmt.Errorf("DPoP proof for %v %v, not %s %s", claims["htm"], claims["htu"], r.Method, htu)
	case time.Since(time.Unix(int64(iat), 0)).Abs() > time.Minute:
		return "", errors.New("DPoP proof iat is not recent")
	case jti == "" || e.jtis["dpop:"+jti]:
		return "", errors.New("DPoP proof jti missing or reused")
	}
	e.jtis["dpop:"+jti] = true
	if tok != "" {
		h := sha256.Sum256([]byte(tok))
		if claims["ath"] != base64.RawURLEncoding.EncodeToString(h[:]) {
			return "", errors.New("DPoP proof ath does not hash the access token")
		}
	}
	if nonce != "" && claims["nonce"] != nonce {
		return "", errUseDPoPNonce
	}
	return jwk, nil
}

var errUseDPoPNonce = errors.New("Authorization server requires nonce in DPoP proof.")

// TestOktaDPoP: an app that requires DPoP. The token endpoint answers the
// first request use_dpop_nonce with a DPoP-Nonce; the collector asks again
// with the nonce in its proof (and a new client assertion), gets a
// DPoP-bound token, and calls the System Log with Authorization: DPoP and
// a proof hashing the token. Tokens expire and are renewed; the nonce
// changes and is learnt again.
func TestOktaDPoP(t *testing.T) {
	t.Parallel()
	e := newOktaEmu(t)
	e.dpop = true
	e.tokenTTL = 11 * time.Second // x/oauth2 renews 10 s before expiry: a token per request
	ts := startServer(t, t.TempDir(), "")
	g := newOktaGen(t, e)
	g.add(250)
	cfg := strings.Replace(oktaConfig(ts, t.TempDir(), e, "private_key_jwt"), `"key_id": "stele-test"`, `"key_id": "stele-test", "dpop": true`, 1)
	_, stop := runCollector(t, writeConfig(t, t.TempDir(), cfg), ts.cli)
	l := newLogged()
	l.waitFor(t, ts.cli, len(g.want()), time.Minute)
	e.mu.Lock()
	e.dpopNonce = "rotated-" + randomGUID()
	n0 := e.nTokens
	e.mu.Unlock()
	// The token expires (for x/oauth2) a second after it was issued: the
	// next one is asked for with the old nonce, refused, then asked for
	// with the new one.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		e.mu.Lock()
		n := e.nTokens
		e.mu.Unlock()
		if n > n0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no new access token within 30 s")
		}
	}
	g.add(30)
	l.waitFor(t, ts.cli, len(g.want()), time.Minute)
	stop()
	l.sync(t, ts.cli)
	checkExactlyOnce(t, l, g.want())
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.rejected) != 0 || e.nonceAsked < 2 || e.nTokens < 2 || e.dpopCalls == 0 {
		t.Errorf("rejected %q; use_dpop_nonce answers %d (want 2: first and after the rotation); tokens %d (want several); DPoP API calls %d",
			e.rejected, e.nonceAsked, e.nTokens, e.dpopCalls)
	}
}
