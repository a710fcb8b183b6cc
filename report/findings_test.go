package report_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stele-dev/stele/internal/steletest"
	"github.com/stele-dev/stele/report"
	"github.com/stele-dev/stele/server"
)

// controlClaims returns, per control ID, the IDs and statuses of its claims.
func controlClaims(r *report.Report) map[string]map[string]string {
	out := map[string]map[string]string{}
	for _, c := range r.Controls {
		out[c.ID] = map[string]string{}
		for _, cl := range c.Claims {
			out[c.ID][cl.ID] = cl.Status
		}
	}
	return out
}

// TestReportDriftAndMonitor logs the scripted tenant of
// drift/testdata/scenario, runs `stele drift --json` and `stele monitor`
// on it as docs/state.md does, and gives their outputs to `stele report`:
// the findings are in the twin with every cited receipt checked, the
// controls count on them only when given, a drift check or alert that does
// not match the log is an exception, and the seal covers them.
func TestReportDriftAndMonitor(t *testing.T) {
	l := steletest.Start(t, false, server.Config{})
	if o, e, code := stele(t, "submit", "--server", l.GRPC, "../drift/testdata/scenario/events.jsonl"); code != 0 {
		t.Fatalf("submit: exit %d\n%s%s", code, o, e)
	}
	l.WaitSize(t, 17)
	dir := t.TempDir()
	scen := "../drift/testdata/scenario/"
	ledger := []string{"--log", l.URL, "--log-key", l.KeyFile, "--server", l.GRPC}
	driftOut, e, code := stele(t, append([]string{"drift", "--json", "--snapshot", scen + "snapshot", "--baseline", scen + "baseline.json"}, ledger...)...)
	if code != 4 {
		t.Fatalf("stele drift: exit %d, want 4 (drift found)\n%s", code, e)
	}
	baselineOnly, e, code := stele(t, append([]string{"drift", "--json", "--baseline", scen + "baseline.json"}, ledger...)...)
	if code != 4 {
		t.Fatalf("stele drift --baseline: exit %d, want 4\n%s", code, e)
	}
	alerts, e, _ := stele(t, append([]string{"monitor", "--once", "--drift-snapshot", scen + "snapshot", "--baseline", scen + "baseline.json"}, ledger...)...)
	alertLines := strings.Count(alerts, "\n")
	if alertLines < 10 || !strings.Contains(alerts, `"type":"drift"`) || !strings.Contains(alerts, `"type":"rule"`) {
		t.Fatalf("stele monitor: %d alerts\n%s\n%s", alertLines, alerts, e)
	}
	var want struct {
		Findings []struct {
			Verdict    string
			LastEvents []struct{ Index uint64 } `json:"last_events"`
		}
		Deviations []any
	}
	if err := json.Unmarshal([]byte(driftOut), &want); err != nil {
		t.Fatal(err)
	}
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	from, to := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339), time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	key := filepath.Join(dir, "operator.key")
	run := func(out string, extra ...string) (*report.Report, string, int) {
		args := append([]string{"report", "--log", l.URL, "--log-key", l.KeyFile, "--from", from, "--to", to, "--out", out,
			"--signing-key", key, "--pdf", "off"}, extra...)
		_, e, code := stele(t, args...)
		b, err := os.ReadFile(filepath.Join(out, report.JSONFile))
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, e)
		}
		var r report.Report
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatal(err)
		}
		return &r, e, code
	}

	// Both given: the drift check shows mismatches, an exception.
	out := filepath.Join(dir, "both")
	r, stderr, code := run(out, "--drift", write("drift.json", driftOut), "--monitor-alerts", write("alerts.jsonl", alerts))
	if code != 1 || !strings.Contains(stderr, "control(s) show an exception") {
		t.Errorf("a report with drift mismatches: exit %d, %s", code, stderr)
	}
	d := r.Drift
	if d == nil || !d.TreeVerified || d.Size != 17 || len(d.Findings) != len(want.Findings) || len(d.Deviations) != len(want.Deviations) || d.Mismatches == 0 {
		t.Fatalf("drift evidence: %+v, want %d findings and %d deviations of a verified tree of size 17", d, len(want.Findings), len(want.Deviations))
	}
	for i, f := range d.Findings {
		if f.What != want.Findings[i].Verdict || len(f.Events) != len(want.Findings[i].LastEvents) {
			t.Errorf("finding %d: %+v, want verdict %s and %d events", i, f, want.Findings[i].Verdict, len(want.Findings[i].LastEvents))
		}
		for j, ev := range f.Events {
			if !ev.Verified || ev.Index != want.Findings[i].LastEvents[j].Index || ev.Kind == "" {
				t.Errorf("finding %d event %d: %+v", i, j, ev)
			}
		}
	}
	m := r.Monitor
	if m == nil || m.Alerts != alertLines || m.InPeriod != alertLines || m.Unverified != 0 || m.Integrity != 0 || m.ByType["drift"] == 0 {
		t.Fatalf("monitor evidence: %+v, want %d alerts in the period, all verified", m, alertLines)
	}
	for _, a := range m.Listed {
		if a.Event != nil && !a.Event.Verified {
			t.Errorf("alert %+v: its receipt did not verify", a)
		}
	}
	cc := controlClaims(r)
	if cc["A.8.16"]["drift"] != report.Exception || cc["CC7.2"]["monitor_alerts"] != report.Evidenced || cc["A.8.15"]["drift"] != report.Exception {
		t.Errorf("controls: %v", cc)
	}
	for _, ns := range r.NotCovered {
		if strings.Contains(ns, "no drift check") || strings.Contains(ns, "no monitor alert stream") {
			t.Errorf("not covered, though given: %q", ns)
		}
	}
	page, err := os.ReadFile(filepath.Join(out, report.HTMLFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{`id="sec-drift"`, `id="sec-monitor"`, `href="#sec-drift"`, `href="#sec-monitor"`, "logged_change_missing_from_tenant",
		"permanent_global_administrator", "✓ proven in the checkpoint of size 17", report.Digest([]byte(driftOut))} {
		if !bytes.Contains(page, []byte(w)) {
			t.Errorf("the page lacks %q", w)
		}
	}
	// The seal covers them: an edited finding in the twin is refused.
	if o, e, code := stele(t, "verify-report", "--key", key+".pub", out); code != 0 {
		t.Fatalf("verify-report: exit %d\n%s%s", code, o, e)
	}
	twin, _ := os.ReadFile(filepath.Join(out, report.JSONFile))
	edited := bytes.Replace(twin, []byte(`"mismatches": `), []byte(`"mismatches": 0`), 1)
	if bytes.Equal(edited, twin) {
		t.Fatal("no mismatches field in the twin")
	}
	if err := os.WriteFile(filepath.Join(out, report.JSONFile), edited, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, e, code := stele(t, "verify-report", "--key", key+".pub", out); code != 1 || !strings.Contains(e, "report.json was changed after it was sealed") {
		t.Errorf("verify-report of an edited drift section: exit %d, %s", code, e)
	}

	// A baseline-only check (no mismatches) is evidence; neither given:
	// the controls do not name them and the report says what is missing.
	r, stderr, code = run(filepath.Join(dir, "baseline"), "--drift", write("baseline.json", baselineOnly))
	if code != 0 || r.Drift == nil || r.Drift.Mismatches != 0 || len(r.Drift.Deviations) == 0 || controlClaims(r)["A.8.16"]["drift"] != report.Evidenced {
		t.Errorf("a baseline-only drift check: exit %d %s, %+v", code, stderr, r.Drift)
	}
	if _, ok := controlClaims(r)["A.8.16"]["monitor_alerts"]; ok {
		t.Errorf("monitor_alerts claimed without alerts")
	}
	r, stderr, code = run(filepath.Join(dir, "none"))
	if code != 0 || r.Drift != nil || r.Monitor != nil {
		t.Errorf("no findings given: exit %d %s", code, stderr)
	}
	for id, cls := range controlClaims(r) {
		if _, ok := cls["drift"]; ok {
			t.Errorf("%s claims drift without a drift check", id)
		}
		if _, ok := cls["monitor_alerts"]; ok {
			t.Errorf("%s claims monitor alerts without alerts", id)
		}
	}
	if n := strings.Join(r.NotCovered, "\n"); !strings.Contains(n, "no drift check was given") || !strings.Contains(n, "no monitor alert stream was given") {
		t.Errorf("not covered: %q", n)
	}

	// What does not match the log is an exception, not evidence: a drift
	// check of another tree, an alert whose receipt was altered.
	var fk map[string]any
	if err := json.Unmarshal([]byte(baselineOnly), &fk); err != nil {
		t.Fatal(err)
	}
	root := fk["checkpoint"].(map[string]any)["root"].(string)
	fk["checkpoint"].(map[string]any)["root"] = strings.Repeat("0", 8) + root[8:]
	fb, _ := json.Marshal(fk)
	r, _, code = run(filepath.Join(dir, "forked"), "--drift", write("forked.json", string(fb)))
	if code != 1 || r.Drift.TreeVerified || !strings.Contains(r.Drift.TreeError, "differs from the log's") || controlClaims(r)["A.8.16"]["drift"] != report.Exception {
		t.Errorf("a drift check of another tree: exit %d, %+v", code, r.Drift)
	}
	i := strings.Index(alerts, `"receipt":"`)
	j := i + strings.Index(alerts[i:], `\n\n`) + 8 // into the receipt's checkpoint, past its blank line
	bad := alerts[:j] + map[bool]string{true: "B", false: "A"}[alerts[j] == 'A'] + alerts[j+1:]
	r, _, code = run(filepath.Join(dir, "badalert"), "--monitor-alerts", write("bad.jsonl", bad))
	if code != 1 || r.Monitor.Unverified != 1 || controlClaims(r)["CC7.3"]["monitor_alerts"] != report.Exception {
		t.Errorf("an alert with an altered receipt: exit %d, %+v", code, r.Monitor)
	}

	// Input that is not what those commands write: a clear error.
	for name, c := range map[string]struct{ flag, content, want string }{
		"drift":  {"--drift", `{"findings":[]}`, "not the output of `stele drift --json`"},
		"alerts": {"--monitor-alerts", alerts + "not json\n", "monitor alerts, line " + strconv.Itoa(alertLines+1) + ": not an alert `stele monitor` writes"},
		"origin": {"--drift", strings.Replace(driftOut, `"origin": "`+r.Log.Origin, `"origin": "other.example/log`, 1), `the check is of log "other.example/log"`},
	} {
		_, e, code := stele(t, "report", "--log", l.URL, "--log-key", l.KeyFile, "--from", from, "--to", to, "--out", filepath.Join(dir, "x-"+name),
			"--signing-key", key, "--pdf", "off", c.flag, write(name+".in", c.content))
		if code == 0 || !strings.Contains(e, c.want) {
			t.Errorf("%s: exit %d, %q, want %q", name, code, e, c.want)
		}
	}
}
