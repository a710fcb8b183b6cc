package audit_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io/fs"
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
	return logKey{s, v}
}

// appendEntries appends entries to the Tessera POSIX log in dir (creating
// it if needed) and returns once a checkpoint covering them is published.
func appendEntries(t testing.TB, dir string, k logKey, entries [][]byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	d, err := posix.New(ctx, posix.Config{Path: dir})
	if err != nil {
		t.Fatal(err)
	}
	opts := tessera.NewAppendOptions().WithCheckpointSigner(k.signer).
		WithCheckpointInterval(100*time.Millisecond).WithBatching(16384, 20*time.Millisecond).
		WithPushback(uint(len(entries)) + 1)
	a, shutdown, _, err := tessera.NewAppender(ctx, d, opts)
	if err != nil {
		t.Fatal(err)
	}
	var last tessera.IndexFuture
	for _, e := range entries {
		last = a.Add(ctx, tessera.NewEntry(e))
	}
	want := uint64(0)
	if last != nil {
		idx, err := last()
		if err != nil {
			t.Fatal(err)
		}
		want = idx.Index + 1
	}
	for {
		if size := checkpointSize(t, dir); size >= want && size > 0 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("no checkpoint covering the entries")
		case <-time.After(20 * time.Millisecond):
		}
	}
	if err := shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}

func checkpointSize(t testing.TB, dir string) uint64 {
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

// serve serves the log in dir over tlog-tiles HTTP on loopback.
func serve(t testing.TB, dir string) string {
	t.Helper()
	ts := httptest.NewServer(tiles.NewHandler(tiles.DirReader(dir)))
	t.Cleanup(ts.Close)
	return ts.URL + "/"
}

var baseTime = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

type ev struct {
	source   string
	seq      uint64
	id       string
	event    time.Time
	admitted time.Time
}

func mkLeaf(t testing.TB, e ev) []byte {
	t.Helper()
	l := &leaf.Leaf{Source: e.source, SourceSeq: e.seq, EventID: e.id, Kind: "user.signin",
		EventTime: e.event, AdmittedTime: e.admitted, PayloadSize: 42}
	l.PayloadDigest[0] = 1
	b, err := l.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// cleanEntries returns n well-behaved leaves over two sources, with
// sequence numbers counting from 1+off/2.
func cleanEntries(t testing.TB, off, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		j := off + i
		src := []string{"entra/t1/audit", "okta/acme/system"}[j%2]
		at := baseTime.Add(time.Duration(j) * time.Millisecond)
		out[i] = mkLeaf(t, ev{src, uint64(j/2 + 1), fmt.Sprintf("ev-%d", j), at.Add(-time.Second), at})
	}
	return out
}

// copyLog copies the public files of a log directory (not Tessera's state).
func copyLog(t testing.TB, src string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			if d.Name() == ".state" {
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

func flipByte(t testing.TB, path string, off int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if off < 0 {
		off += len(b)
	}
	b[off] ^= 0x01
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustContain(t testing.TB, s, sub string) {
	t.Helper()
	if !bytes.Contains([]byte(s), []byte(sub)) {
		t.Fatalf("%q does not contain %q", s, sub)
	}
}
