package identity

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
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

// decodeValue decodes record as exactly one JSON value.
func decodeValue(record []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(record))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, fmt.Errorf("record is not valid JSON: %w", err)
	}
	if d.More() {
		return nil, fmt.Errorf("record holds more than one JSON value: submit one record per event")
	}
	if _, err := d.Token(); err == nil {
		return nil, fmt.Errorf("record has trailing data after its JSON value")
	}
	return v, nil
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

// parseTime parses a provider timestamp: RFC 3339 with any fraction
// (Entra writes 7 digits) and Z or a numeric offset.
func parseTime(field, s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s %q is not an RFC 3339 time", field, s)
	}
	if t.Year() < 1 || t.UTC().Year() < 1 || t.UTC().Year() > 9999 {
		return time.Time{}, fmt.Errorf("%s %q is outside the years 0001 to 9999", field, s)
	}
	return t.UTC(), nil
}

// msTime converts epoch milliseconds to UTC time.
func msTime(ms int64) time.Time { return time.UnixMilli(ms).UTC() }
