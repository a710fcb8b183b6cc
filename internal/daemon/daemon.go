// Package daemon is the start-up shared by Stele's long-running clients of
// a log server (stele-collector, stele-forwarder): the stop signals caught
// from the first instant, the JSON log, OpenTelemetry tracing, and the
// gRPC connection's TLS and bearer token.
//
// Order matters: a binary's Main calls Signals before anything else, so a
// SIGTERM sent while the process is still starting (reading its config,
// dialing, opening its state) ends in a clean stop rather than the
// default action, which kills the process the way SIGKILL would.
package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"

	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/internal/tracing"
)

// Signals returns a context that ends on SIGTERM or SIGINT. Call it first
// in Main and pass the context down: from then on a stop is caught. stop
// restores the default actions.
func Signals() (ctx context.Context, stop context.CancelFunc) {
	return signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
}

// Logger is the process's log: JSON lines on w at level ("debug", "info",
// "warn" or "error"; empty is info).
func Logger(w io.Writer, level string) (*slog.Logger, error) {
	var lv slog.Level
	if level != "" {
		if err := lv.UnmarshalText([]byte(level)); err != nil {
			return nil, fmt.Errorf("%q is not a log level: use debug, info, warn or error", level)
		}
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: lv})), nil
}

// Tracing turns OpenTelemetry tracing on as tracing.Setup does (off
// unless endpoint or the OTEL_* variables say where to send), for the
// service name. The returned function flushes what is buffered, waiting
// at most 5 seconds; call it before exiting.
func Tracing(endpoint, service string) (stop func(), err error) {
	shutdown, err := tracing.Setup(context.Background(), endpoint, service)
	if err != nil {
		return nil, err
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		shutdown(ctx)
	}, nil
}

// Server is how to reach a log server's gRPC endpoint.
type Server struct {
	// Address is host:port.
	Address string
	// CAFile, CertFile and KeyFile are PEM files (see client.WithTLS);
	// any of them, or TokenFile, turns TLS on (without CAFile the system
	// roots verify the server).
	CAFile, CertFile, KeyFile string
	// TokenFile holds a bearer token, sent only over TLS.
	TokenFile string
}

// DialOptions are client.Dial's options for s: none (plaintext, fit only
// for loopback) when s names no TLS file and no token.
func DialOptions(s Server) ([]grpc.DialOption, error) {
	if s.CAFile == "" && s.CertFile == "" && s.KeyFile == "" && s.TokenFile == "" {
		return nil, nil
	}
	tlsOpt, err := client.WithTLS(s.CAFile, s.CertFile, s.KeyFile)
	if err != nil {
		return nil, err
	}
	opts := []grpc.DialOption{tlsOpt}
	if s.TokenFile != "" {
		b, err := os.ReadFile(s.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("token file: %w", err)
		}
		tok := strings.TrimSpace(string(b))
		if tok == "" {
			return nil, fmt.Errorf("token file %s is empty", s.TokenFile)
		}
		opts = append(opts, client.WithToken(tok))
	}
	return opts, nil
}

// Dial connects to s (lazily: the first call waits for the server).
func Dial(s Server) (*client.Client, error) {
	if s.Address == "" {
		return nil, fmt.Errorf("no server address")
	}
	opts, err := DialOptions(s)
	if err != nil {
		return nil, err
	}
	return client.Dial(s.Address, opts...)
}
