package witness

import (
	"strings"
	"testing"
	"time"
)

// TestRecosignSkips: fresh logs, logs never cosigned and logs no longer
// configured are not re-cosigned; a held checkpoint whose log key was
// removed is refused, not re-cosigned.
func TestRecosignSkips(t *testing.T) {
	a, b, c := newTestLog(t, "a.example/log"), newTestLog(t, "b.example/log"), newTestLog(t, "c.example/log")
	w := newTestWitness(t)
	for _, l := range []*testLog{a, b, c} {
		if _, err := w.AddLog(l.config()); err != nil {
			t.Fatal(err)
		}
	}
	mustCosign(t, w, a, 0, 3)
	mustCosign(t, w, b, 0, 3)
	if n := w.recosignIdle(ctx(t), time.Hour); n != 0 {
		t.Fatalf("re-cosigned %d fresh logs", n)
	}
	time.Sleep(1100 * time.Millisecond)
	if err := w.RemoveLog(b.origin); err != nil {
		t.Fatal(err)
	}
	if n := w.recosignIdle(ctx(t), time.Second); n != 1 {
		t.Fatalf("re-cosigned %d logs, want 1 (a; b is removed, c has no checkpoint)", n)
	}
	stB, _, _ := w.state(b.origin)
	if time.Since(stB.Updated) < time.Second {
		t.Fatal("a removed log was re-cosigned")
	}
	// a's key is replaced: the held checkpoint no longer verifies.
	if err := w.RemoveLog(a.origin); err != nil {
		t.Fatal(err)
	}
	other := newTestLog(t, a.origin)
	if _, err := w.AddLog(other.config()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond)
	if n := w.recosignIdle(ctx(t), time.Second); n != 0 {
		t.Fatalf("re-cosigned %d, want 0", n)
	}
	if m := get(t, w.srv.URL+"/metrics"); !strings.Contains(m, `stele_witness_recosigns_total{outcome="refused"} 1`) {
		t.Fatal("the refusal is not counted")
	}
}
