// Command stele-bench measures Stele's ingest against raw Tessera POSIX
// appends on this machine: events/s, ack and receipt latency, CPU per event,
// peak RSS, and the ratio. It starts a real stele-server process (found next
// to this program or on $PATH) and drives it over gRPC on loopback.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"

	"k8s.io/klog/v2"

	"github.com/stele-dev/stele/internal/bench"
	"github.com/stele-dev/stele/internal/durable"
)

func main() {
	if err := run(); err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(os.Stderr, "stele-bench: %v\nusage: stele-bench -h\n", err)
			os.Exit(2)
		}
		fmt.Fprintf(os.Stderr, "stele-bench: %v\n", err)
		os.Exit(1)
	}
}

// usageError is a command-line mistake: exit status 2, as in every Stele
// binary.
type usageError struct{ error }

func run() error {
	fs := flag.NewFlagSet("stele-bench", flag.ContinueOnError)
	var cfg bench.Config
	fs.IntVar(&cfg.Events, "events", 40000, "events per side per round")
	fs.IntVar(&cfg.Producers, "producers", 8, "concurrent producers")
	fs.IntVar(&cfg.Batch, "batch", 250, "events per batch")
	fs.IntVar(&cfg.Size, "size", 1024, "bytes per raw record")
	fs.Float64Var(&cfg.Rate, "rate", 0, "open loop: offer this many events/s (0: closed loop, as fast as acks come back)")
	fs.Float64Var(&cfg.Load, "load", 0, "also run Stele in open loop at this fraction of its measured closed-loop rate, on a fresh server (0.5: ack latency at half the maximum rate)")
	fs.IntVar(&cfg.Receipts, "receipts", 200, "events whose submit-to-verified-receipt latency is sampled")
	fs.StringVar(&cfg.Dir, "dir", "", "scratch directory on the disk under test (default: the system temp dir)")
	fs.StringVar(&cfg.Server, "server-binary", "", "stele-server to run (default: next to this program, then $PATH)")
	fs.DurationVar(&cfg.Interval, "checkpoint-interval", 0, "checkpoint interval of both sides (default 1s)")
	fs.IntVar(&cfg.Witnesses, "witnesses", 0, "start this many local stele-witness processes; checkpoints (and so receipts) need all of them to cosign")
	fs.StringVar(&cfg.CLI, "cli-binary", "", "stele to run for the CLI side, `stele submit` of the same events from a file (default: next to this program, then $PATH)")
	fs.StringVar(&cfg.Witness, "witness-binary", "", "stele-witness to run (default: next to this program, then $PATH)")
	fs.StringVar(&cfg.Backend, "backend", "posix", "storage backend of the benchmarked stele-server: posix, or aws (a fresh database and bucket prefix on the MariaDB and S3-compatible server that `source .ci/services && stele_services_start` starts and exports; growth mode only)")
	growth := fs.String("growth", "", "growth mode: grow one log through the server to each of these comma-separated sizes (e.g. 0,1000000,10000000) and at each measure the ingest of --events more events, inclusion-proof latency and RSS")
	rounds := fs.Int("rounds", 3, "rounds; the table shows per-metric medians")
	jsonPath := fs.String("json", "", "also write every round and the medians as JSON to this file")
	fs.SetOutput(io.Discard)
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(os.Stdout)
			fs.PrintDefaults()
			return nil
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	if *rounds < 1 || cfg.Events < 0 || cfg.Producers < 0 || cfg.Batch < 0 || cfg.Size < 0 || cfg.Rate < 0 || cfg.Witnesses < 0 || cfg.Load < 0 {
		return errors.New("counts and rates must be positive")
	}
	if cfg.Backend != bench.BackendPOSIX && cfg.Backend != bench.BackendAWS {
		return usageError{fmt.Errorf("--backend %q: want posix or aws", cfg.Backend)}
	}
	if cfg.Backend == bench.BackendAWS && *growth == "" {
		return usageError{errors.New("--backend aws is for growth mode (--growth); the comparison with raw Tessera is on posix")}
	}
	// Tessera logs through klog; its chatter is not part of the report.
	klog.SetSlogLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if *growth != "" {
		sizes, err := parseSizes(*growth)
		if err != nil {
			return err
		}
		g, err := bench.RunGrowth(ctx, cfg, sizes, os.Stderr)
		if err != nil {
			return err
		}
		fmt.Printf("growth (%s backend): %d-byte events, %d producers x %d-event batches, ingest of %d events and %d proofs at each size:\n",
			g.Config.Backend, g.Config.Size, g.Config.Producers, g.Config.Batch, g.Config.Events, bench.GrowthProofs)
		bench.GrowthTable(os.Stdout, g)
		return writeJSON(*jsonPath, g)
	}
	var all []*bench.Result
	for i := range *rounds {
		r, err := bench.Run(ctx, cfg)
		if err != nil {
			return err
		}
		all = append(all, r)
		fmt.Fprintf(os.Stderr, "round %d: raw tessera %.0f, tessera+antispam %.0f, stele %.0f events/s; stele/raw %.3f, stele/antispam %.3f\n", i+1, r.Tessera.EventsPerSec, r.Antispam.EventsPerSec, r.Stele.EventsPerSec, r.Ratio, r.RatioAntispam)
	}
	m := bench.Median(all)
	fmt.Printf("%d-byte events, %d producers x %d-event batches, %d events per side, medians of %d rounds:\n",
		m.Config.Size, m.Config.Producers, m.Config.Batch, m.Config.Events, *rounds)
	bench.Table(os.Stdout, m)
	return writeJSON(*jsonPath, map[string]any{"rounds": all, "median": m})
}

// writeJSON writes v as indented JSON to path, unless path is empty.
func writeJSON(path string, v any) error {
	if path == "" {
		return nil
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return durable.WriteAtomic(path, append(b, '\n'), 0o644)
}

// parseSizes parses increasing comma-separated log sizes.
func parseSizes(s string) ([]uint64, error) {
	var out []uint64
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.ParseUint(strings.TrimSpace(f), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("--growth: %q is not a log size (want e.g. 0,1000000,10000000)", f)
		}
		if len(out) > 0 && n <= out[len(out)-1] {
			return nil, fmt.Errorf("--growth: sizes must increase, %d follows %d", n, out[len(out)-1])
		}
		out = append(out, n)
	}
	return out, nil
}
