package forwarder_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stele-dev/stele/forwarder"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
)

// scriptedSink is a sink whose answers the test scripts, to exercise the
// forwarder's delivery loop (the real sinks have their own tests).
type scriptedSink struct {
	mu      sync.Mutex
	calls   int
	got     []uint64
	gate    chan struct{} // when set, Deliver waits for it
	refuse  uint64        // refused for good
	retries int           // first calls answer RetryAfter
}

func (s *scriptedSink) Idempotent() bool { return true }
func (s *scriptedSink) Close() error     { return nil }
func (s *scriptedSink) Deliver(ctx context.Context, items []*forwarder.Item) error {
	if s.gate != nil {
		select {
		case <-s.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.calls <= s.retries {
		return forwarder.RetryAfter(300*time.Millisecond, errors.New("busy"))
	}
	var ie forwarder.ItemErrors
	for i, it := range items {
		if it.Doc.Index == s.refuse {
			ie.Refused = map[int]error{i: errors.New("malformed for this sink")}
			continue
		}
		s.got = append(s.got, it.Doc.Index)
	}
	if ie.Refused != nil {
		return &ie
	}
	return nil
}

// countingEvents counts payload fetches.
type countingEvents struct {
	forwarder.EventReader
	n atomic.Int64
}

func (c *countingEvents) Events(ctx context.Context, start uint64, count int) ([]*stelev1.GetEventResponse, error) {
	evs, err := c.EventReader.Events(ctx, start, count)
	c.n.Add(int64(len(evs)))
	return evs, err
}

// TestDelivery: a sink's retry hint is honoured, a refused record goes to
// the dead-letter file and the rest arrive once in order; /healthz,
// /status and /metrics report it; a sink that does not confirm holds the
// forwarder to a few batches of read-ahead (backpressure, not buffering).
func TestDelivery(t *testing.T) {
	l := startLog(t)
	idx := l.appendAll(t, goldenEvents(t, 120))
	total := slices.Max(idx) + 1
	state := t.TempDir()
	cfg := l.config(t, state)
	cfg.BatchSize = 10
	cfg.Listen = "x"
	s := &scriptedSink{refuse: 7, retries: 2}
	start := time.Now()
	f, stop := l.runForwarder(t, cfg, forwarder.NamedSink{Name: "scripted", Type: "test", Sink: s})
	waitDelivered(t, f, total, time.Minute)
	if time.Since(start) < 600*time.Millisecond {
		t.Errorf("two RetryAfter(300ms) answers, delivered after %s", time.Since(start))
	}
	ts := httptest.NewServer(f.Handler())
	defer ts.Close()
	get := func(p string) (int, string) {
		resp, err := http.Get(ts.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/healthz"); code != 200 {
		t.Errorf("/healthz: %d %s", code, body)
	}
	if _, body := get("/status"); !strings.Contains(body, `"name": "scripted"`) || !strings.Contains(body, `"lag_entries": 0`) {
		t.Errorf("/status: %s", body)
	}
	_, metrics := get("/metrics")
	for _, m := range []string{`stele_forwarder_dead_lettered_total{sink="scripted"} 1`, `stele_forwarder_retries_total{sink="scripted"} 2`, `stele_forwarder_lag_entries{sink="scripted"} 0`} {
		if !strings.Contains(metrics, m) {
			t.Errorf("/metrics lacks %s", m)
		}
	}
	stop()
	s.mu.Lock()
	want := slices.DeleteFunc(seq(total), func(i uint64) bool { return i == 7 })
	if !slices.Equal(s.got, want) {
		t.Errorf("delivered %v", s.got)
	}
	s.mu.Unlock()
	if dl := readDeadLetters(t, state, "scripted"); !slices.Equal(dl, []uint64{7}) {
		t.Errorf("dead letters %v", dl)
	}

	// Backpressure: a sink that never confirms.
	blocked := &scriptedSink{refuse: 1 << 62, gate: make(chan struct{})}
	ce := &countingEvents{EventReader: l.cli}
	cfg2 := l.config(t, t.TempDir())
	cfg2.BatchSize = 10
	f2, stop2 := runWith(t, l, cfg2, ce, forwarder.NamedSink{Name: "blocked", Type: "test", Sink: blocked})
	time.Sleep(2 * time.Second)
	if n := ce.n.Load(); n > 3*10 {
		t.Errorf("with a sink that never confirms, %d payloads were read: want at most 3 batches of 10", n)
	}
	if st := f2.Status(); st.Sinks[0].LagEntries != total || st.Sinks[0].LagSeconds <= 0 {
		t.Errorf("a stuck sink's lag: %+v", st.Sinks[0])
	}
	close(blocked.gate)
	waitDelivered(t, f2, total, time.Minute)
	stop2()
}

func seq(n uint64) []uint64 {
	out := make([]uint64, n)
	for i := range out {
		out[i] = uint64(i)
	}
	return out
}
