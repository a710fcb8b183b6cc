package server

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// witnessTransport measures every request Tessera makes to a witness.
type witnessTransport struct {
	base    http.RoundTripper
	latency *prometheus.HistogramVec
}

func (t witnessTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.base.RoundTrip(req)
	code := "error"
	if err == nil {
		code = strconv.Itoa(resp.StatusCode)
	}
	t.latency.WithLabelValues(req.URL.Host+req.URL.Path, code).Observe(time.Since(start).Seconds())
	return resp, err
}

// witnessClient is the HTTP client Tessera uses to reach witnesses.
func (s *Server) witnessClient() *http.Client {
	return &http.Client{
		Transport: witnessTransport{base: http.DefaultTransport, latency: s.m.witnessLatency},
		// Tessera bounds each round by the policy timeout; this is a backstop.
		Timeout: s.cfg.WitnessTimeout + 5*time.Second,
	}
}
