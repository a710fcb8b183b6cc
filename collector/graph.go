package collector

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/stele-dev/stele/internal/importer"
)

// GraphConfig polls Microsoft Graph's Entra activity logs,
// /auditLogs/directoryAudits and /auditLogs/signIns, as an application
// with AuditLog.Read.All (client credentials). Each poll asks for a time
// window, $filter=<time> ge <watermark − overlap> and <time> le <end>, and
// follows @odata.nextLink to the last page; the watermark moves to the
// window's end once every page is in the log. Graph publishes events late
// (minutes, sometimes more): the overlap asks again for the recent past,
// what was already sent is skipped (and after a restart, sent again and
// answered as a duplicate by the log's dedup).
type GraphConfig struct {
	// Tenant is the Entra tenant id: whose token is asked for, and the
	// tenant of the records (Graph records do not carry it).
	Tenant string `json:"tenant"`
	// ClientID is the application (client) id.
	ClientID string `json:"client_id,omitempty"`
	// Auth is client_secret (client_secret_file or client_secret_env),
	// client_certificate (certificate_file: PEM or PKCS#12 with the
	// private key; certificate_password_env if it is encrypted) or
	// azure_identity (the Azure SDK's default chain: environment,
	// workload identity, managed identity).
	Auth                   string `json:"auth"`
	ClientSecretFile       string `json:"client_secret_file,omitempty"`
	ClientSecretEnv        string `json:"client_secret_env,omitempty"`
	CertificateFile        string `json:"certificate_file,omitempty"`
	CertificatePasswordEnv string `json:"certificate_password_env,omitempty"`
	// Logs are the logs to poll: directoryAudits, signIns (default both).
	Logs []string `json:"logs,omitempty"`
	// Endpoint is Graph's base URL (default https://graph.microsoft.com;
	// national clouds have their own) and APIVersion its version (v1.0).
	Endpoint   string `json:"endpoint,omitempty"`
	APIVersion string `json:"api_version,omitempty"`
	// AuthorityHost is the token authority (default
	// https://login.microsoftonline.com/).
	AuthorityHost string `json:"authority_host,omitempty"`
	// TLSCA verifies Graph and the authority against this PEM file instead
	// of the system roots (test servers only).
	TLSCA string `json:"tls_ca,omitempty"`
	// PollInterval is the pause between polls once caught up (default 60s).
	PollInterval Duration `json:"poll_interval,omitempty"`
	// Overlap is how far back each poll asks again (default 15m, at least
	// 1m): how late Graph may publish an event and still have it read.
	Overlap Duration `json:"overlap,omitempty"`
	// Window is the time one query covers at first (default 1h): a
	// backlog is read a window at a time, the watermark saved after
	// each; windows of one page widen (×4, up to 30 days), windows of
	// more than 10 pages narrow (÷2, down to Window).
	Window Duration `json:"window,omitempty"`
	// Top is $top, the records per page (default 1000, Graph's most).
	Top int `json:"top,omitempty"`
	// Timeout bounds one HTTP request (default 60s).
	Timeout Duration `json:"timeout,omitempty"`
}

// graphLogs are the logs the Graph source reads, with their time field.
var graphLogs = map[string]string{
	"directoryAudits": "activityDateTime",
	"signIns":         "createdDateTime",
}

