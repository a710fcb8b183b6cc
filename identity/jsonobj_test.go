package identity

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// stdDecode is the reference decodeValue must agree with: encoding/json
// with numbers kept as text, refusing what it would read by a rule of its
// own (a duplicate name, invalid UTF-8, a lone surrogate).
func stdDecode(record []byte) (any, bool) {
	if !json.Valid(record) || !utf8.Valid(record) || hasDuplicateName(record) || hasLoneSurrogate(record) {
		return nil, false
	}
	d := json.NewDecoder(bytes.NewReader(record))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, false
	}
	return v, true
}

// hasDuplicateName walks record's tokens with encoding/json (which unescapes
// names) and reports a name repeated in one object.
func hasDuplicateName(record []byte) bool {
	d := json.NewDecoder(bytes.NewReader(record))
	type frame struct {
		obj   bool
		names map[string]bool
		key   bool // the next string token of an object is a name
	}
	var stack []*frame
	for {
		tok, err := d.Token()
		if err != nil {
			return false
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		isName := top != nil && top.obj && top.key
		switch x := tok.(type) {
		case json.Delim:
			switch x {
			case '{':
				if top != nil && top.obj {
					top.key = true
				}
				stack = append(stack, &frame{obj: true, names: map[string]bool{}, key: true})
				continue
			case '[':
				if top != nil && top.obj {
					top.key = true
				}
				stack = append(stack, &frame{})
				continue
			default:
				stack = stack[:len(stack)-1]
				continue
			}
		case string:
			if isName {
				if top.names[x] {
					return true
				}
				top.names[x] = true
				top.key = false
				continue
			}
		}
		if top != nil && top.obj {
			top.key = true
		}
	}
}

// hasLoneSurrogate reports a \uD800-\uDFFF escape not in a valid pair.
func hasLoneSurrogate(record []byte) bool {
	s := string(record)
	for i := 0; i+6 <= len(s); i++ {
		if s[i] != '\\' {
			continue
		}
		if s[i+1] != 'u' {
			i++ // skip the escaped character
			continue
		}
		v, err := strconv.ParseUint(s[i+2:i+6], 16, 32)
		if err != nil {
			continue
		}
		switch {
		case v >= 0xD800 && v < 0xDC00:
			if i+12 > len(s) || s[i+6] != '\\' || s[i+7] != 'u' {
				return true
			}
			w, err := strconv.ParseUint(s[i+8:i+12], 16, 32)
			if err != nil || w < 0xDC00 || w > 0xDFFF {
				return true
			}
			i += 11
		case v >= 0xDC00 && v <= 0xDFFF:
			return true
		default:
			i += 5
		}
	}
	return false
}

var decodeCases = []struct {
	in      string
	wantErr string // "" when the record must decode
}{
	{`{"a":1,"b":[true,false,null,"x",1.5e3,-0],"c":{"d":{}}}`, ""},
	{`  {"a":"\u00e9\ud83d\ude00"}  `, ""},
	{`{"a":1,"a":2}`, "duplicate key at /a (byte 7)"},
	{`{"a":{"b":1,"\u0062":2}}`, "duplicate key at /a/b"},
	{"{\"a\":\"\xff\xfe\"}", "invalid UTF-8 at /a (byte 6)"},
	{"{\"a\xff\":1}", "invalid UTF-8 (byte 3)"},
	{`{"a":"\ud800"}`, "invalid UTF-8 at /a"}, // an escaped lone surrogate
	{`{"a":"\ufffd"}`, ""},                    // U+FFFD itself is fine
	{`[]`, ""},
	{`"s"`, ""},
	{`12345678901234567890123`, ""}, // kept as text, not rounded
	{``, "not valid JSON"},
	{`{"a":1`, "not valid JSON"},
	{`{"a":01}`, "not valid JSON"},
	{`{'a':1}`, "not valid JSON"},
	{`{"a":1,}`, "not valid JSON"},
	{`{"a":1} {"b":2}`, "more than one JSON value"},
	{`{"a":1}}`, "trailing data"},
	{`{"a":1} x`, "trailing data"},
	{`nul`, "not valid JSON"},
}

func TestDecodeValue(t *testing.T) {
	for _, tc := range decodeCases {
		got, err := decodeValue([]byte(tc.in))
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("decodeValue(%q) = %v, want an error containing %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("decodeValue(%q): %v", tc.in, err)
			continue
		}
		want, ok := stdDecode([]byte(tc.in))
		if !ok {
			t.Fatalf("encoding/json refuses %q", tc.in)
		}
		if !reflect.DeepEqual(toAny(got), want) {
			t.Errorf("decodeValue(%q) = %#v, encoding/json gives %#v", tc.in, got, want)
		}
	}
}

// FuzzDecodeValue checks decodeValue against encoding/json: every record
// encoding/json takes as one value decodes to the same tree, and every
// record it refuses is refused.
func FuzzDecodeValue(f *testing.F) {
	for _, tc := range decodeCases {
		f.Add([]byte(tc.in))
	}
	for _, fx := range fixtures(f) {
		f.Add(fx.Record)
	}
	f.Fuzz(func(t *testing.T, record []byte) {
		got, err := decodeValue(record)
		want, ok := stdDecode(record)
		if !ok {
			if err == nil {
				t.Fatalf("decodeValue accepts %q, which encoding/json refuses", record)
			}
			return
		}
		if err != nil {
			t.Fatalf("decodeValue refuses %q, which encoding/json takes: %v", record, err)
		}
		if !reflect.DeepEqual(toAny(got), want) {
			t.Fatalf("decodeValue(%q) = %#v, encoding/json gives %#v", record, got, want)
		}
	})
}

// TestGetFold: obj.get's quick rejections never skip a name that
// strings.EqualFold matches (the Kelvin sign and the long s fold to ASCII
// letters from longer text), and the first case-insensitive match in the
// record counts.
func TestGetFold(t *testing.T) {
	rec := `{"ID":1,"Id":2,"\u212Aey":3,"\u017Ftatus":4,"other":5,"":6,"é":7,"TYPE":8,"\u212A":9}`
	o, err := decodeObject([]byte(rec))
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"id", "iD", "key", "KEY", "status", "Status", "other", "OTHER", "", "É", "é", "type", "k", "K", "s", "missing", "ke", "keyx"} {
		got, gotOK := o.get(key)
		var want value
		wantOK := false
		if v, ok := o.lookup(key); ok {
			want, wantOK = v, true
		} else {
			for _, m := range o {
				if strings.EqualFold(m.name, key) {
					want, wantOK = m.v, true
					break
				}
			}
		}
		if gotOK != wantOK || !reflect.DeepEqual(got, want) {
			t.Errorf("get(%q) = %v %v, want %v %v", key, got, gotOK, want, wantOK)
		}
	}
	if v, _ := o.get("id"); v.text != "1" {
		t.Errorf(`get("id") = %q, want the first match in the record, "1"`, v.text)
	}
}
