package identity

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
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
// same kind of reason. The decoder in use is checked at both of its
// levels: the single-pass fast path (scanValue) against the jsontext
// decoder (decodeJSONText, kept as its reference), and the jsontext
// decoder against the token decoder before it.
func decodeBoth(t *testing.T, record []byte) {
	t.Helper()
	scanBoth(t, record)
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

// scanBoth fails t unless the fast path accepts exactly what the jsontext
// decoder accepts, with the same tree, and decodeValue (fast path, then
// jsontext) answers exactly as the jsontext decoder alone, error text
// included. The one thing the fast path leaves to jsontext on purpose is
// nesting deeper than maxScanDepth.
func scanBoth(t *testing.T, record []byte) {
	t.Helper()
	want, wantErr := decodeJSONText(record)
	// A pooled decoder, as Normalize uses: its memory has held other
	// records before.
	d := decoders.Get().(*decoder)
	defer d.release()
	fast, ok := d.scan(record)
	switch {
	case ok && wantErr != nil:
		t.Fatalf("%q: fast path accepted %#v, jsontext refuses it: %v", record, fast, wantErr)
	case ok && !reflect.DeepEqual(toAny(fast), want):
		t.Fatalf("%q: fast path decoded %#v, jsontext %#v", record, fast, want)
	case !ok && wantErr == nil && bytes.Count(record, []byte("{"))+bytes.Count(record, []byte("[")) <= maxScanDepth:
		t.Fatalf("%q: fast path refused a record jsontext reads as %#v", record, want)
	}
	got, gotErr := decodeValue(record)
	if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) || !reflect.DeepEqual(toAny(got), want) {
		t.Fatalf("%q: decodeValue gave (%#v, %v), jsontext (%#v, %v)", record, got, gotErr, want, wantErr)
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
	// The fast path's own edges: whitespace, numbers, literals, escapes.
	" \t\r\n{ \"a\" : [ 1 , 2 ] } \n", `[1 2]`, `{"a":1 "b":2}`, `-`, `-01`, `1.`, `.5`, `1e`, `1e+`, `1E-07`, `-0`,
	`[tru]`, `[nul]`, `[falsey]`, `nullx`, `[true,false,null]`, `"\u00"`, `"\x"`, `"\/\b\f\r\t"`, "\"a\tb\"",
	"\"\x7f\"", "\"\xed\xa0\x80\"", "\"\xef\xbb\xbf\"", "\xef\xbb\xbf{}", `{"a":{"b":{}}}`, `[[[[]]]]`,
	`{"a":"\"quoted\""}`, `{"\"":1,"\u0022":2}`, `"\ud83d\ude00"`, `"\ude00\ud83d"`, `[`, `{`, `{"a"`, `{"a":`, `"`, ``, ` `,
}

// manyNames returns an object of n members named k0…k(n-1), with extra
// members appended: the fast path checks duplicates with a set past
// dupScanMax members.
func manyNames(n int, extra ...string) string {
	var b strings.Builder
	b.WriteString("{")
	for i := range n {
		fmt.Fprintf(&b, `"k%d":%d,`, i, i)
	}
	for _, e := range extra {
		b.WriteString(e + ",")
	}
	return strings.TrimSuffix(b.String(), ",") + "}"
}

// largeCases are decodeDiffCases past dupScanMax: distinct names, and a
// name repeated (plainly, escaped, and in a nested object) before and
// after the check switches to a set.
var largeCases = []string{
	manyNames(dupScanMax - 1), manyNames(dupScanMax), manyNames(dupScanMax + 1), manyNames(3 * dupScanMax),
	manyNames(dupScanMax-1, `"k0":0`), manyNames(dupScanMax, `"k0":0`), manyNames(dupScanMax+1, `"k5":0`),
	manyNames(3*dupScanMax, `"k40":0`), manyNames(3*dupScanMax, `"\u006b40":0`), manyNames(3*dupScanMax, `"x":[`+manyNames(40, `"k39":1`)+`]`),
	manyNames(3*dupScanMax, `"x":`+manyNames(40), `"x":1`),
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
	for _, c := range largeCases {
		decodeBoth(t, []byte(c))
	}
	// One decoder reused record after record (its chunks and stack hold
	// the earlier records' members) builds each tree as a fresh one does.
	d := new(decoder)
	for range 3 {
		for _, fx := range fixtures(t) {
			got, err := d.decode(fx.Record)
			want, wantErr := decodeValue(fx.Record)
			if err != nil || wantErr != nil || !reflect.DeepEqual(toAny(got), toAny(want)) {
				t.Fatalf("%s/%s: reused decoder gave %v (%v), a fresh one %v (%v)", fx.Format, fx.Name, toAny(got), err, toAny(want), wantErr)
			}
			d.reset()
		}
	}
}

func FuzzDecodeDifferential(f *testing.F) {
	for _, fx := range fixtures(f) {
		f.Add(fx.Record)
	}
	for _, c := range decodeDiffCases {
		f.Add([]byte(c))
	}
	for _, c := range largeCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, record []byte) { decodeBoth(t, record) })
}

