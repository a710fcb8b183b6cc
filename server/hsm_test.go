package server_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/internal/hsmtest"
	"github.com/stele-dev/stele/internal/logkey"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
)

// TestHSMKeyRotation runs the real stele-server with its checkpoint key
// inside a SoftHSM2 token, after a rotation from a key in a file (the
// procedure of docs/operations.md, "Key rotation"): the key is generated in
// the token by `stele-server pkcs11-keygen`, the server restarted on the
// same data directory with --log-key-pkcs11, and then
//   - new checkpoints verify with the token's verifier key (and not the
//     old one), which the server wrote to log.pub;
//   - the tree after the rotation is consistent with the one before;
//   - receipts handed out before verify with the old key, new ones with
//     the new key.
func TestHSMKeyRotation(t *testing.T) {
	const origin = "hsm.stele.test/log"
	tok := hsmtest.Token(t, "stele", "log-2026")
	t.Setenv("STELE_PKCS11_PIN", tok.PIN)
	ref := fmt.Sprintf("module=%s;token=%s;label=%s", tok.Module, tok.Token, tok.Label)
	dir := t.TempDir()

	// Before: a key in the data directory.
	p := startProcess(t, dir, "--origin", origin)
	oldV, err := logkey.ReadVerifier(filepath.Join(dir, "log.pub"))
	if err != nil {
		t.Fatal(err)
	}
	appendN := func(p *proc, from, n int) {
		evs := make([]*stelev1.Event, n)
		for i := range evs {
			evs[i] = event("entra/hsm/audit", fmt.Sprintf("hsm-%d", from+i), 300)
		}
		mustAppend(t, p.cli, evs)
	}
	receiptAt := func(p *proc, idx, size uint64) []byte {
		ctx := ctxT(t, time.Minute)
		for {
			r, err := p.cli.Log.GetReceipt(ctx, &stelev1.GetReceiptRequest{Index: idx})
			if err == nil {
				if pr, err := client.ParseReceiptProof(r.Proof); err == nil && bytes.Contains(pr.Checkpoint, fmt.Appendf(nil, "\n%d\n", size)) {
					return r.Proof
				}
			}
			if ctx.Err() != nil {
				t.Fatalf("no receipt for %d under a checkpoint of size %d: %v", idx, size, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	appendN(p, 0, 10)
	oldReceipt := receiptAt(p, 3, 10)
	oldCP, err := client.ParseCheckpoint(mustCheckpoint(t, p, 10), oldV)
	if err != nil {
		t.Fatal(err)
	}
	stopProcess(t, p)

	// The new key, generated inside the token; the private half never
	// leaves it (internal/hsm's tests check the token refuses to export it).
	out, err := exec.Command(serverBinary(t), "pkcs11-keygen", "--log-key-pkcs11", ref, "--origin", origin).CombinedOutput()
	if err != nil {
		t.Fatalf("pkcs11-keygen: %v\n%s", err, out)
	}
	newVKey := strings.TrimSpace(string(out))
	newV, err := note.NewVerifier(newVKey)
	if err != nil {
		t.Fatalf("pkcs11-keygen printed %q: %v", out, err)
	}
	if newV.KeyHash() == oldV.KeyHash() {
		t.Fatal("the token's key is the old key")
	}

	// After: the same log, signed inside the token.
	p = startProcess(t, dir, "--origin", origin, "--log-key-pkcs11", ref)
	pub, _ := os.ReadFile(filepath.Join(dir, "log.pub"))
	if strings.TrimSpace(string(pub)) != newVKey {
		t.Fatalf("log.pub is %q, want the token's verifier key %q", pub, newVKey)
	}
	appendN(p, 10, 10)
	newReceipt := receiptAt(p, 15, 20)
	raw := mustCheckpoint(t, p, 20)
	newCP, err := client.ParseCheckpoint(raw, newV)
	if err != nil {
		t.Fatalf("a checkpoint after the rotation does not verify with the token's key: %v\n%s", err, raw)
	}
	if _, err := client.ParseCheckpoint(raw, oldV); err == nil {
		t.Fatal("a checkpoint after the rotation verifies with the old key")
	}
	cons, err := p.cli.Log.GetConsistencyProof(ctxT(t, time.Minute), &stelev1.GetConsistencyProofRequest{FromSize: oldCP.Size, ToSize: newCP.Size})
	if err != nil {
		t.Fatal(err)
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, oldCP.Size, newCP.Size, cons.Hashes, oldCP.Root[:], newCP.Root[:]); err != nil {
		t.Fatalf("the tree signed in the token is not consistent with the one signed before: %v", err)
	}
	if _, err := client.VerifyReceipt(oldReceipt, oldV); err != nil {
		t.Fatalf("a receipt from before the rotation: %v", err)
	}
	if _, err := client.VerifyReceipt(newReceipt, newV); err != nil {
		t.Fatalf("a receipt from after the rotation: %v", err)
	}
	stopProcess(t, p)

	// Mistakes are named: no origin, a wrong PIN.
	for _, tc := range []struct {
		args []string
		env  string
		want string
	}{
		{[]string{"--log-key-pkcs11", ref}, tok.PIN, "needs --origin"},
		{[]string{"--log-key-pkcs11", ref, "--origin", origin}, "0000", "check the PIN"},
	} {
		cmd := exec.Command(serverBinary(t), append([]string{"--data-dir", dir, "--grpc-addr", freeAddr(t), "--http-addr", freeAddr(t)}, tc.args...)...)
		cmd.Env = append(os.Environ(), "STELE_PKCS11_PIN="+tc.env)
		out, err := cmd.CombinedOutput()
		if err == nil || !bytes.Contains(out, []byte(tc.want)) {
			t.Errorf("stele-server %v: %v\n%s\nwant an error naming %q", tc.args, err, out, tc.want)
		}
	}
}

// mustCheckpoint returns the latest checkpoint once it covers size.
func mustCheckpoint(t *testing.T, p *proc, size uint64) []byte {
	t.Helper()
	ctx := ctxT(t, time.Minute)
	for {
		cp, err := p.cli.Log.GetCheckpoint(ctx, &stelev1.GetCheckpointRequest{})
		if err == nil && cp.Size >= size {
			return cp.Checkpoint
		}
		if ctx.Err() != nil {
			t.Fatalf("no checkpoint covers %d: %v", size, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stopProcess stops a server with SIGTERM and waits for a clean exit.
func stopProcess(t *testing.T, p *proc) {
	t.Helper()
	p.cli.Close()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("SIGTERM: %v\n%s", err, p.logs)
	}
}
