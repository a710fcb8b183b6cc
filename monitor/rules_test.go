package monitor_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stele-dev/stele/leaf"
	"github.com/stele-dev/stele/monitor"
)

func lf(source, kind string, at time.Time) *leaf.Leaf {
	return &leaf.Leaf{Source: source, EventID: "x", Kind: kind, EventTime: at}
}

// Each default rule fires on the kinds it names and on nothing benign.
func TestDefaultRulesFire(t *testing.T) {
	fires := map[string]string{
		"directory.role.member.add":        "privileged-role-granted",
		"directory.role.eligibility.add":   "privileged-role-granted",
		"consent.admin.grant":              "tenant-wide-admin-consent",
		"app.credential.add":               "credential-added-to-application",
		"service_principal.credential.add": "credential-added-to-application",
		"policy.conditional_access.delete": "conditional-access-policy-changed",
		"policy.conditional_access.update": "conditional-access-policy-changed",
		"user.security_info.remove":        "mfa-method-removed",
	}
	for kind, rule := range fires {
		e := monitor.NewEngine(monitor.DefaultRules())
		ms := e.Eval(0, lf("entra/t1/audit", kind, base))
		if len(ms) != 1 || ms[0].Rule.Name != rule {
			t.Errorf("%s: fired %v, want %s", kind, ms, rule)
		}
	}
	benign := []string{"signin.interactive.success", "user.signin", "directory.role.member.remove", "consent.user.grant",
		"app.credential.remove", "policy.conditional_access.add", "user.security_info.add", "user.security_info.remove.self", "user.update",
		"group.member.add", "signin.interactive.failure"}
	e := monitor.NewEngine(monitor.DefaultRules())
	for i, kind := range benign {
		if ms := e.Eval(uint64(i), lf("entra/t1/audit", kind, base)); len(ms) != 0 {
			t.Errorf("%s: fired %s", kind, ms[0].Rule.Name)
		}
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
		{`{"rules":[{"name":"a","kinds":["x"],"fields":{"actor":"bob"}}]}`, "needs reader credentials and the normalised event model (issue 3)"},
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
