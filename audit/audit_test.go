package audit_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api/layout"
	tclient "github.com/transparency-dev/tessera/client"
	"golang.org/x/mod/sumdb/note"

	"github.com/stele-dev/stele/audit"
)

func run(t *testing.T, url string, v note.Verifier, st *audit.State) (*audit.Report, *audit.State, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return audit.Run(ctx, audit.Config{LogURL: url, Verifier: v, Workers: 3, State: st})
}

const nClean = 600 // two full bundles and a partial one of 88

func cleanLog(t *testing.T) (string, logKey) {
	k := newKey(t)
	dir := t.TempDir()
	appendEntries(t, dir, k, cleanEntries(t, 0, nClean))
	return dir, k
}

func TestCleanLog(t *testing.T) {
	dir, k := cleanLog(t)
	rep, st, err := run(t, serve(t, dir), k.verifier, nil)
	if err != nil {
		t.Fatalf("audit: %v (%+v)", err, rep.Failures)
	}
	if !rep.OK() || rep.EntriesRead != nClean || rep.Checkpoint.Size != nClean || st.Size != nClean {
		t.Fatalf("report %+v", rep)
	}
	// Cross-check with Tessera's client: the root it computes from the
	// log's tiles is the checkpoint root the audit verified.
	f, _ := tclient.NewHTTPFetcher(mustURL(t, serve(t, dir)), nil)
	nodes, err := tclient.FetchRangeNodes(context.Background(), nClean, f.ReadTile)
	if err != nil {
		t.Fatal(err)
	}
	r, err := (&compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}).NewRange(0, nClean, nodes)
	if err != nil {
		t.Fatal(err)
	}
	if root, _ := r.GetRootHash(nil); !bytes.Equal(root, rep.Checkpoint.Root) {
		t.Fatalf("Tessera's client computes root %x, the audit verified %x", root, rep.Checkpoint.Root)
	}
	if rep.Sources["entra/t1/audit"].Count != nClean/2 || rep.Sources["okta/acme/system"].Count != nClean/2 {
		t.Fatalf("sources %+v", rep.Sources)
	}
}

// failure audits the log in dir and expects it to fail with kind, at
// index (if index >= 0), with a message containing msg.
func failure(t *testing.T, dir string, v note.Verifier, kind string, index int64, msg string) {
	t.Helper()
	rep, st, err := run(t, serve(t, dir), v, nil)
	if !errors.Is(err, audit.ErrVerification) {
		t.Fatalf("audit: err %v, want a verification failure", err)
	}
	if st != nil || rep.Verified || rep.OK() {
		t.Fatalf("a failed audit returned a state or a verified report")
	}
	for _, f := range rep.Failures {
		if f.Kind == kind && (index < 0 || (f.Index != nil && *f.Index == uint64(index))) && strings.Contains(f.Message, msg) {
			t.Logf("%s: %s", f.Kind, f.Message)
			return
		}
	}
	t.Fatalf("no %s failure at %d mentioning %q in %+v", kind, index, msg, rep.Failures)
}

