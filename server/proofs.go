package server

import (
	"context"
	"fmt"
	"github.com/stele-dev/stele/internal/tiles"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api/layout"
)

// tileNodes are a tile's subtree roots (internal/tiles).
type tileNodes = tiles.Nodes

var newTileNodes = tiles.NewNodes

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
