// Package jsonappend encodes JSON by appending to a byte slice, in one
// pass, with exactly the bytes encoding/json gives for the same values:
// for code that renders a JSON document per record at high rates (the
// forwarder), where encoding/json's reflection and maps were most of the
// cost. The tests compare every function with encoding/json.
package jsonappend

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"unicode/utf8"
)

// safe[b] (ASCII b) needs no escape in a JSON string; html[b] is true for
// the three characters HTML escaping adds.
var safe, html [utf8.RuneSelf]bool

func init() {
	for b := 0x20; b < utf8.RuneSelf; b++ {
		safe[b] = b != '"' && b != '\\'
	}
	html['<'], html['>'], html['&'] = true, true, true
}

const hexDigits = "0123456789abcdef"

// String appends s as a JSON string exactly as encoding/json does: \b \f
// \n \r \t \" \\ as short escapes, other control characters as \u00XX,
// invalid UTF-8 as \ufffd, U+2028 and U+2029 escaped, and with escapeHTML
// < > & as \u003c \u003e \u0026 (json.Marshal's default;
// Encoder.SetEscapeHTML(false) turns it off).
func String[S []byte | string](dst []byte, s S, escapeHTML bool) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		// Skip eight plain bytes at a time: most text needs no escape.
		for i+8 <= len(s) && plain8(load8(s, i), escapeHTML) {
			i += 8
		}
		if i >= len(s) {
			break
		}
		if b := s[i]; b < utf8.RuneSelf {
			if safe[b] && !(escapeHTML && html[b]) {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		n := min(len(s)-i, utf8.UTFMax)
		c, size := utf8.DecodeRuneInString(string(s[i : i+n]))
		if c == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if c == '\u2028' || c == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[c&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// load8 reads s[i:i+8] as a little-endian word.
func load8[S []byte | string](s S, i int) uint64 {
	_ = s[i+7]
	return uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
		uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
}

// hasZero reports exactly whether a byte of x is zero: (x&m)+m sets a
// byte's high bit iff its low seven bits are not all zero (no carry
// leaves the byte), x's own high bit covers the rest.
func hasZero(x uint64) bool {
	const m = 0x7f7f7f7f7f7f7f7f
	t := (x & m) + m
	return ^(t | x | m) != 0
}

// plain8 reports whether the eight bytes of w are ASCII that needs no
// escape in a JSON string: no control character, '"', '\\' nor (with
// escapeHTML) '<', '>', '&'.
func plain8(w uint64, escapeHTML bool) bool {
	if w&msb != 0 {
		return false
	}
	// A byte below 0x20: adding 0x60 leaves its high bit clear (bytes are
	// all < 0x80 here, so no carry crosses bytes).
	if ^(w+lsb*0x60)&msb != 0 {
		return false
	}
	if hasZero(w^(lsb*'"')) || hasZero(w^(lsb*'\\')) {
		return false
	}
	return !escapeHTML || !(hasZero(w^(lsb*'<')) || hasZero(w^(lsb*'>')) || hasZero(w^(lsb*'&')))
}

// Compact appends valid JSON src with the whitespace outside strings
// removed and, with escapeHTML, < > & U+2028 U+2029 escaped: what
// encoding/json writes for a json.RawMessage member (json.Marshal: with
// escapeHTML; an Encoder with SetEscapeHTML(false): without). Unlike
// encoding/json it does not validate src: give it JSON this program
// produced. Without escapeHTML, dst may be src[:0] (compacting in place).
func Compact(dst, src []byte, escapeHTML bool) []byte {
	if escapeHTML {
		return compactHTML(dst, src)
	}
	start := 0
	for i := 0; i < len(src); i++ {
		switch src[i] {
		case '"':
			// Jump to the closing quote: one not preceded by an odd
			// number of backslashes.
			j := i + 1
			for {
				k := bytes.IndexByte(src[j:], '"')
				if k < 0 {
					return append(dst, src[start:]...)
				}
				j += k
				n := 0
				for p := j - 1; p > i && src[p] == '\\'; p-- {
					n++
				}
				if n%2 == 0 {
					break
				}
				j++
			}
			i = j
		case ' ', '\t', '\n', '\r':
			dst = append(dst, src[start:i]...)
			start = i + 1
		}
	}
	return append(dst, src[start:]...)
}

// compactHTML is Compact with < > & U+2028 U+2029 escaped: compacted
// first, then escaped (in valid JSON those characters are only in
// strings, which compacting leaves alone), eight bytes at a time where
// none is there.
func compactHTML(dst, src []byte) []byte {
	src = Compact(make([]byte, 0, len(src)), src, false)
	start := 0
	for i := 0; i < len(src); {
		for i+8 <= len(src) && noHTML8(load8(src, i)) {
			i += 8
		}
		if i >= len(src) {
			break
		}
		c := src[i]
		switch {
		case c == '<' || c == '>' || c == '&':
			dst = append(dst, src[start:i]...)
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			i++
			start = i
		case c == 0xE2 && i+2 < len(src) && src[i+1] == 0x80 && src[i+2]&^1 == 0xA8:
			dst = append(dst, src[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[src[i+2]&0xF])
			i += 3
			start = i
		default:
			i++
		}
	}
	return append(dst, src[start:]...)
}

// noHTML8 reports whether no byte of w is '<', '>', '&' or 0xE2 (the
// first byte of U+2028 and U+2029).
func noHTML8(w uint64) bool {
	return !hasZero(w^(lsb*'<')) && !hasZero(w^(lsb*'>')) && !hasZero(w^(lsb*'&')) && !hasZero(w^(lsb*0xE2))
}

// Value appends v as json.Marshal encodes it (maps with sorted keys, HTML
// characters escaped). Strings, booleans, integers, []string, []any and
// map[string]any of those are encoded here; other types by encoding/json.
func Value(dst []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case string:
		return String(dst, x, true), nil
	case bool:
		return strconv.AppendBool(dst, x), nil
	case int:
		return strconv.AppendInt(dst, int64(x), 10), nil
	case int32:
		return strconv.AppendInt(dst, int64(x), 10), nil
	case int64:
		return strconv.AppendInt(dst, x, 10), nil
	case uint64:
		return strconv.AppendUint(dst, x, 10), nil
	case []string:
		if x == nil {
			return append(dst, "null"...), nil
		}
		dst = append(dst, '[')
		for i, s := range x {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = String(dst, s, true)
		}
		return append(dst, ']'), nil
	case []any:
		if x == nil {
			return append(dst, "null"...), nil
		}
		dst = append(dst, '[')
		for i, e := range x {
			if i > 0 {
				dst = append(dst, ',')
			}
			var err error
			if dst, err = Value(dst, e); err != nil {
				return nil, err
			}
		}
		return append(dst, ']'), nil
	case map[string]any:
		if x == nil {
			return append(dst, "null"...), nil
		}
		var arr [32]string
		keys := arr[:0]
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		dst = append(dst, '{')
		for i, k := range keys {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = String(dst, k, true)
			dst = append(dst, ':')
			var err error
			if dst, err = Value(dst, x[k]); err != nil {
				return nil, err
			}
		}
		return append(dst, '}'), nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("jsonappend: %T: %w", v, err)
	}
	return append(dst, b...), nil
}