func (c *GraphConfig) check() error {
	if err := importer.ValidateTenant(c.Tenant); err != nil || c.Tenant == "" {
		return errors.New("tenant is required: the Entra tenant id (a GUID)")
	}
	switch c.Auth {
	case "client_secret":
		if c.ClientSecretFile == "" && c.ClientSecretEnv == "" {
			return errors.New("auth client_secret needs client_secret_file or client_secret_env")
		}
	case "client_certificate":
		if c.CertificateFile == "" {
			return errors.New("auth client_certificate needs certificate_file")
		}
	case "azure_identity":
	default:
		return fmt.Errorf("auth %q: use client_secret, client_certificate or azure_identity", c.Auth)
	}
	if c.Auth != "azure_identity" && c.ClientID == "" {
		return errors.New("client_id is required (the application's id)")
	}
	for _, l := range c.Logs {
		if graphLogs[l] == "" {
			return fmt.Errorf("logs: %q is not directoryAudits or signIns", l)
		}
	}
	if c.Endpoint != "" {
		if _, err := checkHTTPS("endpoint", c.Endpoint); err != nil {
			return err
		}
	}
	if c.AuthorityHost != "" {
		if _, err := checkHTTPS("authority_host", c.AuthorityHost); err != nil {
			return err
		}
	}
	if c.Overlap != 0 && c.Overlap.Or(0) < time.Minute {
		return errors.New("overlap is under 1m: Graph publishes events late; give at least 1m")
	}
	if c.Window != 0 && c.Window.Or(0) < time.Minute {
		return errors.New("window is under 1m")
	}
	if c.Top < 0 || c.Top > 1000 {
		return errors.New("top is 1 to 1000")
	}
	return nil
}

// GraphSource polls Microsoft Graph.
type GraphSource struct {
	cfg      GraphConfig
	base     *url.URL
	cred     azcore.TokenCredential
	scope    string
	hc       *http.Client
	from     time.Time
	log      *slog.Logger
	now      func() time.Time
	throttle func(time.Duration)
	// seen holds what this process already had acknowledged from the
	// overlap, so that asking again does not send it again: the record's
	// per log, hash → the end of the window it was read in.
	seen map[string]map[[32]byte]time.Time
	// span is, per log, the time the next window covers.
	span map[string]time.Duration
}

// NewGraphSource makes the credential and the HTTP client.
func NewGraphSource(cfg GraphConfig, from time.Time, log *slog.Logger) (*GraphSource, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if len(cfg.Logs) == 0 {
		cfg.Logs = []string{"directoryAudits", "signIns"}
	}
	if cfg.Endpoint == "" {
		cfg.Endpoint = "https://graph.microsoft.com"
	}
	if cfg.APIVersion == "" {
		cfg.APIVersion = "v1.0"
	}
	if cfg.Top == 0 {
		cfg.Top = 1000
	}
	base, err := checkHTTPS("endpoint", strings.TrimSuffix(cfg.Endpoint, "/"))
	if err != nil {
		return nil, err
	}
	hc, err := httpClient(cfg.TLSCA, cfg.Timeout.Or(time.Minute))
	if err != nil {
		return nil, err
	}
	opts := azcore.ClientOptions{Transport: hc}
	custom := cfg.AuthorityHost != ""
	if custom {
		opts.Cloud = cloud.Configuration{ActiveDirectoryAuthorityHost: cfg.AuthorityHost}
	}
	var cred azcore.TokenCredential
	switch cfg.Auth {
	case "client_secret":
		s, err := secret(cfg.ClientSecretFile, cfg.ClientSecretEnv, "client secret")
		if err != nil {
			return nil, err
		}
		// Instance discovery asks login.microsoft.com about the
		// authority; a custom authority (a national cloud, a test
		// server) is trusted as configured.
		cred, err = azidentity.NewClientSecretCredential(cfg.Tenant, cfg.ClientID, s,
			&azidentity.ClientSecretCredentialOptions{ClientOptions: opts, DisableInstanceDiscovery: custom})
		if err != nil {
			return nil, err
		}
	case "client_certificate":
		data, err := os.ReadFile(cfg.CertificateFile)
		if err != nil {
			return nil, fmt.Errorf("certificate_file: %w", err)
		}
		var pw []byte
		if cfg.CertificatePasswordEnv != "" {
			pw = []byte(os.Getenv(cfg.CertificatePasswordEnv))
		}
		certs, key, err := azidentity.ParseCertificates(data, pw)
		if err != nil {
			return nil, fmt.Errorf("certificate_file %s: %w", cfg.CertificateFile, err)
		}
		cred, err = azidentity.NewClientCertificateCredential(cfg.Tenant, cfg.ClientID, certs, key,
			&azidentity.ClientCertificateCredentialOptions{ClientOptions: opts, DisableInstanceDiscovery: custom})
		if err != nil {
			return nil, err
		}
	case "azure_identity":
		cred, err = azidentity.NewDefaultAzureCredential(&azidentity.DefaultAzureCredentialOptions{ClientOptions: opts, TenantID: cfg.Tenant, DisableInstanceDiscovery: custom})
		if err != nil {
			return nil, err
		}
	}
	return &GraphSource{cfg: cfg, base: base, cred: cred, scope: base.String() + "/.default", hc: hc, from: from, log: log,
		now: time.Now, seen: map[string]map[[32]byte]time.Time{}, span: map[string]time.Duration{}}, nil
}

