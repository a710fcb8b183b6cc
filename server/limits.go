package server

import (
	"context"
	"crypto/sha256"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
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

// acquire reserves size bytes of the server-wide in-flight cap, or refuses
// at once: under overload callers are pushed back, never queued.
func (l *limits) acquire(name string, size int64) (release func(), err error) {
	if l.maxBytes <= 0 {
		return func() {}, nil
	}
	l.mu.Lock()
	if l.inflight+size > l.maxBytes && l.inflight > 0 {
		l.mu.Unlock()
		l.refused.WithLabelValues(name, "overload").Inc()
		return nil, retryable(overloadRetry, "the server is overloaded: at its limit of %d in-flight request bytes", l.maxBytes)
	}
	l.inflight += size
	l.mu.Unlock()
	return func() {
		l.mu.Lock()
		l.inflight -= size
		l.mu.Unlock()
	}, nil
}

// spec is the rate limit of the calling identity: its own from the access
// policy, or the server's default.
func (s *Server) rateOf(id *identity) rateSpec {
	if id != nil && id.rate != nil {
		return *id.rate
	}
	return s.limits.def
}

// limitAppend applies the limits to one Append request (or stream batch)
// before admission. On success the caller must call release once the
// batch is answered.
func (s *Server) limitAppend(ctx context.Context, events []*stelev1.Event, size int) (release func(), err error) {
	name, id := "anonymous", (*identity)(nil)
	if s.auth.policy != nil {
		if p, ok := ctx.Value(principalKey{}).(principal); ok {
			if got, err := s.auth.resolve(p); err == nil {
				name, id = got.name, got
			}
		}
	}
	if err := s.limits.allow(name, s.rateOf(id), len(events)); err != nil {
		s.countLimited(len(events), err)
		return nil, err
	}
	release, err = s.limits.acquire(name, int64(size))
	if err != nil {
		s.countLimited(len(events), err)
		return nil, err
	}
	return release, nil
}

// countLimited counts the events of a batch refused by a limit in the
// append metrics, like any other refusal.
func (s *Server) countLimited(n int, err error) {
	s.m.events.WithLabelValues("refused").Add(float64(n))
	s.m.refused.WithLabelValues(status.Code(err).String()).Add(float64(n))
}

// appendLimited admits a unary Append request under the limits.
func (s *Server) appendLimited(ctx context.Context, req *stelev1.AppendRequest) ([]result, error) {
	release, err := s.limitAppend(ctx, req.Events, proto.Size(req))
	if err != nil {
		return nil, err
	}
	defer release()
	return s.admitAs(ctx, req.Events), nil
}

// batchLimited admits a stream batch under the limits; a refusal is the
// result of every event in it.
func (s *Server) batchLimited(ctx context.Context, req *stelev1.AppendStreamRequest) []result {
	release, err := s.limitAppend(ctx, req.Events, proto.Size(req))
	if err != nil {
		st := status.Convert(err)
		rs := make([]result, len(req.Events))
		for i := range rs {
			rs[i] = result{code: st.Code(), msg: st.Message()}
		}
		return rs
	}
	defer release()
	return s.admitAs(ctx, req.Events)
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

// tapAppend runs as each new gRPC call arrives, before its request is
// read: a unary Append from an identity whose bucket is empty, or arriving
// while the in-flight cap is full, is refused without reading (or
// decoding) its body. Only token callers and anonymous ones are known this
// early; certificate callers are limited in the handler, after decoding.
func (s *Server) tapAppend(ctx context.Context, info *tap.Info) (context.Context, error) {
	if info.FullMethodName != stelev1.LogService_Append_FullMethodName {
		return ctx, nil
	}
	name, spec, ok := s.tapIdentity(info.Header)
	if !ok {
		return ctx, nil
	}
	l := s.limits
	if spec.perSecond > 0 {
		b := l.limiter(name, spec)
		need := float64(min(max(b.need.Load(), 1), int64(spec.burst)))
		if tokens := b.TokensAt(time.Now()); tokens < need {
			l.refused.WithLabelValues(name, "rate").Inc()
			wait := time.Duration((need - tokens) / spec.perSecond * float64(time.Second))
			return nil, retryable(wait, "identity %q is over its rate limit of %g events/s (burst %d)", name, spec.perSecond, spec.burst)
		}
	}
	l.mu.Lock()
	full := l.maxBytes > 0 && l.inflight >= l.maxBytes
	l.mu.Unlock()
	if full {
		l.refused.WithLabelValues(name, "overload").Inc()
		return nil, retryable(overloadRetry, "the server is overloaded: at its limit of %d in-flight request bytes", l.maxBytes)
	}
	return ctx, nil
}

// tapIdentity names the caller from the request headers alone: the
// identity of a known bearer token, or "anonymous" without a policy. ok is
// false when that cannot be known yet (a certificate, an unknown or
// malformed token: the interceptors refuse those with their reasons).
func (s *Server) tapIdentity(md metadata.MD) (name string, spec rateSpec, ok bool) {
	if s.auth.policy == nil {
		return "anonymous", s.limits.def, true
	}
	vals := md.Get("authorization")
	if len(vals) != 1 {
		return "", rateSpec{}, false
	}
	scheme, tok, found := strings.Cut(vals[0], " ")
	if !found || !strings.EqualFold(scheme, "Bearer") {
		return "", rateSpec{}, false
	}
	pol, err := s.auth.policy.get(false)
	if err != nil {
		return "", rateSpec{}, false
	}
	id := pol.byToken[sha256.Sum256([]byte(strings.TrimSpace(tok)))]
	if id == nil {
		return "", rateSpec{}, false
	}
	return id.name, s.rateOf(id), true
}
