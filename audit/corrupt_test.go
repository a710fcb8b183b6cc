package audit_test

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/transparency-dev/tessera/api/layout"

	"github.com/stele-dev/stele/audit"
)

// TestEveryByteCaught flips single bytes all over a log — inside entries
// (a different field of each), in entry length prefixes, in every level-0
// tile hash and in the level-1 tile — and checks that each flip fails the
// audit, with the failure naming the entry it hit. The log has two full
// bundles (hashed whole, in parallel workers) and a partial one, and the
// flips are also audited from a saved state that resumes mid-bundle.
func TestEveryByteCaught(t *testing.T) {
	k := newKey(t)
	dir := t.TempDir()
	appendEntries(t, dir, k, cleanEntries(t, 0, 300))
	url := serve(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	rep, st, err := audit.Run(ctx, audit.Config{LogURL: url, Verifier: k.verifier})
	if err != nil || !rep.OK() {
		t.Fatalf("clean audit at 300: %v %+v", err, rep.Failures)
	}
	statePath := filepath.Join(t.TempDir(), "state")
	if err := st.Save(statePath); err != nil {
		t.Fatal(err)
	}
	appendEntries(t, dir, k, cleanEntries(t, 300, nClean-300))

	// check audits the log, from scratch or from the state at 300, and
	// wants it to fail; with kind set, with a failure of that kind (and
	// at index, if >= 0).
	check := func(what string, resume bool, kind string, index int64) {
		t.Helper()
		var from *audit.State
		if resume {
			if from, err = audit.LoadState(statePath); err != nil {
				t.Fatal(err)
			}
		}
		rep, st, err := audit.Run(ctx, audit.Config{LogURL: url, Verifier: k.verifier, State: from})
		if !errors.Is(err, audit.ErrVerification) || st != nil || rep.Verified {
			t.Fatalf("%s (resumed %v): the audit passed (err %v, %d failures)", what, resume, err, rep.FailureCount)
		}
		if kind == "" {
			return
		}
		for _, f := range rep.Failures {
			if f.Kind == kind && (index < 0 || (f.Index != nil && *f.Index == uint64(index))) {
				return
			}
		}
		t.Fatalf("%s (resumed %v): no %s failure at %d in %+v", what, resume, kind, index, rep.Failures)
	}
	flip := func(path string, off int) func() {
		flipByte(t, path, off)
		return func() { flipByte(t, path, off) }
	}
	if rep, _, err := audit.Run(ctx, audit.Config{LogURL: url, Verifier: k.verifier}); err != nil || !rep.OK() {
		t.Fatalf("clean audit at %d: %v %+v", nClean, err, rep.Failures)
	}

	cases := 0
	for bi := uint64(0); bi*256 < nClean; bi++ {
		p := layout.PartialTileSize(0, bi, nClean)
		bundle := filepath.Join(dir, layout.EntriesPath(bi, p))
		tile := filepath.Join(dir, layout.TilePath(0, bi, p))
		b, err := os.ReadFile(bundle)
		if err != nil {
			t.Fatal(err)
		}
		for i, off := 0, 0; off < len(b); i++ {
			n := int(binary.BigEndian.Uint16(b[off:]))
			idx := int64(bi*256) + int64(i)
			if i%3 == int(bi) {
				// A byte of the entry, a different one from entry to entry.
				undo := flip(bundle, off+2+(i*37)%n)
				check("entry byte", false, audit.FailLeafHash, idx)
				if idx >= 300 {
					check("entry byte", true, audit.FailLeafHash, idx)
				}
				undo()
				cases++
			}
			if i%3 == int(bi+1)%3 {
				// A byte of the entry's hash in the level-0 tile.
				undo := flip(tile, 32*i+(i*13)%32)
				check("tile byte", false, audit.FailLeafHash, idx)
				undo()
				cases++
			}
			if i%50 == 7 {
				// Either byte of the length prefix: the bundle no longer
				// splits into its entries, or they hash differently.
				for j := range 2 {
					undo := flip(bundle, off+j)
					check("length prefix", false, "", -1)
					undo()
					cases++
				}
			}
			off += 2 + n
		}
	}
	// The level-1 tile holds the two full bundles' roots.
	level1 := filepath.Join(dir, layout.TilePath(1, 0, 2))
	for off := 0; off < 64; off += 5 {
		undo := flip(level1, off)
		check("level-1 tile byte", false, audit.FailTile, -1)
		check("level-1 tile byte", true, "", -1)
		undo()
		cases++
	}
	t.Logf("%d single-byte corruptions, each caught", cases)
}
