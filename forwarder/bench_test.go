package forwarder_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stele-dev/stele/forwarder"
)

// BenchmarkFiles measures events/s from a real log to the files sink.
func BenchmarkFiles(b *testing.B) {
	l := startLog(b)
	idx := l.appendAll(b, goldenEvents(b, 5000))
	total := slices.Max(idx) + 1
	b.ResetTimer()
	for range b.N {
		settings, _ := json.Marshal(forwarder.FilesConfig{Dir: b.TempDir()})
		cfg := l.config(b, b.TempDir(), forwarder.SinkConfig{Name: "files", Type: "files", Settings: settings})
		cfg.BatchSize = 1000
		cfg.FetchConcurrency = 32
		start := time.Now()
		f, stop := l.runForwarder(b, cfg)
		waitDelivered(b, f, total, 5*time.Minute)
		d := time.Since(start)
		stop()
		fmt.Printf("files: %d events in %s: %.0f events/s\n", total, d, float64(total)/d.Seconds())
	}
}
