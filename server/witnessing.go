package server

import (
	"bufio"
	"bytes"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stele-dev/stele/client"
)

// witnessTransport measures every request Tessera makes to a witness, and
// tells the operator what to do when a witness does not know the log.
type witnessTransport struct {
	base    http.RoundTripper
	latency *prometheus.HistogramVec
	unknown *unknownOrigin
}

func (t witnessTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.base.RoundTrip(req)
	code := "error"
	if err == nil {
		code = strconv.Itoa(resp.StatusCode)
		if resp.StatusCode == http.StatusNotFound && strings.HasSuffix(req.URL.Path, "/add-checkpoint") {
			t.unknown.warn(req.URL.String())
		}
	}
	t.latency.WithLabelValues(req.URL.Host+req.URL.Path, code).Observe(time.Since(start).Seconds())
	return resp, err
}

// unknownOrigin warns, at most once a minute per witness, that a witness
// answered 404 to add-checkpoint: it does not know the log's origin, so no
// checkpoint can be published until its operator adds the log.
type unknownOrigin struct {
	log         *slog.Logger
	origin, key string
	names       map[string]string // witness URL prefix → policy name

	mu   sync.Mutex
	last map[string]time.Time
}

func (u *unknownOrigin) warn(url string) {
	name := url
	for prefix, n := range u.names {
		if strings.HasPrefix(url, prefix) {
			name = n
		}
	}
	u.mu.Lock()
	if time.Since(u.last[name]) < time.Minute {
		u.mu.Unlock()
		return
	}
	u.last[name] = time.Now()
	u.mu.Unlock()
	u.log.Warn("a witness does not know this log (404 unknown origin): checkpoints stay unpublished (ingest goes on) until it cosigns; on the witness, run the command given, and publishing resumes by itself",
		"witness", name, "url", url,
		"run", fmt.Sprintf("stele-witness add-log --origin %s --key %s", u.origin, u.key))
}

// policyWitnessURLs maps the URL of each witness line of a C2SP
// tlog-policy ("witness NAME VKEY URL") to its name.
func policyWitnessURLs(policy []byte) map[string]string {
	names := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(policy))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 4 && f[0] == "witness" {
			names[f[3]] = f[1]
		}
	}
	return names
}

// witnessClient is the HTTP client Tessera uses to reach witnesses.
func (s *Server) witnessClient() *http.Client {
	return &http.Client{
		Transport: witnessTransport{base: http.DefaultTransport, latency: s.m.witnessLatency, unknown: &unknownOrigin{
			log: s.log, origin: s.cfg.Origin, key: s.key.VKey, names: policyWitnessURLs(s.cfg.WitnessPolicy), last: map[string]time.Time{},
		}},
		// Tessera bounds each round by the policy timeout; this is a backstop.
		Timeout: s.cfg.WitnessTimeout + 5*time.Second,
	}
}

// witnessPolicy is the parsed policy, nil without one or when failing open
// (then any checkpoint counts).
func (s *Server) witnessPolicy() *client.Policy {
	if len(s.cfg.WitnessPolicy) == 0 || s.cfg.WitnessFailOpen {
		return nil
	}
	p, err := client.ParsePolicy(s.cfg.WitnessPolicy)
	if err != nil {
		return nil // start refuses such a policy before this matters
	}
	return p
}

// rewitnessAtStart makes Tessera republish (and so send to the witnesses)
// the log's latest checkpoint at its first tick when that checkpoint does
// not meet the witness policy, or is not signed by the log's key (the key
// was rotated: docs/operations.md): a server restarted with a policy, new
// witnesses or a new key would otherwise serve no acceptable checkpoint
// until the next event (or Tessera's 10-minute republish). How is the
// backend's (Storage.RepublishStale).
func (s *Server) rewitnessAtStart(policy *client.Policy) {
	s.st.RepublishStale(func(raw []byte) bool {
		cp, err := client.ParseCheckpoint(raw, s.key.Verifier)
		switch {
		case err != nil:
			s.log.Warn("the latest checkpoint is not signed by the log's key (a key rotation?): publishing it again signed by this key", "err", err)
		case policy != nil && policy.Check(cp) != nil:
			s.log.Warn("the latest checkpoint does not meet the witness policy: sending it to the witnesses now", "size", cp.Size, "reason", policy.Check(cp))
		default:
			return true
		}
		return false
	})
}
