package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/transparency-dev/tessera"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	normalizer "github.com/stele-dev/stele/identity"
	"github.com/stele-dev/stele/internal/store"
	"github.com/stele-dev/stele/leaf"
	"github.com/stele-dev/stele/payload"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
	"github.com/stele-dev/stele/server/backend"
)

// result is the outcome of admitting one event.
type result struct {
	index     uint64
	duplicate bool
	code      codes.Code
	msg       string
	// denied is the stele_auth_denied_total reason of a refusal by the
	// access policy.
	denied string
}

func (r result) proto() *stelev1.AppendResult {
	return &stelev1.AppendResult{Index: r.index, Duplicate: r.duplicate, Code: int32(r.code), Message: r.msg}
}

func refuse(c codes.Code, format string, args ...any) result {
	return result{code: c, msg: fmt.Sprintf(format, args...)}
}

// flight is an event being committed; copies of it that arrive meanwhile
// wait on done and take its outcome.
type flight struct {
	claimer *pending
	// admittedFP, when set before done is closed, is the fingerprint of
	// the event already admitted under the key, which copies compare with
	// instead of the claimer's.
	admittedFP *[32]byte
	done       chan struct{}
	res        result
}

// fingerprint is what a copy that waited on f compares its own with.
// Call it only once done is closed.
func (f *flight) fingerprint() [32]byte {
	if f.admittedFP != nil {
		return *f.admittedFP
	}
	return f.claimer.fingerprint()
}

// admitter runs the admission pipeline: validate, dedup, store the payload
// durably, sequence the leaf with Tessera, then index it.
type admitter struct {
	cfg   *Config
	store payloadStore
	// claims, on aws, claims each event in the shared database before it
	// is sequenced, so that replicas dedup exactly; nil on posix, where
	// the inflight map is the claim.
	claims backend.Claimer
	// next is the log's next unassigned index (for stale claims).
	next func(context.Context) (uint64, error)
	add  tessera.AddFn
	// readLeaf reads an admitted entry's leaf, to compare a resubmission.
	readLeaf func(ctx context.Context, idx uint64) ([]byte, error)
	now      func() time.Time
	marks    *watermark
	m        *metrics
	closed   chan struct{}
	diskFull atomic.Bool // diskSpace last refused
	// commits counts commits running detached from their caller; Close
	// waits for them before it closes the store they write to.
	commits sync.WaitGroup

	mu       sync.Mutex
	inflight map[dedupKey]*flight
}

type dedupKey struct{ source, eventID string }

// pending is an event accepted for commit.
type pending struct {
	pos  int
	key  dedupKey
	leaf []byte
	hash [32]byte
	// fp is the content fingerprint, computed only when a copy is
	// compared (most events have none): fingerprint.
	fpOnce sync.Once
	fp     [32]byte
	store  store.Payload
	// What a resubmission is compared on.
	format    string
	record    []byte
	kind      string
	eventTime time.Time
	sourceSeq uint64
	f         *flight
}

// fingerprint is p's content fingerprint.
func (p *pending) fingerprint() [32]byte {
	p.fpOnce.Do(func() { p.fp = fingerprint(p.sourceSeq, p.kind, p.eventTime, p.format, p.record) })
	return p.fp
}

// fingerprint covers what a resubmission of an event must repeat exactly:
// everything but its dedup key, salt, admission time and the normalised
// view (content is the format and raw record: a newer normaliser or another
// origin note does not make a redelivery a different event).
func fingerprint(sourceSeq uint64, kind string, eventTime time.Time, format string, record []byte) [32]byte {
	h := sha256.New()
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], sourceSeq)
	h.Write(b[:])
	h.Write([]byte(kind))
	h.Write([]byte{0})
	binary.BigEndian.PutUint64(b[:], uint64(eventTime.UnixNano()))
	h.Write(b[:])
	h.Write([]byte(format))
	h.Write([]byte{0})
	h.Write(record)
	return [32]byte(h.Sum(nil))
}

