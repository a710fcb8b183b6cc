package payload

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// Test vector, shared with leaf's tests and docs/leaf-v1.md.
const (
	vectorFormat = "entra.directoryAudit"
	vectorRecord = `{"id":"a1b2c3d4-0000-4000-8000-000000000001","activityDisplayName":"Add member to role"}`
	// vectorPayloadHex is the payload v1 encoding of the vector.
	vectorPayloadHex = "0114656e7472612e6469726563746f72794175646974000000587b226964223a2261316232633364342d303030302d343030302d383030302d303030303030303030303031222c226163746976697479446973706c61794e616d65223a22416464206d656d62657220746f20726f6c65227d00000000"
)

// build assembles a payload encoding field by field, independently of
// Marshal.
func build(version byte, format string, record, normalized []byte) []byte {
	var b []byte
	b = append(b, version, byte(len(format)))
	b = append(b, format...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(record)))
	b = append(b, record...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(normalized)))
	b = append(b, normalized...)
	return b
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestVector(t *testing.T) {
	want := mustHex(t, vectorPayloadHex)
	p := &Payload{Format: vectorFormat, Record: []byte(vectorRecord)}
	got, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("Marshal = %x\nwant     %x", got, want)
	}
	if ind := build(0x01, vectorFormat, []byte(vectorRecord), nil); !bytes.Equal(ind, want) {
		t.Errorf("independent encoding = %x\nwant                  %x", ind, want)
	}
	dec, err := Unmarshal(want)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(dec, p) {
		t.Errorf("Unmarshal = %+v, want %+v", dec, p)
	}
}

var validPayloads = []struct {
	name string
	p    Payload
}{
	{"vector", Payload{Format: vectorFormat, Record: []byte(vectorRecord)}},
	{"normalized", Payload{Format: "entra.directoryAudit", Record: []byte("{}"), Normalized: []byte(`{"kind":"x"}`)}},
	{"one-byte format and record", Payload{Format: "a", Record: []byte{0}}},
	{"max format", Payload{Format: "a" + strings.Repeat("z", 63), Record: []byte("r")}},
	{"format charset", Payload{Format: "Ab0.9_-z", Record: []byte("r")}},
	{"binary record", Payload{Format: "bin", Record: []byte{0, 1, 2, 0xff}, Normalized: []byte{0}}},
}

func TestRoundTrip(t *testing.T) {
	for _, tc := range validPayloads {
		t.Run(tc.name, func(t *testing.T) {
			b, err := tc.p.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if ind := build(0x01, tc.p.Format, tc.p.Record, tc.p.Normalized); !bytes.Equal(b, ind) {
				t.Fatalf("Marshal = %x, independent encoding %x", b, ind)
			}
			got, err := Unmarshal(b)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*got, tc.p) {
				t.Errorf("round trip = %+v, want %+v", *got, tc.p)
			}
			b2, err := got.Marshal()
			if err != nil || !bytes.Equal(b, b2) {
				t.Errorf("re-Marshal = %x, %v; want %x", b2, err, b)
			}
		})
	}
}

func TestUnmarshalCopies(t *testing.T) {
	b := build(1, "f", []byte("rec"), []byte("norm"))
	p, err := Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = 0xee
	}
	if string(p.Record) != "rec" || string(p.Normalized) != "norm" {
		t.Errorf("Unmarshal result aliases its input: %q %q", p.Record, p.Normalized)
	}
}

// TestUnmarshalAliased: the aliased decoding gives what Unmarshal gives,
// refuses what it refuses with the same error, and its Record and
// Normalized are b's bytes (appending to one cannot overwrite the next).
func TestUnmarshalAliased(t *testing.T) {
	b := build(1, "f", []byte("rec"), []byte("norm"))
	p, err := UnmarshalAliased(b)
	if err != nil {
		t.Fatal(err)
	}
	_ = append(p.Record, 'X')
	if string(p.Normalized) != "norm" {
		t.Fatalf("appending to the record overwrote the normalised view: %q", p.Normalized)
	}
	b[len(b)-1] = 'M'
	if string(p.Record) != "rec" || string(p.Normalized) != "norM" {
		t.Errorf("UnmarshalAliased result does not alias its input: %q %q", p.Record, p.Normalized)
	}
	for _, tc := range rejectCases() {
		_, want := Unmarshal(tc.in)
		if p, err := UnmarshalAliased(tc.in); p != nil || err == nil || err.Error() != want.Error() {
			t.Errorf("%s: UnmarshalAliased = %v, %v; Unmarshal's error %v", tc.name, p, err, want)
		}
	}
}

type rejectCase struct {
	name  string
	in    []byte
	field string // expected in the error, with "at offset N"
	off   int
}

