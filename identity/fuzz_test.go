package identity

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stele-dev/stele/leaf"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
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
		assertNoContradiction(t, ev)
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

// assertNoContradiction is the property every view keeps: its kind, its
// outcome and its OCSF export say the same thing.
func assertNoContradiction(t *testing.T, ev *stelev1.IdentityEvent) {
	t.Helper()
	if err := Consistent(ev); err != nil {
		t.Fatalf("view contradicts itself: %v", err)
	}
	if ev.EventTime == nil || ev.GetOcsf().GetClassUid() == 0 {
		return
	}
	b, err := OCSF(ev)
	if err != nil {
		t.Fatalf("OCSF: %v", err)
	}
	var m struct {
		StatusID int    `json:"status_id"`
		Status   string `json:"status"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if want := ocsfStatus(ev.GetOutcome().GetStatus()); m.StatusID != want || m.Status != ocsfStatusName(want) {
		t.Fatalf("OCSF status_id %d %q, outcome %s", m.StatusID, m.Status, ev.GetOutcome().GetStatus())
	}
	if strings.HasPrefix(ev.Kind, "signin.") {
		seg := ev.Kind[strings.LastIndexByte(ev.Kind, '.')+1:]
		if want := map[string]int{"success": 1, "failure": 2, "unknown": m.StatusID}[seg]; m.StatusID != want || (seg == "unknown" && (m.StatusID == 1 || m.StatusID == 2)) {
			t.Fatalf("kind %q but OCSF status_id %d", ev.Kind, m.StatusID)
		}
	}
}

// FuzzParseTime: the time reader never panics, returns UTC within the
// protobuf range, refuses under the strict rule anything without a zone,
// and agrees with time.RFC3339Nano on what that accepts.
func FuzzParseTime(f *testing.F) {
	for _, s := range []string{"2026-01-02T03:04:05.1234567Z", "2022-03-22 14:21:53.225", "11/14/2025 1:48:53 AM", "11/14/2025, 12:00:00.5 pm",
		"2026-01-02T03:04:05-05:00", "2026-01-02 03:04:05+01:00", "14/11/2025 1:48:53 AM", "0000-01-01T00:00:00Z", "9999-12-31T23:59:59-01:00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		strict, errStrict := parseTimeZone("f", s, zoneRequired)
		utc, errUTC := parseTimeZone("f", s, zoneUTC)
		if errStrict == nil {
			if errUTC != nil || !utc.Equal(strict) {
				t.Fatalf("%q: strict %v, UTC rule %v %v", s, strict, utc, errUTC)
			}
		}
		for _, r := range []struct {
			tm  time.Time
			err error
		}{{strict, errStrict}, {utc, errUTC}} {
			if r.err != nil {
				if !strings.HasPrefix(r.err.Error(), "f ") {
					t.Fatalf("%q: error does not name the field: %v", s, r.err)
				}
				continue
			}
			if r.tm.Location() != time.UTC || r.tm.Year() < 1 || r.tm.Year() > 9999 {
				t.Fatalf("%q: %v", s, r.tm)
			}
		}
		if _, err := time.Parse(time.RFC3339Nano, s); err == nil && errStrict != nil && !strings.Contains(errStrict.Error(), "outside the years") {
			t.Fatalf("%q is RFC 3339 but refused: %v", s, errStrict)
		}
	})
}
