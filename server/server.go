// Package server is Stele's log service: admission of identity events, a
// Tessera log with signed checkpoints, and the gRPC and HTTP read APIs. A Go
// program can embed it; cmd/stele-server only parses flags and wires it up.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera"

	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/internal/durable"
	"github.com/stele-dev/stele/internal/logkey"
	"github.com/stele-dev/stele/server/backend"
	"github.com/stele-dev/stele/server/backend/posix"
)

// DefaultOrigin is the origin of a log created without one.
const DefaultOrigin = "stele.localhost/log"

// Config configures a Server. Zero values take the documented defaults.
type Config struct {
	// DataDir holds the log, the payload store and the log key.
	// Default "./stele-data". With the aws backend it holds only the log key.
	DataDir string
	// Backend is where the log is kept: posix.New() (the default: DataDir)
	// from server/backend/posix, or aws.New(...) from server/backend/aws
	// (an S3-compatible bucket and a MySQL-compatible database shared by
	// replicas).
	Backend backend.Backend
	// LogKeyFile is the log's private key file. Empty: DataDir/log.key,
	// created when absent. A named file is never created: replicas on aws
	// must share one key.
	LogKeyFile string
	// MLDSA says whether checkpoints are also signed with an ML-DSA-44 key
	// (DataDir/log-mldsa.key): by default a new log gets one and an
	// existing log keeps what it has (logkey.MLDSAAuto).
	MLDSA logkey.MLDSA
	// LogMLDSAKeyFile is the ML-DSA-44 private key file that goes with
	// LogKeyFile or LogKey (never created; replicas share it). Empty: the
	// log signs with its Ed25519 key only.
	LogMLDSAKeyFile string
	// LogKey, when set, is the log's key, held elsewhere (an HSM through
	// PKCS#11: logkey.FromSigner over internal/hsm); LogKeyFile and the data
	// directory's log.key are then not read. Its verifier key is written to
	// DataDir/log.pub. The caller closes whatever holds it after Close.
	LogKey *logkey.Key
	// Origin names the log in its checkpoints. Empty means the existing
	// key's origin, or DefaultOrigin for a new log.
	Origin string
	// CheckpointInterval is how often a checkpoint is published. Default 1s.
	CheckpointInterval time.Duration
	// BatchMaxSize and BatchMaxAge bound Tessera's sequencing batches.
	// Defaults 1024 entries and 50ms.
	BatchMaxSize uint
	BatchMaxAge  time.Duration
	// MaxRecordBytes caps one raw record. Default 1 MiB.
	MaxRecordBytes int
	// MaxBatchEvents caps the events in one Append request. Default 10000.
	MaxBatchEvents int
	// MaxClockSkew is how far in the future an event_time may be. Default 1h.
	MaxClockSkew time.Duration
	// MinFreeDiskMiB is the free space (MiB) the data directory's file
	// system must keep: below it, appends are refused with Unavailable until
	// space is freed. The reserve lets the stores flush and compact; a write
	// that meets a full disk inside Pebble's WAL stops the process. Default 256.
	MinFreeDiskMiB int
	// WitnessPolicy is a C2SP tlog-policy (as Tessera's
	// NewWitnessGroupFromPolicy reads it). When set, a checkpoint is
	// published only once the policy's quorum of witnesses has cosigned it.
	WitnessPolicy []byte
	// WitnessTimeout bounds each round of witnessing. Default 5s.
	WitnessTimeout time.Duration
	// WitnessFailOpen publishes a checkpoint even when the policy could not
	// be met in time. Off by default (fail closed): an unwitnessed
	// checkpoint is never published.
	WitnessFailOpen bool
	// RebuildIndexes drops the dedup and leaf-hash indexes at start and
	// rebuilds them from the log itself.
	RebuildIndexes bool
	// TLSCertFile and TLSKeyFile, when set, put both listeners on TLS
	// (Server.GRPCOptions, Server.HTTPTLSConfig). The files are read again
	// when they change. See docs/security.md.
	TLSCertFile string
	TLSKeyFile  string
	// ClientCAFile verifies client certificates (mutual TLS). Needs TLS and
	// AuthPolicyFile.
	ClientCAFile string
	// AuthPolicyFile is the JSON access policy: identities, roles, sources.
	// When set, every gRPC call needs an identity it names. Read again when
	// it changes. Empty: no authentication (anyone who can connect may
	// append and read).
	AuthPolicyFile string
	// RateLimit is the events per second an identity may append, and
	// RateBurst how many it may send at once, for identities whose access
	// policy entry sets no rate (and for every caller without a policy, as
	// one identity "anonymous"). RateLimit 0: no limit (the default). A
	// refused batch gets ResourceExhausted with a retry hint.
	RateLimit float64
	RateBurst int
	// MaxRequestBytes caps one gRPC message (an Append request or a stream
	// batch). Default 64 MiB; it must hold one record of MaxRecordBytes.
	MaxRequestBytes int
	// MaxInflightBytes caps the bytes of Append requests being admitted
	// at once across the server; a request that does not fit is refused
	// with ResourceExhausted and a retry hint rather than queued. Default
	// 256 MiB; at least MaxRequestBytes.
	MaxInflightBytes int64
	// MaxConcurrentStreams caps concurrent calls per gRPC connection.
	// Default 100.
	MaxConcurrentStreams uint32
	// FixPermissions tightens a data directory that other users can reach
	// (and everything in it) instead of refusing to start.
	FixPermissions bool
	// Logger receives structured logs. Default slog.Default().
	Logger *slog.Logger
	// ReadOnly serves the log without ever starting the appender: nothing
	// is written, and Append and EraseEvent answer FailedPrecondition
	// (readonly.go). A frozen log is always served read-only.
	ReadOnly bool
	// SuccessorKey and SuccessorURL name the log that continues this one
	// (its verifier key, whose name is its origin, and where it is served),
	// for read-only refusals; a frozen log's freeze statement names its own.
	SuccessorKey string
	SuccessorURL string
	// PredecessorKey and PredecessorURL name the log this one continues,
	// for the explorer (/ui/), which verifies that the predecessor's freeze
	// statement names this log. Optional.
	PredecessorKey string
	PredecessorURL string
}

