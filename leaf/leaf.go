// Package leaf encodes and decodes leaf v1, the entry Stele appends to its
// transparency log for every admitted identity event.
//
// A leaf holds no personal data: it names the event (source, sequence
// number, upstream id, kind, times) and commits to the event's payload (see
// package payload) through a salted digest. The encoding is deterministic
// and strict: the stored bytes are what the log hashes, verifiers decode
// them but never re-encode, and every byte string has at most one valid
// decoding, whose re-encoding is exactly that byte string.
//
// Leaf v1 layout (all integers big-endian, no padding):
//
//	version         1 byte   0x01
//	source          u8 length (1..255) + bytes, see ValidateSource
//	source_seq      u64
//	event_id        u16 length (1..1024) + bytes, see ValidateEventID
//	kind            u8 length (1..128) + bytes, see ValidateKind
//	event_time      i64 Unix nanoseconds, >= 0
//	admitted_time   i64 Unix nanoseconds, >= 0
//	payload_digest  32 bytes, see Digest
//	payload_size    u32
//	signature_type  1 byte: 0x00 none, 0x01 Ed25519
//	  if 0x01:      32-byte public key, then 64-byte signature
//
// No bytes may follow the signature section. The full specification, with
// test vectors, is docs/leaf-v1.md. v1 is frozen: any change to the
// encoding requires a new version byte.
package leaf

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
	"unicode/utf8"

	"github.com/stele-dev/stele/payload"
)

// Version1 is the version byte that opens every leaf v1 encoding.
const Version1 = 0x01

// DigestTag is the domain-separation tag prefixed to the salt and payload
// when computing a leaf's payload digest. It ends in a NUL byte.
const DigestTag = "stele/payload/v1\x00"

// SaltSize is the size in bytes of the random salt of a payload digest.
const SaltSize = 32

// producerTag opens every producer-signature message.
const producerTag = "stele/producer-signature/v1\n"

// Signature type bytes of the signature section.
const (
	sigTypeNone    = 0x00
	sigTypeEd25519 = 0x01
)

// Field limits.
const (
	maxSourceLen  = 255
	maxEventIDLen = 1024
	maxKindLen    = 128
)

// Signature is an Ed25519 producer signature over ProducerMessage.
type Signature struct {
	// PublicKey is the producer's Ed25519 public key (32 bytes).
	PublicKey ed25519.PublicKey
	// Sig is the Ed25519 signature (64 bytes).
	Sig []byte
}

// KeyID names the signing key: the standard base64 of the public key, the
// form an access policy lists it in (docs/security.md).
func (s *Signature) KeyID() string { return base64.StdEncoding.EncodeToString(s.PublicKey) }

// Leaf is a decoded leaf v1.
type Leaf struct {
	// Source is the stream the producer is authorised for, e.g.
	// "entra/<tenant-id>/audit". See ValidateSource.
	Source string
	// SourceSeq is the producer's sequence number in Source; 0 if none.
	SourceSeq uint64
	// EventID is the upstream id of the event; (Source, EventID) is the
	// dedup key. See ValidateEventID.
	EventID string
	// Kind is the normalised kind, e.g. "directory.role.member.add". See
	// ValidateKind.
	Kind string
	// EventTime is when the event happened, as the source says. It is
	// encoded with nanosecond precision and must not be before 1970.
	EventTime time.Time
	// AdmittedTime is when the log admitted the event, by the server's
	// clock. It is encoded with nanosecond precision and must not be
	// before 1970.
	AdmittedTime time.Time
	// PayloadDigest is Digest(salt, payload bytes).
	PayloadDigest [32]byte
	// PayloadSize is the length of the payload bytes.
	PayloadSize uint32
	// Signature is the optional producer signature; nil means none.
	Signature *Signature
}

// ValidateSource reports whether s is a valid source: 1 to 255 bytes of
// '/'-separated segments drawn from [A-Za-z0-9._:@-], with no empty
// segment (so no leading, trailing or doubled '/') and no "." or ".."
// segment.
func ValidateSource(s string) error {
	if err := validateSource(s); err != nil {
		return fmt.Errorf("leaf: source: %w", err)
	}
	return nil
}

