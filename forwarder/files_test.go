package forwarder_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stele-dev/stele/forwarder"
	"github.com/stele-dev/stele/forwarder/record"
	"github.com/stele-dev/stele/internal/cli"
)

// readLines returns every line of the sink's files, in file order.
func readLines(t testing.TB, dir string) [][]byte {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	var out [][]byte
	for _, n := range names {
		f, err := os.Open(n)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 16<<20)
		for sc.Scan() {
			out = append(out, bytes.Clone(sc.Bytes()))
		}
		f.Close()
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// runCLI runs the stele CLI.
func runCLI(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := cli.Main(args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

// TestFilesEndToEnd forwards a real log (with an erased entry) to the files
// sink, rotated by size: every entry arrives once, in log order; every
// line verifies with record.Verify and with `stele verify`; the erased
// entry arrives as an "erased" document and the erasure event carries
// the notice; a line whose record was altered fails.
func TestFilesEndToEnd(t *testing.T) {
	l := startLog(t)
	idx := l.appendAll(t, goldenEvents(t, 40))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	er, err := l.cli.Erase(ctx, idx[3], "GDPR Art. 17 request", "TICKET-1")
	if err != nil {
		t.Fatal(err)
	}
	total := er.Tombstone.ErasureIndex + 1
	if _, err := l.cli.Receipt(ctx, er.Tombstone.ErasureIndex); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out")
	settings, _ := json.Marshal(forwarder.FilesConfig{Dir: out, MaxBytes: 20000})
	cfg := l.config(t, t.TempDir(), forwarder.SinkConfig{Name: "files", Type: "files", Settings: settings})
	f, stop := l.runForwarder(t, cfg)
	waitDelivered(t, f, total, time.Minute)
	stop()

	lines := readLines(t, out)
	if uint64(len(lines)) != total {
		t.Fatalf("%d lines for %d entries", len(lines), total)
	}
	names, _ := filepath.Glob(filepath.Join(out, "*.jsonl"))
	if len(names) < 2 {
		t.Fatalf("max_bytes 20000 should have rotated: %d files", len(names))
	}
	for i, line := range lines {
		v, err := record.Verify(line, l.verifier, nil)
		if err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
		d := v.Doc
		if d.Index != uint64(i) {
			t.Fatalf("line %d holds entry %d", i, d.Index)
		}
		switch {
		case d.Index == idx[3]:
			if d.Type != record.TypeErased || d.Erasure == nil || d.Erasure.RequestReference != "TICKET-1" || d.Record != nil {
				t.Fatalf("erased entry: %s", line)
			}
		case d.Index == er.Tombstone.ErasureIndex:
			if d.Erasure == nil || d.Erasure.ErasedIndex != idx[3] {
				t.Fatalf("erasure event without its notice: %s", line)
			}
		default:
			rec, _ := d.RecordBytes()
			want, _ := l.cli.Event(ctx, d.Index)
			if !bytes.Equal(rec, want.Record) {
				t.Fatalf("entry %d: the record is not the original bytes", d.Index)
			}
			if d.OCSF == nil || d.Normalized == nil {
				t.Fatalf("entry %d: no OCSF or normalised view", d.Index)
			}
		}
	}

	// `stele verify` takes a line as the files hold it.
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	os.WriteFile(good, lines[5], 0o600)
	code, stdout, stderr := runCLI("verify", "--log-key", l.keyFile, good)
	if code != 0 || !strings.Contains(stdout, "record OK") || !strings.Contains(stdout, "ocsf OK") {
		t.Fatalf("stele verify: exit %d\n%s%s", code, stdout, stderr)
	}
	// Every field is checked: altering any one fails.
	for field, val := range map[string]any{"event_id": "other", "index": 6, "kind": "x.y", "origin": "other/log", "leaf_hash": strings.Repeat("0", 64),
		"normalized": map[string]any{"kind": "x"}, "ocsf": map[string]any{"class_uid": 1}, "salt": "AAAA", "event_time": "2020-01-01T00:00:00Z",
		"format": "okta.systemLog", "normalized_pb": "", "receipt": "c2sp.org/tlog-proof@v1\nindex 5\n\nx\n", "type": "erased"} {
		var m map[string]any
		json.Unmarshal(lines[5], &m)
		m[field] = val
		b, _ := json.Marshal(m)
		if _, err := record.Verify(b, l.verifier, nil); err == nil {
			t.Errorf("a document with %s altered verified", field)
		}
	}
	var d map[string]any
	json.Unmarshal(lines[5], &d)
	d["record"] = strings.Replace(d["record"].(string), "Core Directory", "Core Directorx", 1)
	bad, _ := json.Marshal(d)
	os.WriteFile(good, bad, 0o600)
	code, stdout, stderr = runCLI("verify", "--log-key", l.keyFile, good)
	if code != 1 || !strings.Contains(stderr, "not the one the log commits to") {
		t.Fatalf("stele verify of an altered record: exit %d\n%s%s", code, stdout, stderr)
	}
}
