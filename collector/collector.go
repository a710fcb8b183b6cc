// Package collector streams identity events from the providers' own
// interfaces into a Stele log: it reads a source from a durable cursor,
// turns each record into an event exactly as `stele import` does
// (internal/importer), submits through client.Submitter, and advances the
// cursor only once the log has acknowledged (or finally refused) every
// record before it. Delivery is at least once; the log's dedup on
// (source, event_id) makes it exactly once.
//
// A Source reads; the Collector submits, reports and keeps cursors. A
// record that is malformed or that the log refuses for good is reported
// (source, position, reason), counted, and skipped; it never stops the
// stream and is never retried forever. A record the log could not take
// for a transient reason (the server is down, overloaded) is retried until
// it is in, and the cursor waits for it.
package collector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc/codes"

	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/internal/importer"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
)

// Item is one element a source read: a record, or why it is not one.
type Item struct {
	// Raw is the record's exact bytes; nil when Err is set.
	Raw []byte
	// Position says where the record is, for reports and Event.origin,
	// e.g. "blob=insights-logs-auditlogs/tenantId=…/PT1H.json offset=1234".
	Position string
	// Tenant is the tenant for records that do not carry it (Graph's, Okta's).
	Tenant string
	// Err says why the element is not a record.
	Err error
}

// Batch is what a source hands over: items in order and the position after
// them.
type Batch struct {
	Items []Item
	// Position is the source's position after the items: saved once every
	// item is in the log or reported. Nil keeps the previous one.
	Position any
	// CaughtUp says the source has read everything there is for now.
	CaughtUp bool
	// Wait makes Emit return only once this batch and every one before it
	// are acknowledged and their cursors saved (a source that must then
	// tell the provider, as Event Hubs' offset commit, sets it).
	Wait bool
}

// Emit hands a batch over. Batches are submitted a few at a time
// (pipelined: the source reads on while the log works), and their cursors
// are saved in the order they were emitted, each once it and every batch
// before it are acknowledged; the position is taken (marshalled) when Emit
// is called, so the source may go on changing its own copy. Emit returns
// once the batch is taken (with Wait, once it is acknowledged and saved).
// It fails when an earlier batch could not be delivered (the collector is
// stopping) or its cursor not saved: the source then returns, and is run
// again from the last saved cursor.
type Emit func(ctx context.Context, b Batch) error

// Source reads one feed.
type Source interface {
	// Provider is whose records the source reads.
	Provider() importer.Provider
	// Run reads from position (nil: the start, or the --from time) and
	// emits batches until ctx ends. An error return is logged and Run is
	// called again, after a pause, from the last saved position.
	Run(ctx context.Context, position json.RawMessage, emit Emit) error
}

// Submitter is what a collector sends events through: a
// *client.Submitter to a log server, or (to measure the collector alone) a
// sink that acknowledges everything. Submit returns one result per event,
// in order, as client.Submitter.Submit does.
type Submitter interface {
	Submit(ctx context.Context, events []*stelev1.Event) ([]client.SubmitResult, error)
}

// Options configure a Collector.
type Options struct {
	Config *Config
	// Submitter sends events to the log.
	Submitter Submitter
	Logger    *slog.Logger
	// From is where a source with no cursor starts (zero: the source's
	// default, which is everything the provider still holds).
	From time.Time
	// Sources overrides the sources built from Config (tests).
	Sources map[string]Source
	// AfterBatch, if set, is called once a batch is acknowledged and its
	// cursor saved (benchmarks measure latency with it).
	AfterBatch func(source string, items []Item)
}

// Collector runs the sources.
type Collector struct {
	cfg     *Config
	sub     Submitter
	log     *slog.Logger
	store   *CursorStore
	reg     *prometheus.Registry
	m       *metrics
	runners []*runner
	after   func(string, []Item)
}

