package server_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/internal/kmskey/kmstest"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
)

// TestKMSLogKey runs the real stele-server with its checkpoint key in
// (a loopback stand-in for) AWS KMS, reached through the AWS SDK's default
// chain: every checkpoint is signed by KMS and verifies with the verifier
// key made from KMS's public key, which the server wrote to log.pub; a
// key KMS has disabled, or one that is not Ed25519, stops the start with
// the reason.
func TestKMSLogKey(t *testing.T) {
	const origin = "kms.stele.test/log"
	kms := kmstest.Start(t)
	vkey, err := note.NewEd25519VerifierKey(origin, kms.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p := startProcess(t, dir, "--origin", origin, "--log-key-kms", "alias/stele-log")
	if pub, _ := os.ReadFile(filepath.Join(dir, "log.pub")); strings.TrimSpace(string(pub)) != vkey {
		t.Fatalf("log.pub is %q, want KMS's verifier key %q", pub, vkey)
	}
	if _, err := os.Stat(filepath.Join(dir, "log.key")); err == nil {
		t.Fatal("a key file was written next to a key in KMS")
	}
	evs := make([]*stelev1.Event, 20)
	for i := range evs {
		evs[i] = event("entra/kms/audit", fmt.Sprintf("kms-%d", i), 300)
	}
	mustAppend(t, p.cli, evs)
	raw := mustCheckpoint(t, p, 20)
	if _, err := client.ParseCheckpoint(raw, v); err != nil {
		t.Fatalf("checkpoint does not verify with KMS's key: %v\n%s", err, raw)
	}
	if kms.Signs.Load() == 0 {
		t.Fatal("no checkpoint was signed in KMS")
	}
	stopProcess(t, p)

	kms.Disable(true)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--log-key-kms", "alias/stele-log", "--origin", origin}, "DisabledException"},
		{[]string{"--log-key-kms", kms.P256ARN, "--origin", origin}, "not ECC_NIST_EDWARDS25519"},
		{[]string{"--log-key-kms", "alias/stele-log"}, "needs --origin"},
		{[]string{"--log-key-kms", "alias/stele-log", "--log-key", filepath.Join(dir, "x.key"), "--origin", origin}, "give one"},
	} {
		cmd := exec.Command(serverBinary(t), append([]string{"--data-dir", dir, "--grpc-addr", freeAddr(t), "--http-addr", freeAddr(t)}, tc.args...)...)
		out, err := cmd.CombinedOutput()
		if err == nil || !bytes.Contains(out, []byte(tc.want)) {
			t.Errorf("stele-server %v: %v\n%s\nwant an error naming %q", tc.args, err, out, tc.want)
		}
	}
}
