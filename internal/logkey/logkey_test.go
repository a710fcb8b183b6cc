package logkey_test

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/stele-dev/stele/internal/logkey"
)

const origin = "example.com/stele-test"

func load(t *testing.T, dir, origin, def string) *logkey.Key {
	t.Helper()
	k, err := logkey.LoadOrCreate(dir, origin, def, logkey.MLDSAAuto)
	if err != nil {
		t.Fatalf("LoadOrCreate(%q, %q): %v", origin, def, err)
	}
	return k
}

// roundTrip signs with k and opens with v.
func roundTrip(t *testing.T, signer note.Signer, v note.Verifier) error {
	t.Helper()
	msg, err := note.Sign(&note.Note{Text: "hello\n"}, signer)
	if err != nil {
		t.Fatal(err)
	}
	_, err = note.Open(msg, note.VerifierList(v))
	return err
}

func TestCreateWritesFiles(t *testing.T) {
	dir := t.TempDir()
	k := load(t, dir, origin, "ignored.example")

	fi, err := os.Stat(filepath.Join(dir, logkey.PrivateFile))
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("%s has mode %v, want 0600", logkey.PrivateFile, perm)
	}
	priv, err := os.ReadFile(filepath.Join(dir, logkey.PrivateFile))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(priv), "PRIVATE+KEY+"+origin+"+") || !strings.HasSuffix(string(priv), "\n") {
		t.Errorf("%s = %q, want a signed-note private key line", logkey.PrivateFile, priv)
	}
	pub, err := os.ReadFile(filepath.Join(dir, logkey.PublicFile))
	if err != nil {
		t.Fatal(err)
	}
	if want := k.VKey + "\n" + k.MLDSA.VKey + "\n"; string(pub) != want {
		t.Errorf("%s = %q, want %q", logkey.PublicFile, pub, want)
	}
	if bytes.Contains(pub, []byte("PRIVATE")) {
		t.Errorf("%s holds private material", logkey.PublicFile)
	}
	if k.Signer.Name() != origin || k.Verifier.Name() != origin {
		t.Errorf("key names = %q / %q, want %q", k.Signer.Name(), k.Verifier.Name(), origin)
	}
	if k.Signer.KeyHash() != k.Verifier.KeyHash() {
		t.Errorf("signer and verifier key hashes differ")
	}
	if err := roundTrip(t, k.Signer, k.Verifier); err != nil {
		t.Errorf("a note signed by the key does not verify with its verifier: %v", err)
	}
	v, err := logkey.ReadVerifier(filepath.Join(dir, logkey.PublicFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := roundTrip(t, k.Signer, v); err != nil {
		t.Errorf("a note signed by the key does not verify with log.pub: %v", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != logkey.PrivateFile && e.Name() != logkey.PublicFile && e.Name() != logkey.MLDSAPrivateFile {
			t.Errorf("stray file %s left in the data directory", e.Name())
		}
	}
}

func TestCreateInMissingDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	load(t, dir, origin, "")
	if _, err := os.Stat(filepath.Join(dir, logkey.PrivateFile)); err != nil {
		t.Fatal(err)
	}
}

func TestCreateUsesDefaultOrigin(t *testing.T) {
	dir := t.TempDir()
	k := load(t, dir, "", "default.example/log")
	if k.Signer.Name() != "default.example/log" {
		t.Fatalf("new key name = %q, want the default origin", k.Signer.Name())
	}
}

func TestCreateWithNoOriginFails(t *testing.T) {
	dir := t.TempDir()
	if _, err := logkey.LoadOrCreate(dir, "", "", logkey.MLDSAAuto); err == nil {
		t.Fatal("LoadOrCreate with no origin and no default succeeded")
	}
	if _, err := logkey.LoadOrCreate(dir, "bad name with spaces", "", logkey.MLDSAAuto); err == nil {
		t.Fatal("LoadOrCreate with an invalid key name succeeded")
	}
}

func TestReloadReturnsSameKey(t *testing.T) {
	dir := t.TempDir()
	k1 := load(t, dir, origin, "")
	priv1, err := os.ReadFile(filepath.Join(dir, logkey.PrivateFile))
	if err != nil {
		t.Fatal(err)
	}
	// Remove log.pub: it is rewritten from the key.
	if err := os.Remove(filepath.Join(dir, logkey.PublicFile)); err != nil {
		t.Fatal(err)
	}
	for _, o := range []string{origin, ""} {
		k2 := load(t, dir, o, "other.example")
		if k2.VKey != k1.VKey {
			t.Fatalf("reload with origin %q: vkey %q, want %q", o, k2.VKey, k1.VKey)
		}
		if err := roundTrip(t, k2.Signer, k1.Verifier); err != nil {
			t.Fatalf("reloaded signer does not verify under the first verifier: %v", err)
		}
		if err := roundTrip(t, k1.Signer, k2.Verifier); err != nil {
			t.Fatalf("first signer does not verify under the reloaded verifier: %v", err)
		}
	}
	priv2, err := os.ReadFile(filepath.Join(dir, logkey.PrivateFile))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(priv1, priv2) {
		t.Fatal("reloading rewrote the private key")
	}
	pub, err := os.ReadFile(filepath.Join(dir, logkey.PublicFile))
	if err != nil || string(pub) != string(k1.PublicText()) {
		t.Fatalf("log.pub after reload = %q, %v", pub, err)
	}
}

func TestTwoDirectoriesGetDifferentKeys(t *testing.T) {
	a := load(t, t.TempDir(), origin, "")
	b := load(t, t.TempDir(), origin, "")
	if a.VKey == b.VKey {
		t.Fatal("two new keys are equal")
	}
	if err := roundTrip(t, a.Signer, b.Verifier); err == nil {
		t.Fatal("a note signed by one key verifies with another")
	}
}

func TestOriginMismatch(t *testing.T) {
	dir := t.TempDir()
	load(t, dir, origin, "")
	_, err := logkey.LoadOrCreate(dir, "example.com/other", "", logkey.MLDSAAuto)
	if err == nil {
		t.Fatal("LoadOrCreate accepted a key for another origin")
	}
	for _, want := range []string{`"` + origin + `"`, `"example.com/other"`, "cannot change"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}

func TestRefusesReadableKeyFile(t *testing.T) {
	for _, mode := range []os.FileMode{0o640, 0o604, 0o644, 0o660, 0o610, 0o601, 0o700} {
		t.Run(mode.String(), func(t *testing.T) {
			dir := t.TempDir()
			load(t, dir, origin, "")
			path := filepath.Join(dir, logkey.PrivateFile)
			if err := os.Chmod(path, mode); err != nil {
				t.Fatal(err)
			}
			k, err := logkey.LoadOrCreate(dir, origin, "", logkey.MLDSAAuto)
			if mode&0o077 == 0 {
				if err != nil {
					t.Fatalf("mode %v refused: %v", mode, err)
				}
				return
			}
			if err == nil || k != nil {
				t.Fatalf("mode %v: LoadOrCreate accepted a key readable by others", mode)
			}
			if !strings.Contains(err.Error(), "accessible to other users") || !strings.Contains(err.Error(), "chmod 600") {
				t.Errorf("error %q does not explain the problem", err)
			}
		})
	}
}

func TestKeyFileForms(t *testing.T) {
	skey, _, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		content string
		wantErr string
	}{
		{"no newline", skey, ""},
		{"CRLF and spaces", "  " + skey + "\r\n\n", ""},
		{"garbage", "this is not a key\n", "not a valid Ed25519 signed-note key"},
		{"empty", "", "not a valid Ed25519 signed-note key"},
		{"verifier key instead", "example.com/stele-test+12345678+AQ==\n", "not a valid Ed25519 signed-note key"},
		{"truncated", skey[:len(skey)-4], "not a valid Ed25519 signed-note key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, logkey.PrivateFile)
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			k, err := logkey.LoadOrCreate(dir, "", "default.example", logkey.MLDSAAuto)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if k.Signer.Name() != origin {
					t.Fatalf("name = %q", k.Signer.Name())
				}
				return
			}
			if err == nil {
				t.Fatal("a bad key file was accepted")
			}
			if !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not contain %q and the path", err, tt.wantErr)
			}
			// The bad key file is never replaced by a new key.
			if got, _ := os.ReadFile(path); string(got) != tt.content {
				t.Errorf("the bad key file was changed to %q", got)
			}
		})
	}
}

