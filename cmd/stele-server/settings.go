package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"time"

	"github.com/stele-dev/stele/internal/connlimit"
	"github.com/stele-dev/stele/internal/logkey"
	"github.com/stele-dev/stele/server"
	awsbackend "github.com/stele-dev/stele/server/backend/aws"
)

// settings are stele-server's settings, as the command line and the config
// file give them. Each is declared once, in options: its flag, its config
// file key, its default and its help. A flag given on the command line wins
// over the file's key, which wins over the default; a key set to its zero
// value ("", 0, false) in the file counts as absent.
type settings struct {
	configPath, dataDir, grpcAddr, httpAddr, origin string
	cpInterval, batchMaxAge, maxClockSkew           time.Duration
	batchMaxSize                                    uint
	maxRecordBytes, maxBatchEvents, minFreeDisk     int
	rebuild, fixPermissions                         bool
	logFormat                                       string
	witnessPolicy                                   string
	witnessTimeout                                  time.Duration
	witnessFailOpen                                 bool
	tlsCert, tlsKey, clientCA, authPolicy           string
	rateLimit                                       float64
	rateBurst, maxRequestBytes                      int
	maxInflightBytes                                int64
	maxStreams                                      uint
	storage, s3Bucket, s3Prefix, s3Endpoint         string
	s3Region, mysqlDSN, publicTilesURL, retention   string
	s3PathStyle                                     bool
	claimLease                                      time.Duration
	logKey, logKeyPKCS11, pkcs11PINFile             string
	logKeyKMS, otlpEndpoint                         string
	logKeyGCPKMS                                    string // gcpkms.go
	mldsa, logMLDSAKey                              string
	readOnly                                        bool          // lifecycle.go
	successorKey, successorURL                      string        // lifecycle.go
	predecessorKey, predecessorURL                  string        // lifecycle.go
	freezeTimeout                                   time.Duration // lifecycle.go
	headerTimeout, idleTimeout                      time.Duration
	maxConns                                        int
}

// option binds one setting to its flag and its config file key (either may
// be empty: a flag only, or a key only).
type option struct {
	flag, key string
	ptr       any // *string, *bool, *int, *int64, *uint, *float64 or *time.Duration
	usage     string
	fromJSON  func(json.RawMessage) error // sets *ptr from the config file's value
}

// opt declares a setting: p takes the default def now.
func opt[T string | bool | int | int64 | uint | float64 | time.Duration](flagName, key string, p *T, def T, usage string) option {
	*p = def
	return option{flag: flagName, key: key, ptr: p, usage: usage,
		fromJSON: func(v json.RawMessage) error { return setNonZero(p, v) }}
}

