package identity

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"

	"github.com/go-json-experiment/json/jsontext"
)

// readValueTokens is the decoder as it was before names were shared and
// strings read as raw values: every value through ReadToken. It stays here
// as the reference the faster decoder must match exactly.
func readValueTokens(d *jsontext.Decoder) (any, error) {
	tok, err := d.ReadToken()
	if err != nil {
		return nil, err
	}
	switch tok.Kind() {
	case 'n':
		return nil, nil
	case 'f', 't':
		return tok.Bool(), nil
	case '"':
		return tok.String(), nil
	case '0':
		return json.Number(tok.String()), nil
	case '{':
		m := make(map[string]any)
		for d.PeekKind() != '}' {
			tok, err := d.ReadToken()
			if err != nil {
				return nil, err
			}
			name := tok.String()
			v, err := readValueTokens(d)
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
		a := []any{}
		for d.PeekKind() != ']' {
			v, err := readValueTokens(d)
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
	return nil, fmt.Errorf("unexpected JSON token %s", tok.Kind())
}

// decodeBoth decodes record with the decoder in use and with the reference,
// and fails t unless both give the same tree or both refuse it, for the
// same kind of reason.
func decodeBoth(t *testing.T, record []byte) {
	t.Helper()
	got, gotErr := readValue(jsontext.NewDecoder(bytes.NewReader(record)))
	want, wantErr := readValueTokens(jsontext.NewDecoder(bytes.NewReader(record)))
	if (gotErr == nil) != (wantErr == nil) {
		t.Fatalf("%q: decoder error %v, reference error %v", record, gotErr, wantErr)
	}
	if gotErr != nil {
		if g, w := decodeErr(gotErr).Error(), decodeErr(wantErr).Error(); refusal(g) != refusal(w) {
			t.Fatalf("%q: refused as %q, reference %q", record, g, w)
		}
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%q: decoded %#v, reference %#v", record, got, want)
	}
}

// refusal classifies a decoding error as decodeErr words it.
func refusal(msg string) string {
	for _, k := range []string{"duplicate key", "invalid UTF-8"} {
		if bytes.Contains([]byte(msg), []byte(k)) {
			return k
		}
	}
	return "not valid JSON"
}

var decodeDiffCases = []string{
	`{}`, `[]`, `""`, `0`, `-0.5e+7`, `null`, `true`, `[false,null,1,"x",{}]`,
	`{"a":1,"b":{"c":[1,2,{"d":"e"}]}}`,
	`{"\u0061":1}`, `{"a":1,"\u0061":2}`, `{"a":1,"a":2}`, `{"k\"q":"v\\w\n\u00e9\ud83d\ude00"}`,
	`{"":""}`, `{"a":"\ud800"}`, `{"\udc00":1}`, "{\"a\xff\":1}", "{\"a\":\"\xc3\"}",
	`{"a":1,}`, `{"a" 1}`, `[1,]`, `{"a":01}`, `{"a":1}x`, `{"a":"unterminated}`, `{"a":tru}`,
	`{"Level":1,"level":2}`, `{"a":[{"a":1,"a":1}]}`,
	`{"thisnameislongerthansixtyfourbytesxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx":1}`,
}

// TestDecodeDifferential: on every golden fixture and on hand-made edge
// cases (escaped and duplicate names, surrogates, invalid UTF-8, bad
// grammar) the decoder gives exactly the reference decoder's tree or
// refuses what it refuses, so every normalised view is byte for byte what
// it was.
func TestDecodeDifferential(t *testing.T) {
	for _, fx := range fixtures(t) {
		decodeBoth(t, fx.Record)
	}
	for _, c := range decodeDiffCases {
		decodeBoth(t, []byte(c))
	}
	// The shared names are the same strings on a second pass.
	for _, fx := range fixtures(t) {
		decodeBoth(t, fx.Record)
	}
}

func FuzzDecodeDifferential(f *testing.F) {
	for _, fx := range fixtures(f) {
		f.Add(fx.Record)
	}
	for _, c := range decodeDiffCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, record []byte) { decodeBoth(t, record) })
}
