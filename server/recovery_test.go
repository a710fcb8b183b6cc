package server_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
	"github.com/stele-dev/stele/server"
)

// panickingHealth is a service whose every call panics, standing in for a
// bug in any handler.
type panickingHealth struct {
	healthpb.UnimplementedHealthServer
}

func (panickingHealth) Check(context.Context, *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	panic("a bug in a handler")
}

func (panickingHealth) Watch(*healthpb.HealthCheckRequest, grpc.ServerStreamingServer[healthpb.HealthCheckResponse]) error {
	panic("a bug in a streaming handler")
}

// TestPanicInRPCDoesNotStopServer: a panicking unary and streaming handler
// on the server's gRPC options answer Internal, are counted, and the log
// service on the same server keeps answering. Without the recovery
// interceptor the panic ends the test binary.
func TestPanicInRPCDoesNotStopServer(t *testing.T) {
	srv, err := server.New(context.Background(), server.Config{DataDir: t.TempDir(), CheckpointInterval: 200 * time.Millisecond, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close(context.Background()) })
	gs := grpc.NewServer(srv.GRPCOptions()...)
	srv.RegisterGRPC(gs)
	healthpb.RegisterHealthServer(gs, panickingHealth{})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go gs.Serve(l)
	t.Cleanup(gs.Stop)
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: srv.HTTPHandler()}
	go hs.Serve(hl)
	t.Cleanup(func() { hs.Close() })

	conn, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx := ctxT(t, 30*time.Second)
	for range 3 {
		_, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
		if status.Code(err) != codes.Internal {
			t.Fatalf("panicking unary call: %v, want Internal", err)
		}
	}
	w, err := healthpb.NewHealthClient(conn).Watch(ctx, &healthpb.HealthCheckRequest{})
	if err == nil {
		_, err = w.Recv()
	}
	if status.Code(err) != codes.Internal {
		t.Fatalf("panicking stream: %v, want Internal", err)
	}
	for {
		_, err := stelev1.NewLogServiceClient(conn).GetCheckpoint(ctx, &stelev1.GetCheckpointRequest{})
		if err == nil {
			break
		}
		if status.Code(err) != codes.Unavailable || ctx.Err() != nil {
			t.Fatalf("the log service after the panics: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	resp, err := http.Get("http://" + hl.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`stele_rpc_panics_total{method="/grpc.health.v1.Health/Check"} 3`,
		`stele_rpc_panics_total{method="/grpc.health.v1.Health/Watch"} 1`,
		`go_build_info{`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
