package record

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/identity"
	"github.com/stele-dev/stele/internal/jsonappend"
)

// reference is the encoding the document had before AppendJSON:
// encoding/json without HTML escaping. AppendJSON must give its bytes.
func reference(t testing.TB, d *Document) []byte {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(d); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// awkward are strings every escape rule of encoding/json applies to.
var awkward = []string{
	"", "plain", `"quoted" \back\slash/`, "<script>&amp;</script>", "tab\there\nnew\rline\bback\fform",
	"\x00\x01\x1f\x7f", "caf\u00e9 \u65e5\u672c \U0001F600", "sep\u2028par\u2029", "bad \xff\xfe utf-8 \xe2\x80",
	"\xed\xa0\x80 surrogate", strings.Repeat(`{"a":"b"}`, 50),
}

func sp(s string) *string { return &s }

// TestAppendJSONDifferential: AppendJSON gives encoding/json's bytes for
// documents with every member set, unset and holding awkward text.
func TestAppendJSONDifferential(t *testing.T) {
	var docs []*Document
	for i, s := range awkward {
		docs = append(docs, &Document{Schema: Schema, Type: TypeEvent, Origin: s, Index: uint64(i) * 1e17, LeafHash: s, Source: s,
			SourceSeq: uint64(i), EventID: s, Kind: s, EventTime: s, AdmittedTime: s, Format: s, Record: sp(s), RecordBase64: s,
			Salt: s, NormalizedPB: s, Normalized: json.RawMessage(`{ "a" : [1, 2 ,"x y\" ]"],` + "\n\t" + `"b":{}}`),
			OCSF:    json.RawMessage(`{"s":` + string(jsonappend.String(nil, s, true)) + `}`),
			Erasure: &Erasure{ErasedIndex: uint64(i), ErasureIndex: uint64(i), Reason: s, RequestReference: s, ErasedBy: s, Time: s},
			Receipt: s})
		docs = append(docs, &Document{Schema: Schema, Type: TypeErased, Index: uint64(i), Record: sp(""), Erasure: &Erasure{}, Receipt: s})
	}
	docs = append(docs, &Document{})
	for i, d := range docs {
		if got, want := d.AppendJSON(nil), reference(t, d); !bytes.Equal(got, want) {
			t.Errorf("document %d:\n got %s\nwant %s", i, got, want)
		}
	}
}

// FuzzAppendJSON: for any text in the document's members, AppendJSON
// gives encoding/json's bytes.
func FuzzAppendJSON(f *testing.F) {
	for _, s := range awkward {
		f.Add(s, []byte(`{"a": 1}`), uint64(7))
	}
	f.Fuzz(func(t *testing.T, s string, raw []byte, n uint64) {
		d := &Document{Schema: s, Type: s, Origin: s, Index: n, SourceSeq: n, EventID: s, Record: sp(s), Salt: s, Receipt: s,
			Erasure: &Erasure{ErasedIndex: n, Reason: s}}
		if json.Valid(raw) {
			d.Normalized, d.OCSF = raw, raw
		}
		if got, want := d.AppendJSON(nil), reference(t, d); !bytes.Equal(got, want) {
			t.Fatalf("\n got %s\nwant %s", got, want)
		}
	})
}

// TestReceiptShared: a receipt built with a shared Checkpoint is the
// tlog-proof Receipt builds, and its shared JSON encoding is the string
// encoding/json gives.
func TestReceiptShared(t *testing.T) {
	cp := &client.Checkpoint{Raw: []byte("example.com/log\n12345\nq83Vz/Mt1+Hl0KpmrkDeAQ==\n\n\u2014 example.com/log AbCdEf+/==\n\u2014 witness \xff <&> XyZ=\n")}
	c := NewCheckpoint(cp)
	for _, hs := range [][][32]byte{nil, {sha256.Sum256([]byte("a"))}, {sha256.Sum256([]byte("a")), sha256.Sum256([]byte("b")), sha256.Sum256([]byte("c"))}} {
		for _, leafBytes := range [][]byte{nil, {}, []byte("leaf \x00\xff")} {
			got := c.Receipt(1<<40+3, hs, leafBytes)
			if want := Receipt(cp, 1<<40+3, hs, leafBytes); !bytes.Equal(got, want) {
				t.Fatalf("receipt:\n got %q\nwant %q", got, want)
			}
			j, _ := json.Marshal(string(got))
			want := bytes.ReplaceAll(bytes.ReplaceAll(bytes.ReplaceAll(j, []byte(`\u003c`), []byte("<")), []byte(`\u003e`), []byte(">")), []byte(`\u0026`), []byte("&"))
			if rj := c.receiptJSON(got); !bytes.Equal(rj, want) {
				t.Fatalf("receipt JSON:\n got %s\nwant %s", rj, want)
			}
		}
	}
	if c.receiptJSON([]byte("not ending with the checkpoint")) != nil {
		t.Fatal("a receipt under another checkpoint got the shared encoding")
	}
}

// TestAppendOCSFDifferential: for every golden record of every format
// the identity package has, AppendOCSF gives identity.OCSF's bytes.
func TestAppendOCSFDifferential(t *testing.T) {
	n := 0
	for _, g := range goldenRecords(t) {
		name, ev := g.name, g.ev
		if ev.GetOcsf().GetClassUid() == 0 {
			continue
		}
		if ev.EventTime == nil {
			ev.EventTime = timestamppb.New(time.Unix(1700000000, 123456789))
		}
		want, err := identity.OCSF(ev)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		m, err := identity.OCSFObject(ev)
		if err != nil {
			t.Fatal(err)
		}
		got, err := AppendOCSF(nil, m)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s:\n got %s\nwant %s", name, got, want)
		}
		n++
	}
	if n < 20 {
		t.Fatalf("only %d golden records have an OCSF class: the fixtures moved?", n)
	}
}
