package mirror

import (
	"errors"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/stele-dev/stele/internal/promreg"
)

// metrics are the mirror's Prometheus metrics, on a registry of its own.
type metrics struct {
	reg     *prometheus.Registry
	size    prometheus.Gauge
	syncs   *prometheus.CounterVec
	lastOK  prometheus.Gauge
	fetched prometheus.Counter
	frozen  prometheus.Gauge
}

func newMetrics() *metrics {
	reg := promreg.New()
	f := promauto.With(reg)
	return &metrics{
		reg: reg,
		size: f.NewGauge(prometheus.GaugeOpts{
			Name: "stele_mirror_size",
			Help: "Size of the checkpoint mirrored (verified and written).",
		}),
		syncs: f.NewCounterVec(prometheus.CounterOpts{
			Name: "stele_mirror_syncs_total",
			Help: "Catch-ups, by outcome: ok, unreachable (retried), refused (the source showed something that does not verify; needs attention).",
		}, []string{"outcome"}),
		lastOK: f.NewGauge(prometheus.GaugeOpts{
			Name: "stele_mirror_last_success_timestamp_seconds",
			Help: "Unix time of the last catch-up that succeeded.",
		}),
		fetched: f.NewCounter(prometheus.CounterOpts{
			Name: "stele_mirror_resources_written_total",
			Help: "Tiles and entry bundles verified and written.",
		}),
		frozen: f.NewGauge(prometheus.GaugeOpts{
			Name: "stele_mirror_log_frozen",
			Help: "1 once the log is frozen and the copy holds its final checkpoint and freeze statement: the size stops moving by design.",
		}),
	}
}

func (m *metrics) observe(err error) {
	switch {
	case err == nil:
		m.syncs.WithLabelValues("ok").Inc()
		m.lastOK.Set(float64(time.Now().Unix()))
	case errors.Is(err, ErrVerification):
		m.syncs.WithLabelValues("refused").Inc()
	default:
		m.syncs.WithLabelValues("unreachable").Inc()
	}
}

// MetricsHandler serves the mirror's Prometheus metrics.
func (m *Mirror) MetricsHandler() http.Handler {
	return promreg.Handler(m.metrics.reg)
}
