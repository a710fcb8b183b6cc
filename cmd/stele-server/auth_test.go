package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:7400": true, "127.0.0.2:1": true, "[::1]:7400": true, "localhost:7400": true,
		":7400": false, "0.0.0.0:7400": false, "[::]:7400": false, "10.0.0.1:7400": false, "example.com:7400": false, "bad": false,
	} {
		if got := loopback(addr); got != want {
			t.Errorf("loopback(%q) = %v, want %v", addr, got, want)
		}
	}
}

// TestPolicyWithoutTLSOffLoopback: an access policy without TLS is refused
// unless the gRPC listener is loopback only, before anything is opened.
func TestPolicyWithoutTLSOffLoopback(t *testing.T) {
	dir := t.TempDir()
	pol := filepath.Join(dir, "policy.json")
	os.WriteFile(pol, []byte(`{"identities": []}`), 0o600)
	old := os.Args
	defer func() { os.Args = old }()
	os.Args = []string{"stele-server", "--data-dir", filepath.Join(dir, "data"), "--grpc-addr", "0.0.0.0:0", "--auth-policy", pol}
	err := run()
	if err == nil || !strings.Contains(err.Error(), "plaintext") {
		t.Fatalf("run: %v, want a refusal to send tokens in plaintext", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); !os.IsNotExist(err) {
		t.Errorf("the data directory was created before the refusal: %v", err)
	}
}
