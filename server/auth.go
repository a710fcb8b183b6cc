package server

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/stele-dev/stele/internal/tracing"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
)

// watched is a value loaded from files and loaded again whenever one of
// them changes (size, modification or status-change time, inode or
// device: a same-size replacement that keeps the modification time, as
// cp -p and rsync -a make, is still seen), checked on each use.
type watched[T any] struct {
	paths []string
	load  func() (T, error)
	// keep serves the last good value when a reload fails (certificates:
	// a half-replaced key pair must not take the server down). Without it
	// a failed reload is an error until the files are fixed (the policy:
	// fail closed).
	keep bool
	log  *slog.Logger
	what string

	mu    sync.Mutex
	stamp string
	val   T
	err   error
}

func newWatched[T any](what string, log *slog.Logger, keep bool, load func() (T, error), paths ...string) (*watched[T], error) {
	w := &watched[T]{paths: paths, load: load, keep: keep, log: log, what: what}
	w.stamp = w.stat()
	w.val, w.err = load()
	return w, w.err
}

func (w *watched[T]) stat() string {
	var b strings.Builder
	for _, p := range w.paths {
		fi, err := os.Stat(p)
		if err != nil {
			fmt.Fprintf(&b, "%s:err;", p)
			continue
		}
		fmt.Fprintf(&b, "%s:%d:%d:%s;", p, fi.Size(), fi.ModTime().UnixNano(), fileIdentity(fi))
	}
	return b.String()
}

// get returns the current value, reloading it first if the files changed
// (or always, with force).
func (w *watched[T]) get(force bool) (T, error) {
	st := w.stat()
	w.mu.Lock()
	defer w.mu.Unlock()
	if st == w.stamp && !force {
		return w.val, w.err
	}
	w.stamp = st
	v, err := w.load()
	switch {
	case err == nil:
		w.val, w.err = v, nil
		w.log.Info("reloaded "+w.what, "files", w.paths)
	case w.keep && w.err == nil:
		w.log.Error("reloading "+w.what+" failed; still serving the previous one", "err", err)
	default:
		var zero T
		w.val, w.err = zero, err
		w.log.Error("reloading "+w.what+" failed; refusing every call until it is fixed", "err", err)
	}
	return w.val, w.err
}

// authState is the server's transport security and access control.
type authState struct {
	log    *slog.Logger
	cert   *watched[*tls.Certificate] // nil without TLS
	ca     *watched[*x509.CertPool]   // nil without client certificates
	policy *watched[*policy]          // nil without an access policy
	denied *prometheus.CounterVec
}

func newAuth(cfg *Config, reg prometheus.Registerer) (*authState, error) {
	a := &authState{log: cfg.Logger}
	a.denied = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "stele_auth_denied_total",
		Help: "Calls (or, for Append, events) refused by authentication or authorisation, by gRPC code and reason.",
	}, []string{"code", "reason"})
	reg.MustRegister(a.denied)
	if (cfg.TLSCertFile == "") != (cfg.TLSKeyFile == "") {
		return nil, errors.New("TLS needs both a certificate and a key file")
	}
	if cfg.ClientCAFile != "" && cfg.TLSCertFile == "" {
		return nil, errors.New("client certificates (a client CA) need TLS: set the TLS certificate and key")
	}
	if cfg.ClientCAFile != "" && cfg.AuthPolicyFile == "" {
		return nil, errors.New("a client CA needs an access policy naming the certificate identities")
	}
	var err error
	if cfg.TLSCertFile != "" {
		certFile, keyFile := cfg.TLSCertFile, cfg.TLSKeyFile
		a.cert, err = newWatched("TLS certificate", a.log, true, func() (*tls.Certificate, error) {
			c, err := tls.LoadX509KeyPair(certFile, keyFile)
			if err != nil {
				return nil, fmt.Errorf("TLS certificate: %w", err)
			}
			return &c, nil
		}, certFile, keyFile)
		if err != nil {
			return nil, err
		}
	}
	if cfg.ClientCAFile != "" {
		caFile := cfg.ClientCAFile
		a.ca, err = newWatched("client CA", a.log, true, func() (*x509.CertPool, error) {
			b, err := os.ReadFile(caFile)
			if err != nil {
				return nil, fmt.Errorf("client CA: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(b) {
				return nil, fmt.Errorf("client CA %s: no PEM certificate in it", caFile)
			}
			return pool, nil
		}, caFile)
		if err != nil {
			return nil, err
		}
	}
	if cfg.AuthPolicyFile != "" {
		pf := cfg.AuthPolicyFile
		a.policy, err = newWatched("access policy", a.log, false, func() (*policy, error) {
			b, err := os.ReadFile(pf)
			if err != nil {
				return nil, fmt.Errorf("access policy: %w", err)
			}
			p, err := parsePolicy(b)
			if err != nil {
				return nil, fmt.Errorf("access policy %s: %w", pf, err)
			}
			return p, nil
		}, pf)
		if err != nil {
			return nil, err
		}
	}
	return a, nil
}

