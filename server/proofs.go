package server

import (
	"context"
	"fmt"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api/layout"
)

// tileNodes holds every complete subtree root of one hash tile: level k
// (0 = the tile's own hashes) as concatenated 32-byte hashes, node i at
// [32i, 32i+32). A partial tile's incomplete subtrees are left out: proofs
// never need them.
type tileNodes [][]byte

// newTileNodes hashes a tile's subtrees once (at most 255 hashes), so every
// later proof through the tile costs lookups only. Level 0 is the tile
// itself (a tile is its hashes, concatenated), shared with the tile cache.
func newTileNodes(raw []byte) (tileNodes, error) {
	if len(raw) == 0 || len(raw)%32 != 0 || len(raw) > 32*layout.TileWidth {
		return nil, fmt.Errorf("tile is %d bytes, want a positive multiple of 32 up to %d", len(raw), 32*layout.TileWidth)
	}
	nodes := tileNodes{raw}
	for n := len(raw) / 64; n > 0; n /= 2 {
		prev := nodes[len(nodes)-1]
		next := make([]byte, 0, 32*n)
		for i := range n {
			next = append(next, rfc6962.DefaultHasher.HashChildren(prev[64*i:64*i+32], prev[64*i+32:64*i+64])...)
		}
		nodes = append(nodes, next)
	}
	return nodes, nil
}

// node returns the hash of a tree node in a tree of the given size, from the
// tile that holds it.
func (c *cachingReader) node(ctx context.Context, id compact.NodeID, size uint64) ([]byte, error) {
	tl, ti, nl, ni := layout.NodeCoordsToTileAddress(uint64(id.Level), id.Index)
	k := tileKey{int64(tl), ti, layout.PartialTileSize(tl, ti, size)}
	t, ok := c.nodes.Get(k)
	if !ok {
		raw, err := c.ReadTile(ctx, tl, ti, k.p)
		if err != nil {
			return nil, fmt.Errorf("reading tile %d/%d: %w", tl, ti, err)
		}
		if t, err = newTileNodes(raw); err != nil {
			return nil, fmt.Errorf("tile %d/%d: %w", tl, ti, err)
		}
		c.nodes.Add(k, t)
	}
	if int(nl) >= len(t) || 32*(ni+1) > uint64(len(t[nl])) {
		return nil, fmt.Errorf("tile %d/%d of a tree of %d does not hold node %d at its level %d", tl, ti, size, ni, nl)
	}
	return t[nl][32*ni : 32*ni+32], nil
}

// proofHashes fetches the nodes a proof needs and folds its ephemeral node.
func (c *cachingReader) proofHashes(ctx context.Context, nodes proof.Nodes, size uint64) ([][]byte, error) {
	hs := make([][]byte, len(nodes.IDs))
	for i, id := range nodes.IDs {
		h, err := c.node(ctx, id, size)
		if err != nil {
			return nil, err
		}
		hs[i] = h
	}
	return nodes.Rehash(hs, rfc6962.DefaultHasher.HashChildren)
}

// inclusionProof returns the inclusion proof of leaf idx in a tree of size,
// reading the tiles of the tree of readSize ≥ size (the latest checkpoint's
// size: a partial tile of an older size may have been replaced by a wider
// one, whose prefix it is).
func (c *cachingReader) inclusionProof(ctx context.Context, idx, size, readSize uint64) ([][]byte, error) {
	nodes, err := proof.Inclusion(idx, size)
	if err != nil {
		return nil, err
	}
	return c.proofHashes(ctx, nodes, max(size, readSize))
}

// consistencyProof returns the consistency proof between two tree sizes,
// reading the tiles of the tree of readSize ≥ to.
func (c *cachingReader) consistencyProof(ctx context.Context, from, to, readSize uint64) ([][]byte, error) {
	nodes, err := proof.Consistency(from, to)
	if err != nil {
		return nil, err
	}
	return c.proofHashes(ctx, nodes, max(to, readSize))
}