func TestTampered(t *testing.T) {
	dir, k := cleanLog(t)
	t.Run("entry bundle byte", func(t *testing.T) {
		c := copyLog(t, dir)
		// Entry 1 of bundle 1 (index 257): its first byte after the
		// length prefix of entry 0 and entry 1.
		p := filepath.Join(c, layout.EntriesPath(1, 0))
		b, _ := os.ReadFile(p)
		off := 2 + int(binary.BigEndian.Uint16(b)) + 2 + 5
		flipByte(t, p, off)
		failure(t, c, k.verifier, audit.FailLeafHash, 257, "tile/0/001")
	})
	t.Run("tile byte", func(t *testing.T) {
		c := copyLog(t, dir)
		flipByte(t, filepath.Join(c, layout.TilePath(0, 0, 0)), 32*10+7)
		failure(t, c, k.verifier, audit.FailLeafHash, 10, "tile/0/000 says")
	})
	t.Run("level-1 tile byte", func(t *testing.T) {
		c := copyLog(t, dir)
		// 600 entries: two level-8 nodes, in the partial tile 1/000.p/2.
		flipByte(t, filepath.Join(c, layout.TilePath(1, 0, 2)), 32+3)
		failure(t, c, k.verifier, audit.FailTile, -1, "tile tile/1/000.p/2: hash 1 (tree node level 8 index 1) is")
	})
	t.Run("dropped entry", func(t *testing.T) {
		c := copyLog(t, dir)
		p := filepath.Join(c, layout.EntriesPath(2, nClean%256))
		b, _ := os.ReadFile(p)
		var off, n int
		for off < len(b) {
			l := int(binary.BigEndian.Uint16(b[off:]))
			n++
			if n == nClean%256 {
				break
			}
			off += 2 + l
		}
		if err := os.WriteFile(p, b[:off], 0o644); err != nil {
			t.Fatal(err)
		}
		failure(t, c, k.verifier, audit.FailBundle, -1, "has 87 entries, the checkpoint needs 88")
	})
	t.Run("dropped entry early in a long log", func(t *testing.T) {
		// More bundles than the fetch pipeline holds, so the audit must
		// stop its workers rather than wait for them.
		k := newKey(t)
		long := t.TempDir()
		appendEntries(t, long, k, cleanEntries(t, 0, 5000))
		p := filepath.Join(long, layout.EntriesPath(0, 0))
		b, _ := os.ReadFile(p)
		if err := os.WriteFile(p, b[:len(b)-len(cleanEntries(t, 255, 1)[0])-2], 0o644); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		rep, _, err := audit.Run(ctx, audit.Config{LogURL: serve(t, long), Verifier: k.verifier, Workers: 1})
		if !errors.Is(err, audit.ErrVerification) || rep.Failures[0].Kind != audit.FailBundle {
			t.Fatalf("%v %+v", err, rep.Failures)
		}
		mustContain(t, rep.Failures[0].Message, "tile/entries/000 (entries 0-255): has 255 entries, the checkpoint needs 256")
	})
	t.Run("checkpoint signed by another key", func(t *testing.T) {
		c := copyLog(t, dir)
		raw, _ := os.ReadFile(filepath.Join(c, "checkpoint"))
		n, err := note.Open(raw, note.VerifierList(k.verifier))
		if err != nil {
			t.Fatal(err)
		}
		other := newKey(t)
		forged, err := note.Sign(&note.Note{Text: n.Text}, other.signer)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(c, "checkpoint"), forged, 0o644); err != nil {
			t.Fatal(err)
		}
		failure(t, c, k.verifier, audit.FailCheckpoint, -1, "no verifiable signatures")
	})
}

func TestNotLeafV1(t *testing.T) {
	k := newKey(t)
	dir := t.TempDir()
	entries := cleanEntries(t, 0, 10)
	entries = append(entries[:4], append([][]byte{[]byte("not a leaf")}, entries[4:]...)...)
	appendEntries(t, dir, k, entries)
	rep, st, err := run(t, serve(t, dir), k.verifier, nil)
	if err != nil || st == nil || !rep.Verified {
		t.Fatalf("audit: %v %+v", err, rep.Failures)
	}
	if rep.OK() || rep.FindingCount != 1 || rep.Findings[0].Kind != audit.FindNotLeafV1 || rep.Findings[0].Index != 4 {
		t.Fatalf("findings %+v", rep.Findings)
	}
	t.Log(rep.Findings[0].Message)
}

func TestFindings(t *testing.T) {
	k := newKey(t)
	dir := t.TempDir()
	at := func(i int) time.Time { return baseTime.Add(time.Duration(i) * time.Minute) }
	entries := [][]byte{
		mkLeaf(t, ev{"s/a", 1, "a1", at(0), at(0)}),                        // 0
		mkLeaf(t, ev{"s/a", 2, "a2", at(1), at(1)}),                        // 1
		mkLeaf(t, ev{"s/a", 5, "a5", at(2), at(2)}),                        // 2: gap 3..4
		mkLeaf(t, ev{"s/a", 4, "a4", at(3), at(3)}),                        // 3: regression
		mkLeaf(t, ev{"s/b", 0, "b1", at(4), at(4)}),                        // 4: no seq
		mkLeaf(t, ev{"s/b", 0, "b1", at(5), at(5)}),                        // 5: duplicate of 4
		mkLeaf(t, ev{"s/b", 0, "b2", at(6).Add(2 * time.Hour), at(6)}),     // 6: event ahead
		mkLeaf(t, ev{"s/b", 0, "b3", at(0), at(6).Add(-10 * time.Minute)}), // 7: admitted backwards
		mkLeaf(t, ev{"s/a", 6, "a6", at(0).Add(-1000 * time.Hour), at(7)}), // 8: old event: fine
		mkLeaf(t, ev{"s/c", 0, "a1", at(8), at(8)}),                        // 9: same id, other source: fine
	}
	appendEntries(t, dir, k, entries)
	rep, _, err := run(t, serve(t, dir), k.verifier, nil)
	if err != nil {
		t.Fatal(err)
	}
	type want struct {
		kind         string
		index, other uint64
	}
	wants := []want{
		{audit.FindSeqGap, 2, 1},
		{audit.FindSeqRegression, 3, 2},
		{audit.FindDuplicate, 5, 4},
		{audit.FindEventAhead, 6, 0},
		{audit.FindAdmittedBackward, 7, 6},
	}
	if len(rep.Findings) != len(wants) {
		t.Fatalf("findings %+v", rep.Findings)
	}
	for i, w := range wants {
		f := rep.Findings[i]
		other := uint64(0)
		if f.Other != nil {
			other = *f.Other
		}
		if f.Kind != w.kind || f.Index != w.index || other != w.other {
			t.Errorf("finding %d: %+v, want %+v", i, f, w)
		}
		t.Log(f.Message)
	}
	a, b := rep.Sources["s/a"], rep.Sources["s/b"]
	if a.Count != 5 || a.Gaps != 1 || a.Regressions != 1 || b.Count != 4 || b.Duplicates != 1 || b.TimeAnomalies != 2 {
		t.Errorf("sources a %+v b %+v", a, b)
	}
}

