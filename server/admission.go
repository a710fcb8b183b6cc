package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/stele-dev/stele/leaf"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
)

// The admission pipeline. Every Append request and stream batch takes the
// same path (docs/security.md, "Limits"):
//
//  1. tap: before any byte of the request is read, the caller is
//     authenticated and authorised (with an access policy) and a unary
//     Append is refused if its identity is out of tokens or the server is
//     full;
//  2. the body is read into a reservation of the largest request size
//     (unary) or once the server has room (stream), still encoded;
//  3. its events are counted in the encoding, and the batch is refused
//     whole if it holds none or too many, is over the caller's rate, or
//     its decoded cost does not fit the in-flight cap; only then is it
//     decoded (a malformed request, or invalid UTF-8 in a string field,
//     is InvalidArgument);
//  4. the per-event checks run in order over the batch (reserved source,
//     grant, producer signature), and the events left are admitted
//     (admitter.admit);
//  5. the metrics are counted once, from the final results.

// caller is who sent a call: what it presented and the identity that
// resolved to under the policy then current. Without an access policy it
// is the zero caller, "anonymous".
type caller struct {
	p   principal
	id  *identity
	pol *policy
}

func (c caller) name() string {
	if c.id == nil {
		return "anonymous"
	}
	return c.id.name
}

type callerKey struct{}

// tap runs as each gRPC call arrives, before any of its request is read:
// with an access policy, a caller who is not authenticated or not allowed
// the method is refused here, so its body is never read or decoded.
func (s *Server) tap(ctx context.Context, info *tap.Info) (context.Context, error) {
	var c caller
	if s.auth.policy != nil {
		var err error
		if ctx, c, err = s.auth.authorize(ctx, info.FullMethodName); err != nil {
			return nil, err
		}
	}
	ctx = context.WithValue(ctx, callerKey{}, c)
	if info.FullMethodName == stelev1.LogService_Append_FullMethodName {
		if err := s.limits.precheck(c.name(), s.rateOf(c.id)); err != nil {
			return nil, err
		}
	}
	return ctx, nil
}

// callerOf is the caller the tap identified. On a stream, fresh resolves
// its principal again under the current policy, so that a revocation also
// ends a stream at its next batch.
func (s *Server) callerOf(ctx context.Context, fresh bool) (caller, error) {
	c, ok := ctx.Value(callerKey{}).(caller)
	if s.auth.policy == nil {
		return caller{}, nil
	}
	if !ok || c.id == nil {
		return caller{}, status.Error(codes.Unauthenticated, "no identity")
	}
	if !fresh {
		return c, nil
	}
	pol, id, err := s.auth.resolve(c.p)
	if err != nil {
		return caller{}, err
	}
	if !id.has(RoleProducer) {
		return caller{}, s.auth.deny(codes.PermissionDenied, "not_producer", "identity %q may not append: it lacks the producer role", id.name)
	}
	return caller{p: c.p, id: id, pol: pol}, nil
}

// Field numbers of the events and the batch id in AppendRequest and
// AppendStreamRequest.
const (
	appendEventsField  protowire.Number = 1
	streamBatchIDField protowire.Number = 1
	streamEventsField  protowire.Number = 2
)

// chunks reads a message in the buffers it arrived in, without copying
// them together.
type chunks struct {
	bufs [][]byte
	b    []byte // what is left of the current buffer
}

func (c *chunks) next() bool {
	for len(c.b) == 0 {
		if len(c.bufs) == 0 {
			return false
		}
		c.b, c.bufs = c.bufs[0], c.bufs[1:]
	}
	return true
}

// uvarint reads a varint; at the end of the message it returns io.EOF if
// atStart, io.ErrUnexpectedEOF otherwise.
func (c *chunks) uvarint(atStart bool) (uint64, error) {
	if !c.next() {
		if atStart {
			return 0, io.EOF
		}
		return 0, io.ErrUnexpectedEOF
	}
	if v, n := protowire.ConsumeVarint(c.b); n > 0 {
		c.b = c.b[n:]
		return v, nil
	}
	// Split across buffers (or malformed): byte by byte.
	var v uint64
	for shift := uint(0); shift < 64; shift += 7 {
		if !c.next() {
			return 0, io.ErrUnexpectedEOF
		}
		x := c.b[0]
		c.b = c.b[1:]
		v |= uint64(x&0x7f) << shift
		if x < 0x80 {
			return v, nil
		}
	}
	return 0, errors.New("varint overflows 64 bits")
}

func (c *chunks) skip(l uint64) error {
	for l > 0 {
		if !c.next() {
			return io.ErrUnexpectedEOF
		}
		d := min(l, uint64(len(c.b)))
		c.b, l = c.b[d:], l-d
	}
	return nil
}

