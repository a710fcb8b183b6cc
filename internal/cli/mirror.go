package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/internal/tiles"
	"github.com/stele-dev/stele/mirror"
)

func cmdMirror(e *env, args []string) error {
	fs := newFlags("mirror")
	logURL := fs.String("log", "", "root URL of the source log's tlog-tiles HTTP API, e.g. http://127.0.0.1:8080/")
	keyPath := fs.String("log-key", "", "the log's verifier key file (log.pub)")
	allKeys := requireAllKeysFlag(fs)
	dir := fs.String("to", "", "directory holding the copy (created if needed; resumed if it holds one)")
	serve := fs.String("serve", "", "also serve the copy read-only over tlog-tiles HTTP on this address, e.g. 127.0.0.1:8081, with Prometheus metrics at /metrics")
	interval := fs.Duration("interval", 10*time.Second, "how often to poll the source's checkpoint")
	once := fs.Bool("once", false, "catch up once, then exit")
	timeout := fs.Duration("timeout", time.Minute, "deadline of each HTTP request to the source")
	workers := fs.Int("workers", 4, "parallel fetches")
	if err := parseNoArgs(e, fs, args); err != nil {
		return err
	}
	switch {
	case *logURL == "":
		return usagef("--log URL is required")
	case *keyPath == "":
		return usagef("--log-key FILE is required")
	case *dir == "":
		return usagef("--to DIR is required")
	case *interval <= 0 || *timeout <= 0:
		return usagef("--interval and --timeout must be positive")
	case *workers < 1:
		return usagef("--workers must be at least 1")
	case *once && *serve != "":
		return usagef("--serve needs a running mirror: drop --once")
	}
	v, err := readLogKey(*keyPath, *allKeys)
	if err != nil {
		return err
	}
	lg, err := client.NewTileLog(*logURL, v, &http.Client{Timeout: *timeout})
	if err != nil {
		return usagef("%v", err)
	}
	logger := slog.New(slog.NewTextHandler(e.stderr, nil))
	cfg := mirror.Config{Log: lg, Dir: *dir, Workers: *workers, Logger: logger}
	if isTerminal(e.stderr) {
		cfg.Progress = func(done, total int) {
			fmt.Fprintf(e.stderr, "\rmirror: %d/%d tiles and bundles (%.0f%%)   ", done, total, 100*float64(done)/float64(max(total, 1)))
			if done == total {
				fmt.Fprintln(e.stderr)
			}
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	m, err := mirror.New(ctx, cfg)
	if err != nil {
		return err
	}
	defer m.Close()
	if cp := m.Checkpoint(); cp != nil {
		logger.Info("resuming from the local copy", "dir", *dir, "origin", cp.Origin, "size", cp.Size)
	}
	if *once {
		cp, err := m.Sync(ctx)
		if err != nil {
			return err
		}
		if cp == nil {
			fmt.Fprintf(e.stdout, "mirrored an empty log into %s\n", *dir)
			return nil
		}
		fmt.Fprintf(e.stdout, "mirrored %s at size %d into %s\n", cp.Origin, cp.Size, *dir)
		if f := m.Frozen(); f != nil {
			fmt.Fprintf(e.stdout, "log frozen: %v\n", f)
		}
		return nil
	}
	if *serve != "" {
		ln, err := net.Listen("tcp", *serve)
		if err != nil {
			return err
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", m.MetricsHandler())
		mux.HandleFunc("GET /"+client.FreezePath, func(w http.ResponseWriter, r *http.Request) {
			// Written only once verified and the copy holds the final checkpoint.
			raw, err := os.ReadFile(filepath.Join(*dir, client.FreezePath))
			if err != nil {
				http.Error(w, "this log is not frozen", http.StatusNotFound)
				return
			}
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Write(raw)
		})
		mux.Handle("/", tiles.NewHandler(tiles.DirReader(*dir), tiles.WithLogger(logger)))
		srv := &http.Server{Handler: mux,
			ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: time.Minute, IdleTimeout: 2 * time.Minute}
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				logger.Error("serving the copy", "err", err)
			}
		}()
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
		}()
		logger.Info("serving the copy", "addr", ln.Addr().String(), "dir", *dir)
	}
	return m.Run(ctx, *interval)
}
