package server

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// overloadRetry is the retry hint given when the server-wide in-flight cap
// is full: long enough for a few batches to commit.
const overloadRetry = 250 * time.Millisecond

// rateSpec is an events-per-second limit with its burst; a zero rate means
// no limit.
type rateSpec struct {
	perSecond float64
	burst     int
}

// limits enforces per-identity rate limits and the server-wide cap on the
// bytes of Append requests being admitted (docs/security.md, "Limits").
type limits struct {
	def      rateSpec
	maxBytes int64
	refused  *prometheus.CounterVec

	// reads holds a slot per unary Append body being read; readsBy, per
	// identity, at most half of them, so that one identity cannot hold
	// them all.
	reads   chan struct{}
	readsBy map[string]chan struct{}

	mu       sync.Mutex
	limiters map[string]*bucket
	inflight int64
}

// bucket is an identity's token bucket and the size of its last batch
// refused for want of tokens: later calls are refused before their body is
// read until the bucket could pay for such a batch again.
type bucket struct {
	*rate.Limiter
	need atomic.Int64
}

func newLimits(cfg *Config, reg prometheus.Registerer) *limits {
	l := &limits{
		def:      rateSpec{perSecond: cfg.RateLimit, burst: cfg.RateBurst},
		maxBytes: cfg.MaxInflightBytes,
		limiters: map[string]*bucket{},
		reads:    make(chan struct{}, readSlots(cfg)),
		readsBy:  map[string]chan struct{}{},
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stele_limit_refused_total",
			Help: "Append calls (or stream batches) refused by a limit, by identity and reason (rate, burst, overload).",
		}, []string{"identity", "reason"}),
	}
	reg.MustRegister(l.refused)
	return l
}

// retryable is a ResourceExhausted status carrying a google.rpc.RetryInfo
// with delay, which client.Submitter honours; the delay is also in the
// message for people and for clients that ignore details.
func retryable(delay time.Duration, format string, args ...any) error {
	delay = max(delay.Round(time.Millisecond), time.Millisecond)
	st := status.New(codes.ResourceExhausted, fmt.Sprintf(format, args...)+fmt.Sprintf("; retry in %s", delay))
	if d, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(delay)}); err == nil {
		st = d
	}
	return st.Err()
}

// limiter returns the identity's token bucket, created or retuned to spec.
func (l *limits) limiter(name string, spec rateSpec) *bucket {
	lim, burst := rate.Limit(spec.perSecond), spec.burst
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.limiters[name]
	if r == nil {
		r = &bucket{Limiter: rate.NewLimiter(lim, burst)}
		l.limiters[name] = r
		return r
	}
	if r.Limit() != lim {
		r.SetLimit(lim)
	}
	if r.Burst() != burst {
		r.SetBurst(burst)
	}
	return r
}

// allow takes n events from the identity's bucket. It refuses a batch
// larger than the burst with InvalidArgument (no wait would let it
// through), and a batch the bucket cannot pay for now with
// ResourceExhausted and the time until it could.
func (l *limits) allow(name string, spec rateSpec, n int) error {
	if spec.perSecond <= 0 {
		return nil
	}
	if n > spec.burst {
		l.refused.WithLabelValues(name, "burst").Inc()
		return status.Errorf(codes.InvalidArgument, "a batch of %d events is over identity %q's burst of %d events: send batches of at most %d", n, name, spec.burst, spec.burst)
	}
	now := time.Now()
	b := l.limiter(name, spec)
	r := b.ReserveN(now, n)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		b.need.Store(int64(n))
		l.refused.WithLabelValues(name, "rate").Inc()
		return retryable(d, "identity %q is over its rate limit of %g events/s (burst %d)", name, spec.perSecond, spec.burst)
	}
	b.need.Store(0)
	return nil
}

// reservation is a share of the server-wide in-flight cap held by one
// Append request or stream batch, in bytes of memory it may use.
type reservation struct {
	l    *limits
	name string
	size int64
}

// reserve takes size bytes of the server-wide in-flight cap for identity
// name, or refuses at once: under overload callers are pushed back, never
// queued. A request larger than the whole cap is let through alone.
func (l *limits) reserve(name string, size int64) (*reservation, error) {
	r := &reservation{l: l, name: name}
	return r, r.resize(size)
}

// resize changes the reservation to size bytes (a request's body, reserved
// at the largest size before it is read, becomes what its decoded events
// cost). On refusal the reservation holds nothing.
func (r *reservation) resize(size int64) error {
	l := r.l
	if l.maxBytes <= 0 {
		return nil
	}
	l.mu.Lock()
	l.inflight -= r.size
	r.size = 0
	if l.inflight+size > l.maxBytes && l.inflight > 0 {
		l.mu.Unlock()
		l.refused.WithLabelValues(r.name, "overload").Inc()
		return retryable(overloadRetry, "the server is overloaded: at its limit of %d in-flight request bytes", l.maxBytes)
	}
	l.inflight += size
	r.size = size
	l.mu.Unlock()
	return nil
}

// release gives the reservation back.
func (r *reservation) release() {
	l := r.l
	l.mu.Lock()
	l.inflight -= r.size
	r.size = 0
	l.mu.Unlock()
}

