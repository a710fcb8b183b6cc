package server_test

import (
	be "encoding/binary"
	"testing"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/merkle/testonly"
)

// BenchmarkSelfCheck measures what the server's self-check adds to each
// proof it hands out: verifying it against the signed checkpoint's root
// (server/selfcheck.go), here on a tree of 2^20 entries (20-hash inclusion
// proofs). A proof for an older tree size also costs one root derivation
// and consistency check per size, done once and cached.
//
//	go test ./server -run '^$' -bench SelfCheck
func BenchmarkSelfCheck(b *testing.B) {
	const size = 1 << 20
	tree := testonly.New(rfc6962.DefaultHasher)
	var leaf [8]byte
	for i := range uint64(size) {
		be.BigEndian.PutUint64(leaf[:], i)
		tree.AppendData(leaf[:])
	}
	root := tree.Hash()
	b.Run("inclusion", func(b *testing.B) {
		const idx = size/3 + 7
		path, err := tree.InclusionProof(idx, size)
		if err != nil {
			b.Fatal(err)
		}
		lh := tree.LeafHash(idx)
		for b.Loop() {
			if err := proof.VerifyInclusion(rfc6962.DefaultHasher, idx, size, lh, path, root); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("consistency", func(b *testing.B) {
		const from = size/2 + 12345
		path, err := tree.ConsistencyProof(from, size)
		if err != nil {
			b.Fatal(err)
		}
		old := tree.HashAt(from)
		for b.Loop() {
			if err := proof.VerifyConsistency(rfc6962.DefaultHasher, from, size, path, old, root); err != nil {
				b.Fatal(err)
			}
		}
	})
}
