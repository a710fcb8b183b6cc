package server_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/stele-dev/stele/internal/connlimit/connlimittest"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
)

// TestIdleConnectionsClosed runs the real stele-server with short
// connection limits and holds many connections open against both
// listeners, as an attacker would: silent ones that never send a byte,
// HTTP keep-alive ones left idle after one checkpoint read, gRPC ones left
// idle after one call. The server never holds more than --max-conns per
// listener, closes every one of them, and keeps serving checkpoints to a
// newcomer on both listeners.
func TestIdleConnectionsClosed(t *testing.T) {
	const maxConns = 16
	p := startProcess(t, t.TempDir(), "--header-timeout", "1s", "--idle-timeout", "2s", "--max-conns", fmt.Sprint(maxConns))
	defer p.cli.Close()
	fds := func() int { return connlimittest.FDs(t, p.cmd.Process.Pid) }
	base := fds()

	held := connlimittest.New(t)
	held.KeepAlive(p.httpAddr, "/checkpoint", maxConns/2)
	held.Silent(p.httpAddr, 100)
	held.Silent(p.grpcAddr, 50)
	// gRPC connections idle after one call.
	var idle []*grpc.ClientConn
	for range 4 {
		cc, err := grpc.NewClient(p.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cc.Close() })
		if _, err := stelev1.NewLogServiceClient(cc).GetCheckpoint(ctxT(t, 20*time.Second), &stelev1.GetCheckpointRequest{}); err != nil {
			t.Fatal(err)
		}
		idle = append(idle, cc)
	}
	// The server holds at most maxConns per listener (plus the test
	// client's connection and its own files).
	for range 5 {
		if n := fds() - base; n > 2*maxConns+4 {
			t.Fatalf("the server holds %d more descriptors than at start with %d connections held against it, want at most %d (2 listeners × --max-conns %d)", n, len(held.Conns)+len(idle), 2*maxConns+4, maxConns)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// A newcomer still reads checkpoints, on both listeners.
	start := time.Now()
	hc := &http.Client{Timeout: 30 * time.Second}
	resp, err := hc.Get("http://" + p.httpAddr + "/checkpoint")
	if err != nil {
		t.Fatalf("checkpoint over HTTP while connections are held: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("checkpoint over HTTP: %s", resp.Status)
	}
	httpWait := time.Since(start)
	start = time.Now()
	if _, err := p.cli.Log.GetCheckpoint(ctxT(t, 30*time.Second), &stelev1.GetCheckpointRequest{}); err != nil {
		t.Fatalf("checkpoint over gRPC while connections are held: %v", err)
	}
	t.Logf("a new checkpoint read waited %v (HTTP) and %v (gRPC) behind %d held connections", httpWait, time.Since(start), len(held.Conns)+len(idle))

	// Every held connection is closed by the server.
	held.WaitClosed(30 * time.Second)
	for i, cc := range idle {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		for cc.GetState() == connectivity.Ready && cc.WaitForStateChange(ctx, connectivity.Ready) {
		}
		cancel()
		if cc.GetState() == connectivity.Ready {
			t.Fatalf("idle gRPC connection %d still open after 20s", i)
		}
	}
	if n := fds() - base; n > 4 {
		t.Fatalf("%d more descriptors than at start once the connections are closed", n)
	}
}