// scanBatch counts the events of an encoded AppendRequest or
// AppendStreamRequest (events in field eventsField) without decoding or
// even copying them, and reads a stream batch's id.
func scanBatch(c *chunks, eventsField protowire.Number) (n int, batchID uint64, err error) {
	for {
		tag, err := c.uvarint(true)
		if errors.Is(err, io.EOF) {
			return n, batchID, nil
		}
		if err != nil {
			return 0, 0, err
		}
		num, typ := protowire.Number(tag>>3), protowire.Type(tag&7)
		if num < protowire.MinValidNumber || num > protowire.MaxValidNumber {
			return 0, 0, fmt.Errorf("invalid field number %d", num)
		}
		switch typ {
		case protowire.VarintType:
			var v uint64
			v, err = c.uvarint(false)
			if eventsField == streamEventsField && num == streamBatchIDField {
				batchID = v
			}
		case protowire.Fixed32Type:
			err = c.skip(4)
		case protowire.Fixed64Type:
			err = c.skip(8)
		case protowire.BytesType:
			var l uint64
			if l, err = c.uvarint(false); err == nil {
				err = c.skip(l)
			}
			if num == eventsField {
				n++
			}
		default:
			return 0, 0, fmt.Errorf("field %d has wire type %d, which Stele's messages do not use", num, typ)
		}
		if err != nil {
			return 0, 0, err
		}
	}
}

// rawRequest receives a request still encoded. With eventsField set, its
// events are counted first (scanBatch), and a request of more than
// maxEvents is not even copied. rawCodec (installed by
// Server.GRPCOptions) does this on the buffers the message arrived in;
// under another codec it decodes as an Empty, whose unknown fields are the
// same bytes.
type rawRequest struct {
	emptypb.Empty
	eventsField protowire.Number
	maxEvents   int

	raw     []byte
	n       int
	batchID uint64
	scanErr error
	set     bool
}

func (r *rawRequest) take(bufs [][]byte, materialize func() []byte) {
	r.set = true
	if r.eventsField != 0 {
		r.n, r.batchID, r.scanErr = scanBatch(&chunks{bufs: bufs}, r.eventsField)
		if r.scanErr != nil || r.n > r.maxEvents {
			return
		}
	}
	r.raw = materialize()
}

// rawCodec is gRPC's proto codec, except that it hands a rawRequest its
// bytes undecoded.
type rawCodec struct{ encoding.CodecV2 }

func (c rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if r, ok := v.(*rawRequest); ok {
		bufs := make([][]byte, len(data))
		for i, b := range data {
			bufs[i] = b.ReadOnlyData()
		}
		r.take(bufs, data.Materialize)
		return nil
	}
	return c.CodecV2.Unmarshal(data, v)
}

// receive receives one message still encoded into r.
func receive(recv func(any) error, r *rawRequest) error {
	if err := recv(r); err != nil {
		if status.Code(err) == codes.Internal && strings.Contains(status.Convert(err).Message(), "unmarshal") {
			return status.Errorf(codes.InvalidArgument, "the request is not a valid protobuf message: %v", status.Convert(err).Message())
		}
		return err
	}
	if !r.set {
		b := r.ProtoReflect().GetUnknown()
		r.take([][]byte{b}, func() []byte { return b })
	}
	return nil
}

// decodeStrict decodes a request; a malformed one, or one with invalid
// UTF-8 in a string field, is the caller's error (InvalidArgument), not
// the server's.
func decodeStrict(raw []byte, m proto.Message) error {
	if err := proto.Unmarshal(raw, m); err != nil {
		return status.Errorf(codes.InvalidArgument, "the request is not a valid %s: %v", m.ProtoReflect().Descriptor().Name(), err)
	}
	return nil
}

// strictMethod wraps a generated unary handler to decode its request with
// decodeStrict.
func strictMethod(h grpc.MethodHandler) grpc.MethodHandler {
	return func(srv any, ctx context.Context, dec func(any) error, icpt grpc.UnaryServerInterceptor) (any, error) {
		return h(srv, ctx, func(v any) error {
			var r rawRequest
			if err := receive(dec, &r); err != nil {
				return err
			}
			return decodeStrict(r.raw, v.(proto.Message))
		}, icpt)
	}
}

// strictStream decodes a stream's requests with decodeStrict.
type strictStream struct{ grpc.ServerStream }

func (s strictStream) RecvMsg(m any) error {
	var r rawRequest
	if err := receive(s.ServerStream.RecvMsg, &r); err != nil {
		return err
	}
	return decodeStrict(r.raw, m.(proto.Message))
}

