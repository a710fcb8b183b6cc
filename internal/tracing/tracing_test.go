package tracing_test

import (
	"strings"
	"testing"

	"github.com/stele-dev/stele/internal/tracing"
)

// TestOffByDefault: without an endpoint, flag or OTEL_* variable, nothing
// is set up and gRPC is not instrumented.
func TestOffByDefault(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	stop, err := tracing.Setup(t.Context(), "", "test")
	if err != nil {
		t.Fatal(err)
	}
	defer stop(t.Context())
	if tracing.Enabled() || tracing.ServerOptions() != nil || tracing.DialOptions() != nil {
		t.Fatal("tracing is on without an endpoint")
	}
}

func TestSetupOnAndOff(t *testing.T) {
	stop, err := tracing.Setup(t.Context(), "http://127.0.0.1:4318", "test")
	if err != nil {
		t.Fatal(err)
	}
	if !tracing.Enabled() || len(tracing.ServerOptions()) != 1 || len(tracing.DialOptions()) != 1 {
		t.Fatal("tracing is off with an endpoint")
	}
	stop(t.Context())
	if tracing.Enabled() {
		t.Fatal("tracing is on after shutdown")
	}
}

func TestBadEndpoint(t *testing.T) {
	for _, e := range []string{"127.0.0.1:4318", "grpc://x:4317", "http://"} {
		if _, err := tracing.Setup(t.Context(), e, "test"); err == nil || !strings.Contains(err.Error(), "not an http(s) URL") {
			t.Errorf("%q: %v", e, err)
		}
	}
}
