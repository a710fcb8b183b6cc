// Package collectorcli is the stele-collector command: flags and wiring
// around package collector (see docs/collector.md). It is a package rather
// than cmd/stele-collector's main so that the collector's tests can run
// the command as a process of their own binary (kill -9 tests) without
// building it.
//
//	stele-collector [run] --config FILE [--from TIME]   collect (the default)
//	stele-collector status --config FILE [--json]       per source: cursor, lag, events/s, last error
package collectorcli

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
	"text/tabwriter"
	"time"

	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/collector"
	"github.com/stele-dev/stele/internal/daemon"
)

const defaultListen = "127.0.0.1:9465"

const usage = `usage: stele-collector [command] [flags]
commands:
  run     collect from the configured sources (the default)
  status  show each source's cursor, lag, events/s and last error
Run "stele-collector <command> -h" for a command's flags.
`

// Main runs stele-collector with args and returns the exit status.
func Main(args []string, stdout, stderr io.Writer) int {
	cmd := "run"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	// Catch SIGTERM from the first instant, so a stop sent while the
	// collector is still starting is a clean stop, not a kill.
	ctx, stop := daemon.Signals()
	defer stop()
	var err error
	switch cmd {
	case "run":
		err = run(ctx, args, stderr)
	case "status":
		err = status(args, stdout)
	case "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "stele-collector: unknown command %q\n%s", cmd, usage)
		return 2
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "stele-collector %s: %v\n", cmd, err)
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "stele-collector %s: %v\n", cmd, err)
		return 1
	}
	return 0
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "configuration file (strict JSON; see docs/collector.md)")
	from := fs.String("from", "", "for sources without a cursor yet: start at this time (RFC 3339 or YYYY-MM-DD) instead of everything the provider holds")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	otlpEndpoint := fs.String("otlp-endpoint", "", "send OpenTelemetry traces over OTLP/HTTP to this URL (e.g. http://127.0.0.1:4318); off by default")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	if *cfgPath == "" {
		return usageError{"--config FILE is required"}
	}
	log, err := daemon.Logger(stderr, *level)
	if err != nil {
		return usageError{fmt.Sprintf("--log-level: %v", err)}
	}
	var fromT time.Time
	if *from != "" {
		if fromT, err = parseTime(*from); err != nil {
			return usageError{fmt.Sprintf("--from: %v", err)}
		}
	}
	log.Info("stele-collector starting", "pid", os.Getpid(), "config", *cfgPath)
	cfg, err := collector.LoadConfig(*cfgPath)
	if err != nil {
		return err
	}
	stopTracing, err := daemon.Tracing(*otlpEndpoint, "stele-collector")
	if err != nil {
		return err
	}
	defer stopTracing()
	s := cfg.Server
	cl, err := daemon.Dial(daemon.Server{Address: s.Address, CAFile: s.TLSCA, CertFile: s.TLSCert, KeyFile: s.TLSKey, TokenFile: s.TokenFile})
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	defer cl.Close()
	sub := &client.Submitter{Client: cl, BatchEvents: cfg.Server.BatchEvents, AttemptTimeout: time.Duration(cfg.Server.Timeout), WaitForReady: true}
	sub.OnRetry = func(attempt int, wait time.Duration, err error) {
		log.Warn("retrying a batch", "attempt", attempt+1, "wait", wait, "err", err)
	}
	c, err := collector.New(collector.Options{Config: cfg, Submitter: sub, Logger: log, From: fromT})
	if err != nil {
		return err
	}
	listen := cfg.Listen
	if listen == "" {
		listen = defaultListen
	}
	if listen != "-" {
		ln, err := net.Listen("tcp", listen)
		if err != nil {
			return fmt.Errorf("listen: %w", err)
		}
		hs := &http.Server{Handler: c.Handler(), ReadHeaderTimeout: 10 * time.Second}
		go hs.Serve(ln)
		defer hs.Close()
		log.Info("collector listening", "addr", ln.Addr().String())
	}
	log.Info("collector starting", "sources", len(cfg.Sources), "server", cfg.Server.Address)
	return c.Run(ctx)
}

func parseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q is not a time: use RFC 3339 (2026-12-01T00:00:00Z) or a date (2026-12-01)", s)
}

func status(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(stdout)
	cfgPath := fs.String("config", "", "configuration file")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *cfgPath == "" {
		return usageError{"--config FILE is required"}
	}
	cfg, err := collector.LoadConfig(*cfgPath)
	if err != nil {
		return err
	}
	listen := cfg.Listen
	if listen == "" {
		listen = defaultListen
	}
	var sts []collector.SourceStatus
	running := false
	if listen != "-" {
		hc := &http.Client{Timeout: 5 * time.Second}
		if resp, err := hc.Get("http://" + listen + "/status"); err == nil {
			err = json.NewDecoder(resp.Body).Decode(&sts)
			resp.Body.Close()
			running = err == nil
		}
	}
	if !running {
		// Not running (or not reachable): the cursors on disk.
		store, err := collector.OpenCursorStore(cfg.StateDir)
		if err != nil {
			return err
		}
		sts = nil
		for _, s := range cfg.Sources {
			cur, err := store.Load(s.Name)
			if err != nil {
				return err
			}
			sts = append(sts, collector.SourceStatus{Name: s.Name, Cursor: cur.Position, Saved: cur.Saved, Lag: -1})
		}
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(map[string]any{"running": running, "sources": sts})
	}
	if !running {
		fmt.Fprintf(stdout, "collector not running (nothing answers on %s); cursors on disk:\n", listen)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SOURCE\tLAG\tEVENTS/S\tCURSOR SAVED\tLAST ERROR\tCURSOR")
	for _, s := range sts {
		lag, rate := "-", "-"
		if running {
			lag, rate = fmt.Sprintf("%.0fs", s.Lag), fmt.Sprintf("%.1f", s.Rate)
		}
		saved := "never"
		if !s.Saved.IsZero() {
			saved = s.Saved.UTC().Format(time.RFC3339)
		}
		cur := string(s.Cursor)
		if len(cur) > 120 {
			cur = cur[:117] + "..."
		}
		if cur == "" {
			cur = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.Name, lag, rate, saved, oneLine(s.LastErr), cur)
	}
	return tw.Flush()
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 80 {
		s = s[:77] + "..."
	}
	if s == "" {
		return "-"
	}
	return s
}
