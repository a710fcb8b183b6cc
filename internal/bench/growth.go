package bench

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stele-dev/stele/client"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
)

// GrowthStep is what growth mode measures once the log holds Size entries.
type GrowthStep struct {
	Size uint64 `json:"log_size"`
	// EventsPerSec is the ingest rate of the next Config.Events events.
	EventsPerSec float64 `json:"events_per_sec"`
	Ack          Latency `json:"ack_latency"`
	// Proof is the latency of one GetInclusionProof for a random index of
	// the whole log (one caller at a time), each verified.
	Proof Latency `json:"inclusion_proof_latency"`
	// ProofHashes is the mean number of hashes per proof (log2 of the size).
	ProofHashes float64 `json:"proof_hashes"`
	RSSMiB      float64 `json:"rss_mib"`
	// FillSeconds is how long filling the log up to Size took.
	FillSeconds float64 `json:"fill_seconds"`
	// FillRates is the ingest rate of each chunk of up to a million events
	// that filled the log up to Size: the sustained rate, flushes and
	// compactions included, where EventsPerSec is a short sample.
	FillRates []FillRate `json:"fill_rates,omitempty"`
}

// FillRate is the ingest rate of one chunk of the fill.
type FillRate struct {
	// From and To are the log sizes the chunk started and ended at.
	From         uint64  `json:"from"`
	To           uint64  `json:"to"`
	EventsPerSec float64 `json:"events_per_sec"`
}

// Growth is the result of growth mode.
type Growth struct {
	Config     Config       `json:"config"`
	Steps      []GrowthStep `json:"steps"`
	PeakRSSMiB float64      `json:"peak_rss_mib"`
}

// GrowthProofs is how many inclusion proofs each step times.
const GrowthProofs = 2000

// RunGrowth grows one log through a real stele-server to each of sizes (in
// increasing order) and, at each, measures the ingest rate of cfg.Events
// more events, the latency of inclusion proofs on random indexes of the
// whole log and the server's RSS. The log is filled through the server's
// normal path (gRPC, admission, payload store, Tessera), at full speed, so
// the log is a genuine Stele log; the filling is not timed as part of a step.
func RunGrowth(ctx context.Context, cfg Config, sizes []uint64, progress io.Writer) (*Growth, error) {
	cfg.defaults()
	srv, err := startServer(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	c, err := client.Dial(srv.grpcAddr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	v, err := note.NewVerifier(srv.vkey)
	if err != nil {
		return nil, err
	}
	next := uint64(0) // entries in the log; event ids are numbered from 0, each used once
	ingest := func(n uint64) (float64, []time.Duration, error) {
		first := next
		next += n
		fc := cfg
		fc.Events = int(n)
		fc.Rate = 0
		return drive(fc, func(batch []int) error {
			evs := make([]*stelev1.Event, len(batch))
			for i, j := range batch {
				id := fmt.Sprintf("g-%d", first+uint64(j))
				evs[i] = &stelev1.Event{
					Source: "entra/bench/audit", EventId: id, Kind: "directory.role.member.add",
					EventTime: timestamppb.New(time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)),
					Format:    "entra.directoryAudit", Record: record(id, cfg.Size),
				}
			}
			rctx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			rs, err := c.Append(rctx, evs)
			if err != nil {
				return err
			}
			for _, r := range rs {
				if r.Code != 0 {
					return fmt.Errorf("event refused: %s", r.Message)
				}
			}
			return nil
		})
	}
	g := &Growth{Config: cfg}
	for _, size := range sizes {
		t0 := time.Now()
		var fills []FillRate
		// Fill in chunks so a 10M fill does not hold 10M batches' latencies.
		for next < size {
			from := next
			rate, _, err := ingest(min(size-next, 1_000_000))
			if err != nil {
				return nil, fmt.Errorf("filling to %d: %w", size, err)
			}
			fills = append(fills, FillRate{From: from, To: next, EventsPerSec: rate})
			if progress != nil {
				fmt.Fprintf(progress, "filled %d of %d (%.0f s; %.0f events/s from %d)\n", next, size, time.Since(t0).Seconds(), rate, from)
			}
		}
		step := GrowthStep{Size: next, FillSeconds: time.Since(t0).Seconds(), FillRates: fills}
		rate, lat, err := ingest(uint64(cfg.Events))
		if err != nil {
			return nil, fmt.Errorf("ingest at %d: %w", step.Size, err)
		}
		step.EventsPerSec, step.Ack = rate, summarise(lat)
		if step.Proof, step.ProofHashes, err = proofLatency(ctx, c, v, next); err != nil {
			return nil, fmt.Errorf("proofs at %d: %w", step.Size, err)
		}
		if step.RSSMiB, err = procRSSMiB(srv.pid(), "VmRSS:"); err != nil {
			return nil, err
		}
		if progress != nil {
			fmt.Fprintf(progress, "at %d entries: %.0f events/s, proof p50/p99 %.2f/%.2f ms, RSS %.0f MiB\n",
				step.Size, step.EventsPerSec, step.Proof.P50, step.Proof.P99, step.RSSMiB)
		}
		g.Steps = append(g.Steps, step)
	}
	if g.PeakRSSMiB, err = procRSSMiB(srv.pid(), "VmHWM:"); err != nil {
		return nil, err
	}
	return g, nil
}

// proofLatency waits for a checkpoint covering size entries, then times
// GrowthProofs inclusion proofs for random indexes, one at a time, and
// verifies each against the checkpoint (the leaf is fetched untimed).
func proofLatency(ctx context.Context, c *client.Client, v note.Verifier, size uint64) (Latency, float64, error) {
	cp, err := waitCheckpoint(ctx, c, v, size)
	if err != nil {
		return Latency{}, 0, err
	}
	var ds []time.Duration
	hashes := 0
	for range GrowthProofs {
		idx := rand.Uint64N(cp.Size)
		t0 := time.Now()
		p, err := c.Log.GetInclusionProof(ctx, &stelev1.GetInclusionProofRequest{Leaf: &stelev1.GetInclusionProofRequest_Index{Index: idx}, TreeSize: cp.Size})
		if err != nil {
			return Latency{}, 0, err
		}
		ds = append(ds, time.Since(t0))
		hashes += len(p.Hashes)
		leaves, err := c.Log.GetEntries(ctx, &stelev1.GetEntriesRequest{Start: idx, Count: 1})
		if err != nil {
			return Latency{}, 0, err
		}
		chunk, err := leaves.Recv()
		if err != nil {
			return Latency{}, 0, fmt.Errorf("reading leaf %d: %w", idx, err)
		}
		if len(chunk.Leaves) != 1 {
			return Latency{}, 0, fmt.Errorf("GetEntries(%d, 1) gave %d leaves", idx, len(chunk.Leaves))
		}
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, idx, cp.Size, rfc6962.DefaultHasher.HashLeaf(chunk.Leaves[0]), p.Hashes, cp.Root[:]); err != nil {
			return Latency{}, 0, fmt.Errorf("inclusion proof for %d: %w", idx, err)
		}
	}
	return summarise(ds), float64(hashes) / GrowthProofs, nil
}