func validateSource(s string) error {
	if len(s) == 0 {
		return errors.New("empty")
	}
	if len(s) > maxSourceLen {
		return fmt.Errorf("length %d exceeds %d bytes", len(s), maxSourceLen)
	}
	segStart := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '/' {
			seg := s[segStart:i]
			switch seg {
			case "":
				return fmt.Errorf("empty segment at index %d", segStart)
			case ".", "..":
				return fmt.Errorf("%q segment at index %d", seg, segStart)
			}
			segStart = i + 1
			continue
		}
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9',
			c == '.', c == '_', c == ':', c == '@', c == '-':
		default:
			return fmt.Errorf("invalid character %s at index %d", describeByte(c), i)
		}
	}
	return nil
}

// ValidateKind reports whether s is a valid kind: 1 to 128 bytes drawn
// from [a-z0-9._-], starting with a letter, with no empty dot-separated
// segment (so no trailing '.' and no "..").
func ValidateKind(s string) error {
	if err := validateKind(s); err != nil {
		return fmt.Errorf("leaf: kind: %w", err)
	}
	return nil
}

func validateKind(s string) error {
	if len(s) == 0 {
		return errors.New("empty")
	}
	if len(s) > maxKindLen {
		return fmt.Errorf("length %d exceeds %d bytes", len(s), maxKindLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z':
		case i == 0:
			return fmt.Errorf("must start with a lower-case letter, got %s", describeByte(c))
		case c >= '0' && c <= '9', c == '_', c == '-':
		case c == '.':
			if i == len(s)-1 || s[i+1] == '.' {
				return fmt.Errorf("empty segment after '.' at index %d", i)
			}
		default:
			return fmt.Errorf("invalid character %s at index %d", describeByte(c), i)
		}
	}
	return nil
}

// ValidateEventID reports whether s is a valid event id: 1 to 1024 bytes
// of valid UTF-8 containing no control character (U+0000..U+001F, U+007F,
// U+0080..U+009F).
func ValidateEventID(s string) error {
	if err := validateEventID(s); err != nil {
		return fmt.Errorf("leaf: event_id: %w", err)
	}
	return nil
}

func validateEventID(s string) error {
	if len(s) == 0 {
		return errors.New("empty")
	}
	if len(s) > maxEventIDLen {
		return fmt.Errorf("length %d exceeds %d bytes", len(s), maxEventIDLen)
	}
	for i, r := range s {
		if r == utf8.RuneError {
			if _, size := utf8.DecodeRuneInString(s[i:]); size == 1 {
				return fmt.Errorf("invalid UTF-8 at index %d", i)
			}
		}
		if r < 0x20 || (r >= 0x7f && r <= 0x9f) {
			return fmt.Errorf("control character %U at index %d", r, i)
		}
	}
	return nil
}

// describeByte renders c for an error message: printable ASCII quoted,
// anything else in hex.
func describeByte(c byte) string {
	if c >= 0x20 && c < 0x7f {
		return fmt.Sprintf("%q", c)
	}
	return fmt.Sprintf("0x%02x", c)
}

// maxTime is the latest instant whose Unix nanoseconds fit in an int64.
var maxTime = time.Unix(0, math.MaxInt64)

// unixNanos converts t to Unix nanoseconds, rejecting instants before
// 1970 and after 2262-04-11T23:47:16.854775807Z.
func unixNanos(t time.Time) (int64, error) {
	if t.Before(time.Unix(0, 0)) {
		return 0, fmt.Errorf("%s is before 1970-01-01T00:00:00Z", t.UTC().Format(time.RFC3339Nano))
	}
	if t.After(maxTime) {
		return 0, fmt.Errorf("%s is after %s", t.UTC().Format(time.RFC3339Nano), maxTime.UTC().Format(time.RFC3339Nano))
	}
	return t.UnixNano(), nil
}

