package witness

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stele-dev/stele/internal/durable"
)

// Log list modes (LogListConfig.Mode).
const (
	// LogListDiscover follows the witness network's rule for witnesses
	// (witness-network.org/participate): configure every log the list
	// adds whose origin the witness does not know yet, and never remove
	// or change a configured log because the list changed.
	LogListDiscover = "discover"
	// LogListFollow makes the list authoritative for its logs: a log
	// removed from the list stops being cosigned (its state is kept, as
	// with remove-log) and a changed key replaces the old one.
	LogListFollow = "follow"
)

// DefaultLogListInterval is how often a log list is fetched again (the
// witness network suggests hourly to daily, at most weekly).
const DefaultLogListInterval = time.Hour

// logListsDir holds, in the data directory, the logs each list gave the
// witness, so they are known at the next start before any fetch.
const logListsDir = "loglists"

// LogListConfig is a log list the witness takes logs from.
type LogListConfig struct {
	// Source is an https:// URL (http:// only to a loopback address) or a
	// file path.
	Source string `json:"source"`
	// Mode is LogListDiscover (default) or LogListFollow.
	Mode string `json:"mode,omitempty"`
	// Interval is how often the list is fetched; 0 means
	// DefaultLogListInterval.
	Interval Duration `json:"interval,omitempty"`
}

func (c *LogListConfig) check() error {
	if c.Source == "" {
		return fmt.Errorf("log list: the source (a file path or an https:// URL) is empty")
	}
	if strings.Contains(c.Source, "://") {
		u, err := url.Parse(c.Source)
		if err != nil || u.Host == "" {
			return fmt.Errorf("log list %s: not a URL", c.Source)
		}
		switch {
		case u.Scheme == "https":
		case u.Scheme == "http" && isLoopback(u.Hostname()):
		default:
			return fmt.Errorf("log list %s: fetch it over https (plain http only from a loopback address): whoever can alter it chooses the logs this witness trusts", c.Source)
		}
	}
	switch c.Mode {
	case "":
		c.Mode = LogListDiscover
	case LogListDiscover, LogListFollow:
	default:
		return fmt.Errorf("log list %s: mode %q is not %q or %q", c.Source, c.Mode, LogListDiscover, LogListFollow)
	}
	if c.Interval == 0 {
		c.Interval = Duration(DefaultLogListInterval)
	}
	if time.Duration(c.Interval) < 100*time.Millisecond {
		return fmt.Errorf("log list %s: interval %v is too short (at least 100ms)", c.Source, time.Duration(c.Interval))
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// listedSet is what one list currently gives the witness, as persisted.
type listedSet struct {
	Source  string      `json:"source"`
	Mode    string      `json:"mode"`
	Fetched time.Time   `json:"fetched"`
	Logs    []listedLog `json:"logs"`
}

// logLists is the witness's log list state. The applied sets are read
// under w.mu (effective).
type logLists struct {
	cfgs    []LogListConfig
	applied []*listedSet // in cfgs order; earlier lists win an origin

	fetches *prometheus.CounterVec
	logs    *prometheus.GaugeVec
	success *prometheus.GaugeVec
	ignored *prometheus.CounterVec

	refreshMu sync.Mutex // one refresh at a time
}

// LoadLogLists configures the log lists the witness takes logs from and
// applies what each gave it before (kept in logListsDir), without fetching:
// call it before serving, then RunLogLists. It may be called once.
func (w *Witness) LoadLogLists(cfgs []LogListConfig) error {
	ll := &logLists{
		fetches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stele_witness_loglist_fetches_total",
			Help: "Log list fetches, by source and outcome (ok, fetch_error, refused).",
		}, []string{"source", "outcome"}),
		logs: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "stele_witness_loglist_logs",
			Help: "Logs the witness takes from each log list.",
		}, []string{"source"}),
		success: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "stele_witness_loglist_last_success_timestamp_seconds",
			Help: "When each log list was last fetched and applied (Unix time).",
		}, []string{"source"}),
		ignored: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stele_witness_loglist_ignored_total",
			Help: "Log list entries not applied, by source and reason (known_origin, changed_key, unsupported_origin).",
		}, []string{"source", "reason"}),
	}
	seen := map[string]bool{}
	for _, c := range cfgs {
		if err := c.check(); err != nil {
			return err
		}
		if seen[c.Source] {
			return fmt.Errorf("log list %s is given twice", c.Source)
		}
		seen[c.Source] = true
		set, err := w.readListed(c)
		if err != nil {
			return err
		}
		ll.cfgs = append(ll.cfgs, c)
		ll.applied = append(ll.applied, set)
		ll.logs.WithLabelValues(c.Source).Set(float64(len(set.Logs)))
	}
	if err := w.m.reg.Register(ll.fetches); err != nil {
		return fmt.Errorf("log lists are already loaded: %w", err)
	}
	w.m.reg.MustRegister(ll.logs, ll.success, ll.ignored)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.lists = ll
	return w.rebuild()
}

