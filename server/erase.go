package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stele-dev/stele/internal/store"
	"github.com/stele-dev/stele/leaf"
	"github.com/stele-dev/stele/payload"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
)

// The erasure event a log appends for each erasure (docs/security.md).
const (
	ErasureSource = "stele/erasure"
	ErasureKind   = "stele.erasure"
	// ReservedSourcePrefix starts the sources only the server writes to.
	ReservedSourcePrefix = "stele/"
	maxEraseText         = 1024
)

// ErasureEventID is the event_id of the erasure event for index: erasing
// an entry twice appends one erasure event.
func ErasureEventID(index uint64) string { return fmt.Sprintf("erase/%d", index) }

// ErasureRecord is the record of an erasure event (format "json"). It names
// the erased entry and holds no personal data.
type ErasureRecord struct {
	ErasedIndex      uint64 `json:"erased_index"`
	LeafHash         string `json:"leaf_hash"`
	Reason           string `json:"reason"`
	RequestReference string `json:"request_reference"`
	ErasedBy         string `json:"erased_by"`
	Time             string `json:"time"`
}

// tombstone is what the store keeps in place of an erased payload.
type tombstone struct {
	Index            uint64    `json:"index"`
	ErasedAt         time.Time `json:"erased_at"`
	ErasedBy         string    `json:"erased_by"`
	Reason           string    `json:"reason"`
	RequestReference string    `json:"request_reference"`
	ErasureIndex     uint64    `json:"erasure_index"`
}

func (t *tombstone) proto() *stelev1.EraseTombstone {
	return &stelev1.EraseTombstone{
		Index: t.Index, ErasedAt: timestamppb.New(t.ErasedAt), ErasedBy: t.ErasedBy,
		Reason: t.Reason, RequestReference: t.RequestReference, ErasureIndex: t.ErasureIndex,
	}
}

func parseTombstone(b []byte) (*tombstone, error) {
	var t tombstone
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("tombstone does not parse: %w", err)
	}
	return &t, nil
}

func reserved(source string) bool { return strings.HasPrefix(source, ReservedSourcePrefix) }

func checkEraseText(name, v string) error {
	if strings.TrimSpace(v) == "" {
		return status.Errorf(codes.InvalidArgument, "%s is empty: it is required (and goes into the public log, so it must hold no personal data)", name)
	}
	if len(v) > maxEraseText {
		return status.Errorf(codes.InvalidArgument, "%s is %d bytes, over the limit of %d", name, len(v), maxEraseText)
	}
	if err := printable(name, v); err != nil {
		return status.Errorf(codes.InvalidArgument, "%v", err)
	}
	return nil
}

func (l *logService) EraseEvent(ctx context.Context, req *stelev1.EraseEventRequest) (*stelev1.EraseEventResponse, error) {
	resp, err := l.s.erase(ctx, req)
	switch {
	case err != nil:
		l.s.m.erasures.WithLabelValues("refused").Inc()
	case resp.AlreadyErased:
		l.s.m.erasures.WithLabelValues("already_erased").Inc()
	default:
		l.s.m.erasures.WithLabelValues("erased").Inc()
	}
	return resp, err
}

