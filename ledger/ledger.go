// Package ledger reads a Stele log as a verified sequence of identity
// events: entries read from the log's tiles are hashed into the tree of the
// requested size, whose root must equal a signed checkpoint's or be proven
// a prefix of it (consistency proof); each entry's payload, fetched with
// reader credentials, must match the leaf's salted commitment; and the
// normalised view is re-derived from the raw record by this build's
// normaliser (identity.Views). state, drift and history read the log
// through it.
package ledger

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"

	"github.com/transparency-dev/formats/proof"
	"github.com/transparency-dev/merkle/compact"
	mproof "github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api/layout"
	tclient "github.com/transparency-dev/tessera/client"

	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/identity"
	"github.com/stele-dev/stele/leaf"
	"github.com/stele-dev/stele/payload"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
)

// PayloadFunc fetches the stored event at an index (stele.v1 GetEvent; it
// needs the reader role). client.Client.Event is one.
type PayloadFunc func(ctx context.Context, index uint64) (*stelev1.GetEventResponse, error)

// Entry is one verified log entry.
type Entry struct {
	Index     uint64
	LeafBytes []byte
	Leaf      *leaf.Leaf
	// Event is the normalised view re-derived from the payload's raw
	// record; nil when Problem is set.
	Event *stelev1.IdentityEvent
	// Problem says why there is no event: "erased", "no payloads read",
	// "not a leaf v1: …", "normaliser: …".
	Problem string
}

// Reader walks a log.
type Reader struct {
	Log *client.TileLog
	// Payloads, when set, fetches payloads; without it entries carry
	// leaves only (Problem "no payloads read").
	Payloads PayloadFunc
	// Workers is how many payloads are fetched at once (default 8).
	Workers int
	// Progress, when set, is called after each entry bundle.
	Progress func(done, total uint64)
}

// Walk verifies entries [from, size) of the log against cp and calls fn
// for each, in log order. size must be at most cp.Size; the tree of that
// size is proven a prefix of cp's tree. fn is called only once a whole
// entry bundle has been read and its payloads checked; the root check
// comes at the end, so a caller must discard what it built when Walk
// returns an error wrapping client.ErrVerification. It returns the root of
// the tree of size size.
func (r *Reader) Walk(ctx context.Context, cp *client.Checkpoint, from, size uint64, fn func(*Entry) error) ([32]byte, error) {
	return r.walk(ctx, cp, from, nil, size, fn)
}

// Extend is Walk from a tree the caller built before (an index of entries
// [0, from)): the log's tree of size from must have root fromRoot, so
// what the caller built and what it extends are one log. It walks to
// cp.Size.
func (r *Reader) Extend(ctx context.Context, cp *client.Checkpoint, from uint64, fromRoot [32]byte, fn func(*Entry) error) ([32]byte, error) {
	return r.walk(ctx, cp, from, &fromRoot, cp.Size, fn)
}