func rejectCases() []rejectCase {
	good := build(1, "fmt", []byte("rec"), []byte("nm"))
	// Offsets: version 0, format 1, record 5, normalized 12, end 18.
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	u32 := func(n uint32) []byte { return binary.BigEndian.AppendUint32(nil, n) }
	return []rejectCase{
		{"empty", nil, "version", 0},
		{"version 0", build(0, "fmt", []byte("rec"), nil), "version", 0},
		{"version 2", build(2, "fmt", []byte("rec"), nil), "version", 0},
		{"no format length", []byte{1}, "format", 1},
		{"format length 0", build(1, "", []byte("rec"), nil), "format", 1},
		{"format length 65", build(1, "a"+strings.Repeat("b", 64), []byte("rec"), nil), "format", 1},
		{"format truncated", []byte{1, 3, 'f', 'm'}, "format", 1},
		{"format starts with digit", build(1, "1fmt", []byte("rec"), nil), "format", 1},
		{"format starts with dot", build(1, ".fmt", []byte("rec"), nil), "format", 1},
		{"format space", build(1, "f mt", []byte("rec"), nil), "format", 1},
		{"format slash", build(1, "f/mt", []byte("rec"), nil), "format", 1},
		{"format non-ascii", build(1, "fé", []byte("rec"), nil), "format", 1},
		{"no record", good[:5], "record", 5},
		{"record length truncated", good[:7], "record", 5},
		{"record empty", build(1, "fmt", nil, []byte("nm")), "record", 5},
		{"record truncated", good[:10], "record", 5},
		{"record length too big", cat(good[:5], u32(0xffffffff), []byte("rec")), "record", 5},
		{"no normalized", good[:12], "normalized", 12},
		{"normalized length truncated", good[:14], "normalized", 12},
		{"normalized truncated", good[:17], "normalized", 12},
		{"normalized length too big", cat(good[:12], u32(0xffffffff)), "normalized", 12},
		{"trailing byte", cat(good, []byte{0}), "trailing data", 18},
		{"trailing payload", cat(good, good), "trailing data", 18},
	}
}

func TestUnmarshalReject(t *testing.T) {
	for _, tc := range rejectCases() {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Unmarshal(tc.in)
			if err == nil {
				t.Fatalf("Unmarshal(%x) = %+v, want error", tc.in, p)
			}
			t.Log(err)
			want := fmt.Sprintf("%s at offset %d:", tc.field, tc.off)
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not mention %q", err, want)
			}
		})
	}
}

func TestMarshalReject(t *testing.T) {
	for _, tc := range []struct {
		name  string
		p     Payload
		field string
	}{
		{"empty format", Payload{Format: "", Record: []byte("r")}, "format"},
		{"long format", Payload{Format: strings.Repeat("a", 65), Record: []byte("r")}, "format"},
		{"bad format", Payload{Format: "a b", Record: []byte("r")}, "format"},
		{"nil record", Payload{Format: "a"}, "record"},
		{"empty record", Payload{Format: "a", Record: []byte{}}, "record"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := tc.p.Marshal()
			if err == nil {
				t.Fatalf("Marshal = %x, want error", b)
			}
			if !strings.Contains(err.Error(), "payload: "+tc.field+":") {
				t.Errorf("error %q does not name field %q", err, tc.field)
			}
		})
	}
}

func TestValidateFormat(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"entra.directoryAudit", true},
		{"a", true},
		{"Z", true},
		{"okta.system-log_v1", true},
		{"a..b", true}, // format names have no segment rule
		{"a.", true},
		{"a" + strings.Repeat("0", 63), true},
		{"", false},
		{"a" + strings.Repeat("0", 64), false},
		{"0abc", false},
		{".abc", false},
		{"-abc", false},
		{"_abc", false},
		{"a b", false},
		{"a/b", false},
		{"a:b", false},
		{"a@b", false},
		{"a\x00", false},
		{"a\n", false},
		{"é", false},
	} {
		err := ValidateFormat(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateFormat(%q) = %v, want ok=%v", tc.in, err, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "format") {
			t.Errorf("ValidateFormat(%q) error %q does not name the field", tc.in, err)
		}
	}
}

func FuzzPayloadUnmarshal(f *testing.F) {
	for _, tc := range validPayloads {
		b, err := tc.p.Marshal()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, tc := range rejectCases() {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		p, err := Unmarshal(in)
		if a, aerr := UnmarshalAliased(in); (aerr == nil) != (err == nil) || (err == nil && (a.Format != p.Format ||
			!bytes.Equal(a.Record, p.Record) || !bytes.Equal(a.Normalized, p.Normalized) || (a.Normalized == nil) != (p.Normalized == nil))) {
			t.Fatalf("UnmarshalAliased(%x) = %+v, %v; Unmarshal %+v, %v", in, a, aerr, p, err)
		}
		if err != nil {
			if p != nil {
				t.Fatalf("Unmarshal returned both %+v and %v", p, err)
			}
			if !strings.HasPrefix(err.Error(), "payload: ") || !strings.Contains(err.Error(), " at offset ") {
				t.Fatalf("error %q lacks field and offset", err)
			}
			return
		}
		out, err := p.Marshal()
		if err != nil {
			t.Fatalf("Unmarshal(%x) succeeded but Marshal failed: %v", in, err)
		}
		if !bytes.Equal(out, in) {
			t.Fatalf("Marshal(Unmarshal(%x)) = %x", in, out)
		}
	})
}
