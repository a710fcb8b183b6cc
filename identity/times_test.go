package identity

import (
	"strings"
	"testing"
	"time"
)

// TestTimeForms: the documented time forms and what each reads as, under
// the strict rule (Okta, OCSF, JSON) and the UTC rule (Entra, CloudTrail).
func TestTimeForms(t *testing.T) {
	utc := func(s string) time.Time {
		tm, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			panic(err)
		}
		return tm.UTC()
	}
	for _, c := range []struct {
		in     string
		want   time.Time // zero: refused under that rule
		strict bool      // accepted under the strict rule too
		err    string    // for a refusal under the UTC rule
	}{
		{"2025-11-14T01:48:53.6134712Z", utc("2025-11-14T01:48:53.6134712Z"), true, ""},
		{"2025-11-14T01:48:53.6134712+00:00", utc("2025-11-14T01:48:53.6134712Z"), true, ""},
		{"2026-01-02T03:04:05-05:00", utc("2026-01-02T08:04:05Z"), true, ""},
		{"2026-01-02 03:04:05+01:00", utc("2026-01-02T02:04:05Z"), true, ""},
		{"2022-03-22 14:21:53.225", utc("2022-03-22T14:21:53.225Z"), false, ""},
		{"2022-03-22T14:21:53", utc("2022-03-22T14:21:53Z"), false, ""},
		{"11/14/2025 1:48:53 AM", utc("2025-11-14T01:48:53Z"), false, ""},
		{"11/14/2025 12:05:00 AM", utc("2025-11-14T00:05:00Z"), false, ""},
		{"11/14/2025 12:05:00 PM", utc("2025-11-14T12:05:00Z"), false, ""},
		{"1/2/2026, 1:02:03.5 pm", utc("2026-01-02T13:02:03.5Z"), false, ""},
		{"14/11/2025 1:48:53 AM", time.Time{}, false, "is day/month/year"},
		{"11/14/2025 0:48:53 AM", time.Time{}, false, "has hour 0 with AM/PM"},
		{"11/31/2025 1:48:53 AM", time.Time{}, false, "is not an RFC 3339 time"},
		{"2025-11-14", time.Time{}, false, "is not an RFC 3339 time"},
		{"Nov 14, 2025, 12:01:02 PM", time.Time{}, false, "is not an RFC 3339 time"},
		{"0000-12-31T23:00:00-02:00", time.Time{}, false, "outside the years"},
	} {
		got, err := parseTimeZone("f", c.in, zoneUTC)
		switch {
		case c.want.IsZero():
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: %v %v, want an error containing %q", c.in, got, err, c.err)
			}
		case err != nil || !got.Equal(c.want) || got.Location() != time.UTC:
			t.Errorf("%q under the UTC rule: %v %v, want %v", c.in, got, err, c.want)
		}
		_, err = parseTimeZone("f", c.in, zoneRequired)
		if (err == nil) != c.strict {
			t.Errorf("%q under the strict rule: %v, want accepted=%v", c.in, err, c.strict)
		}
	}
}

// TestLAProps: how a Log Analytics row's columns become properties.
func TestLAProps(t *testing.T) {
	o, err := decodeObject([]byte(`{"TimeGenerated [UTC]":"11/14/2025 1:48:53 AM","Id":"x","IPAddress":"192.0.2.1","Location":"DE",
		"LocationDetails":"{\"city\":\"Berlin\"}","ConditionalAccessPolicies":[],"Status":" {\"errorCode\":0} ","ResourceId":"/tenants/t/providers/Microsoft.aadiam",
		"ResourceIdentity":"00000003-0000-0000-c000-000000000000","UserAgent":"[FBAN/FBIOS;FBAV/1.0]","Identity":"Lee"}`))
	if err != nil {
		t.Fatal(err)
	}
	p, err := laProps(o)
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{"timeGenerated": "11/14/2025 1:48:53 AM", "id": "x", "ipAddress": "192.0.2.1", "locationCode": "DE",
		"resourceId": "00000003-0000-0000-c000-000000000000", "userAgent": "[FBAN/FBIOS;FBAV/1.0]", "azureResourceId": "/tenants/t/providers/Microsoft.aadiam", "identity": "Lee"} {
		if got := p.str(key); got != want {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}
	if loc, err := p.object("location", "location"); err != nil || loc.str("city") != "Berlin" {
		t.Errorf("location %v %v", loc, err)
	}
	if st, err := p.object("status", "status"); err != nil || st.str("errorCode") != "0" {
		t.Errorf("status %v %v", st, err)
	}
	if v, _ := p.lookup("appliedConditionalAccessPolicies"); v.kind != kindArray {
		t.Errorf("ConditionalAccessPolicies not renamed: %v", p)
	}
	if _, err := laProps(obj{{name: "Status", v: value{kind: kindString, text: `{"errorCode":0,"errorCode":1}`}}}); err == nil || !strings.Contains(err.Error(), `column "Status" holds JSON text that does not decode: record has a duplicate key`) {
		t.Errorf("JSON text with two readings: %v", err)
	}
}

// TestLARowUnderGraphFormats: a Log Analytics sign-in or audit row sent as
// entra.signIn or entra.directoryAudit reads as under entra.diagnostic
// (its Category and PascalCase columns honoured), not as an unknown
// sign-in with an empty outcome and actor.
func TestLARowUnderGraphFormats(t *testing.T) {
	for _, c := range []struct{ fixture, format string }{
		{"entra.diagnostic/la-signinlogs-row-json", "entra.signIn"},
		{"entra.diagnostic/la-noninteractive-csv-row", "entra.signIn"},
		{"entra.diagnostic/la-auditlogs-row-json", "entra.directoryAudit"},
	} {
		diag := normalizeFixture(t, c.fixture)
		ev, err := Normalize(c.format, diag.RawRecord)
		if err != nil {
			t.Fatalf("%s as %s: %v", c.fixture, c.format, err)
		}
		if ev.Kind != diag.Kind || ev.GetOutcome().GetStatus() != diag.GetOutcome().GetStatus() || ev.GetActor().GetLogin() != diag.GetActor().GetLogin() || ev.NativeId != diag.NativeId {
			t.Errorf("%s as %s: kind %q outcome %s actor %q id %q; as entra.diagnostic %q %s %q %q", c.fixture, c.format,
				ev.Kind, ev.GetOutcome().GetStatus(), ev.GetActor().GetLogin(), ev.NativeId, diag.Kind, diag.GetOutcome().GetStatus(), diag.GetActor().GetLogin(), diag.NativeId)
		}
	}
}
