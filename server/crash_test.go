package server_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	tclient "github.com/transparency-dev/tessera/client"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	"github.com/stele-dev/stele/audit"
	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/internal/logkey"
	"github.com/stele-dev/stele/internal/proctest"
	"github.com/stele-dev/stele/leaf"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
)

// tortureCycles sets how many SIGKILL cycles TestCrashDuringIngest runs; CI
// runs the short default, a soak run raises it (go test ./server -run
// TestCrashDuringIngest -torture-cycles 50 -timeout 1h).
var tortureCycles = flag.Int("torture-cycles", 3, "SIGKILL cycles in TestCrashDuringIngest and TestKillFreeze")

// binary builds the named command (cmd/NAME) once per test run and
// returns its path.
func binary(t *testing.T, name string) string { return proctest.Binary(t, name) }

func serverBinary(t *testing.T) string { return binary(t, "stele-server") }

func freeAddr(t *testing.T) string { return proctest.FreeAddr(t) }

type proc struct {
	cmd      *exec.Cmd
	grpcAddr string
	httpAddr string
	cli      *client.Client
	logs     *lockedBuffer
}

func startProcess(t *testing.T, dir string, extra ...string) *proc {
	t.Helper()
	return startProcessWith(t, dir, nil, extra...)
}

// startProcessWith is startProcess with a hook that may change the command
// before it starts.
func startProcessWith(t *testing.T, dir string, hook func(*exec.Cmd), extra ...string) *proc {
	t.Helper()
	p := &proc{grpcAddr: freeAddr(t), httpAddr: freeAddr(t), logs: &lockedBuffer{}}
	args := append([]string{"--data-dir", dir, "--grpc-addr", p.grpcAddr, "--http-addr", p.httpAddr, "--checkpoint-interval", "200ms"}, extra...)
	p.cmd = exec.Command(serverBinary(t), args...)
	if hook != nil {
		hook(p.cmd)
	}
	p.cmd.Stderr = p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
			p.cmd.Wait()
		}
	})
	c, err := client.Dial(p.grpcAddr)
	if err != nil {
		t.Fatal(err)
	}
	p.cli = c
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// Up once it serves a checkpoint (on aws the first one takes a second);
	// with an access policy the anonymous call is refused, but answered.
	for {
		_, err := c.Log.GetCheckpoint(ctx, &stelev1.GetCheckpointRequest{}, grpc.WaitForReady(true))
		if err == nil || status.Code(err) == codes.Unauthenticated {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("server did not come up: %v\n%s", err, p.logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return p
}

// TestBinaryServesHealthAndReflection checks the gRPC health service and
// server reflection of the real binary.
func TestBinaryServesHealthAndReflection(t *testing.T) {
	p := startProcess(t, t.TempDir())
	defer p.cli.Close()
	conn, err := grpc.NewClient(p.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || h.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health: %v %v", h, err)
	}
	stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		names = append(names, s.Name)
	}
	if !slices.Contains(names, "stele.v1.LogService") || !slices.Contains(names, "grpc.health.v1.Health") {
		t.Fatalf("reflection lists %v", names)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
}

// TestCrashDuringIngest kills the server with SIGKILL during heavy ingest,
// restarts it, and checks that every acknowledged event is in the log with
// its payload, exactly once, and that the log verifies.
func TestCrashDuringIngest(t *testing.T) {
	dir := t.TempDir()
	acked := map[uint64]*stelev1.Event{}
	var mu sync.Mutex
	cycles := *tortureCycles
	for cycle := range cycles {
		p := startProcess(t, dir)
		var stop atomic.Bool
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Go(func() {
				for b := 0; !stop.Load(); b++ {
					evs := make([]*stelev1.Event, 100)
					for i := range evs {
						evs[i] = event(fmt.Sprintf("entra/crash-%d/audit", w), fmt.Sprintf("w%d-c%d-b%d-i%d", w, cycle, b, i), 1024)
					}
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					rs, err := p.cli.Append(ctx, evs)
					cancel()
					if err != nil {
						return // the server died
					}
					mu.Lock()
					for i, r := range rs {
						if r.Code == 0 {
							acked[r.Index] = evs[i]
						}
					}
					mu.Unlock()
				}
			})
		}
		time.Sleep(time.Duration(700+(cycle%4)*400) * time.Millisecond)
		if err := p.cmd.Process.Kill(); err != nil { // SIGKILL
			t.Fatal(err)
		}
		p.cmd.Wait()
		stop.Store(true)
		wg.Wait()
		p.cli.Close()
		t.Logf("cycle %d: %d events acknowledged so far", cycle, len(acked))
	}
	if len(acked) == 0 {
		t.Fatal("no event was acknowledged before the crashes")
	}

	p := startProcess(t, dir)
	defer p.cli.Close()
	var maxIdx uint64
	for i := range acked {
		maxIdx = max(maxIdx, i)
	}
	// The checks below scale with the events acknowledged (a long torture
	// run acknowledges hundreds of thousands).
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute+time.Duration(len(acked))*2*time.Millisecond)
	defer cancel()
	if _, err := p.cli.Receipt(ctx, maxIdx); err != nil {
		t.Fatalf("receipt for the highest acknowledged index %d: %v\n%s", maxIdx, err, p.logs)
	}

	// Every acknowledged event is there, with its payload, at its index.
	type check struct {
		idx uint64
		ev  *stelev1.Event
	}
	checks := make(chan check)
	var cwg sync.WaitGroup
	for range 4 {
		cwg.Go(func() {
			for c := range checks {
				got, err := p.cli.Event(ctx, c.idx)
				if err != nil {
					t.Errorf("acknowledged index %d: %v", c.idx, err)
					continue
				}
				l, err := leaf.Unmarshal(got.Leaf)
				if err != nil {
					t.Errorf("index %d: %v", c.idx, err)
					continue
				}
				if l.Source != c.ev.Source || l.EventID != c.ev.EventId || !bytes.Equal(got.Record, c.ev.Record) {
					t.Errorf("index %d holds %s/%s, want %s/%s", c.idx, l.Source, l.EventID, c.ev.Source, c.ev.EventId)
				}
				if err := l.VerifyPayload(got.Salt, got.Payload); err != nil {
					t.Errorf("index %d: %v", c.idx, err)
				}
			}
		})
	}
	for idx, ev := range acked {
		if t.Failed() {
			break
		}
		checks <- check{idx, ev}
	}
	close(checks)
	cwg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	// Resubmitting acknowledged events finds them: nothing is duplicated.
	var evs []*stelev1.Event
	var want []uint64
	for idx, ev := range acked {
		evs = append(evs, ev)
		want = append(want, idx)
		if len(evs) == 500 {
			break
		}
	}
	rs := mustAppend(t, p.cli, evs)
	for i, r := range rs {
		if !r.Duplicate || r.Index != want[i] {
			t.Fatalf("resubmitted %s: index %d dup %v, want %d", evs[i].EventId, r.Index, r.Duplicate, want[i])
		}
	}

	// The whole log verifies against its signed checkpoint, every leaf is
	// leaf v1, no (source, event_id) appears twice, and every leaf's payload
	// is present.
	v, err := logkey.ReadVerifier(filepath.Join(dir, "log.pub"))
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse("http://" + p.httpAddr + "/")
	f, _ := tclient.NewHTTPFetcher(u, nil)
	cp, _, _, err := tclient.FetchCheckpoint(ctx, f.ReadCheckpoint, v, v.Name())
	if err != nil {
		t.Fatal(err)
	}
	rf := compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	r := rf.NewEmptyRange(0)
	keys := map[string]uint64{}
	for bi := uint64(0); bi*256 < cp.Size; bi++ {
		b, err := tclient.GetEntryBundle(ctx, f.ReadEntryBundle, bi, cp.Size)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range b.Entries {
			idx := r.End()
			l, err := leaf.Unmarshal(e)
			if err != nil {
				t.Fatalf("entry %d: %v", idx, err)
			}
			k := l.Source + "\x00" + l.EventID
			if prev, ok := keys[k]; ok {
				t.Fatalf("(%s, %s) is in the log twice: %d and %d", l.Source, l.EventID, prev, idx)
			}
			keys[k] = idx
			if idx%97 == 0 || idx+1 == cp.Size {
				got, err := p.cli.Event(ctx, idx)
				if err != nil {
					t.Fatalf("payload of entry %d: %v", idx, err)
				}
				if err := l.VerifyPayload(got.Salt, got.Payload); err != nil {
					t.Fatalf("entry %d: %v", idx, err)
				}
			}
			r.Append(rfc6962.DefaultHasher.HashLeaf(e), nil)
		}
	}
	root, _ := r.GetRootHash(nil)
	if r.End() != cp.Size || !bytes.Equal(root, cp.Hash) {
		t.Fatalf("log does not verify: %d entries with root %x, checkpoint %d %x", r.End(), root, cp.Size, cp.Hash)
	}
	// And the independent auditor agrees: every tile, the root, leaf v1, no
	// duplicate (source, event_id).
	rep, _, err := audit.Run(ctx, audit.Config{LogURL: u.String(), Verifier: v})
	if err != nil {
		t.Fatalf("stele audit after the crashes: %v (%+v)", err, rep.Failures)
	}
	for _, f := range rep.Findings {
		if f.Kind == audit.FindDuplicate {
			t.Fatalf("audit finds a duplicate after the crashes: %+v", f)
		}
	}
	t.Logf("%d acknowledged events survived %d SIGKILLs; log of %d entries verifies and audits clean", len(acked), cycles, cp.Size)

	// A clean stop exits 0.
	p.cmd.Process.Signal(os.Interrupt)
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("graceful stop: %v\n%s", err, p.logs)
	}
}

