package audit_test

import (
	"testing"
	"time"

	"github.com/stele-dev/stele/audit"
)

// TestErasureEvents: erasure events are listed as erased entries; one that
// names no earlier entry, or has a malformed id, is a finding.
func TestErasureEvents(t *testing.T) {
	k := newKey(t)
	dir := t.TempDir()
	at := func(i int) time.Time { return baseTime.Add(time.Duration(i) * time.Minute) }
	entries := [][]byte{
		mkLeaf(t, ev{"s/a", 0, "a1", at(0), at(0)}),                // 0
		mkLeaf(t, ev{"s/a", 0, "a2", at(1), at(1)}),                // 1: erased below
		mkLeaf(t, ev{"stele/erasure", 0, "erase/1", at(2), at(2)}), // 2: erases 1
		mkLeaf(t, ev{"stele/erasure", 0, "erase/7", at(3), at(3)}), // 3: names a later entry
		mkLeaf(t, ev{"stele/erasure", 0, "wipe-0", at(4), at(4)}),  // 4: malformed id
	}
	appendEntries(t, dir, k, entries)
	rep, _, err := run(t, serve(t, dir), k.verifier, nil)
	if err != nil || !rep.Verified || rep.OK() {
		t.Fatalf("want a verified log with findings: err %v, verified %v, ok %v", err, rep.Verified, rep.OK())
	}
	if len(rep.Erased) != 1 || rep.Erased[0] != (audit.Erasure{Index: 1, ErasureIndex: 2}) {
		t.Fatalf("erased = %+v, want entry 1 erased by entry 2", rep.Erased)
	}
	var bad []uint64
	for _, f := range rep.Findings {
		if f.Kind == audit.FindBadErasure {
			bad = append(bad, f.Index)
		}
	}
	if len(bad) != 2 || bad[0] != 3 || bad[1] != 4 {
		t.Fatalf("bad erasure findings at %v, want [3 4] (all findings: %+v)", bad, rep.Findings)
	}
}
