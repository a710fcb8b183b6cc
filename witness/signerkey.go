package witness

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/stele-dev/stele/internal/durable"
)

// keyFromSigner makes the witness's cosigning key of an Ed25519 key held
// outside the data directory — in an HSM through PKCS#11 (internal/hsm) or
// a cloud KMS (internal/kmskey) — under name. Such a key carries no name,
// so name must be given; witness.pub records the verifier key, and a later
// start with another key or name is refused (a witness's name and key are
// its identity: logs' policies name them). A data directory that holds a
// witness.key file is refused too: one witness, one Ed25519 key. The
// witness's ML-DSA-44 key is kept in the data directory as usual.
func keyFromSigner(dir, name string, s crypto.Signer) (*witnessKey, error) {
	if name == "" {
		return nil, errors.New("a witness key in a token or KMS carries no name: give --name (the cosigner name logs put in their policies, e.g. witness.example.com/w1)")
	}
	pub, ok := s.Public().(ed25519.PublicKey)
	if !ok || len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("witness key is a %T, not an Ed25519 public key: cosignatures (tlog-cosignature v1) are Ed25519", s.Public())
	}
	if _, err := os.Stat(filepath.Join(dir, keyFile)); err == nil {
		return nil, fmt.Errorf("%s holds a witness key file (%s) and another key was named outside it: one witness has one key; use another data directory for the witness whose key is outside, or move %s away to rotate (docs/witness.md)", dir, keyFile, keyFile)
	}
	vkey, err := VerifierKeyFor(name, pub)
	if err != nil {
		return nil, err
	}
	pubPath := filepath.Join(dir, pubFile)
	if old, err := os.ReadFile(pubPath); err == nil && strings.TrimSpace(string(old)) != vkey {
		return nil, fmt.Errorf("%s is %s but the key and --name give %s: a witness's name and key are its identity; use the same ones, or another data directory for a new witness", pubPath, strings.TrimSpace(string(old)), vkey)
	}
	if err := durable.WriteAtomic(pubPath, []byte(vkey+"\n"), 0o644); err != nil {
		return nil, fmt.Errorf("writing witness verifier key: %w", err)
	}
	k := &witnessKey{signer: &cosignerV1{name: name, hash: keyHash(name, pub), s: s}, vkey: vkey}
	// Tokens and KMSs hold Ed25519; the ML-DSA-44 key stays in the data
	// directory (witness-mldsa.key, 0600), as for a witness with a key file.
	if k.mldsa, k.mvkey, err = loadOrCreateMLDSAKey(dir, name); err != nil {
		return nil, err
	}
	return k, nil
}

// VerifierKeyFor is the tlog-cosignature v1 (type 0x04) verifier key of a
// witness named name with Ed25519 public key pub: what logs put in their
// witness policies.
func VerifierKeyFor(name string, pub ed25519.PublicKey) (string, error) {
	if err := checkKeyName(name); err != nil {
		return "", fmt.Errorf("witness name: %w", err)
	}
	if len(pub) != ed25519.PublicKeySize {
		return "", fmt.Errorf("witness key: %d bytes is not an Ed25519 public key", len(pub))
	}
	return fmt.Sprintf("%s+%08x+%s", name, keyHash(name, pub), base64.StdEncoding.EncodeToString(append([]byte{algCosignatureV1}, pub...))), nil
}

// cosignerV1 is a note.Signer making tlog-cosignature v1 (type 0x04)
// signatures with an Ed25519 crypto.Signer: the signed message is
// "cosignature/v1\ntime T\n" followed by the checkpoint, and the signature
// is the 8-byte big-endian T followed by the 64-byte Ed25519 signature.
type cosignerV1 struct {
	name string
	hash uint32
	s    crypto.Signer
}

func (c *cosignerV1) Name() string    { return c.name }
func (c *cosignerV1) KeyHash() uint32 { return c.hash }

func (c *cosignerV1) Sign(msg []byte) ([]byte, error) {
	if bytes.Count(msg, []byte("\n")) < 3 {
		return nil, errors.New("cosigning: not a checkpoint (fewer than three lines)")
	}
	t := uint64(time.Now().Unix())
	m := fmt.Appendf(nil, "cosignature/v1\ntime %d\n%s", t, msg)
	sig, err := c.s.Sign(nil, m, crypto.Hash(0))
	if err != nil {
		return nil, fmt.Errorf("cosigning with the witness key: %w", err)
	}
	if len(sig) != ed25519.SignatureSize {
		return nil, fmt.Errorf("cosigning: the witness key returned a %d-byte signature, not Ed25519's 64", len(sig))
	}
	return append(binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(sig)), t), sig...), nil
}
