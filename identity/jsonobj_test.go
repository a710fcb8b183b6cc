package identity

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// stdDecode is the reference decodeValue must agree with: encoding/json
// with numbers kept as text.
func stdDecode(record []byte) (any, bool) {
	if !json.Valid(record) {
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

var decodeCases = []struct {
	in      string
	wantErr string // "" when the record must decode
}{
	{`{"a":1,"b":[true,false,null,"x",1.5e3,-0],"c":{"d":{}}}`, ""},
	{`  {"a":"\u00e9\ud83d\ude00"}  `, ""},
	{`{"a":1,"a":2}`, ""},        // last name wins, as encoding/json
	{"{\"a\":\"\xff\xfe\"}", ""}, // invalid UTF-8 becomes U+FFFD
	{`{"a":"\ud800"}`, ""},       // lone surrogate becomes U+FFFD
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
		if !reflect.DeepEqual(got, want) {
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
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("decodeValue(%q) = %#v, encoding/json gives %#v", record, got, want)
		}
	})
}
