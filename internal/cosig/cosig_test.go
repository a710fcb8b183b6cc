package cosig

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

// TestKeyHashesPlusInKey: the base64 of a key may hold '+', which must not
// be taken for a field separator.
func TestKeyHashesPlusInKey(t *testing.T) {
	for i := range 200 {
		seed := make([]byte, 32)
		seed[0] = byte(i)
		pub := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
		vkey, err := note.NewEd25519VerifierKey("log.example/x", pub)
		if err != nil {
			t.Fatal(err)
		}
		h, s, err := KeyHashes(vkey)
		if err != nil {
			t.Fatalf("%s: %v", vkey, err)
		}
		want := sha256.Sum256(pub)
		if s != hex.EncodeToString(want[:]) || !strings.HasPrefix(vkey, "log.example/x+"+h+"+") {
			t.Fatalf("%s: hash %s, sum %s", vkey, h, s)
		}
	}
	for _, bad := range []string{"", "name", "name+hash", "name+hash+!!!", "name+hash+"} {
		if _, _, err := KeyHashes(bad); err == nil {
			t.Errorf("KeyHashes(%q) accepted", bad)
		}
	}
}
