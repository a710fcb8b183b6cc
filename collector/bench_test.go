package collector_test

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/collector"
	"github.com/stele-dev/stele/internal/cli"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
)

// ackClock records when each record (by id) was acknowledged.
type ackClock struct {
	mu   sync.Mutex
	at   map[string]time.Time
	done chan struct{}
	want int
}

func newAckClock(want int) *ackClock {
	return &ackClock{at: map[string]time.Time{}, done: make(chan struct{}), want: want}
}

func (a *ackClock) after(_ string, items []collector.Item) {
	now := time.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, it := range items {
		if it.Raw == nil {
			continue
		}
		var v struct {
			Properties struct{ ID string } `json:"properties"`
			ID         string              `json:"id"`
			UUID       string              `json:"uuid"`
			EventID    string              `json:"eventID"`
		}
		json.Unmarshal(it.Raw, &v)
		id := cmp.Or(v.Properties.ID, v.ID, v.UUID, v.EventID) // as idOf
		if _, ok := a.at[id]; !ok {
			a.at[id] = now
		}
	}
	if len(a.at) >= a.want && a.want > 0 {
		a.want = 0
		close(a.done)
	}
}

func (a *ackClock) wait(b *testing.B, d time.Duration) {
	select {
	case <-a.done:
	case <-time.After(d):
		b.Fatalf("not every record acknowledged within %s (%d)", d, len(a.at))
	}
}

// discard acknowledges every event at once, as a log would that admits
// without storing: the collector alone (reading, parsing, building
// events, the pipeline and its cursors) is measured with it.
type discard struct{ n atomic.Uint64 }

func (d *discard) Submit(_ context.Context, evs []*stelev1.Event) ([]client.SubmitResult, error) {
	out := make([]client.SubmitResult, len(evs))
	first := d.n.Add(uint64(len(evs))) - uint64(len(evs))
	for i := range out {
		out[i] = client.SubmitResult{Index: first + uint64(i), Attempts: 1}
	}
	return out, nil
}

func startBenchCollector(b *testing.B, cfgPath string, sub collector.Submitter, ack *ackClock) func() {
	cfg, err := collector.LoadConfig(cfgPath)
	if err != nil {
		b.Fatal(err)
	}
	c, err := collector.New(collector.Options{Config: cfg, Submitter: sub, Logger: quiet(), AfterBatch: ack.after})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	return func() { cancel(); <-done }
}

// latency reports p50 and p99 of ack time minus write time.
func latency(b *testing.B, written map[string]time.Time, ack *ackClock) (p50, p99 time.Duration) {
	ack.mu.Lock()
	defer ack.mu.Unlock()
	var ds []time.Duration
	for id, w := range written {
		if a, ok := ack.at[id]; ok {
			ds = append(ds, a.Sub(w))
		}
	}
	if len(ds) == 0 {
		b.Fatal("no latency samples")
	}
	slices.Sort(ds)
	return ds[len(ds)/2], ds[len(ds)*99/100]
}

// benchSource measures one source: events/s over a backlog of n records
// already written, then the latency of records written while it runs
// (rate per second for dur).
//
// In the same run, the collector reads the same backlog again (a fresh
// cursor; for Event Hubs a fresh consumer group) into a submitter that
// acknowledges everything at once: the collector's own ceiling. And
// `stele import` submits the same backlog records (from a file) to a fresh
// server. The ratios are what the numbers mean on a machine whose load
// varies: end to end against import (the server's admission), and the
// collector alone against end to end. importArgs are import's provider
// and tenant flag, e.g. "okta", "--org", host.
func benchSource(b *testing.B, name string, poll time.Duration, n int, backlog func(n int) map[string][]byte, live func() map[string]time.Time, cfg func(ts *testServer, state string) string, importArgs func() []string) {
	for range b.N {
		ts := startServer(b, b.TempDir(), "")
		recs := backlog(n)
		total := len(recs) // (the map may grow with the live records)
		ack := newAckClock(total)
		cfgPath := writeConfig(b, b.TempDir(), cfg(ts, b.TempDir()))
		start := time.Now()
		stop := startBenchCollector(b, cfgPath, &client.Submitter{Client: ts.cli}, ack)
		ack.wait(b, 5*time.Minute)
		el := time.Since(start)
		// Live: records written while the collector runs.
		ack.mu.Lock()
		ack.want, ack.done = len(ack.at)+1, make(chan struct{})
		ack.mu.Unlock()
		written := live()
		ack.mu.Lock()
		ack.want = len(ack.at) + len(written)
		if ack.want <= len(ack.at) {
			close(ack.done)
		}
		ack.mu.Unlock()
		ack.wait(b, 2*time.Minute)
		p50, p99 := latency(b, written, ack)
		stop()
		// The collector alone: everything there is now (backlog and live
		// records), from scratch, into discard.
		allNow := len(ack.at)
		own := newAckClock(allNow)
		ownCfg := strings.Replace(cfg(ts, b.TempDir()), `"consumer_group": "stele"`, `"consumer_group": "stele-own-rate"`, 1)
		start = time.Now()
		stop = startBenchCollector(b, writeConfig(b, b.TempDir(), ownCfg), &discard{}, own)
		own.wait(b, 5*time.Minute)
		ownEl := time.Since(start)
		stop()
		imp := importRate(b, recs, importArgs())
		rate := float64(total) / el.Seconds()
		ownRate := float64(allNow) / ownEl.Seconds()
		b.ReportMetric(rate, "events/s")
		b.ReportMetric(ownRate, "own-events/s")
		b.ReportMetric(rate/imp, "x-import")
		b.ReportMetric(float64(p50.Milliseconds()), "p50-ms")
		b.ReportMetric(float64(p99.Milliseconds()), "p99-ms")
		fmt.Fprintf(os.Stderr, "%s: %d backlog records in %s = %.0f events/s end to end; stele import of the same records: %.0f events/s (ratio %.2f); the collector alone (discarding submitter, %d records): %.0f events/s (%.1fx end to end); live latency (write to ack) p50 %s p99 %s with poll interval %s\n",
			name, total, el.Round(time.Millisecond), rate, imp, rate/imp, allNow, ownRate, ownRate/rate, p50.Round(time.Millisecond), p99.Round(time.Millisecond), poll)
	}
}

