// Package forwarder delivers a Stele log's events to SIEMs: it follows the
// log over tlog-tiles exactly as `stele monitor` does (every checkpoint
// proven consistent with the trusted one, every entry proven included),
// reads each payload over gRPC with reader credentials and checks it
// against its leaf, and hands each entry, in log order, as a Stele record
// document (package record) to every configured sink.
//
// Each sink has a durable cursor, advanced only once the sink confirmed a
// batch: delivery is at least once, exactly once where the sink has an id
// for each record. A sink that refuses a record for good sends it to the
// sink's dead-letter file; transient failures are retried with jittered
// exponential backoff, honouring the sink's own hints (Retry-After). Each
// sink reads the log on its own, at most a few batches ahead of what it has
// confirmed, so a slow sink holds bounded memory and does not slow the
// others.
package forwarder

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/forwarder/record"
)

// Options wires a Forwarder.
type Options struct {
	Config *Config
	Log    *client.TileLog
	Events EventReader
	Policy *client.Policy
	Logger *slog.Logger
	// Registry receives the metrics; nil: a new registry (see Handler).
	Registry *prometheus.Registry
	// Sinks, when set, are used instead of opening Config.Sinks (tests).
	Sinks []NamedSink
}

// NamedSink is a sink with its name and type.
type NamedSink struct {
	Name, Type string
	Sink       Sink
}

// Forwarder runs the delivery of one log to its sinks.
type Forwarder struct {
	cfg    *Config
	log    *slog.Logger
	follow *Follower
	reg    *prometheus.Registry
	m      *metrics
	sinks  []*sinkRun
	// cache shares what one sink read with the others (nil with one sink).
	cache *itemCache

	latest   atomic.Pointer[client.Checkpoint]
	notifyMu sync.Mutex
	notify   chan struct{}
	lastPoll atomic.Int64 // unix nanos of the last successful poll
	pollErr  atomic.Pointer[string]
}

// New opens the sinks and returns a forwarder ready to Run.
func New(o Options) (*Forwarder, error) {
	if o.Config == nil || o.Log == nil || o.Events == nil {
		return nil, errors.New("forwarder: a config, a log and a payload reader are required")
	}
	cfg := o.Config
	lg := o.Logger
	if lg == nil {
		lg = slog.Default()
	}
	st, err := client.NewStateStore(filepath.Join(cfg.StateDir, "trusted"), o.Log.Verifier(), o.Log.ConsistencyProof)
	if err != nil {
		return nil, err
	}
	reg := o.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	f := &Forwarder{cfg: cfg, log: lg, reg: reg, notify: make(chan struct{}),
		follow: &Follower{Log: o.Log, Events: o.Events, State: st, Policy: o.Policy, Concurrency: cfg.FetchConcurrency}}
	f.m = newMetrics(reg, f)
	named := o.Sinks
	if named == nil {
		if named, err = openSinks(cfg); err != nil {
			return nil, err
		}
	}
	for _, ns := range named {
		cs, err := newCursorStore(cfg.StateDir, ns.Name)
		if err != nil {
			return nil, err
		}
		dl, err := newDeadLetters(cfg.StateDir, ns.Name)
		if err != nil {
			return nil, err
		}
		cur, err := cs.Load()
		if err != nil {
			return nil, err
		}
		r := &sinkRun{f: f, name: ns.Name, typ: ns.Type, sink: ns.Sink, cursor: cs, dead: dl, cur: cur}
		r.next.Store(cur.Next)
		if cur.SendingTo > cur.Next {
			r.redeliverTo = cur.SendingTo
		}
		f.sinks = append(f.sinks, r)
	}
	if len(f.sinks) > 1 {
		f.cache = newItemCache(4*cfg.BatchSize, f.readItems)
	}
	if cp := f.follow.Trusted(); cp != nil {
		f.latest.Store(cp)
	}
	return f, nil
}

// openSinks opens the sinks cfg names.
func openSinks(cfg *Config) ([]NamedSink, error) {
	var named []NamedSink
	fail := func(err error) ([]NamedSink, error) {
		for _, n := range named {
			n.Sink.Close()
		}
		return nil, err
	}
	for _, sc := range cfg.Sinks {
		v, err := checkSink(sc)
		if err != nil {
			return fail(fmt.Errorf("sink %s: %w", sc.Name, err))
		}
		s, err := sinkTypes[sc.Type].open(sc.Name, v, SinkEnv{StateDir: filepath.Join(cfg.StateDir, "sinks", sc.Name)})
		if err != nil {
			return fail(fmt.Errorf("sink %s (%s): %w", sc.Name, sc.Type, err))
		}
		named = append(named, NamedSink{Name: sc.Name, Type: sc.Type, Sink: s})
	}
	return named, nil
}

