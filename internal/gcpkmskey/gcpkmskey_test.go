package gcpkmskey_test

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"strings"
	"testing"

	"cloud.google.com/go/kms/apiv1/kmspb"
	"golang.org/x/mod/sumdb/note"

	"github.com/stele-dev/stele/internal/gcpkmskey"
	"github.com/stele-dev/stele/internal/gcpkmskey/gcpkmstest"
	"github.com/stele-dev/stele/internal/logkey"
)

var msg = []byte("gcp.example/log\n3\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n")

func open(t *testing.T, s *gcpkmstest.Server, name string) *gcpkmskey.Key {
	t.Helper()
	k, err := gcpkmskey.Open(t.Context(), name, s.ClientOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	return k
}

// verifyNote signs a checkpoint through k and opens it with
// golang.org/x/mod's note package under the server's public key.
func verifyNote(t *testing.T, s *gcpkmstest.Server, k *gcpkmskey.Key) {
	t.Helper()
	key, err := logkey.FromSigner("gcp.example/log", k)
	if err != nil {
		t.Fatal(err)
	}
	signed, err := note.Sign(&note.Note{Text: string(msg)}, key.Signer)
	if err != nil {
		t.Fatal(err)
	}
	vkey, err := note.NewEd25519VerifierKey("gcp.example/log", s.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := note.Open(signed, note.VerifierList(v)); err != nil {
		t.Fatalf("checkpoint signed in Cloud KMS does not verify: %v", err)
	}
}

// TestSignCheckpoint: a key version opened over gRPC signs a checkpoint
// that golang.org/x/mod's note package verifies under the verifier key
// made from the version's public key, and every request carried
// data_crc32c.
func TestSignCheckpoint(t *testing.T) {
	s := gcpkmstest.Start(t)
	k := open(t, s, gcpkmstest.Ed25519Name)
	if !bytes.Equal(k.Public().(ed25519.PublicKey), s.PublicKey()) {
		t.Fatal("public key differs from the key version's")
	}
	if k.Name() != gcpkmstest.Ed25519Name || k.ProtectionLevel() != kmspb.ProtectionLevel_HSM {
		t.Errorf("Name %q, ProtectionLevel %s", k.Name(), k.ProtectionLevel())
	}
	verifyNote(t, s, k)
	if s.Signs.Load() != 1 {
		t.Errorf("%d signatures made, want 1", s.Signs.Load())
	}
	if n := s.UncheckedData.Load(); n != 0 {
		t.Errorf("%d AsymmetricSign requests without data_crc32c", n)
	}
}

// TestADC: with no client options the key is reached through Application
// Default Credentials (a service-account key file, whose self-signed JWT
// the server checks on every call) and $STELE_GCPKMS_ENDPOINT.
func TestADC(t *testing.T) {
	s := gcpkmstest.Start(t)
	s.SetEnv(t)
	k, err := gcpkmskey.Open(t.Context(), gcpkmstest.Ed25519Name)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	verifyNote(t, s, k)
	// Without credentials the server refuses: the check above was real.
	if _, err := gcpkmskey.Open(t.Context(), gcpkmstest.Ed25519Name, s.ClientOptions()...); err == nil || !strings.Contains(err.Error(), "Unauthenticated") {
		t.Fatalf("a call without credentials: %v", err)
	}
}

func TestOpenRefuses(t *testing.T) {
	s := gcpkmstest.Start(t)
	for _, c := range []struct{ name, want string }{
		{gcpkmstest.P256Name, "has algorithm EC_SIGN_P256_SHA256, not EC_SIGN_ED25519"},
		{gcpkmstest.DisabledName, "FailedPrecondition"},
		{gcpkmstest.DeniedName, "PermissionDenied"},
		{"projects/" + gcpkmstest.Project + "/locations/europe-west1/keyRings/stele/cryptoKeys/nope/cryptoKeyVersions/1", "NotFound"},
		{"projects/" + gcpkmstest.Project + "/locations/europe-west1/keyRings/stele/cryptoKeys/log", "not a key version's name"},
		{"", "no Cloud KMS key version named"},
	} {
		_, err := gcpkmskey.Open(t.Context(), c.name, s.ClientOptions()...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Open(%q): %v, want an error containing %q", c.name, err, c.want)
		}
	}
}

// TestIntegrityChecks: each documented integrity check refuses a
// corrupted response; one bad response is discarded and the call retried,
// MaxIntegrityAttempts in a row fail the call with the reason.
func TestIntegrityChecks(t *testing.T) {
	s := gcpkmstest.Start(t)
	for _, c := range []struct {
		f    gcpkmstest.Fault
		want string
	}{
		{gcpkmstest.PEMCRC, "does not match its pem_crc32c"},
		{gcpkmstest.WrongName, "GetPublicKey answered for"},
	} {
		s.Inject(c.f, 1)
		open(t, s, gcpkmstest.Ed25519Name) // retried
		s.Inject(c.f, gcpkmskey.MaxIntegrityAttempts)
		if _, err := gcpkmskey.Open(t.Context(), gcpkmstest.Ed25519Name, s.ClientOptions()...); err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "integrity checks") {
			t.Errorf("fault %d on GetPublicKey: %v, want %q", c.f, err, c.want)
		}
		s.Inject(c.f, 0)
	}

	k := open(t, s, gcpkmstest.Ed25519Name)
	for _, c := range []struct {
		f    gcpkmstest.Fault
		want string
	}{
		{gcpkmstest.SignatureCRC, "does not match its signature_crc32c"},
		{gcpkmstest.NotVerified, "verified_data_crc32c false"},
		{gcpkmstest.WrongName, "the response names key version"},
	} {
		s.Inject(c.f, 1)
		before := s.Signs.Load()
		if sig, err := k.Sign(nil, msg, crypto.Hash(0)); err != nil || !ed25519.Verify(s.PublicKey(), msg, sig) {
			t.Errorf("fault %d once: %v", c.f, err)
		}
		if got := s.Signs.Load() - before; got != 2 {
			t.Errorf("fault %d once: %d calls, want the bad answer discarded and 1 retry", c.f, got)
		}
		s.Inject(c.f, gcpkmskey.MaxIntegrityAttempts)
		if _, err := k.Sign(nil, msg, crypto.Hash(0)); err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "3 responses in a row") {
			t.Errorf("fault %d every time: %v, want %q", c.f, err, c.want)
		}
		s.Inject(c.f, 0)
	}
	// A signature by another key has a matching CRC: only the check
	// against the public key catches it.
	s.Inject(gcpkmstest.BadSignature, 1)
	if _, err := k.Sign(nil, msg, crypto.Hash(0)); err == nil || !strings.Contains(err.Error(), "does not verify") {
		t.Errorf("signature by another key: %v", err)
	}
	s.Disable(true)
	if _, err := k.Sign(nil, msg, crypto.Hash(0)); err == nil || !strings.Contains(err.Error(), "FailedPrecondition") {
		t.Errorf("disabled version: %v", err)
	}
	s.Disable(false)
	before := s.Calls.Load()
	if _, err := k.Sign(nil, make([]byte, gcpkmskey.MaxMessage+1), crypto.Hash(0)); err == nil || !strings.Contains(err.Error(), "at most 65536") {
		t.Errorf("oversized message: %v", err)
	}
	if _, err := k.Sign(nil, msg, crypto.SHA256); err == nil {
		t.Error("a pre-hashed signature was made")
	}
	if s.Calls.Load() != before {
		t.Error("refused messages reached Cloud KMS")
	}
}