func (c *Config) setDefaults() {
	if c.DataDir == "" {
		c.DataDir = "./stele-data"
	}
	if c.Backend == nil {
		c.Backend = posix.New()
	}
	if c.CheckpointInterval == 0 {
		c.CheckpointInterval = time.Second
	}
	if c.BatchMaxSize == 0 {
		c.BatchMaxSize = 1024
	}
	if c.BatchMaxAge == 0 {
		c.BatchMaxAge = 50 * time.Millisecond
	}
	if c.MaxRecordBytes == 0 {
		c.MaxRecordBytes = 1 << 20
	}
	if c.MaxBatchEvents == 0 {
		c.MaxBatchEvents = 10000
	}
	if c.MaxClockSkew == 0 {
		c.MaxClockSkew = time.Hour
	}
	if c.MinFreeDiskMiB == 0 {
		c.MinFreeDiskMiB = 256
	}
	if c.WitnessTimeout == 0 {
		c.WitnessTimeout = tessera.DefaultWitnessTimeout
	}
	if c.MaxRequestBytes == 0 {
		c.MaxRequestBytes = 64 << 20
	}
	if c.MaxInflightBytes == 0 {
		c.MaxInflightBytes = 256 << 20
	}
	if c.MaxConcurrentStreams == 0 {
		c.MaxConcurrentStreams = 100
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Server is a running Stele log. Register its gRPC service with
// RegisterGRPC, serve HTTPHandler, and call Close to shut it down.
type Server struct {
	cfg      Config
	log      *slog.Logger
	key      *logkey.Key
	store    payloadStore
	st       backend.Storage
	reader   *cachingReader
	shutdown func(context.Context) error
	admit    *admitter
	cps      *checkpoints
	m        *metrics
	auth     *authState
	limits   *limits
	cancel   context.CancelFunc
	readOnly bool           // readonly.go
	frozen   *client.Freeze // freeze.go

	eraseMu sync.Mutex

	closeOnce sync.Once
	closeErr  error
}

// New opens (or creates) the log in cfg.DataDir, rebuilds the dedup index
// for any entries sequenced after it was last saved, and starts sequencing.
func New(ctx context.Context, cfg Config) (*Server, error) {
	cfg.setDefaults()
	if err := cfg.checkLimits(); err != nil {
		return nil, err
	}
	fixed, err := durable.PrivateDir(cfg.DataDir, cfg.FixPermissions)
	if err != nil {
		return nil, err
	}
	if fixed > 0 {
		cfg.Logger.Warn("tightened the data directory's permissions (go-rwx)", "dir", cfg.DataDir, "entries", fixed)
	}
	if cfg.TLSKeyFile != "" {
		if err := durable.CheckSecretFile(cfg.TLSKeyFile, "TLS key"); err != nil {
			return nil, err
		}
	}
	if _, isPOSIX := cfg.Backend.(posix.Backend); isPOSIX && !cfg.ReadOnly {
		if _, err := os.Stat(filepath.Join(cfg.DataDir, "log", client.FreezePath)); err == nil {
			cfg.Logger.Warn("the log is frozen: serving it read-only", "data_dir", cfg.DataDir)
			cfg.ReadOnly = true
		}
	}
	var key *logkey.Key
	switch {
	case cfg.ReadOnly:
		key, err = readOnlyKey(&cfg)
	case cfg.LogKey != nil:
		key = cfg.LogKey
		if cfg.Origin != "" && key.Signer.Name() != cfg.Origin {
			return nil, fmt.Errorf("the log key is for origin %q but the origin is set to %q", key.Signer.Name(), cfg.Origin)
		}
	case cfg.LogKeyFile != "":
		key, err = logkey.Load(cfg.LogKeyFile, cfg.Origin)
	default:
		key, err = logkey.LoadOrCreate(cfg.DataDir, cfg.Origin, DefaultOrigin, cfg.MLDSA)
	}
	if err != nil {
		return nil, err
	}
	if cfg.LogMLDSAKeyFile != "" {
		if cfg.LogKeyFile == "" && cfg.LogKey == nil {
			return nil, errors.New("a named ML-DSA-44 key file goes with a named log key (--log-key or --log-key-pkcs11); without one, log-mldsa.key in the data directory is used")
		}
		if cfg.MLDSA == logkey.MLDSAOff {
			return nil, errors.New("an ML-DSA-44 key file is named but ML-DSA-44 signing is off")
		}
		k := *key
		if k.MLDSA, err = logkey.LoadMLDSA(cfg.LogMLDSAKeyFile, key.Signer.Name()); err != nil {
			return nil, err
		}
		key = &k
	}
	if cfg.LogKey != nil && !cfg.ReadOnly {
		if err := key.WritePublic(cfg.DataDir); err != nil {
			return nil, err
		}
	}
	cfg.Origin = key.Verifier.Name()
	m := newMetrics()
	auth, err := newAuth(&cfg, m.reg)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger, key: key, m: m, auth: auth, limits: newLimits(&cfg, m.reg)}
	s.registerLifecycleMetrics() // readonly.go
	st, err := cfg.Backend.Open(ctx, backend.Env{
		DataDir: cfg.DataDir, VerifierKey: key.VKey, CheckpointInterval: cfg.CheckpointInterval,
		HTTPClient: s.witnessClient(), Logger: cfg.Logger, ReadOnly: cfg.ReadOnly,
	})
	if err != nil {
		return nil, err
	}
	s.st, s.store = st, st.Payloads()
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	if err := s.start(bg); err != nil {
		cancel()
		s.st.Close()
		return nil, err
	}
	return s, nil
}

func (s *Server) start(ctx context.Context) error {
	if s.cfg.ReadOnly {
		return s.startReadOnly(ctx)
	}
	if f, err := s.readFreeze(ctx); err != nil || f != nil {
		if err != nil {
			return err
		}
		s.log.Warn("the log is frozen: serving it read-only")
		return s.startReadOnly(ctx)
	}
	opts := tessera.NewAppendOptions().
		WithCheckpointSigner(s.key.Signer, s.key.AdditionalSigners()...).
		WithCheckpointInterval(s.cfg.CheckpointInterval).
		WithBatching(s.cfg.BatchMaxSize, s.cfg.BatchMaxAge)
	s.st.TuneAppend(opts)
	if len(s.cfg.WitnessPolicy) > 0 {
		wg, err := tessera.NewWitnessGroupFromPolicy(s.cfg.WitnessPolicy)
		if err != nil {
			return fmt.Errorf("witness policy: %w", err)
		}
		if wg.N <= 0 {
			return errors.New("witness policy: the quorum needs no witness; drop the policy or name a quorum")
		}
		opts.WithWitnesses(wg, &tessera.WitnessOptions{Timeout: s.cfg.WitnessTimeout, FailOpen: s.cfg.WitnessFailOpen})
		s.log.Info("witness policy", "witnesses", len(wg.Endpoints()), "timeout", s.cfg.WitnessTimeout, "fail_open", s.cfg.WitnessFailOpen)
	}
	s.rewitnessAtStart(s.witnessPolicy())
	appender, shutdown, reader, err := tessera.NewAppender(ctx, s.st.Driver(), opts)
	if err != nil && len(s.cfg.WitnessPolicy) > 0 && s.st.Shared() == nil && strings.Contains(err.Error(), "failed to publish checkpoint") {
		// A new posix log publishes its empty checkpoint while starting;
		// Tessera gives up when the witnesses refuse it (one that does not
		// know the log yet answers 404). The log's directory now exists, so
		// a second start opens it without publishing, and the checkpoint
		// goes to the witnesses at every tick until they cosign it: the
		// server runs, admits, and reports stele_checkpoint_stalled.
		s.log.Warn("the new log's first checkpoint was not cosigned by the witness policy's quorum; starting anyway, checkpoints are published once the witnesses cosign", "err", err)
		appender, shutdown, reader, err = tessera.NewAppender(ctx, s.st.Driver(), opts)
	}
	if err != nil {
		return fmt.Errorf("starting log appender: %w", err)
	}
	// Proofs, receipts and entries read the same tiles again and again.
	s.reader, s.shutdown = newCachingReader(reader), shutdown

	size, err := reader.IntegratedSize(ctx)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("reading log size: %w", err)
	}
	if err := s.reindex(ctx, size, s.cfg.RebuildIndexes); err != nil {
		return err
	}
	s.cps = newCheckpoints(s)
	go s.cps.run(ctx)
	go s.st.Maintain(ctx, s.cps.publishedSize)
	var marks *watermark
	claims := s.st.Shared()
	if claims == nil {
		marks = newWatermark(s.store, s.log, size)
	} else {
		go s.followIndexes(ctx, time.Second)
	}
	s.admit = &admitter{
		cfg:    &s.cfg,
		store:  s.store,
		claims: claims,
		add:    appender.Add,
		readLeaf: func(ctx context.Context, idx uint64) ([]byte, error) {
			// A sequenced entry is integrated shortly after (on aws, within
			// about a second): wait a little for it rather than compare blind.
			ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			for {
				size, err := reader.IntegratedSize(ctx)
				if err != nil {
					return nil, err
				}
				if idx < size {
					return s.readLeaf(ctx, idx, size)
				}
				select {
				case <-ctx.Done():
					return nil, fmt.Errorf("entry %d is not integrated yet: %w", idx, ctx.Err())
				case <-time.After(50 * time.Millisecond):
				}
			}
		},
		now:      func() time.Time { return time.Now().UTC() },
		marks:    marks,
		next:     reader.NextIndex,
		m:        s.m,
		closed:   make(chan struct{}),
		inflight: make(map[dedupKey]*flight),
	}
	s.log.Info("log open", "origin", s.cfg.Origin, "size", size, "data_dir", s.cfg.DataDir, "verifier_key", s.key.VKey, "mldsa44", s.key.MLDSA != nil)
	return nil
}

// Origin is the log's origin.
func (s *Server) Origin() string { return s.cfg.Origin }

// VerifierKey is the log's signed-note verifier key.
func (s *Server) VerifierKey() string { return s.key.VKey }

// VerifierKeys are the log's verifier keys, log.pub's lines: the Ed25519
// key and, when the log also signs with ML-DSA-44, that key.
func (s *Server) VerifierKeys() []string { return s.key.VKeys() }

// Close stops admitting events, waits until every acknowledged event is
// covered by a published checkpoint (bounded by ctx), and closes storage.
func (s *Server) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		if err := s.admit.close(ctx); err != nil {
			// The store stays open: closing it under a running commit
			// would fail that commit's writes (pebble panics on a closed
			// DB). The process is ending; the kernel closes the files.
			s.closeErr = err
			s.cancel()
			return
		}
		if err := s.shutdown(ctx); err != nil {
			s.closeErr = fmt.Errorf("waiting for the final checkpoint: %w", err)
		}
		s.cancel()
		if err := s.st.Close(); err != nil && s.closeErr == nil {
			s.closeErr = err
		}
	})
	return s.closeErr
}

func leafHash(b []byte) [32]byte {
	return [32]byte(rfc6962.DefaultHasher.HashLeaf(b))
}
