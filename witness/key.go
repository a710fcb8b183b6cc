package witness

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"github.com/stele-dev/stele/internal/durable"
	"github.com/stele-dev/stele/internal/logkey"
)

const (
	// keyFile is the witness's private key file in the data directory.
	keyFile = "witness.key"
	// pubFile is the witness's verifier key file in the data directory:
	// the type 0x04 (tlog-cosignature v1) vkey that log operators put in
	// their witness policies.
	pubFile = "witness.pub"
	// mldsaKeyFile is the witness's ML-DSA-44 private key file in the
	// data directory; MLDSAPubFile its type 0x06 verifier key, which a
	// policy may name instead of (or as well as) pubFile's.
	mldsaKeyFile = "witness-mldsa.key"
	MLDSAPubFile = "witness-mldsa.pub"
	// DefaultName is the cosigner name a new key gets when none is given.
	// Every real deployment should pick its own with --name on first start.
	DefaultName = "stele-witness.localhost/w1"
)

const (
	algCosignatureV1 = 0x04 // Ed25519 cosignature/v1
	algMLDSA44       = 0x06 // ML-DSA-44 subtree/v1
)

// witnessKey is the loaded cosigning keys: the Ed25519 key and the
// ML-DSA-44 key, both named for the witness (tlog-cosignature v1.1; a
// cosigner with two types of keys returns a line for each).
type witnessKey struct {
	signer note.Signer // Ed25519, type 0x04 (a key file, or a token or KMS: signerkey.go)
	vkey   string
	mldsa  *mldsaSigner // ML-DSA-44, type 0x06
	mvkey  string

	ownOnce sync.Once // own: verifiers of vkey and mvkey (subtree.go)
	own     note.Verifiers
	ownErr  error
}

// cosign appends the witness's cosignature lines for cp to b, Ed25519
// first, as a signed note carries them ("— <name> <base64(key ID ||
// signature)>\n"). The ML-DSA-44 signer takes the parsed checkpoint, so
// nothing is parsed again.
func (k *witnessKey) cosign(b []byte, cp *signedCheckpoint) ([]byte, error) {
	sig, err := k.signer.Sign([]byte(cp.Text))
	if err != nil {
		return nil, err
	}
	b = appendSignatureLine(b, k.signer.Name(), k.signer.KeyHash(), sig)
	if k.mldsa == nil { // only in benchmarks comparing with Ed25519 alone
		return b, nil
	}
	if sig, err = k.mldsa.cosign(cp.checkpointBody, time.Now()); err != nil {
		return nil, err
	}
	return appendSignatureLine(b, k.mldsa.name, k.mldsa.id, sig), nil
}

// appendSignatureLine appends one note signature line.
func appendSignatureLine(b []byte, name string, id uint32, sig []byte) []byte {
	b = append(b, "— "...)
	b = append(b, name...)
	b = append(b, ' ')
	raw := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(sig)), id)
	raw = append(raw, sig...)
	b = base64.StdEncoding.AppendEncode(b, raw)
	return append(b, '\n')
}

// loadOrCreateKey reads dir/witness.key, or generates it (mode 0600) when
// absent, and (re)writes dir/witness.pub. name, if set, must match an
// existing key's name.
func loadOrCreateKey(dir, name string) (*witnessKey, error) {
	path := filepath.Join(dir, keyFile)
	skey, err := durable.ReadOrCreateSecret(path, "witness key", func() (string, error) {
		if name == "" {
			name = DefaultName
		}
		if err := checkKeyName(name); err != nil {
			return "", fmt.Errorf("witness name: %w", err)
		}
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return "", err
		}
		return encodeSKey(name, priv.Seed()), nil
	})
	if err != nil {
		return nil, err
	}
	signer, err := fnote.NewSignerForCosignatureV1(skey)
	if err != nil {
		return nil, fmt.Errorf("witness key %s is not an Ed25519 signed-note private key (PRIVATE+KEY+<name>+<id>+<key>)", path)
	}
	if name != "" && signer.Name() != name {
		return nil, fmt.Errorf("witness key %s is named %q but --name is %q: a witness's name is part of its key; drop --name, or use another data directory for a new witness", path, signer.Name(), name)
	}
	vkey, err := cosignerVKey(skey)
	if err != nil {
		return nil, fmt.Errorf("witness key %s: %w", path, err)
	}
	if v, err := fnote.NewVerifierForCosignatureV1(vkey); err != nil || v.KeyHash() != signer.KeyHash() {
		return nil, fmt.Errorf("witness key %s: derived verifier key %s does not match the signer", path, vkey)
	}
	if err := durable.WriteAtomic(filepath.Join(dir, pubFile), []byte(vkey+"\n"), 0o644); err != nil {
		return nil, fmt.Errorf("writing witness verifier key: %w", err)
	}
	k := &witnessKey{signer: signer, vkey: vkey}
	if k.mldsa, k.mvkey, err = loadOrCreateMLDSAKey(dir, signer.Name()); err != nil {
		return nil, err
	}
	return k, nil
}

