package forwarder_test

import (
	"slices"
	"testing"
	"time"

	"github.com/stele-dev/stele/forwarder"
)

// TestSinksShareReads: three sinks in one forwarder, one of them held
// back for a while, each get every entry once and in order, and each
// payload is read from the log once, not once per sink: the two in
// lockstep share each read, and the slow one finds what it missed in the
// shared items (it is held back by less than their limit of 4 batches).
func TestSinksShareReads(t *testing.T) {
	l := startLog(t)
	idx := l.appendAll(t, goldenEvents(t, 300))
	total := slices.Max(idx) + 1
	cfg := l.config(t, t.TempDir())
	cfg.BatchSize = 50
	a, b := &scriptedSink{refuse: 1 << 62}, &scriptedSink{refuse: 1 << 62}
	slow := &scriptedSink{refuse: 1 << 62, gate: make(chan struct{})}
	ce := &countingEvents{EventReader: l.cli}
	f, stop := runWith(t, l, cfg, ce,
		forwarder.NamedSink{Name: "a", Type: "test", Sink: a},
		forwarder.NamedSink{Name: "b", Type: "test", Sink: b},
		forwarder.NamedSink{Name: "slow", Type: "test", Sink: slow})
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		st := f.Status()
		if st.Sinks[0].Next >= total && st.Sinks[1].Next >= total {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a and b not delivered within a minute: %+v", st)
		}
	}
	close(slow.gate)
	waitDelivered(t, f, total, time.Minute)
	stop()
	for name, s := range map[string]*scriptedSink{"a": a, "b": b, "slow": slow} {
		s.mu.Lock()
		if !slices.Equal(s.got, seq(total)) {
			t.Errorf("sink %s got %d records, want each of %d once in order", name, len(s.got), total)
		}
		s.mu.Unlock()
	}
	// One batch of slack: the lockstep sinks can drift by part of one.
	if n := ce.n.Load(); n > int64(total)+int64(cfg.BatchSize) {
		t.Errorf("%d payloads read for %d entries and 3 sinks: want each read once (at most %d)", n, total, total+uint64(cfg.BatchSize))
	}
}