// New builds a collector and its sources.
func New(opts Options) (*Collector, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	store, err := OpenCursorStore(opts.Config.StateDir)
	if err != nil {
		return nil, err
	}
	c := &Collector{cfg: opts.Config, sub: opts.Submitter, log: opts.Logger, store: store, reg: prometheus.NewRegistry(), after: opts.AfterBatch}
	c.m = newMetrics(c.reg)
	for _, sc := range opts.Config.Sources {
		src := opts.Sources[sc.Name]
		kind, _ := sc.kind()
		if src == nil {
			if src, err = newSource(sc, opts.From, opts.Logger.With("source", sc.Name)); err != nil {
				return nil, fmt.Errorf("source %q: %w", sc.Name, err)
			}
		}
		cur, err := store.Load(sc.Name)
		if err != nil {
			return nil, err
		}
		r := &runner{c: c, name: sc.Name, kind: kind, src: src, cur: cur, started: time.Now(), caughtUp: time.Now()}
		r.log = opts.Logger.With("source", sc.Name)
		if t, ok := src.(interface{ OnThrottle(func(time.Duration)) }); ok {
			name := sc.Name
			t.OnThrottle(func(d time.Duration) {
				c.m.throttled.WithLabelValues(name).Inc()
				c.m.throttledSeconds.WithLabelValues(name).Add(d.Seconds())
			})
		}
		c.runners = append(c.runners, r)
	}
	return c, nil
}

func newSource(sc SourceConfig, from time.Time, log *slog.Logger) (Source, error) {
	switch {
	case sc.EntraStorage != nil:
		return NewStorageSource(*sc.EntraStorage, from, log)
	case sc.CloudTrail != nil:
		return NewCloudTrailSource(*sc.CloudTrail, from, log)
	case sc.EventHub != nil:
		return NewEventHubSource(*sc.EventHub, from, log)
	case sc.Graph != nil:
		return NewGraphSource(*sc.Graph, from, log)
	case sc.Okta != nil:
		return NewOktaSource(*sc.Okta, from, log)
	}
	return nil, errors.New("no source section")
}

// Run runs every source until ctx ends, then drains: batches in flight are
// finished (within the drain timeout) and their cursors saved.
func (c *Collector) Run(ctx context.Context) error {
	drainCtx, cancelDrain := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelDrain()
	stop := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(c.cfg.DrainTimeout.Or(30*time.Second), cancelDrain)
		_ = t
	})
	defer stop()
	var wg sync.WaitGroup
	for _, r := range c.runners {
		wg.Go(func() { r.run(ctx, drainCtx) })
	}
	wg.Wait()
	c.log.Info("collector stopped")
	return nil
}

// runner runs one source.
type runner struct {
	c    *Collector
	name string
	kind string
	src  Source
	log  *slog.Logger

	mu       sync.Mutex
	cur      Cursor
	started  time.Time
	caughtUp time.Time // when the source last had nothing more to read
	isCaught bool
	lastErr  string
	lastErrT time.Time
	rate     rateWindow
	counts   map[string]uint64
	saves    uint64 // cursors saved: a source that fails after progress starts its backoff again

	// The pipeline: batches being delivered, in emit order.
	pipe    chan *inflight
	last    *inflight
	pipeErr error // the first delivery or save that failed (under mu)
}

// inflight is one emitted batch on its way into the log.
type inflight struct {
	b      Batch
	pos    json.RawMessage // b.Position marshalled at emit; nil keeps the cursor
	err    error           // delivery's outcome, set before done closes
	done   chan struct{}   // delivered (acknowledged or given up)
	saved  chan struct{}   // its cursor saved (or skipped after a failure)
	result error           // the save's outcome, set before saved closes
}

// pipelineDepth is how many batches of a source are delivered at once.
const pipelineDepth = 4

func (r *runner) run(ctx, drainCtx context.Context) {
	r.log.Info("source starting", "kind", r.kind, "cursor", string(r.cur.Position))
	r.pipe = make(chan *inflight, pipelineDepth-1)
	go r.commit()
	defer close(r.pipe)
	for pause := time.Second; ctx.Err() == nil; {
		r.mu.Lock()
		pos := r.cur.Position
		saves := r.saves
		r.mu.Unlock()
		err := r.src.Run(ctx, pos, func(_ context.Context, b Batch) error { return r.emit(ctx, drainCtx, b) })
		// What is in flight is finished (on SIGTERM: drained) before the
		// source runs again from the cursor, or the collector stops.
		if perr := r.flush(); err == nil {
			err = perr
		}
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			err = errors.New("the source stopped by itself")
		}
		r.fail("source", err)
		r.mu.Lock()
		progressed := r.saves != saves
		r.mu.Unlock()
		if progressed {
			// The source moved the cursor before it failed: this is a new
			// failure, not the same one again, and it gets the first
			// pause (else a source that fails now and then, as a Kafka
			// rebalance makes Event Hubs do, would wait 32 s by its sixth).
			pause = time.Second
		}
		if !sleep(ctx, jitter(pause)) {
			return
		}
		pause = min(pause*2, time.Minute)
	}
}

