package server

import (
	"context"
	"runtime/debug"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// recoveryOptions turn a panic in one RPC into an Internal error for that
// call, logged at ERROR with its stack and counted in
// stele_rpc_panics_total, instead of a crash of the whole server. They come
// first in the interceptor chains, so a panic in any later interceptor is
// caught too.
func (s *Server) recoveryOptions() []grpc.ServerOption {
	h := recovery.WithRecoveryHandlerContext(func(ctx context.Context, p any) error {
		method, _ := grpc.Method(ctx)
		s.m.panics.WithLabelValues(method).Inc()
		s.log.Error("panic in an RPC: the call failed with Internal, the server goes on", "method", method, "panic", p, "stack", string(debug.Stack()))
		return status.Errorf(codes.Internal, "internal error in %s (logged by the server)", method)
	})
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(recovery.UnaryServerInterceptor(h)),
		grpc.ChainStreamInterceptor(recovery.StreamServerInterceptor(h)),
	}
}