// serviceDesc is the generated LogService description with Append and
// AppendStream taking the admission pipeline and every other method
// decoding strictly.
func (l *logService) serviceDesc() *grpc.ServiceDesc {
	d := stelev1.LogService_ServiceDesc
	d.Methods = append([]grpc.MethodDesc(nil), d.Methods...)
	for i, m := range d.Methods {
		if m.MethodName == "Append" {
			d.Methods[i].Handler = l.appendUnary
		} else {
			d.Methods[i].Handler = strictMethod(m.Handler)
		}
	}
	d.Streams = append([]grpc.StreamDesc(nil), d.Streams...)
	for i, st := range d.Streams {
		if st.StreamName == "AppendStream" {
			d.Streams[i].Handler = l.appendStream
		} else {
			h := st.Handler
			d.Streams[i].Handler = func(srv any, ss grpc.ServerStream) error { return h(srv, strictStream{ss}) }
		}
	}
	return &d
}

// prepare takes an encoded batch of n events through the batch-wide
// checks and limits and decodes it into msg. res is resized to the
// batch's decoded cost. An error refuses the whole batch; its events are
// counted as refused.
func (s *Server) prepare(c caller, raw []byte, n int, msg proto.Message, res *reservation) error {
	err := s.checkBatch(n)
	if err == nil {
		err = s.limits.allow(c.name(), s.rateOf(c.id), n)
	}
	if err == nil {
		err = res.resize(batchCost(len(raw), n))
	}
	if err == nil {
		err = decodeStrict(raw, msg)
	}
	if err != nil {
		s.m.refuseBatch(n, err)
	}
	return err
}

func (s *Server) checkBatch(n int) error {
	if n == 0 {
		return status.Error(codes.InvalidArgument, "the batch holds no events")
	}
	if n > s.cfg.MaxBatchEvents {
		return status.Errorf(codes.ResourceExhausted, "the batch holds %d events, over the limit of %d: split it", n, s.cfg.MaxBatchEvents)
	}
	return nil
}

// appendUnary is the Append handler: its body is read in one of the
// server's few read slots (limits.read), so that bodies being read, whose
// size is not known until they are, are bounded too.
func (l *logService) appendUnary(srv any, ctx context.Context, dec func(any) error, icpt grpc.UnaryServerInterceptor) (any, error) {
	s := l.s
	c, err := s.callerOf(ctx, false)
	if err != nil {
		return nil, err
	}
	r := rawRequest{eventsField: appendEventsField, maxEvents: s.cfg.MaxBatchEvents}
	if err := s.limits.read(ctx, c.name(), func() error { return receive(dec, &r) }); err != nil {
		return nil, err
	}
	if r.scanErr != nil {
		return nil, status.Errorf(codes.InvalidArgument, "the request is not a valid AppendRequest: %v", r.scanErr)
	}
	raw, n := r.raw, r.n
	res := &reservation{l: s.limits, name: c.name()}
	defer res.release()
	req := new(stelev1.AppendRequest)
	if err := s.prepare(c, raw, n, req, res); err != nil {
		return nil, err
	}
	r.raw, raw = nil, nil
	handler := func(ctx context.Context, req any) (any, error) {
		rs := s.appendEvents(ctx, c, req.(*stelev1.AppendRequest).Events)
		return &stelev1.AppendResponse{Results: toProto(rs)}, nil
	}
	if icpt == nil {
		return handler(ctx, req)
	}
	return icpt(ctx, req, &grpc.UnaryServerInfo{Server: srv, FullMethod: stelev1.LogService_Append_FullMethodName}, handler)
}

// appendStream is the AppendStream handler. It reads a batch only while
// the in-flight cap has room and admits up to streamParallelism batches
// at once; a batch refused whole is answered with the reason for each of
// its events, and the stream goes on.
func (l *logService) appendStream(_ any, ss grpc.ServerStream) error {
	s := l.s
	ctx := ss.Context()
	var (
		wg      sync.WaitGroup
		sendMu  sync.Mutex
		sendErr error
		sem     = make(chan struct{}, streamParallelism)
	)
	send := func(r *stelev1.AppendStreamResponse) {
		sendMu.Lock()
		defer sendMu.Unlock()
		if sendErr == nil {
			sendErr = ss.SendMsg(r)
		}
	}
	defer wg.Wait()
	for {
		if err := s.limits.waitRoom(ctx); err != nil {
			return status.FromContextError(err).Err()
		}
		r := rawRequest{eventsField: streamEventsField, maxEvents: s.cfg.MaxBatchEvents}
		err := receive(ss.RecvMsg, &r)
		if errors.Is(err, io.EOF) {
			wg.Wait()
			sendMu.Lock()
			defer sendMu.Unlock()
			return sendErr
		}
		if err != nil {
			return err
		}
		if r.scanErr != nil {
			return status.Errorf(codes.InvalidArgument, "a batch is not a valid AppendStreamRequest: %v", r.scanErr)
		}
		raw, n, id := r.raw, r.n, r.batchID
		if n > s.cfg.MaxBatchEvents {
			// Answering each of its events would multiply the attack: the
			// stream ends.
			err := status.Errorf(codes.ResourceExhausted, "batch %d holds %d events, over the limit of %d: split it", id, n, s.cfg.MaxBatchEvents)
			s.m.refuseBatch(n, err)
			return err
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		}
		wg.Go(func() {
			defer func() { <-sem }()
			send(&stelev1.AppendStreamResponse{BatchId: id, Results: toProto(s.streamBatch(ctx, raw, n))})
		})
	}
}

