package main

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

// TestCommands: usage errors exit 2 with the usage; check-config accepts a
// good config and names what is wrong in a bad one; status reads the
// cursors from the state directory when no forwarder is running.
func TestCommands(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "log.pub")
	_, vkey, err := note.GenerateKey(rand.Reader, "stele.localhost/log")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(key, []byte(vkey+"\n"), 0o644)
	state := filepath.Join(dir, "state")
	os.MkdirAll(filepath.Join(state, "cursors"), 0o700)
	os.WriteFile(filepath.Join(state, "cursors", "archive.json"), []byte(`{"next":42}`), 0o600)
	cfg := map[string]any{
		"log":       map[string]any{"url": "http://127.0.0.1:1/", "key_file": key},
		"server":    map[string]any{"address": "127.0.0.1:1"},
		"state_dir": state,
		"sinks":     []any{map[string]any{"name": "archive", "type": "files", "settings": map[string]any{"dir": filepath.Join(dir, "out")}}},
	}
	b, _ := json.Marshal(cfg)
	good := filepath.Join(dir, "good.json")
	os.WriteFile(good, b, 0o600)
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, bytes.Replace(b, []byte(`"dir"`), []byte(`"dirr"`), 1), 0o600)

	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := Main(args, &out, &errb)
		return code, out.String(), errb.String()
	}
	for _, tc := range []struct {
		args       []string
		code       int
		out, errin string
	}{
		{[]string{"run"}, 2, "", "--config FILE is required"},
		{[]string{"frobnicate"}, 2, "", `unknown command "frobnicate"`},
		{[]string{"status", "--config", good, "extra"}, 2, "", `unexpected argument "extra"`},
		{[]string{"check-config", "--config", good}, 0, "config OK: 1 sinks", ""},
		{[]string{"check-config", "--config", bad}, 1, "", `unknown field "dirr"`},
		{[]string{"status", "--config", good}, 0, `"next": 42`, ""},
		{[]string{"help"}, 0, "usage: stele-forwarder", ""},
	} {
		code, out, errs := run(tc.args...)
		if code != tc.code || !strings.Contains(out, tc.out) || !strings.Contains(errs, tc.errin) {
			t.Errorf("%v: exit %d\nstdout: %s\nstderr: %s", tc.args, code, out, errs)
		}
	}
}
