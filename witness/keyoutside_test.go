package witness

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stele-dev/stele/internal/gcpkmskey/gcpkmstest"
	"github.com/stele-dev/stele/internal/hsmtest"
	"github.com/stele-dev/stele/internal/kmskey/kmstest"
	"github.com/stele-dev/stele/internal/proctest"
)

// TestBinaryKeyInPKCS11Token runs the real stele-witness with its
// cosigning key generated inside a SoftHSM2 token by
// `stele-witness pkcs11-keygen`: cosignatures verify (with
// transparency-dev/formats' tlog-cosignature verifier) under the verifier
// key keygen printed, which the witness also wrote to witness.pub; no key
// file is written; a restart under another name is refused.
func TestBinaryKeyInPKCS11Token(t *testing.T) {
	tok := hsmtest.Token(t, "stele-witness", "witness-2026")
	t.Setenv("STELE_PKCS11_PIN", tok.PIN)
	ref := fmt.Sprintf("module=%s;token=%s;label=%s", tok.Module, tok.Token, tok.Label)
	vkey := strings.TrimSpace(string(runCLI(t, "pkcs11-keygen", "--key-pkcs11", ref, "--name", "bin.example/w")))

	lg := newTestLog(t, "example.com/hsm-witnessed").grow(20)
	dir := t.TempDir()
	p := startWitnessProc(t, dir, "--config", writeConfig(t, lg), "--key-pkcs11", ref)
	checkKeyOutside(t, p, dir, vkey, lg)
	p.stop(t)

	out, err := exec.Command(witnessBinary(t), "--data-dir", dir, "--listen", proctest.FreeAddr(t), "--name", "other.example/w", "--key-pkcs11", ref).CombinedOutput()
	if err == nil || !bytes.Contains(out, []byte("a witness's name and key are its identity")) {
		t.Fatalf("restart under another name: %v\n%s", err, out)
	}
}

// TestBinaryKeyInKMS: the same with the key in (a loopback stand-in for)
// AWS KMS; a disabled key stops the start with KMS's reason.
func TestBinaryKeyInKMS(t *testing.T) {
	kms := kmstest.Start(t)
	vkey, err := VerifierKeyFor("bin.example/w", kms.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	lg := newTestLog(t, "example.com/kms-witnessed").grow(20)
	dir := t.TempDir()
	p := startWitnessProc(t, dir, "--config", writeConfig(t, lg), "--key-kms", "alias/stele-log")
	checkKeyOutside(t, p, dir, vkey, lg)
	if kms.Signs.Load() == 0 {
		t.Fatal("no cosignature was made in KMS")
	}
	p.stop(t)

	kms.Disable(true)
	out, err := exec.Command(witnessBinary(t), "--data-dir", dir, "--listen", proctest.FreeAddr(t), "--name", "bin.example/w", "--key-kms", "alias/stele-log").CombinedOutput()
	if err == nil || !bytes.Contains(out, []byte("DisabledException")) {
		t.Fatalf("disabled KMS key: %v\n%s", err, out)
	}
	// A data directory with a key file refuses a second key.
	fileDir := t.TempDir()
	startWitnessProc(t, fileDir).stop(t)
	kms.Disable(false)
	out, err = exec.Command(witnessBinary(t), "--data-dir", fileDir, "--listen", proctest.FreeAddr(t), "--name", "bin.example/w", "--key-kms", "alias/stele-log").CombinedOutput()
	if err == nil || !bytes.Contains(out, []byte("one witness has one key")) {
		t.Fatalf("key file and KMS key: %v\n%s", err, out)
	}
}

// TestBinaryKeyInGCPKMS: the same with the key in (a loopback stand-in
// for) Google Cloud KMS through Application Default Credentials; a
// disabled version or one of another algorithm stops the start with the
// reason.
func TestBinaryKeyInGCPKMS(t *testing.T) {
	kms := gcpkmstest.Start(t)
	kms.SetEnv(t)
	vkey, err := VerifierKeyFor("bin.example/w", kms.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	lg := newTestLog(t, "example.com/gcpkms-witnessed").grow(20)
	dir := t.TempDir()
	p := startWitnessProc(t, dir, "--config", writeConfig(t, lg), "--key-gcpkms", gcpkmstest.Ed25519Name)
	checkKeyOutside(t, p, dir, vkey, lg)
	if kms.Signs.Load() == 0 || kms.UncheckedData.Load() != 0 {
		t.Fatalf("%d cosignatures made in Cloud KMS, %d without data_crc32c", kms.Signs.Load(), kms.UncheckedData.Load())
	}
	p.stop(t)

	for _, c := range []struct{ name, want string }{
		{gcpkmstest.DisabledName, "FailedPrecondition"},
		{gcpkmstest.P256Name, "not EC_SIGN_ED25519"},
	} {
		out, err := exec.Command(witnessBinary(t), "--data-dir", dir, "--listen", proctest.FreeAddr(t), "--name", "bin.example/w", "--key-gcpkms", c.name).CombinedOutput()
		if err == nil || !bytes.Contains(out, []byte(c.want)) {
			t.Errorf("--key-gcpkms %s: %v\n%s\nwant %q", c.name, err, out, c.want)
		}
	}
	out, err := exec.Command(witnessBinary(t), "--data-dir", dir, "--listen", proctest.FreeAddr(t), "--name", "bin.example/w", "--key-gcpkms", gcpkmstest.Ed25519Name, "--key-kms", "alias/x").CombinedOutput()
	if err == nil || !bytes.Contains(out, []byte("give one")) {
		t.Errorf("two keys: %v\n%s", err, out)
	}
}

func checkKeyOutside(t *testing.T, p *witnessProc, dir, vkey string, lg *testLog) {
	t.Helper()
	if got := readVKey(t, dir); got != vkey {
		t.Fatalf("witness.pub is %q, want %q", got, vkey)
	}
	if _, err := os.Stat(filepath.Join(dir, keyFile)); err == nil {
		t.Fatal("a key file was written next to a key held outside")
	}
	// The ML-DSA-44 key stays in the data directory (tokens and KMSs hold
	// Ed25519 keys): both cosignature lines come back.
	mraw, err := os.ReadFile(filepath.Join(dir, MLDSAPubFile))
	if err != nil {
		t.Fatal(err)
	}
	mvkey := strings.TrimSpace(string(mraw))
	for _, size := range []uint64{5, 20} {
		old := uint64(0)
		if size == 20 {
			old = 5
		}
		r := post(t, p.url, lg.request(t, old, size))
		if r.status != 200 {
			t.Fatalf("size %d: %d %s", size, r.status, r.body)
		}
		checkCosignature(t, vkey, mvkey, lg, lg.checkpoint(t, size), r.body)
	}
}
