package witness

import (
	"math"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"golang.org/x/time/rate"
)

// Per-log request quotas. A witness network log list gives each log a qpd:
// "the number of add-checkpoint requests the log may do per day". For a
// log taken from a list (not one the operator configured with add-log or
// the config file, which has no quota), pushed add-checkpoint requests
// that carry a valid log signature are metered by a token bucket that
// refills at qpd a day and holds an hour's worth (at least 10, so a 409
// retry or a restart's burst fits); one over it is refused with 429 and
// a Retry-After of one token's time. Requests the witness makes itself
// (pull, re-cosigning) are not counted. Anyone can replay a log's signed
// checkpoint, so the quota bounds the witness's work per log; it cannot
// tell the log from a replayer.

// reasonOverQuota is the 429 refusal reason.
const reasonOverQuota = "over_quota"

// quota is one log's limiter and the qpd it was made for.
type quota struct {
	qpd uint32
	lim *rate.Limiter
}

func newQuota(qpd uint32) *quota {
	burst := int(qpd / 24)
	if burst < 10 {
		burst = 10
	}
	return &quota{qpd: qpd, lim: rate.NewLimiter(rate.Limit(float64(qpd)/86400), burst)}
}

// retryAfter is one token's time in whole seconds (at least 1).
func (q *quota) retryAfter() int {
	return int(math.Ceil(86400 / float64(q.qpd)))
}

// rebuildQuotas recomputes the quotas from the listed logs, keeping the
// limiter of a log whose qpd did not change. Callers hold w.mu.
func (w *Witness) rebuildQuotas() {
	next := map[string]*quota{}
	if w.lists != nil {
		for i := len(w.lists.applied) - 1; i >= 0; i-- { // the first list wins, as in listedConfigs
			for _, l := range w.lists.applied[i].Logs {
				if _, ok := w.added[l.Origin]; ok {
					continue
				}
				if _, ok := w.static[l.Origin]; ok {
					continue
				}
				if q := w.quotas[l.Origin]; q != nil && q.qpd == l.QPD {
					next[l.Origin] = q
				} else {
					next[l.Origin] = newQuota(l.QPD)
				}
			}
		}
	}
	w.quotas = next
}

// overQuota refuses a pushed request for origin if its log is over its
// quota, and counts it.
func (w *Witness) overQuota(origin string) *Error {
	w.mu.RLock()
	q := w.quotas[origin]
	w.mu.RUnlock()
	if q == nil || q.lim.Allow() {
		return nil
	}
	w.m.overQuota.WithLabelValues(origin).Inc()
	e := refuse(http.StatusTooManyRequests, reasonOverQuota, "log %s is over its quota of %d add-checkpoint requests a day (the qpd its log list gives): send fewer, or ask the list to raise it", origin, q.qpd)
	e.retryAfter = q.retryAfter()
	return e
}

func newOverQuotaCounter(f promauto.Factory) *prometheus.CounterVec {
	return f.NewCounterVec(prometheus.CounterOpts{
		Name: "stele_witness_over_quota_total",
		Help: "add-checkpoint requests refused with 429 because the log was over the qpd its log list gives, by log origin.",
	}, []string{"origin"})
}
