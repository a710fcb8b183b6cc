package witness

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/note"
)

// emptyRoot is the RFC 6962 root of the empty tree, the only root a size-0
// checkpoint may carry.
var emptyRoot = sha256.Sum256(nil)

// checkpointBody is the body of a C2SP tlog-checkpoint.
//
// This witness is strict: the body must be exactly three lines (origin,
// size in canonical decimal, base64 of a 32-byte root). Checkpoints with
// extension lines are refused, so a (size, root) pair has exactly one body
// and the witness never cosigns data it does not understand.
type checkpointBody struct {
	Origin string
	Size   uint64
	Root   [32]byte
}

// Marshal returns the checkpoint body, the text a log signs.
func (c checkpointBody) Marshal() []byte {
	return fmt.Appendf(nil, "%s\n%d\n%s\n", c.Origin, c.Size, base64.StdEncoding.EncodeToString(c.Root[:]))
}

// parseCheckpointBody parses a checkpoint body (the note text, ending in a
// newline) strictly: see [checkpointBody].
func parseCheckpointBody(text string) (checkpointBody, error) {
	var c checkpointBody
	lines := strings.Split(text, "\n")
	if len(lines) < 4 || lines[len(lines)-1] != "" {
		return c, errors.New("checkpoint body must be three lines (origin, size, root hash), each ending in a newline")
	}
	if len(lines) > 4 {
		return c, errors.New("checkpoint has extension lines after the root hash; this witness only cosigns checkpoints without them")
	}
	if err := checkOrigin(lines[0]); err != nil {
		return c, fmt.Errorf("checkpoint origin: %w", err)
	}
	c.Origin = lines[0]
	size, err := parseDecimal(lines[1])
	if err != nil {
		return c, fmt.Errorf("checkpoint size: %w", err)
	}
	c.Size = size
	root, err := decodeHash(lines[2])
	if err != nil {
		return c, fmt.Errorf("checkpoint root hash: %w", err)
	}
	c.Root = root
	return c, nil
}

// signedCheckpoint is a checkpoint signed note as received, not yet
// verified against any key.
type signedCheckpoint struct {
	checkpointBody
	// Text is the note body (what signatures cover).
	Text string
	// Sigs are the note's signature lines, none verified.
	Sigs []note.Signature
	// Raw is the whole signed note.
	Raw []byte
}

// parseSignedCheckpoint parses a C2SP signed note holding a checkpoint,
// without verifying any signature. It checks the note's structure (UTF-8,
// a blank line before the signature lines, well-formed signature lines, at
// most 100 signatures) and the body strictly (see [checkpointBody]).
func parseSignedCheckpoint(raw []byte) (*signedCheckpoint, error) {
	_, err := note.Open(raw, note.VerifierList())
	var unverified *note.UnverifiedNoteError
	if !errors.As(err, &unverified) {
		if err == nil {
			err = errors.New("unexpected verified signature")
		}
		return nil, fmt.Errorf("checkpoint is not a well-formed signed note (body, blank line, then lines of \"— <name> <base64>\"): %v", err)
	}
	n := unverified.Note
	c, err := parseCheckpointBody(n.Text)
	if err != nil {
		return nil, err
	}
	return &signedCheckpoint{checkpointBody: c, Text: n.Text, Sigs: n.UnverifiedSigs, Raw: raw}, nil
}

// monitoringID is the C2SP tlog-witness monitoring path component for an
// origin: lowercase hex SHA-256 of the origin. It is not formats/log.ID.
func monitoringID(origin string) string {
	h := sha256.Sum256([]byte(origin))
	return hex.EncodeToString(h[:])
}

// checkOrigin checks that s can be a checkpoint origin: non-empty, valid
// UTF-8 without control characters, no spaces or '+' (origins double as key
// names).
func checkOrigin(s string) error {
	if s == "" {
		return errors.New("empty")
	}
	if len(s) > 1024 {
		return errors.New("longer than 1024 bytes")
	}
	if !utf8.ValidString(s) || strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return fmt.Errorf("%q is not valid UTF-8 text without control characters", truncate(s))
	}
	if strings.ContainsFunc(s, unicode.IsSpace) || strings.Contains(s, "+") {
		return fmt.Errorf("%q contains a space or '+'", truncate(s))
	}
	return nil
}

// parseDecimal parses a canonical unsigned decimal: no sign, no leading
// zeros (except "0" itself), fits in 63 bits.
func parseDecimal(s string) (uint64, error) {
	if s == "" {
		return 0, errors.New("empty number")
	}
	if len(s) > 1 && s[0] == '0' {
		return 0, fmt.Errorf("%q has leading zeros", s)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("%q is not a decimal number", s)
		}
	}
	v, err := strconv.ParseUint(s, 10, 63)
	if err != nil {
		return 0, fmt.Errorf("%q is out of range", s)
	}
	return v, nil
}

// decodeHash decodes canonical padded standard base64 of exactly 32 bytes.
func decodeHash(s string) ([32]byte, error) {
	var h [32]byte
	if len(s) != 44 {
		return h, fmt.Errorf("%q is not base64 of 32 bytes", truncate(s))
	}
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil || len(b) != 32 {
		return h, fmt.Errorf("%q is not base64 of 32 bytes", truncate(s))
	}
	copy(h[:], b)
	return h, nil
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// appendSignatureLines appends signature lines as they appear in a note.
func appendSignatureLines(b []byte, sigs []note.Signature) []byte {
	for _, s := range sigs {
		b = append(b, "— "...)
		b = append(b, s.Name...)
		b = append(b, ' ')
		b = append(b, s.Base64...)
		b = append(b, '\n')
	}
	return b
}

// verify checks c's signatures against known exactly as note.Open does
// (signatures by unknown keys are skipped, a second one by the same key is
// ignored, one by a known key that fails is an *note.InvalidSignatureError,
// none by a known key is an *note.UnverifiedNoteError) without parsing
// the note again, and returns the verified signatures.
func (c *signedCheckpoint) verify(known note.Verifiers) ([]note.Signature, error) {
	var verified []note.Signature
	type nameHash struct {
		name string
		hash uint32
	}
	var seen []nameHash
	for _, s := range c.Sigs {
		v, err := known.Verifier(s.Name, s.Hash)
		if _, ok := err.(*note.UnknownVerifierError); ok {
			continue
		}
		if err != nil {
			return nil, err
		}
		if v.Name() != s.Name || v.KeyHash() != s.Hash {
			return nil, errors.New("internal error: verifier name or hash doesn't match signature")
		}
		if slices.Contains(seen, nameHash{s.Name, s.Hash}) {
			continue
		}
		seen = append(seen, nameHash{s.Name, s.Hash})
		raw, err := base64.StdEncoding.DecodeString(s.Base64)
		if err != nil || len(raw) < 5 { // parseSignedCheckpoint checked it
			return nil, fmt.Errorf("signature by %s is malformed", s.Name)
		}
		if !v.Verify([]byte(c.Text), raw[4:]) {
			return nil, &note.InvalidSignatureError{Name: s.Name, Hash: s.Hash}
		}
		verified = append(verified, s)
	}
	if len(verified) == 0 {
		return nil, &note.UnverifiedNoteError{Note: &note.Note{Text: c.Text, UnverifiedSigs: c.Sigs}}
	}
	return verified, nil
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
