package forwarder_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stele-dev/stele/forwarder"
	"github.com/stele-dev/stele/forwarder/record"
)

// bulkServer is a local HTTPS server implementing Elasticsearch's _bulk
// API as documented: NDJSON action/source pairs, index (create or
// overwrite by _id) and delete actions, and a response with one item per
// action, "errors": true when any failed, per-item status and error.
type bulkServer struct {
	apiKey string
	poison uint64 // this entry's document fails with a mapping error
	flaky  uint64 // this entry's document is rejected once with 429
	tooBig int    // answer 413 to bodies larger than this

	mu       sync.Mutex
	docs     map[string]json.RawMessage
	indexed  int // index actions that succeeded (overwrites included)
	flakyHit bool
}

func (b *bulkServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "ApiKey "+b.apiKey {
		w.WriteHeader(401)
		w.Write([]byte(`{"error":{"type":"security_exception","reason":"missing authentication credentials"},"status":401}`))
		return
	}
	if r.URL.Path != "/_bulk" || r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-ndjson" {
		w.WriteHeader(400)
		return
	}
	if r.ContentLength > int64(b.tooBig) {
		w.WriteHeader(413)
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	sc := bufio.NewScanner(r.Body)
	sc.Buffer(nil, 64<<20)
	var items []map[string]any
	failed := false
	for sc.Scan() {
		var action map[string]struct {
			Index string `json:"_index"`
			ID    string `json:"_id"`
		}
		if err := json.Unmarshal(sc.Bytes(), &action); err != nil {
			w.WriteHeader(400)
			return
		}
		for op, a := range action {
			switch op {
			case "delete":
				st := 200
				if _, ok := b.docs[a.ID]; !ok {
					st = 404
				}
				delete(b.docs, a.ID)
				items = append(items, map[string]any{"delete": map[string]any{"_index": a.Index, "_id": a.ID, "status": st}})
			case "index":
				sc.Scan()
				src := json.RawMessage(append([]byte(nil), sc.Bytes()...))
				var d struct{ Index uint64 }
				json.Unmarshal(src, &d)
				switch {
				case d.Index == b.poison:
					failed = true
					items = append(items, map[string]any{"index": map[string]any{"_index": a.Index, "_id": a.ID, "status": 400,
						"error": map[string]any{"type": "document_parsing_exception", "reason": "[1:2] failed to parse field [ocsf] of type [keyword]"}}})
				case d.Index == b.flaky && !b.flakyHit:
					b.flakyHit, failed = true, true
					items = append(items, map[string]any{"index": map[string]any{"_index": a.Index, "_id": a.ID, "status": 429,
						"error": map[string]any{"type": "es_rejected_execution_exception", "reason": "rejected execution of coordinating operation"}}})
				default:
					st := 201
					if _, ok := b.docs[a.ID]; ok {
						st = 200
					}
					b.docs[a.ID] = src
					b.indexed++
					items = append(items, map[string]any{"index": map[string]any{"_index": a.Index, "_id": a.ID, "status": st, "result": "created"}})
				}
			}
		}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"took": 3, "errors": failed, "items": items})
}

// TestElasticsearchBulk forwards a real log with an erased entry to a
// _bulk server that fails one document for good (400), rejects one once
// (429) and refuses large bodies (413): each entry is one document with
// _id origin/index, the failed one is dead-lettered, the erasure event
// deleted the erased entry's document, and a search hit verifies.
func TestElasticsearchBulk(t *testing.T) {
	l := startLog(t)
	idx := l.appendAll(t, goldenEvents(t, 40))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Erased after it is forwarded: the erasure event's notice must
	// delete its document.
	b := &bulkServer{apiKey: "VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw==", poison: 9, flaky: 21, tooBig: 60000, docs: map[string]json.RawMessage{}}
	u, ca := startHTTPS(t, b)
	settings, _ := json.Marshal(map[string]any{"url": u, "index": "stele", "api_key_file": writeSecret(t, b.apiKey), "tls": map[string]any{"ca_file": ca}})
	state := t.TempDir()
	cfg := l.config(t, state, forwarder.SinkConfig{Name: "es", Type: "elasticsearch", Settings: settings})
	f, stop := l.runForwarder(t, cfg)
	total := slices.Max(idx) + 1
	waitDelivered(t, f, total, time.Minute)
	er, err := l.cli.Erase(ctx, idx[5], "GDPR Art. 17 request", "TICKET-2")
	if err != nil {
		t.Fatal(err)
	}
	waitDelivered(t, f, er.Tombstone.ErasureIndex+1, time.Minute)
	stop()

	b.mu.Lock()
	defer b.mu.Unlock()
	for i := range er.Tombstone.ErasureIndex + 1 {
		id := forwarder.DocID(l.verifier.Name(), i)
		src, ok := b.docs[id]
		switch {
		case i == b.poison || i == idx[5]:
			if ok {
				t.Fatalf("entry %d should have no document (poison %d, erased %d)", i, b.poison, idx[5])
			}
			continue
		case !ok:
			t.Fatalf("entry %d: no document %s", i, id)
		}
		if _, err := record.Verify(src, l.verifier, nil); err != nil {
			t.Fatalf("document %s: %v", id, err)
		}
	}
	if dl := readDeadLetters(t, state, "es"); len(dl) != 1 || dl[0] != b.poison {
		t.Fatalf("dead letters %v, want [%d]", dl, b.poison)
	}
	if !b.flakyHit {
		t.Fatal("the 429 was never exercised")
	}
	var anyID string
	for k := range b.docs {
		anyID = k
		break
	}
	hit, _ := json.Marshal(map[string]any{"_index": "stele", "_id": anyID, "_score": 1.0, "_source": b.docs[anyID]})
	p := filepath.Join(t.TempDir(), "hit.json")
	os.WriteFile(p, hit, 0o600)
	if code, o, e := runCLI("verify", "--log-key", l.keyFile, p); code != 0 || !strings.Contains(o, "record OK") {
		t.Fatalf("stele verify of a search hit: exit %d\n%s%s", code, o, e)
	}
}
