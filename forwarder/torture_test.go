package forwarder_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stele-dev/stele/forwarder"
	"github.com/stele-dev/stele/forwarder/record"
)

// tortureCycles sets how many times TestKillForwarder SIGKILLs the
// forwarder; CI runs the default 3 (go test ./forwarder -run
// TestKillForwarder -torture-cycles 50 -timeout 1h for a long run).
var tortureCycles = flag.Int("torture-cycles", 3, "SIGKILL cycles in TestKillForwarder")

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func forwarderBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "stele-forwarder-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "stele-forwarder")
		if out, err := exec.Command("go", "build", "-o", binPath, "../cmd/stele-forwarder").CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// cursorAt reads a sink's cursor file.
func cursorAt(t *testing.T, state, sink string) uint64 {
	b, err := os.ReadFile(filepath.Join(state, "cursors", sink+".json"))
	if err != nil {
		return 0
	}
	var c forwarder.Cursor
	json.Unmarshal(b, &c)
	return c.Next
}

// TestKillForwarder runs the real stele-forwarder binary against a real
// log that keeps growing, SIGKILLs it at random moments -torture-cycles
// times, then lets it finish: every entry is in every sink; the files sink
// and Elasticsearch (idempotent) hold each exactly once; Kafka and Splunk
// (no record ids) may hold a batch twice, and those duplicates are counted.
func TestKillForwarder(t *testing.T) {
	bin := forwarderBinary(t)
	l := startLog(t)
	k := startKafka(t, "stele")
	es := &bulkServer{apiKey: "a2V5", poison: 1 << 62, flaky: 1 << 62, tooBig: 1 << 30, docs: map[string]json.RawMessage{}}
	esURL, esCA := startHTTPS(t, es)
	h := &hec{token: "tok", poison: 1 << 62}
	hecURL, hecCA := startHTTPS(t, h)
	out := filepath.Join(t.TempDir(), "files")
	state := t.TempDir()
	set := func(v any) json.RawMessage { b, _ := json.Marshal(v); return b }
	cfg := map[string]any{
		"log":           map[string]any{"url": l.httpURL, "key_file": l.keyFile},
		"server":        map[string]any{"address": l.grpcAddr},
		"state_dir":     state,
		"poll_interval": "100ms",
		"batch_size":    50,
		"max_backoff":   "1s",
		"sinks": []any{
			map[string]any{"name": "files", "type": "files", "settings": set(map[string]any{"dir": out, "max_bytes": 200000})},
			map[string]any{"name": "kafka", "type": "kafka", "settings": set(map[string]any{"brokers": k.ListenAddrs(), "topic": "stele"})},
			map[string]any{"name": "es", "type": "elasticsearch", "settings": set(map[string]any{"url": esURL, "index": "stele", "api_key_file": writeSecret(t, es.apiKey), "tls": map[string]any{"ca_file": esCA}})},
			map[string]any{"name": "splunk", "type": "splunk", "settings": set(map[string]any{"url": hecURL, "token_file": writeSecret(t, h.token), "tls": map[string]any{"ca_file": hecCA}})},
		},
	}
	in := &ingestion{tenant: "t", clientID: "c", secret: "s", dcr: "dcr-1", stream: "Custom-SteleRecords"}
	inURL, inCA := startHTTPS(t, in)
	in.url = inURL
	sinks := cfg["sinks"].([]any)
	sinks = append(sinks, map[string]any{"name": "sentinel", "type": "sentinel", "settings": set(map[string]any{"endpoint": inURL, "dcr_immutable_id": "dcr-1",
		"tenant_id": "t", "client_id": "c", "client_secret_file": writeSecret(t, "s"), "authority_host": inURL + "/", "tls": map[string]any{"ca_file": inCA}})})
	names := []string{"files", "kafka", "es", "splunk", "sentinel"}
	// syslog and Security Lake need their real servers: rsyslogd, and the
	// S3 store .ci/services starts.
	var syslogOut string
	if haveRsyslog() {
		addr, ca, o := startRsyslog(t)
		syslogOut = o
		sinks = append(sinks, map[string]any{"name": "syslog", "type": "syslog", "settings": set(map[string]any{"address": addr, "tls": map[string]any{"ca_file": ca}})})
		names = append(names, "syslog")
	}
	lakeSource := ""
	if ep, bucket := os.Getenv("STELE_TEST_S3_ENDPOINT"), os.Getenv("STELE_TEST_S3_BUCKET"); ep != "" && bucket != "" {
		lakeSource = "stele_torture_" + time.Now().Format("150405")
		sinks = append(sinks, map[string]any{"name": "lake", "type": "securitylake", "settings": set(map[string]any{"bucket": bucket, "source_name": lakeSource,
			"region": "eu-west-1", "s3_region": "us-east-1", "account_id": "123456789012", "endpoint": ep, "path_style": true})})
		names = append(names, "lake")
	}
	cfg["sinks"] = sinks
	cfgPath := filepath.Join(t.TempDir(), "forwarder.json")
	os.WriteFile(cfgPath, set(cfg), 0o600)

	// The log grows while the forwarder is killed and restarted.
	evs := goldenEvents(t, 400)
	var idx []uint64
	var appendMu sync.Mutex
	appendDone := make(chan struct{})
	go func() {
		defer close(appendDone)
		for i := 0; i < len(evs); i += 50 {
			got := l.appendAll(t, evs[i:min(i+50, len(evs))])
			appendMu.Lock()
			idx = append(idx, got...)
			appendMu.Unlock()
			time.Sleep(30 * time.Millisecond)
		}
	}()
	var started *startedWriter
	start := func() *exec.Cmd {
		cmd := exec.Command(bin, "run", "--config", cfgPath)
		started = &startedWriter{ready: make(chan struct{})}
		cmd.Stderr = started
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	progress := func() uint64 {
		var n uint64
		for _, s := range names {
			n += cursorAt(t, state, s)
		}
		return n
	}
	for c := range *tortureCycles {
		cmd := start()
		// Kill it while it delivers: once a cursor moved (or after 5s),
		// at a random moment within the next half second.
		before := progress()
		for wait := time.Now().Add(5 * time.Second); progress() == before && time.Now().Before(wait); {
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(time.Duration(rand.IntN(500)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		var at []string
		for _, s := range names {
			at = append(at, fmt.Sprintf("%s=%d", s, cursorAt(t, state, s)))
		}
		t.Logf("cycle %d: killed with cursors %v", c, at)
	}
	<-appendDone
	total := slices.Max(idx) + 1
	t0 := time.Now()
	cmd := start()
	deadline := time.Now().Add(2 * time.Minute)
	for _, s := range names {
		for cursorAt(t, state, s) < total {
			if time.Now().After(deadline) {
				t.Fatalf("sink %s at %d of %d after the last restart", s, cursorAt(t, state, s), total)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	t.Logf("caught up %s after the last restart", time.Since(t0))
	// The cursors can be at the end before the new process has even
	// reached main (they were saved by the killed one): a SIGTERM then
	// finds Go's default action. Stop it once it says it is forwarding.
	select {
	case <-started.ready:
	case <-time.After(time.Minute):
		t.Fatalf("the forwarder did not start forwarding within a minute:\n%s", started.text())
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("forwarder did not stop cleanly on SIGTERM: %v", err)
	}

	// Files: exactly once, in order, each verifying.
	lines := readLines(t, out)
	if uint64(len(lines)) != total {
		t.Fatalf("files: %d lines for %d entries", len(lines), total)
	}
	for i, line := range lines {
		var d struct{ Index uint64 }
		json.Unmarshal(line, &d)
		if d.Index != uint64(i) {
			t.Fatalf("files: line %d holds entry %d", i, d.Index)
		}
	}
	if _, err := record.Verify(lines[len(lines)/2], l.verifier, nil); err != nil {
		t.Fatal(err)
	}
	// Elasticsearch: one document per entry.
	es.mu.Lock()
	if uint64(len(es.docs)) != total {
		t.Fatalf("elasticsearch: %d documents for %d entries", len(es.docs), total)
	}
	es.mu.Unlock()
	// Kafka and Splunk: every entry, duplicates counted.
	count := func(name string, indexes []uint64) {
		seen := map[uint64]int{}
		dups := 0
		for _, i := range indexes {
			seen[i]++
			if seen[i] > 1 {
				dups++
			}
		}
		for i := range total {
			if seen[i] == 0 {
				t.Fatalf("%s: entry %d lost", name, i)
			}
		}
		t.Logf("%s: %d entries, %d duplicates after %d SIGKILLs (no idempotent id in this sink)", name, total, dups, *tortureCycles)
	}
	var kidx []uint64
	for _, r := range consumeAll(t, k.ListenAddrs(), "stele", int(total), 30*time.Second) {
		var d struct{ Index uint64 }
		json.Unmarshal(r.Value, &d)
		kidx = append(kidx, d.Index)
	}
	count("kafka", kidx)
	h.mu.Lock()
	var hidx []uint64
	for _, r := range h.raw {
		var d struct{ Index uint64 }
		json.Unmarshal([]byte(r), &d)
		hidx = append(hidx, d.Index)
	}
	h.mu.Unlock()
	count("splunk", hidx)
	in.mu.Lock()
	var sidx []uint64
	for _, r := range in.rows {
		var row forwarder.SentinelRow
		json.Unmarshal(r, &row)
		sidx = append(sidx, row.SteleIndex)
	}
	in.mu.Unlock()
	count("sentinel", sidx)
	if syslogOut != "" {
		var yidx []uint64
		for _, line := range readSyslog(t, syslogOut, int(total), 30*time.Second) {
			doc, err := record.Find([]byte(line))
			if err != nil {
				t.Fatalf("syslog: %v", err)
			}
			var d struct{ Index uint64 }
			json.Unmarshal(doc, &d)
			yidx = append(yidx, d.Index)
		}
		count("syslog", yidx)
	}
	if lakeSource != "" {
		lidx := lakeIndexes(t, lakeSource)
		seen := map[uint64]int{}
		for _, i := range lidx {
			seen[i]++
		}
		for i := range total {
			if seen[i] != 1 {
				t.Fatalf("security lake: entry %d in %d rows, want exactly one", i, seen[i])
			}
		}
	}
}

// startedWriter keeps a process's log and closes ready once the log says
// it is forwarding.
type startedWriter struct {
	mu    sync.Mutex
	buf   []byte
	once  sync.Once
	ready chan struct{}
}

func (w *startedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	if bytes.Contains(w.buf, []byte(`"msg":"forwarding"`)) {
		w.once.Do(func() { close(w.ready) })
	}
	return len(p), nil
}

func (w *startedWriter) text() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.buf)
}
