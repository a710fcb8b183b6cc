package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDeployFilesMatchTheBinary checks that every deploy file names flags and
// config keys this binary accepts.
func TestDeployFilesMatchTheBinary(t *testing.T) {
	units, err := filepath.Glob("../../deploy/systemd/*.service")
	if err != nil || len(units) == 0 {
		t.Fatalf("no systemd units found: %v", err)
	}
	for _, u := range units {
		b, err := os.ReadFile(u)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, line := range strings.Split(string(b), "\n") {
			cmd, ok := strings.CutPrefix(line, "ExecStart=")
			if !ok {
				continue
			}
			found = true
			args := strings.Fields(cmd)
			if filepath.Base(args[0]) != "stele-server" {
				t.Errorf("%s: ExecStart runs %s", u, args[0])
			}
			f := newFlags()
			if err := f.fs.Parse(args[1:]); err != nil {
				t.Errorf("%s: stele-server rejects its ExecStart flags: %v", u, err)
			}
			if f.fs.NArg() != 0 {
				t.Errorf("%s: stray arguments %v", u, f.fs.Args())
			}
		}
		if !found {
			t.Errorf("%s has no ExecStart", u)
		}
	}
	configs, _ := filepath.Glob("../../deploy/config/stele-server*.json")
	if len(configs) == 0 {
		t.Fatal("no example configs found")
	}
	for _, c := range configs {
		if _, err := loadFileConfig(c); err != nil {
			t.Errorf("example config does not load: %v", err)
		}
	}
	// The loader is strict, so the check above can fail.
	bad := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(bad, []byte(`{"grpc_adr": "x"}`), 0o644)
	if _, err := loadFileConfig(bad); err == nil || !strings.Contains(err.Error(), "grpc_adr") {
		t.Errorf("a misspelt key was accepted: %v", err)
	}
}