// recordContent is the part of a payload that identifies the event: its
// format and raw record (no format and the payload bytes themselves if
// they do not decode).
func recordContent(payloadBytes []byte) (format string, record []byte) {
	p, err := payload.Unmarshal(payloadBytes)
	if err != nil {
		return "", payloadBytes
	}
	return p.Format, p.Record
}

// admitted returns the fingerprint of the event admitted at idx and how p
// differs from it ("" when it is the same event). ok is false when the
// admitted event cannot be read back, in which case p counts as the same.
func (a *admitter) admitted(ctx context.Context, p *pending, idx uint64) (fp [32]byte, diff string, ok bool) {
	raw, err := a.readLeaf(ctx, idx)
	if err != nil {
		return fp, "", false
	}
	l, err := leaf.Unmarshal(raw)
	if err != nil {
		return fp, "", false
	}
	_, data, err := a.store.GetPayload(payloadRef(l))
	if err != nil {
		return fp, "", false
	}
	format, record := recordContent(data)
	fp = fingerprint(l.SourceSeq, l.Kind, l.EventTime, format, record)
	if fp == p.fingerprint() {
		return fp, "", true
	}
	var diffs []string
	if l.Kind != p.kind {
		diffs = append(diffs, fmt.Sprintf("kind %q, not %q", l.Kind, p.kind))
	}
	if !l.EventTime.Equal(p.eventTime) {
		diffs = append(diffs, fmt.Sprintf("event_time %s, not %s", l.EventTime.Format(time.RFC3339Nano), p.eventTime.Format(time.RFC3339Nano)))
	}
	if l.SourceSeq != p.sourceSeq {
		diffs = append(diffs, fmt.Sprintf("source_seq %d, not %d", l.SourceSeq, p.sourceSeq))
	}
	if format != p.format || !bytes.Equal(record, p.record) {
		if len(diffs) == 0 && format != p.format && sameEvent(p.key.source, format, record, p.format, p.record) {
			// The same event in another export format (a Graph record and
			// its diagnostic-settings copy): a duplicate of what is logged.
			return fp, "", true
		}
		diffs = append(diffs, "another format or record")
	}
	return fp, conflictMessage(idx, strings.Join(diffs, "; ")), true
}

// loggedElsewhere refuses a provider record whose exact bytes (same format,
// same record) are already logged under the same provider and stream of
// another tenant (sameStreamOtherTenant): its event id comes
// from the record, so the two sources differ only by what the producer was
// told — an import with the wrong --tenant, say (docs/decisions.md, "One
// event in two export formats"). Generic json records are exempt: without a
// native id the same record may legitimately appear in two streams. An
// entry that cannot be read back is passed over (the event is admitted).
//
// It returns the events of fresh it lets through; the others are finished
// with its refusal (and, on aws, their claims released). The index is
// asked about the whole batch at once (Payloads.EventsElsewhere).
func (a *admitter) loggedElsewhere(ctx context.Context, fresh []*pending, shared backend.Claims) []*pending {
	var keys []store.EventKey
	asked := make([]int, len(fresh)) // fresh[i]'s position in keys, or -1
	for i, p := range fresh {
		asked[i] = -1
		if normalizer.KindAuthoritative(p.format) {
			asked[i] = len(keys)
			keys = append(keys, store.EventKey{Source: p.key.source, EventID: p.key.eventID})
		}
	}
	if len(keys) == 0 {
		return fresh
	}
	others, err := a.store.EventsElsewhere(keys)
	todo := make([]*pending, 0, len(fresh))
	for i, p := range fresh {
		var r result
		switch {
		case asked[i] < 0:
		case err != nil:
			r = refuse(codes.Unavailable, "dedup index unavailable: %v", err)
		default:
			r = a.loggedAt(ctx, p, others[asked[i]])
		}
		if r.code == codes.OK {
			todo = append(todo, p)
			continue
		}
		if shared != nil {
			// Not sequenced: the claim goes back at once.
			_ = shared.Release([]backend.Key{{Source: p.key.source, EventID: p.key.eventID}})
		}
		a.finish(p, r)
	}
	return todo
}

