package client_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/internal/testlog"
	"github.com/stele-dev/stele/leaf"
)

type testKey struct {
	signer   note.Signer
	verifier note.Verifier
}

func newTestKey(t testing.TB) testKey {
	k := testlog.NewKey(t, testOrigin)
	return testKey{k.Signer, k.Verifier}
}

// appendLeaves appends entries to the Tessera POSIX log in dir (creating it
// if needed) and returns once a checkpoint covering them is published.
func appendLeaves(t testing.TB, dir string, k testKey, entries [][]byte) {
	t.Helper()
	testlog.Append(t, dir, k.signer, entries, nil)
}

func checkpointSizeIn(dir string) uint64 { return testlog.CheckpointSize(dir) }

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
func serveLog(t testing.TB, dir string) string { return testlog.Serve(t, dir) }

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