// TestScanDepth: a record nested past maxScanDepth is read by the jsontext
// decoder, to the same tree; and every golden fixture takes the fast path.
func TestScanDepth(t *testing.T) {
	deep := bytes.Repeat([]byte("["), maxScanDepth+1)
	deep = append(deep, bytes.Repeat([]byte("]"), maxScanDepth+1)...)
	if _, ok := scanValue(deep); ok {
		t.Fatalf("fast path read %d levels, over maxScanDepth %d", maxScanDepth+1, maxScanDepth)
	}
	scanBoth(t, deep)
	if _, err := decodeValue(deep); err != nil {
		t.Fatalf("%d levels: %v", maxScanDepth+1, err)
	}
	for _, fx := range fixtures(t) {
		if _, ok := scanValue(fx.Record); !ok {
			t.Errorf("%s/%s: not read by the fast path", fx.Format, fx.Name)
		}
	}
}

var unquoteCases = []string{
	``, `"`, `""`, `"Global Administrator"`, `"a\"b"`, `"a\u0041"`, `"tab	in"`, "\"\xff\"", `null`, ` null `, ` "x" `,
	`nul`, `123`, `true`, `{"a":1}`, `["x"]`, `plain text`, `"unterminated`, `"x"y"`, `"x" "y"`, "\"\x7f\"", `"é"`,
}

// TestUnquote: unquote's fast cases answer exactly as encoding/json does
// (unquoteJSON, the reference).
func TestUnquote(t *testing.T) {
	for _, c := range unquoteCases {
		if got, want := unquote(c), unquoteJSON(c); got != want {
			t.Errorf("unquote(%q) = %q, encoding/json gives %q", c, got, want)
		}
	}
}

func FuzzUnquote(f *testing.F) {
	for _, c := range unquoteCases {
		f.Add(c)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := unquote(s), unquoteJSON(s); got != want {
			t.Fatalf("unquote(%q) = %q, encoding/json gives %q", s, got, want)
		}
	})
}

// TestDecoderPoolBound: a pooled decoder that read a record of very many
// members keeps at most maxPooledMembers of them for the next record, and
// refuses a duplicate name that only the set (past dupScanMax) sees.
func TestDecoderPoolBound(t *testing.T) {
	d := new(decoder)
	big := manyNames(20000)
	v, err := d.decode([]byte(big))
	if err != nil || len(v.members) != 20000 {
		t.Fatalf("decoded %d members, %v", len(v.members), err)
	}
	d.reset()
	kept := 0
	for _, c := range d.chunks {
		kept += len(c)
	}
	if kept > maxPooledMembers {
		t.Fatalf("decoder keeps %d members after reset, over maxPooledMembers %d", kept, maxPooledMembers)
	}
	if _, err := d.decode([]byte(manyNames(20000, `"k19999":1`))); err == nil || !strings.Contains(err.Error(), "duplicate key at /k19999") {
		t.Fatalf("a duplicate past dupScanMax: %v", err)
	}
}
