package client

import (
	"encoding/base64"
	"fmt"
	"strings"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

// Signed-note signature types a log may sign its checkpoints with.
const (
	algEd25519 = 0x01 // c2sp.org/signed-note Ed25519: signs the whole note text
	algMLDSA44 = 0x06 // c2sp.org/tlog-cosignature ML-DSA-44: signs origin, size and root
)

// LogVerifier holds every verifier key of a log: its Ed25519 key and, for
// a log that also signs with ML-DSA-44 (c2sp.org/tlog-checkpoint's
// recommendation), that key; log.pub lists them one a line.
//
// It is a note.Verifier for its first key, so code that names the log by
// Verifier.Name keeps working. ParseCheckpoint, and everything built on it
// (receipts, TileLog, StateStore, audit, monitor, mirror), looks through it:
// a checkpoint passes when a signature by any one of the keys verifies and
// none by a listed key fails, or, after RequireAll, only when every key
// has signed it.
type LogVerifier struct {
	keys       []note.Verifier
	wholeNote  []bool // the key's signature covers the whole note text
	algs       []byte
	requireAll bool
}

// NewLogVerifier parses a log's verifier keys (name+id+base64(type||key)):
// Ed25519 (type 0x01) or ML-DSA-44 (type 0x06), all named for the log's
// origin, none twice.
func NewLogVerifier(vkeys ...string) (*LogVerifier, error) {
	if len(vkeys) == 0 {
		return nil, fmt.Errorf("log verifier: no key given")
	}
	lv := &LogVerifier{}
	for _, vk := range vkeys {
		v, alg, err := parseLogVKey(vk)
		if err != nil {
			return nil, err
		}
		if v.Name() != lv.nameOr(v.Name()) {
			return nil, fmt.Errorf("log verifier key %s+%08x is for %q, the first key for %q: a log's keys all carry its origin", v.Name(), v.KeyHash(), v.Name(), lv.keys[0].Name())
		}
		for _, o := range lv.keys {
			if o.KeyHash() == v.KeyHash() {
				return nil, fmt.Errorf("log verifier key %s+%08x is given twice", v.Name(), v.KeyHash())
			}
		}
		lv.keys = append(lv.keys, v)
		lv.algs = append(lv.algs, alg)
		lv.wholeNote = append(lv.wholeNote, alg == algEd25519)
	}
	return lv, nil
}

func (lv *LogVerifier) nameOr(def string) string {
	if len(lv.keys) == 0 {
		return def
	}
	return lv.keys[0].Name()
}

// parseLogVKey parses one log verifier key and returns its type.
func parseLogVKey(vk string) (note.Verifier, byte, error) {
	parts := strings.SplitN(vk, "+", 3)
	var raw []byte
	if len(parts) == 3 {
		raw, _ = base64.StdEncoding.DecodeString(parts[2])
	}
	if len(raw) == 0 {
		return nil, 0, fmt.Errorf("log verifier key %q is not a signed-note verifier key (name+hash+key)", short(vk))
	}
	switch raw[0] {
	case algEd25519:
		v, err := note.NewVerifier(vk)
		if err != nil {
			return nil, 0, fmt.Errorf("log verifier key %q: %w", short(vk), err)
		}
		return v, algEd25519, nil
	case algMLDSA44:
		v, err := fnote.NewVerifierForCosignatureV1(vk)
		if err != nil {
			return nil, 0, fmt.Errorf("log verifier key %q: %w", short(vk), err)
		}
		return v, algMLDSA44, nil
	}
	return nil, 0, fmt.Errorf("log verifier key %q is of signature type 0x%02x: a log signs checkpoints with Ed25519 (0x01) or ML-DSA-44 (0x06)", short(vk), raw[0])
}

func short(s string) string {
	if len(s) > 60 {
		return s[:60] + "…"
	}
	return s
}

// RequireAll returns a copy of lv that accepts only checkpoints signed by
// every one of its keys (e.g. both the Ed25519 and the ML-DSA-44 key).
func (lv *LogVerifier) RequireAll() *LogVerifier {
	c := *lv
	c.requireAll = true
	return &c
}

// Keys are the log's verifiers, in the order given.
func (lv *LogVerifier) Keys() []note.Verifier { return append([]note.Verifier(nil), lv.keys...) }

// Name is the log's origin.
func (lv *LogVerifier) Name() string { return lv.keys[0].Name() }

// KeyHash is the first key's ID.
func (lv *LogVerifier) KeyHash() uint32 { return lv.keys[0].KeyHash() }

// Verify verifies a signature by the first key.
func (lv *LogVerifier) Verify(msg, sig []byte) bool { return lv.keys[0].Verify(msg, sig) }

// asLogVerifier sees through a *LogVerifier, or wraps a single verifier.
func asLogVerifier(v note.Verifier) *LogVerifier {
	if lv, ok := v.(*LogVerifier); ok {
		return lv
	}
	// A single verifier given by code: Ed25519 unless it says otherwise.
	return &LogVerifier{keys: []note.Verifier{v}, wholeNote: []bool{true}, algs: []byte{algEd25519}}
}

// algName names a signature type for errors.
func algName(alg byte) string {
	if alg == algMLDSA44 {
		return "ML-DSA-44"
	}
	return "Ed25519"
}
