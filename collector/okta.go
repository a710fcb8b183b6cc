package collector

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/stele-dev/stele/internal/importer"
)

// OktaConfig polls an Okta org's System Log as Okta documents polling:
// GET /api/v1/logs?since=…&sortOrder=ASCENDING&limit=…, then the
// Link: <…>; rel="next" of each answer, for ever (an empty page's next
// link is asked again after the poll interval: it returns what has been
// published since). The cursor is that next link. The rate limit headers
// (X-Rate-Limit-Remaining, X-Rate-Limit-Reset) and 429 are honoured.
type OktaConfig struct {
	// OrgURL is the org's base URL, https://<org>.okta.com. Its host is
	// the tenant of the records.
	OrgURL string `json:"org_url"`
	// Auth is api_token (an SSWS API token: api_token_file or
	// api_token_env) or private_key_jwt (an API service app: client_id,
	// private_key_file with its PEM RSA or EC key, key_id if the app has
	// several keys; the token is asked for with scope okta.logs.read).
	Auth           string `json:"auth"`
	APITokenFile   string `json:"api_token_file,omitempty"`
	APITokenEnv    string `json:"api_token_env,omitempty"`
	ClientID       string `json:"client_id,omitempty"`
	PrivateKeyFile string `json:"private_key_file,omitempty"`
	KeyID          string `json:"key_id,omitempty"`
	// DPoP (private_key_jwt only) is for an app that requires DPoP-bound
	// access tokens ("Require Demonstrating Proof of Possession header in
	// token requests"): every token request and API call carries a proof
	// signed with a key the collector makes at start.
	DPoP bool `json:"dpop,omitempty"`
	// Limit is the events per page (default 1000, Okta's most).
	Limit int `json:"limit,omitempty"`
	// PollInterval is the pause after a page that was not full (default 15s).
	PollInterval Duration `json:"poll_interval,omitempty"`
	// TLSCA verifies the org against this PEM file instead of the system
	// roots (test servers only).
	TLSCA string `json:"tls_ca,omitempty"`
	// Timeout bounds one HTTP request (default 60s).
	Timeout Duration `json:"timeout,omitempty"`
}

func (c *OktaConfig) check() error {
	u, err := checkHTTPS("org_url", c.OrgURL)
	if err != nil {
		return err
	}
	if strings.Trim(u.Path, "/") != "" {
		return fmt.Errorf("org_url %q: give the org's base URL, https://<org>.okta.com, without a path", c.OrgURL)
	}
	if err := importer.ValidateTenant(u.Host); err != nil {
		return fmt.Errorf("org_url host: %w", err)
	}
	switch c.Auth {
	case "api_token":
		if c.APITokenFile == "" && c.APITokenEnv == "" {
			return errors.New("auth api_token needs api_token_file or api_token_env")
		}
	case "private_key_jwt":
		if c.ClientID == "" || c.PrivateKeyFile == "" {
			return errors.New("auth private_key_jwt needs client_id and private_key_file")
		}
	default:
		return fmt.Errorf("auth %q: use api_token or private_key_jwt", c.Auth)
	}
	if c.DPoP && c.Auth != "private_key_jwt" {
		return errors.New("dpop needs auth private_key_jwt (an API token is not DPoP-bound)")
	}
	if c.Limit < 0 || c.Limit > 1000 {
		return errors.New("limit is 1 to 1000")
	}
	return nil
}

// OktaSource polls the Okta System Log.
type OktaSource struct {
	cfg      OktaConfig
	base     *url.URL
	hc       *http.Client
	auth     func(ctx context.Context) (string, error) // the Authorization header
	dpop     *dpop                                     // DPoP proofs, when the app requires them
	from     time.Time
	log      *slog.Logger
	now      func() time.Time
	throttle func(time.Duration)
	// notBefore is when the rate limit lets the next request go.
	notBefore time.Time
}

// NewOktaSource reads the credentials and makes the HTTP client.
func NewOktaSource(cfg OktaConfig, from time.Time, log *slog.Logger) (*OktaSource, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if cfg.Limit == 0 {
		cfg.Limit = 1000
	}
	base, _ := url.Parse(strings.TrimSuffix(cfg.OrgURL, "/"))
	hc, err := httpClient(cfg.TLSCA, cfg.Timeout.Or(time.Minute))
	if err != nil {
		return nil, err
	}
	s := &OktaSource{cfg: cfg, base: base, hc: hc, from: from, log: log, now: time.Now}
	switch cfg.Auth {
	case "api_token":
		tok, err := secret(cfg.APITokenFile, cfg.APITokenEnv, "Okta API token")
		if err != nil {
			return nil, err
		}
		s.auth = func(context.Context) (string, error) { return "SSWS " + tok, nil }
	case "private_key_jwt":
		pemBytes, err := os.ReadFile(cfg.PrivateKeyFile)
		if err != nil {
			return nil, fmt.Errorf("private_key_file: %w", err)
		}
		key, method, err := parseSigningKey(pemBytes)
		if err != nil {
			return nil, fmt.Errorf("private_key_file %s: %w", cfg.PrivateKeyFile, err)
		}
		ts := &oktaAssertionSource{cfg: cfg, tokenURL: base.String() + "/oauth2/v1/token", key: key, method: method, hc: hc}
		if cfg.DPoP {
			if s.dpop, err = newDPoP(); err != nil {
				return nil, err
			}
			rt := hc.Transport
			if rt == nil {
				rt = http.DefaultTransport
			}
			tc := *hc
			tc.Transport = dpopTokenTransport{d: s.dpop, rt: rt}
			ts.hc = &tc
		}
		reuse := oauth2.ReuseTokenSource(nil, ts)
		s.auth = func(context.Context) (string, error) {
			t, err := reuse.Token()
			if err != nil {
				return "", fmt.Errorf("getting an Okta access token: %w", err)
			}
			return t.Type() + " " + t.AccessToken, nil
		}
	}
	return s, nil
}