// fail records an error.
func (r *runner) fail(kind string, err error) {
	r.c.m.errors.WithLabelValues(r.name, kind).Inc()
	r.log.Error("source error", "kind", kind, "err", err)
	r.mu.Lock()
	r.lastErr, r.lastErrT = err.Error(), time.Now()
	r.mu.Unlock()
}

// outcomes of a record, the values of the metrics' outcome label.
const (
	outAdmitted  = "admitted"
	outDuplicate = "duplicate"
	outMalformed = "malformed"
	outRefused   = "refused"
)

// emit puts a batch into the pipeline: delivered on its own goroutine, its
// cursor saved by commit in emit order.
func (r *runner) emit(ctx, drainCtx context.Context, b Batch) error {
	r.mu.Lock()
	perr := r.pipeErr
	r.mu.Unlock()
	if perr != nil {
		return perr
	}
	f := &inflight{b: b, done: make(chan struct{}), saved: make(chan struct{})}
	if b.Position != nil {
		pos, err := json.Marshal(b.Position)
		if err != nil {
			return fmt.Errorf("cursor: %w", err)
		}
		f.pos = pos
	}
	go func() {
		f.err = r.deliver(drainCtx, b)
		close(f.done)
	}()
	select {
	case r.pipe <- f:
	case <-ctx.Done():
		// Stopping: the batch is delivered within the drain timeout,
		// but its cursor is not saved (nor any later one).
		<-f.done
		return ctx.Err()
	}
	r.last = f
	if b.Wait {
		<-f.saved
		return f.result
	}
	return nil
}

