package witness

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/stele-dev/stele/internal/promreg"
)

// metrics are the witness's Prometheus metrics, on a registry of its own so
// several witnesses can live in one process.
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  prometheus.Histogram
	size     *prometheus.GaugeVec
	evidence *prometheus.GaugeVec
	// evidenceDropped counts evidence records dropped by the per-log bound.
	evidenceDropped *prometheus.GaugeVec
	pulls           *prometheus.CounterVec
	subtrees        *prometheus.CounterVec
	overQuota       *prometheus.CounterVec
}

func newMetrics() *metrics {
	reg := promreg.New()
	f := promauto.With(reg)
	return &metrics{
		reg: reg,
		requests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "stele_witness_add_checkpoint_requests_total",
			Help: "add-checkpoint requests (pushed and pulled), by HTTP status and reason.",
		}, []string{"status", "reason"}),
		latency: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "stele_witness_cosign_seconds",
			Help:    "Time to check, cosign and durably record a checkpoint, for requests that got a cosignature.",
			Buckets: prometheus.ExponentialBuckets(0.0002, 2, 16),
		}),
		size: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "stele_witness_log_size",
			Help: "Size of the latest checkpoint cosigned, by log origin.",
		}, []string{"origin"}),
		evidence: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "stele_witness_evidence_records",
			Help: "Evidence records of conflicting checkpoints held in the store, by log origin (any non-zero value needs attention).",
		}, []string{"origin"}),
		evidenceDropped: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "stele_witness_evidence_dropped",
			Help: "Evidence records dropped to keep a log's first and latest ones, by log origin.",
		}, []string{"origin"}),
		pulls: f.NewCounterVec(prometheus.CounterOpts{
			Name: "stele_witness_pulls_total",
			Help: "Pull-mode fetches, by origin and outcome (ok, fetch_error, refused).",
		}, []string{"origin", "outcome"}),
		subtrees: f.NewCounterVec(prometheus.CounterOpts{
			Name: "stele_witness_sign_subtree_requests_total",
			Help: "sign-subtree requests, by HTTP status and reason.",
		}, []string{"status", "reason"}),
		overQuota: newOverQuotaCounter(f),
	}
}

// observe records the outcome of one add-checkpoint.
func (m *metrics) observe(e *Error, start time.Time) {
	if e == nil {
		m.requests.WithLabelValues(strconv.Itoa(http.StatusOK), "ok").Inc()
		m.latency.Observe(time.Since(start).Seconds())
		return
	}
	m.requests.WithLabelValues(strconv.Itoa(e.Status), e.Reason).Inc()
}

// observeSubtree records the outcome of one sign-subtree.
func (m *metrics) observeSubtree(e *Error) {
	if e == nil {
		m.subtrees.WithLabelValues(strconv.Itoa(http.StatusOK), "ok").Inc()
		return
	}
	m.subtrees.WithLabelValues(strconv.Itoa(e.Status), e.Reason).Inc()
}

// registry is the witness's Prometheus registry (served at /metrics by
// Handler); embedders can gather it themselves.
func (w *Witness) registry() *prometheus.Registry { return w.m.reg }
