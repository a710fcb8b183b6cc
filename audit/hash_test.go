package audit

import (
	"bytes"
	"crypto/rand"
	"testing"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api/layout"
)

// TestHashesMatchRFC6962 holds the audit's allocation-free hashing to the
// merkle library's: leaf hashes, and the root of a whole bundle against a
// compact range built leaf by leaf.
func TestHashesMatchRFC6962(t *testing.T) {
	var s scratch
	entries := make([][]byte, layout.EntryBundleWidth)
	for i := range entries {
		entries[i] = make([]byte, i%200)
		_, _ = rand.Read(entries[i])
	}
	hashes := s.leafHashes(entries)
	rng := (&compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}).NewEmptyRange(0)
	for i, e := range entries {
		want := rfc6962.DefaultHasher.HashLeaf(e)
		if got := hashes[32*i : 32*i+32]; !bytes.Equal(got, want) {
			t.Fatalf("leaf %d hashes to %x, want %x", i, got, want)
		}
		if err := rng.Append(want, nil); err != nil {
			t.Fatal(err)
		}
	}
	want, err := rng.GetRootHash(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := bundleRoot(hashes); !bytes.Equal(got, want) {
		t.Fatalf("bundle root %x, want %x", got, want)
	}
}
