package identity

import (
	"encoding/json"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
)

// scanValue is the decoder's fast path: one pass over the bytes of a record
// that builds exactly the tree readValue (the jsontext decoder) builds —
// the same nil, bool, string, json.Number, []any and map[string]any values
// — without jsontext's token state machine. It checks the same things:
// RFC 8259 grammar, UTF-8 text (raw and escaped, so no lone surrogates),
// no name twice in one object, nothing after the value but whitespace.
//
// It never words an error: ok is false for anything it does not accept,
// and decodeValue then runs the jsontext decoder, which refuses the record
// with its precise message (or, for what scanValue leaves to it on purpose,
// such as nesting deeper than maxScanDepth, reads it). So a refusal reads
// the same as before, and a record scanValue accepts must decode to the
// same tree under readValue: TestDecodeDifferential and
// FuzzDecodeDifferential hold it to that.
func scanValue(record []byte) (v any, ok bool) {
	s := scanner{b: record}
	v, ok = s.value()
	if !ok {
		return nil, false
	}
	s.ws()
	return v, s.i == len(s.b)
}

// maxScanDepth bounds the fast path's recursion; deeper records go to the
// jsontext decoder (whose own limit is 10,000).
const maxScanDepth = 256

type scanner struct {
	b     []byte
	i     int
	depth int
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) value() (any, bool) {
	s.ws()
	if s.i >= len(s.b) {
		return nil, false
	}
	switch c := s.b[s.i]; c {
	case '{':
		return s.object()
	case '[':
		return s.array()
	case '"':
		raw, ok := s.str()
		if !ok {
			return nil, false
		}
		str, err := jsonString(raw)
		return str, err == nil
	case 't':
		return true, s.literal("true")
	case 'f':
		return false, s.literal("false")
	case 'n':
		return nil, s.literal("null")
	default:
		if c == '-' || c >= '0' && c <= '9' {
			return s.number()
		}
	}
	return nil, false
}

func (s *scanner) literal(lit string) bool {
	if len(s.b)-s.i < len(lit) || string(s.b[s.i:s.i+len(lit)]) != lit {
		return false
	}
	s.i += len(lit)
	return true
}

// number reads -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? as its text.
func (s *scanner) number() (any, bool) {
	b, start := s.b, s.i
	i := s.i
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		return nil, false
	}
	if i < len(b) && b[i] == '.' {
		i++
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			return nil, false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			return nil, false
		}
	}
	s.i = i
	return json.Number(b[start:i]), true
}

// str reads a string literal, quotes included, and checks it: no raw
// control characters, valid UTF-8, and (when it has escapes) escapes that
// unquote without error, which refuses bad escapes and lone surrogates.
func (s *scanner) str() (jsontext.Value, bool) {
	b, start := s.b, s.i
	i := s.i + 1
	escaped := false
	for ; i < len(b); i++ {
		c := b[i]
		if c == '"' {
			break
		}
		if c < 0x20 {
			return nil, false
		}
		if c == '\\' {
			escaped = true
			i++ // the escaped byte cannot end the string
		}
	}
	if i >= len(b) {
		return nil, false
	}
	raw := jsontext.Value(b[start : i+1])
	if !utf8.Valid(raw) {
		return nil, false
	}
	if escaped {
		if _, err := jsontext.AppendUnquote(nil, raw); err != nil {
			return nil, false
		}
	}
	s.i = i + 1
	return raw, true
}

func (s *scanner) object() (any, bool) {
	if s.depth++; s.depth > maxScanDepth {
		return nil, false
	}
	defer func() { s.depth-- }()
	s.i++ // {
	m := make(map[string]any)
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == '}' {
		s.i++
		return m, true
	}
	for {
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != '"' {
			return nil, false
		}
		raw, ok := s.str()
		if !ok {
			return nil, false
		}
		name, err := names.of(raw)
		if err != nil {
			return nil, false
		}
		if _, dup := m[name]; dup {
			return nil, false
		}
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return nil, false
		}
		s.i++
		v, ok := s.value()
		if !ok {
			return nil, false
		}
		m[name] = v
		s.ws()
		if s.i >= len(s.b) {
			return nil, false
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case '}':
			s.i++
			return m, true
		default:
			return nil, false
		}
	}
}

func (s *scanner) array() (any, bool) {
	if s.depth++; s.depth > maxScanDepth {
		return nil, false
	}
	defer func() { s.depth-- }()
	s.i++ // [
	a := []any{}
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == ']' {
		s.i++
		return a, true
	}
	for {
		v, ok := s.value()
		if !ok {
			return nil, false
		}
		a = append(a, v)
		s.ws()
		if s.i >= len(s.b) {
			return nil, false
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case ']':
			s.i++
			return a, true
		default:
			return nil, false
		}
	}
}