func TestUnreadableKeyPath(t *testing.T) {
	dir := t.TempDir()
	// log.key is a directory: reading fails with something other than "not exist".
	if err := os.Mkdir(filepath.Join(dir, logkey.PrivateFile), 0o700); err != nil {
		t.Fatal(err)
	}
	_, err := logkey.LoadOrCreate(dir, origin, "", logkey.MLDSAAuto)
	if err == nil || !strings.Contains(err.Error(), "reading log key") {
		t.Fatalf("error = %v, want a read error", err)
	}
}

func TestVerifierKeyMatchesGenerateKey(t *testing.T) {
	for _, name := range []string{origin, "a", "log.example.com/with/slashes"} {
		for range 5 {
			skey, vkey, err := note.GenerateKey(rand.Reader, name)
			if err != nil {
				t.Fatal(err)
			}
			got, err := logkey.VerifierKey(skey)
			if err != nil {
				t.Fatalf("VerifierKey: %v", err)
			}
			if got != vkey {
				t.Fatalf("VerifierKey = %q, want %q (from note.GenerateKey)", got, vkey)
			}
		}
	}
}

func TestVerifierKeyRejects(t *testing.T) {
	skey, vkey, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{
		"",
		"garbage",
		vkey,
		skey + "x",
		strings.Replace(skey, "PRIVATE+KEY+", "PRIVATE+KEY+x", 1), // name/hash no longer match
	} {
		if got, err := logkey.VerifierKey(bad); err == nil {
			t.Errorf("VerifierKey(%q) = %q, want an error", bad, got)
		}
	}
}