// loadOrCreateMLDSAKey reads dir/witness-mldsa.key, or generates it (mode
// 0600) when absent (also for a witness that had only its Ed25519 key),
// and (re)writes dir/witness-mldsa.pub. Its name must be the witness's.
func loadOrCreateMLDSAKey(dir, name string) (*mldsaSigner, string, error) {
	path := filepath.Join(dir, mldsaKeyFile)
	skey, err := durable.ReadOrCreateSecret(path, "witness ML-DSA-44 key", func() (string, error) {
		skey, _, err := fnote.GenerateMLDSAKey(name)
		return skey, err
	})
	if err != nil {
		return nil, "", err
	}
	vkey, err := logkey.MLDSAVerifierKey(skey)
	if err != nil {
		return nil, "", fmt.Errorf("witness ML-DSA-44 key %s: %w", path, err)
	}
	signer, err := newMLDSASigner(skey)
	if err != nil {
		return nil, "", fmt.Errorf("witness ML-DSA-44 key %s: %w", path, err)
	}
	if signer.Name() != name {
		return nil, "", fmt.Errorf("witness ML-DSA-44 key %s is named %q but the witness's Ed25519 key %q: both keys carry the witness's name; remove %s to make a new one", path, signer.Name(), name, path)
	}
	// The verifier key is derived by filippo.io/mldsa, the signer is circl:
	// both must give the same public key for the seed.
	if v, err := fnote.NewVerifierForCosignatureV1(vkey); err != nil || v.KeyHash() != signer.KeyHash() {
		return nil, "", fmt.Errorf("witness ML-DSA-44 key %s: derived verifier key does not match the signer", path)
	}
	if err := durable.WriteAtomic(filepath.Join(dir, MLDSAPubFile), []byte(vkey+"\n"), 0o644); err != nil {
		return nil, "", fmt.Errorf("writing witness verifier key: %w", err)
	}
	return signer, vkey, nil
}

// encodeSKey writes an Ed25519 seed as a type 0x04 (cosignature v1)
// signed-note private key.
func encodeSKey(name string, seed []byte) string {
	pub := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
	return fmt.Sprintf("PRIVATE+KEY+%s+%08x+%s", name, keyHash(name, pub),
		base64.StdEncoding.EncodeToString(append([]byte{algCosignatureV1}, seed...)))
}

// cosignerVKey derives the type 0x04 verifier key from a private key of
// type 0x01 or 0x04.
func cosignerVKey(skey string) (string, error) {
	parts := strings.SplitN(skey, "+", 5)
	if len(parts) != 5 {
		return "", errors.New("not a signed-note private key")
	}
	raw, err := base64.StdEncoding.DecodeString(parts[4])
	if err != nil || len(raw) != 1+ed25519.SeedSize || (raw[0] != 0x01 && raw[0] != algCosignatureV1) {
		return "", errors.New("not an Ed25519 (type 0x01 or 0x04) private key")
	}
	name := parts[2]
	pub := ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey)
	return fmt.Sprintf("%s+%08x+%s", name, keyHash(name, pub),
		base64.StdEncoding.EncodeToString(append([]byte{algCosignatureV1}, pub...))), nil
}

// keyHash is the signed-note key ID of a type 0x04 key.
func keyHash(name string, pub ed25519.PublicKey) uint32 {
	return typedKeyHash(name, algCosignatureV1, pub)
}

// typedKeyHash is SHA-256(name || "\n" || alg || pub)[:4], big-endian.
func typedKeyHash(name string, alg byte, pub []byte) uint32 {
	h := sha256.New()
	h.Write([]byte(name))
	h.Write([]byte{'\n', alg})
	h.Write(pub)
	return binary.BigEndian.Uint32(h.Sum(nil))
}

func checkKeyName(name string) error {
	if name == "" || strings.Contains(name, "+") || !utf8.ValidString(name) || strings.ContainsFunc(name, func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsControl(r)
	}) {
		return fmt.Errorf("%q is not a valid key name: it must be non-empty, without spaces or '+' (e.g. witness.example.com/w1)", name)
	}
	return nil
}