// waitCheckpoint polls until a checkpoint covers size entries.
func waitCheckpoint(ctx context.Context, c *client.Client, v note.Verifier, size uint64) (*client.Checkpoint, error) {
	for {
		raw, err := c.Checkpoint(ctx)
		if err != nil {
			return nil, err
		}
		cp, err := client.ParseCheckpoint(raw, v)
		if err != nil {
			return nil, err
		}
		if cp.Size >= size {
			return cp, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// GrowthTable writes growth mode's result as a plain-text table.
func GrowthTable(w io.Writer, g *Growth) {
	fmt.Fprintf(w, "  %12s %12s %18s %20s %8s %8s\n", "log size", "events/s", "ack p50/p99 ms", "proof p50/p99 ms", "hashes", "RSS MiB")
	for _, s := range g.Steps {
		fmt.Fprintf(w, "  %12d %12.0f %18s %20s %8.1f %8.0f\n", s.Size, s.EventsPerSec,
			fmt.Sprintf("%.0f/%.0f", s.Ack.P50, s.Ack.P99), fmt.Sprintf("%.3f/%.3f", s.Proof.P50, s.Proof.P99), s.ProofHashes, s.RSSMiB)
	}
	if n := len(g.Steps); n > 1 && g.Steps[0].EventsPerSec > 0 {
		fmt.Fprintf(w, "  ingest at %d / at %d: %.2f\n", g.Steps[n-1].Size, g.Steps[0].Size, g.Steps[n-1].EventsPerSec/g.Steps[0].EventsPerSec)
	}
	var fills []FillRate
	for _, s := range g.Steps {
		fills = append(fills, s.FillRates...)
	}
	if len(fills) > 0 {
		fmt.Fprintf(w, "  sustained ingest while filling (flushes and compactions included):\n")
		for _, f := range fills {
			fmt.Fprintf(w, "  %12d -> %-12d %12.0f events/s\n", f.From, f.To, f.EventsPerSec)
		}
		if first, last := fills[0], fills[len(fills)-1]; len(fills) > 1 && first.EventsPerSec > 0 {
			fmt.Fprintf(w, "  sustained ingest, %d->%d / %d->%d: %.2f\n", last.From, last.To, first.From, first.To, last.EventsPerSec/first.EventsPerSec)
		}
	}
	fmt.Fprintf(w, "  server peak RSS: %.0f MiB\n", g.PeakRSSMiB)
}
