package server_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/internal/gcpkmskey/gcpkmstest"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
)

// TestGCPKMSLogKey runs the real stele-server with its checkpoint key in
// (a loopback stand-in for) Google Cloud KMS, reached through Application
// Default Credentials (a service-account key file; the stand-in checks
// its self-signed JWT on every call) over TLS: every checkpoint is signed
// by AsymmetricSign and verifies, and so does a receipt, with the
// verifier key made from the key version's public key, which the server
// wrote to log.pub. A corrupted response is discarded and the call
// retried; a disabled version, the wrong algorithm, a version the caller
// may not use or that does not exist stop the start with the reason.
func TestGCPKMSLogKey(t *testing.T) {
	const origin = "gcpkms.stele.test/log"
	kms := gcpkmstest.Start(t)
	kms.SetEnv(t)
	vkey, err := note.NewEd25519VerifierKey(origin, kms.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p := startProcess(t, dir, "--origin", origin, "--log-key-gcpkms", gcpkmstest.Ed25519Name)
	if pub, _ := os.ReadFile(filepath.Join(dir, "log.pub")); !strings.HasPrefix(string(pub), vkey+"\n") {
		t.Fatalf("log.pub is %q, want Cloud KMS's verifier key %q first", pub, vkey)
	}
	if _, err := os.Stat(filepath.Join(dir, "log.key")); err == nil {
		t.Fatal("a key file was written next to a key in Cloud KMS")
	}
	evs := make([]*stelev1.Event, 20)
	for i := range evs {
		evs[i] = event("entra/gcpkms/audit", fmt.Sprintf("gcpkms-%d", i), 300)
	}
	// Every response to the next signature carries a bad signature_crc32c
	// once: the server discards it, asks again and goes on.
	kms.Inject(gcpkmstest.SignatureCRC, 1)
	mustAppend(t, p.cli, evs)
	raw := mustCheckpoint(t, p, 20)
	if _, err := client.ParseCheckpoint(raw, v); err != nil {
		t.Fatalf("checkpoint does not verify with Cloud KMS's key: %v\n%s", err, raw)
	}
	r, err := p.cli.Log.GetReceipt(ctxT(t, time.Minute), &stelev1.GetReceiptRequest{Index: 7})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.VerifyReceipt(r.Proof, v); err != nil {
		t.Fatalf("receipt under a checkpoint signed in Cloud KMS: %v", err)
	}
	if kms.Signs.Load() == 0 || kms.UncheckedData.Load() != 0 {
		t.Fatalf("%d signatures made, %d without data_crc32c", kms.Signs.Load(), kms.UncheckedData.Load())
	}
	stopProcess(t, p)

	kms.Disable(true)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--log-key-gcpkms", gcpkmstest.Ed25519Name, "--origin", origin}, "FailedPrecondition"},
		{[]string{"--log-key-gcpkms", gcpkmstest.P256Name, "--origin", origin}, "has algorithm EC_SIGN_P256_SHA256, not EC_SIGN_ED25519"},
		{[]string{"--log-key-gcpkms", gcpkmstest.DeniedName, "--origin", origin}, "PermissionDenied"},
		{[]string{"--log-key-gcpkms", strings.Replace(gcpkmstest.Ed25519Name, "/log/", "/nope/", 1), "--origin", origin}, "NotFound"},
		{[]string{"--log-key-gcpkms", gcpkmstest.Ed25519Name}, "needs --origin"},
		{[]string{"--log-key-gcpkms", gcpkmstest.Ed25519Name, "--log-key-kms", "alias/x", "--origin", origin}, "give one"},
	} {
		cmd := exec.Command(serverBinary(t), append([]string{"--data-dir", dir, "--grpc-addr", freeAddr(t), "--http-addr", freeAddr(t)}, tc.args...)...)
		out, err := cmd.CombinedOutput()
		if err == nil || !bytes.Contains(out, []byte(tc.want)) {
			t.Errorf("stele-server %v: %v\n%s\nwant an error naming %q", tc.args, err, out, tc.want)
		}
	}
}