// TestGracefulStopPublishesEverything sends SIGTERM during ingest: the server
// exits 0 and its last checkpoint covers every acknowledged event.
func TestGracefulStopPublishesEverything(t *testing.T) {
	dir := t.TempDir()
	p := startProcess(t, dir)
	var mu sync.Mutex
	var maxAcked uint64
	var n int
	var stop atomic.Bool
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Go(func() {
			for b := 0; !stop.Load(); b++ {
				evs := make([]*stelev1.Event, 50)
				for i := range evs {
					evs[i] = event("entra/term/audit", fmt.Sprintf("w%d-b%d-i%d", w, b, i), 800)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				rs, err := p.cli.Append(ctx, evs)
				cancel()
				if err != nil {
					return
				}
				mu.Lock()
				for _, r := range rs {
					if r.Code == 0 {
						maxAcked = max(maxAcked, r.Index)
						n++
					}
				}
				mu.Unlock()
			}
		})
	}
	time.Sleep(700 * time.Millisecond)
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err := p.cmd.Wait()
	stop.Store(true)
	wg.Wait()
	if err != nil {
		t.Fatalf("stele-server did not exit 0 on SIGTERM: %v\n%s", err, p.logs)
	}
	if n == 0 {
		t.Fatal("nothing was acknowledged before SIGTERM")
	}
	v, err := logkey.ReadVerifier(filepath.Join(dir, "log.pub"))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "log", "checkpoint"))
	if err != nil {
		t.Fatal(err)
	}
	cp, err := client.ParseCheckpoint(raw, v)
	if err != nil {
		t.Fatal(err)
	}
	if cp.Size <= maxAcked {
		t.Fatalf("final checkpoint size %d does not cover acknowledged index %d", cp.Size, maxAcked)
	}
	t.Logf("%d events acknowledged; final checkpoint size %d", n, cp.Size)
}

// lockedBuffer collects a child process's output while the test reads it.
type lockedBuffer = proctest.Buffer
