package server

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stele-dev/stele/internal/promreg"
)

// metrics are the server's Prometheus metrics, on a registry of its own so
// several servers can live in one process.
type metrics struct {
	reg          *prometheus.Registry
	events       *prometheus.CounterVec
	refused      *prometheus.CounterVec
	batchSize    prometheus.Histogram
	batchSeconds prometheus.Histogram
	treeSize     prometheus.Gauge
	cpSize       prometheus.Gauge
	cpAge        prometheus.Gauge
	lag          prometheus.Gauge
	fatal        prometheus.Counter
	erasures     *prometheus.CounterVec

	witnessLatency *prometheus.HistogramVec
	stalled        prometheus.Gauge
	selfCheck      *prometheus.CounterVec
	panics         *prometheus.CounterVec
}

func newMetrics() *metrics {
	m := &metrics{
		reg: promreg.New(),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stele_append_events_total",
			Help: "Events submitted, by outcome (admitted, duplicate, refused).",
		}, []string{"outcome"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stele_append_refused_total",
			Help: "Events refused, by gRPC status code.",
		}, []string{"code"}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "stele_append_batch_events",
			Help:    "Events per Append batch.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 8),
		}),
		batchSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "stele_append_batch_seconds",
			Help:    "Time to admit a batch, from receipt to acknowledgement.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		treeSize: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "stele_tree_size",
			Help: "Entries durably sequenced and integrated into the tree.",
		}),
		cpSize: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "stele_checkpoint_size",
			Help: "Tree size of the latest published checkpoint.",
		}),
		cpAge: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "stele_checkpoint_age_seconds",
			Help: "Seconds since the published checkpoint last changed.",
		}),
		lag: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "stele_integration_lag_entries",
			Help: "Entries integrated but not yet covered by a published checkpoint.",
		}),
		erasures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stele_erasures_total",
			Help: "EraseEvent calls, by outcome (erased, already_erased, refused).",
		}, []string{"outcome"}),
		fatal: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "stele_index_write_failures_total",
			Help: "Dedup index writes that failed after sequencing (the server stops).",
		}),
	}
	m.witnessLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "stele_witness_request_seconds",
		Help:    "Latency of add-checkpoint requests to each witness, by HTTP status (or error).",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
	}, []string{"witness", "code"})
	m.stalled = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "stele_checkpoint_stalled",
		Help: "1 while entries wait for a checkpoint longer than an interval plus the witness timeout (e.g. the witness policy cannot be met).",
	})
	m.selfCheck = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "stele_self_check_failures_total",
		Help: "Proofs the server built and refused to hand out because they did not verify against the signed checkpoint (damaged tiles or cache), by proof: inclusion, consistency, root.",
	}, []string{"proof"})
	m.panics = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "stele_rpc_panics_total",
		Help: "RPCs that panicked and were answered Internal instead of taking the server down, by method.",
	}, []string{"method"})
	m.reg.MustRegister(m.witnessLatency, m.stalled, m.selfCheck, m.panics, collectors.NewBuildInfoCollector())
	m.reg.MustRegister(m.erasures)
	m.reg.MustRegister(m.events, m.refused, m.batchSize, m.batchSeconds, m.treeSize, m.cpSize, m.cpAge, m.lag, m.fatal)
	return m
}

// refuseBatch counts the n events of a batch refused whole (by a limit,
// for its size, or because it does not decode).
func (m *metrics) refuseBatch(n int, err error) {
	m.events.WithLabelValues("refused").Add(float64(n))
	m.refused.WithLabelValues(status.Code(err).String()).Add(float64(n))
}

// observeBatch counts the results of a batch that reached admission.
func (m *metrics) observeBatch(rs []result, d time.Duration) {
	m.batchSize.Observe(float64(len(rs)))
	m.batchSeconds.Observe(d.Seconds())
	var admitted, dup, refused int
	for _, r := range rs {
		switch {
		case r.code != codes.OK:
			refused++
			m.refused.WithLabelValues(r.code.String()).Inc()
		case r.duplicate:
			dup++
		default:
			admitted++
		}
	}
	m.events.WithLabelValues("admitted").Add(float64(admitted))
	m.events.WithLabelValues("duplicate").Add(float64(dup))
	m.events.WithLabelValues("refused").Add(float64(refused))
}