func (f *Forwarder) closeSinks() {
	for _, r := range f.sinks {
		r.sink.Close()
	}
}

// Run polls the log and delivers to every sink until ctx ends, then closes
// the sinks. Failures are logged and retried; Run returns only when ctx
// ends.
func (f *Forwarder) Run(ctx context.Context) error {
	defer f.closeSinks()
	var wg sync.WaitGroup
	for _, r := range f.sinks {
		wg.Go(func() { r.run(ctx) })
	}
	f.poll(ctx)
	wg.Wait()
	return ctx.Err()
}

// poll advances the trusted checkpoint every PollInterval.
func (f *Forwarder) poll(ctx context.Context) {
	for {
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second+time.Duration(f.cfg.PollInterval))
		cp, err := f.follow.Advance(pctx)
		cancel()
		if err != nil && ctx.Err() == nil {
			msg := err.Error()
			f.pollErr.Store(&msg)
			if errors.Is(err, client.ErrVerification) {
				f.log.Error("the log's checkpoint does not verify: not forwarding past the trusted one", "err", err)
			} else {
				f.log.Warn("reading the log's checkpoint", "err", err)
			}
			f.m.pollErrors.Inc()
		} else if err == nil {
			f.pollErr.Store(nil)
			f.lastPoll.Store(time.Now().UnixNano())
			if old := f.latest.Load(); old == nil || cp.Size > old.Size || len(cp.Raw) != len(old.Raw) {
				f.latest.Store(cp)
				f.notifyMu.Lock()
				close(f.notify)
				f.notify = make(chan struct{})
				f.notifyMu.Unlock()
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Duration(f.cfg.PollInterval)):
		}
	}
}

// waitBeyond returns the latest trusted checkpoint once it holds entry
// next.
func (f *Forwarder) waitBeyond(ctx context.Context, next uint64) (*client.Checkpoint, error) {
	for {
		f.notifyMu.Lock()
		ch := f.notify
		f.notifyMu.Unlock()
		if cp := f.latest.Load(); cp != nil && cp.Size > next {
			return cp, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-ch:
		}
	}
}

// sinkRun is one sink's delivery.
type sinkRun struct {
	f      *Forwarder
	name   string
	typ    string
	sink   Sink
	cursor *cursorStore
	dead   *deadLetters
	cur    Cursor
	// redeliverTo is the end of the batch in flight when the process
	// stopped: entries below it are being sent again.
	redeliverTo uint64

	next         atomic.Uint64 // first unconfirmed index
	pendingSince atomic.Int64  // admitted time (unix nanos) of the oldest unconfirmed entry read
	delivered    atomic.Uint64
	deadCount    atomic.Uint64
	lastErr      atomic.Pointer[string]
}

type batch struct {
	items []*Item
	end   uint64
}

func (r *sinkRun) run(ctx context.Context) {
	ch := make(chan batch, 1)
	go func() {
		defer close(ch)
		r.read(ctx, ch)
	}()
	for b := range ch {
		if err := r.deliver(ctx, b); err != nil {
			return // ctx ended
		}
	}
}

// read reads verified batches from the cursor on, blocking while the
// sender is behind (the channel holds one batch).
func (r *sinkRun) read(ctx context.Context, ch chan<- batch) {
	next := r.next.Load()
	failures := 0
	for ctx.Err() == nil {
		cp, err := r.f.waitBeyond(ctx, next)
		if err != nil {
			return
		}
		items, err := r.f.items(ctx, cp, next, r.f.cfg.BatchSize)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			r.setErr(err)
			r.f.log.Warn("reading the log", "sink", r.name, "from", next, "err", err)
			failures++
			if !r.sleep(ctx, r.backoff(failures, 0)) {
				return
			}
			continue
		}
		failures = 0
		select {
		case ch <- batch{items: items, end: next + uint64(len(items))}:
		case <-ctx.Done():
			return
		}
		next += uint64(len(items))
	}
}