// readSlots is how many unary Append bodies may be read at once: as many
// requests of the largest size as fit in the in-flight cap, counted twice
// (reading a body holds it twice for a moment: gRPC's buffer and the copy
// handed over), at least two. A body is read whole before its size is
// known.
func readSlots(cfg *Config) int {
	if cfg.MaxInflightBytes <= 0 {
		return 64
	}
	return int(max(2, min(64, cfg.MaxInflightBytes/(2*int64(cfg.MaxRequestBytes)))))
}

// read runs f, which reads a request body of identity name, in a read
// slot, waiting for one (in turn: the wait is first come, first served) as
// long as ctx allows.
func (l *limits) read(ctx context.Context, name string, f func() error) error {
	sems := []chan struct{}{l.reads}
	if name != "anonymous" {
		// Without an access policy every caller is "anonymous": sharing
		// would serve no one.
		l.mu.Lock()
		mine := l.readsBy[name]
		if mine == nil {
			mine = make(chan struct{}, max(1, cap(l.reads)/2))
			l.readsBy[name] = mine
		}
		l.mu.Unlock()
		sems = []chan struct{}{mine, l.reads}
	}
	for _, sem := range sems {
		select {
		case sem <- struct{}{}:
			defer func() { <-sem }()
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		}
	}
	return f()
}

// full reports whether the in-flight cap is used up.
func (l *limits) full() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.maxBytes > 0 && l.inflight >= l.maxBytes
}

// waitRoom waits until the in-flight cap is not used up. A stream reads
// its next batch only then, so HTTP/2 flow control holds a producer back
// while the server is full.
func (l *limits) waitRoom(ctx context.Context) error {
	for l.full() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

// Decoded cost of a batch: what admitting it holds in memory, estimated
// from its encoded size and its number of events. The decoded request
// holds its bytes once more plus an Event per event; admission builds a
// payload (record and normalised view) and a leaf per event. An empty
// event costs 2 bytes on the wire and a few hundred decoded, which is why
// the count matters as much as the size (docs/security.md, "Limits").
const (
	costPerByte  = 3
	costPerEvent = 1024
)

// batchCost is the in-flight cost of a batch of n events in wire bytes.
func batchCost(wire, n int) int64 {
	return int64(costPerByte)*int64(wire) + int64(costPerEvent)*int64(n)
}

// MemoryLimit is the soft memory limit (runtime/debug.SetMemoryLimit) that
// stele-server sets unless GOMEMLIMIT is: twice the in-flight cap plus
// 64 MiB for everything else. Admission keeps what it holds within the
// cap; without a limit the Go collector lets the heap grow to twice what
// is live, so a server at its cap would double it again.
func (s *Server) MemoryLimit() int64 {
	if s.cfg.MaxInflightBytes <= 0 {
		return math.MaxInt64
	}
	return 2*s.cfg.MaxInflightBytes + 64<<20
}

// rateOf is the rate limit of the calling identity: its own from the
// access policy, or the server's default.
func (s *Server) rateOf(id *identity) rateSpec {
	if id != nil && id.rate != nil {
		return *id.rate
	}
	return s.limits.def
}

// checkLimits validates the limit settings against each other.
func (c *Config) checkLimits() error {
	if c.RateLimit < 0 || math.IsNaN(c.RateLimit) || math.IsInf(c.RateLimit, 0) {
		return fmt.Errorf("rate limit %g events/s: must be a positive number, or 0 for none", c.RateLimit)
	}
	if c.RateLimit > 0 && c.RateBurst < 1 {
		return fmt.Errorf("rate burst %d: must be at least 1 with a rate limit", c.RateBurst)
	}
	if min := c.MaxRecordBytes + requestOverhead; c.MaxRequestBytes < min {
		return fmt.Errorf("max request bytes %d: must hold one record of the maximum %d bytes plus %d bytes of framing (at least %d)", c.MaxRequestBytes, c.MaxRecordBytes, requestOverhead, min)
	}
	if c.MaxInflightBytes > 0 && c.MaxInflightBytes < int64(c.MaxRequestBytes) {
		return fmt.Errorf("max in-flight bytes %d: must be at least the max request bytes %d, or no request of that size could be admitted", c.MaxInflightBytes, c.MaxRequestBytes)
	}
	return nil
}

// requestOverhead is room for an event's other fields and the request's
// framing next to one maximum-size record.
const requestOverhead = 64 << 10

// precheck refuses a unary Append before its body is read when the
// caller's bucket could not pay for a batch like its last refused one, or
// the in-flight cap is full.
func (l *limits) precheck(name string, spec rateSpec) error {
	if spec.perSecond > 0 {
		b := l.limiter(name, spec)
		need := float64(min(max(b.need.Load(), 1), int64(spec.burst)))
		if tokens := b.TokensAt(time.Now()); tokens < need {
			l.refused.WithLabelValues(name, "rate").Inc()
			wait := time.Duration((need - tokens) / spec.perSecond * float64(time.Second))
			return retryable(wait, "identity %q is over its rate limit of %g events/s (burst %d)", name, spec.perSecond, spec.burst)
		}
	}
	if l.full() {
		l.refused.WithLabelValues(name, "overload").Inc()
		return retryable(overloadRetry, "the server is overloaded: at its limit of %d in-flight request bytes", l.maxBytes)
	}
	return nil
}
