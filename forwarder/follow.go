package forwarder

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/transparency-dev/tessera/api/layout"
	"golang.org/x/sync/errgroup"

	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/forwarder/record"
	"github.com/stele-dev/stele/leaf"
	"github.com/stele-dev/stele/payload"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
)

// EventReader fetches the payloads of a range of entries, from start on:
// at most count, at least one; *client.Client is one (it needs the reader
// role on the log's server).
type EventReader interface {
	Events(ctx context.Context, start uint64, count int) ([]*stelev1.GetEventResponse, error)
}

// Follower reads a log the way `stele monitor` does: every checkpoint it
// accepts carries the log's signature (and meets the witness policy, when
// one is set) and is proven consistent with the one trusted before it,
// which is kept in a client.StateStore; every entry it returns is proven
// included in the trusted checkpoint and its payload checked against the
// entry's leaf.
type Follower struct {
	Log    *client.TileLog
	Events EventReader
	// State keeps the trusted checkpoint across restarts; nil: in memory.
	State  *client.StateStore
	Policy *client.Policy
	// Concurrency bounds the payload range reads in flight (default 16).
	Concurrency int

	mu      sync.Mutex
	trusted *client.Checkpoint
}

// Trusted is the latest checkpoint Advance verified (nil before the first).
func (f *Follower) Trusted() *client.Checkpoint {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.trusted == nil && f.State != nil {
		if cp, err := f.State.Trusted(); err == nil {
			f.trusted = cp
		}
	}
	return f.trusted
}

// Advance fetches the log's checkpoint, checks the witness policy, proves
// it consistent with the trusted checkpoint and trusts it. A checkpoint
// that fails is returned as an error wrapping client.ErrVerification and
// the trusted checkpoint stays as it was.
func (f *Follower) Advance(ctx context.Context) (*client.Checkpoint, error) {
	cp, err := f.Log.Checkpoint(ctx)
	if err != nil {
		return nil, fmt.Errorf("log checkpoint: %w", err)
	}
	if f.Policy != nil {
		if err := f.Policy.Check(cp); err != nil {
			return nil, fmt.Errorf("%w: %v", client.ErrVerification, err)
		}
	}
	old := f.Trusted()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.State != nil {
		if _, err := f.State.Update(ctx, cp); err != nil {
			return nil, err
		}
	} else if old != nil {
		if err := client.CheckConsistent(ctx, old, cp, f.Log.ConsistencyProof); err != nil {
			return nil, err
		}
	}
	if old == nil || cp.Size >= old.Size {
		f.trusted = cp
	}
	return f.trusted, nil
}

// Read returns the verified entries [from, from+n) of the tree cp (cut at
// cp.Size), in log order, each with its receipt in cp and its payload (or
// tombstone) checked against its leaf. The payloads are fetched in ranges
// (GetEvents), Concurrency calls at a time, while the entry bundles are
// read and every entry's inclusion proof is built from the log's tiles
// (each tile read once for the batch) and verified.
func (f *Follower) Read(ctx context.Context, cp *client.Checkpoint, from uint64, n int) ([]*record.Entry, error) {
	if from >= cp.Size || n <= 0 {
		return nil, nil
	}
	if f.Events == nil {
		return nil, errors.New("forwarder: no payload reader")
	}
	end := min(cp.Size, from+uint64(n))
	out := make([]*record.Entry, end-from)
	evs := make([]*stelev1.GetEventResponse, end-from)
	limit := f.Concurrency
	if limit <= 0 {
		limit = 16
	}
	// Ranges of at least 50 entries (one call each unless the server cuts
	// it), spread over the allowed calls.
	chunk := max(50, (end-from+uint64(limit)-1)/uint64(limit))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(limit + 1)
	g.Go(func() error { return f.entries(gctx, cp, from, end, out) })
	for s := from; s < end; s += chunk {
		g.Go(func() error { return f.fetch(gctx, s, min(end, s+chunk), evs[s-from:]) })
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	for i, e := range out {
		if err := checkPayload(e, evs[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// entries reads the leaves [from, end) of the tree cp and proves each
// included, filling out.
func (f *Follower) entries(ctx context.Context, cp *client.Checkpoint, from, end uint64, out []*record.Entry) error {
	pv := f.Log.Prover(cp.Size)
	rc := record.NewCheckpoint(cp)
	for bi := from / layout.EntryBundleWidth; bi*layout.EntryBundleWidth < end; bi++ {
		es, err := f.Log.Bundle(ctx, bi, cp.Size)
		if err != nil {
			return fmt.Errorf("entry bundle %d: %w", bi, err)
		}
		for j, e := range es {
			i := bi*layout.EntryBundleWidth + uint64(j)
			if i < from || i >= end {
				continue
			}
			hs, err := pv.InclusionProof(ctx, i)
			if err != nil {
				return fmt.Errorf("inclusion proof of entry %d: %w", i, err)
			}
			if err := client.VerifyInclusion(cp, i, e, hs); err != nil {
				return fmt.Errorf("%w: entry %d: %v", client.ErrVerification, i, err)
			}
			l, err := leaf.Unmarshal(e)
			if err != nil {
				return fmt.Errorf("%w: entry %d is not a leaf v1: %v", client.ErrVerification, i, err)
			}
			out[i-from] = &record.Entry{Origin: cp.Origin, Index: i, LeafBytes: e, Leaf: l, Receipt: rc.Receipt(i, hs, e), Checkpoint: rc}
		}
	}
	for k, e := range out {
		if e == nil {
			return fmt.Errorf("entry %d: not in the entry bundles of a tree of %d", from+uint64(k), cp.Size)
		}
	}
	return nil
}

// fetch reads the payloads of the entries [start, end) into evs, asking
// again where the server cut its answer.
func (f *Follower) fetch(ctx context.Context, start, end uint64, evs []*stelev1.GetEventResponse) error {
	for s := start; s < end; {
		got, err := f.Events.Events(ctx, s, int(end-s))
		if err != nil {
			return err
		}
		if len(got) == 0 || len(got) > int(end-s) {
			return fmt.Errorf("asked for %d events from %d, the server answered %d", end-s, s, len(got))
		}
		for _, ev := range got {
			if ev.Index != s {
				return fmt.Errorf("%w: asked for event %d, the server answered %d", client.ErrVerification, s, ev.Index)
			}
			evs[s-start] = ev
			s++
		}
	}
	return nil
}

// checkPayload checks an entry's payload (or tombstone), as the server
// answered it, against the entry's leaf and attaches it.
func checkPayload(e *record.Entry, ev *stelev1.GetEventResponse) error {
	if ev.Tombstone != nil {
		if ev.Tombstone.Index != e.Index {
			return fmt.Errorf("%w: entry %d: the server's tombstone names entry %d", client.ErrVerification, e.Index, ev.Tombstone.Index)
		}
		e.Tombstone = ev.Tombstone
		return nil
	}
	if err := e.Leaf.VerifyPayload(ev.Salt, ev.Payload); err != nil {
		return fmt.Errorf("%w: entry %d: the server's payload is not the one the log commits to: %v", client.ErrVerification, e.Index, err)
	}
	// The response is ours and not changed after: the record and view
	// alias its payload bytes.
	p, err := payload.UnmarshalAliased(ev.Payload)
	if err != nil {
		return fmt.Errorf("%w: entry %d: payload: %v", client.ErrVerification, e.Index, err)
	}
	e.Salt, e.Payload = ev.Salt, p
	return nil
}
