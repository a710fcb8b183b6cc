package audit_test

import (
	"bytes"
	"fmt"
	"os"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/stele-dev/stele/internal/testlog"
	"github.com/stele-dev/stele/leaf"
)

const origin = "stele.localhost/log"

type logKey struct {
	signer   note.Signer
	verifier note.Verifier
}

func newKey(t testing.TB) logKey {
	k := testlog.NewKey(t, origin)
	return logKey{k.Signer, k.Verifier}
}

// appendEntries appends entries to the log in dir, waiting for a checkpoint.
func appendEntries(t testing.TB, dir string, k logKey, entries [][]byte) {
	t.Helper()
	testlog.Append(t, dir, k.signer, entries, nil)
}

func checkpointSize(t testing.TB, dir string) uint64 { return testlog.CheckpointSize(dir) }

// serve serves the log in dir over tlog-tiles HTTP on loopback.
func serve(t testing.TB, dir string) string { return testlog.Serve(t, dir) }

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
func copyLog(t testing.TB, src string) string { return testlog.Copy(t, src) }

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