// Marshal validates every field of l and returns its leaf v1 encoding.
// Errors name the offending field.
func (l *Leaf) Marshal() ([]byte, error) {
	if err := validateSource(l.Source); err != nil {
		return nil, fmt.Errorf("leaf: source: %w", err)
	}
	if err := validateEventID(l.EventID); err != nil {
		return nil, fmt.Errorf("leaf: event_id: %w", err)
	}
	if err := validateKind(l.Kind); err != nil {
		return nil, fmt.Errorf("leaf: kind: %w", err)
	}
	eventTime, err := unixNanos(l.EventTime)
	if err != nil {
		return nil, fmt.Errorf("leaf: event_time: %w", err)
	}
	admittedTime, err := unixNanos(l.AdmittedTime)
	if err != nil {
		return nil, fmt.Errorf("leaf: admitted_time: %w", err)
	}
	if s := l.Signature; s != nil {
		if len(s.PublicKey) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("leaf: signature_public_key: length %d, want %d", len(s.PublicKey), ed25519.PublicKeySize)
		}
		if len(s.Sig) != ed25519.SignatureSize {
			return nil, fmt.Errorf("leaf: signature: length %d, want %d", len(s.Sig), ed25519.SignatureSize)
		}
	}

	size := 1 + 1 + len(l.Source) + 8 + 2 + len(l.EventID) + 1 + len(l.Kind) + 8 + 8 + 32 + 4 + 1
	if l.Signature != nil {
		size += ed25519.PublicKeySize + ed25519.SignatureSize
	}
	b := make([]byte, 0, size)
	b = append(b, Version1)
	b = append(b, byte(len(l.Source)))
	b = append(b, l.Source...)
	b = binary.BigEndian.AppendUint64(b, l.SourceSeq)
	b = binary.BigEndian.AppendUint16(b, uint16(len(l.EventID)))
	b = append(b, l.EventID...)
	b = append(b, byte(len(l.Kind)))
	b = append(b, l.Kind...)
	b = binary.BigEndian.AppendUint64(b, uint64(eventTime))
	b = binary.BigEndian.AppendUint64(b, uint64(admittedTime))
	b = append(b, l.PayloadDigest[:]...)
	b = binary.BigEndian.AppendUint32(b, l.PayloadSize)
	if l.Signature == nil {
		b = append(b, sigTypeNone)
	} else {
		b = append(b, sigTypeEd25519)
		b = append(b, l.Signature.PublicKey...)
		b = append(b, l.Signature.Sig...)
	}
	return b, nil
}

// decoder reads leaf fields, producing errors that name the field and the
// byte offset at which it starts.
type decoder struct {
	b   []byte
	off int
	// s is b as a string, made on first use: the text fields are
	// substrings of it, one allocation for all three.
	s string
}

func (d *decoder) errorf(field string, off int, format string, args ...any) error {
	return fmt.Errorf("leaf: %s at offset %d: %s", field, off, fmt.Sprintf(format, args...))
}

// take returns the next n bytes; start is the offset reported on error.
func (d *decoder) take(field string, start, n int) ([]byte, error) {
	if len(d.b)-d.off < n {
		return nil, d.errorf(field, start, "truncated: need %d bytes, have %d", n, len(d.b)-d.off)
	}
	p := d.b[d.off : d.off+n]
	d.off += n
	return p, nil
}

// lenPrefixed reads a length prefix of width 1 or 2 bytes followed by that
// many bytes, enforcing 1 <= length <= max.
func (d *decoder) lenPrefixed(field string, width, max int) (string, int, error) {
	start := d.off
	p, err := d.take(field, start, width)
	if err != nil {
		return "", start, err
	}
	n := int(p[0])
	if width == 2 {
		n = int(binary.BigEndian.Uint16(p))
	}
	if n == 0 || n > max {
		return "", start, d.errorf(field, start, "length %d out of range 1..%d", n, max)
	}
	if _, err := d.take(field, start, n); err != nil {
		return "", start, err
	}
	if d.s == "" {
		d.s = string(d.b)
	}
	return d.s[d.off-n : d.off], start, nil
}

func (d *decoder) time(field string) (time.Time, error) {
	start := d.off
	p, err := d.take(field, start, 8)
	if err != nil {
		return time.Time{}, err
	}
	n := int64(binary.BigEndian.Uint64(p))
	if n < 0 {
		return time.Time{}, d.errorf(field, start, "negative time %d", n)
	}
	return time.Unix(0, n).UTC(), nil
}

