// Command stele-server runs a Stele log: gRPC ingest and read API, and the
// C2SP tlog-tiles HTTP read API with /healthz and /metrics.
//
// With no flags it keeps its log in ./stele-data and listens on loopback.
package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
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
	"github.com/stele-dev/stele/internal/logkey"
	"github.com/stele-dev/stele/server"
)

// fileConfig is the optional JSON config file. Flags given on the command
// line win over it.
type fileConfig struct {
	DataDir            string   `json:"data_dir"`
	GRPCAddr           string   `json:"grpc_addr"`
	HTTPAddr           string   `json:"http_addr"`
	Origin             string   `json:"origin"`
	CheckpointInterval duration `json:"checkpoint_interval"`
	BatchMaxSize       uint     `json:"batch_max_size"`
	BatchMaxAge        duration `json:"batch_max_age"`
	MaxRecordBytes     int      `json:"max_record_bytes"`
	MaxBatchEvents     int      `json:"max_batch_events"`
	MaxClockSkew       duration `json:"max_clock_skew"`
	MinFreeDiskMiB     int      `json:"min_free_disk_mib"`
	LogFormat          string   `json:"log_format"`
	WitnessPolicy      string   `json:"witness_policy"`
	WitnessTimeout     duration `json:"witness_timeout"`
	WitnessFailOpen    bool     `json:"witness_fail_open"`
	TLSCert            string   `json:"tls_cert"`
	TLSKey             string   `json:"tls_key"`
	ClientCA           string   `json:"client_ca"`
	AuthPolicy         string   `json:"auth_policy"`
	RateLimit          float64  `json:"rate_limit"`
	RateBurst          int      `json:"rate_burst"`
	MaxRequestBytes    int      `json:"max_request_bytes"`
	MaxInflightBytes   int64    `json:"max_inflight_bytes"`
	MaxStreams         uint32   `json:"max_concurrent_streams"`
	Storage            string   `json:"storage"`
	S3Bucket           string   `json:"s3_bucket"`
	S3Prefix           string   `json:"s3_prefix"`
	S3Endpoint         string   `json:"s3_endpoint"`
	S3Region           string   `json:"s3_region"`
	S3PathStyle        bool     `json:"s3_path_style"`
	MySQLDSN           string   `json:"mysql_dsn"`
	PublicTilesURL     string   `json:"public_tiles_url"`
	LogKey             string   `json:"log_key"`
	MLDSA              string   `json:"mldsa"`
	LogMLDSAKey        string   `json:"log_mldsa_key"`
	ClaimLease         duration `json:"claim_lease"`
	HeaderTimeout      duration `json:"header_timeout"`
	IdleTimeout        duration `json:"idle_timeout"`
	MaxConns           int      `json:"max_conns"`
	Retention          string   `json:"retention"`
}

type duration time.Duration

func (d *duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("durations are strings such as \"1s\" or \"250ms\"")
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = duration(v)
	return nil
}

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

// flags are the command-line flags.
type flags struct {
	fs                                              *flag.FlagSet
	configPath, dataDir, grpcAddr, httpAddr, origin *string
	logFormat, witnessPolicy                        *string
	tlsCert, tlsKey, clientCA, authPolicy           *string
	storage, s3Bucket, s3Prefix, s3Endpoint         *string
	s3Region, mysqlDSN, publicTilesURL, logKey      *string
	logKeyPKCS11, pkcs11PINFile                     *string
	mldsa, logMLDSAKey                              *string
	s3PathStyle                                     *bool
	retention                                       *string
	cpInterval, witnessTimeout, claimLease          *time.Duration
	rebuild, witnessFailOpen                        *bool
	rateLimit                                       *float64
	rateBurst, maxRequestBytes                      *int
	maxInflightBytes                                *int64
	maxStreams                                      *uint
	minFreeDisk                                     *int
	headerTimeout, idleTimeout                      *time.Duration
	maxConns                                        *int
	fixPermissions                                  *bool
}

