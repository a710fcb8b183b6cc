package server

import (
	"context"
	"net/http"

	"google.golang.org/grpc/metadata"

	"github.com/stele-dev/stele/explorer"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
)

// explorerHandler is the read-only web UI at /ui/ (package explorer). It
// reads the tiles through the public tlog-tiles handler, and payloads as
// GetEvent does, under the same access policy: the browser's
// "Authorization: Bearer" token is checked as the gRPC one would be.
func (s *Server) explorerHandler() http.Handler {
	h, err := explorer.New(explorer.Options{
		VerifierKey:   s.key.VKey,
		Tiles:         s.tilesHandler(),
		WitnessPolicy: s.cfg.WitnessPolicy,
		Event: func(ctx context.Context, index uint64, authorization string) (*stelev1.GetEventResponse, error) {
			if authorization != "" {
				ctx = metadata.NewIncomingContext(ctx, metadata.Pairs("authorization", authorization))
			}
			if s.AuthEnabled() {
				var err error
				if ctx, _, err = s.auth.authorize(ctx, stelev1.LogService_GetEvent_FullMethodName); err != nil {
					return nil, err
				}
			}
			return (&logService{s: s}).GetEvent(ctx, &stelev1.GetEventRequest{Index: index})
		},
	})
	if err != nil {
		// The key and the policy were checked at start, so this is not
		// expected; the rest of the HTTP API stays up if it happens.
		s.log.Error("web explorer disabled", "err", err)
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "the explorer is unavailable: "+err.Error(), http.StatusInternalServerError)
		})
	}
	return h
}