// Unmarshal strictly decodes a leaf v1 encoding. It rejects an unknown
// version, truncated input, zero or over-long lengths, invalid field
// contents, negative times, unknown signature types and trailing bytes.
// Errors name the field and the byte offset at which the field starts.
// Times are returned in UTC.
func Unmarshal(b []byte) (*Leaf, error) {
	l := &Leaf{}
	if err := l.UnmarshalBinary(b); err != nil {
		return nil, err
	}
	return l, nil
}

// UnmarshalBinary is Unmarshal into l, for a caller that decodes many
// leaves into memory it holds (a slice of Leaf). On error l is left zero.
// The text fields share one copy of b; nothing refers to b afterwards.
func (l *Leaf) UnmarshalBinary(b []byte) error {
	*l = Leaf{}
	if err := l.unmarshal(b); err != nil {
		*l = Leaf{}
		return err
	}
	return nil
}

func (l *Leaf) unmarshal(b []byte) error {
	d := &decoder{b: b}
	p, err := d.take("version", 0, 1)
	if err != nil {
		return err
	}
	if p[0] != Version1 {
		return d.errorf("version", 0, "unsupported version 0x%02x", p[0])
	}

	var start int
	if l.Source, start, err = d.lenPrefixed("source", 1, maxSourceLen); err != nil {
		return err
	}
	if err := validateSource(l.Source); err != nil {
		return d.errorf("source", start, "%v", err)
	}

	if p, err = d.take("source_seq", d.off, 8); err != nil {
		return err
	}
	l.SourceSeq = binary.BigEndian.Uint64(p)

	if l.EventID, start, err = d.lenPrefixed("event_id", 2, maxEventIDLen); err != nil {
		return err
	}
	if err := validateEventID(l.EventID); err != nil {
		return d.errorf("event_id", start, "%v", err)
	}

	if l.Kind, start, err = d.lenPrefixed("kind", 1, maxKindLen); err != nil {
		return err
	}
	if err := validateKind(l.Kind); err != nil {
		return d.errorf("kind", start, "%v", err)
	}

	if l.EventTime, err = d.time("event_time"); err != nil {
		return err
	}
	if l.AdmittedTime, err = d.time("admitted_time"); err != nil {
		return err
	}

	if p, err = d.take("payload_digest", d.off, 32); err != nil {
		return err
	}
	copy(l.PayloadDigest[:], p)

	if p, err = d.take("payload_size", d.off, 4); err != nil {
		return err
	}
	l.PayloadSize = binary.BigEndian.Uint32(p)

	start = d.off
	if p, err = d.take("signature_type", start, 1); err != nil {
		return err
	}
	switch p[0] {
	case sigTypeNone:
	case sigTypeEd25519:
		pk, err := d.take("signature_public_key", d.off, ed25519.PublicKeySize)
		if err != nil {
			return err
		}
		sig, err := d.take("signature", d.off, ed25519.SignatureSize)
		if err != nil {
			return err
		}
		l.Signature = &Signature{
			PublicKey: append(ed25519.PublicKey(nil), pk...),
			Sig:       append([]byte(nil), sig...),
		}
	default:
		return d.errorf("signature_type", start, "unknown producer signature type 0x%02x", p[0])
	}

	if d.off != len(b) {
		return d.errorf("trailing data", d.off, "%d unexpected bytes after signature section", len(b)-d.off)
	}
	return nil
}

// Digest returns the payload digest SHA-256(DigestTag || salt || payload).
// It fails unless len(salt) == SaltSize.
func Digest(salt []byte, payload []byte) ([32]byte, error) {
	if len(salt) != SaltSize {
		return [32]byte{}, fmt.Errorf("leaf: salt is %d bytes, want %d", len(salt), SaltSize)
	}
	h := sha256.New()
	h.Write([]byte(DigestTag))
	h.Write(salt)
	h.Write(payload)
	var d [32]byte
	h.Sum(d[:0])
	return d, nil
}

