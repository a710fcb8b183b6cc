// Package connlimit holds the connection limits of Stele's public listeners
// (the server's gRPC and HTTP listeners, the witness's HTTP listener): how
// long a new connection may take to send its request headers or finish its
// handshake, how long a connection may sit idle, how long a request may take
// to read and its answer to write, and how many connections may be open at
// once. Without them a client that opens connections and never uses them,
// or keeps them alive and idle, holds memory and descriptors for ever.
package connlimit

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"golang.org/x/net/netutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
)

// Defaults (see docs/configuration.md).
const (
	DefaultHeaderTimeout = 10 * time.Second
	DefaultIdleTimeout   = 2 * time.Minute
	DefaultMaxConns      = 1024
	// ReadTimeout bounds reading one HTTP request, body included. The
	// public HTTP APIs take GETs and add-checkpoint bodies of at most 1 MiB.
	ReadTimeout = 30 * time.Second
	// WriteTimeout bounds writing one HTTP answer: tiles and entry bundles
	// are at most a few hundred KiB, so a client that does not read them in
	// this time is not a client.
	WriteTimeout = 2 * time.Minute
	// MaxHeaderBytes bounds HTTP request headers.
	MaxHeaderBytes = 64 << 10
	// KeepaliveTime is how long a gRPC connection may be silent before the
	// server pings it, and KeepaliveTimeout how long it waits for the ack
	// before closing it: a peer that vanished does not hold its streams.
	KeepaliveTime    = time.Minute
	KeepaliveTimeout = 20 * time.Second
	// MinPingInterval is the most often a gRPC client may send keepalive
	// pings; more often (or any ping on a connection with no call) gets the
	// connection closed with GOAWAY "too_many_pings".
	MinPingInterval = 30 * time.Second
)

// Limits are one listener's connection limits. Zero fields take the
// defaults.
type Limits struct {
	// HeaderTimeout is how long a new connection has to send its HTTP
	// request headers (TLS handshake included), or to finish its TLS and
	// HTTP/2 handshake on gRPC.
	HeaderTimeout time.Duration
	// IdleTimeout closes an HTTP keep-alive connection with no request,
	// and a gRPC connection with no call in progress, after this long.
	IdleTimeout time.Duration
	// MaxConns caps the connections open at once on the listener; more
	// wait in the kernel's accept queue until one closes.
	MaxConns int
}

// WithDefaults returns l with zero fields set to the defaults.
func (l Limits) WithDefaults() Limits {
	if l.HeaderTimeout == 0 {
		l.HeaderTimeout = DefaultHeaderTimeout
	}
	if l.IdleTimeout == 0 {
		l.IdleTimeout = DefaultIdleTimeout
	}
	if l.MaxConns == 0 {
		l.MaxConns = DefaultMaxConns
	}
	return l
}

// Check reports a limit that cannot work.
func (l Limits) Check() error {
	switch {
	case l.HeaderTimeout < 0 || l.IdleTimeout < 0:
		return errors.New("connection timeouts cannot be negative")
	case l.MaxConns < 0:
		return fmt.Errorf("max connections %d cannot be negative", l.MaxConns)
	}
	return nil
}

// Listener caps ln at MaxConns open connections. Wrap the TCP listener
// (before TLS), so that a connection stuck in its handshake counts.
func (l Limits) Listener(ln net.Listener) net.Listener {
	return netutil.LimitListener(ln, l.WithDefaults().MaxConns)
}

// HTTPServer returns an http.Server for h with these limits.
func (l Limits) HTTPServer(h http.Handler) *http.Server {
	l = l.WithDefaults()
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: l.HeaderTimeout,
		ReadTimeout:       max(ReadTimeout, l.HeaderTimeout),
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       l.IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
	}
}

// GRPCOptions are the gRPC server options for these limits: the handshake
// timeout, keepalive (idle connections closed, silent peers pinged) and
// the keepalive enforcement policy.
func (l Limits) GRPCOptions() []grpc.ServerOption {
	l = l.WithDefaults()
	return []grpc.ServerOption{
		grpc.ConnectionTimeout(l.HeaderTimeout),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			MaxConnectionIdle: l.IdleTimeout,
			Time:              KeepaliveTime,
			Timeout:           KeepaliveTimeout,
		}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: MinPingInterval}),
	}
}
