package bench

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRun runs a short comparison against a real stele-server binary and
// checks that every measurement was taken (not how fast: machines differ).
func TestRun(t *testing.T) {
	bin := build(t, "stele-server")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg := Config{Events: 2000, Producers: 4, Batch: 100, Size: 700, Receipts: 20, Dir: t.TempDir(), Server: bin, CLI: build(t, "stele"), Interval: 200 * time.Millisecond, Load: 0.5}
	auditDuration = 50 * time.Millisecond
	r, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]Side{"tessera": r.Tessera, "tessera+antispam": r.Antispam, "stele": r.Stele} {
		if s.EventsPerSec <= 0 || s.EventsAdmitted != 2000 || s.Ack.N != 20 || s.Ack.P50 <= 0 || s.Ack.P99 < s.Ack.P50 || s.CPUSecPer1000 <= 0 || s.PeakRSSMiB <= 0 {
			t.Errorf("%s: incomplete measurements %+v", name, s)
		}
	}
	if r.Stele.Receipt.N == 0 || r.Stele.Receipt.P50 <= 0 {
		t.Errorf("no verified receipt latency: %+v", r.Stele.Receipt)
	}
	if r.Read.InclusionProofsPerSec <= 0 || r.Read.EntriesMBPerSec <= 0 || r.Read.ServerCPUPerProofUS <= 0 || r.Read.ClientCPUPerProofUS <= 0 {
		t.Errorf("read side not measured: %+v", r.Read)
	}
	if r.Read.ProofsPerCall != ProofsPerCall || r.Read.BatchedProofsPerSec <= 0 || r.Read.BatchedServerCPUPerProofUS <= 0 || r.Read.BatchedClientCPUPerProofUS <= 0 {
		t.Errorf("batched proofs not measured: %+v", r.Read)
	}
	if a := r.AtLoad; a == nil || r.OfferedRate != 0.5*r.Stele.EventsPerSec || a.Ack.N != 20 || a.Ack.P50 <= 0 || a.Receipt.N == 0 {
		t.Errorf("open-loop pass at half the rate not measured: offered %v, %+v", r.OfferedRate, a)
	}
	if r.Ratio != r.Stele.EventsPerSec/r.Tessera.EventsPerSec {
		t.Errorf("ratio %v is not stele/tessera", r.Ratio)
	}
	if r.RatioAntispam != r.Stele.EventsPerSec/r.Antispam.EventsPerSec {
		t.Errorf("ratio %v is not stele/tessera+antispam", r.RatioAntispam)
	}
	if a := r.Audit; a.AloneEntriesPerSec <= 0 || a.ServerEntriesPerSec <= 0 || a.ServerGzipEntriesPerSec <= 0 || a.Ratio != a.ServerEntriesPerSec/a.AloneEntriesPerSec || a.ClientCPUNsPerEntry <= 0 || a.ServerCPUNsPerEntry <= 0 {
		t.Errorf("audit not measured: %+v", a)
	}
	if r.CLIEventsPerSec <= 0 || r.CLIRatio != r.CLIEventsPerSec/r.Stele.EventsPerSec {
		t.Errorf("CLI side not measured: %v events/s, ratio %v", r.CLIEventsPerSec, r.CLIRatio)
	}
	m := Median([]*Result{r, r, r})
	if m.Ratio != r.Ratio || m.Stele.Ack.P99 != r.Stele.Ack.P99 {
		t.Errorf("median of identical results differs: %+v", m)
	}
}

// build compiles one of the repository's commands into a temporary dir.
func build(t *testing.T, name string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), name)
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/"+name).CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestRunWitnesses puts two real stele-witness processes in the loop: every
// sampled receipt must verify and carry both cosignatures (steleIngest fails
// otherwise), and all sampled receipts must arrive.
func TestRunWitnesses(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg := Config{Events: 1000, Producers: 2, Batch: 100, Size: 700, Receipts: 10, Dir: t.TempDir(),
		Server: build(t, "stele-server"), Witness: build(t, "stele-witness"), Witnesses: 2, Interval: 300 * time.Millisecond}
	cfg.defaults()
	srv, err := startServer(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.stop()
	if len(srv.witnesses) != 2 || srv.policy == nil {
		t.Fatalf("server started with %d witnesses, policy %v", len(srv.witnesses), srv.policy)
	}
	s, err := steleIngest(ctx, cfg, srv)
	if err != nil {
		t.Fatal(err)
	}
	if s.Receipt.N != 10 || s.Receipt.P50 <= 0 {
		t.Errorf("receipt latency with witnesses: %+v", s.Receipt)
	}
}

func TestSummarise(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 1000; i++ {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	l := summarise(ds)
	if l.P50 != 501 || l.P99 != 991 || l.P999 != 1000 || l.N != 1000 {
		t.Fatalf("summarise = %+v", l)
	}
	if (summarise(nil) != Latency{}) {
		t.Fatal("empty summary not zero")
	}
}

// TestGrowth grows a small log in two steps and checks every step was
// measured on a log of the right size.
func TestGrowth(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg := Config{Events: 500, Producers: 2, Batch: 100, Size: 700, Dir: t.TempDir(), Server: build(t, "stele-server"), Interval: 200 * time.Millisecond}
	g, err := RunGrowth(ctx, cfg, []uint64{0, 3000}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Steps) != 2 || g.Steps[0].Size != 0 || g.Steps[1].Size != 3000 {
		t.Fatalf("steps %+v", g.Steps)
	}
	for _, s := range g.Steps {
		if s.EventsPerSec <= 0 || s.Proof.N != GrowthProofs || s.Proof.P50 <= 0 || s.RSSMiB <= 0 {
			t.Errorf("incomplete step %+v", s)
		}
	}
	// 500 entries need 9 hashes per proof at most; 3,500 need 11 or 12.
	if g.Steps[0].ProofHashes > 9 || g.Steps[1].ProofHashes < 11 || g.Steps[1].ProofHashes > 12 {
		t.Errorf("proof sizes %v and %v do not match the log sizes", g.Steps[0].ProofHashes, g.Steps[1].ProofHashes)
	}
	if g.PeakRSSMiB < g.Steps[1].RSSMiB {
		t.Errorf("peak RSS %v below a step's RSS %v", g.PeakRSSMiB, g.Steps[1].RSSMiB)
	}
	// Step 0 needs no fill; step 1 fills from the 500 step 0 ingested.
	if f := g.Steps[1].FillRates; len(g.Steps[0].FillRates) != 0 || len(f) != 1 || f[0].From != 500 || f[0].To != 3000 || f[0].EventsPerSec <= 0 {
		t.Errorf("fill rates %+v then %+v, want none then one chunk 500->3000", g.Steps[0].FillRates, f)
	}
	var out strings.Builder
	GrowthTable(&out, g)
	if !strings.Contains(out.String(), "sustained ingest while filling") || !strings.Contains(out.String(), "500 -> 3000") {
		t.Errorf("growth table lacks the fill rates:\n%s", out.String())
	}
}
