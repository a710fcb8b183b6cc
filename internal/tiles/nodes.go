package tiles

import (
	"fmt"

	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api/layout"
)

// Nodes holds every complete subtree root of one hash tile: level k (0 =
// the tile's own hashes) as concatenated 32-byte hashes, node i at
// [32i, 32i+32). A partial tile's incomplete subtrees are left out: proofs
// never need them.
type Nodes [][]byte

// NewNodes hashes a tile's subtrees once (at most 255 hashes), so every
// later proof through the tile costs lookups only. Level 0 is the tile
// itself (a tile is its hashes, concatenated).
func NewNodes(raw []byte) (Nodes, error) {
	if len(raw) == 0 || len(raw)%32 != 0 || len(raw) > 32*layout.TileWidth {
		return nil, fmt.Errorf("tile is %d bytes, want a positive multiple of 32 up to %d", len(raw), 32*layout.TileWidth)
	}
	nodes := Nodes{raw}
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
