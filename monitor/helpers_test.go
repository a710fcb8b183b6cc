package monitor_test

import (
	"context"
	"crypto/rand"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/storage/posix"
	"golang.org/x/mod/sumdb/note"

	"github.com/stele-dev/stele/internal/tiles"
	"github.com/stele-dev/stele/leaf"
)

const origin = "stele.localhost/log"

type logKey struct {
	signer   note.Signer
	verifier note.Verifier
	vkey     string
}

func newKey(t testing.TB) logKey {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return logKey{s, v, vkey}
}

// appendEntries appends to the Tessera POSIX log in dir and waits for a
// checkpoint covering the entries.
func appendEntries(t testing.TB, dir string, k logKey, entries [][]byte) {
	t.Helper()
	appendWitnessed(t, dir, k, entries, nil)
}

// appendWitnessed is appendEntries with Tessera asking witnesses (policy)
// to cosign each checkpoint before it publishes it.
func appendWitnessed(t testing.TB, dir string, k logKey, entries [][]byte, policy []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d, err := posix.New(ctx, posix.Config{Path: dir})
	if err != nil {
		t.Fatal(err)
	}
	opts := tessera.NewAppendOptions().WithCheckpointSigner(k.signer).
		WithCheckpointInterval(100*time.Millisecond).WithBatching(1024, 10*time.Millisecond)
	if policy != nil {
		wg, err := tessera.NewWitnessGroupFromPolicy(policy)
		if err != nil {
			t.Fatal(err)
		}
		opts = opts.WithWitnesses(wg, &tessera.WitnessOptions{Timeout: 5 * time.Second})
	}
	a, shutdown, _, err := tessera.NewAppender(ctx, d, opts)
	if err != nil {
		t.Fatal(err)
	}
	var last tessera.IndexFuture
	for _, e := range entries {
		last = a.Add(ctx, tessera.NewEntry(e))
	}
	idx, err := last()
	if err != nil {
		t.Fatal(err)
	}
	for checkpointSize(dir) <= idx.Index {
		select {
		case <-ctx.Done():
			t.Fatal("no checkpoint covering the entries")
		case <-time.After(10 * time.Millisecond):
		}
	}
	if err := shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}

func checkpointSize(dir string) uint64 {
	b, err := os.ReadFile(filepath.Join(dir, "checkpoint"))
	if err != nil {
		return 0
	}
	lines := strings.SplitN(string(b), "\n", 3)
	if len(lines) < 3 {
		return 0
	}
	n, _ := strconv.ParseUint(lines[1], 10, 64)
	return n
}

func serve(t testing.TB, dir string) string {
	t.Helper()
	ts := httptest.NewServer(tiles.NewHandler(tiles.DirReader(dir)))
	t.Cleanup(ts.Close)
	return ts.URL + "/"
}

var base = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

type ev struct {
	source, id, kind string
	at               time.Time
}

func mkLeaf(t testing.TB, e ev) []byte {
	t.Helper()
	if e.at.IsZero() {
		e.at = base
	}
	l := &leaf.Leaf{Source: e.source, EventID: e.id, Kind: e.kind, EventTime: e.at, AdmittedTime: e.at.Add(time.Second), PayloadSize: 10}
	l.PayloadDigest[0] = 1
	b, err := l.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mkLeaves(t testing.TB, evs []ev) [][]byte {
	out := make([][]byte, len(evs))
	for i, e := range evs {
		out[i] = mkLeaf(t, e)
	}
	return out
}
