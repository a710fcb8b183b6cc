package jsonappend

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// awkward are strings every escape rule of encoding/json applies to.
var awkward = []string{
	"", "plain", `"quoted" \back\slash/`, "<script>&amp;</script>", "tab\there\nnew\rline\bback\fform",
	"\x00\x01\x1f\x7f", "caf\u00e9 \u65e5\u672c \U0001F600", "sep\u2028par\u2029", "bad \xff\xfe utf-8 \xe2\x80",
	"\xed\xa0\x80 surrogate", strings.Repeat(`{"a":"b"}`, 50),
}

// stdString is encoding/json's encoding of s.
func stdString(t testing.TB, s string, escapeHTML bool) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(escapeHTML)
	if err := enc.Encode(s); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// stdRaw is encoding/json's encoding of a RawMessage member.
func stdRaw(t testing.TB, raw []byte, escapeHTML bool) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(escapeHTML)
	if err := enc.Encode(json.RawMessage(raw)); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

func TestString(t *testing.T) {
	for _, s := range awkward {
		for _, esc := range []bool{false, true} {
			if got, want := String(nil, s, esc), stdString(t, s, esc); !bytes.Equal(got, want) {
				t.Errorf("%q (escapeHTML %v):\n got %s\nwant %s", s, esc, got, want)
			}
			if got, want := String([]byte("x"), []byte(s), esc), append([]byte("x"), stdString(t, s, esc)...); !bytes.Equal(got, want) {
				t.Errorf("%q as []byte: got %s want %s", s, got, want)
			}
		}
	}
}

func TestCompact(t *testing.T) {
	raws := []string{`{ "a" : [1, 2 ,"x y\" ] <&>"],` + "\n\t" + `"b":{}, "c": "\u2028 \u2029 raw: ` + "\u2028\u2029" + `"}`, `"\\"`, `[ ]`, `1`, `"a\\\" b"`}
	for _, s := range awkward {
		raws = append(raws, string(stdString(t, s, false)))
	}
	for _, raw := range raws {
		for _, esc := range []bool{false, true} {
			if got, want := Compact(nil, []byte(raw), esc), stdRaw(t, []byte(raw), esc); !bytes.Equal(got, want) {
				t.Errorf("%s (escapeHTML %v):\n got %s\nwant %s", raw, esc, got, want)
			}
			if !esc {
				in := []byte(raw)
				if got, want := Compact(in[:0], in, false), stdRaw(t, []byte(raw), false); !bytes.Equal(got, want) {
					t.Errorf("%s in place:\n got %s\nwant %s", raw, got, want)
				}
			}
		}
	}
}

func TestValue(t *testing.T) {
	for _, s := range awkward {
		m := map[string]any{s: s, "b": true, "i": 1, "i32": int32(-2), "i64": int64(1 << 60), "u": uint64(1 << 63), "f": 1.5,
			"l": []string{s, ""}, "nl": []string(nil), "e": []string{}, "a": []any{s, 1, map[string]any{}}, "na": []any(nil),
			"m": map[string]any{"z": s, "a": map[string]any{}}, "nm": map[string]any(nil)}
		want, _ := json.Marshal(m)
		got, err := Value(nil, m)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%q: %v\n got %s\nwant %s", s, err, got, want)
		}
	}
	if _, err := Value(nil, map[string]any{"c": make(chan int)}); err == nil {
		t.Fatal("a value encoding/json cannot encode was accepted")
	}
}

// FuzzJSONAppend: String and Compact give encoding/json's bytes for any
// input (Compact for any valid JSON).
func FuzzJSONAppend(f *testing.F) {
	for _, s := range awkward {
		f.Add(s, []byte(`{"a": [1, "<x>"]}`))
	}
	f.Fuzz(func(t *testing.T, s string, raw []byte) {
		for _, esc := range []bool{false, true} {
			if got, want := String(nil, s, esc), stdString(t, s, esc); !bytes.Equal(got, want) {
				t.Fatalf("String(%q, %v):\n got %s\nwant %s", s, esc, got, want)
			}
			if !json.Valid(raw) {
				continue
			}
			want := stdRaw(t, raw, esc)
			if got := Compact(nil, raw, esc); !bytes.Equal(got, want) {
				t.Fatalf("Compact(%q, %v):\n got %s\nwant %s", raw, esc, got, want)
			}
			if !esc {
				in := bytes.Clone(raw)
				if got := Compact(in[:0], in, false); !bytes.Equal(got, want) {
					t.Fatalf("Compact(%q) in place:\n got %s\nwant %s", raw, got, want)
				}
			}
		}
	})
}

// TestPlain8: the eight-byte test agrees with the byte table for every
// byte value at every position.
func TestPlain8(t *testing.T) {
	for _, esc := range []bool{false, true} {
		for pos := range 8 {
			for b := range 256 {
				w := []byte("abcdefgh")
				w[pos] = byte(b)
				want := true
				for _, c := range w {
					if c >= 0x80 || !safe[c] || (esc && html[c]) {
						want = false
					}
				}
				if got := plain8(load8(w, 0), esc); got != want {
					t.Fatalf("byte %#x at %d (escapeHTML %v): plain8 %v, want %v", b, pos, esc, got, want)
				}
			}
		}
	}
}

// TestNoHTML8: the eight-byte test agrees with a byte comparison for
// every byte value at every position.
func TestNoHTML8(t *testing.T) {
	for pos := range 8 {
		for b := range 256 {
			w := []byte("abcdefgh")
			w[pos] = byte(b)
			want := bytes.IndexAny(w, "<>&") < 0 && bytes.IndexByte(w, 0xE2) < 0
			if got := noHTML8(load8(w, 0)); got != want {
				t.Fatalf("byte %#x at %d: noHTML8 %v, want %v", b, pos, got, want)
			}
		}
	}
}