// streamBatch admits one stream batch of n events, or refuses all of them
// with the batch's refusal.
func (s *Server) streamBatch(ctx context.Context, raw []byte, n int) []result {
	c, err := s.callerOf(ctx, true)
	var res *reservation
	if err == nil {
		res = &reservation{l: s.limits, name: c.name()}
		defer res.release()
		req := new(stelev1.AppendStreamRequest)
		if err = s.prepare(c, raw, n, req, res); err == nil {
			return s.appendEvents(ctx, c, req.Events)
		}
	} else {
		s.m.refuseBatch(n, err)
	}
	st := status.Convert(err)
	rs := make([]result, n)
	for i := range rs {
		rs[i] = result{code: st.Code(), msg: st.Message()}
	}
	return rs
}

// batch is the events of one Append request or stream batch and, as the
// checks decide them, their results.
type batch struct {
	events  []*stelev1.Event
	results []result
	decided []bool
}

// check runs one check over the events not yet decided; a refusal decides
// the event.
func (b *batch) check(refusal func(ev *stelev1.Event) *result) {
	for i, ev := range b.events {
		if b.decided[i] || ev == nil {
			continue
		}
		if r := refusal(ev); r != nil {
			b.results[i], b.decided[i] = *r, true
		}
	}
}

// admit admits the events no check refused, each result in its place.
func (b *batch) admit(admit func([]*stelev1.Event) []result) {
	var rest []*stelev1.Event
	var pos []int
	for i, ev := range b.events {
		if !b.decided[i] {
			rest, pos = append(rest, ev), append(pos, i)
		}
	}
	if len(rest) == 0 {
		return
	}
	for i, r := range admit(rest) {
		b.results[pos[i]] = r
	}
}

// reservedSource refuses an event on a source only the server writes to.
func reservedSource(ev *stelev1.Event) *result {
	if !reserved(ev.Source) {
		return nil
	}
	r := refuse(codes.PermissionDenied, "source %q is reserved: sources under %q are written by the server itself", ev.Source, ReservedSourcePrefix)
	return &r
}

// granted refuses an event on a source the caller is not granted. An
// invalid source is left to admission, which refuses it with its reason.
func (c caller) granted(ev *stelev1.Event) *result {
	if leaf.ValidateSource(ev.Source) != nil || c.id.granted(ev.Source) {
		return nil
	}
	r := refuse(codes.PermissionDenied, "identity %q is not granted source %q", c.id.name, ev.Source)
	r.denied = "source_not_granted"
	return &r
}

// signers refuses an event whose producer signature the policy requires
// and it lacks, or made by a key that is not the caller's.
func (c caller) signers(ev *stelev1.Event) *result {
	r, ok := checkSigners(c.pol, c.id, ev)
	if ok {
		return nil
	}
	r.denied = "producer_signature"
	return &r
}

// appendEvents runs the per-event checks over a decoded batch, admits the
// events they leave, and counts the outcome.
func (s *Server) appendEvents(ctx context.Context, c caller, events []*stelev1.Event) []result {
	start := s.admit.now()
	b := &batch{events: events, results: make([]result, len(events)), decided: make([]bool, len(events))}
	b.check(reservedSource)
	if c.id != nil {
		b.check(c.granted)
		b.check(c.signers)
	}
	b.admit(func(evs []*stelev1.Event) []result { return s.admit.admit(ctx, evs) })
	s.m.observeBatch(b.results, s.admit.now().Sub(start))
	s.countDenied(c, b.results)
	traceBatch(ctx, events, b.results)
	return b.results
}

// countDenied counts the events the access policy refused in the auth
// metrics.
func (s *Server) countDenied(c caller, rs []result) {
	notGranted := 0
	for _, r := range rs {
		if r.denied == "" {
			continue
		}
		s.auth.denied.WithLabelValues(r.code.String(), r.denied).Inc()
		if r.denied == "source_not_granted" {
			notGranted++
		}
	}
	if notGranted > 0 {
		s.log.Info("events refused: source not granted", "identity", c.name(), "events", notGranted)
	}
}

func toProto(rs []result) []*stelev1.AppendResult {
	out := make([]*stelev1.AppendResult, len(rs))
	for i, r := range rs {
		out[i] = r.proto()
	}
	return out
}