func (w *Witness) listedPath(source string) string {
	h := sha256.Sum256([]byte(source))
	return filepath.Join(w.dir, logListsDir, hex.EncodeToString(h[:8])+".json")
}

// readListed reads what the list gave the witness before (empty if
// never fetched, or fetched in another mode).
func (w *Witness) readListed(c LogListConfig) (*listedSet, error) {
	empty := &listedSet{Source: c.Source, Mode: c.Mode}
	b, err := os.ReadFile(w.listedPath(c.Source))
	if os.IsNotExist(err) {
		return empty, nil
	}
	if err != nil {
		return nil, fmt.Errorf("log list %s: %w", c.Source, err)
	}
	var s listedSet
	if err := json.Unmarshal(b, &s); err != nil || s.Source != c.Source {
		return nil, fmt.Errorf("log list %s: %s is damaged (%v); remove it and the list is fetched again", c.Source, w.listedPath(c.Source), err)
	}
	if s.Mode != c.Mode {
		// Switching modes starts from the list as it is now.
		return empty, nil
	}
	return &s, nil
}

// listedConfigs returns the logs the lists give, by origin (earlier lists
// win). Callers hold w.mu.
func (w *Witness) listedConfigs() map[string]LogConfig {
	out := map[string]LogConfig{}
	if w.lists == nil {
		return out
	}
	for i := len(w.lists.applied) - 1; i >= 0; i-- {
		for _, l := range w.lists.applied[i].Logs {
			out[l.Origin] = LogConfig{Origin: l.Origin, Keys: []string{l.Key}}
		}
	}
	return out
}

// listedSource returns the list an origin comes from, or "". Callers hold
// w.mu.
func (w *Witness) listedSource(origin string) string {
	if w.lists == nil {
		return ""
	}
	for _, s := range w.lists.applied {
		for _, l := range s.Logs {
			if l.Origin == origin {
				return s.Source
			}
		}
	}
	return ""
}

// RunLogLists fetches every configured log list now and then at its
// interval, applying each, until ctx is done. A list that cannot be
// fetched or parsed changes nothing: the logs it gave before stay.
func (w *Witness) RunLogLists(ctx context.Context) {
	w.mu.RLock()
	ll := w.lists
	w.mu.RUnlock()
	if ll == nil {
		return
	}
	var wg sync.WaitGroup
	for _, c := range ll.cfgs {
		wg.Go(func() {
			t := time.NewTicker(time.Duration(c.Interval))
			defer t.Stop()
			for {
				if err := w.refreshLogList(ctx, c.Source); err != nil && ctx.Err() == nil {
					w.log.Warn("log list not applied; the logs it gave before stay", "source", c.Source, "err", err)
				}
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
			}
		})
	}
	wg.Wait()
}

