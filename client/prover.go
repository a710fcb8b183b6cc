package client

import (
	"context"
	"fmt"
	"github.com/stele-dev/stele/internal/tiles"
	"sync"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api/layout"
)

// Prover builds inclusion proofs for many entries of one tree from the
// log's tiles, for a reader that proves every entry it reads (a forwarder,
// a monitor): each tile is read once and each of its subtree hashes
// computed once, so a range of entries costs a few tile reads and, per
// proof, lookups only (Tessera's ProofBuilder hashes a tile's subtrees
// again for every node it reads). The proofs are not verified: check each
// with VerifyInclusion against the tree's checkpoint. A Prover is safe for
// concurrent use.
type Prover struct {
	log  *TileLog
	size uint64

	mu    sync.Mutex
	tiles map[[2]uint64]tileNodes
}

// Prover returns a Prover for the tree of the given size.
func (l *TileLog) Prover(size uint64) *Prover {
	return &Prover{log: l, size: size, tiles: map[[2]uint64]tileNodes{}}
}

// InclusionProof is the inclusion proof of the entry at index.
func (p *Prover) InclusionProof(ctx context.Context, index uint64) ([][32]byte, error) {
	nodes, err := proof.Inclusion(index, p.size)
	if err != nil {
		return nil, fmt.Errorf("inclusion proof of %d in a tree of %d: %w", index, p.size, err)
	}
	hs := make([][]byte, len(nodes.IDs))
	for i, id := range nodes.IDs {
		if hs[i], err = p.node(ctx, id); err != nil {
			return nil, err
		}
	}
	hs, err = nodes.Rehash(hs, rfc6962.DefaultHasher.HashChildren)
	if err != nil {
		return nil, err
	}
	out := make([][32]byte, len(hs))
	for i, h := range hs {
		out[i] = [32]byte(h)
	}
	return out, nil
}

// node returns a tree node's hash from the tile that holds it.
func (p *Prover) node(ctx context.Context, id compact.NodeID) ([]byte, error) {
	tl, ti, nl, ni := layout.NodeCoordsToTileAddress(uint64(id.Level), id.Index)
	k := [2]uint64{tl, ti}
	p.mu.Lock()
	t, ok := p.tiles[k]
	p.mu.Unlock()
	if !ok {
		raw, err := p.log.ReadTile(ctx, tl, ti, layout.PartialTileSize(tl, ti, p.size))
		if err != nil {
			return nil, fmt.Errorf("reading tile %d/%d: %w", tl, ti, err)
		}
		if t, err = newTileNodes(raw); err != nil {
			return nil, fmt.Errorf("tile %d/%d: %w", tl, ti, err)
		}
		p.mu.Lock()
		p.tiles[k] = t
		p.mu.Unlock()
	}
	if int(nl) >= len(t) || 32*(ni+1) > uint64(len(t[nl])) {
		return nil, fmt.Errorf("tile %d/%d of a tree of %d does not hold node %d at its level %d", tl, ti, p.size, ni, nl)
	}
	return t[nl][32*ni : 32*ni+32], nil
}

// tileNodes are a tile's subtree roots (internal/tiles).
type tileNodes = tiles.Nodes

var newTileNodes = tiles.NewNodes
