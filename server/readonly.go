package server

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/mod/sumdb/note"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/internal/logkey"
	"github.com/stele-dev/stele/internal/tiles"
)

// A read-only server (Config.ReadOnly, or any server of a frozen log) opens
// the log, serves its tiles, checkpoint, proofs, receipts and payloads, and
// never starts Tessera's appender: it writes nothing to the data directory,
// the bucket or the database. Append, AppendStream and EraseEvent answer
// FailedPrecondition, naming the successor log when there is one.

// readOnlyKey is the log's key for a read-only server, which signs
// nothing: the configured key if any (a key file is only read), else the
// data directory's log.key if present, else its log.pub.
func readOnlyKey(cfg *Config) (*logkey.Key, error) {
	switch {
	case cfg.LogKey != nil:
		return cfg.LogKey, nil
	case cfg.LogKeyFile != "":
		return logkey.Load(cfg.LogKeyFile, cfg.Origin)
	}
	priv := filepath.Join(cfg.DataDir, logkey.PrivateFile)
	if _, err := os.Stat(priv); err == nil {
		return logkey.Load(priv, cfg.Origin)
	}
	pub := filepath.Join(cfg.DataDir, logkey.PublicFile)
	if _, err := os.Stat(pub); err != nil {
		return nil, fmt.Errorf("read-only: no log key and no verifier key in the data directory (%s): %w", cfg.DataDir, err)
	}
	lv, err := logkey.ReadVerifier(pub) // one line per key: Ed25519 first, then ML-DSA-44
	if err != nil {
		return nil, fmt.Errorf("read-only: %w", err)
	}
	if cfg.Origin != "" && lv.Name() != cfg.Origin {
		return nil, fmt.Errorf("read-only: the log's verifier key is for origin %q but the origin is set to %q", lv.Name(), cfg.Origin)
	}
	raw, _ := os.ReadFile(pub)
	return &logkey.Key{Verifier: lv, VKey: strings.Fields(string(raw))[0]}, nil
}

// staticReader is the LogReader of a read-only server: the published
// checkpoint's tree is the log (nothing is integrated behind it).
type staticReader struct{ tiles.Reader }

func (r staticReader) IntegratedSize(ctx context.Context) (uint64, error) {
	raw, err := r.ReadCheckpoint(ctx)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	// The checkpoint's signature is checked by checkpoints.refresh; here
	// only its size line is read.
	lines := strings.SplitN(string(raw), "\n", 3)
	if len(lines) < 3 {
		return 0, errors.New("the published checkpoint has no size line")
	}
	return strconv.ParseUint(lines[1], 10, 64)
}

func (r staticReader) NextIndex(ctx context.Context) (uint64, error) { return r.IntegratedSize(ctx) }

// startReadOnly starts serving the log without an appender.
func (s *Server) startReadOnly(ctx context.Context) error {
	f, err := s.readFreeze(ctx)
	if err != nil {
		return err
	}
	s.frozen = f
	s.readOnly = true
	s.reader = newCachingReader(staticReader{s.st.Reader()})
	s.shutdown = func(context.Context) error { return nil }
	s.cps = newCheckpoints(s)
	go s.cps.run(ctx)
	s.admit = &admitter{cfg: &s.cfg, store: s.store, now: func() time.Time { return time.Now().UTC() }, m: s.m, closed: make(chan struct{}), inflight: map[dedupKey]*flight{}}
	size, _ := s.reader.IntegratedSize(ctx)
	if f != nil {
		if cp := s.cps.latest(); cp == nil || cp.size != f.Size || string(cp.root) != string(f.Root[:]) {
			return fmt.Errorf("log %s is frozen at size %d but its published checkpoint is not that tree: the log changed after it was frozen, or the freeze statement does not belong to it", s.cfg.Origin, f.Size)
		}
		s.log.Info("log open, frozen: serving read-only", "origin", s.cfg.Origin, "size", size, "successor", f.Successor, "successor_url", f.SuccessorURL)
	} else {
		s.log.Info("log open read-only", "origin", s.cfg.Origin, "size", size, "data_dir", s.cfg.DataDir, "verifier_key", s.key.VKey)
	}
	return nil
}