// importRate runs `stele import` (in process) of recs into a fresh server
// and returns its events/s.
func importRate(b *testing.B, recs map[string][]byte, args []string) float64 {
	ts := startServer(b, b.TempDir(), "")
	f := filepath.Join(b.TempDir(), "records.json")
	var buf bytes.Buffer
	for _, r := range recs {
		buf.Write(r)
		buf.WriteByte('\n')
	}
	if err := os.WriteFile(f, buf.Bytes(), 0o600); err != nil {
		b.Fatal(err)
	}
	argv := append([]string{"import"}, args[0])
	argv = append(argv, args[1:]...)
	argv = append(argv, "--server", ts.addr, "--format", "object", f)
	var out, errb bytes.Buffer
	start := time.Now()
	if code := cli.Main(argv, strings.NewReader(""), &out, &errb); code != 0 {
		b.Fatalf("stele %s: exit %d\n%s", strings.Join(argv, " "), code, errb.String())
	}
	el := time.Since(start)
	// (The checkpoint's size, not every event read back: reading them
	// would load the machine the other measurements share.)
	deadline := time.Now().Add(time.Minute)
	for logSize(b, ts.cli) < uint64(len(recs)) {
		if time.Now().After(deadline) {
			b.Fatalf("stele import: the log holds %d entries after a minute, want %d", logSize(b, ts.cli), len(recs))
		}
		time.Sleep(50 * time.Millisecond)
	}
	return float64(len(recs)) / el.Seconds()
}

// BenchmarkStorage: Azurite append blobs.
// go test ./collector -run '^$' -bench BenchmarkStorage -benchtime 1x
func BenchmarkStorage(b *testing.B) {
	az := startAzurite(b)
	var g *entraGen
	bl := newBlobs(b, az, "insights-logs-auditlogs", "insights-logs-signinlogs")
	poll := 500 * time.Millisecond
	name := ""
	backlog := func(n int) map[string][]byte {
		g = newEntraGen(b)
		name = hourBlob(g.tenant, time.Now())
		bl.create("insights-logs-auditlogs", name)
		out := map[string][]byte{}
		var buf bytes.Buffer
		for i := range n {
			id, rec := g.record("audit")
			out[id] = rec
			buf.Write(rec)
			buf.WriteByte('\n')
			if buf.Len() > 2<<20 || i == n-1 {
				bl.append("insights-logs-auditlogs", name, buf.Bytes())
				buf.Reset()
			}
		}
		return out
	}
	live := func() map[string]time.Time {
		w := map[string]time.Time{}
		for range 50 { // 5 s at 100 records per 100 ms
			var buf bytes.Buffer
			var ids []string
			for range 100 {
				id, rec := g.record("audit")
				ids = append(ids, id)
				buf.Write(rec)
				buf.WriteByte('\n')
			}
			bl.append("insights-logs-auditlogs", name, buf.Bytes())
			now := time.Now()
			for _, id := range ids {
				w[id] = now
			}
			time.Sleep(100 * time.Millisecond)
		}
		return w
	}
	benchSource(b, "entra_storage", poll, 20000, backlog, live, func(ts *testServer, state string) string {
		return strings.Replace(storageConfig(ts, state, az, g.tenant), `"poll_interval": "100ms"`, `"poll_interval": "`+poll.String()+`"`, 1)
	}, func() []string { return []string{"entra"} })
}