// items returns the verified, rendered entries [from, from+n) of the tree
// cp (fewer when cp ends first): from the cache the sinks share, when
// there are several.
func (f *Forwarder) items(ctx context.Context, cp *client.Checkpoint, from uint64, n int) ([]*Item, error) {
	if f.cache != nil {
		return f.cache.get(ctx, cp, from, n)
	}
	return f.readItems(ctx, cp, from, n)
}

// readItems reads, verifies and renders entries [from, from+n) of cp.
func (f *Forwarder) readItems(ctx context.Context, cp *client.Checkpoint, from uint64, n int) ([]*Item, error) {
	entries, err := f.follow.Read(ctx, cp, from, n)
	if err != nil {
		return nil, err
	}
	return buildItems(entries)
}

// buildItems renders the entries' documents, spread over the CPUs (the
// JSON and OCSF views are most of a record's cost).
func buildItems(entries []*record.Entry) ([]*Item, error) {
	items := make([]*Item, len(entries))
	workers := min(runtime.GOMAXPROCS(0), max(1, len(entries)/16))
	var g errgroup.Group
	for w := range workers {
		g.Go(func() error {
			for i := w; i < len(entries); i += workers {
				d, err := record.Build(entries[i])
				if err != nil {
					return err
				}
				j, err := d.Marshal()
				if err != nil {
					return err
				}
				items[i] = &Item{Doc: d, JSON: j}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return items, nil
}

// deliver hands one batch to the sink until every item is confirmed or
// dead-lettered, then advances the cursor. It returns an error only when
// ctx ended.
func (r *sinkRun) deliver(ctx context.Context, b batch) error {
	if len(b.items) == 0 {
		return nil
	}
	if t, err := time.Parse(time.RFC3339Nano, b.items[0].Doc.AdmittedTime); err == nil {
		r.pendingSince.CompareAndSwap(0, t.UnixNano())
	}
	// Record the batch in flight, so a restart knows which entries it may
	// be sending twice.
	if first := b.items[0].Doc.Index; first < r.redeliverTo {
		r.f.m.redelivered.WithLabelValues(r.name).Add(float64(min(r.redeliverTo, b.end) - first))
	}
	if err := r.saveCursor(ctx, Cursor{Next: r.cur.Next, SendingTo: b.end}); err != nil {
		return err
	}
	pending := b.items
	attempt := 0
	for len(pending) > 0 {
		start := time.Now()
		err := r.sink.Deliver(ctx, pending)
		r.f.m.deliverSeconds.WithLabelValues(r.name).Observe(time.Since(start).Seconds())
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var ie *ItemErrors
		switch {
		case IsPermanent(err):
			errs := make([]error, len(pending))
			for i := range errs {
				errs[i] = err
			}
			if err := r.deadLetter(ctx, pending, errs); err != nil {
				return err
			}
			pending = nil
			continue
		case errors.As(err, &ie):
			var refused []*Item
			var rerrs []error
			var retry []*Item
			for i, it := range pending {
				if e, ok := ie.Refused[i]; ok {
					refused, rerrs = append(refused, it), append(rerrs, e)
				} else if _, ok := ie.Retry[i]; ok {
					retry = append(retry, it)
				}
			}
			if len(refused) > 0 {
				if err := r.deadLetter(ctx, refused, rerrs); err != nil {
					return err
				}
			}
			pending = retry
			if len(pending) == 0 {
				continue
			}
		}
		attempt++
		r.setErr(err)
		r.f.m.retries.WithLabelValues(r.name).Inc()
		d := r.backoff(attempt, retryHint(err))
		r.f.log.Warn("delivery failed; retrying", "sink", r.name, "first", pending[0].Doc.Index, "records", len(pending), "attempt", attempt, "retry_in", d, "err", err)
		if !r.sleep(ctx, d) {
			return ctx.Err()
		}
	}
	c := Cursor{Next: b.end, SendingTo: 0}
	if err := r.saveCursor(ctx, c); err != nil {
		return err
	}
	r.next.Store(b.end)
	r.pendingSince.Store(0)
	r.lastErr.Store(nil)
	r.delivered.Add(uint64(len(b.items)))
	r.f.m.delivered.WithLabelValues(r.name).Add(float64(len(b.items)))
	now := time.Now()
	for _, it := range b.items {
		if t, err := time.Parse(time.RFC3339Nano, it.Doc.AdmittedTime); err == nil {
			r.f.m.delay.WithLabelValues(r.name).Observe(now.Sub(t).Seconds())
		}
	}
	return nil
}

// saveCursor retries a failing cursor write (a full disk) until it
// succeeds or ctx ends: moving on without it would lose the position.
func (r *sinkRun) saveCursor(ctx context.Context, c Cursor) error {
	for attempt := 1; ; attempt++ {
		err := r.cursor.Save(c)
		if err == nil {
			r.cur = c
			return nil
		}
		r.setErr(err)
		r.f.log.Error("saving the cursor", "sink", r.name, "err", err)
		if !r.sleep(ctx, r.backoff(attempt, 0)) {
			return ctx.Err()
		}
	}
}

func (r *sinkRun) deadLetter(ctx context.Context, items []*Item, errs []error) error {
	for attempt := 1; ; attempt++ {
		err := r.dead.Add(r.name, items, errs)
		if err == nil {
			break
		}
		r.f.log.Error("writing the dead-letter file", "sink", r.name, "err", err)
		if !r.sleep(ctx, r.backoff(attempt, 0)) {
			return ctx.Err()
		}
	}
	for i, it := range items {
		r.f.log.Error("record refused for good: written to the dead-letter file", "sink", r.name, "index", it.Doc.Index, "file", r.dead.path, "err", errs[i])
	}
	r.deadCount.Add(uint64(len(items)))
	r.f.m.deadLettered.WithLabelValues(r.name).Add(float64(len(items)))
	return nil
}

func (r *sinkRun) setErr(err error) {
	s := err.Error()
	r.lastErr.Store(&s)
}

// backoff is an exponential backoff from 200ms, capped at MaxBackoff, with
// full jitter over its upper half; a sink's hint wins when it is longer.
func (r *sinkRun) backoff(attempt int, hint time.Duration) time.Duration {
	d := 200 * time.Millisecond << min(attempt-1, 20)
	if mx := time.Duration(r.f.cfg.MaxBackoff); d > mx {
		d = mx
	}
	d = d/2 + rand.N(d/2+1)
	if hint > d {
		// Honour the hint, with a little jitter so many forwarders do not
		// come back at the same instant.
		d = hint + rand.N(hint/10+1)
	}
	return d
}

func (r *sinkRun) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// SinkStatus is one sink's state, as /status and `stele-forwarder status`
// report it.
type SinkStatus struct {
	Name       string  `json:"name"`
	Type       string  `json:"type"`
	Next       uint64  `json:"next"`
	LogSize    uint64  `json:"log_size"`
	LagEntries uint64  `json:"lag_entries"`
	LagSeconds float64 `json:"lag_seconds"`
	Delivered  uint64  `json:"delivered_since_start"`
	DeadLetter uint64  `json:"dead_lettered_since_start"`
	Idempotent bool    `json:"idempotent"`
	LastError  string  `json:"last_error,omitempty"`
}

// Status is the forwarder's state.
type Status struct {
	Origin    string       `json:"origin,omitempty"`
	LogSize   uint64       `json:"log_size"`
	LastPoll  string       `json:"last_poll,omitempty"`
	PollError string       `json:"poll_error,omitempty"`
	Sinks     []SinkStatus `json:"sinks"`
}

// Status reports every sink's position and lag.
func (f *Forwarder) Status() Status {
	var st Status
	cp := f.latest.Load()
	if cp != nil {
		st.Origin, st.LogSize = cp.Origin, cp.Size
	}
	if t := f.lastPoll.Load(); t != 0 {
		st.LastPoll = time.Unix(0, t).UTC().Format(time.RFC3339Nano)
	}
	if e := f.pollErr.Load(); e != nil {
		st.PollError = *e
	}
	for _, r := range f.sinks {
		s := SinkStatus{Name: r.name, Type: r.typ, Next: r.next.Load(), LogSize: st.LogSize,
			Delivered: r.delivered.Load(), DeadLetter: r.deadCount.Load(), Idempotent: r.sink.Idempotent()}
		s.LagEntries, s.LagSeconds = r.lag(cp)
		if e := r.lastErr.Load(); e != nil {
			s.LastError = *e
		}
		st.Sinks = append(st.Sinks, s)
	}
	sort.Slice(st.Sinks, func(i, j int) bool { return st.Sinks[i].Name < st.Sinks[j].Name })
	return st
}

// lag is how far the sink is behind the trusted checkpoint: in entries,
// and in seconds since the oldest entry it has not confirmed was admitted.
func (r *sinkRun) lag(cp *client.Checkpoint) (uint64, float64) {
	if cp == nil {
		return 0, 0
	}
	next := r.next.Load()
	if next >= cp.Size {
		return 0, 0
	}
	secs := 0.0
	if t := r.pendingSince.Load(); t != 0 {
		secs = time.Since(time.Unix(0, t)).Seconds()
	}
	return cp.Size - next, secs
}

// Handler serves /healthz (200 while the log's checkpoint was read within
// three poll intervals and no sink is failing, 503 otherwise), /status
// (Status as JSON) and /metrics.
func (f *Forwarder) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(f.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		b, _ := json.MarshalIndent(f.Status(), "", "  ")
		w.Write(append(b, '\n'))
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		if msg := f.unhealthy(); msg != "" {
			http.Error(w, msg, http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	})
	return mux
}

func (f *Forwarder) unhealthy() string {
	stale := 3*time.Duration(f.cfg.PollInterval) + 30*time.Second
	if t := f.lastPoll.Load(); t == 0 || time.Since(time.Unix(0, t)) > stale {
		if e := f.pollErr.Load(); e != nil {
			return "the log's checkpoint could not be read: " + *e
		}
		return "the log's checkpoint has not been read yet"
	}
	for _, r := range f.sinks {
		if e := r.lastErr.Load(); e != nil {
			return fmt.Sprintf("sink %s is failing: %s", r.name, *e)
		}
	}
	return ""
}

type metrics struct {
	delivered, deadLettered, retries, redelivered *prometheus.CounterVec
	deliverSeconds, delay                         *prometheus.HistogramVec
	pollErrors                                    prometheus.Counter
}

func newMetrics(reg *prometheus.Registry, f *Forwarder) *metrics {
	m := &metrics{
		delivered:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "stele_forwarder_delivered_total", Help: "Records a sink confirmed."}, []string{"sink"}),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "stele_forwarder_dead_lettered_total", Help: "Records a sink refused for good, written to its dead-letter file."}, []string{"sink"}),
		retries:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "stele_forwarder_retries_total", Help: "Deliveries retried after a failure."}, []string{"sink"}),
		redelivered:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "stele_forwarder_redelivered_total", Help: "Records sent again after a restart interrupted their batch: duplicates in a sink without idempotent ids."}, []string{"sink"}),
		deliverSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "stele_forwarder_deliver_seconds", Help: "Time of one Deliver call.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10)}, []string{"sink"}),
		delay: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "stele_forwarder_delivery_delay_seconds", Help: "From admission in the log to confirmation by the sink, per record.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 14)}, []string{"sink"}),
		pollErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "stele_forwarder_poll_errors_total", Help: "Failed reads or verifications of the log's checkpoint."}),
	}
	reg.MustRegister(m.delivered, m.deadLettered, m.retries, m.redelivered, m.deliverSeconds, m.delay, m.pollErrors)
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "stele_forwarder_log_size", Help: "Size of the latest trusted checkpoint."}, func() float64 {
		if cp := f.latest.Load(); cp != nil {
			return float64(cp.Size)
		}
		return 0
	}))
	reg.MustRegister(lagCollector{f})
	return m
}

