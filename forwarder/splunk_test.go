package forwarder_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stele-dev/stele/forwarder"
	"github.com/stele-dev/stele/forwarder/record"
)

// hec is a local HTTPS server implementing the HTTP Event Collector's
// documented requests and answers (/services/collector/event with batched
// event objects, token and channel headers, error codes and
// invalid-event-number, indexer acknowledgement on /services/collector/ack).
type hec struct {
	token  string
	ack    bool
	poison uint64 // an event whose record index is this is "invalid"
	busy   int    // answer this many requests 503 "Server is busy"

	mu      sync.Mutex
	raw     []string // indexed events' JSON, as _raw
	pending map[int64]bool
	nextAck int64
	busyHit int
}

func (h *hec) reply(w http.ResponseWriter, status int, v map[string]any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// parse reads a request's events: the events, or HEC's refusal and the
// events before the invalid one (indexed all the same when poisoned).
func (h *hec) parse(body io.Reader) (batch []string, refusal map[string]any, indexed []string) {
	raw, _ := io.ReadAll(body)
	dec := json.NewDecoder(bytes.NewReader(raw))
	for n := 0; dec.More(); n++ {
		var ev struct {
			Event json.RawMessage `json:"event"`
		}
		if err := dec.Decode(&ev); err != nil {
			return nil, map[string]any{"text": "Invalid data format", "code": 6, "invalid-event-number": n}, nil
		}
		e := ev.Event
		if e == nil {
			return nil, map[string]any{"text": "Event field is required", "code": 12, "invalid-event-number": n}, nil
		}
		if docIndex(e) == h.poison {
			return nil, map[string]any{"text": "Invalid data format", "code": 6, "invalid-event-number": n}, batch
		}
		batch = append(batch, string(e))
	}
	return batch, nil, nil
}

// docIndex is the index member of a record document (e is valid JSON):
// read from the members before it, without decoding the whole document
// (its leading members are scalars); 0 when there is none.
func docIndex(e []byte) uint64 {
	dec := json.NewDecoder(bytes.NewReader(e))
	dec.UseNumber()
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return 0
	}
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return 0
		}
		v, err := dec.Token()
		if err != nil {
			return 0
		}
		if _, nested := v.(json.Delim); nested {
			// Past the leading scalars: decode it all.
			var d struct{ Index uint64 }
			json.Unmarshal(e, &d)
			return d.Index
		}
		if num, ok := v.(json.Number); ok && k == "index" {
			n, _ := strconv.ParseUint(string(num), 10, 64)
			return n
		}
	}
	return 0
}

func (h *hec) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	auth := r.Header.Get("Authorization")
	switch {
	case auth == "":
		h.reply(w, 401, map[string]any{"text": "Token is required", "code": 2})
		return
	case auth != "Splunk "+h.token:
		h.reply(w, 403, map[string]any{"text": "Invalid token", "code": 4})
		return
	}
	if h.ack && r.Header.Get("X-Splunk-Request-Channel") == "" {
		h.reply(w, 400, map[string]any{"text": "Data channel is missing", "code": 10})
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	switch r.URL.Path {
	case "/services/collector/ack":
		var q struct{ Acks []int64 }
		json.NewDecoder(r.Body).Decode(&q)
		out := map[string]bool{}
		for _, id := range q.Acks {
			// Indexed by the second time it is asked about.
			out[fmt.Sprint(id)] = h.pending[id]
			h.pending[id] = true
		}
		h.reply(w, 200, map[string]any{"acks": out})
		return
	case "/services/collector/event":
	default:
		h.reply(w, 404, map[string]any{"text": "The requested URL was not found on this server.", "code": 404})
		return
	}
	if h.busyHit < h.busy {
		h.busyHit++
		w.Header().Set("Retry-After", "1")
		h.reply(w, 503, map[string]any{"text": "Server is busy", "code": 9})
		return
	}
	// The lock guards the server's state, not the request: requests sent
	// at once are read and parsed at once, as by a real HEC.
	h.mu.Unlock()
	batch, refusal, indexed := h.parse(r.Body)
	h.mu.Lock()
	if refusal != nil {
		// Events before an invalid one are indexed (HEC's behaviour).
		h.raw = append(h.raw, indexed...)
		h.reply(w, 400, refusal)
		return
	}
	if len(batch) == 0 {
		h.reply(w, 400, map[string]any{"text": "No data", "code": 5})
		return
	}
	h.raw = append(h.raw, batch...)
	if h.ack {
		if h.pending == nil {
			h.pending = map[int64]bool{}
		}
		id := h.nextAck
		h.nextAck++
		h.pending[id] = false
		h.reply(w, 200, map[string]any{"text": "Success", "code": 0, "ackId": id})
		return
	}
	h.reply(w, 200, map[string]any{"text": "Success", "code": 0})
}

// startHTTPS serves h over TLS on loopback and returns its URL and a CA
// file trusting it.
func startHTTPS(t testing.TB, h http.Handler) (string, string) {
	t.Helper()
	ts := httptest.NewTLSServer(h)
	t.Cleanup(ts.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw}), 0o600)
	return ts.URL, ca
}