// loggedAt is loggedElsewhere's refusal of p if one of others, the entries
// holding its event id under other sources, is the same record under
// another tenant; a zero result otherwise.
func (a *admitter) loggedAt(ctx context.Context, p *pending, others []store.Located) result {
	for _, o := range others {
		if !sameStreamOtherTenant(o.Source, p.key.source) {
			continue
		}
		raw, err := a.readLeaf(ctx, o.Index)
		if err != nil {
			continue
		}
		l, err := leaf.Unmarshal(raw)
		if err != nil {
			continue
		}
		_, data, err := a.store.GetPayload(payloadRef(l))
		if err != nil {
			continue
		}
		if format, record := recordContent(data); format == p.format && bytes.Equal(record, p.record) {
			return result{index: o.Index, code: codes.AlreadyExists, msg: fmt.Sprintf(
				"this exact record (format %s, event id %q) is already logged at index %d under source %q; it was not admitted again under %q: the record names its event, so only the source differs (was the tenant, org or account given to the importer wrong?)",
				p.format, p.key.eventID, o.Index, o.Source, p.key.source)}
		}
	}
	return result{}
}

// sameStreamOtherTenant reports whether two sources name the same provider
// and stream under different tenants (entra/<t1>/audit, entra/<t2>/audit):
// the shape of a record placed under the wrong tenant, org or account.
// Records of one tenant in two streams are left to the per-source dedup.
func sameStreamOtherTenant(a, b string) bool {
	sa, sb := strings.SplitN(a, "/", 3), strings.SplitN(b, "/", 3)
	return len(sa) == 3 && len(sb) == 3 && sa[0] == sb[0] && sa[2] == sb[2] && sa[1] != sb[1]
}

// sameEvent reports whether two records of different formats are one
// event (docs/decisions.md, "One event in two export formats"): the
// current normaliser reads both to the same normalised content, once
// what only says how the record was delivered is set aside: the
// envelope (source stream, envelope time), the normaliser's name and
// flags, the time as written, the origin note and the raw record. The
// tenants named, by either record and by the source (its second segment,
// as in entra/<tenant>/audit), must agree.
func sameEvent(source, format1 string, record1 []byte, format2 string, record2 []byte) bool {
	a, err := normalizer.Normalize(format1, record1)
	if err != nil {
		return false
	}
	b, err := normalizer.Normalize(format2, record2)
	if err != nil {
		return false
	}
	tenant := ""
	for _, v := range []*stelev1.IdentityEvent{a, b} {
		t := v.GetSource().GetTenant()
		if segs := strings.Split(source, "/"); t != "" && len(segs) > 1 && segs[0] == v.GetSource().GetProvider() && segs[1] != t {
			return false
		}
		if t != "" && tenant != "" && t != tenant {
			return false
		}
		tenant = max(tenant, t)
	}
	for _, v := range []*stelev1.IdentityEvent{a, b} {
		v.Source, v.EnvelopeTime, v.EnvelopeTimeText, v.EventTimeText = nil, nil, "", ""
		v.Normalizer, v.NormalizerVersion, v.Flags, v.Origin, v.RawRecord, v.Format = "", "", nil, "", nil, ""
	}
	return proto.Equal(a, b)
}

func conflictMessage(idx uint64, detail string) string {
	if detail != "" {
		detail = " (" + detail + ")"
	}
	return fmt.Sprintf("(source, event_id) was admitted at index %d with different content%s; this copy was not admitted", idx, detail)
}

