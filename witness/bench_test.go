package witness_test

import (
	"bytes"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"
)

// BenchmarkAddCheckpoint measures add-checkpoint requests/s over real HTTP
// on loopback with the durable store on disk: every cosignature is synced
// to disk before the reply. Each of 32 clients pushes its own log (a
// witness serves many logs), advancing one entry per request with a real
// consistency proof; past the precomputed span it re-sends the same size
// (a fresh cosignature, also synced).
//
// Two witnesses run side by side, one cosigning with its Ed25519 key alone
// (as before ML-DSA-44) and one with both keys (every answer also carries
// an ML-DSA-44 cosignature). b.N requests go to each, in alternating
// rounds so a loaded machine slows both alike, and the ratio of the two
// rates is printed:
//
//	go test -run '^$' -bench AddCheckpoint -benchtime 2000x ./witness
func BenchmarkAddCheckpoint(b *testing.B) {
	const logs, span, rounds = 32, 2048, 8
	type stream struct {
		bodies [][]byte
		same   []byte
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
	type side struct {
		name    string
		w       *testWitness
		next    []int // per log
		elapsed time.Duration
		done    int
	}
	edOnly := newTestWitness(b, tls...)
	edOnly.Witness.UseEd25519OnlyForBenchmark()
	sides := []*side{
		{name: "ed25519", w: edOnly, next: make([]int, logs)},
		{name: "ed25519+mldsa44", w: newTestWitness(b, tls...), next: make([]int, logs)},
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2 * logs}}
	// run sends n requests to s's witness from one client per log.
	run := func(s *side, n int) {
		var wg sync.WaitGroup
		start := time.Now()
		for k := range logs {
			quota := n / logs
			if k < n%logs {
				quota++
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range quota {
					body := streams[k].same
					if s.next[k] < span {
						body = streams[k].bodies[s.next[k]]
					}
					resp, err := client.Post(s.w.srv.URL+"/add-checkpoint", "", bytes.NewReader(body))
					if err != nil {
						b.Error(err)
						return
					}
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						b.Errorf("%s log %d request %d: status %d", s.name, k, s.next[k], resp.StatusCode)
						return
					}
					s.next[k]++
				}
			}()
		}
		wg.Wait()
		s.elapsed += time.Since(start)
		s.done += n
	}
	b.ResetTimer()
	for r := range rounds {
		n := b.N / rounds
		if r < b.N%rounds {
			n++
		}
		for i := range sides {
			run(sides[(r+i)%2], n) // alternate which side goes first
		}
	}
	b.StopTimer()
	var rates [2]float64
	for i, s := range sides {
		rates[i] = float64(s.done) / s.elapsed.Seconds()
		b.ReportMetric(rates[i], s.name+"-req/s")
	}
	b.ReportMetric(rates[1]/rates[0], "ratio")
	if b.N > 1 {
		fmt.Printf("witness cosignatures (%d requests each, %d clients, all synced): %.0f req/s with Ed25519 alone, %.0f req/s with Ed25519 + ML-DSA-44: ratio %.2f\n",
			b.N, logs, rates[0], rates[1], rates[1]/rates[0])
	}
}
