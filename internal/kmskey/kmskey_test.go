package kmskey_test

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/stele-dev/stele/internal/kmskey"
	"github.com/stele-dev/stele/internal/kmskey/kmstest"
	"github.com/stele-dev/stele/internal/logkey"
)

// TestSignCheckpoint: a key opened through the SDK's default chain signs
// a checkpoint that golang.org/x/mod's note package verifies under the
// verifier key made from KMS's public key; by ARN, key ID and alias alike.
func TestSignCheckpoint(t *testing.T) {
	kms := kmstest.Start(t)
	for _, id := range []string{kms.Ed25519ARN, "1234abcd-12ab-34cd-56ef-1234567890ab", "alias/stele-log"} {
		k, err := kmskey.Open(t.Context(), id)
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		if k.ID() != kms.Ed25519ARN {
			t.Errorf("%s: ID %q, want the key ARN %q", id, k.ID(), kms.Ed25519ARN)
		}
		if !bytes.Equal(k.Public().(ed25519.PublicKey), kms.PublicKey()) {
			t.Fatalf("%s: public key differs from the KMS key's", id)
		}
		key, err := logkey.FromSigner("kms.example/log", k)
		if err != nil {
			t.Fatal(err)
		}
		signed, err := note.Sign(&note.Note{Text: "kms.example/log\n3\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"}, key.Signer)
		if err != nil {
			t.Fatal(err)
		}
		vkey, err := note.NewEd25519VerifierKey("kms.example/log", kms.PublicKey())
		if err != nil {
			t.Fatal(err)
		}
		v, err := note.NewVerifier(vkey)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := note.Open(signed, note.VerifierList(v)); err != nil {
			t.Fatalf("%s: checkpoint signed in KMS does not verify: %v", id, err)
		}
	}
}

func TestOpenRefuses(t *testing.T) {
	kms := kmstest.Start(t)
	for _, c := range []struct{ id, want string }{
		{kms.P256ARN, "has key spec ECC_NIST_P256, not ECC_NIST_EDWARDS25519"},
		{"alias/nope", "NotFoundException"},
		{"", "no KMS key named"},
	} {
		_, err := kmskey.Open(t.Context(), c.id)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Open(%q): %v, want an error containing %q", c.id, err, c.want)
		}
	}
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	if _, err := kmskey.Open(t.Context(), "alias/stele-log"); err == nil || !strings.Contains(err.Error(), "no AWS region configured") {
		t.Errorf("alias without region: %v", err)
	}
	if _, err := kmskey.Open(t.Context(), kms.Ed25519ARN); err != nil {
		t.Errorf("an ARN names its region: %v", err)
	}
}

func TestSignFailures(t *testing.T) {
	kms := kmstest.Start(t)
	k, err := kmskey.Open(t.Context(), kms.Ed25519ARN)
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("kms.example/log\n1\nAAAA\n")

	// Throttling is retried by the SDK and the signature still arrives.
	kms.Throttle(2)
	if sig, err := k.Sign(nil, msg, crypto.Hash(0)); err != nil || !ed25519.Verify(kms.PublicKey(), msg, sig) {
		t.Fatalf("after throttling: %v", err)
	}
	kms.Disable(true)
	if _, err := k.Sign(nil, msg, crypto.Hash(0)); err == nil || !strings.Contains(err.Error(), "DisabledException") {
		t.Errorf("disabled key: %v", err)
	}
	kms.Disable(false)
	kms.Corrupt(true)
	if _, err := k.Sign(nil, msg, crypto.Hash(0)); err == nil || !strings.Contains(err.Error(), "does not verify") {
		t.Errorf("wrong signature: %v", err)
	}
	kms.Corrupt(false)
	before := kms.Signs.Load()
	if _, err := k.Sign(nil, make([]byte, kmskey.MaxMessage+1), crypto.Hash(0)); err == nil || !strings.Contains(err.Error(), "at most 4096") {
		t.Errorf("oversized message: %v", err)
	}
	if _, err := k.Sign(nil, msg, crypto.SHA256); err == nil {
		t.Error("a pre-hashed signature was made")
	}
	if kms.Signs.Load() != before {
		t.Error("refused messages reached KMS")
	}
}
