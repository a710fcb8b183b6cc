package forwarder_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/transparency-dev/tessera/api/layout"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/forwarder"
)

// nullSink confirms everything at once: the forwarder's read path alone.
type nullSink struct{}

func (nullSink) Deliver(context.Context, []*forwarder.Item) error { return nil }
func (nullSink) Idempotent() bool                                 { return true }
func (nullSink) Close() error                                     { return nil }

// BenchmarkSinks measures, for each sink, how fast the forwarder delivers
// a backlog of a real log (events/s, with the verification of every
// checkpoint, entry and payload included), then its lag behind the
// published checkpoint (p50, p99 seconds) while the log grows at half that
// rate. The machine is shared, so each rate is also printed as a ratio to
// a raw read of the same entries measured in the same run (entry bundles
// and level-0 tiles over HTTP, payloads over GetEvents, nothing verified),
// with the process's CPU time per event (the in-process log server and the
// sinks' local servers included); "null" is the forwarder with a sink that
// confirms at once (its read path alone). Last, with two real sinks or
// more, all of them run in one forwarder (sharing each entry's read and
// rendering): events/s to every sink and CPU time per event, as a ratio
// to the sum of the sinks' CPU times alone.
// Run it short:
//
//	go test ./forwarder -run '^$' -bench BenchmarkSinks -benchtime 1x
//
// STELE_BENCH_EVENTS sets the backlog (default 5000),
// STELE_BENCH_LAG_SECONDS how long the log grows per sink (default 5; 0
// skips the lag), STELE_BENCH_SINKS a comma-separated subset.
func BenchmarkSinks(b *testing.B) {
	n := 5000
	if v := envInt("STELE_BENCH_EVENTS"); v > 0 {
		n = v
	}
	lagFor := 5 * time.Second
	if v := os.Getenv("STELE_BENCH_LAG_SECONDS"); v != "" {
		lagFor = time.Duration(envInt("STELE_BENCH_LAG_SECONDS")) * time.Second
	}
	l := startLog(b)
	idx := l.appendAll(b, goldenEvents(b, n))
	total := slices.Max(idx) + 1
	// The in-process broker keeps its log segments in memory, each grown
	// by doubling and copying up to Kafka's default size (kfake: 100 MiB):
	// at 100 MiB those copies of the 20 KB records cost the process more
	// CPU than the forwarder itself. 1 MiB segments keep them small.
	k := startKafka(b, "bench", kfake.BrokerConfigs(map[string]string{"log.segment.bytes": strconv.Itoa(1 << 20)}))
	es := &bulkServer{apiKey: "a2V5", poison: 1 << 62, flaky: 1 << 62, tooBig: 1 << 30, docs: map[string]json.RawMessage{}}
	esURL, esCA := startHTTPS(b, es)
	h := &hec{token: "tok", poison: 1 << 62}
	hecURL, hecCA := startHTTPS(b, h)
	in := &ingestion{tenant: "t", clientID: "c", secret: "s", dcr: "dcr-1", stream: "Custom-SteleRecords"}
	inURL, inCA := startHTTPS(b, in)
	in.url = inURL
	set := func(v any) json.RawMessage { j, _ := json.Marshal(v); return j }
	sinks := []forwarder.SinkConfig{
		{Name: "null", Type: "null"},
		{Name: "files", Type: "files", Settings: set(map[string]any{"dir": b.TempDir()})},
		{Name: "kafka", Type: "kafka", Settings: set(map[string]any{"brokers": k.ListenAddrs(), "topic": "bench"})},
		{Name: "splunk", Type: "splunk", Settings: set(map[string]any{"url": hecURL, "token_file": writeSecret(b, "tok"), "tls": map[string]any{"ca_file": hecCA}})},
		{Name: "elasticsearch", Type: "elasticsearch", Settings: set(map[string]any{"url": esURL, "index": "b", "api_key_file": writeSecret(b, es.apiKey), "tls": map[string]any{"ca_file": esCA}})},
		{Name: "sentinel", Type: "sentinel", Settings: set(map[string]any{"endpoint": inURL, "dcr_immutable_id": "dcr-1", "tenant_id": "t", "client_id": "c",
			"client_secret_file": writeSecret(b, "s"), "authority_host": inURL + "/", "tls": map[string]any{"ca_file": inCA}})},
	}
	if only := os.Getenv("STELE_BENCH_SINKS"); only != "" {
		sinks = slices.DeleteFunc(sinks, func(sc forwarder.SinkConfig) bool { return !slices.Contains(strings.Split(only, ","), sc.Name) })
	}
	lg, err := client.NewTileLog(l.httpURL, l.verifier, nil)
	if err != nil {
		b.Fatal(err)
	}
	next := n // the next golden event to append
	b.ResetTimer()
	rawRead(b, l, lg, total) // warm the server's caches
	for range b.N {
		raw, rawCPU := rawRead(b, l, lg, total)
		fmt.Printf("raw read            %6d entries: %7.0f entries/s, %4.0f µs CPU each (bundles + level-0 tiles + GetEvents, nothing verified)\n",
			total, raw, float64(rawCPU.Microseconds()))
		cpuAlone := time.Duration(0) // the sum of the real sinks' CPU per event, each alone
		var real []forwarder.SinkConfig
		for _, sc := range sinks {
			state := b.TempDir()
			run := func() (*forwarder.Forwarder, func()) {
				cfg := l.config(b, state, sc)
				cfg.BatchSize, cfg.FetchConcurrency = 1000, 16
				cfg.PollInterval = forwarder.Duration(time.Second)
				if sc.Type == "null" {
					cfg.Sinks = nil
					return l.runForwarder(b, cfg, forwarder.NamedSink{Name: "null", Type: "null", Sink: nullSink{}})
				}
				return l.runForwarder(b, cfg)
			}
			size := l.size(b)
			c0 := cpuTime()
			start := time.Now()
			f, stop := run()
			waitNext(b, f, size, 10*time.Minute)
			d := time.Since(start)
			cpu := (cpuTime() - c0) / time.Duration(size)
			rate := float64(size) / d.Seconds()
			// The raw read again, right after: the machine's load moves.
			raw2, _ := rawRead(b, l, lg, total)
			fmt.Printf("sink %-13s %6d events in %6.2fs: %7.0f events/s = %.2f of the raw read (%.0f/s just after), %4.0f µs CPU each (%.1f× the raw read's)\n",
				sc.Name, size, d.Seconds(), rate, rate/((raw+raw2)/2), raw2, float64(cpu.Microseconds()), float64(cpu)/float64(rawCPU))
			if sc.Type != "null" {
				cpuAlone += cpu
				real = append(real, sc)
			}
			if lagFor == 0 {
				stop()
				continue
			}
			p50, p99, appended, err := measureLag(b, l, f, &next, rate/2, lagFor)
			stop()
			if err != nil {
				b.Fatalf("sink %s: %v", sc.Name, err)
			}
			fmt.Printf("sink %-13s lag at %5.0f events/s (asked %5.0f/s, %d events over %s, poll 1s): p50 %.2fs, p99 %.2fs behind the published checkpoint\n",
				sc.Name, float64(appended)/lagFor.Seconds(), rate/2, appended, lagFor, p50, p99)
		}
		if len(real) < 2 {
			continue
		}
		// All the real sinks in one forwarder: they share one read and
		// one rendering of each entry (the forwarder's item cache).
		cfg := l.config(b, b.TempDir(), real...)
		cfg.BatchSize, cfg.FetchConcurrency = 1000, 16
		cfg.PollInterval = forwarder.Duration(time.Second)
		size := l.size(b)
		c0 := cpuTime()
		start := time.Now()
		f, stop := l.runForwarder(b, cfg)
		deadline := time.Now().Add(10 * time.Minute)
		for {
			done := true
			for _, s := range f.Status().Sinks {
				if s.DeadLetter > 0 {
					b.Fatalf("%d records dead-lettered: %+v", s.DeadLetter, s)
				}
				done = done && s.Next >= size
			}
			if done {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("not delivered within 10 minutes: %+v", f.Status())
			}
			time.Sleep(5 * time.Millisecond)
		}
		d := time.Since(start)
		cpu := (cpuTime() - c0) / time.Duration(size)
		stop()
		fmt.Printf("all %d sinks at once %6d events in %6.2fs: %7.0f events/s to every sink, %4.0f µs CPU each (the sinks alone: %.0f µs in all, %.2f of it)\n",
			len(real), size, d.Seconds(), float64(size)/d.Seconds(), float64(cpu.Microseconds()), float64(cpuAlone.Microseconds()), float64(cpu)/float64(cpuAlone))
	}
}