// Provider is Entra.
func (s *GraphSource) Provider() importer.Provider { return importer.Entra }

// OnThrottle is told how long the source waits each time Graph throttles.
func (s *GraphSource) OnThrottle(f func(time.Duration)) { s.throttle = f }

// graphPosition is the Graph source's cursor: per log, the watermark.
// Every event Graph had published with a time up to the watermark, when it
// was asked, is in the log.
type graphPosition struct {
	Logs map[string]time.Time `json:"logs"`
}

func (p graphPosition) clone() graphPosition {
	out := graphPosition{Logs: make(map[string]time.Time, len(p.Logs))}
	for k, v := range p.Logs {
		out.Logs[k] = v
	}
	return out
}

// graphRetention is how far back Graph keeps activity logs (30 days with
// Entra ID P1/P2): where a source with no cursor and no --from starts.
const graphRetention = 30 * 24 * time.Hour

// Run polls every log in turn.
func (s *GraphSource) Run(ctx context.Context, raw json.RawMessage, emit Emit) error {
	var pos graphPosition
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &pos); err != nil {
			return fmt.Errorf("cursor: %w", err)
		}
	}
	if pos.Logs == nil {
		pos.Logs = map[string]time.Time{}
	}
	// Run starts again after an error: what it remembers having sent
	// may not all be in the log.
	clear(s.seen)
	for _, l := range s.cfg.Logs {
		if _, ok := pos.Logs[l]; !ok {
			start := s.from
			if start.IsZero() {
				start = s.now().Add(-graphRetention)
			}
			pos.Logs[l] = start.UTC()
		}
	}
	for {
		caughtUp := true
		for _, l := range s.cfg.Logs {
			done, err := s.window(ctx, &pos, l, emit)
			if err != nil {
				return err
			}
			caughtUp = caughtUp && done
		}
		if caughtUp {
			if err := emit(ctx, Batch{Position: pos.clone(), CaughtUp: true}); err != nil {
				return err
			}
			if !sleep(ctx, s.cfg.PollInterval.Or(time.Minute)) {
				return ctx.Err()
			}
		}
	}
}

// graphTime is how times are written in a $filter.
const graphTime = "2006-01-02T15:04:05Z"

