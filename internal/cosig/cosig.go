// Package cosig reads the witnesses of a C2SP tlog-policy and the
// timestamps of C2SP tlog-cosignature v1 signatures, for the report and the
// explorer.
package cosig

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

// Witness is a witness line of a policy.
type Witness struct {
	// Name is the policy's name for the witness; Key its cosignature
	// (type 0x04 Ed25519 or 0x06 ML-DSA-44) verifier key, KeyHash the key's signed-note ID (hex) and
	// KeySHA256 the SHA-256 of its raw public key (hex).
	Name, Key, KeyHash, KeySHA256, URL string
	Verifier                           note.Verifier
}

// Witnesses reads the "witness NAME VKEY [URL]" lines of a C2SP tlog-policy.
func Witnesses(policy []byte) ([]Witness, error) {
	var ws []Witness
	for line := range strings.SplitSeq(string(policy), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || f[0] != "witness" {
			continue
		}
		v, err := fnote.NewVerifierForCosignatureV1(f[2])
		if err != nil {
			return nil, fmt.Errorf("witness policy: witness %s: %w", f[1], err)
		}
		h, s, err := KeyHashes(f[2])
		if err != nil {
			return nil, err
		}
		w := Witness{Name: f[1], Key: f[2], KeyHash: h, KeySHA256: s, Verifier: v}
		if len(f) > 3 {
			w.URL = f[3]
		}
		ws = append(ws, w)
	}
	return ws, nil
}

// KeyHashes returns a verifier key's signed-note key ID (hex, as in the
// key) and the SHA-256 of its raw public key (hex).
func KeyHashes(vkey string) (hash, sum string, err error) {
	parts := strings.SplitN(vkey, "+", 3)
	if len(parts) != 3 {
		return "", "", fmt.Errorf("verifier key %q is not name+hash+key", vkey)
	}
	raw, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil || len(raw) < 2 {
		return "", "", fmt.Errorf("verifier key %q: bad key encoding", vkey)
	}
	s := sha256.Sum256(raw[1:])
	return parts[1], hex.EncodeToString(s[:]), nil
}

// Time returns the timestamp of a cosignature that w's verifier accepts on
// the signed note raw, and whether there is one.
func (w Witness) Time(raw []byte) (time.Time, bool) {
	n, err := note.Open(raw, note.VerifierList(w.Verifier))
	if err != nil || len(n.Sigs) == 0 {
		return time.Time{}, false
	}
	// key hash (4) | timestamp (8, big-endian seconds) | Ed25519 (64) or
	// ML-DSA-44 (2420)
	b, err := base64.StdEncoding.DecodeString(n.Sigs[0].Base64)
	if err != nil || (len(b) != 4+8+64 && len(b) != 4+8+2420) {
		return time.Time{}, false
	}
	return time.Unix(int64(binary.BigEndian.Uint64(b[4:12])), 0).UTC(), true
}
