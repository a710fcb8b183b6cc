package report

import (
	"strings"
	"testing"
)

const origin = "stele.localhost/log"

const goodDrift = `{"origin":"stele.localhost/log","checkpoint":{"size":17,"root":"bc7ca713ee40c841f704723a1a81ec788c04a362f5b40cc69ca3b8b81fb4d419"},` +
	`"findings":[{"tenant":"t","type":"directory_role","key":"k","side":"tenant_only","ledger":"absent","live":"present","verdict":"changed_without_logged_event","events":[],"last_events":[]}],` +
	`"deviations":[],"compared":["directory_role"]}`

func TestParseDrift(t *testing.T) {
	for _, c := range []struct{ name, in, err string }{
		{"ok", goodDrift, ""},
		{"not json", "drift", "not the output of `stele drift --json`"},
		{"unknown field", strings.Replace(goodDrift, `"compared"`, `"comparedx"`, 1), `unknown field "comparedx"`},
		{"two values", goodDrift + goodDrift, "more than one JSON value"},
		{"no findings", `{"origin":"stele.localhost/log","deviations":[]}`, "no origin, findings or deviations"},
		{"no origin", strings.Replace(goodDrift, `"origin":"stele.localhost/log",`, "", 1), "no origin, findings or deviations"},
		{"other log", strings.Replace(goodDrift, origin, "other.example/log", 1), `the check is of log "other.example/log", this report of "stele.localhost/log"`},
		{"size not a number", strings.Replace(goodDrift, `"size":17`, `"size":"17"`, 1), "cannot unmarshal"},
	} {
		f, err := parseDrift([]byte(c.in), origin)
		switch {
		case c.err == "" && (err != nil || f == nil || len(f.Findings) != 1):
			t.Errorf("%s: %v", c.name, err)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%s: error %v, want %q", c.name, err, c.err)
		}
	}
}

const goodAlert = `{"type":"rule","time":"2026-12-05T10:00:00Z","origin":"stele.localhost/log","rule":"r","severity":"high","index":3,"receipt":"x"}`

func TestParseAlerts(t *testing.T) {
	for _, c := range []struct {
		name, in string
		n        int
		err      string
	}{
		{"ok", goodAlert + "\n\n" + goodAlert + "\n", 2, ""},
		{"empty", "", 0, ""},
		{"not json", goodAlert + "\nmonitor: verified at size 3\n", 0, "line 2: not an alert `stele monitor` writes"},
		{"unknown field", strings.Replace(goodAlert, `"severity"`, `"sev"`, 1), 0, `line 1: not an alert ` + "`stele monitor`" + ` writes: json: unknown field "sev"`},
		{"two values", goodAlert + goodAlert, 0, "line 1: not an alert `stele monitor` writes: more than one JSON value"},
		{"no type", strings.Replace(goodAlert, `"type":"rule",`, "", 1), 0, "line 1: an alert needs a type and an RFC 3339 time"},
		{"bad time", strings.Replace(goodAlert, "2026-12-05T10:00:00Z", "yesterday", 1), 0, `(got "rule", "yesterday")`},
		{"other log", strings.Replace(goodAlert, origin, "other.example/log", 1), 0, `line 1: an alert of log "other.example/log"`},
	} {
		as, err := parseAlerts([]byte(c.in), origin)
		switch {
		case c.err == "" && (err != nil || len(as) != c.n):
			t.Errorf("%s: %d alerts, %v", c.name, len(as), err)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%s: error %v, want %q", c.name, err, c.err)
		}
	}
}

func FuzzParseDrift(f *testing.F) {
	f.Add([]byte(goodDrift))
	f.Add([]byte(`{"origin":"stele.localhost/log","findings":[],"deviations":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := parseDrift(b, origin)
		if err == nil && (d.Origin != origin || d.Findings == nil || d.Deviations == nil) {
			t.Fatalf("accepted %q as %+v", b, d)
		}
	})
}

func FuzzParseAlerts(f *testing.F) {
	f.Add([]byte(goodAlert + "\n"))
	f.Add([]byte(`{"type":"fork","time":"2026-12-05T10:00:00.5+01:00"}` + "\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		as, err := parseAlerts(b, origin)
		if err != nil {
			return
		}
		for _, a := range as {
			if a.Type == "" || a.t.IsZero() || (a.Origin != "" && a.Origin != origin) {
				t.Fatalf("accepted %q as %+v", b, a)
			}
		}
	})
}
