package witness

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// TestPull: the witness fetches a Tessera log's checkpoint over tlog-tiles,
// builds the consistency proof from the tiles, and cosigns; the loop
// follows the log as it grows.
func TestPull(t *testing.T) {
	const origin = "example.com/pulled"
	signer, vkey := logKey(t, origin)
	dir := t.TempDir()
	l := startTessera(t, dir, signer, nil)
	tiles := httptest.NewServer(http.FileServer(http.Dir(dir)))
	defer tiles.Close()

	w := newTestWitnessCfg(t, LogConfig{Origin: origin, Keys: []string{vkey}, PullURL: tiles.URL + "/", PullInterval: Duration(100 * time.Millisecond)})

	for _, n := range []int{3, 300, 5} { // 300 crosses a tile boundary
		l.add(t, n, "p")
		if err := w.pullOnce(context.Background(), origin); err != nil {
			t.Fatal(err)
		}
	}
	st, ok, err := w.state(origin)
	if err != nil || !ok || st.Size != 308 {
		t.Fatalf("state %d %v %v", st.Size, ok, err)
	}
	checkWitnessed(t, st.Checkpoint, vkey, w.VerifierKey(), origin)

	// The background loop follows the log.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.RunPull(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	l.add(t, 40, "q")
	for i := 0; ; i++ {
		st, _, _ = w.state(origin)
		if st.Size == 348 {
			break
		}
		if i > 3000 {
			t.Fatalf("pull loop never reached size 348 (at %d)", st.Size)
		}
		time.Sleep(10 * time.Millisecond)
	}
	checkWitnessed(t, st.Checkpoint, vkey, w.VerifierKey(), origin)
}

// TestPullFork: a pulled log whose tiles were swapped for a fork's is
// refused, with evidence.
func TestPullFork(t *testing.T) {
	const origin = "example.com/pulled-fork"
	signer, vkey := logKey(t, origin)
	honest, evil := t.TempDir(), t.TempDir()
	a := startTessera(t, honest, signer, nil)
	a.add(t, 10, "honest")
	b := startTessera(t, evil, signer, nil)
	b.add(t, 20, "evil")
	var serve atomic.Pointer[http.Handler]
	h := http.FileServer(http.Dir(honest))
	serve.Store(&h)
	tiles := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) { (*serve.Load()).ServeHTTP(rw, r) }))
	defer tiles.Close()
	w := newTestWitnessCfg(t, LogConfig{Origin: origin, Keys: []string{vkey}, PullURL: tiles.URL})
	if err := w.pullOnce(context.Background(), origin); err != nil {
		t.Fatal(err)
	}
	h = http.FileServer(http.Dir(evil))
	serve.Store(&h)
	err := w.pullOnce(context.Background(), origin)
	if e, ok := err.(*Error); !ok || e.Status != http.StatusUnprocessableEntity {
		t.Fatalf("pulling the fork: %v", err)
	}
	evs, _ := w.Evidence(origin)
	if len(evs) != 1 || evs[0].Via != "pull "+tiles.URL {
		t.Fatalf("evidence %+v", evs)
	}
	st, _, _ := w.state(origin)
	if st.Size != 10 {
		t.Fatalf("state moved to %d", st.Size)
	}
}