// options is the table of stele-server's settings.
func (s *settings) options() []option {
	return []option{
		opt("config", "", &s.configPath, "", "JSON config file (see docs/configuration.md); flags override it"),
		opt("data-dir", "data_dir", &s.dataDir, "./stele-data", "directory for the log, payloads and log key"),
		opt("grpc-addr", "grpc_addr", &s.grpcAddr, "127.0.0.1:7400", "gRPC listen address"),
		opt("http-addr", "http_addr", &s.httpAddr, "127.0.0.1:7401", "HTTP listen address (tlog-tiles, /healthz, /metrics)"),
		opt("origin", "origin", &s.origin, "", "log origin; default: the existing key's, or "+server.DefaultOrigin+" for a new log"),
		opt("checkpoint-interval", "checkpoint_interval", &s.cpInterval, time.Second, "how often to publish a checkpoint"),
		opt("", "batch_max_size", &s.batchMaxSize, 0, "Tessera's sequencing batch size bound (server default)"),
		opt("", "batch_max_age", &s.batchMaxAge, 0, "Tessera's sequencing batch age bound (server default)"),
		opt("", "max_record_bytes", &s.maxRecordBytes, 0, "largest raw record (server default)"),
		opt("", "max_batch_events", &s.maxBatchEvents, 0, "most events in one Append request (server default)"),
		opt("", "max_clock_skew", &s.maxClockSkew, 0, "how far in the future an event_time may be (server default)"),
		opt("rebuild-index", "", &s.rebuild, false, "drop the dedup index and rebuild it from the log before serving"),
		opt("min-free-disk-mib", "min_free_disk_mib", &s.minFreeDisk, 256, "refuse appends (Unavailable) while the data directory's file system has less than this many MiB free"),
		opt("log-format", "log_format", &s.logFormat, "text", "log format: text or json"),
		opt("witness-policy", "witness_policy", &s.witnessPolicy, "", "C2SP tlog-policy file: publish a checkpoint only once its quorum of witnesses cosigned it"),
		opt("witness-timeout", "witness_timeout", &s.witnessTimeout, 5*time.Second, "how long one round of witnessing may take"),
		opt("witness-fail-open", "witness_fail_open", &s.witnessFailOpen, false, "publish checkpoints even when the witness policy is not met in time (default: fail closed)"),
		opt("tls-cert", "tls_cert", &s.tlsCert, "", "PEM certificate (chain) for TLS on both listeners; reloaded when the file changes (docs/security.md)"),
		opt("tls-key", "tls_key", &s.tlsKey, "", "PEM private key of --tls-cert"),
		opt("client-ca", "client_ca", &s.clientCA, "", "PEM CA file: accept client certificates it signed (mutual TLS); needs --tls-cert and --auth-policy"),
		opt("auth-policy", "auth_policy", &s.authPolicy, "", "JSON access policy (identities, roles, sources); when set every gRPC call must authenticate; reloaded when the file changes"),
		opt("rate-limit", "rate_limit", &s.rateLimit, 0, "default events/s per identity (identities may set their own in the access policy); 0: no limit"),
		opt("rate-burst", "rate_burst", &s.rateBurst, 0, "default burst per identity: the most events it may send at once (needed with --rate-limit)"),
		opt("max-request-bytes", "max_request_bytes", &s.maxRequestBytes, 64<<20, "largest gRPC request (Append batch) accepted, in bytes"),
		opt("max-inflight-bytes", "max_inflight_bytes", &s.maxInflightBytes, 256<<20, "bytes of Append requests admitted at once across the server; beyond it callers are pushed back with ResourceExhausted"),
		opt("max-concurrent-streams", "max_concurrent_streams", &s.maxStreams, 100, "concurrent gRPC calls per connection"),
		opt("storage", "storage", &s.storage, "posix", "storage backend: posix (the data directory) or aws (S3-compatible bucket + MySQL-compatible database, for several replicas; docs/configuration.md)"),
		opt("s3-bucket", "s3_bucket", &s.s3Bucket, "", "aws: bucket for tiles, entry bundles and checkpoints"),
		opt("s3-prefix", "s3_prefix", &s.s3Prefix, "", "aws: optional object-key prefix inside the bucket"),
		opt("s3-endpoint", "s3_endpoint", &s.s3Endpoint, "", "aws: S3 endpoint URL for an S3-compatible store (empty: AWS S3); credentials come from the standard AWS sources"),
		opt("s3-region", "s3_region", &s.s3Region, "", "aws: S3 region (empty: from the AWS configuration)"),
		opt("s3-path-style", "s3_path_style", &s.s3PathStyle, false, "aws: path-style S3 addressing (most self-hosted S3-compatible stores need it)"),
		opt("mysql-dsn", "mysql_dsn", &s.mysqlDSN, "", "aws: MySQL DSN user:password@tcp(host:port)/database; empty: the STELE_MYSQL_DSN environment variable"),
		opt("public-tiles-url", "public_tiles_url", &s.publicTilesURL, "", "aws: redirect (302) tlog-tiles reads to this base URL (the bucket or a CDN) instead of proxying them"),
		opt("log-key", "log_key", &s.logKey, "", "the log's private key file (never created); default: log.key in --data-dir, created when absent. Replicas must share one key"),
		opt("mldsa", "mldsa", &s.mldsa, "auto", "also sign checkpoints with an ML-DSA-44 key (log-mldsa.key in --data-dir; log.pub lists both keys): auto (a new log gets one, an existing log keeps what it has), on (add one to an existing log) or off"),
		opt("log-mldsa-key", "log_mldsa_key", &s.logMLDSAKey, "", "the log's ML-DSA-44 private key file (never created) that goes with --log-key or --log-key-pkcs11; replicas must share it"),
		opt("log-key-pkcs11", "", &s.logKeyPKCS11, "", "the log's key inside a PKCS#11 token (an HSM): module=PATH;token=LABEL;label=KEYLABEL; needs --origin; PIN from --pkcs11-pin-file or $STELE_PKCS11_PIN (docs/operations.md)"),
		opt("log-key-kms", "", &s.logKeyKMS, "", "the log's Ed25519 key in AWS KMS (key spec ECC_NIST_EDWARDS25519): its ARN, key ID or alias/NAME; needs --origin; credentials from the AWS SDK's standard chain (docs/operations.md)"),
		opt("log-key-gcpkms", "", &s.logKeyGCPKMS, "", "the log's Ed25519 key in Google Cloud KMS (algorithm EC_SIGN_ED25519): projects/P/locations/L/keyRings/R/cryptoKeys/K/cryptoKeyVersions/N; needs --origin; credentials from Application Default Credentials (docs/operations.md)"),
		opt("otlp-endpoint", "otlp_endpoint", &s.otlpEndpoint, "", "send OpenTelemetry traces over OTLP/HTTP to this URL (e.g. http://127.0.0.1:4318); off by default; the OTEL_EXPORTER_OTLP_* variables also turn it on (docs/operations.md)"),
		opt("read-only", "", &s.readOnly, false, "serve the log (tiles, checkpoint, proofs, receipts, payloads) without ever appending: Append and EraseEvent answer FailedPrecondition; nothing is written. A frozen log is always served so"),
		opt("successor-key", "", &s.successorKey, "", "the verifier key (or a file holding it) of the log that continues this one; read-only refusals and `freeze` name it"),
		opt("successor-url", "", &s.successorURL, "", "where the successor log's tlog-tiles API is served (http(s) URL), named with --successor-key"),
		opt("predecessor-key", "", &s.predecessorKey, "", "the verifier key (or a file holding it) of the log this one continues; the explorer (/ui/) names it"),
		opt("predecessor-url", "", &s.predecessorURL, "", "where the predecessor log's tlog-tiles API is served: the explorer verifies its freeze statement names this log"),
		opt("freeze-timeout", "", &s.freezeTimeout, 2*time.Minute, "freeze: how long to wait for the final checkpoint to be published and cosigned"),
		opt("pkcs11-pin-file", "", &s.pkcs11PINFile, "", "file holding the PKCS#11 token's user PIN (default: $STELE_PKCS11_PIN)"),
		opt("claim-lease", "claim_lease", &s.claimLease, 2*time.Minute, "aws: how long a replica's claim on an event stands before another replica may check the log and take it over (docs/decisions.md)"),
		opt("header-timeout", "header_timeout", &s.headerTimeout, connlimit.DefaultHeaderTimeout, "how long a new connection has to send its HTTP request headers or finish its TLS/HTTP2 handshake (both listeners)"),
		opt("idle-timeout", "idle_timeout", &s.idleTimeout, connlimit.DefaultIdleTimeout, "close an HTTP keep-alive connection with no request, or a gRPC connection with no call, after this long"),
		opt("max-conns", "max_conns", &s.maxConns, connlimit.DefaultMaxConns, "connections open at once on each listener; more wait until one closes"),
		opt("fix-permissions", "", &s.fixPermissions, false, "if the data directory is accessible to other users, remove their access to it and everything in it (chmod -R go-rwx) instead of refusing to start"),
		opt("retention", "retention", &s.retention, "", "aws: S3 Object Lock on every tile and entry bundle, MODE:DURATION (governance|compliance, e.g. compliance:7y); needs a bucket with Object Lock (docs/security.md)"),
	}
}

