package server_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stele-dev/stele/client"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
	"github.com/stele-dev/stele/server"
)

// testServer is a real server: Tessera on disk, gRPC and HTTP on loopback.
type testServer struct {
	srv      *server.Server
	dir      string
	grpcAddr string
	httpURL  string
	cli      *client.Client
	gs       *grpc.Server
	hs       *http.Server
	verifier note.Verifier
	stopped  bool
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func startServer(t testing.TB, dir string, cfg server.Config) *testServer {
	t.Helper()
	cfg.DataDir = dir
	if cfg.CheckpointInterval == 0 {
		cfg.CheckpointInterval = 200 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	srv, err := server.New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(srv.GRPCOptions()...)
	srv.RegisterGRPC(gs)
	go gs.Serve(gl)
	hs := &http.Server{Handler: srv.HTTPHandler()}
	go hs.Serve(hl)
	c, err := client.Dial(gl.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(srv.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{srv: srv, dir: dir, grpcAddr: gl.Addr().String(), httpURL: "http://" + hl.Addr().String() + "/", cli: c, gs: gs, hs: hs, verifier: v}
	t.Cleanup(func() { ts.stop(t) })
	return ts
}

func (ts *testServer) stop(t testing.TB) {
	if ts.stopped {
		return
	}
	ts.stopped = true
	ts.cli.Close()
	ts.gs.GracefulStop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := ts.srv.Close(ctx); err != nil {
		t.Errorf("closing server: %v", err)
	}
	ts.hs.Shutdown(ctx)
}

// record makes a realistic Entra directoryAudit record of about size bytes.
func record(id string, size int) []byte {
	base := fmt.Sprintf(`{"id":%q,"category":"RoleManagement","correlationId":"c0ffee00-0000-4000-8000-000000000000","result":"success","activityDisplayName":"Add member to role","activityDateTime":"2026-11-25T10:00:00.1234567Z","loggedByService":"Core Directory","operationType":"Assign","initiatedBy":{"user":{"id":"8f1c0000-0000-4000-8000-000000000001","userPrincipalName":"admin@contoso.example","ipAddress":"203.0.113.7"}},"targetResources":[{"id":"9a2d0000-0000-4000-8000-000000000002","type":"User","userPrincipalName":"bob@contoso.example","modifiedProperties":[{"displayName":"Role.DisplayName","oldValue":null,"newValue":"\"Global Administrator\""}]}],"additionalDetails":[],"pad":"`, id)
	pad := size - len(base) - 2
	if pad < 0 {
		pad = 0
	}
	b := make([]byte, 0, size)
	b = append(b, base...)
	for range pad {
		b = append(b, 'x')
	}
	return append(b, '"', '}')
}

func event(source, id string, size int) *stelev1.Event {
	return &stelev1.Event{
		Source:    source,
		EventId:   id,
		Kind:      "directory.role.member.add",
		EventTime: timestamppb.New(time.Date(2026, 11, 25, 10, 0, 0, 123456700, time.UTC)),
		Format:    "entra.directoryAudit",
		Record:    record(id, size),
	}
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// mustAppend appends events and fails the test on any refusal.
func mustAppend(t testing.TB, c *client.Client, evs []*stelev1.Event) []*stelev1.AppendResult {
	t.Helper()
	rs, err := c.Append(ctxT(t, time.Minute), evs)
	if err != nil {
		t.Fatalf("append: %v", err)
	}
	for i, r := range rs {
		if r.Code != 0 {
			t.Fatalf("event %d refused: code %d: %s", i, r.Code, r.Message)
		}
	}
	return rs
}

// sentEvent is an event a test appended and the index it was given.
type sentEvent struct {
	ev  *stelev1.Event
	idx uint64
}

// appendConcurrently has producers append, in parallel, batches of
// perBatch fresh events of size bytes (producer p writes source
// entra/tenant-<p>/audit). It fails the test when a fresh event comes back
// as a duplicate, or an index is missing, repeated or past the number of
// events sent, and returns every event with its index.
func appendConcurrently(t *testing.T, c *client.Client, producers, batches, perBatch, size int) []sentEvent {
	t.Helper()
	var mu sync.Mutex
	var all []sentEvent
	var wg sync.WaitGroup
	for p := range producers {
		wg.Go(func() {
			for b := range batches {
				evs := make([]*stelev1.Event, perBatch)
				for i := range evs {
					evs[i] = event(fmt.Sprintf("entra/tenant-%d/audit", p), fmt.Sprintf("p%d-ev-%d-%d", p, b, i), size)
				}
				rs := mustAppend(t, c, evs)
				mu.Lock()
				for i, r := range rs {
					if r.Duplicate {
						t.Errorf("fresh event %s reported as duplicate", evs[i].EventId)
					}
					all = append(all, sentEvent{evs[i], r.Index})
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	n := producers * batches * perBatch
	if len(all) != n {
		t.Fatalf("got %d results, want %d", len(all), n)
	}
	seen := map[uint64]bool{}
	for _, s := range all {
		if seen[s.idx] || s.idx >= uint64(n) {
			t.Fatalf("index %d given twice or out of range for %d events", s.idx, n)
		}
		seen[s.idx] = true
	}
	return all
}
