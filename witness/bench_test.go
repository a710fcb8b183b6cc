package witness

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"sync"
	"syscall"
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
// rates is printed. Clients read each answer to the end and keep their
// connections, as Tessera's witness client does.
//
// The process's CPU time (user + system, getrusage) is measured over each
// side's rounds too: CPU per request is what the loaded machine does not
// distort much, and GOMAXPROCS / (CPU per request) is the rate this
// process would reach with its cores to itself. The clients run in the
// same process, so that CPU includes theirs: the real capacity is higher.
//
//	go test -run '^$' -bench AddCheckpoint -benchtime 3000x ./witness
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
		cpu     time.Duration
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
		cpu0 := processCPU(b)
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
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err != nil {
						b.Error(err)
						return
					}
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
		s.cpu += processCPU(b) - cpu0
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
	var rates, cpus, caps [2]float64
	procs := float64(runtime.GOMAXPROCS(0))
	for i, s := range sides {
		rates[i] = float64(s.done) / s.elapsed.Seconds()
		cpus[i] = float64(s.cpu.Microseconds()) / float64(s.done)
		caps[i] = procs * 1e6 / cpus[i]
		b.ReportMetric(rates[i], s.name+"-req/s")
		b.ReportMetric(cpus[i], s.name+"-cpu-µs/req")
	}
	b.ReportMetric(rates[1]/rates[0], "ratio")
	if b.N > 1 {
		fmt.Printf("witness cosignatures (%d requests each, %d clients, all synced): %.0f req/s with Ed25519 alone, %.0f req/s with Ed25519 + ML-DSA-44: ratio %.2f\n",
			b.N, logs, rates[0], rates[1], rates[1]/rates[0])
		fmt.Printf("CPU per request (witness and clients, one process): %.0f µs Ed25519 alone, %.0f µs both: %.0f and %.0f req/s on %d cores to itself; ratio %.2f\n",
			cpus[0], cpus[1], caps[0], caps[1], int(procs), caps[1]/caps[0])
	}
}

// processCPU is the CPU time (user + system) this process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
