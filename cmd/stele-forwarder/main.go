// Command stele-forwarder delivers a Stele log's events, each with its
// original record and a proof, to SIEMs (see docs/forwarder.md).
//
//	stele-forwarder [run] --config FILE      deliver until stopped
//	stele-forwarder status --config FILE     each sink's position and lag
//	stele-forwarder check-config --config FILE
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/stele-dev/stele/forwarder"
	"github.com/stele-dev/stele/internal/daemon"
)

func main() {
	os.Exit(Main(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage: stele-forwarder [command] --config FILE
commands:
  run           deliver the log's events to the configured sinks (the default)
  status        print each sink's cursor and lag as JSON (from the running
                forwarder's /status when it listens, else from the state directory)
  check-config  parse the configuration and every sink's settings, then exit
`

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// Main runs stele-forwarder with args and returns the exit status.
func Main(args []string, stdout, stderr io.Writer) int {
	cmd := "run"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("stele-forwarder "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	// Catch SIGTERM from the first instant, so a stop sent while the
	// forwarder is still starting is a clean stop, not a kill.
	ctx, stop := daemon.Signals()
	defer stop()
	configPath := fs.String("config", "", "the configuration file (strict JSON, docs/forwarder.md)")
	otlpEndpoint := fs.String("otlp-endpoint", "", "run: send OpenTelemetry traces over OTLP/HTTP to this URL (e.g. http://127.0.0.1:4318); off by default")
	var err error
	switch cmd {
	case "run", "status", "check-config":
		if err = fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			return 2
		}
		if fs.NArg() > 0 {
			err = usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
		} else if *configPath == "" {
			err = usageError{"--config FILE is required"}
		}
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		err = usageError{fmt.Sprintf("unknown command %q", cmd)}
	}
	if err == nil {
		var cfg *forwarder.Config
		if cfg, err = forwarder.LoadConfig(*configPath); err == nil {
			switch cmd {
			case "run":
				var stopTracing func()
				if stopTracing, err = daemon.Tracing(*otlpEndpoint, "stele-forwarder"); err == nil {
					err = run(ctx, cfg, stderr)
					stopTracing()
				}
			case "status":
				err = status(cfg, stdout)
			case "check-config":
				fmt.Fprintf(stdout, "config OK: %d sinks\n", len(cfg.Sinks))
			}
		}
	}
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "stele-forwarder: %v\n%s", err, usage)
		return 2
	}
	fmt.Fprintf(stderr, "stele-forwarder: %v\n", err)
	return 1
}

func run(ctx context.Context, cfg *forwarder.Config, stderr io.Writer) error {
	logger, err := daemon.Logger(stderr, "info")
	if err != nil {
		return err
	}
	f, closeConn, err := forwarder.Open(cfg, logger)
	if err != nil {
		return err
	}
	defer closeConn()
	if cfg.Listen != "" {
		l, err := net.Listen("tcp", cfg.Listen)
		if err != nil {
			return fmt.Errorf("listen: %w", err)
		}
		hs := &http.Server{Handler: f.Handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second}
		go hs.Serve(l)
		defer hs.Close()
		logger.Info("serving /healthz, /status and /metrics", "addr", l.Addr().String())
	}
	logger.Info("forwarding", "log", cfg.Log.URL, "sinks", len(cfg.Sinks))
	if err := f.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

func status(cfg *forwarder.Config, stdout io.Writer) error {
	var st forwarder.Status
	live := false
	if cfg.Listen != "" {
		hc := &http.Client{Timeout: 5 * time.Second}
		if resp, err := hc.Get("http://" + cfg.Listen + "/status"); err == nil {
			if resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&st) == nil {
				live = true
			}
			resp.Body.Close()
		}
	}
	if !live {
		var err error
		if st, err = forwarder.OfflineStatus(cfg); err != nil {
			return err
		}
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	_, err = stdout.Write(append(b, '\n'))
	return err
}
