package identity

import (
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
)

// scanValue is the decoder's fast path: one pass over a record that builds
// the value tree (whose toAny is exactly the tree readValue, the jsontext
// decoder, builds) without jsontext's token state machine. It checks the
// same things: RFC 8259 grammar, UTF-8 text (raw and escaped, so no lone
// surrogates), no name twice in one object, nothing after the value but
// whitespace.
//
// It never words an error: ok is false for anything it does not accept,
// and decodeValue then runs the jsontext decoder, which refuses the record
// with its precise message (or, for what scanValue leaves to it on purpose,
// such as nesting deeper than maxScanDepth, reads it). So a refusal reads
// the same as before, and a record scanValue accepts must decode to the
// same tree under readValue: TestDecodeDifferential and
// FuzzDecodeDifferential hold it to that.
//
// The record is copied once into a string; every unescaped string, name
// and number of the tree is a substring of it.
func scanValue(record []byte) (value, bool) { return new(decoder).scan(record) }

// A decoder is the memory a record's tree is built in: the stack where an
// object's members gather until it closes, the slab chunks the members of
// closed objects and arrays are kept in, and a scratch buffer for
// unquoting. Normalize takes one from decoders for each record and puts it
// back when it is done with the tree, so a steady stream of records
// allocates no tree memory at all. Nothing of the tree may outlive that:
// the views it fills hold strings (substrings of the record's one copy),
// never members.
type decoder struct {
	stack  []member
	chunks [][]member
	chunk  int // the chunk members are taken from
	used   int // how much of it is taken
	buf    []byte
	// hint sizes a fresh decoder's first chunk from its first record: an
	// object member has a ':' (so do some strings), an array is guessed at
	// two elements. When it is short, take adds a chunk.
	hint int
}

var decoders = sync.Pool{New: func() any { return new(decoder) }}

// A pooled decoder keeps at most maxPooledMembers members of chunks and
// maxPooledStack of stack: a record of very many members leaves its
// memory to the garbage collector. (What it keeps still points at earlier
// records' text until overwritten: a few records' worth, in process.)
const (
	maxPooledMembers = 4096
	maxPooledStack   = 1024
	firstChunk       = 256
)

// release returns d to decoders; the trees it built must no longer be used.
func (d *decoder) release() {
	d.reset()
	decoders.Put(d)
}

// reset makes d's memory free for the next record; the trees it built
// must no longer be used.
func (d *decoder) reset() {
	d.chunk, d.used = 0, 0
	d.stack = d.stack[:0]
	if cap(d.stack) > maxPooledStack {
		d.stack = nil
	}
	kept := 0
	for i, c := range d.chunks {
		if kept += len(c); kept > maxPooledMembers {
			clear(d.chunks[i:])
			d.chunks = d.chunks[:i]
			break
		}
	}
	if cap(d.buf) > 1<<16 {
		d.buf = nil
	}
}

// scan is the fast path of d.decode (scanValue): the record is copied once
// into a string, and every unescaped string, name and number of the tree
// is a substring of it.
func (d *decoder) scan(record []byte) (value, bool) {
	if !utf8.Valid(record) {
		return value{}, false
	}
	return d.scanText(string(record))
}

// scanString is scan of text held as a string.
func (d *decoder) scanString(text string) (value, bool) {
	if !utf8.ValidString(text) {
		return value{}, false
	}
	return d.scanText(text)
}

// scanText scans text, which is valid UTF-8: a record is checked once as a
// whole, so no string in it need be checked again (outside strings any
// byte that is not ASCII is a grammar error anyway).
func (d *decoder) scanText(text string) (value, bool) {
	if len(d.chunks) == 0 {
		d.hint = strings.Count(text, ":") + 2*strings.Count(text, "[") + 1
	}
	s := scanner{s: text, d: d}
	v, ok := s.value()
	if ok {
		s.ws()
		ok = s.i == len(s.s)
	}
	d.stack = d.stack[:0]
	if !ok {
		return value{}, false
	}
	return v, true
}

// maxScanDepth bounds the fast path's recursion; deeper records go to the
// jsontext decoder (whose own limit is 10,000).
const maxScanDepth = 256

// dupScanMax is the number of members up to which an object's names are
// checked for duplicates by comparing with each earlier one; a larger
// object gets a set, so a record of many names cannot make the check
// quadratic.
const dupScanMax = 32

type scanner struct {
	s     string
	i     int
	depth int
	d     *decoder
}

// take moves ms (the top of the stack) into the slab and returns the copy.
func (d *decoder) take(ms []member) []member {
	n := len(ms)
	if n == 0 {
		return emptyMembers
	}
	for d.chunk < len(d.chunks) && len(d.chunks[d.chunk])-d.used < n {
		d.chunk++
		d.used = 0
	}
	if d.chunk == len(d.chunks) {
		size := firstChunk << min(len(d.chunks), 8)
		if len(d.chunks) == 0 && d.hint > 0 {
			// A fresh decoder's first chunk is sized for its record.
			size = d.hint
		}
		d.chunks = append(d.chunks, make([]member, max(n, size)))
	}
	c := d.chunks[d.chunk]
	out := c[d.used : d.used+n : d.used+n]
	d.used += n
	copy(out, ms)
	return out
}

