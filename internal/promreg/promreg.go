// Package promreg holds what the Prometheus metrics of Stele's components
// share: each keeps them on a registry of its own (so several can live in
// one process, as in tests) that also holds the Go runtime and process
// collectors, and serves it at GET /metrics.
package promreg

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// New returns a fresh registry holding the Go runtime and process
// collectors. Make a component's metrics with promauto.With(reg), which
// registers each as it is made: a metric is declared once, not also in a
// list to register.
func New() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Handler serves the metrics g gathers in the Prometheus exposition format.
func Handler(g prometheus.Gatherer) http.Handler {
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{})
}