// parseSigningKey reads a PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC)
// and the JWS algorithm Okta accepts for it.
func parseSigningKey(b []byte) (crypto.Signer, jwt.SigningMethod, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, nil, errors.New("no PEM block")
	}
	var key any
	var err error
	switch blk.Type {
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(blk.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(blk.Bytes)
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	default:
		return nil, nil, fmt.Errorf("PEM block %q is not a private key", blk.Type)
	}
	if err != nil {
		return nil, nil, err
	}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		return k, jwt.SigningMethodRS256, nil
	case *ecdsa.PrivateKey:
		switch k.Curve.Params().BitSize {
		case 256:
			return k, jwt.SigningMethodES256, nil
		case 384:
			return k, jwt.SigningMethodES384, nil
		case 521:
			return k, jwt.SigningMethodES512, nil
		}
	}
	return nil, nil, fmt.Errorf("a %T key: Okta takes RSA or EC (P-256, P-384, P-521) keys", key)
}

// oktaAssertionSource gets access tokens with the client credentials grant,
// authenticating with a fresh signed client assertion (private_key_jwt)
// each time.
type oktaAssertionSource struct {
	cfg      OktaConfig
	tokenURL string
	key      crypto.Signer
	method   jwt.SigningMethod
	hc       *http.Client
	retried  bool // asking again with the DPoP nonce (Token calls are serialised by oauth2.ReuseTokenSource)
}

func (o *oktaAssertionSource) Token() (*oauth2.Token, error) {
	now := time.Now()
	var jti [16]byte
	rand.Read(jti[:])
	claims := jwt.RegisteredClaims{
		Issuer:    o.cfg.ClientID,
		Subject:   o.cfg.ClientID,
		Audience:  jwt.ClaimStrings{o.tokenURL},
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(5 * time.Minute)),
		ID:        hex.EncodeToString(jti[:]),
	}
	t := jwt.NewWithClaims(o.method, claims)
	if o.cfg.KeyID != "" {
		t.Header["kid"] = o.cfg.KeyID
	}
	assertion, err := t.SignedString(o.key)
	if err != nil {
		return nil, fmt.Errorf("signing the client assertion: %w", err)
	}
	cc := clientcredentials.Config{
		ClientID: o.cfg.ClientID,
		TokenURL: o.tokenURL,
		Scopes:   []string{"okta.logs.read"},
		EndpointParams: url.Values{
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
			"client_assertion":      {assertion},
		},
		AuthStyle: oauth2.AuthStyleInParams,
	}
	ctx, cancel := context.WithTimeout(context.WithValue(context.Background(), oauth2.HTTPClient, o.hc), time.Minute)
	defer cancel()
	tok, err := cc.Token(ctx)
	var re *oauth2.RetrieveError
	if o.retried || !errors.As(err, &re) || re.ErrorCode != "use_dpop_nonce" {
		return tok, err
	}
	// The token endpoint wants the nonce it sent (DPoP-Nonce, kept by the
	// transport) in the proof: ask again, with a new client assertion (its
	// jti is never reused).
	o.retried = true
	defer func() { o.retried = false }()
	return o.Token()
}

// Provider is Okta.
func (s *OktaSource) Provider() importer.Provider { return importer.Okta }

// OnThrottle is told how long the source waits each time Okta throttles.
func (s *OktaSource) OnThrottle(f func(time.Duration)) { s.throttle = f }

// oktaPosition is the Okta source's cursor: the next link to ask.
type oktaPosition struct {
	Next string `json:"next"`
}

