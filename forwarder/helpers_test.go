package forwarder_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"google.golang.org/grpc"

	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/forwarder"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
	"github.com/stele-dev/stele/server"
)

// testLog is a real Stele server: Tessera on disk, gRPC and tlog-tiles on
// loopback.
type testLog struct {
	dir      string
	grpcAddr string
	httpURL  string
	keyFile  string
	cli      *client.Client
	verifier note.Verifier
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func startLog(t testing.TB) *testLog {
	t.Helper()
	dir := t.TempDir()
	srv, err := server.New(context.Background(), server.Config{DataDir: dir, CheckpointInterval: 100 * time.Millisecond, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
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
	t.Cleanup(func() {
		c.Close()
		gs.Stop()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		srv.Close(ctx)
		hs.Close()
	})
	return &testLog{dir: dir, grpcAddr: gl.Addr().String(), httpURL: "http://" + hl.Addr().String() + "/",
		keyFile: filepath.Join(dir, "log.pub"), cli: c, verifier: v}
}

// goldenEvents returns n events made from the identity package's Entra
// fixtures, each with a distinct id.
func goldenEvents(t testing.TB, n int) []*stelev1.Event {
	t.Helper()
	return goldenEventsFrom(t, 0, n)
}

// goldenEventsFrom returns the events from, from+1, ... of the sequence
// goldenEvents begins.
func goldenEventsFrom(t testing.TB, from, n int) []*stelev1.Event {
	t.Helper()
	dir := "../identity/testdata/golden/entra.directoryAudit"
	names, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	var recs [][]byte
	for _, name := range names {
		if strings.HasSuffix(name, ".golden.json") {
			continue
		}
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, b)
	}
	var evs []*stelev1.Event
	for i := from; i < from+n; i++ {
		rec := recs[i%len(recs)]
		if i >= len(recs) {
			// Another event: a distinct native id keeps dedup from
			// folding it into the first.
			rec = []byte(strings.Replace(string(rec), `"id": "`, fmt.Sprintf(`"id": "%d-`, i), 1))
		}
		evs = append(evs, &stelev1.Event{Source: "entra/00000000-0000-4000-8000-0000000000aa/audit", Format: "entra.directoryAudit", Record: rec})
	}
	return evs
}

// appendAll appends events in batches and waits for a checkpoint
// covering them; it returns their indexes.
func (l *testLog) appendAll(t testing.TB, evs []*stelev1.Event) []uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var idx []uint64
	for len(evs) > 0 {
		n := min(len(evs), 1000)
		rs, err := l.cli.Append(ctx, evs[:n])
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range rs {
			if r.Code != 0 {
				t.Fatalf("event %d refused: %s", i, r.Message)
			}
			idx = append(idx, r.Index)
		}
		evs = evs[n:]
	}
	if len(idx) > 0 {
		if _, err := l.cli.Receipt(ctx, idx[len(idx)-1]); err != nil {
			t.Fatal(err)
		}
	}
	return idx
}

// config returns a forwarder config for the log with the given sinks.
func (l *testLog) config(t testing.TB, stateDir string, sinks ...forwarder.SinkConfig) *forwarder.Config {
	t.Helper()
	c := &forwarder.Config{StateDir: stateDir, PollInterval: forwarder.Duration(100 * time.Millisecond), BatchSize: 200, FetchConcurrency: 8,
		MaxBackoff: forwarder.Duration(2 * time.Second), Sinks: sinks}
	c.Log.URL, c.Log.KeyFile = l.httpURL, l.keyFile
	c.Server.Address = l.grpcAddr
	return c
}

// runForwarder runs a forwarder with sinks until stop is called.
func (l *testLog) runForwarder(t testing.TB, cfg *forwarder.Config, sinks ...forwarder.NamedSink) (f *forwarder.Forwarder, stop func()) {
	t.Helper()
	return runWith(t, l, cfg, l.cli, sinks...)
}

// runWith is runForwarder with another payload reader.
func runWith(t testing.TB, l *testLog, cfg *forwarder.Config, events forwarder.EventReader, sinks ...forwarder.NamedSink) (f *forwarder.Forwarder, stop func()) {
	t.Helper()
	lg, err := client.NewTileLog(l.httpURL, l.verifier, nil)
	if err != nil {
		t.Fatal(err)
	}
	f, err = forwarder.New(forwarder.Options{Config: cfg, Log: lg, Events: events, Logger: quiet(), Sinks: sinks})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.Run(ctx)
	}()
	var stopped bool
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	t.Cleanup(stop)
	return f, stop
}

// waitDelivered waits until every sink's cursor reaches n.
func waitDelivered(t testing.TB, f *forwarder.Forwarder, n uint64, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		st := f.Status()
		done := true
		for _, s := range st.Sinks {
			if s.Next < n {
				done = false
			}
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not delivered within %s: %+v", within, st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func envInt(name string) int {
	var n int
	fmt.Sscan(os.Getenv(name), &n)
	return n
}
