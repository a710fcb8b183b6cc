package monitor_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stele-dev/stele/identity"
	"github.com/stele-dev/stele/leaf"
	"github.com/stele-dev/stele/monitor"
)

func lf(source, kind string, at time.Time) *leaf.Leaf {
	return &leaf.Leaf{Source: source, EventID: "x", Kind: kind, EventTime: at}
}

// TestDefaultRulesOnFixtures runs the default rules over every identity
// golden fixture (identity/testdata/golden), normalised by the real
// normalisers and rendered by View: each rule fires on its events and on
// nothing else.
func TestDefaultRulesOnFixtures(t *testing.T) {
	want := map[string][]string{
		"entra.directoryAudit/role-member-add-direct": {"privileged-role-granted-outside-pim"},
		"okta.systemLog/privilege-grant":              {"privileged-role-granted-outside-pim"},
		// Okta names the role in debugData.privilegeGranted, in its own
		// spelling ("Organization administrator").
		"okta.systemLog/privilege-grant-org-admin-debugdata": {"privileged-role-granted-outside-pim"},
		// The directory's "Add member to role" by the PIM service principal
		// is the PIM activation's second record, not a grant outside PIM:
		// absent from this map, so the rule must stay silent on it.
		"aws.cloudtrail/attach-user-policy":                {"aws-admin-policy-attached"},
		"entra.directoryAudit/consent-admin":               {"tenant-wide-admin-consent"},
		"entra.directoryAudit/app-secret-added-hyphen":     {"credential-added-to-application"},
		"entra.diagnostic/app-secret-added-endash":         {"credential-added-to-application"},
		"entra.directoryAudit/app-certificate-added":       {"credential-added-to-application"},
		"entra.diagnostic/ca-policy-delete-level-string":   {"conditional-access-policy-deleted"},
		"entra.directoryAudit/ca-policy-update-casing":     {"conditional-access-policy-disabled"},
		"entra.directoryAudit/security-info-admin-deleted": {"mfa-method-removed-by-admin"},
	}
	files, err := filepath.Glob("../identity/testdata/golden/*/*.json")
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	fired := map[string]bool{}
	for _, f := range files {
		if strings.HasSuffix(f, ".golden.json") {
			continue
		}
		name := strings.TrimSuffix(filepath.Base(filepath.Dir(f))+"/"+filepath.Base(f), ".json")
		format := filepath.Base(filepath.Dir(f))
		record, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := identity.Normalize(format, record)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		view, err := monitor.View(ev)
		if err != nil {
			t.Fatal(err)
		}
		seen++
		l := lf("fixture/"+format+"/x", ev.GetKind(), base)
		var got []string
		for _, m := range monitor.NewEngine(monitor.DefaultRules()).EvalWith(0, l, func() (map[string]any, error) { return view, nil }) {
			if len(m.Rule.Fields) > 0 && !m.FieldsChecked {
				t.Errorf("%s: %s fired unchecked: %s", name, m.Rule.Name, m.FieldsError)
			}
			got = append(got, m.Rule.Name)
			fired[m.Rule.Name] = true
		}
		if fmt.Sprint(got) != fmt.Sprint(want[name]) {
			t.Errorf("%s (kind %s): fired %v, want %v", name, ev.GetKind(), got, want[name])
		}
	}
	if seen < 40 {
		t.Fatalf("only %d fixtures found", seen)
	}
	for _, r := range monitor.DefaultRules().Rules {
		if !fired[r.Name] && r.Count <= 1 {
			t.Errorf("default rule %s fired on no fixture", r.Name)
		}
	}
}

// Without payload access a rule with fields fires on kind alone, marked
// unchecked; a rule without fields is unaffected.
func TestDefaultRulesUnchecked(t *testing.T) {
	e := monitor.NewEngine(monitor.DefaultRules())
	ms := e.Eval(0, lf("entra/t1/audit", "directory.role.member.add", base))
	if len(ms) != 1 || ms[0].FieldsChecked || ms[0].FieldsError == "" {
		t.Fatalf("unchecked role grant: %+v", ms)
	}
	ms = e.Eval(1, lf("entra/t1/audit", "policy.conditional_access.delete", base))
	if len(ms) != 1 || ms[0].FieldsChecked || ms[0].FieldsError != "" {
		t.Fatalf("rule without fields: %+v", ms)
	}
	if ms := e.Eval(2, lf("entra/t1/audit", "user.create", base)); len(ms) != 0 {
		t.Fatalf("benign kind fired: %+v", ms)
	}
}

