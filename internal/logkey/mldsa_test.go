package logkey_test

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/internal/logkey"
)

func otherVKey(t *testing.T) string {
	t.Helper()
	_, vkey, err := note.GenerateKey(rand.Reader, "example.com/another-log")
	if err != nil {
		t.Fatal(err)
	}
	return vkey
}

// signCheckpoint signs a checkpoint body with the key's signers, as
// Tessera's WithCheckpointSigner(k.Signer, k.AdditionalSigners()...) does.
func signCheckpoint(t *testing.T, k *logkey.Key, signers ...note.Signer) []byte {
	t.Helper()
	if signers == nil {
		signers = append([]note.Signer{k.Signer}, k.AdditionalSigners()...)
	}
	raw, err := note.Sign(&note.Note{Text: k.Signer.Name() + "\n7\nNs3ziq8hSLSfbJ5XjAzEw7eZdQJAQtBwXa+vdGO7UbI=\n"}, signers...)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestNewLogGetsMLDSAKey(t *testing.T) {
	dir := t.TempDir()
	k := load(t, dir, origin, "")
	if k.MLDSA == nil {
		t.Fatal("a new log got no ML-DSA-44 key")
	}
	fi, err := os.Stat(filepath.Join(dir, logkey.MLDSAPrivateFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v, want 0600", logkey.MLDSAPrivateFile, fi.Mode().Perm())
	}
	pub := mustReadFile(t, filepath.Join(dir, logkey.PublicFile))
	if want := k.VKey + "\n" + k.MLDSA.VKey + "\n"; pub != want {
		t.Fatalf("log.pub = %q, want the Ed25519 then the ML-DSA-44 key", pub)
	}
	// ML-DSA-44 vkey: name+id+base64(0x06 || 1312-byte key).
	if !strings.HasPrefix(k.MLDSA.VKey, origin+"+") || k.MLDSA.Signer.Name() != origin {
		t.Fatalf("ML-DSA-44 key is not named for the origin: %s", k.MLDSA.VKey[:60])
	}

	again := load(t, dir, origin, "")
	if again.MLDSA == nil || again.MLDSA.VKey != k.MLDSA.VKey {
		t.Fatal("reloading the log did not give the same ML-DSA-44 key")
	}

	v, err := logkey.ReadVerifier(filepath.Join(dir, logkey.PublicFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Keys()) != 2 {
		t.Fatalf("log.pub read as %d keys", len(v.Keys()))
	}
	both := signCheckpoint(t, k)
	edOnly := signCheckpoint(t, k, k.Signer)
	pqOnly := signCheckpoint(t, k, k.MLDSA.Signer)
	for name, raw := range map[string][]byte{"both": both, "Ed25519 only": edOnly, "ML-DSA-44 only": pqOnly} {
		if _, err := client.ParseCheckpoint(raw, v); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := client.ParseCheckpoint(both, v.RequireAll()); err != nil {
		t.Errorf("both keys required, both signed: %v", err)
	}
	for name, raw := range map[string][]byte{"Ed25519 only": edOnly, "ML-DSA-44 only": pqOnly} {
		if _, err := client.ParseCheckpoint(raw, v.RequireAll()); err == nil || !strings.Contains(err.Error(), "every log key is required") {
			t.Errorf("%s with both keys required: %v", name, err)
		}
	}
	// The key text itself, as in --log-key "$(cat log.pub)".
	if v2, err := logkey.ReadVerifier(pub); err != nil || len(v2.Keys()) != 2 {
		t.Fatalf("log.pub's text as the key: %v", err)
	}
}

func TestMLDSAModes(t *testing.T) {
	dir := t.TempDir()
	k, err := logkey.LoadOrCreate(dir, origin, "", logkey.MLDSAOff)
	if err != nil {
		t.Fatal(err)
	}
	if k.MLDSA != nil || len(k.AdditionalSigners()) != 0 {
		t.Fatal("MLDSAOff made an ML-DSA-44 key")
	}
	if _, err := os.Stat(filepath.Join(dir, logkey.MLDSAPrivateFile)); !os.IsNotExist(err) {
		t.Fatalf("MLDSAOff wrote %s", logkey.MLDSAPrivateFile)
	}
	// An existing log without the key keeps signing with Ed25519 alone.
	if k, err = logkey.LoadOrCreate(dir, origin, "", logkey.MLDSAAuto); err != nil || k.MLDSA != nil {
		t.Fatalf("MLDSAAuto on an existing Ed25519-only log: %v, key %v", err, k.MLDSA)
	}
	if got := mustReadFile(t, filepath.Join(dir, logkey.PublicFile)); got != k.VKey+"\n" {
		t.Fatalf("log.pub = %q", got)
	}
	// MLDSAOn adds one; MLDSAAuto then keeps using it.
	on, err := logkey.LoadOrCreate(dir, origin, "", logkey.MLDSAOn)
	if err != nil || on.MLDSA == nil {
		t.Fatalf("MLDSAOn: %v", err)
	}
	if on.VKey != k.VKey {
		t.Fatal("adding the ML-DSA-44 key changed the Ed25519 key")
	}
	auto, err := logkey.LoadOrCreate(dir, origin, "", logkey.MLDSAAuto)
	if err != nil || auto.MLDSA == nil || auto.MLDSA.VKey != on.MLDSA.VKey {
		t.Fatalf("MLDSAAuto after MLDSAOn: %v", err)
	}
	for _, s := range []string{"", "auto", "on", "off"} {
		if _, err := logkey.ParseMLDSA(s); err != nil {
			t.Errorf("ParseMLDSA(%q): %v", s, err)
		}
	}
	if _, err := logkey.ParseMLDSA("yes"); err == nil {
		t.Error("ParseMLDSA accepted yes")
	}
}

func TestMLDSAKeyChecks(t *testing.T) {
	dir := t.TempDir()
	k := load(t, dir, origin, "")
	path := filepath.Join(dir, logkey.MLDSAPrivateFile)
	skey := strings.TrimSpace(mustReadFile(t, path))

	loaded, err := logkey.LoadMLDSA(path, origin)
	if err != nil || loaded.VKey != k.MLDSA.VKey {
		t.Fatalf("LoadMLDSA: %v", err)
	}
	if _, err := logkey.LoadMLDSA(path, "example.com/other"); err == nil || !strings.Contains(err.Error(), "both keys of a log carry its origin") {
		t.Fatalf("LoadMLDSA for another origin: %v", err)
	}
	os.Chmod(path, 0o644)
	if _, err := logkey.LoadMLDSA(path, origin); err == nil || !strings.Contains(err.Error(), "accessible to other users") {
		t.Fatalf("LoadMLDSA of a world-readable key: %v", err)
	}
	os.Chmod(path, 0o600)

	edSkey := strings.TrimSpace(mustReadFile(t, filepath.Join(dir, logkey.PrivateFile)))
	parts := strings.SplitN(skey, "+", 5)
	badID := strings.Join(append(append([]string{}, parts[:3]...), "00000000", parts[4]), "+")
	for name, s := range map[string]string{
		"Ed25519 key": edSkey,
		"bad key ID":  badID,
		"truncated":   skey[:len(skey)-8],
		"not a key":   "hello",
	} {
		if _, err := logkey.MLDSAVerifierKey(s); err == nil {
			t.Errorf("%s: MLDSAVerifierKey accepted it", name)
		}
	}
}
