package server

import (
	"context"
	"net/http"

	"google.golang.org/grpc/metadata"

	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/explorer"
	"github.com/stele-dev/stele/ledger"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
)

// explorerHandler is the read-only web UI at /ui/ (package explorer). It
// reads the tiles through the public tlog-tiles handler, and payloads and
// events by (source, event_id) as GetEvent and GetEventByID do, under the
// same access policy: the browser's "Authorization: Bearer" token is
// checked as the gRPC one would be. Subject timelines read payloads with
// the caller's rights (docs/decisions.md).
func (s *Server) explorerHandler() http.Handler {
	h, err := explorer.New(explorer.Options{
		VerifierKey:   s.key.VKey,
		Tiles:         s.explorerTiles(),
		WitnessPolicy: s.cfg.WitnessPolicy,
		Predecessor:   s.predecessor(),
		Event: func(ctx context.Context, index uint64, authorization string) (*stelev1.GetEventResponse, error) {
			ctx, _, err := s.explorerCaller(ctx, stelev1.LogService_GetEvent_FullMethodName, authorization)
			if err != nil {
				return nil, err
			}
			return (&logService{s: s}).GetEvent(ctx, &stelev1.GetEventRequest{Index: index})
		},
		EventByID: func(ctx context.Context, source, eventID, authorization string) (uint64, error) {
			ctx, _, err := s.explorerCaller(ctx, stelev1.LogService_GetEventByID_FullMethodName, authorization)
			if err != nil {
				return 0, err
			}
			resp, err := (&logService{s: s}).GetEventByID(ctx, &stelev1.GetEventByIDRequest{Source: source, EventId: eventID})
			if err != nil {
				return 0, err
			}
			return resp.GetEvent().GetIndex(), nil
		},
		Payloads: func(ctx context.Context, authorization string) (string, ledger.PayloadFunc, error) {
			ctx, name, err := s.explorerCaller(ctx, stelev1.LogService_GetEvent_FullMethodName, authorization)
			if err != nil {
				return "", nil, err
			}
			ls := &logService{s: s}
			return name, func(cctx context.Context, index uint64) (*stelev1.GetEventResponse, error) {
				// The caller's identity from ctx, the call's deadline from cctx.
				c, cancel := context.WithCancel(ctx)
				defer cancel()
				defer context.AfterFunc(cctx, cancel)()
				return ls.GetEvent(c, &stelev1.GetEventRequest{Index: index})
			}, nil
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

// explorerTiles is the tlog-tiles handler with the freeze statement
// beside the checkpoint, as clients read them.
func (s *Server) explorerTiles() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /"+client.FreezePath, s.serveFreeze)
	mux.Handle("/", s.tilesHandler())
	return mux
}

// predecessor is the log this one continues, when configured.
func (s *Server) predecessor() *explorer.Predecessor {
	if s.cfg.PredecessorKey == "" {
		return nil
	}
	return &explorer.Predecessor{Key: s.cfg.PredecessorKey, URL: s.cfg.PredecessorURL}
}

// explorerCaller authorises the browser's "Authorization: Bearer" token
// for method as the gRPC interceptor would, returning the context to call
// the method with and the caller's access-policy name.
func (s *Server) explorerCaller(ctx context.Context, method, authorization string) (context.Context, string, error) {
	if authorization != "" {
		ctx = metadata.NewIncomingContext(ctx, metadata.Pairs("authorization", authorization))
	}
	if !s.AuthEnabled() {
		return ctx, "anonymous", nil
	}
	ctx, c, err := s.auth.authorize(ctx, method)
	if err != nil {
		return nil, "", err
	}
	return ctx, c.name(), nil
}