func writeSecret(t testing.TB, s string) string {
	p := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(p, []byte(s+"\n"), 0o600)
	return p
}

// readDeadLetters returns the indexes in a sink's dead-letter file.
func readDeadLetters(t testing.TB, stateDir, sink string) []uint64 {
	t.Helper()
	f, err := os.Open(filepath.Join(stateDir, "deadletter", sink+".jsonl"))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []uint64
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var d struct{ Index uint64 }
		json.Unmarshal(sc.Bytes(), &d)
		out = append(out, d.Index)
	}
	return out
}

// TestSplunkHEC forwards a real log to a HEC that is busy at first (503,
// Retry-After), refuses one event as invalid (code 6 with
// invalid-event-number) and acknowledges batches only on a later poll:
// every other entry is indexed exactly once, the refused one is in the
// dead-letter file, and an event as a search returns it (_raw) verifies.
func TestSplunkHEC(t *testing.T) {
	l := startLog(t)
	idx := l.appendAll(t, goldenEvents(t, 50))
	total := slices.Max(idx) + 1
	h := &hec{token: "00000000-0000-4000-8000-000000000001", ack: true, poison: 17, busy: 1}
	u, ca := startHTTPS(t, h)
	settings, _ := json.Marshal(map[string]any{"url": u, "token_file": writeSecret(t, h.token), "tls": map[string]any{"ca_file": ca},
		"ack": true, "index": "identity", "max_batch_bytes": 40000})
	state := t.TempDir()
	cfg := l.config(t, state, forwarder.SinkConfig{Name: "splunk", Type: "splunk", Settings: settings})
	f, stop := l.runForwarder(t, cfg)
	waitDelivered(t, f, total, time.Minute)
	stop()
	h.mu.Lock()
	raw := h.raw
	h.mu.Unlock()
	seen := map[uint64]int{}
	for _, r := range raw {
		v, err := record.Verify([]byte(r), l.verifier, nil)
		if err != nil {
			t.Fatal(err)
		}
		seen[v.Doc.Index]++
	}
	for i := range total {
		want := 1
		if i == h.poison {
			want = 0
		}
		if seen[i] != want {
			t.Fatalf("entry %d indexed %d times, want %d", i, seen[i], want)
		}
	}
	if dl := readDeadLetters(t, state, "splunk"); len(dl) != 1 || dl[0] != h.poison {
		t.Fatalf("dead letters %v, want [%d]", dl, h.poison)
	}
	// A search result as Splunk's export returns it.
	res, _ := json.Marshal(map[string]any{"preview": false, "result": map[string]any{"_raw": raw[4], "sourcetype": "stele:record", "index": "identity"}})
	p := filepath.Join(t.TempDir(), "result.json")
	os.WriteFile(p, res, 0o600)
	if code, o, e := runCLI("verify", "--log-key", l.keyFile, p); code != 0 || !strings.Contains(o, "record OK") {
		t.Fatalf("stele verify of a Splunk search result: exit %d\n%s%s", code, o, e)
	}
}

// TestSplunkParallelRequests: a batch larger than one request goes out as
// several requests at once (each waiting for its own acknowledgement), and
// every event is indexed exactly once.
func TestSplunkParallelRequests(t *testing.T) {
	h := &hec{token: "tok", ack: true, poison: 1 << 62}
	var mu sync.Mutex
	inflight, most := 0, 0
	u, ca := startHTTPS(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/services/collector/event" {
			h.ServeHTTP(w, r)
			return
		}
		mu.Lock()
		inflight++
		most = max(most, inflight)
		mu.Unlock()
		// Hold the request until two overlapped (or 2 s pass): a sink
		// that sends one request at a time never overlaps two.
		for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			mu.Lock()
			overlapped := most >= 2
			mu.Unlock()
			if overlapped {
				break
			}
		}
		h.ServeHTTP(w, r)
		mu.Lock()
		inflight--
		mu.Unlock()
	}))
	s, err := forwarder.OpenSplunk(forwarder.SplunkConfig{URL: u, TokenFile: writeSecret(t, "tok"), Ack: true, MaxBatchBytes: 1000,
		TLS: &forwarder.TLSConfig{CAFile: ca}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var items []*forwarder.Item
	for i := range 40 {
		items = append(items, &forwarder.Item{Doc: &record.Document{Index: uint64(i), AdmittedTime: "2026-12-05T10:00:00Z"},
			JSON: []byte(fmt.Sprintf(`{"index":%d,"pad":%q}`, i, strings.Repeat("x", 200)))})
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.Deliver(ctx, items); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if most < 2 {
		t.Errorf("at most %d request in flight: the batch's requests were sent one at a time", most)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	seen := map[uint64]int{}
	for _, r := range h.raw {
		var d struct{ Index uint64 }
		json.Unmarshal([]byte(r), &d)
		seen[d.Index]++
	}
	for i := range uint64(40) {
		if seen[i] != 1 {
			t.Errorf("event %d indexed %d times", i, seen[i])
		}
	}
}