func (r *Reader) walk(ctx context.Context, cp *client.Checkpoint, from uint64, fromRoot *[32]byte, size uint64, fn func(*Entry) error) ([32]byte, error) {
	if size > cp.Size {
		return [32]byte{}, fmt.Errorf("size %d is beyond the log's checkpoint (size %d)", size, cp.Size)
	}
	if from > size {
		return [32]byte{}, fmt.Errorf("start %d is beyond size %d", from, size)
	}
	lg := r.Log
	rf := &compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	rng := rf.NewEmptyRange(0)
	if from > 0 {
		nodes, err := tclient.FetchRangeNodes(ctx, from, lg.ReadTile)
		if err != nil {
			return [32]byte{}, fmt.Errorf("reading the tree at size %d: %w", from, err)
		}
		if rng, err = rf.NewRange(0, from, nodes); err != nil {
			return [32]byte{}, fmt.Errorf("%w: the log's tiles do not make a tree of size %d: %v", client.ErrVerification, from, err)
		}
	}
	if fromRoot != nil {
		got := rfc6962.DefaultHasher.EmptyRoot()
		if from > 0 {
			var err error
			if got, err = rng.GetRootHash(nil); err != nil {
				return [32]byte{}, err
			}
		}
		if [32]byte(got) != *fromRoot {
			return [32]byte{}, fmt.Errorf("%w: the log's tree of size %d has root %x, not the %x it had when this was built: rebuild it", client.ErrVerification, from, got, *fromRoot)
		}
	}
	for bi := from / layout.EntryBundleWidth; bi*layout.EntryBundleWidth < size; bi++ {
		es, err := lg.Bundle(ctx, bi, size)
		if err != nil {
			return [32]byte{}, fmt.Errorf("entry bundle %d: %w", bi, err)
		}
		var batch []*Entry
		for j, e := range es {
			i := bi*layout.EntryBundleWidth + uint64(j)
			if i < from {
				continue
			}
			if err := rng.Append(rfc6962.DefaultHasher.HashLeaf(e), nil); err != nil {
				return [32]byte{}, err
			}
			en := &Entry{Index: i, LeafBytes: e}
			if en.Leaf, err = leaf.Unmarshal(e); err != nil {
				en.Problem = fmt.Sprintf("not a leaf v1: %v", err)
			}
			batch = append(batch, en)
		}
		if err := r.events(ctx, batch); err != nil {
			return [32]byte{}, err
		}
		for _, en := range batch {
			if err := fn(en); err != nil {
				return [32]byte{}, err
			}
		}
		if r.Progress != nil {
			r.Progress(min((bi+1)*layout.EntryBundleWidth, size), size)
		}
	}
	rootB := rfc6962.DefaultHasher.EmptyRoot()
	if size > 0 {
		var err error
		if rootB, err = rng.GetRootHash(nil); err != nil {
			return [32]byte{}, err
		}
	}
	root := [32]byte(rootB)
	if size == cp.Size {
		if root != cp.Root {
			return root, fmt.Errorf("%w: entries 0..%d hash to %x, the checkpoint (size %d) says %x", client.ErrVerification, size-1, root, cp.Size, cp.Root)
		}
		return root, nil
	}
	if size == 0 {
		return root, nil
	}
	cons, err := lg.ConsistencyProof(ctx, size, cp.Size)
	if err != nil {
		return root, err
	}
	if err := mproof.VerifyConsistency(rfc6962.DefaultHasher, size, cp.Size, cons, root[:], cp.Root[:]); err != nil {
		return root, fmt.Errorf("%w: the tree of size %d (root %x) is not a prefix of the checkpoint's (size %d, root %x): %v", client.ErrVerification, size, root, cp.Size, cp.Root, err)
	}
	return root, nil
}

// events fetches and checks the payloads of a batch, Workers at a time.
func (r *Reader) events(ctx context.Context, batch []*Entry) error {
	if r.Payloads == nil {
		for _, en := range batch {
			if en.Problem == "" {
				en.Problem = "no payloads read"
			}
		}
		return nil
	}
	workers := r.Workers
	if workers <= 0 {
		workers = 8
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		ferr error
		next = make(chan *Entry)
	)
	for range min(workers, len(batch)) {
		wg.Go(func() {
			for en := range next {
				if err := r.event(ctx, en); err != nil {
					mu.Lock()
					if ferr == nil {
						ferr = err
					}
					mu.Unlock()
				}
			}
		})
	}
	for _, en := range batch {
		if en.Problem == "" {
			next <- en
		}
	}
	close(next)
	wg.Wait()
	return ferr
}

// event fetches one payload, checks it against the leaf and re-derives
// the view. A payload that does not match its leaf is a verification
// failure, not a problem of the entry: the server lied.
func (r *Reader) event(ctx context.Context, en *Entry) error {
	resp, err := r.Payloads(ctx, en.Index)
	if err != nil {
		return fmt.Errorf("payload of entry %d: %w", en.Index, err)
	}
	if !bytes.Equal(resp.GetLeaf(), en.LeafBytes) && len(resp.GetLeaf()) > 0 {
		return fmt.Errorf("%w: entry %d: the server's leaf is not the one in the log's tiles", client.ErrVerification, en.Index)
	}
	if resp.GetTombstone() != nil {
		en.Problem = "erased"
		return nil
	}
	if err := en.Leaf.VerifyPayload(resp.GetSalt(), resp.GetPayload()); err != nil {
		return fmt.Errorf("%w: entry %d: the server's payload is not the one the log commits to: %v", client.ErrVerification, en.Index, err)
	}
	p, err := payload.Unmarshal(resp.GetPayload())
	if err != nil {
		en.Problem = fmt.Sprintf("payload: %v", err)
		return nil
	}
	stored, current, currentErr, err := identity.Views(p)
	switch {
	case err != nil:
		en.Problem = fmt.Sprintf("stored view: %v", err)
	case currentErr != nil:
		en.Problem = fmt.Sprintf("normaliser: %v", currentErr)
	case current != nil:
		en.Event = current
	default:
		en.Event = stored
	}
	return nil
}

