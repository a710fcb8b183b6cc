package server_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
)

// TestBinaryExportsTesseraMetrics: the real stele-server's /metrics carries
// Tessera's own OpenTelemetry metrics (appends, integration latency,
// integrated size) next to Stele's and the build info.
func TestBinaryExportsTesseraMetrics(t *testing.T) {
	p := startProcess(t, t.TempDir())
	defer p.cli.Close()
	evs := make([]*stelev1.Event, 20)
	for i := range evs {
		evs[i] = event("entra/otel/audit", fmt.Sprintf("otel-%d", i), 400)
	}
	mustAppend(t, p.cli, evs)
	deadline := time.Now().Add(30 * time.Second)
	want := []string{"tessera_appender_add_calls_total", "tessera_appender_integrate_latency", "tessera_appender_integrated_size", "stele_append_events_total", "go_build_info"}
	for {
		resp, err := http.Get("http://" + p.httpAddr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var missing []string
		for _, w := range want {
			if !strings.Contains(string(body), w) {
				missing = append(missing, w)
			}
		}
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics lacks %v:\n%s", missing, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
