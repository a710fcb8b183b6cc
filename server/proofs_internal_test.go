package server

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/api/layout"
	tclient "github.com/transparency-dev/tessera/client"

	"github.com/stele-dev/stele/internal/testlog"
)

// dirTiles reads a POSIX log's tiles straight from its directory.
type dirTiles struct {
	tessera.LogReader // only ReadTile is used
	dir               string
}

func (d dirTiles) ReadTile(_ context.Context, level, index uint64, p uint8) ([]byte, error) {
	return os.ReadFile(filepath.Join(d.dir, layout.TilePath(level, index, p)))
}

// TestProofsMatchTessera checks the server's cached-subtree proofs against
// Tessera's own proof builder on a real log with three tile levels and a
// partial tile at each: inclusion proofs for edge and random indexes,
// consistency proofs from edge and random sizes, byte for byte, each asked
// twice (cold and cached).
func TestProofsMatchTessera(t *testing.T) {
	dir := t.TempDir()
	k := testlog.NewKey(t, "proofs.stele.test/log")
	const n = 256*256 + 3*256 + 7 // a level-2 tile, and partial tiles below it
	entries := make([][]byte, n)
	for i := range entries {
		entries[i] = fmt.Appendf(nil, "entry %d", i)
	}
	testlog.Append(t, dir, k.Signer, entries, nil)
	size := testlog.CheckpointSize(dir)
	if size != n {
		t.Fatalf("log size %d, want %d", size, n)
	}
	ctx := context.Background()
	r := newCachingReader(dirTiles{dir: dir})
	pb, err := tclient.NewProofBuilder(ctx, size, r.ReadTile)
	if err != nil {
		t.Fatal(err)
	}
	same := func(what string, got, want [][]byte) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s: %d hashes, Tessera gives %d", what, len(got), len(want))
		}
		for i := range got {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("%s: hash %d is %x, Tessera gives %x", what, i, got[i], want[i])
			}
		}
	}
	idxs := []uint64{0, 1, 255, 256, 257, 65535, 65536, n - 8, n - 7, n - 2, n - 1}
	for range 300 {
		idxs = append(idxs, rand.Uint64N(n))
	}
	for _, idx := range idxs {
		want, err := pb.InclusionProof(ctx, idx)
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			got, err := r.inclusionProof(ctx, idx, size, size)
			if err != nil {
				t.Fatalf("inclusion %d: %v", idx, err)
			}
			same(fmt.Sprintf("inclusion %d in %d", idx, size), got, want)
		}
	}
	froms := []uint64{1, 2, 255, 256, 257, 65536, 65537, n - 1, n}
	for range 100 {
		froms = append(froms, 1+rand.Uint64N(n))
	}
	for _, from := range froms {
		want, err := pb.ConsistencyProof(ctx, from, size)
		if err != nil {
			t.Fatal(err)
		}
		got, err := r.consistencyProof(ctx, from, size, size)
		if err != nil {
			t.Fatalf("consistency %d: %v", from, err)
		}
		same(fmt.Sprintf("consistency %d..%d", from, size), got, want)
	}
	if _, err := r.inclusionProof(ctx, n, size, size); err == nil {
		t.Fatal("an inclusion proof for an index past the tree")
	}
}

// TestTileNodesRefusesBadTile: an empty tile, or one that does not parse, is
// an error, not a panic; a partial tile keeps only its complete subtrees.
func TestTileNodesRefusesBadTile(t *testing.T) {
	for _, raw := range [][]byte{nil, make([]byte, 31), make([]byte, 8193)} {
		if _, err := newTileNodes(raw); err == nil {
			t.Errorf("tile of %d bytes accepted", len(raw))
		}
	}
	nodes, err := newTileNodes(make([]byte, 32*5))
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 3 || len(nodes[0]) != 5*32 || len(nodes[1]) != 2*32 || len(nodes[2]) != 32 {
		t.Fatalf("a 5-hash tile gave levels of %d, %d, %d bytes", len(nodes[0]), len(nodes[1]), len(nodes[2]))
	}
}

// BenchmarkInclusionProof compares building one inclusion proof for a random
// index of a 70k-entry log with the server's cached subtrees and with
// Tessera's ProofBuilder (which rehashes up to 255 nodes per tile), both
// reading tiles through the same tile cache, and what the server's
// self-check adds to each proof:
//
//	go test ./server -run '^$' -bench InclusionProof
func BenchmarkInclusionProof(b *testing.B) {
	dir := b.TempDir()
	k := testlog.NewKey(b, "proofs.stele.test/log")
	const n = 70000
	entries := make([][]byte, n)
	for i := range entries {
		entries[i] = fmt.Appendf(nil, "entry %d", i)
	}
	testlog.Append(b, dir, k.Signer, entries, nil)
	ctx := context.Background()
	r := newCachingReader(dirTiles{dir: dir})
	b.Run("stele", func(b *testing.B) {
		for b.Loop() {
			if _, err := r.inclusionProof(ctx, rand.Uint64N(n), n, n); err != nil {
				b.Fatal(err)
			}
		}
	})
	// The same, checked against the signed root before it is handed out,
	// as every proof the server serves is (selfcheck.go); at an older size
	// the root is proven once and then cached.
	last, err := r.node(ctx, compact.NewNodeID(0, n-1), n)
	if err != nil {
		b.Fatal(err)
	}
	path, err := r.inclusionProof(ctx, n-1, n, n)
	if err != nil {
		b.Fatal(err)
	}
	root, err := proof.RootFromInclusionProof(rfc6962.DefaultHasher, n-1, n, last, path)
	if err != nil {
		b.Fatal(err)
	}
	cp := &published{size: n, root: root}
	for _, size := range []uint64{n, n / 2} {
		b.Run(fmt.Sprintf("stele+self-check/size=%d", size), func(b *testing.B) {
			for b.Loop() {
				idx := rand.Uint64N(size)
				h, err := r.inclusionProof(ctx, idx, size, n)
				if err != nil {
					b.Fatal(err)
				}
				if err := r.checkInclusion(ctx, idx, size, nil, h, cp); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("tessera-proofbuilder", func(b *testing.B) {
		for b.Loop() {
			pb, _ := tclient.NewProofBuilder(ctx, n, r.ReadTile)
			if _, err := pb.InclusionProof(ctx, rand.Uint64N(n)); err != nil {
				b.Fatal(err)
			}
		}
	})
}