// serverConfig is the server.Config the settings describe.
func (s *settings) serverConfig() (server.Config, error) {
	if s.minFreeDisk < 0 {
		return server.Config{}, fmt.Errorf("--min-free-disk-mib %d: the reserve cannot be negative", s.minFreeDisk)
	}
	if s.maxStreams > math.MaxUint32 {
		return server.Config{}, fmt.Errorf("--max-concurrent-streams %d: at most %d", s.maxStreams, uint32(math.MaxUint32))
	}
	cfg := server.Config{
		DataDir:              s.dataDir,
		Origin:               s.origin,
		CheckpointInterval:   s.cpInterval,
		BatchMaxSize:         s.batchMaxSize,
		BatchMaxAge:          s.batchMaxAge,
		MaxRecordBytes:       s.maxRecordBytes,
		MaxBatchEvents:       s.maxBatchEvents,
		MaxClockSkew:         s.maxClockSkew,
		RebuildIndexes:       s.rebuild,
		MinFreeDiskMiB:       s.minFreeDisk,
		WitnessTimeout:       s.witnessTimeout,
		WitnessFailOpen:      s.witnessFailOpen,
		TLSCertFile:          s.tlsCert,
		TLSKeyFile:           s.tlsKey,
		ClientCAFile:         s.clientCA,
		AuthPolicyFile:       s.authPolicy,
		RateLimit:            s.rateLimit,
		RateBurst:            s.rateBurst,
		MaxRequestBytes:      s.maxRequestBytes,
		MaxInflightBytes:     s.maxInflightBytes,
		MaxConcurrentStreams: uint32(s.maxStreams),
		LogKeyFile:           s.logKey,
		LogMLDSAKeyFile:      s.logMLDSAKey,
		FixPermissions:       s.fixPermissions,
	}
	mldsa, err := logkey.ParseMLDSA(s.mldsa)
	if err != nil {
		return server.Config{}, usageError{fmt.Errorf("--mldsa: %w", err)}
	}
	cfg.MLDSA = mldsa
	if s.witnessPolicy != "" {
		b, err := os.ReadFile(s.witnessPolicy)
		if err != nil {
			return server.Config{}, fmt.Errorf("reading witness policy: %w", err)
		}
		cfg.WitnessPolicy = b
	}
	cfg.Backend, err = storageBackend(s.storage, awsbackend.Config{
		Bucket: s.s3Bucket, Prefix: s.s3Prefix, Endpoint: s.s3Endpoint, Region: s.s3Region, PathStyle: s.s3PathStyle,
		DSN: s.mysqlDSN, PublicTilesURL: s.publicTilesURL, Retention: s.retention, ClaimLease: s.claimLease,
	})
	if err != nil {
		return server.Config{}, err
	}
	return cfg, nil
}

