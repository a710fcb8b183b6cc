package client_test

import (
	"context"
	"testing"

	"github.com/stele-dev/stele/client"
)

// TestProver checks every inclusion proof a Prover builds against Tessera's
// ProofBuilder (TileLog.InclusionProof) and verifies it, in trees whose
// right edge is a partial tile, also once the log has grown past them (the
// partial tiles they were cut from are gone).
func TestProver(t *testing.T) {
	ctx := context.Background()
	k := newTestKey(t)
	dir := t.TempDir()
	var leaves [][]byte
	var cps []*client.Checkpoint
	for _, n := range []int{1, 6, 250, 300} {
		ls := testLeaves(t, "p", len(leaves), n)
		appendLeaves(t, dir, k, ls)
		leaves = append(leaves, ls...)
		cps = append(cps, readCheckpoint(t, dir, k.verifier))
	}
	lg, err := client.NewTileLog(serveLog(t, dir), k.verifier, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, cp := range cps {
		p := lg.Prover(cp.Size)
		for i := range cp.Size {
			got, err := p.InclusionProof(ctx, i)
			if err != nil {
				t.Fatalf("size %d, index %d: %v", cp.Size, i, err)
			}
			if err := client.VerifyInclusion(cp, i, leaves[i], got); err != nil {
				t.Fatalf("size %d, index %d: the proof does not verify: %v", cp.Size, i, err)
			}
			want, err := lg.InclusionProof(ctx, i, cp.Size)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("size %d, index %d: %d hashes, Tessera's builder %d", cp.Size, i, len(got), len(want))
			}
			for j := range got {
				if string(got[j][:]) != string(want[j]) {
					t.Fatalf("size %d, index %d: hash %d differs from Tessera's builder", cp.Size, i, j)
				}
			}
		}
		if _, err := p.InclusionProof(ctx, cp.Size); err == nil {
			t.Errorf("size %d: a proof of index %d", cp.Size, cp.Size)
		}
	}
}
