package identity

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-json-experiment/json/jsontext"
)

// obj is a decoded JSON object. Keys are looked up exactly first and then
// case-insensitively, because providers spell some keys both ways ("Level"
// and "level", "type" and "Type").
type obj map[string]any

// decodeObject decodes record as one JSON object, keeping numbers as text.
func decodeObject(record []byte) (obj, error) {
	v, err := decodeValue(record)
	if err != nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("record is a JSON %s, not an object", jsonType(v))
	}
	return obj(m), nil
}

// decodeValue decodes record as exactly one JSON value, keeping numbers as
// their JSON text. It tokenises with jsontext, which is several times faster
// than encoding/json's reflection into any and checks the grammar as
// strictly. It refuses what two JSON parsers may read differently (RFC 8259
// section 4 leaves duplicate names to the implementation; I-JSON, RFC 7493,
// forbids them and invalid Unicode): a name twice in one object, and text
// that is not UTF-8 (raw bytes or an escaped lone surrogate). The log commits
// to the raw bytes, so the record must have one reading only.
//
// A record scanValue accepts (any well-formed record of sane depth) is read
// in its single pass; anything else goes through decodeJSONText, the
// jsontext decoder, which words the refusal.
func decodeValue(record []byte) (any, error) {
	if v, ok := scanValue(record); ok {
		return v, nil
	}
	return decodeJSONText(record)
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
// names included) so that an object's names can be shared (names) instead
// of allocated once per record.
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
			name, err := names.of(raw)
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

// nameTable shares the strings of object names across records: the same
// few hundred names recur in every record of a format, and allocating each
// once per record was a fifth of the decoder's allocations. It holds at
// most maxNames names of at most maxNameLen bytes, so records with ever new
// names cannot grow it without bound.
type nameTable struct {
	mu sync.RWMutex
	m  map[string]string
}

const (
	maxNames   = 4096
	maxNameLen = 64
)

var names = nameTable{m: make(map[string]string)}

// of returns the name raw (a checked JSON string) spells.
func (t *nameTable) of(raw jsontext.Value) (string, error) {
	if bytes.IndexByte(raw, '\\') >= 0 || len(raw)-2 > maxNameLen {
		return jsonString(raw)
	}
	inner := raw[1 : len(raw)-1]
	t.mu.RLock()
	s, ok := t.m[string(inner)]
	t.mu.RUnlock()
	if ok {
		return s, nil
	}
	s = string(inner)
	t.mu.Lock()
	if len(t.m) < maxNames {
		t.m[s] = s
	}
	t.mu.Unlock()
	return s, nil
}

func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case json.Number:
		return "number"
	case string:
		return "string"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

// get returns the value under key, matching case-insensitively when there
// is no exact match.
func (o obj) get(key string) (any, bool) {
	if o == nil {
		return nil, false
	}
	if v, ok := o[key]; ok {
		return v, true
	}
	for k, v := range o {
		if strings.EqualFold(k, key) {
			return v, true
		}
	}
	return nil, false
}

// nativeID returns the string under exactly key: the dedup contract takes
// an event's id only from a JSON string under the exact key (no case
// folding, no numbers), so every producer derives the same id.
func (o obj) nativeID(key string) string {
	s, _ := o[key].(string)
	return s
}

// str returns the value under key as text: a string as is, a number or a
// boolean in its JSON spelling; "" for null, absent, objects and arrays.
func (o obj) str(key string) string {
	v, _ := o.get(key)
	return scalarText(v)
}

func scalarText(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		return x.String()
	case bool:
		return strconv.FormatBool(x)
	}
	return ""
}

// nullable returns the value under key keeping null (or absent) distinct
// from "".
func (o obj) nullable(key string) nullStr {
	v, ok := o.get(key)
	if !ok || v == nil {
		return nullStr{}
	}
	if s, ok := v.(string); ok {
		return nullStr{present: true, value: s}
	}
	if t := scalarText(v); t != "" {
		return nullStr{present: true, value: t}
	}
	b, _ := json.Marshal(v)
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
	if !ok || v == nil {
		return nil, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s is a JSON %s, want an object", path, jsonType(v))
	}
	return obj(m), nil
}

// objects returns the array of objects under key. Non-object elements are
// an error naming the path and position.
func (o obj) objects(key, path string) ([]obj, error) {
	v, ok := o.get(key)
	if !ok || v == nil {
		return nil, nil
	}
	a, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("%s is a JSON %s, want an array", path, jsonType(v))
	}
	out := make([]obj, 0, len(a))
	for i, e := range a {
		if e == nil {
			continue
		}
		m, ok := e.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s[%d] is a JSON %s, want an object", path, i, jsonType(e))
		}
		out = append(out, obj(m))
	}
	return out, nil
}

// strs returns the strings of the array under key (scalars as text).
func (o obj) strs(key string) []string {
	v, _ := o.get(key)
	a, ok := v.([]any)
	if !ok {
		return nil
	}
	var out []string
	for _, e := range a {
		if s := scalarText(e); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// boolean returns the value under key as a tri-state boolean; "true" and
// "false" strings count.
func (o obj) boolean(key string) *bool {
	v, _ := o.get(key)
	switch x := v.(type) {
	case bool:
		return &x
	case string:
		if b, err := strconv.ParseBool(strings.TrimSpace(x)); err == nil {
			return &b
		}
	}
	return nil
}

// float returns the number under key, if any.
func (o obj) float(key string) *float64 {
	v, _ := o.get(key)
	switch x := v.(type) {
	case json.Number:
		if f, err := x.Float64(); err == nil {
			return &f
		}
	case string:
		if f, err := strconv.ParseFloat(x, 64); err == nil {
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
