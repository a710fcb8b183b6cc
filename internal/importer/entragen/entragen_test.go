package entragen

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/stele-dev/stele/identity"
	"github.com/stele-dev/stele/internal/importer"
)

// TestWrite checks that each container reads back, record for record, with
// the importer, that every record builds an event the server's normaliser
// accepts with a kind, and that the output is deterministic.
func TestWrite(t *testing.T) {
	for _, c := range []Container{EventHub, JSONL, Graph} {
		var a, b bytes.Buffer
		n, err := Write(&a, c, 200<<10)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Write(&b, c, 200<<10); err != nil || !bytes.Equal(a.Bytes(), b.Bytes()) {
			t.Fatalf("%s: two runs differ (%v)", c, err)
		}
		if a.Len() < 200<<10 || n < 50 {
			t.Fatalf("%s: %d bytes, %d records", c, a.Len(), n)
		}
		r, err := importer.NewReader(&a, importer.Auto)
		if err != nil {
			t.Fatal(err)
		}
		if string(r.Container()) != string(c) {
			t.Errorf("%s detected as %s", c, r.Container())
		}
		bld := &importer.Builder{Provider: importer.Entra, Tenant: Tenant}
		ids := map[string]bool{}
		got := 0
		for {
			rec, err := r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil || rec.Err != nil {
				t.Fatalf("%s: record %d: %v %v", c, got+1, err, rec.Err)
			}
			got++
			ev, err := bld.Event(rec, "gen")
			if err != nil {
				t.Fatalf("%s: record %d: %v", c, got, err)
			}
			if ids[ev.EventId] {
				t.Fatalf("%s: event_id %s twice", c, ev.EventId)
			}
			ids[ev.EventId] = true
			view, err := identity.Normalize(ev.Format, ev.Record)
			if err != nil || view.Kind == "" || view.EventTime == nil {
				t.Fatalf("%s: record %d does not normalise: %v (kind %q)", c, got, err, view.GetKind())
			}
		}
		if got != n {
			t.Errorf("%s: read %d records, wrote %d", c, got, n)
		}
	}
}
