package cosig

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	fnote "github.com/transparency-dev/formats/note"
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

// TestTimeMLDSA: the timestamp of an ML-DSA-44 (type 0x06) cosignature,
// as of an Ed25519 one, is read from a policy's witness.
func TestTimeMLDSA(t *testing.T) {
	body := "log.example/x\n3\n" + strings.Repeat("A", 43) + "=\n"
	for _, gen := range []func() (string, string, error){
		func() (string, string, error) { return fnote.GenerateMLDSAKey("w.example/pq") },
		func() (string, string, error) {
			skey, vkey, err := note.GenerateKey(rand.Reader, "w.example/ed")
			if err != nil {
				return "", "", err
			}
			vkey, err = fnote.VKeyToCosignatureV1(vkey)
			return skey, vkey, err
		},
	} {
		skey, vkey, err := gen()
		if err != nil {
			t.Fatal(err)
		}
		s, err := fnote.NewSignerForCosignatureV1(skey)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := note.Sign(&note.Note{Text: body}, s)
		if err != nil {
			t.Fatal(err)
		}
		ws, err := Witnesses([]byte("witness w " + vkey + " http://127.0.0.1:1/\nquorum w\n"))
		if err != nil || len(ws) != 1 {
			t.Fatalf("policy: %v", err)
		}
		ts, ok := ws[0].Time(raw)
		if !ok || time.Since(ts) > time.Minute || time.Since(ts) < -time.Minute {
			t.Fatalf("%s: time %v, %v", s.Name(), ts, ok)
		}
	}
}