// admit admits a batch and returns one result per event, in order. The
// caller counts the results (metrics.observeBatch).
func (a *admitter) admit(ctx context.Context, events []*stelev1.Event) []result {
	start := a.now()
	results := make([]result, len(events))
	var fresh []*pending
	var waits []struct {
		pos int
		f   *flight
	}

	// Validate and build leaves outside the lock.
	built := make([]*pending, len(events))
	for i, ev := range events {
		p, res := a.build(ev, start)
		if p == nil {
			results[i] = res
			continue
		}
		p.pos = i
		built[i] = p
	}

	// Claim each key, or join the commit already in flight for it. Once a
	// key is claimed nobody else can commit it, and any earlier commit of it
	// wrote the index before releasing its claim, so the index lookup below
	// (done outside the lock) cannot miss it.
	var claimed []*pending
	a.mu.Lock()
	for i, p := range built {
		if p == nil {
			continue
		}
		if f, ok := a.inflight[p.key]; ok {
			waits = append(waits, struct {
				pos int
				f   *flight
			}{i, f})
			continue
		}
		p.f = &flight{claimer: p, done: make(chan struct{})}
		a.inflight[p.key] = p.f
		claimed = append(claimed, p)
	}
	a.mu.Unlock()
	var shared backend.Claims
	var sharedRes []backend.ClaimResult
	if a.claims != nil && len(claimed) > 0 {
		shared = a.claims.NewClaims()
		keys := make([]backend.Key, len(claimed))
		for i, p := range claimed {
			keys[i] = backend.Key{Source: p.key.source, EventID: p.key.eventID}
		}
		sharedRes = shared.Claim(ctx, keys, a.next)
	}
	for i, p := range claimed {
		var idx uint64
		var ok bool
		var err error
		if shared != nil {
			idx, ok, err = sharedRes[i].Index, sharedRes[i].Admitted, sharedRes[i].Err
		} else {
			idx, ok, err = a.store.LookupEvent(p.key.source, p.key.eventID)
		}
		switch {
		case errors.Is(err, backend.ErrBusy):
			a.finish(p, refuse(codes.Unavailable, "another replica is committing this (source, event_id) and did not finish in time; resubmit it to learn its index"))
			results[p.pos] = p.f.res
		case err != nil:
			a.finish(p, refuse(codes.Unavailable, "dedup index unavailable: %v", err))
			results[p.pos] = p.f.res
		case ok:
			results[p.pos] = result{index: idx, duplicate: true}
			if fp, diff, read := a.admitted(ctx, p, idx); read {
				// Copies waiting on this claim compare with what was
				// admitted, not with this copy.
				p.f.admittedFP = &fp
				if diff != "" {
					results[p.pos] = result{index: idx, code: codes.AlreadyExists, msg: diff}
				}
			}
			a.finish(p, result{index: idx})
		default:
			fresh = append(fresh, p)
		}
	}
	todo := a.loggedElsewhere(ctx, fresh, shared)
	for _, p := range fresh {
		select {
		case <-p.f.done: // refused by loggedElsewhere
			results[p.pos] = p.f.res
		default:
		}
	}

	if len(todo) > 0 {
		// The commit runs to completion even if the caller goes away, so no
		// event is left half-written.
		done := a.startCommit(ctx, todo, shared)
		select {
		case <-done:
		case <-ctx.Done():
		}
		for _, p := range todo {
			select {
			case <-p.f.done:
				results[p.pos] = p.f.res
			default:
				results[p.pos] = refuse(codes.DeadlineExceeded, "the event is still being committed when the deadline passed; resubmit it to learn its index")
			}
		}
	}
	for _, w := range waits {
		select {
		case <-w.f.done:
			r := w.f.res
			if r.code == codes.OK {
				r.duplicate = true
				if built[w.pos].fingerprint() != w.f.fingerprint() {
					msg := conflictMessage(r.index, "")
					_, diff, read := a.admitted(ctx, built[w.pos], r.index)
					if read && diff != "" {
						msg = diff
					}
					if !read || diff != "" {
						r = result{index: r.index, code: codes.AlreadyExists, msg: msg}
					}
				}
			}
			results[w.pos] = r
		case <-ctx.Done():
			results[w.pos] = refuse(codes.DeadlineExceeded, "a copy of this event is still being committed; resubmit it to learn its index")
		}
	}
	return results
}

