package client_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stele-dev/stele/client"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
	"github.com/stele-dev/stele/server"
)

// liveServer is a real stele server (Tessera on disk) on loopback.
type liveServer struct {
	srv     *server.Server
	gs      *grpc.Server
	hs      *http.Server
	addr    string
	httpURL string
	vkey    string
}

func startLive(t testing.TB, dir, addr string) *liveServer {
	t.Helper()
	srv, err := server.New(context.Background(), server.Config{DataDir: dir, CheckpointInterval: 100 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	var gl net.Listener
	for try := 0; ; try++ {
		if gl, err = net.Listen("tcp", addr); err == nil || try > 50 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(server.GRPCServerOptions()...)
	srv.RegisterGRPC(gs)
	go gs.Serve(gl)
	hs := &http.Server{Handler: srv.HTTPHandler()}
	go hs.Serve(hl)
	ls := &liveServer{srv: srv, gs: gs, hs: hs, addr: gl.Addr().String(), httpURL: "http://" + hl.Addr().String() + "/", vkey: srv.VerifierKey()}
	t.Cleanup(func() { ls.stop(t) })
	return ls
}

func (ls *liveServer) stop(t testing.TB) {
	if ls.gs == nil {
		return
	}
	ls.gs.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := ls.srv.Close(ctx); err != nil {
		t.Errorf("closing server: %v", err)
	}
	ls.hs.Shutdown(ctx)
	ls.gs = nil
}

func testEvent(source string, i int) *stelev1.Event {
	return &stelev1.Event{
		Source:    source,
		EventId:   fmt.Sprintf("ev-%05d", i),
		Kind:      "signin.failure",
		EventTime: timestamppb.New(time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Second)),
		Format:    "json",
		Record:    fmt.Appendf(nil, `{"i":%d}`, i),
	}
}

func TestSubmitterBatchesAndDedups(t *testing.T) {
	ctx := ctxFor(t)
	ls := startLive(t, t.TempDir(), "127.0.0.1:0")
	c, err := client.Dial(ls.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var evs []*stelev1.Event
	for i := range 1100 {
		evs = append(evs, testEvent("test/a", i))
	}
	evs = append(evs, &stelev1.Event{Source: "test/a", EventId: "bad", Kind: "Not A Kind", Format: "json", Record: []byte("{}"),
		EventTime: timestamppb.Now()})
	s := &client.Submitter{Client: c, BatchEvents: 500}
	rs, err := s.Submit(ctx, evs)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[uint64]bool{}
	for i, r := range rs[:1100] {
		if !r.OK() || r.Duplicate || seen[r.Index] || r.Attempts != 1 {
			t.Fatalf("event %d: %+v", i, r)
		}
		seen[r.Index] = true
	}
	if last := rs[1100]; last.OK() || last.Code != codes.InvalidArgument || last.Attempts != 1 {
		t.Fatalf("invalid event: %+v", last)
	}
	// Resubmitting is harmless: every event comes back as a duplicate of
	// its original index.
	again, err := s.Submit(ctx, evs[:1100])
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range again {
		if !r.OK() || !r.Duplicate || r.Index != rs[i].Index {
			t.Fatalf("resubmitted event %d: %+v, first %+v", i, r, rs[i])
		}
	}
}

// TestSubmitterServerRestart stops the server in the middle of a stream of
// batches and starts it again on the same address and data: every event
// ends up in the log exactly once.
func TestSubmitterServerRestart(t *testing.T) {
	ctx := ctxFor(t)
	dir := t.TempDir()
	ls := startLive(t, dir, "127.0.0.1:0")
	addr := ls.addr
	var calls atomic.Int32
	third := make(chan struct{})
	count := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, inv grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if calls.Add(1) == 3 {
			close(third)
		}
		return inv(ctx, method, req, reply, cc, opts...)
	}
	c, err := client.Dial(addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithUnaryInterceptor(count))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const n = 2000
	var evs []*stelev1.Event
	for i := range n {
		evs = append(evs, testEvent("test/restart", i))
	}
	var retries atomic.Int32
	s := &client.Submitter{Client: c, BatchEvents: 25, MaxAttempts: 100, InitialBackoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
		OnRetry: func(int, time.Duration, error) { retries.Add(1) }}
	done := make(chan struct{})
	var rs []client.SubmitResult
	var serr error
	go func() {
		defer close(done)
		rs, serr = s.Submit(ctx, evs)
	}()
	<-third
	ls.stop(t)
	time.Sleep(300 * time.Millisecond)
	ls2 := startLive(t, dir, addr)
	<-done
	if serr != nil {
		t.Fatal(serr)
	}
	if retries.Load() == 0 {
		t.Fatal("the server restarted but nothing was retried")
	}
	seen := map[uint64]bool{}
	for i, r := range rs {
		if !r.OK() || seen[r.Index] || r.Index >= n {
			t.Fatalf("event %d: %+v", i, r)
		}
		seen[r.Index] = true
	}
	// The log holds exactly n entries: no retry made a second copy.
	c2, err := client.Dial(ls2.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	rs2, err := (&client.Submitter{Client: c2}).Submit(ctx, []*stelev1.Event{testEvent("test/restart", n)})
	if err != nil || !rs2[0].OK() || rs2[0].Index != n {
		t.Fatalf("next event: %+v, %v (want index %d)", rs2, err, n)
	}
	t.Logf("%d events across a restart, %d retries", n, retries.Load())
}

// flaky answers Unavailable with a RetryInfo the first time, then OK.
type flaky struct {
	stelev1.UnimplementedLogServiceServer
	calls atomic.Int32
	times []time.Time
}

func (f *flaky) Append(_ context.Context, req *stelev1.AppendRequest) (*stelev1.AppendResponse, error) {
	f.times = append(f.times, time.Now())
	if f.calls.Add(1) == 1 {
		st, _ := status.New(codes.Unavailable, "busy").WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(300 * time.Millisecond)})
		return nil, st.Err()
	}
	resp := &stelev1.AppendResponse{}
	for i := range req.Events {
		resp.Results = append(resp.Results, &stelev1.AppendResult{Index: uint64(i)})
	}
	return resp, nil
}

func TestSubmitterHonoursRetryInfo(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	f := &flaky{}
	stelev1.RegisterLogServiceServer(gs, f)
	go gs.Serve(l)
	defer gs.Stop()
	c, err := client.Dial(l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var waited time.Duration
	s := &client.Submitter{Client: c, InitialBackoff: time.Millisecond, OnRetry: func(_ int, w time.Duration, _ error) { waited = w }}
	rs, err := s.Submit(ctxFor(t), []*stelev1.Event{testEvent("test/a", 1)})
	if err != nil || !rs[0].OK() || rs[0].Attempts != 2 {
		t.Fatalf("%+v, %v", rs, err)
	}
	if waited != 300*time.Millisecond || f.times[1].Sub(f.times[0]) < 300*time.Millisecond {
		t.Fatalf("waited %v (%v between calls), want the server's 300ms", waited, f.times[1].Sub(f.times[0]))
	}
}

func TestVerifiedEvent(t *testing.T) {
	ctx := ctxFor(t)
	ls := startLive(t, t.TempDir(), "127.0.0.1:0")
	c, err := client.Dial(ls.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rs, err := (&client.Submitter{Client: c}).Submit(ctx, []*stelev1.Event{testEvent("test/a", 1), testEvent("test/a", 2)})
	if err != nil || !rs[1].OK() {
		t.Fatalf("%+v %v", rs, err)
	}
	v, err := note.NewVerifier(ls.vkey)
	if err != nil {
		t.Fatal(err)
	}
	r, p, err := c.VerifiedEvent(ctx, rs[1].Index, v, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Leaf.EventID != "ev-00002" || string(p.Record) != `{"i":2}` || p.Format != "json" {
		t.Fatalf("leaf %+v, payload %+v", r.Leaf, p)
	}
	other := newTestKey(t)
	if _, _, err := c.VerifiedEvent(ctx, rs[1].Index, other.verifier, nil); !errors.Is(err, client.ErrVerification) {
		t.Fatalf("another log's key: %v", err)
	}
}

// The trusted state works the same with proofs fetched over gRPC.
func TestStateStoreOverGRPC(t *testing.T) {
	ctx := ctxFor(t)
	ls := startLive(t, t.TempDir(), "127.0.0.1:0")
	c, err := client.Dial(ls.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	v, _ := note.NewVerifier(ls.vkey)
	st, err := client.NewStateStore(t.TempDir(), v, c.ConsistencyProof)
	if err != nil {
		t.Fatal(err)
	}
	s := &client.Submitter{Client: c}
	for round := range 3 {
		var evs []*stelev1.Event
		for i := range 5 {
			evs = append(evs, testEvent("test/grpc", round*5+i))
		}
		rs, err := s.Submit(ctx, evs)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Receipt(ctx, rs[4].Index); err != nil { // waits for a covering checkpoint
			t.Fatal(err)
		}
		cp, err := c.VerifiedCheckpoint(ctx, v, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Update(ctx, cp); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
	}
	if cp, _ := st.Trusted(); cp.Size != 15 {
		t.Fatalf("trusted size %d, want 15", cp.Size)
	}
}