// window reads one window of log l and moves its watermark to the
// window's end; done tells that the window reached the present.
func (s *GraphSource) window(ctx context.Context, pos *graphPosition, l string, emit Emit) (done bool, err error) {
	mark := pos.Logs[l]
	now := s.now().UTC().Truncate(time.Second)
	overlap := s.cfg.Overlap.Or(15 * time.Minute)
	from := mark.Add(-overlap).Truncate(time.Second)
	win := s.span[l]
	if win == 0 {
		win = s.cfg.Window.Or(time.Hour)
	}
	end := mark.Add(win).Truncate(time.Second)
	if !end.Before(now) {
		end, done = now, true
	}
	field := graphLogs[l]
	q := fmt.Sprintf("%s ge %s and %s le %s", field, from.Format(graphTime), field, end.Format(graphTime))
	next := fmt.Sprintf("%s/%s/auditLogs/%s?$filter=%s&$top=%d", s.base, s.cfg.APIVersion, l,
		strings.ReplaceAll(url.QueryEscape(q), "+", "%20"), s.cfg.Top)
	seen := s.seen[l]
	if seen == nil {
		seen = map[[32]byte]time.Time{}
		s.seen[l] = seen
	}
	where := fmt.Sprintf("graph=%s window=%s/%s", l, from.Format(graphTime), end.Format(graphTime))
	pages := 0
	for page := 1; next != ""; page++ {
		pages = page
		body, err := s.get(ctx, next)
		if err != nil {
			return false, fmt.Errorf("%s page %d: %w", where, page, err)
		}
		recs, link, err := parseGraphPage(body)
		if err != nil {
			return false, fmt.Errorf("%s page %d: %w", where, page, err)
		}
		if link != "" {
			u, err := sameOrigin(s.base, link)
			if err != nil {
				return false, fmt.Errorf("%s page %d: %w", where, page, err)
			}
			link = u.String()
		}
		next = link
		b := Batch{Items: make([]Item, 0, len(recs))}
		var hashes [][32]byte
		for i, r := range recs {
			h := sha256.Sum256(r)
			if _, ok := seen[h]; ok {
				continue
			}
			hashes = append(hashes, h)
			b.Items = append(b.Items, Item{Raw: r, Tenant: s.cfg.Tenant, Position: fmt.Sprintf("%s page=%d record=%d", where, page, i+1)})
		}
		if next == "" {
			pos.Logs[l] = end
			b.Position = pos.clone()
		}
		if len(b.Items) > 0 || b.Position != nil {
			if err := emit(ctx, b); err != nil {
				return false, err
			}
		}
		for _, h := range hashes {
			seen[h] = end
		}
	}
	// A backlog's windows widen while they hold one page (a quiet month
	// is a few requests, not one per hour) and narrow again when they
	// hold many: a crash loses at most one window's work.
	switch {
	case pages <= 1:
		win = min(win*4, graphRetention)
	case pages > 10:
		win = max(win/2, s.cfg.Window.Or(time.Hour))
	}
	s.span[l] = win
	// Forget what the next window's overlap can no longer return.
	for h, t := range seen {
		if t.Before(end.Add(-overlap - time.Second)) {
			delete(seen, h)
		}
	}
	return done, nil
}

// get fetches one page, waiting out throttling (429, 503, 504) for as long
// as Graph asks (Retry-After) or with a growing pause.
func (s *GraphSource) get(ctx context.Context, u string) ([]byte, error) {
	for attempt := 0; ; attempt++ {
		tok, err := s.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{s.scope}})
		if err != nil {
			return nil, fmt.Errorf("getting a token: %w", err)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+tok.Token)
		req.Header.Set("Accept", "application/json")
		resp, err := s.hc.Do(req)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode == http.StatusOK {
			b, err := readBody(resp)
			resp.Body.Close()
			return b, err
		}
		herr := newHTTPError(resp)
		resp.Body.Close()
		if !throttledStatus(resp.StatusCode) {
			return nil, herr
		}
		wait, ok := retryAfter(resp.Header, s.now())
		if !ok {
			wait = jitter(min(time.Second<<min(attempt, 6), time.Minute))
		}
		s.log.Info("Graph is throttling; waiting", "status", resp.StatusCode, "wait", wait)
		if s.throttle != nil {
			s.throttle(wait)
		}
		if !sleep(ctx, wait) {
			return nil, ctx.Err()
		}
	}
}

// parseGraphPage reads a Graph collection page: the records of "value",
// byte for byte, and "@odata.nextLink" ("" on the last page).
func parseGraphPage(b []byte) (recs []json.RawMessage, next string, err error) {
	var p struct {
		Value *[]json.RawMessage `json:"value"`
		Next  *string            `json:"@odata.nextLink"`
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, "", fmt.Errorf("the page is not a Graph collection (JSON object with \"value\"): %v", err)
	}
	if p.Value == nil {
		return nil, "", errors.New("the page has no \"value\" array: not a Graph collection")
	}
	if p.Next != nil {
		if *p.Next == "" {
			return nil, "", errors.New("\"@odata.nextLink\" is empty")
		}
		next = *p.Next
	}
	return *p.Value, next, nil
}
