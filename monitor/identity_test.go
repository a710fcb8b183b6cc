package monitor_test

import (
	"os"
	"strings"
	"testing"

	"github.com/stele-dev/stele/identity"
	"github.com/stele-dev/stele/monitor"
)

// TestDefaultRulesOnNormalisedRecords: the default rules fire on the kinds
// the server's normaliser actually gives real-shaped records (the identity
// golden fixtures), and stay quiet on the benign ones.
func TestDefaultRulesOnNormalisedRecords(t *testing.T) {
	cases := map[string]string{
		"entra.directoryAudit/role-member-add-direct":        "privileged-role-granted",
		"entra.directoryAudit/pim-eligible-add-permanent":    "privileged-role-granted",
		"okta.systemLog/privilege-grant":                     "privileged-role-granted",
		"entra.directoryAudit/consent-admin":                 "tenant-wide-admin-consent",
		"entra.directoryAudit/app-secret-added-hyphen":       "credential-added-to-application",
		"entra.diagnostic/app-secret-added-endash":           "credential-added-to-application",
		"entra.diagnostic/mi-credential-rotation-ipv6":       "credential-added-to-application",
		"entra.directoryAudit/ca-policy-update-casing":       "conditional-access-policy-changed",
		"entra.diagnostic/ca-policy-delete-level-string":     "conditional-access-policy-changed",
		"entra.directoryAudit/security-info-admin-deleted":   "mfa-method-removed",
		"entra.directoryAudit/security-info-user-registered": "",
		"entra.diagnostic/ca-policy-add-level-int":           "",
		"entra.directoryAudit/user-create":                   "",
		"entra.diagnostic/signin-interactive-failure":        "",
		"aws.cloudtrail/console-login-failure":               "",
	}
	for name, want := range cases {
		format, _, _ := strings.Cut(name, "/")
		rec, err := os.ReadFile("../identity/testdata/golden/" + name + ".json")
		if err != nil {
			t.Fatal(err)
		}
		ev, err := identity.Normalize(format, rec)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		e := monitor.NewEngine(monitor.DefaultRules())
		ms := e.Eval(0, lf("entra/t1/audit", ev.Kind, base))
		switch {
		case want == "" && len(ms) != 0:
			t.Errorf("%s (kind %s): fired %s", name, ev.Kind, ms[0].Rule.Name)
		case want != "" && (len(ms) != 1 || ms[0].Rule.Name != want):
			t.Errorf("%s (kind %s): fired %v, want %s", name, ev.Kind, ms, want)
		}
	}
	// Ten failed sign-ins of the normaliser's kind in one source are a burst.
	rec, err := os.ReadFile("../identity/testdata/golden/entra.diagnostic/signin-interactive-failure.json")
	if err != nil {
		t.Fatal(err)
	}
	ev, err := identity.Normalize("entra.diagnostic", rec)
	if err != nil {
		t.Fatal(err)
	}
	e := monitor.NewEngine(monitor.DefaultRules())
	var fired []monitor.Match
	for i := range 10 {
		fired = append(fired, e.Eval(uint64(i), lf("entra/t1/signin", ev.Kind, base))...)
	}
	if len(fired) != 1 || fired[0].Rule.Name != "signin-failure-burst" {
		t.Errorf("ten %s: fired %v", ev.Kind, fired)
	}
}
