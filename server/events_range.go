package server

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
)

const (
	// maxEventsPerCall bounds a GetEvents range.
	maxEventsPerCall = 1000
	// maxEventsBytes bounds a GetEvents response, framing included, so
	// that it fits gRPC's default 4 MiB receive limit: the response stops
	// before the entry that would take it past this (always after at
	// least one).
	maxEventsBytes = 4<<20 - 16
)

// errResponseFull stops the walk of a GetEvents range once the response
// holds maxEventsBytes.
var errResponseFull = errors.New("response full")

// GetEvents answers GetEvent, without the proof, for each entry of a
// contiguous range, reading the range's entry bundles once: a follower of
// the log's tiles builds the proofs itself, so the server does not build
// one per entry. The read grant is checked per entry, by the same code as
// GetEvent.
func (l *logService) GetEvents(ctx context.Context, req *stelev1.GetEventsRequest) (*stelev1.GetEventsResponse, error) {
	if req.Count == 0 || req.Count > maxEventsPerCall {
		return nil, status.Errorf(codes.InvalidArgument, "count is %d, want 1 to %d: ask for fewer", req.Count, maxEventsPerCall)
	}
	cp, err := l.awaitCovered(ctx, req.Start)
	if err != nil {
		return nil, err
	}
	end := min(cp.size, req.Start+uint64(req.Count))
	resp := &stelev1.GetEventsResponse{TreeSize: cp.size, Events: make([]*stelev1.GetEventResponse, 0, end-req.Start)}
	size := 0
	err = l.s.forEachLeaf(ctx, req.Start, end, cp.size, func(idx uint64, lf []byte) error {
		ev, err := l.s.event(ctx, idx, lf, nil)
		if err != nil {
			return err
		}
		n := proto.Size(ev)
		n += protowire.SizeTag(1) + protowire.SizeVarint(uint64(n))
		if len(resp.Events) > 0 && size+n > maxEventsBytes {
			return errResponseFull
		}
		size += n
		resp.Events = append(resp.Events, ev)
		return nil
	})
	switch {
	case err == nil, errors.Is(err, errResponseFull):
		return resp, nil
	case ctx.Err() != nil:
		return nil, status.FromContextError(ctx.Err()).Err()
	case status.Code(err) != codes.Unknown:
		return nil, err
	default:
		return nil, status.Errorf(codes.Internal, "reading entries %d to %d: %v", req.Start, end-1, err)
	}
}
