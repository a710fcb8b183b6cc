package server_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/stele-dev/stele/internal/awstest"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
	"github.com/stele-dev/stele/server"
)

// BenchmarkIngestBackends measures Stele's full ingest path (gRPC over
// loopback, admission, dedup, payloads, Tessera) on the posix backend and on
// the aws backend (MariaDB + versitygw on loopback, from .ci/services), one
// after the other with the same load, and reports events/s and the median
// and 99th-percentile ack latency of each. The flags of
// BenchmarkIngestVsTessera set the load. Run it with:
//
//	source .ci/services && stele_services_start
//	go test ./server -run '^$' -bench IngestBackends -benchtime 1x -bench-events 20000
func BenchmarkIngestBackends(b *testing.B) {
	for range b.N {
		for _, backend := range []string{"posix", "aws"} {
			cfg := server.Config{CheckpointInterval: time.Second, BatchMaxSize: uint(*benchTBatch)}
			if backend == "aws" {
				env := awstest.New(b)
				cfg = awsConfig(env)
				cfg.BatchMaxSize = uint(*benchTBatch)
			}
			rate, p50, p99 := benchBackend(b, backend, cfg)
			b.ReportMetric(rate, backend+"-events/s")
			b.ReportMetric(float64(p50.Microseconds())/1000, backend+"-ack-p50-ms")
			b.ReportMetric(float64(p99.Microseconds())/1000, backend+"-ack-p99-ms")
			fmt.Printf("%-5s %8.0f events/s  ack p50 %6.1f ms  p99 %6.1f ms  (%d-byte events, %d producers x %d-event batches, %d events)\n",
				backend, rate, float64(p50.Microseconds())/1000, float64(p99.Microseconds())/1000, *benchSize, *benchProducers, *benchBatch, *benchEvents)
		}
	}
}

func benchBackend(b *testing.B, backend string, cfg server.Config) (float64, time.Duration, time.Duration) {
	ts := startServer(b, b.TempDir(), cfg)
	defer ts.stop(b)
	var mu sync.Mutex
	var lat []time.Duration
	var pushbacks atomic.Int64
	defer func() {
		if n := pushbacks.Load(); n > 0 {
			b.Logf("%s: %d events pushed back and resubmitted", backend, n)
		}
	}()
	run := time.Now().UnixNano()
	rate := produce(b, func(batch []int) error {
		evs := make([]*stelev1.Event, len(batch))
		for i, j := range batch {
			evs[i] = event("entra/bench/audit", fmt.Sprintf("b%d-%d", run, j), *benchSize)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		start := time.Now()
		for len(evs) > 0 {
			rs, err := ts.cli.Append(ctx, evs)
			if err != nil {
				return err
			}
			var again []*stelev1.Event
			for i, r := range rs {
				switch codes.Code(r.Code) {
				case codes.OK:
				case codes.ResourceExhausted:
					// Pushback: a producer backs off and resubmits.
					again = append(again, evs[i])
				default:
					return fmt.Errorf("refused: %s", r.Message)
				}
			}
			if len(again) > 0 {
				pushbacks.Add(int64(len(again)))
				time.Sleep(100 * time.Millisecond)
			}
			evs = again
		}
		d := time.Since(start)
		mu.Lock()
		lat = append(lat, d)
		mu.Unlock()
		return nil
	})
	slices.Sort(lat)
	if len(lat) == 0 {
		return rate, 0, 0
	}
	return rate, lat[len(lat)/2], lat[min(len(lat)-1, len(lat)*99/100)]
}
