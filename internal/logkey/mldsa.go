package logkey

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"filippo.io/mldsa"
	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"github.com/stele-dev/stele/internal/durable"
)

// MLDSAPrivateFile is the ML-DSA-44 private key's file name in the data
// directory, next to log.key.
const MLDSAPrivateFile = "log-mldsa.key"

// AlgMLDSA44 is the signed-note signature type of ML-DSA-44 (sub)tree
// cosignatures (c2sp.org/signed-note, c2sp.org/tlog-cosignature), which
// c2sp.org/tlog-checkpoint recommends logs sign their checkpoints with.
const AlgMLDSA44 = 0x06

// MLDSA says whether a log signs its checkpoints with an ML-DSA-44 key
// besides its Ed25519 one.
type MLDSA int

const (
	// MLDSAAuto creates the key for a new log, uses the key an existing
	// log already has, and adds none to an existing log without one.
	MLDSAAuto MLDSA = iota
	// MLDSAOn uses the key, creating it when absent (also for an existing
	// log: verifiers holding the old log.pub ignore the new signature).
	MLDSAOn
	// MLDSAOff signs with the Ed25519 key only, even if an ML-DSA-44 key
	// exists.
	MLDSAOff
)

// ParseMLDSA reads "auto", "on" or "off".
func ParseMLDSA(s string) (MLDSA, error) {
	switch s {
	case "", "auto":
		return MLDSAAuto, nil
	case "on":
		return MLDSAOn, nil
	case "off":
		return MLDSAOff, nil
	}
	return 0, fmt.Errorf("ML-DSA-44 mode %q: want auto, on or off", s)
}

// MLDSAKey is a log's ML-DSA-44 key. Its signature on a checkpoint is a
// c2sp.org/tlog-cosignature ML-DSA-44 signature by the log itself (the
// key name is the origin, start 0, end the tree size, the timestamp the
// signing time): it covers origin, size and root hash, not extension
// lines, which Stele's checkpoints do not have.
type MLDSAKey struct {
	Signer   note.Signer
	Verifier note.Verifier
	// VKey is the verifier key (type 0x06) in signed-note text form.
	VKey string
}

// loadOrCreateMLDSA applies mode to dir's ML-DSA-44 key for a log whose
// Ed25519 key is named origin; newLog says the Ed25519 key was just made.
func loadOrCreateMLDSA(dir, origin string, newLog bool, mode MLDSA) (*MLDSAKey, error) {
	path := filepath.Join(dir, MLDSAPrivateFile)
	if mode == MLDSAOff {
		return nil, nil
	}
	if mode == MLDSAAuto && !newLog {
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
	}
	skey, err := durable.ReadOrCreateSecret(path, "log ML-DSA-44 key", func() (string, error) {
		skey, _, err := fnote.GenerateMLDSAKey(origin)
		return skey, err
	})
	if err != nil {
		return nil, err
	}
	return mldsaFromSecret(skey, path, origin)
}

// LoadMLDSA reads the ML-DSA-44 private key in path, which must exist and
// be named origin. It is the --log-mldsa-key of replicas that share a
// log's keys; nothing is written.
func LoadMLDSA(path, origin string) (*MLDSAKey, error) {
	skey, err := durable.ReadSecret(path, "log ML-DSA-44 key")
	if err != nil {
		return nil, err
	}
	return mldsaFromSecret(skey, path, origin)
}

func mldsaFromSecret(skey, path, origin string) (*MLDSAKey, error) {
	vkey, err := MLDSAVerifierKey(skey)
	if err != nil {
		return nil, fmt.Errorf("log ML-DSA-44 key %s: %w", path, err)
	}
	signer, err := fnote.NewSignerForCosignatureV1(skey)
	if err != nil {
		return nil, fmt.Errorf("log ML-DSA-44 key %s: %w", path, err)
	}
	if signer.Name() != origin {
		return nil, fmt.Errorf("log ML-DSA-44 key %s is for origin %q but the log's Ed25519 key is for %q: both keys of a log carry its origin", path, signer.Name(), origin)
	}
	verifier, err := fnote.NewVerifierForCosignatureV1(vkey)
	if err != nil || verifier.KeyHash() != signer.KeyHash() {
		return nil, fmt.Errorf("log ML-DSA-44 key %s: its derived verifier key does not match it", path)
	}
	return &MLDSAKey{Signer: signer, Verifier: verifier, VKey: vkey}, nil
}

// MLDSAVerifierKey derives the type 0x06 verifier key from an ML-DSA-44
// private key PRIVATE+KEY+<name>+<id>+base64(0x06 || 32-byte seed), the
// encoding of transparency-dev/formats' GenerateMLDSAKey.
func MLDSAVerifierKey(skey string) (string, error) {
	parts := strings.SplitN(strings.TrimSpace(skey), "+", 5)
	if len(parts) != 5 || parts[0] != "PRIVATE" || parts[1] != "KEY" {
		return "", errors.New("not a signed-note private key (PRIVATE+KEY+<name>+<id>+<key>)")
	}
	raw, err := base64.StdEncoding.DecodeString(parts[4])
	if err != nil || len(raw) != 1+mldsa.PrivateKeySize || raw[0] != AlgMLDSA44 {
		return "", errors.New("not an ML-DSA-44 (type 0x06) private key")
	}
	sk, err := mldsa.NewPrivateKey(mldsa.MLDSA44(), raw[1:])
	if err != nil {
		return "", err
	}
	name := parts[2]
	pub := append([]byte{AlgMLDSA44}, sk.PublicKey().Bytes()...)
	if want := fmt.Sprintf("%08x", keyID(name, pub)); parts[3] != want {
		return "", fmt.Errorf("key ID %s does not match the key (want %s)", parts[3], want)
	}
	return fmt.Sprintf("%s+%08x+%s", name, keyID(name, pub), base64.StdEncoding.EncodeToString(pub)), nil
}

// keyID is the signed-note key ID of typed public key material:
// SHA-256(name || "\n" || type || key)[:4], big-endian.
func keyID(name string, typedKey []byte) uint32 {
	h := sha256.New()
	h.Write([]byte(name + "\n"))
	h.Write(typedKey)
	return binary.BigEndian.Uint32(h.Sum(nil))
}
