package identity

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
)

// The decoded record is a tree of values laid out for reading, not
// writing: an object is its members in document order (obj), looked up by
// a linear scan, which for the few dozen members of a provider object is
// cheaper than hashing and needs no map per object; a string or number is
// a substring of one string copy of the record (an escaped string alone
// has text of its own); and the members of every object and array of one
// record come from the slab of a pooled decoder (scan.go). See
// docs/decisions.md, "The normaliser's tree".

// kind is the JSON type of a value.
type kind uint8

const (
	kindNull kind = iota
	kindFalse
	kindTrue
	kindNumber
	kindString
	kindObject
	kindArray
)

// value is one decoded JSON value. The zero value is null.
type value struct {
	kind kind
	// text is a string's text, or a number's JSON spelling (numbers are
	// kept as text, never rounded).
	text string
	// members are an object's members in document order, or an array's
	// elements (members without names). Never nil for an object or array,
	// so an empty object is told from an absent one.
	members []member
}

// member is one name and value of an object (or one array element, with
// no name).
type member struct {
	name string
	v    value
}

// obj is a decoded JSON object: its members in document order, names
// unique (decodeValue refuses a name twice). Keys are looked up exactly
// first and then case-insensitively, because providers spell some keys
// both ways ("Level" and "level", "type" and "Type"). A nil obj is an
// absent object; an empty one is not nil.
type obj []member

// emptyMembers are the members of an empty object or array: not nil.
var emptyMembers = []member{}

// decodeObject decodes record as one JSON object, keeping numbers as text.
func decodeObject(record []byte) (obj, error) { return new(decoder).decodeObject(record) }

// decodeObject is decodeObject into d's memory.
func (d *decoder) decodeObject(record []byte) (obj, error) {
	v, err := d.decode(record)
	if err != nil {
		return nil, err
	}
	if v.kind != kindObject {
		return nil, fmt.Errorf("record is a JSON %s, not an object", jsonType(v))
	}
	return obj(v.members), nil
}

// decodeValue decodes record as exactly one JSON value, keeping numbers as
// their JSON text. It refuses what two JSON parsers may read differently
// (RFC 8259 section 4 leaves duplicate names to the implementation;
// I-JSON, RFC 7493, forbids them and invalid Unicode): a name twice in one
// object, and text that is not UTF-8 (raw bytes or an escaped lone
// surrogate). The log commits to the raw bytes, so the record must have
// one reading only.
//
// A record scanValue accepts (any well-formed record of sane depth) is read
// in its single pass; anything else goes through decodeJSONText, the
// jsontext decoder, which words the refusal (or, past maxScanDepth, reads
// it).
func decodeValue(record []byte) (value, error) { return new(decoder).decode(record) }

// decode is decodeValue into d's memory.
func (d *decoder) decode(record []byte) (value, error) {
	if v, ok := d.scan(record); ok {
		return v, nil
	}
	x, err := decodeJSONText(record)
	if err != nil {
		return value{}, err
	}
	return fromAny(x), nil
}

// decodeText is decodeValue of text already held as a string (JSON text
// inside a record's string), without copying it again on the fast path.
func decodeText(text string) (value, error) {
	if v, ok := new(decoder).scanString(text); ok {
		return v, nil
	}
	x, err := decodeJSONText([]byte(text))
	if err != nil {
		return value{}, err
	}
	return fromAny(x), nil
}

// fromAny converts the jsontext decoder's tree (nil, bool, string,
// json.Number, []any, map[string]any) to a value. A map has no order; its
// members are sorted by name so the result does not vary.
func fromAny(x any) value {
	switch x := x.(type) {
	case bool:
		if x {
			return value{kind: kindTrue}
		}
		return value{kind: kindFalse}
	case string:
		return value{kind: kindString, text: x}
	case json.Number:
		return value{kind: kindNumber, text: string(x)}
	case []any:
		ms := make([]member, len(x))
		for i, e := range x {
			ms[i].v = fromAny(e)
		}
		return value{kind: kindArray, members: ms}
	case map[string]any:
		ms := make([]member, 0, len(x))
		for k, e := range x {
			ms = append(ms, member{name: k, v: fromAny(e)})
		}
		slices.SortFunc(ms, func(a, b member) int { return strings.Compare(a.name, b.name) })
		return value{kind: kindObject, members: ms}
	}
	return value{}
}

// toAny converts v to the tree the jsontext decoder builds (nil, bool,
// string, json.Number, []any, map[string]any): what tests compare, and
// what nullable marshals with encoding/json.
func toAny(v value) any {
	switch v.kind {
	case kindFalse:
		return false
	case kindTrue:
		return true
	case kindNumber:
		return json.Number(v.text)
	case kindString:
		return v.text
	case kindArray:
		a := make([]any, len(v.members))
		for i, m := range v.members {
			a[i] = toAny(m.v)
		}
		return a
	case kindObject:
		m := make(map[string]any, len(v.members))
		for _, e := range v.members {
			m[e.name] = toAny(e.v)
		}
		return m
	}
	return nil
}