// registerLifecycleMetrics exports whether the log is served read-only and
// whether it is frozen (with its final size), for alerts and dashboards:
// a frozen log's checkpoint stops moving by design.
func (s *Server) registerLifecycleMetrics() {
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	s.m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "stele_log_read_only", Help: "1 while the log is served read-only (--read-only, or frozen): appends are refused."},
			func() float64 { return b(s.readOnly) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "stele_log_frozen", Help: "1 once the log is frozen (its freeze statement published): it never grows again."},
			func() float64 { return b(s.frozen != nil) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "stele_log_frozen_size", Help: "The final tree size a frozen log's freeze statement names (0 while not frozen)."},
			func() float64 {
				if f := s.frozen; f != nil {
					return float64(f.Size)
				}
				return 0
			}),
	)
}

// lifecycle describes, for /healthz, how the log is served: "read-write",
// "read-only" or "frozen", with the freeze statement's description and the
// successor when known.
func (s *Server) lifecycle() map[string]any {
	out := map[string]any{"mode": "read-write"}
	if s.readOnly {
		out["mode"] = "read-only"
	}
	if f := s.frozen; f != nil {
		out["mode"] = "frozen"
		out["frozen"] = f.String()
		out["frozen_size"] = f.Size
	}
	if origin, _, url := s.successor(); origin != "" && s.readOnly {
		out["successor"] = origin
		if url != "" {
			out["successor_url"] = url
		}
	}
	return out
}

// ReadOnly reports whether the server refuses appends (Config.ReadOnly, or
// a frozen log).
func (s *Server) ReadOnly() bool { return s.readOnly }

// Frozen returns the log's freeze statement, or nil when it is not frozen.
func (s *Server) Frozen() *client.Freeze { return s.frozen }

// successor names the log that continues this one: the freeze statement's,
// else the configured one.
func (s *Server) successor() (origin, key, url string) {
	if f := s.frozen; f != nil && f.Successor != "" {
		return f.Successor, f.SuccessorKey, f.SuccessorURL
	}
	if s.cfg.SuccessorKey != "" {
		if v, err := note.NewVerifier(s.cfg.SuccessorKey); err == nil {
			origin = v.Name()
		}
	}
	return origin, s.cfg.SuccessorKey, s.cfg.SuccessorURL
}

// refuseWrites is the FailedPrecondition a read-only or frozen log answers
// to what would write: append or erase.
func (s *Server) refuseWrites(what string) error {
	var b strings.Builder
	meta := map[string]string{client.MetaOrigin: s.cfg.Origin}
	if f := s.frozen; f != nil {
		fmt.Fprintf(&b, "log %s is frozen at size %d: it takes no more %s", s.cfg.Origin, f.Size, what)
		meta[client.MetaFrozenSize] = strconv.FormatUint(f.Size, 10)
	} else {
		fmt.Fprintf(&b, "log %s is served read-only: it takes no %s here", s.cfg.Origin, what)
	}
	if origin, key, url := s.successor(); origin != "" {
		fmt.Fprintf(&b, "; its successor is log %s", origin)
		if url != "" {
			fmt.Fprintf(&b, " at %s", url)
		}
		b.WriteString(": send new events there")
		meta[client.MetaSuccessor], meta[client.MetaSuccessorKey] = origin, key
		if url != "" {
			meta[client.MetaSuccessorURL] = url
		}
	}
	st := status.New(codes.FailedPrecondition, b.String())
	if d, err := st.WithDetails(&errdetails.ErrorInfo{Reason: client.ReadOnlyReason, Domain: client.ErrorDomain, Metadata: meta}); err == nil {
		st = d
	}
	return st.Err()
}

// readOnlyDesc replaces, on a read-only server, the handlers that write.
func (s *Server) readOnlyDesc(d *grpc.ServiceDesc) *grpc.ServiceDesc {
	if !s.readOnly {
		return d
	}
	for i, m := range d.Methods {
		switch m.MethodName {
		case "Append":
			d.Methods[i].Handler = func(any, context.Context, func(any) error, grpc.UnaryServerInterceptor) (any, error) {
				return nil, s.refuseWrites("events")
			}
		case "EraseEvent":
			d.Methods[i].Handler = func(any, context.Context, func(any) error, grpc.UnaryServerInterceptor) (any, error) {
				return nil, s.refuseWrites("erasures")
			}
		}
	}
	for i, st := range d.Streams {
		if st.StreamName == "AppendStream" {
			d.Streams[i].Handler = func(any, grpc.ServerStream) error { return s.refuseWrites("events") }
		}
	}
	return d
}
