package collectorcli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestUsage(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.json")
	os.WriteFile(cfg, []byte(`{"server": {"address": "127.0.0.1:1"}, "state_dir": "`+dir+`/state", "listen": "-",
  "sources": [{"name": "entra-storage", "entra_storage": {"auth": "connection_string", "connection_string_env": "X"}}]}`), 0o600)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"run"}, 2, "--config FILE is required"},
		{[]string{"run", "--config", cfg, "--from", "yesterday"}, 2, `--from: "yesterday" is not a time`},
		{[]string{"run", "--config", cfg, "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"run", "--config", filepath.Join(dir, "missing.json")}, 1, "no such file"},
		{[]string{"status", "--config", cfg}, 0, "entra-storage"},
		{[]string{"help"}, 0, "usage: stele-collector"},
	} {
		var out, errb bytes.Buffer
		code := Main(tc.args, &out, &errb)
		if code != tc.code || !strings.Contains(out.String()+errb.String(), tc.want) {
			t.Errorf("stele-collector %q: exit %d (want %d), output %q, want it to contain %q", tc.args, code, tc.code, out.String()+errb.String(), tc.want)
		}
	}
}