// TLSEnabled reports whether the server's listeners use TLS.
func (s *Server) TLSEnabled() bool { return s.auth.cert != nil }

// AuthEnabled reports whether gRPC calls need an identity from the access
// policy.
func (s *Server) AuthEnabled() bool { return s.auth.policy != nil }

// ReloadAuth reads the TLS certificate, the client CA and the access policy
// again now, whether or not their files look changed (stele-server does
// this on SIGHUP). Changed files are also picked up without it, at the next
// connection (certificates) or call (policy).
func (s *Server) ReloadAuth() {
	a := s.auth
	if a.cert != nil {
		a.cert.get(true)
	}
	if a.ca != nil {
		a.ca.get(true)
	}
	if a.policy != nil {
		a.policy.get(true)
	}
}

// TLSConfig is the server-side TLS configuration for a listener speaking
// nextProtos (ALPN), or nil without TLS. Every handshake uses the current
// certificate and client CA, reloaded when their files change. Client
// certificates are asked for but not required: a caller may use a bearer
// token instead, and the gRPC layer refuses calls with neither.
func (s *Server) TLSConfig(nextProtos ...string) *tls.Config {
	a := s.auth
	if a.cert == nil {
		return nil
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: nextProtos,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			cert, _ := a.cert.get(false)
			c := &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: nextProtos, Certificates: []tls.Certificate{*cert}}
			if a.ca != nil {
				pool, _ := a.ca.get(false)
				c.ClientCAs = pool
				c.ClientAuth = tls.VerifyClientCertIfGiven
			}
			return c, nil
		},
	}
}

// HTTPTLSConfig is the TLS configuration for the HTTP listener, or nil.
func (s *Server) HTTPTLSConfig() *tls.Config { return s.TLSConfig("h2", "http/1.1") }

// GRPCOptions are GRPCServerOptions with the configured request size and
// stream limits, the tap that authenticates and authorises every call
// before its request is read (with an access policy) and, when
// configured, TLS transport credentials.
func (s *Server) GRPCOptions() []grpc.ServerOption {
	opts := append(append(GRPCServerOptions(), s.recoveryOptions()...), grpc.MaxRecvMsgSize(s.cfg.MaxRequestBytes), grpc.MaxConcurrentStreams(s.cfg.MaxConcurrentStreams),
		grpc.InTapHandle(s.tap), grpc.ForceServerCodecV2(rawCodec{encoding.GetCodecV2(grpcproto.Name)}))
	opts = append(opts, tracing.ServerOptions()...)
	if c := s.TLSConfig("h2"); c != nil {
		opts = append(opts, grpc.Creds(countingCreds{credentials.NewTLS(c), s.auth.denied}))
	}
	return opts
}

// countingCreds counts failed TLS handshakes on the gRPC listener (a client
// certificate from another CA, expired, or no TLS at all) as denials.
type countingCreds struct {
	credentials.TransportCredentials
	denied *prometheus.CounterVec
}

func (c countingCreds) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	nc, ai, err := c.TransportCredentials.ServerHandshake(conn)
	if err != nil {
		c.denied.WithLabelValues(codes.Unauthenticated.String(), "tls_handshake").Inc()
	}
	return nc, ai, err
}

func (c countingCreds) Clone() credentials.TransportCredentials {
	return countingCreds{c.TransportCredentials.Clone(), c.denied}
}

// principal is what a caller presented: a bearer token's hash or a
// verified client certificate's identity.
type principal struct {
	token    [32]byte
	hasToken bool
	cert     string
}

func (p principal) String() string {
	if p.hasToken {
		return fmt.Sprintf("token sha256:%x…", p.token[:4])
	}
	return fmt.Sprintf("certificate %q", p.cert)
}

type principalKey struct{}

// CertIdentity is the identity Stele gives a verified client certificate:
// its first URI SAN (e.g. spiffe://example.org/stele/collector), or its
// subject CommonName when it has no URI SAN.
func CertIdentity(c *x509.Certificate) string {
	if len(c.URIs) > 0 {
		return c.URIs[0].String()
	}
	return c.Subject.CommonName
}

// deny counts a denial and returns it as a status error.
func (a *authState) deny(c codes.Code, reason, format string, args ...any) error {
	a.denied.WithLabelValues(c.String(), reason).Inc()
	return status.Errorf(c, format, args...)
}

