package server_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/internal/logkey"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
	"github.com/stele-dev/stele/server"
)

// TestWitnessKilledDuringIngest SIGKILLs the one stele-witness of a real
// stele-server (a 1-of-1 policy, 200 ms checkpoints) at random moments while
// producers keep appending, -torture-cycles times, and restarts it. After
// every restart the checkpoint the witness holds for the log (its C2SP
// monitoring path) carries a valid cosignature, is no smaller than any it
// held before, and is consistent with each earlier one (consistency proof
// from the server, verified against both roots); publishing resumes, and at
// the end every acknowledged event has a receipt that meets the policy.
func TestWitnessKilledDuringIngest(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data") // created 0700: t.TempDir is 0755
	key, err := logkey.LoadOrCreate(dir, "", server.DefaultOrigin, logkey.MLDSAAuto)
	if err != nil {
		t.Fatal(err)
	}
	w := &witnessProc{dir: filepath.Join(t.TempDir(), "w"), addr: freeAddr(t), name: "wt.stele.test/witness"}
	w.start(t)
	if out, err := exec.Command(binary(t, "stele-witness"), "add-log", "--data-dir", w.dir, "--origin", key.Signer.Name(), "--key", key.VKey).CombinedOutput(); err != nil {
		t.Fatalf("add-log: %v\n%s", err, out)
	}
	pub, err := os.ReadFile(filepath.Join(w.dir, "witness.pub"))
	if err != nil {
		t.Fatal(err)
	}
	policy := fmt.Sprintf("witness w %s http://%s/\nquorum w\n", strings.TrimSpace(string(pub)), w.addr)
	policyPath, pol := writeWitnessPolicy(t, policy)
	v, err := note.NewVerifier(key.VKey)
	if err != nil {
		t.Fatal(err)
	}
	p := startProcess(t, dir, "--witness-policy", policyPath, "--witness-timeout", "1s")
	defer p.cli.Close()

	// witnessed fetches the checkpoint the witness holds for the log.
	monitorURL := fmt.Sprintf("http://%s/%x/checkpoint", w.addr, sha256.Sum256([]byte(key.Signer.Name())))
	witnessed := func() *client.Checkpoint {
		t.Helper()
		resp, err := http.Get(monitorURL)
		if err != nil {
			t.Fatalf("witness monitoring path: %v", err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("witness monitoring path: %s %s", resp.Status, body)
		}
		cp, err := client.ParseCheckpoint(body, v)
		if err != nil {
			t.Fatalf("the witness holds a checkpoint that does not verify: %v\n%s", err, body)
		}
		if err := pol.Check(cp); err != nil {
			t.Fatalf("the witness's checkpoint lacks its cosignature: %v", err)
		}
		return cp
	}
	consistent := func(a, b *client.Checkpoint) {
		t.Helper()
		if a.Size == b.Size {
			if a.Root != b.Root {
				t.Fatalf("the witness held two roots for size %d: %x and %x", a.Size, a.Root, b.Root)
			}
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		// The witness cosigns before the server publishes: wait until the
		// server's checkpoint reaches b.
		var cp *stelev1.GetConsistencyProofResponse
		var err error
		for {
			cp, err = p.cli.Log.GetConsistencyProof(ctx, &stelev1.GetConsistencyProofRequest{FromSize: a.Size, ToSize: b.Size})
			if status.Code(err) != codes.OutOfRange || ctx.Err() != nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("consistency proof %d -> %d: %v", a.Size, b.Size, err)
		}
		if err := proof.VerifyConsistency(rfc6962.DefaultHasher, a.Size, b.Size, cp.Hashes, a.Root[:], b.Root[:]); err != nil {
			t.Fatalf("the witness's checkpoints %d and %d are not consistent: %v", a.Size, b.Size, err)
		}
	}

	// Producers append for the whole test.
	var mu sync.Mutex
	acked := map[uint64]bool{}
	var stop atomic.Bool
	var wg sync.WaitGroup
	for pr := range 2 {
		wg.Go(func() {
			for b := 0; !stop.Load(); b++ {
				evs := make([]*stelev1.Event, 50)
				for i := range evs {
					evs[i] = event("entra/wtorture/audit", fmt.Sprintf("p%d-b%d-i%d", pr, b, i), 800)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				rs, err := p.cli.Append(ctx, evs)
				cancel()
				if err != nil {
					t.Errorf("append while the witness is killed: %v", err)
					return
				}
				mu.Lock()
				for _, r := range rs {
					if r.Code == 0 {
						acked[r.Index] = true
					}
				}
				mu.Unlock()
			}
		})
	}
	defer func() { stop.Store(true); wg.Wait() }()

	waitGrowth := func(than uint64) *client.Checkpoint {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			cp := witnessed()
			if cp.Size > than {
				return cp
			}
			if time.Now().After(deadline) {
				t.Fatalf("the witness has not cosigned past %d within 30 s\n%s", than, p.logs)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	seen := []*client.Checkpoint{waitGrowth(0)}
	cycles := *tortureCycles
	for cycle := range cycles {
		time.Sleep(time.Duration(100+rand.IntN(900)) * time.Millisecond)
		w.kill(t) // SIGKILL
		time.Sleep(time.Duration(rand.IntN(500)) * time.Millisecond)
		w.start(t)
		// Straight after the restart: no smaller than, and consistent with,
		// everything it held before.
		now := witnessed()
		last := seen[len(seen)-1]
		if now.Size < last.Size {
			t.Fatalf("cycle %d: after SIGKILL the witness holds size %d, it held %d before", cycle, now.Size, last.Size)
		}
		for _, old := range seen {
			consistent(old, now)
		}
		// Publishing resumes past what it held.
		next := waitGrowth(now.Size)
		consistent(now, next)
		seen = append(seen, now, next)
		t.Logf("cycle %d: witness killed at size >= %d, restarted at %d, cosigning again at %d", cycle, last.Size, now.Size, next.Size)
	}
	stop.Store(true)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	// Every acknowledged event gets a receipt that meets the policy.
	var maxIdx uint64
	for i := range acked {
		maxIdx = max(maxIdx, i)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	raw, err := p.cli.Receipt(ctx, maxIdx)
	if err != nil {
		t.Fatalf("receipt for the highest acknowledged index %d: %v\n%s", maxIdx, err, p.logs)
	}
	r, err := client.VerifyReceipt(raw, v)
	if err != nil {
		t.Fatal(err)
	}
	if err := pol.Check(r.Checkpoint); err != nil {
		t.Fatalf("receipt for %d: %v", maxIdx, err)
	}
	consistent(seen[len(seen)-1], r.Checkpoint)
	t.Logf("%d SIGKILLs of the witness; %d events acknowledged; final cosigned size %d", cycles, len(acked), r.Checkpoint.Size)
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("SIGTERM: %v\n%s", err, p.logs)
	}
}
