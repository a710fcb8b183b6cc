package client_test

import (
	"context"
	"crypto/rand"
	"fmt"
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

	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/internal/tiles"
	"github.com/stele-dev/stele/leaf"
)

type testKey struct {
	signer   note.Signer
	verifier note.Verifier
}

func newTestKey(t testing.TB) testKey {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, testOrigin)
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
	return testKey{s, v}
}

// appendLeaves appends entries to the Tessera POSIX log in dir (creating it
// if needed) and returns once a checkpoint covering them is published.
func appendLeaves(t testing.TB, dir string, k testKey, entries [][]byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d, err := posix.New(ctx, posix.Config{Path: dir})
	if err != nil {
		t.Fatal(err)
	}
	opts := tessera.NewAppendOptions().WithCheckpointSigner(k.signer).
		WithCheckpointInterval(100*time.Millisecond).WithBatching(1024, 10*time.Millisecond)
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
	for checkpointSizeIn(dir) < idx.Index+1 {
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

func checkpointSizeIn(dir string) uint64 {
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

func readCheckpoint(t testing.TB, dir string, v note.Verifier) *client.Checkpoint {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "checkpoint"))
	if err != nil {
		t.Fatal(err)
	}
	cp, err := client.ParseCheckpoint(raw, v)
	if err != nil {
		t.Fatal(err)
	}
	return cp
}

// serveLog serves the log in dir over tlog-tiles HTTP on loopback.
func serveLog(t testing.TB, dir string) string {
	t.Helper()
	ts := httptest.NewServer(tiles.NewHandler(tiles.DirReader(dir)))
	t.Cleanup(ts.Close)
	return ts.URL + "/"
}

// testLeaves makes n leaf v1 entries; tag makes them differ between logs.
func testLeaves(t testing.TB, tag string, from, n int) [][]byte {
	t.Helper()
	out := make([][]byte, n)
	base := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	for i := range out {
		j := from + i
		l := &leaf.Leaf{Source: "entra/t1/audit", SourceSeq: uint64(j + 1), EventID: fmt.Sprintf("%s-%d", tag, j),
			Kind: "signin.failure", EventTime: base.Add(time.Duration(j) * time.Second), AdmittedTime: base.Add(time.Duration(j)*time.Second + time.Millisecond), PayloadSize: 42}
		l.PayloadDigest[0] = 1
		b, err := l.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		out[i] = b
	}
	return out
}
