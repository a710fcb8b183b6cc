package witness_test

import (
	"bytes"
	"fmt"
	"net/http"
	"runtime"
	"sync/atomic"
	"testing"
)

// BenchmarkAddCheckpoint measures add-checkpoint requests/s over real HTTP
// on loopback with the durable store on disk: every cosignature is synced
// to disk before the reply. Each parallel client pushes its own log (a
// witness serves many logs), advancing one entry per request with a real
// consistency proof; past the precomputed span it re-sends the same size
// (a fresh cosignature, also synced).
func BenchmarkAddCheckpoint(b *testing.B) {
	const logs, span = 32, 2048
	type stream struct {
		bodies [][]byte
		same   []byte
		next   int
	}
	var tls []*testLog
	var streams []*stream
	for k := range logs {
		lg := newTestLog(b, fmt.Sprintf("example.com/bench%d", k))
		lg.grow(span)
		s := &stream{bodies: make([][]byte, span)}
		s.bodies[0] = lg.request(b, 0, 1)
		for i := 1; i < span; i++ {
			s.bodies[i] = lg.request(b, uint64(i), uint64(i+1))
		}
		s.same = lg.request(b, span, span)
		tls = append(tls, lg)
		streams = append(streams, s)
	}
	w := newTestWitness(b, tls...)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2 * logs}}
	var worker, ok atomic.Int64
	// At most one client per log: RunParallel starts p*GOMAXPROCS goroutines.
	b.SetParallelism(max(1, logs/runtime.GOMAXPROCS(0)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		k := int(worker.Add(1) - 1)
		s := streams[k]
		for pb.Next() {
			body := s.same
			if s.next < span {
				body = s.bodies[s.next]
			}
			resp, err := client.Post(w.srv.URL+"/add-checkpoint", "", bytes.NewReader(body))
			if err != nil {
				b.Error(err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("log %d request %d: status %d", k, s.next, resp.StatusCode)
				return
			}
			ok.Add(1)
			s.next++
		}
	})
	b.StopTimer()
	rps := float64(b.N) / b.Elapsed().Seconds()
	b.ReportMetric(rps, "req/s")
	if b.N > 1 {
		b.Logf("%d requests from %d clients, %.0f requests/s, all cosigned and synced", b.N, min(logs, int(worker.Load())), rps)
	}
}
