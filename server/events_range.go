package server

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/stele-dev/stele/internal/store"
	"github.com/stele-dev/stele/leaf"
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

// eventsRun is how many consecutive entries GetEvents reads the payloads
// of at once: enough for the store to walk them with one iterator, few
// enough that a response cut at maxEventsBytes has not read far past
// the cut.
const eventsRun = 64

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
	var run []leafAt // entries whose payloads are read together
	add := func() error {
		evs, errs := l.s.events(ctx, run)
		for i, ev := range evs {
			if errs[i] != nil {
				return errs[i]
			}
			if req.PayloadOnly {
				ev.Record, ev.Format, ev.Normalized = nil, "", nil
			}
			n := proto.Size(ev)
			n += protowire.SizeTag(1) + protowire.SizeVarint(uint64(n))
			if len(resp.Events) > 0 && size+n > maxEventsBytes {
				return errResponseFull
			}
			size += n
			resp.Events = append(resp.Events, ev)
		}
		run = run[:0]
		return nil
	}
	err = l.s.forEachLeaf(ctx, req.Start, end, cp.size, func(idx uint64, lf []byte) error {
		run = append(run, leafAt{idx, lf})
		if len(run) == eventsRun {
			return add()
		}
		return nil
	})
	if err == nil {
		err = add()
	}
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

// leafAt is a log entry's leaf and index.
type leafAt struct {
	idx uint64
	lf  []byte
}

// payloadsReader is a payload store that reads many payloads at once
// (internal/store does, with one iterator).
type payloadsReader interface {
	GetPayloads(refs []store.Ref) ([]store.Fetched, error)
}

// events answers GetEvent, without the proof, for each of the entries ls,
// each with its answer or its error (in the order event checks them: the
// leaf, the read grant, the payload), reading their payloads together.
func (s *Server) events(ctx context.Context, ls []leafAt) ([]*stelev1.GetEventResponse, []error) {
	out, errs := make([]*stelev1.GetEventResponse, len(ls)), make([]error, len(ls))
	parsed := make([]*leaf.Leaf, len(ls))
	refs, at := make([]store.Ref, 0, len(ls)), make([]int, 0, len(ls))
	for i, e := range ls {
		p, err := s.readableLeaf(ctx, e.idx, e.lf)
		if err != nil {
			errs[i] = err
			continue
		}
		parsed[i] = p
		refs, at = append(refs, payloadRef(p)), append(at, i)
	}
	got, err := readPayloads(s.store, refs)
	if err != nil {
		for _, i := range at {
			errs[i] = status.Errorf(codes.Unavailable, "reading payload: %v", err)
		}
		return out, errs
	}
	for k, i := range at {
		out[i], errs[i] = s.eventOf(ls[i].idx, ls[i].lf, parsed[i], nil, got[k].Salt, got[k].Data, got[k].Err)
	}
	return out, errs
}

// readPayloads reads the payloads under refs: at once where the store can,
// one by one where it cannot.
func readPayloads(ps payloadStore, refs []store.Ref) ([]store.Fetched, error) {
	if r, ok := ps.(payloadsReader); ok {
		return r.GetPayloads(refs)
	}
	out := make([]store.Fetched, len(refs))
	for i, r := range refs {
		out[i].Salt, out[i].Data, out[i].Err = ps.GetPayload(r)
	}
	return out, nil
}