func TestSigninFailureBurst(t *testing.T) {
	e := monitor.NewEngine(monitor.DefaultRules())
	var fired []monitor.Match
	i := uint64(0)
	add := func(src string, at time.Time) {
		fired = append(fired, e.Eval(i, lf(src, "signin.interactive.failure", at))...)
		i++
	}
	// 9 failures in a minute in one source, 9 in another: nothing.
	for k := range 9 {
		add("entra/a/signin", base.Add(time.Duration(k)*time.Second))
		add("entra/b/signin", base.Add(time.Duration(k)*time.Second))
	}
	if len(fired) != 0 {
		t.Fatalf("fired below the threshold: %+v", fired)
	}
	// The 10th within 5 minutes in source a fires, once.
	add("entra/a/signin", base.Add(4*time.Minute))
	if len(fired) != 1 || fired[0].Count != 10 || fired[0].FirstIndex != 0 || fired[0].Rule.Name != "signin-failure-burst" {
		t.Fatalf("burst: %+v", fired)
	}
	// Failures spread out over hours never fire.
	for k := range 30 {
		add("entra/c/signin", base.Add(time.Duration(k)*time.Hour))
	}
	if len(fired) != 1 {
		t.Fatalf("spread failures fired: %+v", fired[1:])
	}
}

