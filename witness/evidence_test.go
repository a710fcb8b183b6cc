package witness

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// junkRequests are add-checkpoint bodies carrying lg's genuine checkpoint
// of size to, from old, with proofs that are not the log's: random hashes
// of the right length, too few, too many, the genuine proof with one bit
// flipped, and unverified signature lines appended to the note.
func junkRequests(t *testing.T, lg *testLog, old, to uint64) [][]byte {
	t.Helper()
	cp := lg.checkpoint(t, to)
	p, err := lg.tree.ConsistencyProof(old, to)
	if err != nil {
		t.Fatal(err)
	}
	genuine := make([][32]byte, len(p))
	for i, h := range p {
		genuine[i] = [32]byte(h)
	}
	random := func(n int) [][32]byte {
		out := make([][32]byte, n)
		for i := range out {
			rand.Read(out[i][:])
		}
		return out
	}
	flipped := append([][32]byte{}, genuine...)
	flipped[len(flipped)-1][5] ^= 0x10
	padded := append(append([]byte{}, cp...), "— junk.example/k AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n"...)
	var out [][]byte
	for _, c := range []struct {
		proof [][32]byte
		cp    []byte
	}{
		{random(len(genuine)), cp},
		{random(1), cp},
		{random(len(genuine) + 3), cp},
		{flipped, cp},
		{random(len(genuine)), padded},
	} {
		out = append(out, (&request{Old: old, Proof: c.proof, Checkpoint: c.cp}).Marshal())
	}
	return out
}

// TestJunkProofsAreNotEvidence runs the real stele-witness binary. Anyone
// can post a log's genuine checkpoint with a junk consistency proof: the
// witness answers 422 and counts it, logs a rate-limited WARN, and records
// nothing, since a bad proof from an unauthenticated sender proves nothing
// about the log. A real fork (two checkpoints signed by the log that
// conflict) is still recorded.
func TestJunkProofsAreNotEvidence(t *testing.T) {
	lg := newTestLog(t, "example.com/junk")
	lg.grow(40)
	p := startWitnessProc(t, t.TempDir(), "--config", writeConfig(t, lg))

	for _, s := range [][2]uint64{{0, 6}, {6, 10}} {
		if r := post(t, p.url, lg.request(t, s[0], s[1])); r.status != 200 {
			t.Fatalf("cosigning %v: %d %s", s, r.status, r.body)
		}
	}
	const rounds = 60
	junk := junkRequests(t, lg, 10, 14)
	start := time.Now()
	for range rounds {
		for _, body := range junk {
			if r := post(t, p.url, body); r.status != http.StatusUnprocessableEntity || !strings.Contains(string(r.body), "does not verify") {
				t.Fatalf("junk proof: %d %s", r.status, r.body)
			}
		}
	}
	// 422 for a junk proof from a power-of-two size too (8 → 12).
	pw := startWitnessProcCfg(t, lg)
	for _, s := range [][2]uint64{{0, 8}} {
		if r := post(t, pw.url, lg.request(t, s[0], s[1])); r.status != 200 {
			t.Fatalf("cosigning %v: %d %s", s, r.status, r.body)
		}
	}
	for _, body := range junkRequests(t, lg, 8, 12) {
		if r := post(t, pw.url, body); r.status != http.StatusUnprocessableEntity {
			t.Fatalf("junk proof from 8: %d %s", r.status, r.body)
		}
	}
	if evs := getEvidence(t, pw.url+"/evidence"); len(evs) != 0 {
		t.Fatalf("junk proofs from a power-of-two size recorded as evidence: %+v", evs)
	}

	if evs := getEvidence(t, p.url+"/evidence"); len(evs) != 0 {
		t.Fatalf("%d junk proofs recorded as %d evidence records, want none", rounds*len(junk), len(evs))
	}
	if n := metricValue(t, p.url, `stele_witness_add_checkpoint_requests_total{reason="bad_proof",status="422"}`); n != rounds*len(junk) {
		t.Fatalf("bad_proof counter %v, want %d", n, rounds*len(junk))
	}
	logs := p.logs.String()
	if strings.Contains(logs, "EVIDENCE") {
		t.Fatalf("junk proofs logged as evidence:\n%s", logs)
	}
	// At most one line per badProofWarnInterval (plus the first).
	maxLines := 1 + int(time.Since(start)/badProofWarnInterval)
	if n := strings.Count(logs, "level=WARN msg=\"add-checkpoint refused: bad consistency proof"); n < 1 || n > maxLines {
		t.Fatalf("%d WARN lines for %d junk proofs, want 1 to %d (rate-limited):\n%s", n, rounds*len(junk), maxLines, logs)
	}
	// The honest log carries on from the size the witness holds.
	if r := post(t, p.url, lg.request(t, 10, 14)); r.status != 200 {
		t.Fatalf("honest checkpoint after the junk: %d %s", r.status, r.body)
	}

	// A real fork: the log signed another tree that shares 6 entries.
	mustCosignURL(t, p.url, lg, 14, 18)
	early := lg.fork(6, "early")
	if r := post(t, p.url, early.request(t, 18, 18)); r.status != http.StatusUnprocessableEntity {
		t.Fatalf("fork at the same size: %d %s", r.status, r.body)
	}
	if r := post(t, p.url, early.request(t, 18, 25)); r.status != http.StatusUnprocessableEntity || !strings.Contains(string(r.body), "recorded as evidence") {
		t.Fatalf("fork grown: %d %s", r.status, r.body)
	}
	evs := getEvidence(t, p.url+"/evidence")
	if len(evs) != 2 || evs[0].Reason != evidenceSameSize || evs[1].Reason != evidenceInconsistent || len(evs[1].Proof) == 0 {
		t.Fatalf("evidence of the fork: %+v", evs)
	}
	if n := metricValue(t, p.url, `stele_witness_add_checkpoint_requests_total{reason="inconsistent",status="422"}`); n != 1 {
		t.Fatalf("inconsistent counter %v, want 1", n)
	}
}