// NewSalt returns SaltSize fresh random bytes from crypto/rand, for use
// with Digest.
func NewSalt() ([]byte, error) {
	salt := make([]byte, SaltSize)
	if _, err := rand.Read(salt); err != nil {
		return nil, fmt.Errorf("leaf: reading random salt: %w", err)
	}
	return salt, nil
}

// VerifyPayload checks that payload, with salt, matches the leaf's
// payload_size and payload_digest. The error says which of them
// mismatched.
func (l *Leaf) VerifyPayload(salt, payload []byte) error {
	d, err := Digest(salt, payload)
	if err != nil {
		return err
	}
	if uint64(len(payload)) != uint64(l.PayloadSize) {
		return fmt.Errorf("leaf: payload_size mismatch: leaf says %d bytes, payload is %d bytes", l.PayloadSize, len(payload))
	}
	if subtle.ConstantTimeCompare(d[:], l.PayloadDigest[:]) != 1 {
		return fmt.Errorf("leaf: payload_digest mismatch: leaf says %x, payload and salt give %x", l.PayloadDigest[:], d[:])
	}
	return nil
}

// ProducerMessage returns the bytes an Ed25519 producer signature signs:
//
//	"stele/producer-signature/v1\n"
//	u8 len(source)   || source
//	u64 source_seq
//	u16 len(event_id) || event_id
//	u8 len(kind)     || kind
//	i64 event_time (Unix nanoseconds)
//	u8 len(format)   || format
//	SHA-256(record)
//
// with all integers big-endian. It returns nil if any argument could not
// appear in a valid leaf and payload (an invalid source, event id, kind or
// format, an event time outside the encodable range, or an empty record),
// so that no ambiguous message is ever produced.
func ProducerMessage(source string, sourceSeq uint64, eventID, kind string, eventTime time.Time, format string, record []byte) []byte {
	if validateSource(source) != nil || validateEventID(eventID) != nil || validateKind(kind) != nil ||
		payload.ValidateFormat(format) != nil || len(record) == 0 {
		return nil
	}
	t, err := unixNanos(eventTime)
	if err != nil {
		return nil
	}
	h := sha256.Sum256(record)
	b := make([]byte, 0, len(producerTag)+1+len(source)+8+2+len(eventID)+1+len(kind)+8+1+len(format)+sha256.Size)
	b = append(b, producerTag...)
	b = append(b, byte(len(source)))
	b = append(b, source...)
	b = binary.BigEndian.AppendUint64(b, sourceSeq)
	b = binary.BigEndian.AppendUint16(b, uint16(len(eventID)))
	b = append(b, eventID...)
	b = append(b, byte(len(kind)))
	b = append(b, kind...)
	b = binary.BigEndian.AppendUint64(b, uint64(t))
	b = append(b, byte(len(format)))
	b = append(b, format...)
	b = append(b, h[:]...)
	return b
}

// VerifySignature checks the leaf's Ed25519 producer signature over
// ProducerMessage(l.Source, l.SourceSeq, l.EventID, l.Kind, l.EventTime,
// format, record). It fails if the leaf has no signature, if the fields do
// not form a valid message, or if the signature does not verify.
func (l *Leaf) VerifySignature(format string, record []byte) error {
	s := l.Signature
	if s == nil {
		return errors.New("leaf: signature: leaf has no producer signature")
	}
	if len(s.PublicKey) != ed25519.PublicKeySize {
		return fmt.Errorf("leaf: signature_public_key: length %d, want %d", len(s.PublicKey), ed25519.PublicKeySize)
	}
	if len(s.Sig) != ed25519.SignatureSize {
		return fmt.Errorf("leaf: signature: length %d, want %d", len(s.Sig), ed25519.SignatureSize)
	}
	msg := ProducerMessage(l.Source, l.SourceSeq, l.EventID, l.Kind, l.EventTime, format, record)
	if msg == nil {
		return errors.New("leaf: signature: leaf fields, format or record are invalid, no producer message can be formed")
	}
	if !ed25519.Verify(s.PublicKey, msg, s.Sig) {
		return errors.New("leaf: signature: Ed25519 producer signature does not verify")
	}
	return nil
}
