package record_test

import (
	"crypto/rand"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/stele-dev/stele/forwarder/record"
)

const doc = `{"stele_record":"v1","type":"event","index":3,"receipt":"x"}`

// TestFind: the document is found in every wrapping a SIEM returns, and
// inputs without exactly one document are refused with a reason.
func TestFind(t *testing.T) {
	for _, tc := range []struct {
		name, in, err string
	}{
		{"document", doc, ""},
		{"splunk _raw", `{"result":{"_raw":` + quote(doc) + `}}`, ""},
		{"elasticsearch hit", `{"_index":"s","_id":"o/3","_source":` + doc + `}`, ""},
		{"log analytics row", `{"tables":[{"rows":[[3,` + quote(doc) + `]]}]}`, ""},
		{"syslog line", `<109>1 2026-01-01T00:00:00.000000Z h stele - event [stele@32473 index="3"] ` + "\ufeff" + doc, ""},
		{"security lake unmapped", `{"unmapped":{"stele_record":` + quote(doc) + `}}`, ""},
		{"empty", ``, "empty input"}, {"text", `hello`, "no JSON object"},
		{"not JSON", `{"a":`, "not JSON"},
		{"no document", `{"a":1}`, "no Stele record document"},
		{"two documents", `[` + doc + `,` + doc + `]`, "more than one"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := record.Find([]byte(tc.in))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			d, err := record.Parse(got)
			if err != nil || d.Index != 3 {
				t.Fatalf("found %s: %v", got, err)
			}
		})
	}
}

func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// TestParseStrict: unknown fields, other schema versions and trailing data
// are refused.
func TestParseStrict(t *testing.T) {
	for _, in := range []string{
		`{"stele_record":"v1","type":"event","extra":1}`,
		`{"stele_record":"v2","type":"event"}`,
		doc + `{}`,
		`{"stele_record":"v1","index":"3"}`,
	} {
		if _, err := record.Parse([]byte(in)); err == nil {
			t.Errorf("accepted %s", in)
		}
	}
}

func FuzzFindVerify(f *testing.F) {
	f.Add([]byte(doc))
	f.Add([]byte(`{"result":{"_raw":` + quote(doc) + `}}`))
	f.Add([]byte(`<1>1 - - - - - - {"stele_record":"v1"}`))
	skey, vkey, err := note.GenerateKey(rand.Reader, "stele.localhost/log")
	if err != nil {
		f.Fatal(err)
	}
	_ = skey
	v, err := note.NewVerifier(vkey)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := record.Find(b)
		if err != nil {
			return
		}
		if _, err := record.Parse(d); err != nil {
			return
		}
		// Verify must refuse garbage with an error, never panic.
		if _, err := record.Verify(d, v, nil); err == nil {
			t.Fatalf("a document no log signed verified: %s", d)
		}
	})
}
