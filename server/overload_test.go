package server_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
)

// vmHWM is the peak resident set size of process pid, from
// /proc/pid/status.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc status")
	return 0
}

func withToken(ctx context.Context, tok string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
}

// TestOverload runs a real stele-server process with an access policy and
// checks the limits under overload: a flooding identity far beyond its rate
// limit is refused with ResourceExhausted and a retry hint while a
// well-behaved producer on the same server keeps its throughput, and an
// unlimited identity flooding with large batches meets the server-wide
// in-flight cap, with the server's peak memory bounded. It prints the
// numbers (go test ./server -run TestOverload -v).
func TestOverload(t *testing.T) {
	dir := t.TempDir()
	pol := policyJSON(t,
		map[string]any{"name": "steady", "token_sha256": tokenHash("tok-steady"), "roles": []string{"producer"}, "sources": []string{"entra/steady/audit"},
			"events_per_second": 1000, "burst": 1000},
		map[string]any{"name": "flood", "token_sha256": tokenHash("tok-flood"), "roles": []string{"producer"}, "sources": []string{"entra/flood/audit"},
			"events_per_second": 50, "burst": 100},
		map[string]any{"name": "bulk", "token_sha256": tokenHash("tok-bulk"), "roles": []string{"producer"}, "sources": []string{"entra/bulk/audit"},
			"events_per_second": 0},
	)
	policyFile := filepath.Join(t.TempDir(), "policy.json")
	if err := os.WriteFile(policyFile, pol, 0o600); err != nil {
		t.Fatal(err)
	}
	const inflightCap = 16 << 20
	p := startProcess(t, filepath.Join(dir, "data"), "--auth-policy", policyFile,
		"--rate-limit", "10", "--rate-burst", "10",
		"--max-request-bytes", strconv.Itoa(4<<20), "--max-inflight-bytes", strconv.Itoa(inflightCap))
	defer p.cli.Close()
	pid := p.cmd.Process.Pid

	// The well-behaved producer: a batch of 20 events of 1 KiB every
	// 50 ms (400 events/s, within its limit), each sent on its own without
	// waiting for the one before (so the rate measures throughput, not one
	// call's latency); its rate is what the server admitted.
	var seq atomic.Int64
	steady := func(d time.Duration) (rate float64, refused int64) {
		var admitted, bad atomic.Int64
		var calls sync.WaitGroup
		start := time.Now()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for time.Since(start) < d {
			<-tick.C
			evs := make([]*stelev1.Event, 20)
			for i := range evs {
				evs[i] = event("entra/steady/audit", fmt.Sprintf("s%d", seq.Add(1)), 1024)
			}
			calls.Go(func() {
				ctx, cancel := context.WithTimeout(withToken(context.Background(), "tok-steady"), 10*time.Second)
				defer cancel()
				rs, err := p.cli.Append(ctx, evs)
				if err != nil {
					bad.Add(int64(len(evs)))
					fmt.Printf("overload: a steady producer's batch failed: %v\n", err)
					return
				}
				for _, r := range rs {
					if r.Code == 0 {
						admitted.Add(1)
					} else {
						bad.Add(1)
						fmt.Printf("overload: a steady producer's event was refused: %s\n", r.Message)
					}
				}
			})
		}
		calls.Wait()
		return float64(admitted.Load()) / time.Since(start).Seconds(), bad.Load()
	}

	const phase = 4 * time.Second
	base, baseRefused := steady(phase)
	hwmBase := vmHWM(t, pid)

	// The flood: 8 callers as fast as they can, no backoff, 100-event
	// batches of 1 KiB events, against a limit of 50 events/s.
	var floodAdmitted, floodLimited, floodOther, withHint atomic.Int64
	var floodErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	floodStart := time.Now()
	for w := range 8 {
		wg.Go(func() {
			for b := 0; ; b++ {
				select {
				case <-stop:
					return
				default:
				}
				evs := make([]*stelev1.Event, 100)
				for i := range evs {
					evs[i] = event("entra/flood/audit", fmt.Sprintf("f%d-%d-%d", w, b, i), 1024)
				}
				ctx, cancel := context.WithTimeout(withToken(context.Background(), "tok-flood"), 10*time.Second)
				rs, err := p.cli.Append(ctx, evs)
				cancel()
				switch {
				case status.Code(err) == codes.ResourceExhausted:
					floodLimited.Add(1)
					for _, d := range status.Convert(err).Details() {
						if ri, ok := d.(*errdetails.RetryInfo); ok && ri.RetryDelay.AsDuration() > 0 {
							withHint.Add(1)
						}
					}
				case err != nil:
					floodOther.Add(1)
					floodErr.Store(err)
				default:
					for _, r := range rs {
						if r.Code == 0 {
							floodAdmitted.Add(1)
						}
					}
				}
			}
		})
	}
	time.Sleep(300 * time.Millisecond) // let the flood build up
	during, duringRefused := steady(phase)
	close(stop)
	wg.Wait()
	floodSecs := time.Since(floodStart).Seconds()
	hwmFlood := vmHWM(t, pid)

	// The bulk identity has no rate limit: 16 callers sending 3 MiB batches
	// meet the 16 MiB in-flight cap.
	var bulkAdmitted, bulkOverload atomic.Int64
	bulkStart := time.Now()
	for w := range 16 {
		wg.Go(func() {
			for b := 0; time.Since(bulkStart) < 3*time.Second; b++ {
				evs := make([]*stelev1.Event, 96)
				for i := range evs {
					evs[i] = event("entra/bulk/audit", fmt.Sprintf("b%d-%d-%d", w, b, i), 32<<10)
				}
				ctx, cancel := context.WithTimeout(withToken(context.Background(), "tok-bulk"), 20*time.Second)
				rs, err := p.cli.Append(ctx, evs)
				cancel()
				if status.Code(err) == codes.ResourceExhausted && strings.Contains(status.Convert(err).Message(), "in-flight") {
					bulkOverload.Add(1)
					continue
				}
				if err != nil {
					t.Errorf("bulk append: %v", err)
					return
				}
				for _, r := range rs {
					if r.Code == 0 {
						bulkAdmitted.Add(1)
					}
				}
			}
		})
	}
	wg.Wait()
	hwmBulk := vmHWM(t, pid)

	fmt.Printf("overload: steady producer alone %.0f events/s admitted (%d refused); during the flood %.0f events/s (%d refused)\n", base, baseRefused, during, duringRefused)
	fmt.Printf("overload: flood (limit 50 events/s, burst 100): %d events admitted in %.1f s (%.0f events/s), %d calls refused with ResourceExhausted (%d with RetryInfo), %d other errors\n",
		floodAdmitted.Load(), floodSecs, float64(floodAdmitted.Load())/floodSecs, floodLimited.Load(), withHint.Load(), floodOther.Load())
	fmt.Printf("overload: bulk (no rate limit, 3 MiB batches, 16 MiB in-flight cap): %d events admitted, %d calls pushed back\n", bulkAdmitted.Load(), bulkOverload.Load())
	fmt.Printf("overload: server peak RSS (VmHWM) %.0f MiB after the steady run, %.0f MiB after the flood, %.0f MiB after the bulk flood\n",
		float64(hwmBase)/(1<<20), float64(hwmFlood)/(1<<20), float64(hwmBulk)/(1<<20))

	// It sends 80 batches of 20 per phase; a call that times out on a
	// loaded machine is not a refusal by the limits, but more than a few
	// would be.
	if baseRefused > 40 || duringRefused > 40 {
		t.Errorf("the steady producer had events refused: %d alone, %d during the flood (of ~1,600 each)", baseRefused, duringRefused)
	}
	if during < base/2 {
		t.Errorf("the steady producer's admitted rate fell from %.0f to %.0f events/s during the flood", base, during)
	}
	if floodLimited.Load() < 20 || withHint.Load() != floodLimited.Load() {
		t.Errorf("the flood got %d ResourceExhausted refusals, %d with a RetryInfo: want many, all with one", floodLimited.Load(), withHint.Load())
	}
	if floodOther.Load() > 0 {
		t.Errorf("the flood got %d errors other than ResourceExhausted, e.g. %v", floodOther.Load(), floodErr.Load())
	}
	// The bucket holds 100 and refills at 50/s; 100-event batches pass
	// whole or not at all.
	if maxFlood := int64(100 + 50*floodSecs + 100); floodAdmitted.Load() > maxFlood {
		t.Errorf("the flood had %d events admitted in %.1f s, over its limit (at most %d)", floodAdmitted.Load(), floodSecs, maxFlood)
	}
	if bulkOverload.Load() == 0 || bulkAdmitted.Load() == 0 {
		t.Errorf("bulk flood: %d events admitted, %d calls pushed back: want both", bulkAdmitted.Load(), bulkOverload.Load())
	}
	if hwmBulk > 768<<20 {
		t.Errorf("server peak RSS %d MiB, over the 768 MiB ceiling", hwmBulk>>20)
	}

	// Every refusal is counted by identity and reason.
	_, metrics := get(t, "http://"+p.httpAddr+"/metrics")
	for _, want := range []string{`stele_limit_refused_total{identity="flood",reason="rate"}`, `stele_limit_refused_total{identity="bulk",reason="overload"}`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