// build validates one event and turns it into a leaf and payload.
func (a *admitter) build(ev *stelev1.Event, now time.Time) (*pending, result) {
	if ev == nil {
		return nil, refuse(codes.InvalidArgument, "event is empty")
	}
	if ev.Source == "" {
		return nil, refuse(codes.InvalidArgument, "source is empty: set the stream the event belongs to, e.g. entra/<tenant-id>/audit")
	}
	if err := leaf.ValidateSource(ev.Source); err != nil {
		return nil, refuse(codes.InvalidArgument, "source: %v", err)
	}
	if len(ev.Record) > a.cfg.MaxRecordBytes {
		return nil, refuse(codes.ResourceExhausted, "record is %d bytes, over the limit of %d", len(ev.Record), a.cfg.MaxRecordBytes)
	}
	if err := checkRecord(ev.Format, ev.Record); err != nil {
		return nil, refuse(codes.InvalidArgument, "%v", err)
	}
	// The server's own normaliser settles event_id, kind and event_time
	// where the producer left them empty, and refuses a contradiction.
	norm, err := normalizeEvent(ev)
	if err != nil {
		return nil, refuse(codes.InvalidArgument, "%v", err)
	}
	if err := leaf.ValidateEventID(norm.eventID); err != nil {
		return nil, refuse(codes.InvalidArgument, "event_id: %v", err)
	}
	if err := leaf.ValidateKind(norm.kind); err != nil {
		return nil, refuse(codes.InvalidArgument, "kind: %v", err)
	}
	et := norm.time
	if et.Before(time.Unix(0, 0)) {
		return nil, refuse(codes.InvalidArgument, "event_time %s is before 1970", et.Format(time.RFC3339Nano))
	}
	if skew := et.Sub(now); skew > a.cfg.MaxClockSkew {
		return nil, refuse(codes.InvalidArgument, "event_time %s is %s in the future (the limit is %s): check the producer's clock", et.Format(time.RFC3339Nano), skew.Round(time.Second), a.cfg.MaxClockSkew)
	}
	if ev.ProducerSignature != nil && (ev.EventId == "" || ev.Kind == "" || ev.EventTime == nil) {
		return nil, refuse(codes.InvalidArgument, "a signed event must carry its own event_id, kind and event_time, because the signature covers them: set them to the normaliser's values (%q, %q, %s)", norm.eventID, norm.kind, et.Format(time.RFC3339Nano))
	}
	sig, bad := producerSignature(ev, et)
	if bad != nil {
		return nil, *bad
	}

	pl := payload.Payload{Format: ev.Format, Record: ev.Record, Normalized: norm.view}
	pb, err := pl.Marshal()
	if err != nil {
		return nil, refuse(codes.InvalidArgument, "payload: %v", err)
	}
	salt, err := leaf.NewSalt()
	if err != nil {
		return nil, refuse(codes.Internal, "making salt: %v", err)
	}
	digest, err := leaf.Digest(salt, pb)
	if err != nil {
		return nil, refuse(codes.Internal, "payload digest: %v", err)
	}
	l := leaf.Leaf{
		Source:        ev.Source,
		SourceSeq:     ev.SourceSeq,
		EventID:       norm.eventID,
		Kind:          norm.kind,
		EventTime:     et,
		AdmittedTime:  now,
		PayloadDigest: digest,
		PayloadSize:   uint32(len(pb)),
		Signature:     sig,
	}
	lb, err := l.Marshal()
	if err != nil {
		return nil, refuse(codes.InvalidArgument, "leaf: %v", err)
	}
	if len(lb) > tessera.DefaultEntrySizeLimit {
		return nil, refuse(codes.InvalidArgument, "leaf is %d bytes, over the tlog-tiles limit of %d", len(lb), tessera.DefaultEntrySizeLimit)
	}
	return &pending{
		key:       dedupKey{ev.Source, norm.eventID},
		format:    ev.Format,
		record:    ev.Record,
		kind:      norm.kind,
		eventTime: et,
		sourceSeq: ev.SourceSeq,
		leaf:      lb,
		hash:      leafHash(lb),
		store:     store.Payload{Digest: digest, Admitted: now, Salt: salt, Data: pb},
	}, result{}
}

// finish records a flight's outcome, releases its claim and wakes waiters.
func (a *admitter) finish(p *pending, r result) {
	p.f.res = r
	a.mu.Lock()
	delete(a.inflight, p.key)
	a.mu.Unlock()
	close(p.f.done)
}