// authenticate finds what the caller presented. A bearer token, when
// present, is what counts (a bad token is refused even with a good
// certificate); otherwise a client certificate verified against the CA.
func (a *authState) authenticate(ctx context.Context) (principal, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	if vals := md.Get("authorization"); len(vals) > 0 {
		if len(vals) > 1 {
			return principal{}, a.deny(codes.Unauthenticated, "bad_token", "more than one authorization header")
		}
		scheme, tok, ok := strings.Cut(vals[0], " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
			return principal{}, a.deny(codes.Unauthenticated, "bad_token", "the authorization header must be \"Bearer <token>\"")
		}
		return principal{token: sha256.Sum256([]byte(strings.TrimSpace(tok))), hasToken: true}, nil
	}
	if p, ok := peer.FromContext(ctx); ok {
		if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.VerifiedChains) > 0 && len(ti.State.VerifiedChains[0]) > 0 {
			return principal{cert: CertIdentity(ti.State.VerifiedChains[0][0])}, nil
		}
	}
	return principal{}, a.deny(codes.Unauthenticated, "no_credentials",
		"no credentials: present a client certificate signed by the server's client CA, or an \"authorization: Bearer <token>\" header")
}

// resolve maps a principal to its identity under the current policy.
func (a *authState) resolve(p principal) (*policy, *identity, error) {
	pol, err := a.policy.get(false)
	if err != nil {
		return nil, nil, a.deny(codes.Unavailable, "policy_invalid", "the server's access policy failed to load; retry later")
	}
	var id *identity
	if p.hasToken {
		id = pol.byToken[p.token]
		if id == nil {
			return nil, nil, a.deny(codes.Unauthenticated, "unknown_token", "the bearer token is not valid (unknown or revoked)")
		}
	} else {
		id = pol.byCert[p.cert]
		if id == nil {
			return nil, nil, a.deny(codes.Unauthenticated, "unknown_certificate", "client certificate identity %q is not in the access policy (unknown or revoked)", p.cert)
		}
	}
	return pol, id, nil
}

// authorize checks a call to method (from the tap, before the request is
// read). Health checks need nothing; the LogService methods need the roles
// in docs/security.md; other services (reflection) need any identity.
func (a *authState) authorize(ctx context.Context, method string) (context.Context, caller, error) {
	if strings.HasPrefix(method, "/grpc.health.v1.Health/") {
		return ctx, caller{}, nil
	}
	p, err := a.authenticate(ctx)
	if err != nil {
		return nil, caller{}, err
	}
	pol, id, err := a.resolve(p)
	if err != nil {
		return nil, caller{}, err
	}
	switch method {
	case stelev1.LogService_Append_FullMethodName, stelev1.LogService_AppendStream_FullMethodName:
		if !id.has(RoleProducer) {
			return nil, caller{}, a.deny(codes.PermissionDenied, "not_producer", "identity %q may not append: it lacks the producer role", id.name)
		}
	case stelev1.LogService_GetEvent_FullMethodName, stelev1.LogService_GetEventByID_FullMethodName, stelev1.LogService_GetEvents_FullMethodName:
		if !id.has(RoleReader) && !id.has(RoleAdmin) {
			return nil, caller{}, a.deny(codes.PermissionDenied, "not_reader", "identity %q may not read payloads: it lacks the reader role", id.name)
		}
	case stelev1.LogService_EraseEvent_FullMethodName:
		if !id.has(RoleAdmin) {
			return nil, caller{}, a.deny(codes.PermissionDenied, "not_admin", "identity %q may not erase: it lacks the admin role", id.name)
		}
	case stelev1.LogService_GetCheckpoint_FullMethodName, stelev1.LogService_GetInclusionProof_FullMethodName,
		stelev1.LogService_GetInclusionProofs_FullMethodName, stelev1.LogService_GetConsistencyProof_FullMethodName, stelev1.LogService_GetEntries_FullMethodName,
		stelev1.LogService_GetReceipt_FullMethodName:
	default:
		if strings.HasPrefix(method, "/stele.") {
			// A method with no rule yet is denied rather than left open.
			return nil, caller{}, a.deny(codes.PermissionDenied, "no_rule", "no access rule for %s", method)
		}
	}
	return context.WithValue(ctx, principalKey{}, p), caller{p: p, id: id, pol: pol}, nil
}

// callerName is the access-policy name of the caller, or "anonymous" on a
// server without an access policy.
func (s *Server) callerName(ctx context.Context) string {
	if s.auth.policy == nil {
		return "anonymous"
	}
	p, ok := ctx.Value(principalKey{}).(principal)
	if !ok {
		return "anonymous"
	}
	_, id, err := s.auth.resolve(p)
	if err != nil {
		return "unknown"
	}
	return id.name
}

// mayRead checks the caller's read grants (read_sources in the access
// policy) for a payload of source.
func (s *Server) mayRead(ctx context.Context, source string) error {
	a := s.auth
	if a.policy == nil {
		return nil
	}
	p, ok := ctx.Value(principalKey{}).(principal)
	if !ok {
		return status.Error(codes.Unauthenticated, "no identity")
	}
	_, id, err := a.resolve(p)
	if err != nil {
		return err
	}
	if !id.mayRead(source) {
		return a.deny(codes.PermissionDenied, "read_not_granted", "identity %q may not read payloads of source %q: it is not in its read_sources", id.name, source)
	}
	return nil
}