// refreshLogList fetches the log list source (one given to LoadLogLists),
// parses it and applies it.
func (w *Witness) refreshLogList(ctx context.Context, source string) error {
	w.mu.RLock()
	ll := w.lists
	w.mu.RUnlock()
	if ll == nil {
		return fmt.Errorf("no log lists are configured")
	}
	i := slices.IndexFunc(ll.cfgs, func(c LogListConfig) bool { return c.Source == source })
	if i < 0 {
		return fmt.Errorf("log list %s is not configured", source)
	}
	c := ll.cfgs[i]
	ll.refreshMu.Lock()
	defer ll.refreshMu.Unlock()
	b, err := w.fetchLogList(ctx, c.Source)
	if err != nil {
		ll.fetches.WithLabelValues(c.Source, "fetch_error").Inc()
		return err
	}
	listed, err := parseLogList(b)
	if err != nil {
		ll.fetches.WithLabelValues(c.Source, "refused").Inc()
		return err
	}
	ll.fetches.WithLabelValues(c.Source, "ok").Inc()

	w.mu.RLock()
	prev := ll.applied[i]
	known := map[string]bool{}
	for o := range w.static {
		known[o] = true
	}
	for o := range w.added {
		known[o] = true
	}
	for _, o := range w.byID {
		known[o] = true // logs with a cosigned state, configured or not
	}
	w.mu.RUnlock()

	next := &listedSet{Source: c.Source, Mode: c.Mode, Fetched: time.Now().UTC()}
	had := map[string]listedLog{}
	for _, l := range prev.Logs {
		had[l.Origin] = l
	}
	if c.Mode == LogListDiscover {
		next.Logs = slices.Clone(prev.Logs)
	}
	for _, l := range listed {
		if err := checkOrigin(l.Origin); err != nil {
			ll.ignored.WithLabelValues(c.Source, "unsupported_origin").Inc()
			w.log.Warn("log list entry ignored: this witness cannot hold its origin", "source", c.Source, "origin", truncate(l.Origin), "err", err)
			continue
		}
		old, ok := had[l.Origin]
		switch {
		case c.Mode == LogListFollow:
			next.Logs = append(next.Logs, l)
		case ok && old.Key != l.Key:
			ll.ignored.WithLabelValues(c.Source, "changed_key").Inc()
			w.log.Warn("log list changes the key of a discovered log: ignored (a list never changes a configured log; use add-log)", "source", c.Source, "origin", l.Origin, "key", old.Key, "list_key", l.Key)
		case ok:
			// The same log with the same key: take the list's qpd and
			// contact, which change no trust (quota.go meters the qpd).
			for j := range next.Logs {
				if next.Logs[j].Origin == l.Origin {
					next.Logs[j].QPD, next.Logs[j].Contact = l.QPD, l.Contact
				}
			}
		case known[l.Origin]:
			ll.ignored.WithLabelValues(c.Source, "known_origin").Inc()
		default:
			next.Logs = append(next.Logs, l)
		}
	}
	raw, err := json.MarshalIndent(next, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(w.dir, logListsDir), 0o700); err != nil {
		return err
	}
	if err := durable.WriteAtomic(w.listedPath(c.Source), raw, 0o600); err != nil {
		return fmt.Errorf("log list %s: recording it: %w", c.Source, err)
	}

	var added, removed []string
	now := map[string]bool{}
	for _, l := range next.Logs {
		now[l.Origin] = true
		if _, ok := had[l.Origin]; !ok {
			added = append(added, l.Origin)
		}
	}
	for o := range had {
		if !now[o] {
			removed = append(removed, o)
		}
	}
	w.mu.Lock()
	ll.applied[i] = next
	err = w.rebuild()
	w.mu.Unlock()
	if err != nil {
		return err
	}
	ll.logs.WithLabelValues(c.Source).Set(float64(len(next.Logs)))
	ll.success.WithLabelValues(c.Source).Set(float64(next.Fetched.Unix()))
	if len(added) > 0 || len(removed) > 0 {
		slices.Sort(added)
		slices.Sort(removed)
		w.log.Info("log list applied", "source", c.Source, "mode", c.Mode, "logs", len(next.Logs), "added", added, "removed_state_kept", removed)
	}
	return nil
}

func (w *Witness) fetchLogList(ctx context.Context, source string) ([]byte, error) {
	if !strings.Contains(source, "://") {
		f, err := os.Open(source)
		if err != nil {
			return nil, fmt.Errorf("log list: %w", err)
		}
		defer f.Close()
		return readLogList(f, source)
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, source, nil)
	if err != nil {
		return nil, err
	}
	resp, err := w.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("log list: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("log list %s: %s", source, resp.Status)
	}
	return readLogList(resp.Body, source)
}

func readLogList(r io.Reader, source string) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxLogListBytes+1))
	if err != nil {
		return nil, fmt.Errorf("log list %s: %w", source, err)
	}
	if len(b) > maxLogListBytes {
		return nil, fmt.Errorf("log list %s: larger than %d bytes", source, maxLogListBytes)
	}
	return b, nil
}