// rawRead reads the first n entries the plainest way, in turn: their
// entry bundles and level-0 tiles over HTTP and their payloads over
// GetEvents (1,000 a call), nothing verified or rendered. It returns
// entries/s and the process's CPU time per entry.
func rawRead(b *testing.B, l *testLog, lg *client.TileLog, n uint64) (rate float64, cpu time.Duration) {
	ctx := context.Background()
	c0 := cpuTime()
	start := time.Now()
	for bi := uint64(0); bi*layout.EntryBundleWidth < n; bi++ {
		p := layout.PartialTileSize(0, bi, n)
		if _, err := lg.ReadEntryBundle(ctx, bi, p); err != nil {
			b.Fatal(err)
		}
		if _, err := lg.ReadTile(ctx, 0, bi, p); err != nil {
			b.Fatal(err)
		}
	}
	for i := uint64(0); i < n; {
		evs, err := l.cli.Events(ctx, i, int(min(1000, n-i)))
		if err != nil {
			b.Fatal(err)
		}
		i += uint64(len(evs))
	}
	return float64(n) / time.Since(start).Seconds(), (cpuTime() - c0) / time.Duration(n)
}

// cpuTime is the CPU time (user + system) the process used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// size is the log's published size.
func (l *testLog) size(b *testing.B) uint64 {
	raw, err := l.cli.Checkpoint(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	cp, err := client.ParseCheckpoint(raw, l.verifier)
	if err != nil {
		b.Fatal(err)
	}
	return cp.Size
}

func waitNext(b *testing.B, f *forwarder.Forwarder, n uint64, within time.Duration) {
	deadline := time.Now().Add(within)
	for f.Status().Sinks[0].Next < n {
		if d := f.Status().Sinks[0].DeadLetter; d > 0 {
			b.Fatalf("%d records dead-lettered: %+v", d, f.Status())
		}
		if time.Now().After(deadline) {
			b.Fatalf("not delivered within %s: %+v", within, f.Status())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// step is a time at which a size (a checkpoint's, a cursor's) was first
// seen.
type step struct {
	n uint64
	t time.Time
}

// firstAbove is the time of the first step whose n exceeds i.
func firstAbove(steps []step, i uint64) (time.Time, bool) {
	k, _ := slices.BinarySearchFunc(steps, i+1, func(s step, v uint64) int {
		if s.n < v {
			return -1
		}
		if s.n > v {
			return 1
		}
		return 0
	})
	if k == len(steps) {
		return time.Time{}, false
	}
	return steps[k].t, true
}

// measureLag appends events at rate for d while watching the published
// checkpoint and the sink's cursor (every 5 ms), waits until the sink
// confirmed them all, and returns the p50 and p99 of each event's time
// from its first published checkpoint to its confirmation.
func measureLag(b *testing.B, l *testLog, f *forwarder.Forwarder, next *int, rate float64, d time.Duration) (p50, p99 float64, appended int, err error) {
	from := l.size(b)
	waitNext(b, f, from, 10*time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	var pub, conf []step
	var wg sync.WaitGroup
	wg.Go(func() {
		for ctx.Err() == nil {
			now := time.Now()
			if raw, err := l.cli.Checkpoint(ctx); err == nil {
				if cp, err := client.ParseCheckpoint(raw, l.verifier); err == nil {
					mu.Lock()
					if len(pub) == 0 || cp.Size > pub[len(pub)-1].n {
						pub = append(pub, step{cp.Size, now})
					}
					mu.Unlock()
				}
			}
			if c := f.Status().Sinks[0].Next; len(conf) == 0 || c > conf[len(conf)-1].n {
				mu.Lock()
				conf = append(conf, step{c, now})
				mu.Unlock()
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
	// Append in ten slices a second.
	tick := time.NewTicker(100 * time.Millisecond)
	end := time.Now().Add(d)
	owed := 0.0
	for time.Now().Before(end) {
		<-tick.C
		owed += rate / 10
		k := int(owed)
		if k == 0 {
			continue
		}
		owed -= float64(k)
		if _, err := l.cli.Append(ctx, goldenEventsFrom(b, *next, k)); err != nil {
			tick.Stop()
			return 0, 0, 0, err
		}
		*next += k
		appended += k
	}
	tick.Stop()
	last := l.size(b)
	for to := time.Now().Add(2 * time.Minute); ; {
		if f.Status().Sinks[0].Next >= last {
			break
		}
		if time.Now().After(to) {
			return 0, 0, 0, fmt.Errorf("the sink did not catch up with %d within 2 minutes: %+v", last, f.Status())
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	cancel()
	wg.Wait()
	var lags []float64
	for i := from; i < last; i++ {
		tp, ok1 := firstAbove(pub, i)
		tc, ok2 := firstAbove(conf, i)
		if !ok1 || !ok2 {
			return 0, 0, 0, fmt.Errorf("entry %d: published %v, confirmed %v", i, ok1, ok2)
		}
		lags = append(lags, max(0, tc.Sub(tp).Seconds()))
	}
	if len(lags) == 0 {
		return 0, 0, 0, fmt.Errorf("no event appended")
	}
	slices.Sort(lags)
	return lags[len(lags)/2], lags[min(len(lags)-1, len(lags)*99/100)], appended, nil
}
