package forwarder_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stele-dev/stele/forwarder"
)

// BenchmarkSinks measures, for each sink, how fast the forwarder delivers
// a backlog of a real log (events/s, with the verification of every
// checkpoint, entry and payload included) and the largest lag it showed
// (entries, seconds). Run it short:
//
//	go test ./forwarder -run '^$' -bench BenchmarkSinks -benchtime 1x
//
// STELE_BENCH_EVENTS sets the backlog (default 5000).
func BenchmarkSinks(b *testing.B) {
	n := 5000
	if v := envInt("STELE_BENCH_EVENTS"); v > 0 {
		n = v
	}
	l := startLog(b)
	idx := l.appendAll(b, goldenEvents(b, n))
	total := slices.Max(idx) + 1
	k := startKafka(b, "bench")
	es := &bulkServer{apiKey: "a2V5", poison: 1 << 62, flaky: 1 << 62, tooBig: 1 << 30, docs: map[string]json.RawMessage{}}
	esURL, esCA := startHTTPS(b, es)
	h := &hec{token: "tok", poison: 1 << 62}
	hecURL, hecCA := startHTTPS(b, h)
	in := &ingestion{tenant: "t", clientID: "c", secret: "s", dcr: "dcr-1", stream: "Custom-SteleRecords"}
	inURL, inCA := startHTTPS(b, in)
	in.url = inURL
	set := func(v any) json.RawMessage { j, _ := json.Marshal(v); return j }
	sinks := []forwarder.SinkConfig{
		{Name: "files", Type: "files", Settings: set(map[string]any{"dir": b.TempDir()})},
		{Name: "kafka", Type: "kafka", Settings: set(map[string]any{"brokers": k.ListenAddrs(), "topic": "bench"})},
		{Name: "splunk", Type: "splunk", Settings: set(map[string]any{"url": hecURL, "token_file": writeSecret(b, "tok"), "tls": map[string]any{"ca_file": hecCA}})},
		{Name: "elasticsearch", Type: "elasticsearch", Settings: set(map[string]any{"url": esURL, "index": "b", "api_key_file": writeSecret(b, es.apiKey), "tls": map[string]any{"ca_file": esCA}})},
		{Name: "sentinel", Type: "sentinel", Settings: set(map[string]any{"endpoint": inURL, "dcr_immutable_id": "dcr-1", "tenant_id": "t", "client_id": "c",
			"client_secret_file": writeSecret(b, "s"), "authority_host": inURL + "/", "tls": map[string]any{"ca_file": inCA}})},
	}
	b.ResetTimer()
	for range b.N {
		for _, sc := range sinks {
			cfg := l.config(b, b.TempDir(), sc)
			cfg.BatchSize, cfg.FetchConcurrency = 1000, 32
			start := time.Now()
			f, stop := l.runForwarder(b, cfg)
			var maxEntries uint64
			var maxSecs float64
			for {
				s := f.Status().Sinks[0]
				maxEntries, maxSecs = max(maxEntries, s.LagEntries), max(maxSecs, s.LagSeconds)
				if s.Next >= total {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			d := time.Since(start)
			stop()
			fmt.Printf("sink %-13s %6d events in %7.2fs: %7.0f events/s; max lag %d entries, %.1fs\n", sc.Name, total, d.Seconds(), float64(total)/d.Seconds(), maxEntries, maxSecs)
		}
	}
}
