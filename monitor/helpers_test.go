package monitor_test

import (
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
	vkey     string
}

func newKey(t testing.TB) logKey {
	k := testlog.NewKey(t, origin)
	return logKey{k.Signer, k.Verifier, k.VKey}
}

func appendEntries(t testing.TB, dir string, k logKey, entries [][]byte) {
	t.Helper()
	testlog.Append(t, dir, k.signer, entries, nil)
}

// appendWitnessed is appendEntries with Tessera asking witnesses (policy)
// to cosign each checkpoint before it publishes it.
func appendWitnessed(t testing.TB, dir string, k logKey, entries [][]byte, policy []byte) {
	t.Helper()
	testlog.Append(t, dir, k.signer, entries, policy)
}

func checkpointSize(dir string) uint64 { return testlog.CheckpointSize(dir) }

func serve(t testing.TB, dir string) string { return testlog.Serve(t, dir) }

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
