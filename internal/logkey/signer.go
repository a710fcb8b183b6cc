package logkey

import (
	"crypto"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"golang.org/x/mod/sumdb/note"
)

// FromSigner makes the Key of an Ed25519 key held elsewhere — in an HSM
// through PKCS#11 (internal/hsm), or any crypto.Signer over an Ed25519
// key — named origin. Checkpoints it signs are ordinary signed-note Ed25519
// signatures (type 0x01): verifiers cannot tell, and need not know, where
// the key lives.
func FromSigner(origin string, s crypto.Signer) (*Key, error) {
	pub, ok := s.Public().(ed25519.PublicKey)
	if !ok || len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("log key for %q is a %T, not an Ed25519 public key: checkpoints are signed with Ed25519", origin, s.Public())
	}
	vkey, err := note.NewEd25519VerifierKey(origin, pub)
	if err != nil {
		return nil, fmt.Errorf("log key for %q: %w", origin, err)
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, fmt.Errorf("deriving verifier key: %w", err)
	}
	return &Key{Signer: &signer{name: origin, hash: keyHash(origin, pub), s: s}, Verifier: verifier, VKey: vkey}, nil
}

// keyHash is the signed-note key hash of an Ed25519 key: the first four
// bytes of SHA-256(name || "\n" || 0x01 || public key), big-endian.
func keyHash(name string, pub ed25519.PublicKey) uint32 {
	h := sha256.New()
	h.Write([]byte(name + "\n"))
	h.Write([]byte{0x01})
	h.Write(pub)
	return binary.BigEndian.Uint32(h.Sum(nil))
}

// signer is a note.Signer over a crypto.Signer.
type signer struct {
	name string
	hash uint32
	s    crypto.Signer
}

func (s *signer) Name() string    { return s.name }
func (s *signer) KeyHash() uint32 { return s.hash }

func (s *signer) Sign(msg []byte) ([]byte, error) {
	return s.s.Sign(nil, msg, crypto.Hash(0))
}
