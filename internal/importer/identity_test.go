package importer

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stele-dev/stele/identity"
)

// TestAgreesWithServerNormaliser checks, on every golden fixture of the
// server's normalisers, that the importer picks the fixture's format and
// computes the same event_id (and, where the record names its tenant, the
// same source) as the server's normaliser: the server refuses an event_id
// that differs from the record's own id.
func TestAgreesWithServerNormaliser(t *testing.T) {
	providers := map[string]Provider{
		"entra.diagnostic": Entra, "entra.directoryAudit": Entra, "entra.signIn": Entra,
		"okta.systemLog": Okta, "aws.cloudtrail": AWS,
	}
	n := 0
	for format, p := range providers {
		files, err := filepath.Glob(filepath.Join("..", "..", "identity", "testdata", "golden", format, "*.json"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if strings.HasSuffix(f, ".golden.json") {
				continue
			}
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			rec := Record{N: 1, Raw: []byte(strings.TrimSpace(string(raw)))}
			view, err := identity.Normalize(format, rec.Raw)
			if err != nil {
				continue // a fixture of a record the server refuses
			}
			b := &Builder{Provider: p}
			ev, err := b.Event(rec, f)
			if err != nil && strings.Contains(err.Error(), "pass "+p.TenantFlag()) {
				b.Tenant = "example.okta.com"
				if p != Okta {
					b.Tenant = "123456789012"
				}
				ev, err = b.Event(rec, f)
			}
			if err != nil {
				t.Errorf("%s: %v", f, err)
				continue
			}
			n++
			if ev.Format != format {
				t.Errorf("%s: format %q, want %q", f, ev.Format, format)
			}
			if ev.EventId != view.NativeId {
				t.Errorf("%s: event_id %q, the server's normaliser says %q", f, ev.EventId, view.NativeId)
			}
			if s := identity.SourceName(view); s != "" && s != ev.Source {
				t.Errorf("%s: source %q, the server's normaliser says %q", f, ev.Source, s)
			}
		}
	}
	if n < 20 {
		t.Fatalf("only %d fixtures checked: did the golden fixtures move?", n)
	}
}