// startCommit runs commit in its own goroutine, detached from ctx's
// cancellation, and counts it in a.commits unless the admitter is closed
// (then commit only refuses and touches no store). The count is taken
// under a.mu, where close marks the admitter closed, so drain never races
// a new commit.
func (a *admitter) startCommit(ctx context.Context, ps []*pending, shared backend.Claims) <-chan struct{} {
	a.mu.Lock()
	counted := true
	select {
	case <-a.closed:
		counted = false
	default:
		a.commits.Add(1)
	}
	a.mu.Unlock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		if counted {
			defer a.commits.Done()
		}
		a.commit(context.WithoutCancel(ctx), ps, shared)
	}()
	return done
}

// close refuses every commit not yet started and waits, until ctx ends,
// for those running: they write to the store, which must outlive them.
func (a *admitter) close(ctx context.Context) error {
	a.mu.Lock()
	close(a.closed)
	a.mu.Unlock()
	done := make(chan struct{})
	go func() {
		a.commits.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("commits still running when the deadline passed: %w", ctx.Err())
	}
}

// commit writes payloads durably, sequences the leaves, indexes them and
// resolves every flight in ps. On aws, shared holds ps's claims: those whose
// leaves are known not to be sequenced are released.
func (a *admitter) commit(ctx context.Context, ps []*pending, shared backend.Claims) {
	finish := a.finish
	release := func(ps []*pending) {
		if shared == nil {
			return
		}
		keys := make([]backend.Key, len(ps))
		for i, p := range ps {
			keys[i] = backend.Key{Source: p.key.source, EventID: p.key.eventID}
		}
		// On failure the claims stay until their lease runs out.
		_ = shared.Release(keys)
	}
	select {
	case <-a.closed:
		release(ps)
		for _, p := range ps {
			finish(p, refuse(codes.Unavailable, "the server is shutting down; retry against another replica or after restart"))
		}
		return
	default:
	}

	if err := a.diskSpace(); err != nil {
		for _, p := range ps {
			finish(p, refuse(codes.Unavailable, "%v", err))
		}
		return
	}
	payloads := make([]store.Payload, len(ps))
	for i, p := range ps {
		payloads[i] = p.store
	}
	if err := a.store.PutPayloads(payloads); err != nil {
		release(ps)
		for _, p := range ps {
			finish(p, refuse(codes.Unavailable, "storing payload: %v", err))
		}
		return
	}

	futures := make([]tessera.IndexFuture, len(ps))
	for i, p := range ps {
		futures[i] = a.add(ctx, tessera.NewEntry(p.leaf))
	}
	idx := make([]store.Indexed, 0, len(ps))
	ok := make([]*pending, 0, len(ps))
	var failed []*pending
	var ferr error
	for i, f := range futures {
		got, err := f()
		if err != nil {
			failed = append(failed, ps[i])
			ferr = err
			continue
		}
		ps[i].f.res = result{index: got.Index}
		idx = append(idx, store.Indexed{Source: ps[i].key.source, EventID: ps[i].key.eventID, LeafHash: ps[i].hash, Index: got.Index})
		ok = append(ok, ps[i])
	}
	if errors.Is(ferr, tessera.ErrPushback) {
		// Refused before sequencing. Other errors may come after a commit
		// whose answer was lost: those claims wait out their lease.
		release(failed)
	}
	for _, p := range failed {
		code := codes.Unavailable
		if errors.Is(ferr, tessera.ErrPushback) {
			code = codes.ResourceExhausted
		}
		finish(p, refuse(code, "sequencing: %v", ferr))
	}
	if len(ok) == 0 {
		return
	}
	if err := a.store.PutIndexes(idx); err != nil {
		// The leaves are durably in the log; the indexes are rebuilt from it
		// on the next start. Until then a resubmission could not be matched,
		// so stop admitting rather than risk a duplicate.
		a.m.fatal.Inc()
		for _, p := range ok {
			finish(p, p.f.res)
		}
		panic(fmt.Sprintf("stele: dedup index write failed after sequencing; restart to rebuild it from the log: %v", err))
	}
	a.marks.done(idx)
	for _, p := range ok {
		finish(p, p.f.res)
	}
}
