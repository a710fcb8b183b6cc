package identity

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stele-dev/stele/leaf"
)

// fuzzNormalizer seeds f with the format's golden fixtures and checks that
// Normalize never panics, fails with an error naming the format, and that
// every view it makes keeps the record, has a valid kind, and survives
// Marshal/Unmarshal, JSON and (with a time) OCSF export.
func fuzzNormalizer(f *testing.F, format string) {
	for _, fx := range fixtures(f) {
		if fx.Format == format {
			f.Add(fx.Record)
		}
	}
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"id":null,"properties":{"id":1},"category":"AuditLogs"}`))
	f.Fuzz(func(t *testing.T, record []byte) {
		ev, err := Normalize(format, record)
		if err != nil {
			if !strings.HasPrefix(err.Error(), format+": ") {
				t.Fatalf("error does not name the format: %v", err)
			}
			return
		}
		if !bytes.Equal(ev.RawRecord, record) {
			t.Fatal("raw record altered")
		}
		if err := leaf.ValidateKind(ev.Kind); err != nil {
			t.Fatalf("kind %q: %v", ev.Kind, err)
		}
		if ev.NativeId == "" {
			t.Fatal("empty native id")
		}
		b, err := Marshal(ev)
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		back, err := Unmarshal(b, format, record)
		if err != nil {
			t.Fatalf("Unmarshal: %v", err)
		}
		j1, err := JSON(ev)
		if err != nil {
			t.Fatalf("JSON: %v", err)
		}
		if j2, _ := JSON(back); !bytes.Equal(j1, j2) {
			t.Fatal("view changed through Marshal/Unmarshal")
		}
		if ev.EventTime != nil {
			if _, err := OCSF(ev); err != nil {
				t.Fatalf("OCSF: %v", err)
			}
		}
	})
}

func FuzzEntraAudit(f *testing.F)      { fuzzNormalizer(f, "entra.directoryAudit") }
func FuzzEntraSignIn(f *testing.F)     { fuzzNormalizer(f, "entra.signIn") }
func FuzzEntraDiagnostic(f *testing.F) { fuzzNormalizer(f, "entra.diagnostic") }
func FuzzOktaSystemLog(f *testing.F)   { fuzzNormalizer(f, "okta.systemLog") }
func FuzzCloudTrail(f *testing.F)      { fuzzNormalizer(f, "aws.cloudtrail") }
func FuzzOCSFInput(f *testing.F)       { fuzzNormalizer(f, "ocsf") }
func FuzzGenericJSON(f *testing.F)     { fuzzNormalizer(f, "json") }
