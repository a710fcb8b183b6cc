package collector_test

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestReadmeStreamEntra runs the README's "Stream your Entra tenant in
// minutes" as written, against Azurite for the storage account and a real
// stele-server; the one change is the server's address (the test's server
// listens on a free port, not 7400).
//
// The walk-through's collector reads every tenant in the containers, so it
// also reads what the tests running beside it write for their own tenants
// (into its own server); it checks only its own records.
func TestReadmeStreamEntra(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(b), "## Stream your Entra tenant in minutes\n")
	if !ok {
		t.Fatal("README has no section \"Stream your Entra tenant in minutes\"")
	}
	m := regexp.MustCompile("(?s)```sh\n(.*?)```").FindStringSubmatch(sec)
	if m == nil {
		t.Fatal("the section has no sh block")
	}
	script := m[1]
	j := regexp.MustCompile(`(?s)cat > collector\.json <<'JSON'\n(.*?)\nJSON\n`).FindStringSubmatch(script)
	if j == nil {
		t.Fatal("the walk-through does not write collector.json with a heredoc")
	}
	for _, cmd := range []string{"bin/stele-collector run --config collector.json &", "bin/stele-collector status --config collector.json", "export AZURE_STORAGE_CONNECTION_STRING="} {
		if !strings.Contains(script, cmd) {
			t.Fatalf("the walk-through no longer runs %q: update this test with it", cmd)
		}
	}
	az := startAzurite(t)
	ts := startServer(t, t.TempDir(), "")
	cfg := strings.Replace(j[1], `"address": "127.0.0.1:7400"`, `"address": "`+ts.addr+`"`, 1)
	if cfg == j[1] {
		t.Fatal("the walk-through's config no longer names the server 127.0.0.1:7400")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "collector.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}

	// Entra has written an hour of audit logs and sign-ins.
	g := newEntraGen(t)
	bl := newBlobs(t, az, "insights-logs-auditlogs", "insights-logs-signinlogs")
	name := hourBlob(g.tenant, time.Now())
	want := map[string][]byte{}
	for _, c := range []string{"insights-logs-auditlogs", "insights-logs-signinlogs"} {
		kind := map[string]string{"insights-logs-auditlogs": "audit", "insights-logs-signinlogs": "signin"}[c]
		var buf bytes.Buffer
		for range 25 {
			id, rec := g.record(kind)
			want[id] = rec
			buf.Write(rec)
			buf.WriteByte('\n')
		}
		bl.create(c, name)
		bl.append(c, name, buf.Bytes())
	}

	run := collectorCmd(t, "run", "--config", "collector.json")
	run.Dir = dir
	run.Env = append(run.Env, "AZURE_STORAGE_CONNECTION_STRING="+az.connStr)
	var logs bytes.Buffer
	run.Stderr = &logs
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	defer run.Process.Kill()
	l := newLogged()
	deadline := time.Now().Add(time.Minute)
	for l.sync(t, ts.cli); !hasAll(l, want); l.sync(t, ts.cli) {
		if time.Now().After(deadline) {
			t.Fatalf("the records are not in the log after a minute; collector logs:\n%s", logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	for id, rec := range want {
		if !bytes.Equal(l.records[id], rec) || l.count[id] != 1 {
			t.Errorf("record %s: in the log %d times, bytes equal: %v", id, l.count[id], bytes.Equal(l.records[id], rec))
		}
	}
	st := collectorCmd(t, "status", "--config", "collector.json")
	st.Dir, st.Env = dir, run.Env
	out, err := st.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "entra-storage") || strings.Contains(string(out), "not running") {
		t.Errorf("stele-collector status: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "stele-collector-state", "entra-storage.cursor.json")); err != nil {
		t.Errorf("no cursor in ./stele-collector-state: %v", err)
	}
	run.Process.Signal(syscall.SIGTERM)
	if err := run.Wait(); err != nil {
		t.Errorf("SIGTERM: the collector exited with %v\n%s", err, logs.String())
	}
}

func hasAll(l *logged, want map[string][]byte) bool {
	for id := range want {
		if _, ok := l.records[id]; !ok {
			return false
		}
	}
	return true
}