func TestReadVerifier(t *testing.T) {
	dir := t.TempDir()
	k := load(t, dir, origin, "")

	v, err := logkey.ReadVerifier(filepath.Join(dir, logkey.PublicFile))
	if err != nil {
		t.Fatal(err)
	}
	if v.Name() != origin || v.KeyHash() != k.Verifier.KeyHash() {
		t.Fatalf("verifier = %q/%08x", v.Name(), v.KeyHash())
	}

	tests := []struct {
		name    string
		content string
		want    string
	}{
		{"garbage", "hello world\n", "does not hold a signed-note verifier key"},
		{"empty", "", "does not hold a signed-note verifier key"},
		{"private key", mustReadFile(t, filepath.Join(dir, logkey.PrivateFile)), "does not hold a signed-note verifier key"},
		{"binary", "\x00\x01\x02\xff", "does not hold a signed-note verifier key"},
		{"truncated", k.VKey[:len(k.VKey)-5] + "\n", "does not hold a signed-note verifier key"},
		{"one key twice", k.VKey + "\n" + k.VKey + "\n", "given twice"},
		{"another log's key", k.VKey + "\n" + otherVKey(t) + "\n", "a log's keys all carry its origin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "bad.pub")
			if err := os.WriteFile(path, []byte(tt.content), 0o644); err != nil {
				t.Fatal(err)
			}
			v, err := logkey.ReadVerifier(path)
			if err == nil {
				t.Fatalf("ReadVerifier accepted %q as %q", tt.content, v.Name())
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not contain %q and the path", err, tt.want)
			}
		})
	}

	_, err = logkey.ReadVerifier(filepath.Join(dir, "missing.pub"))
	if err == nil || !strings.Contains(err.Error(), "reading log verifier key") {
		t.Fatalf("missing file: error = %v", err)
	}
}

func mustReadFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestLoadNamedKey: Load reads an existing key without creating or writing
// anything, and refuses a missing file, a wrong origin and a non-key.
func TestLoadNamedKey(t *testing.T) {
	dir := t.TempDir()
	created := load(t, dir, origin, "")
	other := t.TempDir()
	keyFile := filepath.Join(other, "mounted.key")
	raw, err := os.ReadFile(filepath.Join(dir, logkey.PrivateFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, raw, 0o644); err != nil { // as a careless Secret mount might be
		t.Fatal(err)
	}
	if _, err := logkey.Load(keyFile, ""); err == nil || !strings.Contains(err.Error(), "accessible to other users") || !strings.Contains(err.Error(), "chmod 600 "+keyFile) {
		t.Fatalf("a key file readable by others: %v", err)
	}
	os.Chmod(keyFile, 0o600)
	k, err := logkey.Load(keyFile, "")
	if err != nil {
		t.Fatal(err)
	}
	if k.VKey != created.VKey {
		t.Fatalf("loaded %s, created %s", k.VKey, created.VKey)
	}
	if err := roundTrip(t, k.Signer, created.Verifier); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(other); len(ents) != 1 {
		t.Fatalf("Load wrote files: %v", ents)
	}
	if _, err := logkey.Load(keyFile, "other.example/log"); err == nil || !strings.Contains(err.Error(), "origin") {
		t.Fatalf("wrong origin: %v", err)
	}
	if _, err := logkey.Load(filepath.Join(other, "absent.key"), ""); err == nil || !strings.Contains(err.Error(), "copy log.key") {
		t.Fatalf("missing key: %v", err)
	}
	bad := filepath.Join(other, "bad.key")
	os.WriteFile(bad, []byte("not a key\n"), 0o600)
	if _, err := logkey.Load(bad, ""); err == nil {
		t.Fatal("a non-key loaded")
	}
	if _, err := os.Stat(filepath.Join(other, "absent.key")); !os.IsNotExist(err) {
		t.Fatal("Load created a key")
	}
}