// Run follows the System Log's next links.
func (s *OktaSource) Run(ctx context.Context, raw json.RawMessage, emit Emit) error {
	var pos oktaPosition
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &pos); err != nil {
			return fmt.Errorf("cursor: %w", err)
		}
	}
	u := pos.Next
	if u == "" {
		q := url.Values{"limit": {strconv.Itoa(s.cfg.Limit)}, "sortOrder": {"ASCENDING"}}
		if !s.from.IsZero() {
			q.Set("since", s.from.UTC().Format("2006-01-02T15:04:05.000Z"))
		}
		u = s.base.String() + "/api/v1/logs?" + q.Encode()
	} else if _, err := sameOrigin(s.base, u); err != nil {
		return fmt.Errorf("cursor: %w", err)
	}
	for {
		recs, next, err := s.page(ctx, u)
		if err != nil {
			return err
		}
		where := "okta=" + u
		b := Batch{Items: make([]Item, len(recs))}
		for i, r := range recs {
			b.Items[i] = Item{Raw: r, Tenant: strings.ToLower(s.base.Host), Position: fmt.Sprintf("%s record=%d", where, i+1)}
		}
		if next != "" {
			u = next
		}
		// Without a next link (Okta gives one to every polling request)
		// the same request is asked again: what comes back twice is a
		// duplicate for the log.
		b.Position = oktaPosition{Next: u}
		b.CaughtUp = len(recs) < s.cfg.Limit
		if err := emit(ctx, b); err != nil {
			return err
		}
		if b.CaughtUp && !sleep(ctx, s.cfg.PollInterval.Or(15*time.Second)) {
			return ctx.Err()
		}
	}
}

// page gets one page: its events and the next link, after waiting for the
// rate limit to allow the request.
func (s *OktaSource) page(ctx context.Context, u string) ([]json.RawMessage, string, error) {
	for attempt := 0; ; attempt++ {
		if d := s.notBefore.Sub(s.now()); d > 0 {
			s.log.Info("Okta rate limit reached; waiting for its reset", "wait", d)
			if s.throttle != nil {
				s.throttle(d)
			}
			if !sleep(ctx, d) {
				return nil, "", ctx.Err()
			}
		}
		authz, err := s.auth(ctx)
		if err != nil {
			return nil, "", err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return nil, "", err
		}
		req.Header.Set("Authorization", authz)
		req.Header.Set("Accept", "application/json")
		if s.dpop != nil {
			tok, _ := strings.CutPrefix(authz, "DPoP ")
			p, err := s.dpop.proof(http.MethodGet, u, "", tok)
			if err != nil {
				return nil, "", fmt.Errorf("DPoP proof: %w", err)
			}
			req.Header.Set("DPoP", p)
		}
		resp, err := s.hc.Do(req)
		if err != nil {
			return nil, "", err
		}
		reset := s.rateLimit(resp.Header)
		if resp.StatusCode == http.StatusOK {
			body, err := readBody(resp)
			resp.Body.Close()
			if err != nil {
				return nil, "", err
			}
			recs, err := parseOktaPage(body)
			if err != nil {
				return nil, "", fmt.Errorf("%s: %w", u, err)
			}
			next, _ := linkRel(resp.Header.Values("Link"), "next")
			if next != "" {
				nu, err := sameOrigin(s.base, next)
				if err != nil {
					return nil, "", err
				}
				next = nu.String()
			}
			return recs, next, nil
		}
		herr := newHTTPError(resp)
		resp.Body.Close()
		if !throttledStatus(resp.StatusCode) {
			return nil, "", fmt.Errorf("%s: %w", u, herr)
		}
		// 429: wait for the reset the headers name, else back off.
		if reset.IsZero() {
			d, ok := retryAfter(resp.Header, s.now())
			if !ok {
				d = jitter(min(time.Second<<min(attempt, 6), time.Minute))
			}
			s.notBefore = s.now().Add(d)
		}
	}
}

// rateLimit reads X-Rate-Limit-Remaining and X-Rate-Limit-Reset (the
// UTC epoch second the window resets); when nothing remains, or on a 429,
// the next request waits for the reset. It returns the reset it set.
func (s *OktaSource) rateLimit(h http.Header) time.Time {
	rem, err1 := strconv.ParseInt(h.Get("X-Rate-Limit-Remaining"), 10, 64)
	reset, err2 := strconv.ParseInt(h.Get("X-Rate-Limit-Reset"), 10, 64)
	if err2 != nil || reset <= 0 {
		return time.Time{}
	}
	at := time.Unix(reset, 0)
	// A reset more than an hour away is not believed (a clock or header
	// error): waiting is bounded.
	if max := s.now().Add(time.Hour); at.After(max) {
		at = max
	}
	if err1 == nil && rem <= 0 {
		s.notBefore = at.Add(time.Duration(200+mrand.IntN(800)) * time.Millisecond)
		return at
	}
	return time.Time{}
}

// parseOktaPage reads a System Log page: a JSON array of LogEvent objects,
// each kept byte for byte.
func parseOktaPage(b []byte) ([]json.RawMessage, error) {
	var recs []json.RawMessage
	if err := json.Unmarshal(b, &recs); err != nil {
		return nil, fmt.Errorf("the page is not a JSON array of System Log events: %v", err)
	}
	if recs == nil {
		return nil, errors.New("the page is null, not a JSON array of System Log events")
	}
	return recs, nil
}
