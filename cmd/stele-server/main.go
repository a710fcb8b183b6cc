// Command stele-server runs a Stele log: gRPC ingest and read API, and the
// C2SP tlog-tiles HTTP read API with /healthz and /metrics.
//
// With no flags it keeps its log in ./stele-data and listens on loopback.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"k8s.io/klog/v2"

	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/internal/connlimit"
	"github.com/stele-dev/stele/internal/durable"
	"github.com/stele-dev/stele/internal/tracing"
	"github.com/stele-dev/stele/server"
	"github.com/stele-dev/stele/server/backend"
	awsbackend "github.com/stele-dev/stele/server/backend/aws"
	"github.com/stele-dev/stele/server/backend/posix"
)

func main() {
	durable.RestrictUmask() // everything created from here on is 0600/0700
	if err := run(); err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			// The mistake first, then where the flags are listed.
			fmt.Fprintf(os.Stderr, "stele-server: %v\nusage: stele-server -h\n", err)
			os.Exit(2)
		}
		fmt.Fprintf(os.Stderr, "stele-server: %v\n", err)
		os.Exit(1)
	}
}

// usageError is a command-line mistake: exit status 2, as in every Stele
// binary.
type usageError struct{ error }

// parseFlags parses args, printing the flags on -h (stdout) and returning
// parse errors as usage errors (without printing the flags first).
func parseFlags(fs *flag.FlagSet, args []string) error {
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(os.Stdout)
			if fs.Usage != nil {
				fs.Usage()
			}
			fs.PrintDefaults()
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	return nil
}

// flags are stele-server's settings bound to its command line.
type flags struct {
	fs *flag.FlagSet
	settings
	opts []option
}

// newFlags defines every setting's flag (settings.options).
func newFlags() *flags {
	f := &flags{fs: flag.NewFlagSet("stele-server", flag.ContinueOnError)}
	f.opts = f.options()
	register(f.fs, f.opts)
	return f
}

// parse parses args, then the config file named by --config for the
// settings that no flag on the command line gave.
func (f *flags) parse(args []string) error {
	if err := parseFlags(f.fs, args); err != nil {
		return err
	}
	if f.configPath == "" {
		return nil
	}
	given := map[string]bool{}
	f.fs.Visit(func(fl *flag.Flag) { given[fl.Name] = true })
	return loadFile(f.configPath, f.opts, given)
}

// loadFileConfig reads a JSON config file strictly, over the defaults.
func loadFileConfig(path string) (*settings, error) {
	f := newFlags()
	return &f.settings, loadFile(path, f.opts, nil)
}

func run() error {
	if len(os.Args) > 1 && os.Args[1] == "migrate" {
		return migrate(os.Args[2:])
	}
	if len(os.Args) > 1 && os.Args[1] == "pkcs11-keygen" {
		return pkcs11Keygen(os.Args[2:])
	}
	f := newFlags()
	fs := f.fs
	fs.Usage = func() { fmt.Fprintln(fs.Output(), "usage: stele-server [migrate|pkcs11-keygen|freeze] [flags]") }
	args := os.Args[1:]
	freezing := len(args) > 0 && args[0] == "freeze" // lifecycle.go
	if freezing {
		args = args[1:]
	}
	if err := f.parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	cfg, err := f.serverConfig()
	if err != nil {
		return err
	}
	var closeKey io.Closer
	cfg.LogKey, closeKey, err = f.outsideLogKey(cfg.Origin)
	if err != nil {
		return err
	}
	defer closeKey.Close()
	limits := connlimit.Limits{HeaderTimeout: f.headerTimeout, IdleTimeout: f.idleTimeout, MaxConns: f.maxConns}
	if err := limits.Check(); err != nil {
		return err
	}
	grpcListen := f.grpcAddr
	if cfg.AuthPolicyFile != "" && cfg.TLSCertFile == "" && !loopback(grpcListen) {
		return fmt.Errorf("--auth-policy without --tls-cert would send bearer tokens in plaintext: set --tls-cert/--tls-key, or listen on loopback only (--grpc-addr %s is not)", grpcListen)
	}
	var handler slog.Handler
	switch f.logFormat {
	case "text":
		handler = slog.NewTextHandler(os.Stderr, nil)
	case "json":
		handler = slog.NewJSONHandler(os.Stderr, nil)
	default:
		return fmt.Errorf("--log-format must be text or json")
	}
	logger := slog.New(handler)
	klog.SetSlogLogger(slog.New(server.TesseraLogHandler(handler))) // Tessera logs through klog
	cfg.Logger = logger

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	stopTracing, err := tracing.Setup(ctx, f.otlpEndpoint, "stele-server")
	if err != nil {
		return err
	}
	defer stopTracing(context.Background())
	if err := f.applyLifecycle(&cfg); err != nil {
		return err
	}
	if freezing {
		return freezeLog(ctx, cfg, f.freezeTimeout, logger)
	}

	gl, err := net.Listen("tcp", grpcListen)
	if err != nil {
		return fmt.Errorf("gRPC listener: %w", err)
	}
	hl, err := net.Listen("tcp", f.httpAddr)
	if err != nil {
		return fmt.Errorf("HTTP listener: %w", err)
	}

	srv, err := server.New(ctx, cfg)
	if err != nil {
		return err
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(srv.MemoryLimit())
	}
	// Under a memory limit, collect when the heap reaches 3× what is live
	// rather than 2× (GOGC=200): ingest allocates mostly short-lived
	// request and record bytes, and half the collections cost ~3 % less
	// CPU per event for ~25 MiB more RSS (docs/performance.md, "Admission
	// path"); near the limit the collector runs as often as it must anyway.
	if os.Getenv("GOGC") == "" && debug.SetMemoryLimit(-1) < math.MaxInt64 {
		debug.SetGCPercent(200)
	}
	if err := srv.ExportOTelMetrics(); err != nil {
		return err
	}
	if !srv.AuthEnabled() {
		logger.Warn("no --auth-policy: the server accepts anyone who can connect, to append and to read payloads; fine on loopback, see docs/security.md otherwise")
	}
	if !srv.TLSEnabled() {
		logger.Warn("no --tls-cert: the listeners speak plaintext")
	}
	return serve(ctx, srv, gl, hl, limits, handler)
}