func newFlags() *flags {
	fs := flag.NewFlagSet("stele-server", flag.ContinueOnError)
	f := &flags{fs: fs}
	f.configPath = fs.String("config", "", "JSON config file (see docs/configuration.md); flags override it")
	f.dataDir = fs.String("data-dir", "./stele-data", "directory for the log, payloads and log key")
	f.grpcAddr = fs.String("grpc-addr", "127.0.0.1:7400", "gRPC listen address")
	f.httpAddr = fs.String("http-addr", "127.0.0.1:7401", "HTTP listen address (tlog-tiles, /healthz, /metrics)")
	f.origin = fs.String("origin", "", "log origin; default: the existing key's, or "+server.DefaultOrigin+" for a new log")
	f.cpInterval = fs.Duration("checkpoint-interval", time.Second, "how often to publish a checkpoint")
	f.rebuild = fs.Bool("rebuild-index", false, "drop the dedup index and rebuild it from the log before serving")
	f.minFreeDisk = fs.Int("min-free-disk-mib", 256, "refuse appends (Unavailable) while the data directory's file system has less than this many MiB free")
	f.logFormat = fs.String("log-format", "text", "log format: text or json")
	f.witnessPolicy = fs.String("witness-policy", "", "C2SP tlog-policy file: publish a checkpoint only once its quorum of witnesses cosigned it")
	f.witnessTimeout = fs.Duration("witness-timeout", 5*time.Second, "how long one round of witnessing may take")
	f.witnessFailOpen = fs.Bool("witness-fail-open", false, "publish checkpoints even when the witness policy is not met in time (default: fail closed)")
	f.tlsCert = fs.String("tls-cert", "", "PEM certificate (chain) for TLS on both listeners; reloaded when the file changes (docs/security.md)")
	f.tlsKey = fs.String("tls-key", "", "PEM private key of --tls-cert")
	f.clientCA = fs.String("client-ca", "", "PEM CA file: accept client certificates it signed (mutual TLS); needs --tls-cert and --auth-policy")
	f.authPolicy = fs.String("auth-policy", "", "JSON access policy (identities, roles, sources); when set every gRPC call must authenticate; reloaded when the file changes")
	f.rateLimit = fs.Float64("rate-limit", 0, "default events/s per identity (identities may set their own in the access policy); 0: no limit")
	f.rateBurst = fs.Int("rate-burst", 0, "default burst per identity: the most events it may send at once (needed with --rate-limit)")
	f.maxRequestBytes = fs.Int("max-request-bytes", 64<<20, "largest gRPC request (Append batch) accepted, in bytes")
	f.maxInflightBytes = fs.Int64("max-inflight-bytes", 256<<20, "bytes of Append requests admitted at once across the server; beyond it callers are pushed back with ResourceExhausted")
	f.maxStreams = fs.Uint("max-concurrent-streams", 100, "concurrent gRPC calls per connection")
	f.storage = fs.String("storage", server.StoragePOSIX, "storage backend: posix (the data directory) or aws (S3-compatible bucket + MySQL-compatible database, for several replicas; docs/configuration.md)")
	f.s3Bucket = fs.String("s3-bucket", "", "aws: bucket for tiles, entry bundles and checkpoints")
	f.s3Prefix = fs.String("s3-prefix", "", "aws: optional object-key prefix inside the bucket")
	f.s3Endpoint = fs.String("s3-endpoint", "", "aws: S3 endpoint URL for an S3-compatible store (empty: AWS S3); credentials come from the standard AWS sources")
	f.s3Region = fs.String("s3-region", "", "aws: S3 region (empty: from the AWS configuration)")
	f.s3PathStyle = fs.Bool("s3-path-style", false, "aws: path-style S3 addressing (most self-hosted S3-compatible stores need it)")
	f.mysqlDSN = fs.String("mysql-dsn", "", "aws: MySQL DSN user:password@tcp(host:port)/database; empty: the STELE_MYSQL_DSN environment variable")
	f.publicTilesURL = fs.String("public-tiles-url", "", "aws: redirect (302) tlog-tiles reads to this base URL (the bucket or a CDN) instead of proxying them")
	f.logKey = fs.String("log-key", "", "the log's private key file (never created); default: log.key in --data-dir, created when absent. Replicas must share one key")
	f.logKeyPKCS11 = fs.String("log-key-pkcs11", "", "the log's key inside a PKCS#11 token (an HSM): module=PATH;token=LABEL;label=KEYLABEL; needs --origin; PIN from --pkcs11-pin-file or $STELE_PKCS11_PIN (docs/operations.md)")
	f.mldsa = fs.String("mldsa", "auto", "also sign checkpoints with an ML-DSA-44 key (log-mldsa.key in --data-dir; log.pub lists both keys): auto (a new log gets one, an existing log keeps what it has), on (add one to an existing log) or off")
	f.logMLDSAKey = fs.String("log-mldsa-key", "", "the log's ML-DSA-44 private key file (never created) that goes with --log-key or --log-key-pkcs11; replicas must share it")
	f.pkcs11PINFile = fs.String("pkcs11-pin-file", "", "file holding the PKCS#11 token's user PIN (default: $STELE_PKCS11_PIN)")
	f.claimLease = fs.Duration("claim-lease", 2*time.Minute, "aws: how long a replica's claim on an event stands before another replica may check the log and take it over (docs/decisions.md)")
	f.headerTimeout = fs.Duration("header-timeout", connlimit.DefaultHeaderTimeout, "how long a new connection has to send its HTTP request headers or finish its TLS/HTTP2 handshake (both listeners)")
	f.idleTimeout = fs.Duration("idle-timeout", connlimit.DefaultIdleTimeout, "close an HTTP keep-alive connection with no request, or a gRPC connection with no call, after this long")
	f.maxConns = fs.Int("max-conns", connlimit.DefaultMaxConns, "connections open at once on each listener; more wait until one closes")
	f.fixPermissions = fs.Bool("fix-permissions", false, "if the data directory is accessible to other users, remove their access to it and everything in it (chmod -R go-rwx) instead of refusing to start")
	f.retention = fs.String("retention", "", "aws: S3 Object Lock on every tile and entry bundle, MODE:DURATION (governance|compliance, e.g. compliance:7y); needs a bucket with Object Lock (docs/security.md)")
	return f
}