func TestParseRules(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"rules":[{"name":"a","kinds":["x"],"fields":{"actor..login":"bob"}}]}`, "empty segment"},
		{`{"rules":[{"name":"a","kinds":["x"],"fields":{"actor.login":[]}}]}`, "has no patterns"},
		{`{"rules":[{"name":"a","kinds":["x"],"fields":{"actor.login":7}}]}`, "a string or an array of strings"},
		{`{"rules":[{"name":"a","kinds":["x"],"actor":"bob"}]}`, `unknown field "actor"`},
		{`{"rules":[{"name":"a"}]}`, `rule "a" has no kinds`},
		{`{"rules":[{"name":"a","kinds":["x"],"count":5}]}`, "has no window"},
		{`{"rules":[{"name":"a","kinds":["x"]},{"name":"a","kinds":["y"]}]}`, "two rules"},
		{`{"rules":[{"name":"a","kinds":["x"],"count":5,"window":"soon"}]}`, "invalid duration"},
	} {
		_, err := monitor.ParseRules([]byte(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.in, err, tc.want)
		}
	}
	rs, err := monitor.ParseRules([]byte(`{"rules":[{"name":"okta-admin","kinds":["directory.role.*"],"source":"okta/*"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	e := monitor.NewEngine(rs)
	for _, tc := range []struct {
		src, kind string
		want      int
	}{{"okta/acme/system", "directory.role.member.add", 1}, {"entra/t/audit", "directory.role.member.add", 0}, {"okta/acme/system", "user.signin", 0}} {
		if got := len(e.Eval(0, lf(tc.src, tc.kind, base))); got != tc.want {
			t.Errorf("%s %s: %d matches, want %d", tc.src, tc.kind, got, tc.want)
		}
	}

}

// TestFieldConditions: field conditions match the normalised view by
// dotted path, with globs, lists, negation and paths through lists; a rule
// with fields that cannot be checked still fires, and says so.
func TestFieldConditions(t *testing.T) {
	rs, err := monitor.ParseRules([]byte(`{"rules":[
		{"name":"ga-outside-pim","kinds":["directory.role.*"],
		 "fields":{"privilege.via_pim":"false","privilege.role_name":["Global Administrator","Privileged * Administrator"]}},
		{"name":"not-example","kinds":["user.*"],"fields":{"targets.login":"!*@example.com"}},
		{"name":"human-or-app","kinds":["app.*"],"fields":{"actor.type":["!*MANAGED_IDENTITY","!*SYSTEM"]}},
		{"name":"mixed","kinds":["group.*"],"fields":{"actor.login":["*@example.com","!bot*"]}},
		{"name":"failed-burst","kinds":["signin.*"],"fields":{"outcome.status":"OUTCOME_STATUS_FAILURE"},"count":3,"window":"1m"}
	]}`))
	if err != nil {
		t.Fatal(err)
	}
	view := func(v map[string]any) monitor.EventView {
		return func() (map[string]any, error) { return v, nil }
	}
	role := func(name string, pim bool) map[string]any {
		return map[string]any{"privilege": map[string]any{"role_name": name, "via_pim": pim}}
	}
	targets := func(logins ...string) map[string]any {
		var ts []any
		for _, l := range logins {
			ts = append(ts, map[string]any{"login": l})
		}
		return map[string]any{"targets": ts}
	}
	for i, tc := range []struct {
		kind string
		ev   map[string]any
		want string
	}{
		{"directory.role.member.add", role("Global Administrator", false), "ga-outside-pim"},
		{"directory.role.member.add", role("Privileged Role Administrator", false), "ga-outside-pim"},
		{"directory.role.member.add", role("Global Administrator", true), ""},
		{"directory.role.member.add", role("Reports Reader", false), ""},
		{"directory.role.member.add", map[string]any{}, ""},
		{"user.create", targets("a@example.com"), ""},
		{"user.create", targets("a@example.com", "b@evil.test"), "not-example"},
		{"user.create", targets(), "not-example"},
		{"app.credential.add", map[string]any{"actor": map[string]any{"type": "PRINCIPAL_TYPE_USER"}}, "human-or-app"},
		{"app.credential.add", map[string]any{"actor": map[string]any{"type": "PRINCIPAL_TYPE_MANAGED_IDENTITY"}}, ""},
		{"app.credential.add", map[string]any{"actor": map[string]any{"type": "PRINCIPAL_TYPE_SYSTEM"}}, ""},
		{"group.member.add", map[string]any{"actor": map[string]any{"login": "ann@example.com"}}, "mixed"},
		{"group.member.add", map[string]any{"actor": map[string]any{"login": "bot7@example.com"}}, ""},
		{"group.member.add", map[string]any{"actor": map[string]any{"login": "ann@example.org"}}, ""},
	} {
		e := monitor.NewEngine(rs)
		ms := e.EvalWith(uint64(i), lf("entra/t/audit", tc.kind, base), view(tc.ev))
		got := ""
		if len(ms) > 0 {
			got = ms[0].Rule.Name
			if !ms[0].FieldsChecked || len(ms) != 1 {
				t.Errorf("case %d: %+v", i, ms)
			}
		}
		if got != tc.want {
			t.Errorf("case %d (%s %v): fired %q, want %q", i, tc.kind, tc.ev, got, tc.want)
		}
	}

	// Only matching events count towards a window.
	e := monitor.NewEngine(rs)
	fail := map[string]any{"outcome": map[string]any{"status": "OUTCOME_STATUS_FAILURE"}}
	ok := map[string]any{"outcome": map[string]any{"status": "OUTCOME_STATUS_SUCCESS"}}
	var fired []monitor.Match
	for i, ev := range []map[string]any{fail, ok, ok, fail, ok, fail} {
		fired = append(fired, e.EvalWith(uint64(i), lf("entra/t/signin", "signin.interactive", base.Add(time.Duration(i)*time.Second)), view(ev))...)
	}
	if len(fired) != 1 || fired[0].Count != 3 || fired[0].FirstIndex != 0 {
		t.Fatalf("burst of failures among successes: %+v", fired)
	}

	// Without payload access, or with an erased payload, or a fetch
	// error, a rule with fields fires unchecked, and the view is read once.
	reads := 0
	for _, tc := range []struct {
		view monitor.EventView
		want string
	}{
		{nil, "no access to payloads"},
		{func() (map[string]any, error) { reads++; return nil, nil }, "erased"},
		{func() (map[string]any, error) {
			reads++
			return nil, errors.New("PermissionDenied: reader role needed")
		}, "PermissionDenied"},
	} {
		ms := monitor.NewEngine(rs).EvalWith(0, lf("entra/t/audit", "directory.role.member.add", base), tc.view)
		if len(ms) != 1 || ms[0].FieldsChecked || !strings.Contains(ms[0].FieldsError, tc.want) {
			t.Errorf("unchecked: %+v, want an unchecked match saying %q", ms, tc.want)
		}
	}
	if reads != 2 {
		t.Errorf("view read %d times, want 2", reads)
	}
}
