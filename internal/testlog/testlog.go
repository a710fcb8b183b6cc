// Package testlog builds real Tessera POSIX logs on disk and serves them
// over the tlog-tiles HTTP API, for the tests of packages that read logs
// (audit, client, monitor). It is test support: nothing in a binary uses it.
package testlog

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
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
)

// Key is a log key for tests.
type Key struct {
	Signer   note.Signer
	Verifier note.Verifier
	VKey     string
}

// NewKey makes a fresh Ed25519 log key named origin.
func NewKey(t testing.TB, origin string) Key {
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
	return Key{s, v, vkey}
}

// Append appends entries to the Tessera POSIX log in dir (creating it if
// needed) and returns once a published checkpoint covers them. With a
// witness policy, Tessera has each checkpoint cosigned before publishing it.
func Append(t testing.TB, dir string, signer note.Signer, entries [][]byte, policy []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	d, err := posix.New(ctx, posix.Config{Path: dir})
	if err != nil {
		t.Fatal(err)
	}
	opts := tessera.NewAppendOptions().WithCheckpointSigner(signer).
		WithCheckpointInterval(100*time.Millisecond).WithBatching(16384, 20*time.Millisecond).
		WithPushback(uint(len(entries)) + 1)
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
	want := uint64(0)
	if last != nil {
		idx, err := last()
		if err != nil {
			t.Fatal(err)
		}
		want = idx.Index + 1
	}
	for {
		if size := CheckpointSize(dir); size >= want && size > 0 {
			break
		}
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

// CheckpointSize is the size of the checkpoint published in dir, 0 if none.
func CheckpointSize(dir string) uint64 {
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

// Serve serves the log in dir over tlog-tiles HTTP on loopback and returns
// its root URL (with a trailing slash).
func Serve(t testing.TB, dir string) string {
	t.Helper()
	ts := httptest.NewServer(tiles.NewHandler(tiles.DirReader(dir)))
	t.Cleanup(ts.Close)
	return ts.URL + "/"
}

// Copy copies the public files of the log in src (not Tessera's private
// .state) to a new temporary directory, so a test can tamper with the copy.
func Copy(t testing.TB, src string) string {
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

// FilesHolding lists the files under dir whose bytes contain needle: how
// erasure tests check that erased data has left the disk. Files removed
// during the walk are skipped.
func FilesHolding(t testing.TB, dir string, needle []byte) []string {
	t.Helper()
	var hits []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if bytes.Contains(b, needle) {
			hits = append(hits, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return hits
}