// loadFileConfig reads a JSON config file strictly.
func loadFileConfig(path string) (fileConfig, error) {
	var fc fileConfig
	f, err := os.Open(path)
	if err != nil {
		return fc, fmt.Errorf("reading config: %w", err)
	}
	defer f.Close()
	dec := json.NewDecoder(f)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&fc); err != nil {
		return fc, fmt.Errorf("config %s: %w", path, err)
	}
	return fc, nil
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
	var (
		configPath = f.configPath
		dataDir    = f.dataDir
		grpcAddr   = f.grpcAddr
		httpAddr   = f.httpAddr
		origin     = f.origin
		cpInterval = f.cpInterval
		rebuild    = f.rebuild
		logFormat  = f.logFormat
	)
	fs.Usage = func() { fmt.Fprintln(fs.Output(), "usage: stele-server [migrate] [flags]") }
	if err := parseFlags(fs, os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	var fc fileConfig
	if *configPath != "" {
		var err error
		if fc, err = loadFileConfig(*configPath); err != nil {
			return err
		}
	}
	pick := func(name, flagVal, fileVal string) string {
		if set[name] || fileVal == "" {
			return flagVal
		}
		return fileVal
	}
	cfg := server.Config{
		DataDir:            pick("data-dir", *dataDir, fc.DataDir),
		Origin:             pick("origin", *origin, fc.Origin),
		CheckpointInterval: *cpInterval,
		BatchMaxSize:       fc.BatchMaxSize,
		BatchMaxAge:        time.Duration(fc.BatchMaxAge),
		MaxRecordBytes:     fc.MaxRecordBytes,
		MaxBatchEvents:     fc.MaxBatchEvents,
		MaxClockSkew:       time.Duration(fc.MaxClockSkew),
		RebuildIndexes:     *rebuild,
		MinFreeDiskMiB:     *f.minFreeDisk,
	}
	if !set["min-free-disk-mib"] && fc.MinFreeDiskMiB != 0 {
		cfg.MinFreeDiskMiB = fc.MinFreeDiskMiB
	}
	if cfg.MinFreeDiskMiB < 0 {
		return fmt.Errorf("--min-free-disk-mib %d: the reserve cannot be negative", cfg.MinFreeDiskMiB)
	}
	if !set["checkpoint-interval"] && fc.CheckpointInterval != 0 {
		cfg.CheckpointInterval = time.Duration(fc.CheckpointInterval)
	}
	cfg.WitnessTimeout = *f.witnessTimeout
	if !set["witness-timeout"] && fc.WitnessTimeout != 0 {
		cfg.WitnessTimeout = time.Duration(fc.WitnessTimeout)
	}
	cfg.WitnessFailOpen = *f.witnessFailOpen || (!set["witness-fail-open"] && fc.WitnessFailOpen)
	if p := pick("witness-policy", *f.witnessPolicy, fc.WitnessPolicy); p != "" {
		b, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("reading witness policy: %w", err)
		}
		cfg.WitnessPolicy = b
	}
	cfg.TLSCertFile = pick("tls-cert", *f.tlsCert, fc.TLSCert)
	cfg.TLSKeyFile = pick("tls-key", *f.tlsKey, fc.TLSKey)
	cfg.ClientCAFile = pick("client-ca", *f.clientCA, fc.ClientCA)
	cfg.AuthPolicyFile = pick("auth-policy", *f.authPolicy, fc.AuthPolicy)
	cfg.RateLimit, cfg.RateBurst = *f.rateLimit, *f.rateBurst
	if !set["rate-limit"] && fc.RateLimit != 0 {
		cfg.RateLimit = fc.RateLimit
	}
	if !set["rate-burst"] && fc.RateBurst != 0 {
		cfg.RateBurst = fc.RateBurst
	}
	cfg.MaxRequestBytes, cfg.MaxInflightBytes, cfg.MaxConcurrentStreams = *f.maxRequestBytes, *f.maxInflightBytes, uint32(*f.maxStreams)
	if !set["max-request-bytes"] && fc.MaxRequestBytes != 0 {
		cfg.MaxRequestBytes = fc.MaxRequestBytes
	}
	if !set["max-inflight-bytes"] && fc.MaxInflightBytes != 0 {
		cfg.MaxInflightBytes = fc.MaxInflightBytes
	}
	if !set["max-concurrent-streams"] && fc.MaxStreams != 0 {
		cfg.MaxConcurrentStreams = fc.MaxStreams
	}
	cfg.Storage = pick("storage", *f.storage, fc.Storage)
	cfg.S3Bucket = pick("s3-bucket", *f.s3Bucket, fc.S3Bucket)
	cfg.S3Prefix = pick("s3-prefix", *f.s3Prefix, fc.S3Prefix)
	cfg.S3Endpoint = pick("s3-endpoint", *f.s3Endpoint, fc.S3Endpoint)
	cfg.S3Region = pick("s3-region", *f.s3Region, fc.S3Region)
	cfg.S3PathStyle = *f.s3PathStyle || (!set["s3-path-style"] && fc.S3PathStyle)
	cfg.MySQLDSN = pick("mysql-dsn", *f.mysqlDSN, fc.MySQLDSN)
	if cfg.MySQLDSN == "" {
		// Keeps the database password off the command line.
		cfg.MySQLDSN = os.Getenv("STELE_MYSQL_DSN")
	}
	cfg.PublicTilesURL = pick("public-tiles-url", *f.publicTilesURL, fc.PublicTilesURL)
	cfg.LogKeyFile = pick("log-key", *f.logKey, fc.LogKey)
	cfg.LogMLDSAKeyFile = pick("log-mldsa-key", *f.logMLDSAKey, fc.LogMLDSAKey)
	mldsa, err := logkey.ParseMLDSA(pick("mldsa", *f.mldsa, fc.MLDSA))
	if err != nil {
		return usageError{fmt.Errorf("--mldsa: %w", err)}
	}
	cfg.MLDSA = mldsa
	cfg.FixPermissions = *f.fixPermissions
	cfg.Retention = pick("retention", *f.retention, fc.Retention)
	if *f.logKeyPKCS11 != "" {
		if cfg.LogKeyFile != "" {
			return errors.New("--log-key and --log-key-pkcs11 name two keys: give one")
		}
		key, k, err := openPKCS11Key(*f.logKeyPKCS11, *f.pkcs11PINFile, cfg.Origin)
		if err != nil {
			return err
		}
		defer k.Close()
		cfg.LogKey = key
	}
	cfg.ClaimLease = *f.claimLease
	if !set["claim-lease"] && fc.ClaimLease != 0 {
		cfg.ClaimLease = time.Duration(fc.ClaimLease)
	}
	limits := connlimit.Limits{HeaderTimeout: *f.headerTimeout, IdleTimeout: *f.idleTimeout, MaxConns: *f.maxConns}
	if !set["header-timeout"] && fc.HeaderTimeout != 0 {
		limits.HeaderTimeout = time.Duration(fc.HeaderTimeout)
	}
	if !set["idle-timeout"] && fc.IdleTimeout != 0 {
		limits.IdleTimeout = time.Duration(fc.IdleTimeout)
	}
	if !set["max-conns"] && fc.MaxConns != 0 {
		limits.MaxConns = fc.MaxConns
	}
	if err := limits.Check(); err != nil {
		return err
	}
	grpcListen := pick("grpc-addr", *grpcAddr, fc.GRPCAddr)
	if cfg.AuthPolicyFile != "" && cfg.TLSCertFile == "" && !loopback(grpcListen) {
		return fmt.Errorf("--auth-policy without --tls-cert would send bearer tokens in plaintext: set --tls-cert/--tls-key, or listen on loopback only (--grpc-addr %s is not)", grpcListen)
	}
	var handler slog.Handler
	switch pick("log-format", *logFormat, fc.LogFormat) {
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

	gl, err := net.Listen("tcp", grpcListen)
	if err != nil {
		return fmt.Errorf("gRPC listener: %w", err)
	}
	hl, err := net.Listen("tcp", pick("http-addr", *httpAddr, fc.HTTPAddr))
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
	if err := srv.ExportOTelMetrics(); err != nil {
		return err
	}
	if !srv.AuthEnabled() {
		logger.Warn("no --auth-policy: the server accepts anyone who can connect, to append and to read payloads; fine on loopback, see docs/security.md otherwise")
	}
	if !srv.TLSEnabled() {
		logger.Warn("no --tls-cert: the listeners speak plaintext")
	}
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
	cfg := server.Config{
		Storage: server.StorageAWS, S3Bucket: *f.s3Bucket, S3Prefix: *f.s3Prefix, S3Endpoint: *f.s3Endpoint,
		S3Region: *f.s3Region, S3PathStyle: *f.s3PathStyle, MySQLDSN: *f.mysqlDSN, LogKeyFile: *f.logKey,
		Origin: *f.origin, Logger: slog.New(slog.NewTextHandler(os.Stderr, nil)),
	}
	if cfg.MySQLDSN == "" {
		cfg.MySQLDSN = os.Getenv("STELE_MYSQL_DSN")
	}
	klog.SetSlogLogger(cfg.Logger)
	n, err := server.MigrateToAWS(context.Background(), cfg, *from, *workers)
	if err != nil {
		return err
	}
	cfg.Logger.Info("migration complete: start stele-server --storage aws with the same key", "entries", n)
	return nil
}