// erase runs an erasure: first the erasure event is appended to the log
// (through admission, deduplicated on the erased index), then the payload
// is replaced by a tombstone in the store. A crash between the two leaves
// the erasure event in the log and the payload in place; erasing again
// finds the erasure event (dedup) and completes the erasure.
func (s *Server) erase(ctx context.Context, req *stelev1.EraseEventRequest) (*stelev1.EraseEventResponse, error) {
	if err := checkEraseText("reason", req.Reason); err != nil {
		return nil, err
	}
	if err := checkEraseText("request_reference", req.RequestReference); err != nil {
		return nil, err
	}
	// Erasures are rare; one at a time keeps check-then-write simple.
	s.eraseMu.Lock()
	defer s.eraseMu.Unlock()

	size, err := s.reader.IntegratedSize(ctx)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "reading log size: %v", err)
	}
	if req.Index >= size {
		return nil, status.Errorf(codes.NotFound, "no entry at index %d: the log holds %d entries", req.Index, size)
	}
	lf, err := s.readLeaf(ctx, req.Index, size)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "reading leaf %d: %v", req.Index, err)
	}
	parsed, err := leaf.Unmarshal(lf)
	if err != nil {
		return nil, status.Errorf(codes.DataLoss, "leaf %d does not parse: %v", req.Index, err)
	}
	if parsed.Source == ErasureSource {
		return nil, status.Errorf(codes.FailedPrecondition, "entry %d is an erasure event: it holds no personal data and is the evidence of an erasure, so it cannot be erased", req.Index)
	}
	if tb, err := s.store.Tombstone(parsed.PayloadDigest); err == nil {
		t, err := parseTombstone(tb)
		if err != nil {
			return nil, status.Errorf(codes.DataLoss, "entry %d: %v", req.Index, err)
		}
		return &stelev1.EraseEventResponse{Tombstone: t.proto(), AlreadyErased: true}, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, status.Errorf(codes.Unavailable, "reading tombstone: %v", err)
	}
	if _, _, err := s.store.GetPayload(payloadRef(parsed)); errors.Is(err, store.ErrNotFound) {
		return nil, status.Errorf(codes.DataLoss, "the payload of entry %d (digest %x) is missing from the store and was never erased", req.Index, parsed.PayloadDigest)
	} else if err != nil {
		return nil, status.Errorf(codes.Unavailable, "reading payload: %v", err)
	}

	// (1) The erasure event.
	now := s.admit.now()
	lh := leafHash(lf)
	rec := ErasureRecord{
		ErasedIndex: req.Index, LeafHash: fmt.Sprintf("%x", lh[:]),
		Reason: req.Reason, RequestReference: req.RequestReference,
		ErasedBy: s.callerName(ctx), Time: now.Format(time.RFC3339Nano),
	}
	rb, err := json.Marshal(rec)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "erasure record: %v", err)
	}
	ev := &stelev1.Event{
		Source: ErasureSource, EventId: ErasureEventID(req.Index), Kind: ErasureKind,
		EventTime: timestamppb.New(now), Format: "json", Record: rb,
	}
	start := s.admit.now()
	rs := s.admit.admit(ctx, []*stelev1.Event{ev})
	s.m.observeBatch(rs, s.admit.now().Sub(start))
	r := rs[0]
	switch {
	case r.code == codes.OK:
	case r.code == codes.AlreadyExists:
		// An earlier erasure of this entry logged its event but crashed
		// before the tombstone: complete that erasure, under its terms.
		prev, err := s.erasureRecord(ctx, r.index)
		if err != nil {
			return nil, err
		}
		rec = *prev
		if t, err := time.Parse(time.RFC3339Nano, rec.Time); err == nil {
			now = t
		}
	default:
		return nil, status.Errorf(r.code, "appending the erasure event: %s", r.msg)
	}

	if holdBeforeTombstone > 0 {
		s.log.Warn("test hook: holding between the erasure event and the tombstone", "erasure_index", r.index, "hold", holdBeforeTombstone)
		time.Sleep(holdBeforeTombstone)
	}

	// (2) The tombstone, replacing payload and salt.
	t := &tombstone{
		Index: req.Index, ErasedAt: now, ErasedBy: rec.ErasedBy, Reason: rec.Reason,
		RequestReference: rec.RequestReference, ErasureIndex: r.index,
	}
	tb, err := json.Marshal(t)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "tombstone: %v", err)
	}
	// The erasure runs to completion even if the caller goes away.
	if _, _, err := s.store.ErasePayload(context.WithoutCancel(ctx), payloadRef(parsed), tb); err != nil {
		return nil, status.Errorf(codes.Unavailable, "erasing payload (the erasure event is at index %d; erase again to complete): %v", r.index, err)
	}
	s.log.Info("payload erased", "index", req.Index, "erasure_index", r.index, "erased_by", rec.ErasedBy, "request_reference", rec.RequestReference)
	return &stelev1.EraseEventResponse{Tombstone: t.proto()}, nil
}

// erasureRecord reads the record of the erasure event at idx.
func (s *Server) erasureRecord(ctx context.Context, idx uint64) (*ErasureRecord, error) {
	size, err := s.reader.IntegratedSize(ctx)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "reading log size: %v", err)
	}
	lf, err := s.readLeaf(ctx, idx, size)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "reading erasure event %d: %v", idx, err)
	}
	parsed, err := leaf.Unmarshal(lf)
	if err != nil {
		return nil, status.Errorf(codes.DataLoss, "erasure event %d does not parse: %v", idx, err)
	}
	_, data, err := s.store.GetPayload(payloadRef(parsed))
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "reading erasure event %d: %v", idx, err)
	}
	pl, err := payload.Unmarshal(data)
	if err != nil {
		return nil, status.Errorf(codes.DataLoss, "erasure event %d: %v", idx, err)
	}
	var rec ErasureRecord
	if err := json.Unmarshal(pl.Record, &rec); err != nil {
		return nil, status.Errorf(codes.DataLoss, "erasure event %d: %v", idx, err)
	}
	return &rec, nil
}