// BenchmarkEventHub: kfake with TLS and SASL PLAIN.
func BenchmarkEventHub(b *testing.B) {
	var h *eventHub
	backlog := func(n int) map[string][]byte {
		h = newEventHub(b)
		for left := n; left > 0; left -= 200 {
			h.message(b, min(left, 200))
		}
		return h.wanted
	}
	live := func() map[string]time.Time {
		w := map[string]time.Time{}
		for range 50 {
			seen := map[string]bool{}
			for id := range h.wanted {
				seen[id] = true
			}
			h.message(b, 100)
			now := time.Now()
			for id := range h.wanted {
				if !seen[id] {
					w[id] = now
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
		return w
	}
	benchSource(b, "entra_eventhub", 0, 20000, backlog, live, func(ts *testServer, state string) string { return ehConfig(ts, state, h) },
		func() []string { return []string{"entra"} })
}

// BenchmarkCloudTrail: versitygw.
func BenchmarkCloudTrail(b *testing.B) {
	env := newS3Env(b)
	var g *ctGen
	poll := 500 * time.Millisecond
	backlog := func(n int) map[string][]byte {
		g = newCTGen(b, env)
		for left := n; left > 0; left -= 500 {
			g.file(b, g.folders[left%len(g.folders)], time.Now().Add(-time.Hour), min(left, 500))
		}
		return g.wanted
	}
	live := func() map[string]time.Time {
		w := map[string]time.Time{}
		for i := range 50 {
			seen := map[string]bool{}
			for id := range g.wanted {
				seen[id] = true
			}
			g.file(b, g.folders[i%len(g.folders)], time.Now(), 100)
			now := time.Now()
			for id := range g.wanted {
				if !seen[id] {
					w[id] = now
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
		return w
	}
	benchSource(b, "cloudtrail_s3", poll, 20000, backlog, live, func(ts *testServer, state string) string {
		return strings.Replace(ctConfig(ts, state, env, g.prefix), `"poll_interval": "100ms"`, `"poll_interval": "`+poll.String()+`"`, 1)
	}, func() []string { return []string{"cloudtrail"} })
}

// liveIDs writes 100 records every 100 ms for 5 s with add and returns
// when each id was written.
func liveIDs(want func() map[string][]byte, add func()) map[string]time.Time {
	w := map[string]time.Time{}
	for range 50 {
		seen := want()
		add()
		now := time.Now()
		for id := range want() {
			if _, ok := seen[id]; !ok {
				w[id] = now
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return w
}

// BenchmarkGraph: the local Graph server, pages of 1000.
func BenchmarkGraph(b *testing.B) {
	var (
		e *graphEmu
		g *graphGen
	)
	poll := 500 * time.Millisecond
	backlog := func(n int) map[string][]byte {
		e = newGraphEmu(b)
		g = newGraphGen(b, e)
		g.add("directoryAudits", n/2, time.Now(), 20*time.Minute)
		g.add("signIns", n-n/2, time.Now(), 20*time.Minute)
		return g.want()
	}
	live := func() map[string]time.Time {
		return liveIDs(g.want, func() { g.add("signIns", 100, time.Now(), 0) })
	}
	benchSource(b, "entra_graph", poll, 20000, backlog, live, func(ts *testServer, state string) string {
		c := graphConfig(ts, state, e, `, "overlap": "1m"`)
		c = strings.Replace(c, `"poll_interval": "200ms", "window": "24h", "top": 50`, `"poll_interval": "`+poll.String()+`", "window": "1h", "top": 1000`, 1)
		return strings.Replace(c, `"listen": "-",`, `"listen": "-",`, 1)
	}, func() []string { return []string{"entra", "--tenant", e.tenant} })
}

// BenchmarkOkta: the local Okta org, pages of 1000.
func BenchmarkOkta(b *testing.B) {
	var (
		e *oktaEmu
		g *oktaGen
	)
	poll := 500 * time.Millisecond
	backlog := func(n int) map[string][]byte {
		e = newOktaEmu(b)
		g = newOktaGen(b, e)
		g.add(n)
		return g.want()
	}
	live := func() map[string]time.Time { return liveIDs(g.want, func() { g.add(100) }) }
	benchSource(b, "okta_systemlog", poll, 20000, backlog, live, func(ts *testServer, state string) string {
		return strings.Replace(oktaConfig(ts, state, e, "api_token"), `"limit": 100, "poll_interval": "200ms"`, `"limit": 1000, "poll_interval": "`+poll.String()+`"`, 1)
	}, func() []string { return []string{"okta", "--org", "example.okta.com"} })
}