func (s *scanner) ws() {
	for s.i < len(s.s) {
		switch s.s[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) value() (value, bool) {
	s.ws()
	if s.i >= len(s.s) {
		return value{}, false
	}
	switch c := s.s[s.i]; c {
	case '{':
		return s.object()
	case '[':
		return s.array()
	case '"':
		str, ok := s.str()
		return value{kind: kindString, text: str}, ok
	case 't':
		return value{kind: kindTrue}, s.literal("true")
	case 'f':
		return value{kind: kindFalse}, s.literal("false")
	case 'n':
		return value{}, s.literal("null")
	default:
		if c == '-' || c >= '0' && c <= '9' {
			return s.number()
		}
	}
	return value{}, false
}

func (s *scanner) literal(lit string) bool {
	if len(s.s)-s.i < len(lit) || s.s[s.i:s.i+len(lit)] != lit {
		return false
	}
	s.i += len(lit)
	return true
}

// number reads -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? as its text.
func (s *scanner) number() (value, bool) {
	b, start := s.s, s.i
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
		return value{}, false
	}
	if i < len(b) && b[i] == '.' {
		i++
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			return value{}, false
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
			return value{}, false
		}
	}
	s.i = i
	return value{kind: kindNumber, text: b[start:i]}, true
}

// str reads a string literal and returns its text: a substring of the
// record when it has no escapes, else its unquoting, which refuses bad
// escapes and lone surrogates. Raw control characters are refused; the
// text is UTF-8 already (scanText's precondition).
func (s *scanner) str() (string, bool) {
	b, start := s.s, s.i
	// The common string: no escape before its closing quote, found with
	// IndexByte, then only control characters to refuse.
	if q := strings.IndexByte(b[start+1:], '"'); q >= 0 {
		text := b[start+1 : start+1+q]
		if strings.IndexByte(text, '\\') < 0 {
			for j := 0; j < len(text); j++ {
				if text[j] < 0x20 {
					return "", false
				}
			}
			s.i = start + q + 2
			return text, true
		}
	}
	i := s.i + 1
	escaped := false
	for ; i < len(b); i++ {
		c := b[i]
		if c == '"' {
			break
		}
		if c < 0x20 {
			return "", false
		}
		if c == '\\' {
			escaped = true
			i++ // the escaped byte cannot end the string
		}
	}
	if i >= len(b) {
		return "", false
	}
	s.i = i + 1
	if !escaped {
		return b[start+1 : i], true
	}
	u, err := jsontext.AppendUnquote(s.d.buf[:0], b[start:i+1])
	s.d.buf = u
	if err != nil {
		return "", false
	}
	return string(u), true
}

func (s *scanner) object() (value, bool) {
	if s.depth++; s.depth > maxScanDepth {
		return value{}, false
	}
	defer func() { s.depth-- }()
	s.i++ // {
	s.ws()
	if s.i < len(s.s) && s.s[s.i] == '}' {
		s.i++
		return value{kind: kindObject, members: emptyMembers}, true
	}
	start := len(s.d.stack)
	var seen map[string]struct{} // the names, once there are many
	for {
		s.ws()
		if s.i >= len(s.s) || s.s[s.i] != '"' {
			return value{}, false
		}
		name, ok := s.str()
		if !ok {
			return value{}, false
		}
		if seen != nil {
			if _, dup := seen[name]; dup {
				return value{}, false
			}
			seen[name] = struct{}{}
		} else {
			for j := start; j < len(s.d.stack); j++ {
				if s.d.stack[j].name == name {
					return value{}, false
				}
			}
			if len(s.d.stack)-start >= dupScanMax {
				seen = make(map[string]struct{}, 2*dupScanMax)
				for _, m := range s.d.stack[start:] {
					seen[m.name] = struct{}{}
				}
				seen[name] = struct{}{}
			}
		}
		s.ws()
		if s.i >= len(s.s) || s.s[s.i] != ':' {
			return value{}, false
		}
		s.i++
		v, ok := s.value()
		if !ok {
			return value{}, false
		}
		s.d.stack = append(s.d.stack, member{name: name, v: v})
		s.ws()
		if s.i >= len(s.s) {
			return value{}, false
		}
		switch s.s[s.i] {
		case ',':
			s.i++
		case '}':
			s.i++
			ms := s.d.take(s.d.stack[start:])
			s.d.stack = s.d.stack[:start]
			return value{kind: kindObject, members: ms}, true
		default:
			return value{}, false
		}
	}
}

func (s *scanner) array() (value, bool) {
	if s.depth++; s.depth > maxScanDepth {
		return value{}, false
	}
	defer func() { s.depth-- }()
	s.i++ // [
	s.ws()
	if s.i < len(s.s) && s.s[s.i] == ']' {
		s.i++
		return value{kind: kindArray, members: emptyMembers}, true
	}
	start := len(s.d.stack)
	for {
		v, ok := s.value()
		if !ok {
			return value{}, false
		}
		s.d.stack = append(s.d.stack, member{v: v})
		s.ws()
		if s.i >= len(s.s) {
			return value{}, false
		}
		switch s.s[s.i] {
		case ',':
			s.i++
		case ']':
			s.i++
			ms := s.d.take(s.d.stack[start:])
			s.d.stack = s.d.stack[:start]
			return value{kind: kindArray, members: ms}, true
		default:
			return value{}, false
		}
	}
}
