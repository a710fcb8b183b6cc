package server_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stele-dev/stele/internal/cli"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
	"github.com/stele-dev/stele/server"
)

// TestCLIMonitorFields runs stele monitor --server against a real server
// holding identity fixtures: with payload access the default rules check
// event fields (a direct Global Administrator grant alerts, a PIM
// eligibility or a grant of an unprivileged role does not, an admin removing an MFA method does, a user
// adding one does not); without it, rules with fields fire on kind alone
// and say they are unchecked.
func TestCLIMonitorFields(t *testing.T) {
	dir := t.TempDir()
	ts := startServer(t, dir, server.Config{})
	var evs []*stelev1.Event
	for _, name := range []string{"role-member-add-direct", "pim-eligible-add-permanent", "security-info-admin-deleted", "security-info-user-registered"} {
		rec, err := os.ReadFile(filepath.Join("../identity/testdata/golden/entra.directoryAudit", name+".json"))
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, &stelev1.Event{Source: "entra/00000000-0000-4000-8000-0000000000aa/audit", Format: "entra.directoryAudit", Record: rec})
	}
	// A direct grant of a role that is not privileged: same kind, other
	// fields.
	reader := bytes.ReplaceAll(bytes.ReplaceAll(evs[0].Record, []byte("Global Administrator"), []byte("Reports Reader")), []byte("ABCDE"), []byte("FGHIJ"))
	evs = append(evs, &stelev1.Event{Source: evs[0].Source, Format: evs[0].Format, Record: reader})
	rs := mustAppend(t, ts.cli, evs)
	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := cli.Main(args, strings.NewReader(""), &out, &errb)
		return code, out.String(), errb.String()
	}
	// Wait for a checkpoint covering every entry.
	if code, _, errs := run("receipt", "--server", ts.grpcAddr, "--index", "4"); code != 0 {
		t.Fatalf("receipt: %s", errs)
	}
	type alert struct {
		Rule          string         `json:"rule"`
		Index         uint64         `json:"index"`
		FieldsChecked *bool          `json:"fields_checked"`
		FieldsError   string         `json:"fields_error"`
		Event         map[string]any `json:"event"`
	}
	alerts := func(out string) []alert {
		var as []alert
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			var a alert
			if err := json.Unmarshal([]byte(line), &a); err != nil {
				t.Fatalf("alert line %q: %v", line, err)
			}
			as = append(as, a)
		}
		return as
	}
	logKey := filepath.Join(dir, "log.pub")
	code, out, errs := run("monitor", "--once", "--log", ts.httpURL, "--log-key", logKey, "--server", ts.grpcAddr)
	if code != 0 {
		t.Fatalf("monitor --server: exit %d\n%s%s", code, out, errs)
	}
	as := alerts(out)
	if len(as) != 2 || as[0].Rule != "privileged-role-granted-outside-pim" || as[0].Index != rs[0].Index ||
		as[1].Rule != "mfa-method-removed-by-admin" || as[1].Index != rs[2].Index {
		t.Fatalf("alerts with payload access: %s", out)
	}
	for _, a := range as {
		if a.FieldsChecked == nil || !*a.FieldsChecked || a.Event == nil {
			t.Fatalf("alert %s not checked against the event: %+v", a.Rule, a)
		}
	}
	if p, _ := as[0].Event["privilege"].(map[string]any); p["role_name"] != "Global Administrator" || p["via_pim"] != false {
		t.Fatalf("alert event: %v", as[0].Event)
	}

	code, out, errs = run("monitor", "--once", "--log", ts.httpURL, "--log-key", logKey)
	if code != 0 {
		t.Fatalf("monitor: exit %d\n%s%s", code, out, errs)
	}
	as = alerts(out)
	if len(as) != 3 || as[0].Index != rs[0].Index || as[1].Index != rs[2].Index || as[2].Index != rs[4].Index {
		t.Fatalf("alerts without payload access: want both grants and the admin removal, unchecked: %s", out)
	}
	for _, a := range as {
		if a.FieldsChecked == nil || *a.FieldsChecked || !strings.Contains(a.FieldsError, "no access to payloads") {
			t.Fatalf("alert %s: %+v", a.Rule, a)
		}
	}
}
