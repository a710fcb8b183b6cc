package witness

import (
	"crypto/ed25519"
	"crypto/rand"
	"testing"

	"filippo.io/mldsa"
	"github.com/cloudflare/circl/sign/mldsa/mldsa44"
)

// BenchmarkSigners compares what one cosignature costs: an ML-DSA-44
// signature by circl (the witness's signer) and by filippo.io/mldsa (the
// verifiers' library) from the same seed, and Ed25519 signing and
// verification, over a cosigned_message-sized input:
//
//	go test -run '^$' -bench Signers -benchtime 500x ./witness
func BenchmarkSigners(b *testing.B) {
	seed := make([]byte, 32)
	rand.Read(seed)
	msg := make([]byte, 150)
	_, csk := mldsa44.NewKeyFromSeed((*[32]byte)(seed))
	fsk, err := mldsa.NewPrivateKey(mldsa.MLDSA44(), seed)
	if err != nil {
		b.Fatal(err)
	}
	esk := ed25519.NewKeyFromSeed(seed)
	sig := make([]byte, mldsa44.SignatureSize)
	b.Run("mldsa44-circl", func(b *testing.B) {
		for b.Loop() {
			if err := mldsa44.SignTo(csk, msg, nil, true, sig); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("mldsa44-filippo", func(b *testing.B) {
		for b.Loop() {
			if _, err := fsk.Sign(rand.Reader, msg, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ed25519-sign", func(b *testing.B) {
		for b.Loop() {
			ed25519.Sign(esk, msg)
		}
	})
	es := ed25519.Sign(esk, msg)
	pub := esk.Public().(ed25519.PublicKey)
	b.Run("ed25519-verify", func(b *testing.B) {
		for b.Loop() {
			if !ed25519.Verify(pub, msg, es) {
				b.Fatal("does not verify")
			}
		}
	})
}
