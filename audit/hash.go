package audit

import (
	"crypto/sha256"

	"github.com/transparency-dev/tessera/api/layout"
)

// scratch is the memory one fetch worker reuses from bundle to bundle:
// nothing in it outlives the bundle being checked (the results keep copies).
type scratch struct {
	bundle, tile []byte   // the fetched resources
	entries      [][]byte // the bundle's entries, slices of bundle
	hashes       []byte   // the entries' leaf hashes, 32 bytes each
	msg          []byte   // 0x00 || entry, the leaf hash's input
	key          []byte   // a dedup key's input
}

// leafHashes returns the RFC 6962 leaf hash of every entry,
// SHA-256(0x00 || entry), concatenated (entry i at [32i, 32i+32)).
func (s *scratch) leafHashes(entries [][]byte) []byte {
	s.hashes = s.hashes[:0]
	for _, e := range entries {
		s.msg = append(append(s.msg[:0], 0x00), e...)
		h := sha256.Sum256(s.msg)
		s.hashes = append(s.hashes, h[:]...)
	}
	return s.hashes
}

// bundleRoot returns the RFC 6962 root of a full tile of leaf hashes
// (layout.TileWidth of them, concatenated): the tree node of level
// layout.TileHeight above them. It overwrites hashes.
func bundleRoot(hashes []byte) []byte {
	var in [1 + 2*sha256.Size]byte
	in[0] = 0x01 // RFC 6962 interior node prefix
	n := layout.TileWidth
	for n > 1 {
		// Node i of the next level replaces node i of this one; it is
		// written after nodes 2i and 2i+1, which sit at or after it, are read.
		for i := range n / 2 {
			copy(in[1:], hashes[64*i:64*i+64])
			h := sha256.Sum256(in[:])
			copy(hashes[32*i:], h[:])
		}
		n /= 2
	}
	return append([]byte(nil), hashes[:32]...)
}