// Read returns one entry whose bytes the caller has verified (a Proof's
// Leaf), with its payload fetched, checked and its view re-derived.
func (r *Reader) Read(ctx context.Context, index uint64, leafBytes []byte) (*Entry, error) {
	en := &Entry{Index: index, LeafBytes: leafBytes}
	var err error
	if en.Leaf, err = leaf.Unmarshal(leafBytes); err != nil {
		en.Problem = fmt.Sprintf("not a leaf v1: %v", err)
		return en, nil
	}
	if err := r.events(ctx, []*Entry{en}); err != nil {
		return nil, err
	}
	return en, nil
}

// Proof is an entry's inclusion proof in a checkpoint, and its receipt
// (C2SP tlog-proof with the leaf as extra data, as `stele receipt` writes
// it and `stele verify` checks offline).
type Proof struct {
	Index     uint64   `json:"index"`
	TreeSize  uint64   `json:"tree_size"`
	Root      string   `json:"root"`
	Inclusion []string `json:"inclusion"`
	Receipt   string   `json:"receipt"`
	// Leaf is the entry's bytes (in the receipt too).
	Leaf []byte `json:"-"`
}

// Prover builds verified inclusion proofs of entries in one checkpoint.
type Prover struct {
	log *client.TileLog
	cp  *client.Checkpoint
	pb  *tclient.ProofBuilder
}

// NewProver returns a prover for cp.
func NewProver(ctx context.Context, lg *client.TileLog, cp *client.Checkpoint) (*Prover, error) {
	pb, err := tclient.NewProofBuilder(ctx, cp.Size, lg.ReadTile)
	if err != nil {
		return nil, err
	}
	return &Prover{log: lg, cp: cp, pb: pb}, nil
}

// Checkpoint is the checkpoint the proofs lead to.
func (p *Prover) Checkpoint() *client.Checkpoint { return p.cp }

// Prove returns the verified inclusion proof of the entry at index, whose
// bytes are leafBytes (nil: read from the tiles).
func (p *Prover) Prove(ctx context.Context, index uint64, leafBytes []byte) (*Proof, error) {
	if leafBytes == nil {
		var err error
		if leafBytes, err = p.log.Entry(ctx, index, p.cp.Size); err != nil {
			return nil, err
		}
	}
	incl, err := p.pb.InclusionProof(ctx, index)
	if err != nil {
		return nil, fmt.Errorf("inclusion proof of entry %d: %w", index, err)
	}
	hs := make([][32]byte, len(incl))
	hexes := make([]string, len(incl))
	for k, h := range incl {
		if len(h) != 32 {
			return nil, fmt.Errorf("inclusion proof of entry %d: a hash of %d bytes", index, len(h))
		}
		hs[k], hexes[k] = [32]byte(h), hex.EncodeToString(h)
	}
	if err := client.VerifyInclusion(p.cp, index, leafBytes, hs); err != nil {
		return nil, fmt.Errorf("%w: %v", client.ErrVerification, err)
	}
	receipt := (&proof.TLogProof{Index: index, Hashes: hs, Checkpoint: p.cp.Raw, ExtraData: leafBytes}).Marshal()
	return &Proof{Index: index, TreeSize: p.cp.Size, Root: hex.EncodeToString(p.cp.Root[:]), Inclusion: hexes, Receipt: string(receipt), Leaf: leafBytes}, nil
}

// IsVerification reports whether err means the log or server lied.
func IsVerification(err error) bool { return errors.Is(err, client.ErrVerification) }