// decodeJSONText is decodeValue through jsontext: the reference the fast
// path is held to, and the reader of every record it does not accept.
func decodeJSONText(record []byte) (any, error) {
	d := jsontext.NewDecoder(bytes.NewReader(record))
	v, err := readValue(d)
	if err != nil {
		return nil, decodeErr(err)
	}
	switch d.PeekKind() {
	case '{', '[', '"', '0', 'n', 't', 'f':
		return nil, fmt.Errorf("record holds more than one JSON value: submit one record per event")
	}
	if _, err := d.ReadToken(); err != io.EOF {
		if errors.Is(err, jsontext.ErrDuplicateName) || isUTF8Err(err) {
			return nil, decodeErr(err)
		}
		return nil, fmt.Errorf("record has trailing data after its JSON value")
	}
	return v, nil
}

// decodeErr words a decoding error, precisely for the two refusals that
// are not grammar: a duplicate name and invalid UTF-8.
func decodeErr(err error) error {
	var se *jsontext.SyntacticError
	if errors.As(err, &se) {
		where := ""
		if p := string(se.JSONPointer); p != "" {
			where = " at " + p
		}
		switch {
		case errors.Is(err, jsontext.ErrDuplicateName):
			return fmt.Errorf("record has a duplicate key%s (byte %d): JSON parsers disagree on which value counts, so Stele refuses it; remove one", where, se.ByteOffset)
		case isUTF8Err(err):
			return fmt.Errorf("record has invalid UTF-8%s (byte %d): a record must be UTF-8 text (%v)", where, se.ByteOffset, se.Err)
		}
	}
	return fmt.Errorf("record is not valid JSON: %w", err)
}

// isUTF8Err tells whether jsontext refused err for invalid UTF-8, raw or as
// an escaped lone surrogate.
func isUTF8Err(err error) bool {
	var se *jsontext.SyntacticError
	if !errors.As(err, &se) || se.Err == nil {
		return false
	}
	m := se.Err.Error()
	return strings.Contains(m, "invalid UTF-8") || strings.Contains(m, "surrogate")
}

// readValue reads the next JSON value from d as nil, bool, string,
// json.Number, []any or map[string]any. Strings, names and numbers are read
// as raw values (ReadValue checks them exactly as ReadToken does, duplicate
// names included).
func readValue(d *jsontext.Decoder) (any, error) {
	switch d.PeekKind() {
	case '"':
		raw, err := d.ReadValue()
		if err != nil {
			return nil, err
		}
		return jsonString(raw)
	case '0':
		raw, err := d.ReadValue()
		if err != nil {
			return nil, err
		}
		return json.Number(raw), nil
	case '{':
		if _, err := d.ReadToken(); err != nil {
			return nil, err
		}
		m := make(map[string]any)
		for d.PeekKind() != '}' {
			if d.PeekKind() != '"' {
				// Not a name: ReadToken says why, as the grammar has it
				// (ReadValue would read on into the value first).
				if _, err := d.ReadToken(); err != nil {
					return nil, err
				}
				return nil, errors.New("object member name is not a string")
			}
			raw, err := d.ReadValue()
			if err != nil {
				return nil, err
			}
			name, err := jsonString(raw)
			if err != nil {
				return nil, err
			}
			v, err := readValue(d)
			if err != nil {
				return nil, err
			}
			m[name] = v
		}
		if _, err := d.ReadToken(); err != nil {
			return nil, err
		}
		return m, nil
	case '[':
		if _, err := d.ReadToken(); err != nil {
			return nil, err
		}
		a := []any{}
		for d.PeekKind() != ']' {
			v, err := readValue(d)
			if err != nil {
				return nil, err
			}
			a = append(a, v)
		}
		if _, err := d.ReadToken(); err != nil {
			return nil, err
		}
		return a, nil
	}
	// A literal, or what ReadToken reports as the error.
	tok, err := d.ReadToken()
	if err != nil {
		return nil, err
	}
	switch tok.Kind() {
	case 'n':
		return nil, nil
	case 'f', 't':
		return tok.Bool(), nil
	}
	return nil, fmt.Errorf("unexpected JSON token %s", tok.Kind())
}

// jsonString returns the text of raw, a JSON string the decoder has checked.
func jsonString(raw jsontext.Value) (string, error) {
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1 : len(raw)-1]), nil
	}
	b, err := jsontext.AppendUnquote(nil, raw)
	return string(b), err
}

func jsonType(v value) string {
	switch v.kind {
	case kindNull:
		return "null"
	case kindFalse, kindTrue:
		return "boolean"
	case kindNumber:
		return "number"
	case kindString:
		return "string"
	case kindArray:
		return "array"
	}
	return "object"
}

// lookup returns the value under exactly key.
func (o obj) lookup(key string) (value, bool) {
	for i := range o {
		if o[i].name == key {
			return o[i].v, true
		}
	}
	return value{}, false
}

