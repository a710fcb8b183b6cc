package logkey_test

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/stele-dev/stele/internal/logkey"
)

// TestFromSignerMatchesNote: a Key over a crypto.Signer signs notes that
// x/mod's own verifier accepts, with the same verifier key and key hash as
// x/mod's signer of the same Ed25519 key.
func TestFromSignerMatchesNote(t *testing.T) {
	skey, want, err := note.GenerateKey(rand.Reader, "hsm.stele.test/log")
	if err != nil {
		t.Fatal(err)
	}
	ref, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.SplitN(skey, "+", 5) // PRIVATE+KEY+name+hash+key; the key's base64 may hold "+"
	raw, err := base64.StdEncoding.DecodeString(parts[len(parts)-1])
	if err != nil {
		t.Fatal(err)
	}
	k, err := logkey.FromSigner("hsm.stele.test/log", ed25519.NewKeyFromSeed(raw[1:]))
	if err != nil {
		t.Fatal(err)
	}
	if k.VKey != want || k.Signer.KeyHash() != ref.KeyHash() || k.Signer.Name() != ref.Name() {
		t.Fatalf("verifier key %q hash %08x, x/mod gives %q %08x", k.VKey, k.Signer.KeyHash(), want, ref.KeyHash())
	}
	msg, err := note.Sign(&note.Note{Text: "hsm.stele.test/log\n1\nAAAA\n"}, k.Signer)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := note.NewVerifier(want)
	if _, err := note.Open(msg, note.VerifierList(v)); err != nil {
		t.Fatalf("x/mod does not verify the note: %v", err)
	}
	if _, err := logkey.FromSigner("x", fakeSigner{}); err == nil {
		t.Fatal("a non-Ed25519 signer was accepted")
	}
}

type fakeSigner struct{ ed25519.PrivateKey }

func (fakeSigner) Public() crypto.PublicKey { return "not a key" }