var (
	lagEntriesDesc = prometheus.NewDesc("stele_forwarder_lag_entries", "Entries in the trusted checkpoint the sink has not confirmed.", []string{"sink"}, nil)
	lagSecondsDesc = prometheus.NewDesc("stele_forwarder_lag_seconds", "Seconds since the oldest entry the sink has not confirmed was admitted (0 when caught up).", []string{"sink"}, nil)
	cursorDesc     = prometheus.NewDesc("stele_forwarder_cursor", "Index of the first entry the sink has not confirmed.", []string{"sink"}, nil)
)

// lagCollector reports per-sink lag at scrape time.
type lagCollector struct{ f *Forwarder }

func (c lagCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- lagEntriesDesc
	ch <- lagSecondsDesc
	ch <- cursorDesc
}

func (c lagCollector) Collect(ch chan<- prometheus.Metric) {
	cp := c.f.latest.Load()
	for _, r := range c.f.sinks {
		e, s := r.lag(cp)
		ch <- prometheus.MustNewConstMetric(lagEntriesDesc, prometheus.GaugeValue, float64(e), r.name)
		ch <- prometheus.MustNewConstMetric(lagSecondsDesc, prometheus.GaugeValue, s, r.name)
		ch <- prometheus.MustNewConstMetric(cursorDesc, prometheus.GaugeValue, float64(r.next.Load()), r.name)
	}
}
