package server_test

import (
	"context"
	"flag"
	"fmt"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"crypto/rand"
	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/storage/posix"
	"golang.org/x/mod/sumdb/note"

	"github.com/stele-dev/stele/client"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
	"github.com/stele-dev/stele/server"
)

var (
	benchEvents    = flag.Int("bench-events", 40000, "events per side per round in BenchmarkIngestVsTessera")
	benchRounds    = flag.Int("bench-rounds", 3, "rounds in BenchmarkIngestVsTessera; medians are reported")
	benchProducers = flag.Int("bench-producers", 8, "concurrent producers")
	benchBatch     = flag.Int("bench-batch", 250, "events per batch")
	benchSize      = flag.Int("bench-size", 1024, "bytes per raw record")
	benchTBatch    = flag.Int("bench-tessera-batch", 1024, "Tessera batch max size, both sides")
	benchSides     = flag.String("bench-sides", "both", "which side to run: both, tessera or stele (profiling)")
)

// BenchmarkIngestVsTessera measures, in one run and on one disk, raw Tessera
// POSIX appends of 1 KiB records against Stele's full path (gRPC over
// loopback, admission, dedup, payload store, Tessera), and reports both
// rates and their ratio (medians over the rounds). Run it with:
//
//	go test ./server -run '^$' -bench IngestVsTessera -benchtime 1x
func BenchmarkIngestVsTessera(b *testing.B) {
	var tess, stele []float64
	for range b.N {
		for round := range *benchRounds {
			var t1, s1 float64
			if *benchSides != "stele" {
				t1 = benchTessera(b, round)
			}
			if *benchSides != "tessera" {
				s1 = benchStele(b, round)
			}
			tess = append(tess, t1)
			stele = append(stele, s1)
			b.Logf("round %d: tessera %.0f events/s, stele %.0f events/s, ratio %.3f", round, t1, s1, s1/t1)
		}
	}
	mt, ms := median(tess), median(stele)
	b.ReportMetric(mt, "tessera-events/s")
	b.ReportMetric(ms, "stele-events/s")
	b.ReportMetric(ms/mt, "ratio")
	fmt.Printf("ingest of %d-byte events, %d producers x %d-event batches, %d events per side, %d rounds (medians):\n", *benchSize, *benchProducers, *benchBatch, *benchEvents, *benchRounds)
	fmt.Printf("  raw tessera posix  %10.0f events/s\n  stele over gRPC    %10.0f events/s\n  ratio stele/raw    %10.3f\n", mt, ms, ms/mt)
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

// produce runs the producers over batches of indexes and returns events/s.
func produce(b *testing.B, send func(batch []int) error) float64 {
	n, per := *benchEvents, *benchBatch
	work := make(chan []int)
	go func() {
		for i := 0; i < n; i += per {
			batch := make([]int, 0, per)
			for j := i; j < min(i+per, n); j++ {
				batch = append(batch, j)
			}
			work <- batch
		}
		close(work)
	}()
	start := time.Now()
	var wg sync.WaitGroup
	for range *benchProducers {
		wg.Go(func() {
			for batch := range work {
				if err := send(batch); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	return float64(n) / time.Since(start).Seconds()
}

func benchTessera(b *testing.B, round int) float64 {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	skey, _, err := note.GenerateKey(rand.Reader, "bench.example/tessera")
	if err != nil {
		b.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		b.Fatal(err)
	}
	d, err := posix.New(ctx, posix.Config{Path: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	// The same Tessera options the server uses by default.
	opts := tessera.NewAppendOptions().WithCheckpointSigner(signer).
		WithCheckpointInterval(time.Second).WithBatching(uint(*benchTBatch), 50*time.Millisecond)
	a, shutdown, _, err := tessera.NewAppender(ctx, d, opts)
	if err != nil {
		b.Fatal(err)
	}
	defer shutdown(ctx)
	cpu0 := cpuSeconds()
	defer func() {
		b.Logf("tessera: %.3f CPU seconds per 1000 events", (cpuSeconds()-cpu0)*1000/float64(*benchEvents))
	}()
	rate := produce(b, func(batch []int) error {
		fs := make([]tessera.IndexFuture, len(batch))
		for i, j := range batch {
			fs[i] = a.Add(ctx, tessera.NewEntry(record(fmt.Sprintf("t%d-%d", round, j), *benchSize)))
		}
		for _, f := range fs {
			if _, err := f(); err != nil {
				return err
			}
		}
		return nil
	})
	return rate
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func benchStele(b *testing.B, round int) float64 {
	ts := startServer(b, b.TempDir(), server.Config{CheckpointInterval: time.Second, BatchMaxSize: uint(*benchTBatch)})
	defer ts.stop(b)
	cpu0 := cpuSeconds()
	defer func() {
		b.Logf("stele: %.3f CPU seconds per 1000 events (server and producers together)", (cpuSeconds()-cpu0)*1000/float64(*benchEvents))
	}()
	return produce(b, func(batch []int) error {
		evs := make([]*stelev1.Event, len(batch))
		for i, j := range batch {
			evs[i] = event("entra/bench/audit", fmt.Sprintf("s%d-%d", round, j), *benchSize)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		rs, err := ts.cli.Append(ctx, evs)
		if err != nil {
			return err
		}
		for _, r := range rs {
			if r.Code != 0 {
				return fmt.Errorf("refused: %s", r.Message)
			}
		}
		return nil
	})
}

// proofBenchLog is a server holding an n-entry log, for the proof
// benchmarks, once a checkpoint covers all of it.
func proofBenchLog(b *testing.B, n uint64) *testServer {
	ts := startServer(b, b.TempDir(), server.Config{})
	for i := uint64(0); i < n; i += 500 {
		evs := make([]*stelev1.Event, 500)
		for j := range evs {
			evs[j] = event("entra/proofs/audit", fmt.Sprintf("p-%d", i+uint64(j)), 300)
		}
		mustAppend(b, ts.cli, evs)
	}
	for {
		raw, err := ts.cli.Checkpoint(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		cp, err := client.ParseCheckpoint(raw, ts.verifier)
		if err != nil {
			b.Fatal(err)
		}
		if cp.Size >= n {
			return ts
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// BenchmarkGetInclusionProof serves inclusion proofs for random indexes of
// a 10,000-entry log over real gRPC on loopback, from parallel callers (the
// server and the callers share this process: profile with -cpuprofile).
//
//	go test ./server -run '^$' -bench GetInclusionProof -cpuprofile cpu.prof
func BenchmarkGetInclusionProof(b *testing.B) {
	const n = 10000
	ts := proofBenchLog(b, n)
	ctx := context.Background()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := uint64(0)
		for pb.Next() {
			i = (i*2654435761 + 12345) % n
			if _, err := ts.cli.Log.GetInclusionProof(ctx, &stelev1.GetInclusionProofRequest{Leaf: &stelev1.GetInclusionProofRequest_Index{Index: i}, TreeSize: n}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "proofs/s")
}

// BenchmarkGetInclusionProofs is BenchmarkGetInclusionProof with the batch
// RPC: each operation is one GetInclusionProofs call for 100 random
// indexes of the same log; proofs/s counts proofs, not calls.
//
//	go test ./server -run '^$' -bench 'GetInclusionProofs?$'
func BenchmarkGetInclusionProofs(b *testing.B) {
	const n, batch = 10000, 100
	ts := proofBenchLog(b, n)
	ctx := context.Background()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := uint64(0)
		req := &stelev1.GetInclusionProofsRequest{Indexes: make([]uint64, batch), TreeSize: n}
		for pb.Next() {
			for j := range req.Indexes {
				i = (i*2654435761 + 12345) % n
				req.Indexes[j] = i
			}
			resp, err := ts.cli.Log.GetInclusionProofs(ctx, req)
			if err != nil {
				b.Fatal(err)
			}
			if len(resp.Proofs) != batch {
				b.Fatalf("%d proofs for %d indexes", len(resp.Proofs), batch)
			}
		}
	})
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "proofs/s")
}