// register defines the options that have a flag on fs.
func register(fs *flag.FlagSet, opts []option) {
	for _, o := range opts {
		if o.flag == "" {
			continue
		}
		switch p := o.ptr.(type) {
		case *string:
			fs.StringVar(p, o.flag, *p, o.usage)
		case *bool:
			fs.BoolVar(p, o.flag, *p, o.usage)
		case *int:
			fs.IntVar(p, o.flag, *p, o.usage)
		case *int64:
			fs.Int64Var(p, o.flag, *p, o.usage)
		case *uint:
			fs.UintVar(p, o.flag, *p, o.usage)
		case *float64:
			fs.Float64Var(p, o.flag, *p, o.usage)
		case *time.Duration:
			fs.DurationVar(p, o.flag, *p, o.usage)
		default:
			panic(fmt.Sprintf("option %s: no flag for %T", o.flag, p))
		}
	}
}

// loadFile applies the JSON config file at path to the options whose flag
// is not in given (the flags set on the command line). Unknown keys are an
// error.
func loadFile(path string, opts []option, given map[string]bool) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading config: %w", err)
	}
	var keys map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&keys); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	byKey := make(map[string]option, len(opts))
	for _, o := range opts {
		if o.key != "" {
			byKey[o.key] = o
		}
	}
	for k := range keys {
		if _, ok := byKey[k]; !ok {
			return fmt.Errorf("config %s: json: unknown field %q", path, k)
		}
	}
	for _, o := range opts {
		v, ok := keys[o.key]
		if !ok || o.key == "" || (o.flag != "" && given[o.flag]) {
			continue
		}
		if err := o.fromJSON(v); err != nil {
			return fmt.Errorf("config %s: %s: %w", path, o.key, err)
		}
	}
	return nil
}

// setNonZero sets *p from the JSON value v unless v is null or its type's
// zero value. A duration is a string such as "1s".
func setNonZero[T comparable](p *T, v json.RawMessage) error {
	var x, zero T
	if err := unmarshal(&x, v); err != nil {
		return err
	}
	if x != zero {
		*p = x
	}
	return nil
}

// unmarshal decodes the JSON value v into *x, a duration from a string
// ("" is zero).
func unmarshal(x any, v json.RawMessage) error {
	d, ok := x.(*time.Duration)
	if !ok {
		return json.Unmarshal(v, x)
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return errors.New(`durations are strings such as "1s" or "250ms"`)
	}
	if s == "" {
		return nil
	}
	var err error
	*d, err = time.ParseDuration(s)
	return err
}