// serve serves srv's gRPC service on gl and its HTTP handler on hl until
// ctx ends or a listener fails, then shuts down: gRPC calls are let finish
// (30s at most), and srv waits for its final checkpoint (60s at most).
func serve(ctx context.Context, srv *server.Server, gl, hl net.Listener, limits connlimit.Limits, handler slog.Handler) error {
	logger := slog.New(handler)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for range hup {
			logger.Info("SIGHUP: reloading TLS certificate, client CA and access policy")
			srv.ReloadAuth()
		}
	}()
	gs := grpc.NewServer(append(srv.GRPCOptions(), limits.GRPCOptions()...)...)
	srv.RegisterGRPC(gs)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	reflection.Register(gs)
	// Name the gRPC address on every HTTP answer, so that a gRPC client
	// pointed at this port can say where to go instead.
	httpHandler := srv.HTTPHandler()
	grpcHere := gl.Addr().String()
	httpSrv := limits.HTTPServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(client.GRPCAddrHeader, grpcHere)
		httpHandler.ServeHTTP(w, r)
	}))
	httpSrv.TLSConfig = srv.HTTPTLSConfig()
	httpSrv.ErrorLog = slog.NewLogLogger(handler, slog.LevelWarn)
	gl, hl = limits.Listener(gl), limits.Listener(hl)
	if httpSrv.TLSConfig != nil {
		hl = tls.NewListener(hl, httpSrv.TLSConfig)
	}

	errc := make(chan error, 2)
	go func() { errc <- gs.Serve(gl) }()
	go func() { errc <- httpSrv.Serve(hl) }()
	logger.Info("serving", "grpc", gl.Addr().String(), "http", hl.Addr().String(), "tls", srv.TLSEnabled(), "auth", srv.AuthEnabled(), "origin", srv.Origin(), "verifier_key", srv.VerifierKey())

	var serveErr error
	select {
	case <-ctx.Done():
		logger.Info("shutting down: no longer admitting events")
	case serveErr = <-errc:
		logger.Error("listener failed", "err", serveErr)
	}
	hs.Shutdown()
	stopped := make(chan struct{})
	go func() { gs.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(30 * time.Second):
		gs.Stop()
	}
	sctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	closeErr := srv.Close(sctx)
	httpSrv.Shutdown(sctx)
	if closeErr != nil {
		return closeErr
	}
	if serveErr != nil {
		return serveErr
	}
	logger.Info("stopped cleanly")
	return nil
}

// storageBackend is the backend named by --storage.
func storageBackend(name string, ac awsbackend.Config) (backend.Backend, error) {
	ac.DSN = mysqlDSN(ac.DSN)
	switch name {
	case "posix":
		if ac.Retention != "" {
			return nil, fmt.Errorf("retention (S3 Object Lock) is for storage %q; on %q full tiles and bundles are made read-only, and WORM is the file system's (docs/security.md)", "aws", "posix")
		}
		return posix.New(), nil
	case "aws":
		return awsbackend.New(ac)
	default:
		return nil, fmt.Errorf("storage %q is not a backend: use %q (a data directory) or %q (S3-compatible bucket and MySQL-compatible database)", name, "posix", "aws")
	}
}

// mysqlDSN is dsn, or when empty the STELE_MYSQL_DSN environment variable,
// which keeps the database password off the command line.
func mysqlDSN(dsn string) string {
	if dsn == "" {
		return os.Getenv("STELE_MYSQL_DSN")
	}
	return dsn
}

// loopback reports whether a listen address binds only loopback
// interfaces ("localhost", 127.0.0.0/8, ::1).
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// migrate is `stele-server migrate`: copy a stopped posix log to aws.
func migrate(args []string) error {
	f := newFlags()
	from := f.fs.String("from", "", "the posix log's data directory (the server must be stopped)")
	workers := f.fs.Uint("workers", 8, "entry bundles copied at once")
	f.fs.Usage = func() {
		fmt.Fprintln(f.fs.Output(), "usage: stele-server migrate --from DATA-DIR --s3-bucket B [--s3-endpoint URL ...] [--mysql-dsn DSN] [--log-key FILE]")
		fmt.Fprintln(f.fs.Output(), "Copies a posix log (tiles, payloads, tombstones, dedup index) to the aws backend and checks that the roots match.")
	}
	if err := parseFlags(f.fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if *from == "" {
		return usageError{errors.New("migrate needs --from DATA-DIR")}
	}
	dst, err := awsbackend.New(awsbackend.Config{
		Bucket: f.s3Bucket, Prefix: f.s3Prefix, Endpoint: f.s3Endpoint,
		Region: f.s3Region, PathStyle: f.s3PathStyle, DSN: mysqlDSN(f.mysqlDSN),
		Retention: f.retention, // migrated tiles are locked as the server's would be
	})
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	klog.SetSlogLogger(logger)
	n, err := dst.Migrate(context.Background(), awsbackend.MigrateOptions{
		SrcDir: *from, LogKeyFile: f.logKey, Origin: f.origin, Workers: *workers, Logger: logger,
	})
	if err != nil {
		return err
	}
	logger.Info("migration complete: start stele-server --storage aws with the same key", "entries", n)
	return nil
}