// flush waits until every batch emitted so far is delivered and its
// cursor saved, and returns (and clears) the pipeline's failure.
func (r *runner) flush() error {
	if r.last != nil {
		<-r.last.saved
		r.last = nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	err := r.pipeErr
	r.pipeErr = nil
	return err
}

// commit saves the cursors of delivered batches in emit order. After a
// failure no later cursor is saved until the pipeline is flushed: a cursor
// never moves past a batch that is not in the log.
func (r *runner) commit() {
	for f := range r.pipe {
		<-f.done
		r.mu.Lock()
		failed := r.pipeErr
		r.mu.Unlock()
		err := failed
		if err == nil {
			err = f.err
		}
		if err == nil {
			if err = r.save(f.b, f.pos); err != nil {
				r.fail("cursor", err)
			} else if r.c.after != nil && len(f.b.Items) > 0 {
				r.c.after(r.name, f.b.Items)
			}
		}
		if err != nil && failed == nil {
			r.mu.Lock()
			r.pipeErr = err
			r.mu.Unlock()
		}
		f.result = err
		close(f.saved)
	}
}

// deliver submits a batch, retrying what failed transiently until it is
// in, and reports what is malformed or refused for good. Submitting uses
// drainCtx so that a stop finishes the batches in flight.
func (r *runner) deliver(drainCtx context.Context, b Batch) error {
	type pendingEvent struct {
		ev  *stelev1.Event
		pos string
	}
	var pending []pendingEvent
	outcomes := map[string]uint64{}
	for _, it := range b.Items {
		if it.Err != nil {
			r.report(outMalformed, it.Position, it.Err.Error())
			outcomes[outMalformed]++
			continue
		}
		bl := importer.Builder{Provider: r.src.Provider(), Tenant: it.Tenant}
		ev, err := bl.Event(importer.Record{Raw: it.Raw}, "")
		if err != nil {
			r.report(outMalformed, it.Position, err.Error())
			outcomes[outMalformed]++
			continue
		}
		ev.Origin = originOf(it.Position)
		pending = append(pending, pendingEvent{ev, it.Position})
	}
	for attempt := 0; len(pending) > 0; attempt++ {
		evs := make([]*stelev1.Event, len(pending))
		for i, p := range pending {
			evs[i] = p.ev
		}
		results, err := r.submit(drainCtx, evs)
		var again []pendingEvent
		for i, res := range results {
			switch {
			case res.OK() && res.Duplicate:
				outcomes[outDuplicate]++
			case res.OK():
				outcomes[outAdmitted]++
			case err != nil && transient(res):
				again = append(again, pending[i])
			default:
				r.report(outRefused, pending[i].pos, fmt.Sprintf("%s: %s", res.Code, res.Message))
				outcomes[outRefused]++
			}
		}
		if err == nil && len(results) != len(pending) {
			err = fmt.Errorf("submit returned %d results for %d events", len(results), len(pending))
			again = pending
		}
		pending = again
		if len(pending) == 0 {
			break
		}
		r.fail("submit", fmt.Errorf("%d events not in the log yet, retrying: %w", len(pending), err))
		if drainCtx.Err() != nil || !sleep(drainCtx, jitter(min(time.Second<<min(attempt, 5), 30*time.Second))) {
			r.count(outcomes)
			return fmt.Errorf("stopping with %d events of a batch not acknowledged: %w", len(pending), context.Cause(drainCtx))
		}
	}
	r.count(outcomes)
	return nil // acknowledged, even if the collector is stopping
}

// parallelAppends is how many Append calls of one batch are in flight at
// once: the log sequences them together, so a batch of a few thousand
// records is acknowledged in about the time of one call.
const parallelAppends = 4

// submit submits evs in chunks of the Submitter's batch size, up to
// parallelAppends at once, and returns the results in order.
func (r *runner) submit(ctx context.Context, evs []*stelev1.Event) ([]client.SubmitResult, error) {
	chunk := 500
	if cs, ok := r.c.sub.(*client.Submitter); ok && cs.BatchEvents > 0 {
		chunk = cs.BatchEvents
	}
	if len(evs) <= chunk {
		return r.c.sub.Submit(ctx, evs)
	}
	out := make([]client.SubmitResult, len(evs))
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
		sem      = make(chan struct{}, parallelAppends)
	)
	for start := 0; start < len(evs); start += chunk {
		end := min(start+chunk, len(evs))
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			res, err := r.c.sub.Submit(ctx, evs[start:end])
			copy(out[start:end], res)
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return out, firstErr
}

// transient tells a result worth resending: the call failed (the server
// down, the connection lost, a timeout, authentication not accepted yet)
// rather than the log refusing the event for what it is.
func transient(res client.SubmitResult) bool {
	switch res.Code {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled, codes.Unauthenticated, codes.Internal, codes.Unknown, codes.Aborted:
		return true
	case codes.ResourceExhausted:
		// Only a record over the size limit is refused for what it is;
		// pushback, rate limits and a too-large batch pass.
		return !strings.HasPrefix(res.Message, "record is ")
	}
	return false
}

// originOf is Event.origin for a position, within the server's limit.
func originOf(pos string) string {
	if len(pos) > 1024 {
		pos = "..." + pos[len(pos)-1021:]
	}
	return pos
}

// report logs a record that is not in the log, and why.
func (r *runner) report(outcome, pos, reason string) {
	r.log.Warn("record not admitted", "outcome", outcome, "position", pos, "reason", reason)
	r.mu.Lock()
	r.lastErr, r.lastErrT = fmt.Sprintf("%s at %s: %s", outcome, pos, reason), time.Now()
	r.mu.Unlock()
}

func (r *runner) count(outcomes map[string]uint64) {
	var n uint64
	for o, k := range outcomes {
		r.c.m.events.WithLabelValues(r.name, o).Add(float64(k))
		n += k
	}
	r.mu.Lock()
	if r.counts == nil {
		r.counts = map[string]uint64{}
	}
	for o, k := range outcomes {
		r.counts[o] += k
	}
	r.rate.add(time.Now(), n)
	r.mu.Unlock()
}

// save saves the batch's position (pos, marshalled) and updates the lag.
func (r *runner) save(b Batch, pos json.RawMessage) error {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if b.CaughtUp {
		r.caughtUp, r.isCaught = now, true
	} else if len(b.Items) > 0 {
		r.isCaught = false
	}
	r.c.m.lag.WithLabelValues(r.name).Set(r.lagLocked(now).Seconds())
	if pos == nil {
		return nil
	}
	var n uint64
	for _, it := range b.Items {
		if it.Err == nil {
			n++
		}
	}
	next := Cursor{Position: pos, Saved: now, Events: r.cur.Events + n}
	if err := r.c.store.Save(r.name, next); err != nil {
		return err
	}
	r.cur = next
	r.saves++
	return nil
}

// lagLocked is 0 while the source is caught up, else how long since it last was.
func (r *runner) lagLocked(now time.Time) time.Duration {
	if r.isCaught {
		return 0
	}
	return now.Sub(r.caughtUp)
}

// SourceStatus is what `stele-collector status` shows for a source.
type SourceStatus struct {
	Name     string            `json:"name"`
	Kind     string            `json:"kind"`
	Cursor   json.RawMessage   `json:"cursor"`
	Saved    time.Time         `json:"cursor_saved"`
	Lag      float64           `json:"lag_seconds"`
	Rate     float64           `json:"events_per_second"`
	Events   map[string]uint64 `json:"events,omitempty"`
	LastErr  string            `json:"last_error,omitempty"`
	LastErrT *time.Time        `json:"last_error_at,omitempty"`
}

// Status reports every source.
func (c *Collector) Status() []SourceStatus {
	now := time.Now()
	var out []SourceStatus
	for _, r := range c.runners {
		r.mu.Lock()
		st := SourceStatus{Name: r.name, Kind: r.kind, Cursor: r.cur.Position, Saved: r.cur.Saved,
			Lag: r.lagLocked(now).Seconds(), Rate: r.rate.perSecond(now), LastErr: r.lastErr, Events: map[string]uint64{}}
		for o, k := range r.counts {
			st.Events[o] = k
		}
		if !r.lastErrT.IsZero() {
			t := r.lastErrT
			st.LastErrT = &t
		}
		r.mu.Unlock()
		out = append(out, st)
	}
	return out
}

// Handler serves /healthz, /metrics (Prometheus) and /status (JSON).
func (c *Collector) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"status": "ok", "sources": len(c.runners)})
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(c.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(c.Status())
	})
	return mux
}

