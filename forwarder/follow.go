package forwarder

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/transparency-dev/tessera/api/layout"
	tclient "github.com/transparency-dev/tessera/client"
	"golang.org/x/sync/errgroup"

	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/forwarder/record"
	"github.com/stele-dev/stele/leaf"
	"github.com/stele-dev/stele/payload"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
)

// EventReader fetches an entry's payload; *client.Client is one (it needs
// the reader role on the log's server).
type EventReader interface {
	Event(ctx context.Context, index uint64) (*stelev1.GetEventResponse, error)
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
	// Concurrency bounds the payload fetches in flight (default 16).
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
// tombstone) checked against its leaf.
func (f *Follower) Read(ctx context.Context, cp *client.Checkpoint, from uint64, n int) ([]*record.Entry, error) {
	if from >= cp.Size || n <= 0 {
		return nil, nil
	}
	end := min(cp.Size, from+uint64(n))
	out := make([]*record.Entry, 0, end-from)
	pb, err := tclient.NewProofBuilder(ctx, cp.Size, f.Log.ReadTile)
	if err != nil {
		return nil, err
	}
	for bi := from / layout.EntryBundleWidth; bi*layout.EntryBundleWidth < end; bi++ {
		es, err := f.Log.Bundle(ctx, bi, cp.Size)
		if err != nil {
			return nil, fmt.Errorf("entry bundle %d: %w", bi, err)
		}
		for j, e := range es {
			i := bi*layout.EntryBundleWidth + uint64(j)
			if i < from || i >= end {
				continue
			}
			incl, err := pb.InclusionProof(ctx, i)
			if err != nil {
				return nil, fmt.Errorf("inclusion proof of entry %d: %w", i, err)
			}
			hs := make([][32]byte, len(incl))
			for k, h := range incl {
				if len(h) != 32 {
					return nil, fmt.Errorf("%w: inclusion proof of entry %d: a hash of %d bytes", client.ErrVerification, i, len(h))
				}
				hs[k] = [32]byte(h)
			}
			if err := client.VerifyInclusion(cp, i, e, hs); err != nil {
				return nil, fmt.Errorf("%w: entry %d: %v", client.ErrVerification, i, err)
			}
			l, err := leaf.Unmarshal(e)
			if err != nil {
				return nil, fmt.Errorf("%w: entry %d is not a leaf v1: %v", client.ErrVerification, i, err)
			}
			out = append(out, &record.Entry{Origin: cp.Origin, Index: i, LeafBytes: e, Leaf: l, Receipt: record.Receipt(cp, i, hs, e)})
		}
	}
	if f.Events == nil {
		return nil, errors.New("forwarder: no payload reader")
	}
	g, gctx := errgroup.WithContext(ctx)
	limit := f.Concurrency
	if limit <= 0 {
		limit = 16
	}
	g.SetLimit(limit)
	for _, e := range out {
		g.Go(func() error { return f.payload(gctx, e) })
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return out, nil
}

// payload fetches an entry's payload and checks it against the leaf.
func (f *Follower) payload(ctx context.Context, e *record.Entry) error {
	ev, err := f.Events.Event(ctx, e.Index)
	if err != nil {
		return err
	}
	if ev.Index != e.Index {
		return fmt.Errorf("%w: asked for event %d, the server answered %d", client.ErrVerification, e.Index, ev.Index)
	}
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
	p, err := payload.Unmarshal(ev.Payload)
	if err != nil {
		return fmt.Errorf("%w: entry %d: payload: %v", client.ErrVerification, e.Index, err)
	}
	e.Salt, e.Payload = ev.Salt, p
	return nil
}
