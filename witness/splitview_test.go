package witness

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

func getEvidence(t *testing.T, url string) []Evidence {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	var evs []Evidence
	if err := json.NewDecoder(resp.Body).Decode(&evs); err != nil {
		t.Fatal(err)
	}
	return evs
}

// TestSplitView forks a log (two trees under one key): the witness cosigns
// one history, refuses the other, and keeps both signed checkpoints as
// evidence, retrievable over HTTP.
func TestSplitView(t *testing.T) {
	a := newTestLog(t, "example.com/log")
	a.grow(10)
	b := a.fork(6, "evil") // shares entries 0..5, then differs
	b.grow(10)
	w := newTestWitness(t, a)

	mustCosign(t, w, a, 0, 6)
	mustCosign(t, w, a, 6, 10)

	// The fork at the same size: the old size matches, the root does not.
	r := post(t, w.srv.URL, b.request(t, 10, 10))
	if r.status != http.StatusUnprocessableEntity {
		t.Fatalf("fork at the same size: %d %s", r.status, r.body)
	}
	// The fork grown further, with its own (valid for its tree) proof.
	r = post(t, w.srv.URL, b.request(t, 10, 14))
	if r.status != http.StatusUnprocessableEntity {
		t.Fatalf("fork grown: %d %s", r.status, r.body)
	}
	// The fork, claiming an old size the witness does not hold: 409, but
	// the same-size conflict is still evidence (already recorded: no dup).
	r = post(t, w.srv.URL, b.request(t, 6, 10))
	if r.status != http.StatusConflict || string(r.body) != "10\n" {
		t.Fatalf("fork with old 6: %d %q", r.status, r.body)
	}
	// The honest log carries on.
	mustCosign(t, w, a, 10, 12)

	evs := getEvidence(t, w.srv.URL+"/evidence")
	if len(evs) != 2 {
		t.Fatalf("%d evidence records, want 2: %+v", len(evs), evs)
	}
	lv, _ := note.NewVerifier(a.vkey)
	reasons := map[string]int{}
	for _, ev := range evs {
		reasons[ev.Reason]++
		if ev.Origin != a.origin || ev.Time.IsZero() || ev.Detail == "" || ev.Via != "push" {
			t.Fatalf("evidence %+v", ev)
		}
		// Both checkpoints carry a valid log signature: the evidence can be
		// shown to anyone who trusts the log key.
		for _, cp := range []string{ev.Cosigned, ev.Offending} {
			if _, err := note.Open([]byte(cp), note.VerifierList(lv)); err != nil {
				t.Fatalf("evidence checkpoint does not verify: %v\n%s", err, cp)
			}
		}
		if !strings.Contains(ev.Cosigned, "\n10\n") {
			t.Fatalf("evidence holds cosigned checkpoint %q, want size 10", ev.Cosigned)
		}
	}
	if reasons["same_size_different_root"] != 1 || reasons["inconsistent_proof"] != 1 {
		t.Fatalf("reasons %v", reasons)
	}
	// Per origin.
	if n := len(getEvidence(t, w.srv.URL+"/evidence?origin=example.com/log")); n != 2 {
		t.Fatalf("%d records for the origin", n)
	}
	if n := len(getEvidence(t, w.srv.URL+"/evidence?origin=other")); n != 0 {
		t.Fatalf("%d records for another origin", n)
	}
	// Resending the same conflict does not add records.
	post(t, w.srv.URL, b.request(t, 10, 10))
	if n := len(getEvidence(t, w.srv.URL+"/evidence")); n != 2 {
		t.Fatalf("%d records after a resend", n)
	}
}

// TestMonitoringPath: GET /<hex sha256(origin)>/checkpoint serves the latest
// cosigned checkpoint with the log's signature and the cosignature.
func TestMonitoringPath(t *testing.T) {
	lg := newTestLog(t, "example.com/log")
	w := newTestWitness(t, lg)
	url := w.srv.URL + "/" + monitoringID(lg.origin) + "/checkpoint"
	get := func() (int, []byte) {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	if code, _ := get(); code != 404 {
		t.Fatalf("before any cosignature: %d, want 404", code)
	}
	mustCosign(t, w, lg, 0, 4)
	mustCosign(t, w, lg, 4, 9)
	code, body := get()
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	cp := lg.checkpoint(t, 9)
	if !bytes.HasPrefix(body, cp) {
		t.Fatalf("served %q, want it to start with %q", body, cp)
	}
	checkCosignature(t, w.VerifierKey(), w.MLDSAVerifierKey(), lg, cp, body[len(cp):])
	h := sha256.Sum256([]byte("example.com/log"))
	if monitoringID("example.com/log") != hex.EncodeToString(h[:]) {
		t.Fatal("monitoring id is not lowercase hex SHA-256 of the origin")
	}
}

// TestConcurrentAdvances: many concurrent add-checkpoint requests for
// growing sizes never roll the state back, and every 200 is for a size at
// least the stored size at the time.
func TestConcurrentAdvances(t *testing.T) {
	lg := newTestLog(t, "example.com/log")
	lg.grow(400)
	w := newTestWitness(t, lg)
	mustCosign(t, w, lg, 0, 1)

	var mu sync.Mutex
	maxOK := uint64(1)
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			old := uint64(1)
			for size := uint64(2 + g); size <= 400; size += 7 {
				body := lg.request(t, old, size)
				r := post(t, w.srv.URL, body)
				switch r.status {
				case 200:
					mu.Lock()
					maxOK = max(maxOK, size)
					mu.Unlock()
					old = size
				case 409:
					n, err := strconv.ParseUint(strings.TrimSuffix(string(r.body), "\n"), 10, 64)
					if err != nil {
						t.Errorf("409 body %q", r.body)
						return
					}
					if n > size {
						continue // the witness is ahead: this size is stale
					}
					old = n
					size -= 7 // retry this size
				default:
					t.Errorf("size %d: %d %s", size, r.status, r.body)
					return
				}
				// Every size cosigned before this read must be covered by
				// the state it returns (maxOK only grows after a durable
				// commit, so take it first).
				mu.Lock()
				floor := maxOK
				mu.Unlock()
				st, _, err := w.state(lg.origin)
				if err != nil {
					t.Error(err)
					return
				}
				if st.Size < floor {
					t.Errorf("state went back: %d < %d", st.Size, floor)
				}
			}
		})
	}
	wg.Wait()
	st, _, _ := w.state(lg.origin)
	if st.Size != maxOK || st.Root != lg.root(st.Size) {
		t.Fatalf("final state %d, max cosigned %d", st.Size, maxOK)
	}
	t.Logf("final size %d", st.Size)
}