func TestResume(t *testing.T) {
	dir, k := cleanLog(t)
	url := serve(t, dir)
	statePath := filepath.Join(t.TempDir(), "state.json")
	rep, st, err := run(t, url, k.verifier, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Save(statePath); err != nil {
		t.Fatal(err)
	}
	// Grow the log, with a duplicate of an entry audited by the first run.
	more := cleanEntries(t, nClean, 300)
	more = append(more, cleanEntries(t, 3, 1)...) // index 900: same (source, id) as 3, and a seq regression
	appendEntries(t, dir, k, more)
	st, err = audit.LoadState(statePath)
	if err != nil {
		t.Fatal(err)
	}
	rep, st, err = run(t, url, k.verifier, st)
	if err != nil {
		t.Fatal(err)
	}
	if rep.EntriesRead != 301 || rep.Previous.Size != nClean || rep.Checkpoint.Size != nClean+301 {
		t.Fatalf("resumed audit read %d entries (previous %+v, now %d)", rep.EntriesRead, rep.Previous, rep.Checkpoint.Size)
	}
	if rep.Sources["okta/acme/system"].Count != 451 {
		t.Fatalf("sources %+v", rep.Sources["okta/acme/system"])
	}
	var dup bool
	for _, f := range rep.Findings {
		if f.Kind == audit.FindDuplicate && f.Index == 900 && *f.Other == 3 {
			dup = true
		}
	}
	if !dup {
		t.Fatalf("duplicate across runs not found: %+v", rep.Findings)
	}
	if err := st.Save(statePath); err != nil {
		t.Fatal(err)
	}

	// Nothing new: nothing read.
	st, _ = audit.LoadState(statePath)
	rep, _, err = run(t, url, k.verifier, st)
	if err != nil || rep.EntriesRead != 0 || rep.FindingCount != 0 {
		t.Fatalf("no-op resume: %v, read %d, %+v", err, rep.EntriesRead, rep.Findings)
	}

	// A fork: another tree, bigger, under the same key.
	fork := t.TempDir()
	appendEntries(t, fork, k, cleanEntries(t, 1, 1000))
	st, _ = audit.LoadState(statePath)
	rep, st2, err := run(t, serve(t, fork), k.verifier, st)
	if !errors.Is(err, audit.ErrVerification) || st2 != nil || rep.Failures[0].Kind != audit.FailConsistency {
		t.Fatalf("fork: %v %+v", err, rep.Failures)
	}
	mustContain(t, rep.Failures[0].Message, "is not consistent with the audited one (size 901")
	t.Log(rep.Failures[0].Message)

	// A rollback: an older, smaller log.
	small := t.TempDir()
	appendEntries(t, small, k, cleanEntries(t, 0, 10))
	st, _ = audit.LoadState(statePath)
	rep, _, err = run(t, serve(t, small), k.verifier, st)
	if !errors.Is(err, audit.ErrVerification) || rep.Failures[0].Kind != audit.FailRollback {
		t.Fatalf("rollback: %v %+v", err, rep.Failures)
	}
	t.Log(rep.Failures[0].Message)
}

func mustURL(t *testing.T, s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// A checkpoint whose partial bundle and tile are gone (the log grew and
// they were garbage-collected): the fetcher falls back to the full ones,
// and the audit checks their prefix.
func TestPartialsGone(t *testing.T) {
	dir, k := cleanLog(t)
	old, err := os.ReadFile(filepath.Join(dir, "checkpoint"))
	if err != nil {
		t.Fatal(err)
	}
	appendEntries(t, dir, k, cleanEntries(t, nClean, 200))
	c := copyLog(t, dir)
	if err := os.WriteFile(filepath.Join(c, "checkpoint"), old, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{layout.EntriesPath(2, nClean%256), layout.TilePath(0, 2, nClean%256)} {
		if err := os.Remove(filepath.Join(c, p)); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	rep, _, err := run(t, serve(t, c), k.verifier, nil)
	if err != nil || !rep.OK() || rep.EntriesRead != nClean {
		t.Fatalf("%v %+v", err, rep)
	}
}