type metrics struct {
	events           *prometheus.CounterVec
	errors           *prometheus.CounterVec
	lag              *prometheus.GaugeVec
	throttled        *prometheus.CounterVec
	throttledSeconds *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "stele_collector_events_total",
			Help: "Records read, by source and outcome (admitted, duplicate, malformed, refused)."}, []string{"source", "outcome"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "stele_collector_errors_total",
			Help: "Errors, by source and kind (source: reading the provider; submit: reaching the log; cursor: saving it)."}, []string{"source", "kind"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "stele_collector_lag_seconds",
			Help: "0 while the source is caught up; else seconds since it last was."}, []string{"source"}),
	}
	m.throttled = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "stele_collector_throttled_total",
		Help: "Times the provider said to slow down (HTTP 429/503, a rate limit used up), by source."}, []string{"source"})
	m.throttledSeconds = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "stele_collector_throttled_seconds_total",
		Help: "Seconds waited because the provider throttled, by source."}, []string{"source"})
	reg.MustRegister(m.events, m.errors, m.lag, m.throttled, m.throttledSeconds)
	return m
}

// rateWindow counts events per second over the last minute.
type rateWindow struct {
	secs  [60]int64
	count [60]uint64
}

func (w *rateWindow) add(now time.Time, n uint64) {
	s := now.Unix()
	i := s % 60
	if w.secs[i] != s {
		w.secs[i], w.count[i] = s, 0
	}
	w.count[i] += n
}

func (w *rateWindow) perSecond(now time.Time) float64 {
	s := now.Unix()
	var n uint64
	for i := range w.secs {
		if s-w.secs[i] < 60 {
			n += w.count[i]
		}
	}
	return float64(n) / 60
}

// sleep waits d or until ctx ends; false when ctx ended.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// jitter is d ± 20%.
func jitter(d time.Duration) time.Duration {
	return d*4/5 + time.Duration(rand.Int64N(int64(d)*2/5+1))
}