// startWitnessProcCfg runs another stele-witness binary witnessing lg.
func startWitnessProcCfg(t *testing.T, lg *testLog) *witnessProc {
	t.Helper()
	return startWitnessProc(t, t.TempDir(), "--config", writeConfig(t, lg))
}

// writeConfig writes a stele-witness config file witnessing logs.
func writeConfig(t *testing.T, logs ...*testLog) string {
	t.Helper()
	var fc FileConfig
	for _, l := range logs {
		fc.Logs = append(fc.Logs, l.config())
	}
	cfg := filepath.Join(t.TempDir(), "witness.json")
	raw, _ := json.Marshal(fc)
	if err := os.WriteFile(cfg, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func mustCosignURL(t *testing.T, url string, lg *testLog, old, size uint64) {
	t.Helper()
	if r := post(t, url, lg.request(t, old, size)); r.status != 200 {
		t.Fatalf("old %d size %d: %d %s", old, size, r.status, r.body)
	}
}

// metricValue reads one sample (name with labels, as exposed) from /metrics.
func metricValue(t *testing.T, url, sample string) int {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			var n int
			fmt.Sscan(v, &n)
			return n
		}
	}
	return 0
}

// TestEvidenceBounded: a log that signs conflicting checkpoints without
// end leaves the witness its first record and its latest ones; the rest
// are counted, in list-logs and the metrics, across a restart.
func TestEvidenceBounded(t *testing.T) {
	lg := newTestLog(t, "example.com/bounded")
	dir := t.TempDir()
	open := func() *testWitness {
		w, err := Open(dir, Options{Name: "test.example/w1", Logs: []LogConfig{lg.config()}, Logger: quietLogger(), EvidenceKeep: 3})
		if err != nil {
			t.Fatal(err)
		}
		return &testWitness{Witness: w, dir: dir}
	}
	w := open()
	if _, err := w.submitVia(ctx(t), mustParse(t, lg.request(t, 0, 10)), "push"); err != nil {
		t.Fatal(err)
	}
	var roots [][32]byte
	for i := range 10 {
		f := lg.fork(5, fmt.Sprintf("fork%d", i)).grow(10)
		roots = append(roots, f.root(10))
		for range 2 { // a resend is not a new record
			if _, err := w.submitVia(ctx(t), mustParse(t, f.request(t, 10, 10)), "push"); err == nil {
				t.Fatal("fork cosigned")
			}
		}
	}
	check := func(w *testWitness) {
		t.Helper()
		evs, err := w.Evidence(lg.origin)
		if err != nil {
			t.Fatal(err)
		}
		var got []int
		for _, ev := range evs {
			for i, r := range roots {
				if strings.Contains(ev.Offending, string(checkpointBody{Origin: lg.origin, Size: 10, Root: r}.Marshal())) {
					got = append(got, i)
				}
			}
		}
		if fmt.Sprint(got) != "[0 7 8 9]" {
			t.Fatalf("kept the conflicts %v, want the first and the 3 latest [0 7 8 9]", got)
		}
		ls, err := w.Logs()
		if err != nil {
			t.Fatal(err)
		}
		if len(ls) != 1 || ls[0].EvidenceDropped != 6 {
			t.Fatalf("list-logs: %+v, want 6 dropped", ls)
		}
		if v := counterValue(t, w.Witness, "stele_witness_evidence_dropped", nil); v != 6 {
			t.Fatalf("dropped metric %v", v)
		}
		if v := counterValue(t, w.Witness, "stele_witness_evidence_records", nil); v != 4 {
			t.Fatalf("records metric %v", v)
		}
	}
	check(w)
	w.Close()
	w = open()
	defer w.Close()
	check(w)
}

func mustParse(t *testing.T, body []byte) *request {
	t.Helper()
	r, err := parseRequest(body)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
