// Command stele-witness runs a C2SP tlog-witness for any number of logs
// (see docs/witness.md), and manages a running or stopped one.
//
//	stele-witness [run] [flags]       serve (the default)
//	stele-witness add-log ...         witness another log (works while running)
//	stele-witness remove-log ...      stop witnessing a log (its state is kept)
//	stele-witness list-logs           show logs and their cosigned sizes
//	stele-witness evidence            show recorded conflicting checkpoints
//
// With no flags it keeps its data in ./stele-witness-data and listens on
// 127.0.0.1:7480.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/stele-dev/stele/internal/connlimit"
	"github.com/stele-dev/stele/internal/durable"
	"github.com/stele-dev/stele/witness"
)

const (
	defaultDataDir = "./stele-witness-data"
	defaultListen  = "127.0.0.1:7480"
)

func main() {
	durable.RestrictUmask() // everything created from here on is 0600/0700
	os.Exit(Main(os.Args[1:], os.Stdout, os.Stderr))
}

// usageError is a command-line mistake: exit status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

const usage = `usage: stele-witness [command] [flags]
commands:
  run         serve the witness (the default when no command is given)
  add-log     witness a log: --origin O --key VKEY [--key VKEY2] [--pull URL]
  remove-log  stop witnessing a log added with add-log (its state is kept)
  list-logs   list the logs and the latest cosigned size of each
  evidence    print recorded conflicting checkpoints as JSON
  pkcs11-keygen  make the witness key inside a PKCS#11 token: --key-pkcs11 REF --name NAME
Run "stele-witness <command> -h" for a command's flags.
`

// Main runs stele-witness with args and returns the exit status.
func Main(args []string, stdout, stderr io.Writer) int {
	cmd := "run"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "run":
		err = run(args, stderr)
	case "add-log":
		err = addLog(args, stdout, stderr)
	case "remove-log":
		err = removeLog(args, stdout, stderr)
	case "list-logs":
		err = listLogs(args, stdout, stderr)
	case "evidence":
		err = evidence(args, stdout, stderr)
	case "pkcs11-keygen":
		err = pkcs11Keygen(args, stdout, stderr)
	case "help":
		fmt.Fprint(stderr, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "stele-witness: unknown command %q\n%s", cmd, usage)
		return 2
	}
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "stele-witness %s: %s\nusage: stele-witness %s -h\n", cmd, ue.msg, cmd)
		return 2
	default:
		fmt.Fprintf(stderr, "stele-witness %s: %v\n", cmd, err)
		return 1
	}
}

// newFlags returns a flag set that prints its flags to stderr on -h and
// reports parse errors as usage errors.
func newFlags(cmd string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("stele-witness "+cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

func parse(fs *flag.FlagSet, args []string, stderr io.Writer) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stderr, "usage of %s:\n", fs.Name())
			fs.SetOutput(stderr)
			fs.PrintDefaults()
			return err
		}
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	return nil
}

