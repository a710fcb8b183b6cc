// Package bench measures Stele's ingest against raw Tessera on the same
// machine and disk: events/s, acknowledgement and receipt latency, CPU per
// event and peak memory of the server process. cmd/stele-bench wires it up.
package bench

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/storage/posix"
	antispam "github.com/transparency-dev/tessera/storage/posix/antispam"
	"golang.org/x/mod/sumdb/note"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stele-dev/stele/client"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
)

// Config says what to measure. Zero values take the defaults in brackets.
type Config struct {
	Events    int           `json:"events"`              // events per side [40000]
	Producers int           `json:"producers"`           // concurrent producers [8]
	Batch     int           `json:"batch"`               // events per batch [250]
	Size      int           `json:"record_bytes"`        // bytes per raw record [1024]
	Rate      float64       `json:"open_loop_rate"`      // open loop: batches are started at this many events/s; 0 = closed loop
	Receipts  int           `json:"receipt_samples"`     // events whose submit-to-verified-receipt latency is sampled [200]
	Dir       string        `json:"dir"`                 // scratch directory on the disk under test [os.TempDir()]
	Server    string        `json:"server_binary"`       // path of the stele-server binary [next to this program, then $PATH]
	Interval  time.Duration `json:"checkpoint_interval"` // checkpoint interval of both sides [1s]
	Witnesses int           `json:"witnesses"`           // local stele-witness processes the server needs all of to cosign [0]
	Witness   string        `json:"witness_binary"`      // path of the stele-witness binary [next to this program, then $PATH]
	CLI       string        `json:"cli_binary"`          // path of the stele binary, for the CLI side [next to this program, then $PATH]
	Backend   string        `json:"backend"`             // storage backend of the server: posix, or aws on the MariaDB and versitygw of .ci/services [posix]
	// Load, when set, adds an open-loop pass on a fresh server at this
	// fraction of the closed-loop Stele rate just measured (0.5: "ack
	// latency at half the maximum rate").
	Load float64 `json:"load_fraction,omitempty"`
}

func (c *Config) defaults() {
	if c.Events == 0 {
		c.Events = 40000
	}
	if c.Producers == 0 {
		c.Producers = 8
	}
	if c.Batch == 0 {
		c.Batch = 250
	}
	if c.Size == 0 {
		c.Size = 1024
	}
	if c.Receipts == 0 {
		c.Receipts = 200
	}
	if c.Dir == "" {
		c.Dir = os.TempDir()
	}
	if c.Interval == 0 {
		c.Interval = time.Second
	}
	if c.Backend == "" {
		c.Backend = BackendPOSIX
	}
}

// Latency summarises a latency distribution in milliseconds.
type Latency struct {
	P50  float64 `json:"p50_ms"`
	P99  float64 `json:"p99_ms"`
	P999 float64 `json:"p999_ms"`
	N    int     `json:"samples"`
}

