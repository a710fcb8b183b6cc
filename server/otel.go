package server

import (
	"fmt"

	"go.opentelemetry.io/otel"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// ExportOTelMetrics makes the process's OpenTelemetry metrics — Tessera's
// own: integration latency and batch sizes, witness requests and their
// duration, follower lag, POSIX operation times — appear on this server's
// /metrics next to Stele's, through OpenTelemetry's Prometheus exporter.
// Tessera records them on the global meter provider, so this sets it: call
// it once per process (stele-server does), not from a library that shares
// the process with other OpenTelemetry users.
func (s *Server) ExportOTelMetrics() error {
	exp, err := otelprom.New(otelprom.WithRegisterer(s.m.reg))
	if err != nil {
		return fmt.Errorf("OpenTelemetry Prometheus exporter: %w", err)
	}
	otel.SetMeterProvider(sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp)))
	return nil
}
