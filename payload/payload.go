// Package payload encodes and decodes payload v1, the bytes a Stele leaf's
// payload digest commits to: the event's raw record exactly as the source
// produced it, plus the normalised view derived from it.
//
// The encoding is deterministic and strict: every byte string has exactly
// one valid decoding and re-encoding a decoded payload yields the same
// bytes. The layout is documented in docs/leaf-v1.md; v1 is frozen, and any
// change to it requires a new version byte.
//
// Payload v1 layout (all integers big-endian, no padding):
//
//	version     1 byte   0x01
//	format      u8 length (1..64) + bytes, see ValidateFormat
//	record      u32 length (>= 1) + bytes
//	normalized  u32 length (>= 0) + bytes
//
// No bytes may follow the normalized field.
package payload

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Version1 is the version byte that opens every payload v1 encoding.
const Version1 = 0x01

// MaxFormatLen is the maximum length of a format name in bytes.
const MaxFormatLen = 64

// Payload is a decoded payload v1.
type Payload struct {
	// Format names the raw record's format, e.g. "entra.directoryAudit".
	// It must satisfy ValidateFormat.
	Format string
	// Record is the raw record exactly as the source produced it. It must
	// not be empty.
	Record []byte
	// Normalized is the normalised view derived from Record. It may be
	// empty; Unmarshal returns nil when it is.
	Normalized []byte
}

// ValidateFormat reports whether s is a valid format name: 1 to 64 bytes
// drawn from [A-Za-z0-9._-], the first of which is a letter.
//
// Upper-case letters are allowed so that format names can follow the
// upstream resource type's spelling (e.g. "entra.directoryAudit"); format
// names are compared byte for byte, so "a.B" and "a.b" are distinct.
func ValidateFormat(s string) error {
	if err := validateFormat(s); err != nil {
		return fmt.Errorf("payload: format: %w", err)
	}
	return nil
}

func validateFormat(s string) error {
	if len(s) == 0 {
		return errors.New("empty")
	}
	if len(s) > MaxFormatLen {
		return fmt.Errorf("length %d exceeds %d bytes", len(s), MaxFormatLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case i == 0:
			return fmt.Errorf("must start with a letter, got %s", describeByte(c))
		case c >= '0' && c <= '9', c == '.', c == '_', c == '-':
		default:
			return fmt.Errorf("invalid character %s at index %d", describeByte(c), i)
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

// Marshal validates p and returns its payload v1 encoding. Errors name the
// offending field.
func (p *Payload) Marshal() ([]byte, error) {
	if err := validateFormat(p.Format); err != nil {
		return nil, fmt.Errorf("payload: format: %w", err)
	}
	if len(p.Record) == 0 {
		return nil, errors.New("payload: record: empty")
	}
	if uint64(len(p.Record)) > math.MaxUint32 {
		return nil, fmt.Errorf("payload: record: length %d exceeds %d bytes", len(p.Record), uint64(math.MaxUint32))
	}
	if uint64(len(p.Normalized)) > math.MaxUint32 {
		return nil, fmt.Errorf("payload: normalized: length %d exceeds %d bytes", len(p.Normalized), uint64(math.MaxUint32))
	}
	b := make([]byte, 0, 1+1+len(p.Format)+4+len(p.Record)+4+len(p.Normalized))
	b = append(b, Version1)
	b = append(b, byte(len(p.Format)))
	b = append(b, p.Format...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(p.Record)))
	b = append(b, p.Record...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(p.Normalized)))
	b = append(b, p.Normalized...)
	return b, nil
}

// Unmarshal strictly decodes a payload v1 encoding. It rejects an unknown
// version, truncated input, zero or over-long lengths, invalid format names
// and trailing bytes; errors name the field and the byte offset at which
// the field starts. Record and Normalized are copies, not aliases of b.
func Unmarshal(b []byte) (*Payload, error) { return unmarshal(b, false) }

// UnmarshalAliased is Unmarshal for a caller that owns b and never changes
// it: Record and Normalized are slices of b instead of copies (a reader
// of many payloads, such as GetEvents or the forwarder, saves copying
// every record).
func UnmarshalAliased(b []byte) (*Payload, error) { return unmarshal(b, true) }

func unmarshal(b []byte, alias bool) (*Payload, error) {
	fail := func(field string, off int, format string, args ...any) error {
		return fmt.Errorf("payload: %s at offset %d: %s", field, off, fmt.Sprintf(format, args...))
	}
	need := func(field string, off, n int) error {
		if len(b)-off < n {
			return fail(field, off, "truncated: need %d bytes, have %d", n, len(b)-off)
		}
		return nil
	}

	off := 0
	if err := need("version", off, 1); err != nil {
		return nil, err
	}
	if b[0] != Version1 {
		return nil, fail("version", off, "unsupported version 0x%02x", b[0])
	}
	off++

	// format
	start := off
	if err := need("format", start, 1); err != nil {
		return nil, err
	}
	n := int(b[off])
	off++
	if n == 0 || n > MaxFormatLen {
		return nil, fail("format", start, "length %d out of range 1..%d", n, MaxFormatLen)
	}
	if err := need("format", off, n); err != nil {
		return nil, fail("format", start, "truncated: need %d bytes, have %d", n, len(b)-off)
	}
	format := string(b[off : off+n])
	if err := validateFormat(format); err != nil {
		return nil, fail("format", start, "%v", err)
	}
	off += n

	// record
	start = off
	if err := need("record", start, 4); err != nil {
		return nil, err
	}
	rlen := uint64(binary.BigEndian.Uint32(b[off:]))
	off += 4
	if rlen == 0 {
		return nil, fail("record", start, "length 0, record must not be empty")
	}
	if uint64(len(b)-off) < rlen {
		return nil, fail("record", start, "truncated: need %d bytes, have %d", rlen, len(b)-off)
	}
	record := b[off : off+int(rlen) : off+int(rlen)]
	if !alias {
		record = append([]byte(nil), record...)
	}
	off += int(rlen)

	// normalized
	start = off
	if err := need("normalized", start, 4); err != nil {
		return nil, err
	}
	nlen := uint64(binary.BigEndian.Uint32(b[off:]))
	off += 4
	if uint64(len(b)-off) < nlen {
		return nil, fail("normalized", start, "truncated: need %d bytes, have %d", nlen, len(b)-off)
	}
	var normalized []byte
	if nlen > 0 {
		normalized = b[off : off+int(nlen) : off+int(nlen)]
		if !alias {
			normalized = append([]byte(nil), normalized...)
		}
	}
	off += int(nlen)

	if off != len(b) {
		return nil, fail("trailing data", off, "%d unexpected bytes after normalized", len(b)-off)
	}
	return &Payload{Format: format, Record: record, Normalized: normalized}, nil
}