func summarise(ds []time.Duration) Latency {
	if len(ds) == 0 {
		return Latency{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	q := func(p float64) float64 {
		i := min(int(p*float64(len(s))), len(s)-1)
		return float64(s[i].Microseconds()) / 1000
	}
	return Latency{P50: q(0.50), P99: q(0.99), P999: q(0.999), N: len(s)}
}

// Side is the result for one side of the comparison.
type Side struct {
	EventsPerSec     float64 `json:"events_per_sec"`
	Ack              Latency `json:"ack_latency"`
	Receipt          Latency `json:"receipt_latency,omitempty"`
	CPUSecPer1000    float64 `json:"cpu_seconds_per_1000_events"`
	PeakRSSMiB       float64 `json:"peak_rss_mib"`
	SecondsElapsed   float64 `json:"seconds"`
	EventsAdmitted   int     `json:"events"`
	CPUMeasuredScope string  `json:"cpu_scope"`
	// Pushbacks counts adds Tessera refused with ErrPushback (and the
	// producer retried).
	Pushbacks int64 `json:"pushbacks,omitempty"`
}

// Read is the read side, measured on the log Stele just ingested.
type Read struct {
	// InclusionProofsPerSec: GetInclusionProof for random indexes over gRPC,
	// each verified against the checkpoint.
	InclusionProofsPerSec float64 `json:"inclusion_proofs_per_sec"`
	// ServerCPUPerProofUS and ClientCPUPerProofUS: CPU microseconds per
	// verified proof spent by the server process and by this (client)
	// process, to show where a proof's cost is.
	ServerCPUPerProofUS float64 `json:"server_cpu_us_per_proof"`
	ClientCPUPerProofUS float64 `json:"client_cpu_us_per_proof"`
	// BatchedProofsPerSec: the same, with GetInclusionProofs asking for
	// ProofsPerCall random indexes per call, every proof verified; and the
	// CPU microseconds per verified proof of each side then.
	ProofsPerCall              int     `json:"batched_proofs_per_call"`
	BatchedProofsPerSec        float64 `json:"batched_inclusion_proofs_per_sec"`
	BatchedServerCPUPerProofUS float64 `json:"batched_server_cpu_us_per_proof"`
	BatchedClientCPUPerProofUS float64 `json:"batched_client_cpu_us_per_proof"`
	// EntriesMBPerSec: entry bundles read over the tlog-tiles HTTP API.
	EntriesMBPerSec float64 `json:"entries_mb_per_sec"`
}

// Result is one run.
type Result struct {
	Config  Config `json:"config"`
	Tessera Side   `json:"raw_tessera"`
	// Antispam is Tessera with its own dedup (in-memory + Badger index).
	Antispam Side    `json:"tessera_antispam"`
	Stele    Side    `json:"stele"`
	Ratio    float64 `json:"ratio_stele_over_tessera"`
	// RatioAntispam is Stele.EventsPerSec / Antispam.EventsPerSec.
	RatioAntispam float64 `json:"ratio_stele_over_tessera_antispam"`
	Read          Read    `json:"read"`
	Audit         Audit   `json:"audit"`
	// AtLoad is Stele in open loop at Config.Load times Stele.EventsPerSec
	// (OfferedRate), when Config.Load is set.
	AtLoad      *Side   `json:"at_load,omitempty"`
	OfferedRate float64 `json:"offered_rate,omitempty"`
	// CLIEventsPerSec is `stele submit` of the same events from a JSON
	// Lines file against a fresh server, and CLIRatio that over
	// Stele.EventsPerSec (the target is at least 0.8).
	CLIEventsPerSec float64 `json:"cli_submit_events_per_sec"`
	CLIRatio        float64 `json:"ratio_cli_over_stele"`
}

// record makes a realistic Entra directoryAudit record of about size bytes.
func record(id string, size int) []byte {
	base := fmt.Sprintf(`{"id":%q,"category":"RoleManagement","correlationId":"c0ffee00-0000-4000-8000-000000000000","result":"success","activityDisplayName":"Add member to role","activityDateTime":"2026-11-25T10:00:00.1234567Z","loggedByService":"Core Directory","operationType":"Assign","initiatedBy":{"user":{"id":"8f1c0000-0000-4000-8000-000000000001","userPrincipalName":"admin@contoso.example","ipAddress":"203.0.113.7"}},"targetResources":[{"id":"9a2d0000-0000-4000-8000-000000000002","type":"User","userPrincipalName":"bob@contoso.example","modifiedProperties":[{"displayName":"Role.DisplayName","oldValue":null,"newValue":"\"Global Administrator\""}]}],"additionalDetails":[],"pad":"`, id)
	b := make([]byte, 0, max(size, len(base)+2))
	b = append(b, base...)
	for len(b) < size-2 {
		b = append(b, 'x')
	}
	return append(b, '"', '}')
}

// drive runs cfg.Producers producers over all events, calling send for each
// batch of event numbers, and returns events/s and per-batch latencies. In
// open-loop mode batches start on a fixed schedule, whatever the latency.
func drive(cfg Config, send func(batch []int) error) (float64, []time.Duration, error) {
	type job struct {
		batch []int
		due   time.Time
	}
	work := make(chan job, cfg.Producers)
	start := time.Now()
	go func() {
		defer close(work)
		next := start
		for i := 0; i < cfg.Events; i += cfg.Batch {
			batch := make([]int, 0, cfg.Batch)
			for j := i; j < min(i+cfg.Batch, cfg.Events); j++ {
				batch = append(batch, j)
			}
			if cfg.Rate > 0 {
				time.Sleep(time.Until(next))
				work <- job{batch, next}
				next = next.Add(time.Duration(float64(len(batch)) / cfg.Rate * float64(time.Second)))
				continue
			}
			work <- job{batch, time.Time{}}
		}
	}()
	var mu sync.Mutex
	var lat []time.Duration
	var firstErr error
	var wg sync.WaitGroup
	for range cfg.Producers {
		wg.Go(func() {
			for j := range work {
				t0 := time.Now()
				if !j.due.IsZero() {
					t0 = j.due // open loop: count queueing delay too
				}
				err := send(j.batch)
				d := time.Since(t0)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				lat = append(lat, d)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return float64(cfg.Events) / time.Since(start).Seconds(), lat, firstErr
}

// rawTessera appends the same records with Tessera's POSIX driver in this
// process, with the options stele-server uses by default. With antispam it
// adds Tessera's own deduplication, as a user building on Tessera would:
// its in-memory dedup of recent entries (DefaultAntispamInMemorySize) in
// front of the persistent Badger index of every entry's identity hash
// (storage/posix/antispam), which a follower fills from the integrated
// log. Adds refused with ErrPushback (the follower too far behind) are
// counted and retried together after a short pause, as a producer would.
func rawTessera(ctx context.Context, cfg Config, withAntispam bool) (Side, error) {
	dir, err := os.MkdirTemp(cfg.Dir, "stele-bench-tessera-")
	if err != nil {
		return Side{}, err
	}
	defer os.RemoveAll(dir)
	skey, _, err := note.GenerateKey(rand.Reader, "bench.localhost/tessera")
	if err != nil {
		return Side{}, err
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		return Side{}, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	d, err := posix.New(ctx, posix.Config{Path: dir})
	if err != nil {
		return Side{}, err
	}
	opts := tessera.NewAppendOptions().WithCheckpointSigner(signer).
		WithCheckpointInterval(cfg.Interval).WithBatching(1024, 50*time.Millisecond)
	scope := "benchmark process (Tessera and producers)"
	if withAntispam {
		as, err := antispam.NewAntispam(ctx, filepath.Join(dir, ".state", "antispam"), antispam.AntispamOpts{})
		if err != nil {
			return Side{}, err
		}
		opts.WithAntispam(tessera.DefaultAntispamInMemorySize, as)
		scope = "benchmark process (Tessera, its antispam and producers)"
	}
	a, shutdown, _, err := tessera.NewAppender(ctx, d, opts)
	if err != nil {
		return Side{}, err
	}
	defer shutdown(ctx)
	var pushbacks atomic.Int64
	cpu0 := selfCPU()
	t0 := time.Now()
	rate, lat, err := drive(cfg, func(batch []int) error {
		es := make([]*tessera.Entry, len(batch))
		for i, j := range batch {
			es[i] = tessera.NewEntry(record(fmt.Sprintf("t-%d", j), cfg.Size))
		}
		// Add the batch; re-add together, after a pause, what was pushed back.
		for len(es) > 0 {
			fs := make([]tessera.IndexFuture, len(es))
			for i, e := range es {
				fs[i] = a.Add(ctx, e)
			}
			var again []*tessera.Entry
			for i, f := range fs {
				if _, err := f(); errors.Is(err, tessera.ErrPushback) {
					again = append(again, es[i])
				} else if err != nil {
					return err
				}
			}
			if es = again; len(es) > 0 {
				pushbacks.Add(int64(len(es)))
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(10 * time.Millisecond):
				}
			}
		}
		return nil
	})
	if err != nil {
		return Side{}, err
	}
	elapsed := time.Since(t0)
	cpu := selfCPU() - cpu0
	if withAntispam {
		// The side must be what it claims: a resubmitted entry is a dup.
		idx, err := a.Add(ctx, tessera.NewEntry(record("t-0", cfg.Size)))()
		if err != nil || !idx.IsDup {
			return Side{}, fmt.Errorf("Tessera's antispam did not find a resubmitted entry: %+v, %v", idx, err)
		}
	}
	return Side{
		Pushbacks:    pushbacks.Load(),
		EventsPerSec: rate, Ack: summarise(lat),
		CPUSecPer1000:    cpu * 1000 / float64(cfg.Events),
		PeakRSSMiB:       selfPeakRSSMiB(),
		SecondsElapsed:   elapsed.Seconds(),
		EventsAdmitted:   cfg.Events,
		CPUMeasuredScope: scope,
	}, nil
}

// stele runs a real stele-server process and drives it over gRPC, then
// measures its read side.
func stele(ctx context.Context, cfg Config) (Side, Read, Audit, error) {
	srv, err := startServer(ctx, cfg)
	if err != nil {
		return Side{}, Read{}, Audit{}, err
	}
	defer srv.stop()
	side, err := steleIngest(ctx, cfg, srv)
	if err != nil {
		return Side{}, Read{}, Audit{}, err
	}
	read, err := readSide(ctx, cfg, srv)
	if err != nil {
		return Side{}, Read{}, Audit{}, fmt.Errorf("read side: %w", err)
	}
	au, err := auditSide(ctx, srv)
	if err != nil {
		return Side{}, Read{}, Audit{}, err
	}
	return side, read, au, nil
}

func steleIngest(ctx context.Context, cfg Config, srv *serverProc) (Side, error) {
	c, err := client.Dial(srv.grpcAddr)
	if err != nil {
		return Side{}, err
	}
	defer c.Close()
	v, err := note.NewVerifier(srv.vkey)
	if err != nil {
		return Side{}, err
	}

	every := max(cfg.Events/cfg.Receipts, 1)
	var rmu sync.Mutex
	var receipts []time.Duration
	var receiptErrs int
	var rwg sync.WaitGroup
	cpu0, err := procCPU(srv.pid())
	if err != nil {
		return Side{}, err
	}
	t0 := time.Now()
	rate, lat, err := drive(cfg, func(batch []int) error {
		evs := make([]*stelev1.Event, len(batch))
		for i, j := range batch {
			evs[i] = &stelev1.Event{
				Source: "entra/bench/audit", EventId: fmt.Sprintf("s-%d", j), Kind: "directory.role.member.add",
				EventTime: timestamppb.New(time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)),
				Format:    "entra.directoryAudit", Record: record(fmt.Sprintf("s-%d", j), cfg.Size),
			}
		}
		sent := time.Now()
		rctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		rs, err := c.Append(rctx, evs)
		if err != nil {
			return err
		}
		for i, r := range rs {
			if r.Code != 0 {
				return fmt.Errorf("event refused: %s", r.Message)
			}
			if batch[i]%every != 0 {
				continue
			}
			rwg.Go(func() {
				rctx, cancel := context.WithTimeout(ctx, time.Minute)
				defer cancel()
				raw, err := c.Receipt(rctx, r.Index)
				var rc *client.Receipt
				if err == nil {
					rc, err = client.VerifyReceipt(raw, v)
				}
				if err == nil && srv.policy != nil {
					err = srv.policy.Check(rc.Checkpoint)
				}
				if err != nil {
					rmu.Lock()
					receiptErrs++
					rmu.Unlock()
					return
				}
				rmu.Lock()
				receipts = append(receipts, time.Since(sent))
				rmu.Unlock()
			})
		}
		return nil
	})
	if err != nil {
		return Side{}, err
	}
	elapsed := time.Since(t0)
	cpu1, err := procCPU(srv.pid())
	if err != nil {
		return Side{}, err
	}
	rwg.Wait()
	if receiptErrs > 0 {
		return Side{}, fmt.Errorf("%d of %d sampled receipts did not arrive or did not verify", receiptErrs, receiptErrs+len(receipts))
	}
	rss, err := procPeakRSSMiB(srv.pid())
	if err != nil {
		return Side{}, err
	}
	return Side{
		EventsPerSec: rate, Ack: summarise(lat), Receipt: summarise(receipts),
		CPUSecPer1000:    (cpu1 - cpu0) * 1000 / float64(cfg.Events),
		PeakRSSMiB:       rss,
		SecondsElapsed:   elapsed.Seconds(),
		EventsAdmitted:   cfg.Events,
		CPUMeasuredScope: "stele-server process only",
	}, nil
}

// Median is the per-metric median of several runs' results.
func Median(rs []*Result) *Result {
	if len(rs) == 0 {
		return nil
	}
	med := func(f func(*Result) float64) float64 {
		xs := make([]float64, len(rs))
		for i, r := range rs {
			xs[i] = f(r)
		}
		slices.Sort(xs)
		return xs[len(xs)/2]
	}
	m := *rs[0]
	m.Tessera.EventsPerSec = med(func(r *Result) float64 { return r.Tessera.EventsPerSec })
	m.Stele.EventsPerSec = med(func(r *Result) float64 { return r.Stele.EventsPerSec })
	m.Ratio = med(func(r *Result) float64 { return r.Ratio })
	m.RatioAntispam = med(func(r *Result) float64 { return r.RatioAntispam })
	m.Antispam.EventsPerSec = med(func(r *Result) float64 { return r.Antispam.EventsPerSec })
	m.Antispam.Ack.P50 = med(func(r *Result) float64 { return r.Antispam.Ack.P50 })
	m.Antispam.Ack.P99 = med(func(r *Result) float64 { return r.Antispam.Ack.P99 })
	m.Antispam.Ack.P999 = med(func(r *Result) float64 { return r.Antispam.Ack.P999 })
	m.Antispam.CPUSecPer1000 = med(func(r *Result) float64 { return r.Antispam.CPUSecPer1000 })
	m.Antispam.PeakRSSMiB = med(func(r *Result) float64 { return r.Antispam.PeakRSSMiB })
	m.Antispam.Pushbacks = int64(med(func(r *Result) float64 { return float64(r.Antispam.Pushbacks) }))
	m.CLIEventsPerSec = med(func(r *Result) float64 { return r.CLIEventsPerSec })
	m.CLIRatio = med(func(r *Result) float64 { return r.CLIRatio })
	m.Tessera.Ack.P50 = med(func(r *Result) float64 { return r.Tessera.Ack.P50 })
	m.Tessera.Ack.P99 = med(func(r *Result) float64 { return r.Tessera.Ack.P99 })
	m.Tessera.Ack.P999 = med(func(r *Result) float64 { return r.Tessera.Ack.P999 })
	m.Stele.Ack.P50 = med(func(r *Result) float64 { return r.Stele.Ack.P50 })
	m.Stele.Ack.P99 = med(func(r *Result) float64 { return r.Stele.Ack.P99 })
	m.Stele.Ack.P999 = med(func(r *Result) float64 { return r.Stele.Ack.P999 })
	m.Stele.Receipt.P50 = med(func(r *Result) float64 { return r.Stele.Receipt.P50 })
	m.Stele.Receipt.P99 = med(func(r *Result) float64 { return r.Stele.Receipt.P99 })
	m.Tessera.CPUSecPer1000 = med(func(r *Result) float64 { return r.Tessera.CPUSecPer1000 })
	m.Stele.CPUSecPer1000 = med(func(r *Result) float64 { return r.Stele.CPUSecPer1000 })
	m.Tessera.PeakRSSMiB = med(func(r *Result) float64 { return r.Tessera.PeakRSSMiB })
	m.Stele.PeakRSSMiB = med(func(r *Result) float64 { return r.Stele.PeakRSSMiB })
	m.Read.InclusionProofsPerSec = med(func(r *Result) float64 { return r.Read.InclusionProofsPerSec })
	m.Read.ServerCPUPerProofUS = med(func(r *Result) float64 { return r.Read.ServerCPUPerProofUS })
	m.Read.ClientCPUPerProofUS = med(func(r *Result) float64 { return r.Read.ClientCPUPerProofUS })
	m.Read.BatchedProofsPerSec = med(func(r *Result) float64 { return r.Read.BatchedProofsPerSec })
	m.Read.BatchedServerCPUPerProofUS = med(func(r *Result) float64 { return r.Read.BatchedServerCPUPerProofUS })
	m.Read.BatchedClientCPUPerProofUS = med(func(r *Result) float64 { return r.Read.BatchedClientCPUPerProofUS })
	m.Read.EntriesMBPerSec = med(func(r *Result) float64 { return r.Read.EntriesMBPerSec })
	m.Audit.AloneEntriesPerSec = med(func(r *Result) float64 { return r.Audit.AloneEntriesPerSec })
	m.Audit.ServerEntriesPerSec = med(func(r *Result) float64 { return r.Audit.ServerEntriesPerSec })
	m.Audit.ServerGzipEntriesPerSec = med(func(r *Result) float64 { return r.Audit.ServerGzipEntriesPerSec })
	m.Audit.Ratio = med(func(r *Result) float64 { return r.Audit.Ratio })
	m.Audit.ClientCPUNsPerEntry = med(func(r *Result) float64 { return r.Audit.ClientCPUNsPerEntry })
	m.Audit.ServerCPUNsPerEntry = med(func(r *Result) float64 { return r.Audit.ServerCPUNsPerEntry })
	if m.AtLoad != nil {
		at := *m.AtLoad
		m.AtLoad = &at
		m.OfferedRate = med(func(r *Result) float64 { return r.OfferedRate })
		at.EventsPerSec = med(func(r *Result) float64 { return r.AtLoad.EventsPerSec })
		at.Ack.P50 = med(func(r *Result) float64 { return r.AtLoad.Ack.P50 })
		at.Ack.P99 = med(func(r *Result) float64 { return r.AtLoad.Ack.P99 })
		at.Ack.P999 = med(func(r *Result) float64 { return r.AtLoad.Ack.P999 })
		at.Receipt.P50 = med(func(r *Result) float64 { return r.AtLoad.Receipt.P50 })
		at.Receipt.P99 = med(func(r *Result) float64 { return r.AtLoad.Receipt.P99 })
	}
	return &m
}

// Table writes a result as a plain-text table.
func Table(w io.Writer, r *Result) {
	row3 := func(name, a, b, c string) { fmt.Fprintf(w, "  %-46s %14s %14s %14s\n", name, a, b, c) }
	row := func(name, c string) { row3(name, "", "", c) }
	lat := func(l Latency) string { return fmt.Sprintf("%.0f/%.0f/%.0f", l.P50, l.P99, l.P999) }
	row3("", "raw tessera", "tessera+antisp", "stele")
	row3("events/s", fmt.Sprintf("%.0f", r.Tessera.EventsPerSec), fmt.Sprintf("%.0f", r.Antispam.EventsPerSec), fmt.Sprintf("%.0f", r.Stele.EventsPerSec))
	row3("ack p50/p99/p99.9 ms", lat(r.Tessera.Ack), lat(r.Antispam.Ack), lat(r.Stele.Ack))
	row3("pushbacks retried", "", fmt.Sprintf("%d", r.Antispam.Pushbacks), "")
	row(fmt.Sprintf("receipt p50/p99 ms (%d wit.)", r.Config.Witnesses), fmt.Sprintf("%.0f/%.0f", r.Stele.Receipt.P50, r.Stele.Receipt.P99))
	row3("CPU s per 1000 events", fmt.Sprintf("%.3f", r.Tessera.CPUSecPer1000), fmt.Sprintf("%.3f", r.Antispam.CPUSecPer1000), fmt.Sprintf("%.3f", r.Stele.CPUSecPer1000))
	row3("peak RSS MiB", fmt.Sprintf("%.0f", r.Tessera.PeakRSSMiB), fmt.Sprintf("%.0f", r.Antispam.PeakRSSMiB), fmt.Sprintf("%.0f", r.Stele.PeakRSSMiB))
	row("ratio stele/raw tessera", fmt.Sprintf("%.3f", r.Ratio))
	row("ratio stele/tessera+antispam", fmt.Sprintf("%.3f", r.RatioAntispam))
	row("verified inclusion proofs/s", fmt.Sprintf("%.0f", r.Read.InclusionProofsPerSec))
	row("CPU µs per proof server/client", fmt.Sprintf("%.0f/%.0f", r.Read.ServerCPUPerProofUS, r.Read.ClientCPUPerProofUS))
	row(fmt.Sprintf("verified inclusion proofs/s (batched %d/call)", r.Read.ProofsPerCall), fmt.Sprintf("%.0f", r.Read.BatchedProofsPerSec))
	row("CPU µs per proof server/client (batched)", fmt.Sprintf("%.1f/%.1f", r.Read.BatchedServerCPUPerProofUS, r.Read.BatchedClientCPUPerProofUS))
	row("entries MB/s (tlog-tiles)", fmt.Sprintf("%.1f", r.Read.EntriesMBPerSec))
	row("audit entries/s, library alone (in process)", fmt.Sprintf("%.0f", r.Audit.AloneEntriesPerSec))
	row("audit entries/s, through stele-server", fmt.Sprintf("%.0f", r.Audit.ServerEntriesPerSec))
	row("audit entries/s, through stele-server, gzip", fmt.Sprintf("%.0f", r.Audit.ServerGzipEntriesPerSec))
	row("ratio audit server/alone", fmt.Sprintf("%.3f", r.Audit.Ratio))
	row("audit CPU ns per entry client/server", fmt.Sprintf("%.0f/%.0f", r.Audit.ClientCPUNsPerEntry, r.Audit.ServerCPUNsPerEntry))
	row("stele submit (CLI) events/s", fmt.Sprintf("%.0f", r.CLIEventsPerSec))
	row("ratio CLI/stele", fmt.Sprintf("%.3f", r.CLIRatio))
	if a := r.AtLoad; a != nil {
		fmt.Fprintf(w, "  open loop at %.2f x the closed-loop rate (%.0f events/s offered):\n", r.Config.Load, r.OfferedRate)
		row("  events/s", fmt.Sprintf("%.0f", a.EventsPerSec))
		row("  ack p50/p99/p99.9 ms", lat(a.Ack))
		row("  receipt p50/p99 ms", fmt.Sprintf("%.0f/%.0f", a.Receipt.P50, a.Receipt.P99))
	}
}

// Run measures raw Tessera, Tessera with its antispam, then Stele, on the
// same disk.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	cfg.defaults()
	t, err := rawTessera(ctx, cfg, false)
	if err != nil {
		return nil, fmt.Errorf("raw Tessera: %w", err)
	}
	ta, err := rawTessera(ctx, cfg, true)
	if err != nil {
		return nil, fmt.Errorf("Tessera with antispam: %w", err)
	}
	s, read, au, err := stele(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("stele: %w", err)
	}
	r := &Result{Config: cfg, Tessera: t, Stele: s, Ratio: s.EventsPerSec / t.EventsPerSec, Read: read, Audit: au,
		Antispam: ta, RatioAntispam: s.EventsPerSec / ta.EventsPerSec}
	if r.CLIEventsPerSec, err = cliSubmit(ctx, cfg); err != nil {
		return nil, fmt.Errorf("stele submit: %w", err)
	}
	r.CLIRatio = r.CLIEventsPerSec / s.EventsPerSec
	if cfg.Load > 0 {
		lc := cfg
		lc.Rate = cfg.Load * s.EventsPerSec
		srv, err := startServer(ctx, lc)
		if err != nil {
			return nil, fmt.Errorf("stele at %.2f load: %w", cfg.Load, err)
		}
		defer srv.stop()
		a, err := steleIngest(ctx, lc, srv)
		if err != nil {
			return nil, fmt.Errorf("stele at %.2f load: %w", cfg.Load, err)
		}
		r.AtLoad, r.OfferedRate = &a, lc.Rate
	}
	return r, nil
}