func run(args []string, stderr io.Writer) error {
	fs := newFlags("run", stderr)
	configPath := fs.String("config", "", "JSON config file with the logs to witness (see docs/witness.md); flags override it")
	dataDir := fs.String("data-dir", defaultDataDir, "directory for the key, state and admin socket")
	listen := fs.String("listen", defaultListen, "HTTP listen address")
	name := fs.String("name", "", "witness (cosigner) name for a new key; default "+witness.DefaultName+"; must match an existing key")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	headerTimeout := fs.Duration("header-timeout", connlimit.DefaultHeaderTimeout, "how long a new connection has to send its request headers")
	idleTimeout := fs.Duration("idle-timeout", connlimit.DefaultIdleTimeout, "close a keep-alive connection with no request after this long")
	maxConns := fs.Int("max-conns", connlimit.DefaultMaxConns, "connections open at once on the HTTP listener; more wait until one closes")
	keys := keyFlags{}.add(fs)
	fixPerms := fs.Bool("fix-permissions", false, "if the data directory is accessible to other users, remove their access to it and everything in it (chmod -R go-rwx) instead of refusing to start")
	var logLists multiFlag
	fs.Var(&logLists, "log-list", "a witness network log list (https:// URL or file) to take logs from; repeat for several")
	logListMode := fs.String("log-list-mode", witness.LogListDiscover, "discover: add the logs a list adds, never remove or change one (the witness network's rule); follow: a log removed from the list stops being cosigned")
	logListInterval := fs.Duration("log-list-interval", witness.DefaultLogListInterval, "how often to fetch the log lists again")
	maxAge := fs.Duration("max-checkpoint-age", witness.DefaultMaxCheckpointAge, "re-cosign idle logs so the checkpoint served for each is never older than this")
	if err := parse(fs, args, stderr); err != nil {
		return err
	}
	if *maxAge < time.Second {
		return usageError{"--max-checkpoint-age must be at least 1s"}
	}
	limits := connlimit.Limits{HeaderTimeout: *headerTimeout, IdleTimeout: *idleTimeout, MaxConns: *maxConns}
	if err := limits.Check(); err != nil {
		return usageError{err.Error()}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	fc := &witness.FileConfig{}
	if *configPath != "" {
		var err error
		if fc, err = witness.LoadConfig(*configPath); err != nil {
			return err
		}
	}
	pick := func(flagName, flagVal, fileVal string) string {
		if set[flagName] || fileVal == "" {
			return flagVal
		}
		return fileVal
	}
	var handler slog.Handler
	switch pick("log-format", *logFormat, fc.LogFormat) {
	case "text":
		handler = slog.NewTextHandler(stderr, nil)
	case "json":
		handler = slog.NewJSONHandler(stderr, nil)
	default:
		return usageError{"--log-format must be text or json"}
	}
	logger := slog.New(handler)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	keySigner, keyCloser, err := keys.open(ctx)
	if err != nil {
		return err
	}
	defer keyCloser.Close()
	opts := witness.Options{
		KeySigner: keySigner,
		Name:      pick("name", *name, fc.Name),
		Logs:      fc.Logs,
		Logger:    logger,

		FixPermissions: *fixPerms,
	}
	// Crash tests only: hold each reply after its state is durable, so the
	// process can be killed at exactly that point.
	if d, err := time.ParseDuration(os.Getenv("STELE_WITNESS_TEST_HOLD_AFTER_COMMIT")); err == nil && d > 0 {
		opts.AfterCommit = func(origin string, size uint64) {
			logger.Warn("test hook: holding the reply after commit", "origin", origin, "size", size, "hold", d)
			time.Sleep(d)
		}
	}
	w, err := witness.Open(pick("data-dir", *dataDir, fc.DataDir), opts)
	if err != nil {
		return err
	}
	defer w.Close()
	lists := fc.LogLists
	for _, src := range logLists {
		lists = append(lists, witness.LogListConfig{Source: src, Mode: *logListMode, Interval: witness.Duration(*logListInterval)})
	}
	if err := w.LoadLogLists(lists); err != nil {
		return err
	}
	age := *maxAge
	if !set["max-checkpoint-age"] && fc.MaxCheckpointAge > 0 {
		age = time.Duration(fc.MaxCheckpointAge)
	}
	l, err := net.Listen("tcp", pick("listen", *listen, fc.Listen))
	if err != nil {
		return fmt.Errorf("HTTP listener: %w", err)
	}
	l = limits.Listener(l)
	srv := limits.HTTPServer(w.Handler())
	errc := make(chan error, 2)
	// The admin socket exists before the HTTP listener answers, so anything
	// that waits for the witness to be up can manage it at once.
	al, err := w.ListenAdmin()
	if err != nil {
		return err
	}
	adminCtx, stopAdmin := context.WithCancel(context.Background())
	adminDone := make(chan struct{})
	go func() {
		defer close(adminDone)
		if err := w.ServeAdminOn(adminCtx, al); err != nil {
			errc <- err
		}
	}()
	go func() { errc <- srv.Serve(l) }()
	pullDone := make(chan struct{})
	go func() { w.RunPull(ctx); close(pullDone) }()
	listsDone, freshDone := make(chan struct{}), make(chan struct{})
	go func() { w.RunLogLists(ctx); close(listsDone) }()
	go func() { w.RunRecosign(ctx, age); close(freshDone) }()
	logs, _ := w.Logs()
	logger.Info("serving", "listen", l.Addr().String(), "name", w.Name(), "verifier_key", w.VerifierKey(), "mldsa_verifier_key_file", filepath.Join(w.Dir(), witness.MLDSAPubFile), "logs", len(logs), "data_dir", w.Dir())

	var serveErr error
	select {
	case <-ctx.Done():
		logger.Info("shutting down")
	case serveErr = <-errc:
		logger.Error("listener failed", "err", serveErr)
	}
	stop()
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv.Shutdown(sctx)
	stopAdmin()
	<-adminDone // the socket is removed before we say we stopped
	<-pullDone
	<-listsDone
	<-freshDone
	if err := w.Close(); err != nil {
		return err
	}
	if serveErr != nil {
		return serveErr
	}
	logger.Info("stopped cleanly")
	return nil
}

// manage runs f on the witness in --data-dir, running or not.
func manage(dataDir string, f func(witness.Manager) error) error {
	m, err := witness.Manage(dataDir)
	if err != nil {
		return err
	}
	defer m.Close()
	return f(m)
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// keyArgs is a --key value: the key itself, or a file (such as log.pub)
// that holds the log's keys, one a line. What is neither is passed on,
// for the witness's own error.
func keyArgs(k string) []string {
	if _, err := note.NewVerifier(k); err == nil {
		return []string{k}
	}
	if b, err := os.ReadFile(k); err == nil {
		return strings.Fields(string(b))
	}
	return []string{k}
}

func addLog(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("add-log", stderr)
	dataDir := fs.String("data-dir", defaultDataDir, "the witness's data directory")
	origin := fs.String("origin", "", "the log's checkpoint origin (required)")
	var keys multiFlag
	fs.Var(&keys, "key", "the log's verifier key <name>+<id>+<key> (Ed25519 or ML-DSA-44), or a file holding its keys such as the log's log.pub (required; repeat for key rotation)")
	pull := fs.String("pull", "", "the log's tlog-tiles URL prefix, to fetch its checkpoints instead of waiting for pushes")
	interval := fs.Duration("pull-interval", 0, "how often to pull (default 1m)")
	if err := parse(fs, args, stderr); err != nil {
		return err
	}
	if *origin == "" {
		return usageError{"--origin is required"}
	}
	if len(keys) == 0 {
		return usageError{"--key is required (the log's verifier key, e.g. the contents of its log.pub)"}
	}
	var all []string
	for _, k := range keys {
		all = append(all, keyArgs(k)...)
	}
	keys = all
	return manage(*dataDir, func(m witness.Manager) error {
		rec, err := m.AddLog(witness.LogConfig{Origin: *origin, Keys: keys, PullURL: *pull, PullInterval: witness.Duration(*interval)})
		if err != nil {
			return err
		}
		when := "now"
		if !m.Running() {
			when = "when the witness starts"
		}
		fmt.Fprintf(stdout, "witnessing %s with %d key(s) (%s)\n", rec.Origin, len(rec.Keys), when)
		return nil
	})
}

func removeLog(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("remove-log", stderr)
	dataDir := fs.String("data-dir", defaultDataDir, "the witness's data directory")
	origin := fs.String("origin", "", "the log's checkpoint origin (required)")
	if err := parse(fs, args, stderr); err != nil {
		return err
	}
	if *origin == "" {
		return usageError{"--origin is required"}
	}
	return manage(*dataDir, func(m witness.Manager) error {
		if err := m.RemoveLog(*origin); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "no longer witnessing %s; its last cosigned checkpoint is kept\n", *origin)
		return nil
	})
}

func listLogs(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("list-logs", stderr)
	dataDir := fs.String("data-dir", defaultDataDir, "the witness's data directory")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parse(fs, args, stderr); err != nil {
		return err
	}
	return manage(*dataDir, func(m witness.Manager) error {
		ls, err := m.Logs()
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(stdout, ls)
		}
		for _, l := range ls {
			size := "-"
			if l.Cosigned {
				size = fmt.Sprint(l.Size)
			}
			src := "added"
			if l.InConfig {
				src = "config"
			}
			if l.Listed != "" && !l.InConfig && !l.Added {
				src = "list:" + l.Listed
			}
			fmt.Fprintf(stdout, "%s\tsize=%s\tkeys=%d\tfrom=%s", l.Origin, size, len(l.Keys), src)
			if l.PullURL != "" {
				fmt.Fprintf(stdout, "\tpull=%s", l.PullURL)
			}
			fmt.Fprintln(stdout)
		}
		return nil
	})
}

func evidence(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("evidence", stderr)
	dataDir := fs.String("data-dir", defaultDataDir, "the witness's data directory")
	origin := fs.String("origin", "", "only this log's evidence")
	if err := parse(fs, args, stderr); err != nil {
		return err
	}
	return manage(*dataDir, func(m witness.Manager) error {
		evs, err := m.Evidence(*origin)
		if err != nil {
			return err
		}
		return printJSON(stdout, evs)
	})
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
