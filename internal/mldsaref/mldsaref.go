// Package mldsaref is a second, independent implementation of
// c2sp.org/tlog-cosignature's ML-DSA-44 signatures, for interop tests: the
// signed message, key ID and signature layout are written here from the
// spec text alone, and the ML-DSA-44 arithmetic is Cloudflare's circl, not
// filippo.io/mldsa (which Stele signs and verifies with, through
// transparency-dev/formats). Nothing but tests imports it.
package mldsaref

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/cloudflare/circl/sign/mldsa/mldsa44"
)

// SigType is the signed-note signature type of ML-DSA-44 cosignatures.
const SigType = 0x06

// Key is an ML-DSA-44 cosigner (or log) public key with its name.
type Key struct {
	Name string
	ID   uint32
	Pub  *mldsa44.PublicKey
	raw  []byte
}

// ParseVKey parses name+hex(id)+base64(0x06 || 1312-byte key) and checks
// the ID is SHA-256(name || "\n" || 0x06 || key)[:4].
func ParseVKey(vkey string) (*Key, error) {
	parts := strings.SplitN(vkey, "+", 3)
	if len(parts) != 3 {
		return nil, errors.New("vkey is not name+id+key")
	}
	raw, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil || len(raw) != 1+mldsa44.PublicKeySize || raw[0] != SigType {
		return nil, errors.New("vkey is not an ML-DSA-44 (0x06) key")
	}
	id, err := strconv.ParseUint(parts[1], 16, 32)
	if err != nil || len(parts[1]) != 8 {
		return nil, errors.New("vkey id is not 8 hex digits")
	}
	if want := KeyID(parts[0], raw[1:]); uint32(id) != want {
		return nil, fmt.Errorf("vkey id %08x, want %08x", id, want)
	}
	var pk mldsa44.PublicKey
	if err := pk.UnmarshalBinary(raw[1:]); err != nil {
		return nil, err
	}
	return &Key{Name: parts[0], ID: uint32(id), Pub: &pk, raw: raw[1:]}, nil
}

// KeyID is SHA-256(name || "\n" || 0x06 || key)[:4], big-endian.
func KeyID(name string, pub []byte) uint32 {
	h := sha256.New()
	h.Write([]byte(name + "\n"))
	h.Write([]byte{SigType})
	h.Write(pub)
	return binary.BigEndian.Uint32(h.Sum(nil))
}

// Message is the cosigned_message of tlog-cosignature:
//
//	uint8 label[12] = "subtree/v1\n\0"; opaque cosigner_name<1..2^8-1>;
//	uint64 timestamp; opaque log_origin<1..2^8-1>; uint64 start;
//	uint64 end; uint8 hash[32];
func Message(cosigner string, timestamp uint64, origin string, start, end uint64, hash [32]byte) []byte {
	m := []byte("subtree/v1\n\x00")
	m = append(m, byte(len(cosigner)))
	m = append(m, cosigner...)
	m = binary.BigEndian.AppendUint64(m, timestamp)
	m = append(m, byte(len(origin)))
	m = append(m, origin...)
	m = binary.BigEndian.AppendUint64(m, start)
	m = binary.BigEndian.AppendUint64(m, end)
	return append(m, hash[:]...)
}

// Checkpoint is the first three lines of a checkpoint.
type Checkpoint struct {
	Origin string
	Size   uint64
	Hash   [32]byte
}

// VerifyNote checks that the signed note raw (a checkpoint) carries a
// valid ML-DSA-44 cosignature by k over its origin, size and root, and
// returns the signature's timestamp.
func (k *Key) VerifyNote(raw []byte) (uint64, error) {
	text, sigs, ok := strings.Cut(string(raw), "\n\n")
	if !ok {
		return 0, errors.New("no blank line before the signatures")
	}
	lines := strings.Split(text, "\n")
	if len(lines) < 3 {
		return 0, errors.New("checkpoint has fewer than three lines")
	}
	size, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil {
		return 0, err
	}
	h, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(h) != 32 {
		return 0, errors.New("bad root hash")
	}
	cp := Checkpoint{Origin: lines[0], Size: size, Hash: [32]byte(h)}
	for _, line := range strings.Split(strings.TrimSuffix(sigs, "\n"), "\n") {
		name, b64, ok := strings.Cut(strings.TrimPrefix(line, "— "), " ")
		if !ok || name != k.Name {
			continue
		}
		sig, err := base64.StdEncoding.DecodeString(b64)
		if err != nil || len(sig) < 4 || binary.BigEndian.Uint32(sig) != k.ID {
			continue
		}
		return k.Verify(cp, sig[4:])
	}
	return 0, fmt.Errorf("no signature line by %s+%08x", k.Name, k.ID)
}

// Verify checks a timestamped_signature (u64 timestamp || 2420-byte
// signature) over cp and returns its timestamp.
func (k *Key) Verify(cp Checkpoint, tsig []byte) (uint64, error) {
	if len(tsig) != 8+mldsa44.SignatureSize {
		return 0, fmt.Errorf("signature is %d bytes, want %d", len(tsig), 8+mldsa44.SignatureSize)
	}
	ts := binary.BigEndian.Uint64(tsig)
	if ts > 1<<63-1 {
		return 0, errors.New("timestamp beyond 2^63-1")
	}
	if !mldsa44.Verify(k.Pub, Message(k.Name, ts, cp.Origin, 0, cp.Size, cp.Hash), nil, tsig[8:]) {
		return 0, errors.New("ML-DSA-44 signature does not verify")
	}
	return ts, nil
}

// Signer signs cosignatures with circl, from a 32-byte FIPS 204 seed.
type Signer struct {
	Key
	priv *mldsa44.PrivateKey
}

// NewSigner derives the key pair of seed (ML-DSA.KeyGen_internal).
func NewSigner(name string, seed [32]byte) *Signer {
	pk, sk := mldsa44.NewKeyFromSeed(&seed)
	raw, _ := pk.MarshalBinary()
	return &Signer{Key: Key{Name: name, ID: KeyID(name, raw), Pub: pk, raw: raw}, priv: sk}
}

// VKey is the signer's verifier key.
func (s *Signer) VKey() string {
	return fmt.Sprintf("%s+%08x+%s", s.Name, s.ID, base64.StdEncoding.EncodeToString(append([]byte{SigType}, s.raw...)))
}

// SignLine returns the note signature line of a cosignature on cp at
// timestamp.
func (s *Signer) SignLine(cp Checkpoint, timestamp uint64) (string, error) {
	sig := make([]byte, mldsa44.SignatureSize)
	if err := mldsa44.SignTo(s.priv, Message(s.Name, timestamp, cp.Origin, 0, cp.Size, cp.Hash), nil, true, sig); err != nil {
		return "", err
	}
	b := binary.BigEndian.AppendUint32(nil, s.ID)
	b = binary.BigEndian.AppendUint64(b, timestamp)
	b = append(b, sig...)
	return "— " + s.Name + " " + base64.StdEncoding.EncodeToString(b) + "\n", nil
}
