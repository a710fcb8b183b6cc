package server_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/internal/logkey"
	"github.com/stele-dev/stele/internal/steletest"
	"github.com/stele-dev/stele/server"
)

// TestCheckpointsSignedWithMLDSA: a new log signs every checkpoint with
// its Ed25519 and its ML-DSA-44 key (Tessera's additional signer), and
// log.pub lists both, so a verifier can require both.
func TestCheckpointsSignedWithMLDSA(t *testing.T) {
	l := steletest.Start(t, false, server.Config{})
	raw := l.Checkpoint(t)
	v, err := logkey.ReadVerifier(l.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Keys()) != 2 {
		t.Fatalf("log.pub of a new log has %d keys, want Ed25519 and ML-DSA-44", len(v.Keys()))
	}
	if _, err := client.ParseCheckpoint(raw, v.RequireAll()); err != nil {
		t.Fatalf("the served checkpoint is not signed by both keys: %v", err)
	}
	if keys := l.Srv.VerifierKeys(); len(keys) != 2 || keys[0] != l.VKey {
		t.Fatalf("VerifierKeys = %d keys", len(keys))
	}
	if _, err := os.Stat(filepath.Join(l.Dir, logkey.MLDSAPrivateFile)); err != nil {
		t.Fatal(err)
	}
}

// TestCheckpointsWithoutMLDSA: with --mldsa off, and for an existing log
// that never had the key, checkpoints carry the Ed25519 signature alone.
func TestCheckpointsWithoutMLDSA(t *testing.T) {
	dir := t.TempDir()
	os.Chmod(dir, 0o700)
	if _, err := logkey.LoadOrCreate(dir, "", server.DefaultOrigin, logkey.MLDSAOff); err != nil {
		t.Fatal(err)
	}
	l := steletest.Start(t, false, server.Config{DataDir: dir, MLDSA: logkey.MLDSAOff})
	raw := l.Checkpoint(t)
	if n := strings.Count(string(raw), "\n— "); n != 1 {
		t.Fatalf("checkpoint has %d signatures, want the Ed25519 one:\n%.300s", n, raw)
	}
	v, err := logkey.ReadVerifier(l.KeyFile)
	if err != nil || len(v.Keys()) != 1 {
		t.Fatalf("log.pub: %v", err)
	}
	if _, err := client.ParseCheckpoint(raw, v.RequireAll()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, logkey.MLDSAPrivateFile)); !os.IsNotExist(err) {
		t.Fatalf("an ML-DSA-44 key was made for an Ed25519-only log: %v", err)
	}
}
