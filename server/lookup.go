package server

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
)

// GetEventByID finds an entry by (source, event_id) through the dedup
// index and answers as GetEvent does for its index. The caller's read grant
// on the source is checked before the lookup, so whether an event exists is
// not told to those who may not read it.
func (l *logService) GetEventByID(ctx context.Context, req *stelev1.GetEventByIDRequest) (*stelev1.GetEventByIDResponse, error) {
	if req.Source == "" || req.EventId == "" {
		return nil, status.Error(codes.InvalidArgument, "both source and event_id are required")
	}
	if err := l.s.mayRead(ctx, req.Source); err != nil {
		return nil, err
	}
	idx, ok, err := l.s.store.LookupEvent(req.Source, req.EventId)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "looking up the event: %v", err)
	}
	if !ok {
		return nil, status.Errorf(codes.NotFound, "no event with source %q and event_id %q in the log", req.Source, req.EventId)
	}
	ev, err := l.GetEvent(ctx, &stelev1.GetEventRequest{Index: idx})
	if err != nil {
		return nil, err
	}
	return &stelev1.GetEventByIDResponse{Event: ev}, nil
}