// get returns the value under key, matching case-insensitively (the first
// such member in the record) when there is no exact match.
func (o obj) get(key string) (value, bool) {
	if v, ok := o.lookup(key); ok {
		return v, true
	}
	// Most members differ from key at the first byte or are shorter: a
	// name that folds to an ASCII key is at least as long (only U+212A
	// and U+017F, both longer, fold to ASCII letters) and starts with the
	// key's first letter in either case or with a byte that is not ASCII.
	ascii := isASCII(key)
	for i := range o {
		n := o[i].name
		if ascii && !mayFold(n, key) {
			continue
		}
		if strings.EqualFold(n, key) {
			return o[i].v, true
		}
	}
	return value{}, false
}

// mayFold is false when name cannot match the ASCII key under
// strings.EqualFold: it is shorter (only U+212A and U+017F, both longer
// than the letters they fold to, fold to ASCII), or its first byte is an
// ASCII character other than the key's first, in either case.
func mayFold(name, key string) bool {
	if len(name) < len(key) {
		return false
	}
	return len(key) == 0 || name[0] >= utf8.RuneSelf || lowerASCII(name[0]) == lowerASCII(key[0])
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func lowerASCII(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// nativeID returns the string under exactly key: the dedup contract takes
// an event's id only from a JSON string under the exact key (no case
// folding, no numbers), so every producer derives the same id.
func (o obj) nativeID(key string) string {
	if v, _ := o.lookup(key); v.kind == kindString {
		return v.text
	}
	return ""
}

// str returns the value under key as text: a string as is, a number or a
// boolean in its JSON spelling; "" for null, absent, objects and arrays.
func (o obj) str(key string) string {
	v, _ := o.get(key)
	return scalarText(v)
}

func scalarText(v value) string {
	switch v.kind {
	case kindString, kindNumber:
		return v.text
	case kindTrue:
		return "true"
	case kindFalse:
		return "false"
	}
	return ""
}

// nullable returns the value under key keeping null (or absent) distinct
// from "". An object or array is its encoding/json text.
func (o obj) nullable(key string) nullStr {
	v, ok := o.get(key)
	if !ok || v.kind == kindNull {
		return nullStr{}
	}
	if v.kind == kindString {
		return nullStr{present: true, value: v.text}
	}
	if t := scalarText(v); t != "" {
		return nullStr{present: true, value: t}
	}
	b, _ := json.Marshal(toAny(v))
	return nullStr{present: true, value: string(b)}
}

type nullStr struct {
	present bool
	value   string
}

// object returns the object under key, or nil. A value of another type is
// an error naming the path.
func (o obj) object(key, path string) (obj, error) {
	v, ok := o.get(key)
	if !ok || v.kind == kindNull {
		return nil, nil
	}
	if v.kind != kindObject {
		return nil, fmt.Errorf("%s is a JSON %s, want an object", path, jsonType(v))
	}
	return obj(v.members), nil
}

// objects returns the array of objects under key. Non-object elements are
// an error naming the path and position.
func (o obj) objects(key, path string) ([]obj, error) {
	v, ok := o.get(key)
	if !ok || v.kind == kindNull {
		return nil, nil
	}
	if v.kind != kindArray {
		return nil, fmt.Errorf("%s is a JSON %s, want an array", path, jsonType(v))
	}
	out := make([]obj, 0, len(v.members))
	for i, e := range v.members {
		switch e.v.kind {
		case kindNull:
			continue
		case kindObject:
			out = append(out, obj(e.v.members))
		default:
			return nil, fmt.Errorf("%s[%d] is a JSON %s, want an object", path, i, jsonType(e.v))
		}
	}
	return out, nil
}

// strs returns the strings of the array under key (scalars as text).
func (o obj) strs(key string) []string {
	v, _ := o.get(key)
	if v.kind != kindArray {
		return nil
	}
	var out []string
	for _, e := range v.members {
		if s := scalarText(e.v); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// boolean returns the value under key as a tri-state boolean; "true" and
// "false" strings count.
func (o obj) boolean(key string) *bool {
	v, _ := o.get(key)
	switch v.kind {
	case kindTrue, kindFalse:
		b := v.kind == kindTrue
		return &b
	case kindString:
		if b, err := strconv.ParseBool(strings.TrimSpace(v.text)); err == nil {
			return &b
		}
	}
	return nil
}

// float returns the number under key, if any (a number, or a string that
// parses as one).
func (o obj) float(key string) *float64 {
	v, _ := o.get(key)
	switch v.kind {
	case kindNumber, kindString:
		if f, err := strconv.ParseFloat(v.text, 64); err == nil {
			return &f
		}
	}
	return nil
}

// msTime converts epoch milliseconds to UTC time.
func msTime(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

// has reports whether o has any of keys (case-insensitively): the fields
// that identify a format. A record with none of them is of another format.
func has(o obj, keys ...string) bool {
	for _, k := range keys {
		if _, ok := o.get(k); ok {
			return true
		}
	}
	return false
}

// errNotFormat refuses a record without the identifying fields of the
// format it was sent under.
func errNotFormat(what, fields string) error {
	return fmt.Errorf("not %s: the record has none of %s; was it sent under the wrong format?", what, fields)
}
