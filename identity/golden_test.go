package identity

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/stele-dev/stele/leaf"
	"github.com/stele-dev/stele/payload"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
)

var update = flag.Bool("update", false, "rewrite the golden normalised JSON files from the current normalisers")

// Fixture is one golden input record.
type Fixture struct {
	Format, Name, Path string
	Record             []byte
}

// fixtures lists testdata/golden/<format>/<name>.json.
func fixtures(t testing.TB) []Fixture {
	t.Helper()
	paths, err := filepath.Glob("testdata/golden/*/*.json")
	if err != nil {
		t.Fatal(err)
	}
	var out []Fixture
	for _, p := range paths {
		if strings.HasSuffix(p, ".golden.json") {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, Fixture{Format: filepath.Base(filepath.Dir(p)), Name: strings.TrimSuffix(filepath.Base(p), ".json"), Path: p, Record: b})
	}
	if len(out) == 0 {
		t.Fatal("no fixtures under testdata/golden")
	}
	return out
}

// wantKind is the kind each fixture must get, written by hand from the
// catalogue in docs/identity.md (so a golden regenerated with -update
// cannot silently change a kind).
var wantKind = map[string]string{
	"entra.directoryAudit/role-member-add-direct":            "directory.role.member.add",
	"entra.directoryAudit/pim-eligible-add-permanent":        "directory.role.eligibility.add",
	"entra.directoryAudit/pim-activation-expired":            "directory.role.activation.expire",
	"entra.directoryAudit/ca-policy-update-casing":           "policy.conditional_access.update",
	"entra.directoryAudit/security-info-user-registered":     "user.security_info.add.self",
	"entra.directoryAudit/security-info-admin-deleted":       "user.security_info.remove",
	"entra.directoryAudit/security-info-admin-registered":    "user.security_info.add",
	"entra.directoryAudit/app-certificate-added":             "app.credential.add",
	"entra.diagnostic/signin-service-principal-failure":      "signin.service_principal.failure",
	"entra.diagnostic/signin-managed-identity-failure":       "signin.managed_identity.failure",
	"entra.diagnostic/signin-noninteractive-failure":         "signin.non_interactive.failure",
	"entra.directoryAudit/consent-admin":                     "consent.admin.grant",
	"entra.directoryAudit/app-role-grant-from-consent":       "app.role_assignment.add",
	"entra.directoryAudit/delegated-permission-grant":        "app.permission_grant.add",
	"entra.directoryAudit/app-registration-by-ci":            "app.registration.add",
	"entra.directoryAudit/app-secret-added-hyphen":           "app.credential.add",
	"entra.directoryAudit/user-create":                       "user.create",
	"entra.directoryAudit/user-disable":                      "user.disable",
	"entra.directoryAudit/user-delete":                       "user.delete",
	"entra.directoryAudit/password-reset-admin-failure":      "user.password.reset",
	"entra.directoryAudit/role-member-remove-by-automation":  "directory.role.member.remove",
	"entra.directoryAudit/unknown-activity":                  "entra.audit.unknown",
	"entra.directoryAudit/quirks-numeric-result-type-casing": "entra.audit.unknown",
	"entra.diagnostic/pim-activation":                        "directory.role.activation",
	"entra.diagnostic/ca-policy-add-level-int":               "policy.conditional_access.add",
	"entra.diagnostic/ca-policy-delete-level-string":         "policy.conditional_access.delete",
	"entra.diagnostic/app-secret-added-endash":               "app.credential.add",
	"entra.diagnostic/mi-credential-rotation-ipv6":           "service_principal.credential.add",
	"entra.diagnostic/signin-interactive-mfa-success":        "signin.interactive.success",
	"entra.diagnostic/signin-interactive-failure":            "signin.interactive.failure",
	"entra.diagnostic/signin-noninteractive":                 "signin.non_interactive.success",
	"entra.diagnostic/signin-service-principal":              "signin.service_principal.success",
	"entra.diagnostic/signin-managed-identity":               "signin.managed_identity.success",
	"entra.diagnostic/legacy-2018-schema":                    "group.member.add",
	"entra.diagnostic/provisioning-create":                   "provisioning.create",
	"entra.signIn/graph-interactive-success":                 "signin.interactive.success",
	"entra.signIn/graph-noninteractive-failure":              "signin.non_interactive.failure",
	"okta.systemLog/privilege-grant":                         "directory.role.member.add",
	"okta.systemLog/session-start-failure":                   "signin.interactive.failure",
	"okta.systemLog/unknown-event-type":                      "okta.unknown",
	"aws.cloudtrail/console-login-success":                   "signin.interactive.success",
	"aws.cloudtrail/console-login-failure":                   "signin.interactive.failure",
	"aws.cloudtrail/assume-role":                             "session.role.assume",
	"aws.cloudtrail/create-access-key-by-assumed-role":       "user.access_key.add",
	"aws.cloudtrail/attach-user-policy":                      "user.policy.attach",
	"aws.cloudtrail/unknown-event":                           "aws.unknown",
	"ocsf/authentication-logon":                              "ocsf.3002.1",
	"json/with-id-and-time":                                  GenericKind,
	"json/without-id":                                        GenericKind,
	// Issue 22: records shaped like the providers' published examples.
	"entra.signIn/graph-v1-entity-pretty":                            "signin.interactive.success",
	"entra.signIn/graph-beta-noninteractive-50126":                   "signin.non_interactive.failure",
	"entra.directoryAudit/graph-v1-entity-pretty":                    "group.member.add",
	"entra.directoryAudit/pim-activation-pim-record":                 "directory.role.activation",
	"entra.directoryAudit/pim-activation-directory-record-by-ms-pim": "directory.role.member.add",
	"entra.diagnostic/signin-no-status-resulttype-0":                 "signin.interactive.success",
	"entra.diagnostic/signin-envelope-time-unreadable":               "signin.non_interactive.success",
	"entra.diagnostic/signin-microsoft-service-principal":            "signin.microsoft_service_principal.success",
	"entra.diagnostic/signin-adfs-failure":                           "signin.adfs.failure",
	"entra.diagnostic/risky-users":                                   "risk.user.update",
	"entra.diagnostic/user-risk-event":                               "risk.user.detection",
	"entra.diagnostic/risky-service-principal":                       "risk.service_principal.update",
	"entra.diagnostic/service-principal-risk-event":                  "risk.service_principal.detection",
	"entra.diagnostic/graph-activity":                                "graph.activity",
	"entra.diagnostic/network-access-traffic":                        "network_access.traffic",
	"entra.diagnostic/network-access-alert":                          "network_access.alert",
	"entra.diagnostic/network-access-connection":                     "network_access.connection",
	"entra.diagnostic/remote-network-health":                         "network_access.remote_network_health",
	"entra.diagnostic/enriched-office365-audit":                      "network_access.office365_audit",
	"entra.diagnostic/b2c-request":                                   "b2c.request",
	"entra.diagnostic/custom-security-attribute-audit":               "entra.audit.unknown",
	"entra.diagnostic/unknown-category-keeps-actor-outcome":          "entra.diagnostic.unknown",
	"entra.diagnostic/la-signinlogs-row-json":                        "signin.interactive.success",
	"entra.diagnostic/la-noninteractive-csv-row":                     "signin.non_interactive.failure",
	"entra.diagnostic/la-auditlogs-row-json":                         "user.create",
	"entra.diagnostic/la-service-principal-row-no-status":            "signin.service_principal.success",
	"entra.diagnostic/la-managed-identity-row-zero-coordinates":      "signin.managed_identity.success",
	"entra.diagnostic/la-sentinel-time-without-zone":                 "signin.interactive.failure",
	"entra.diagnostic/la-riskyusers-row":                             "risk.user.update",
	"okta.systemLog/privilege-grant-org-admin-debugdata":             "directory.role.member.add",
	"okta.systemLog/privilege-revoke-debugdata":                      "directory.role.member.remove",
	"okta.systemLog/session-start-without-outcome":                   "signin.interactive.unknown",
	"okta.systemLog/session-start-success-docs-shape":                "signin.interactive.success",
	"okta.systemLog/session-start-challenge":                         "signin.interactive.unknown",
	"okta.systemLog/event-hook-event-user-create":                    "user.create",
	"aws.cloudtrail/assume-role-userguide-pretty":                    "session.role.assume",
	"aws.cloudtrail/console-login-without-response-elements":         "signin.interactive.unknown",
	"aws.cloudtrail/console-login-root-mfa-userguide-pretty":         "signin.interactive.success",
	"aws.cloudtrail/create-user-account-from-useridentity":           "user.create",
	"aws.cloudtrail/cloudtrail-lake-time-without-zone":               "user.access_key.remove",
}

// TestGolden normalises every fixture and compares the rendered view with
// its .golden.json; -update rewrites them.
func TestGolden(t *testing.T) {
	seen := map[string]bool{}
	for _, f := range fixtures(t) {
		key := f.Format + "/" + f.Name
		seen[key] = true
		t.Run(key, func(t *testing.T) {
			ev, err := Normalize(f.Format, f.Record)
			if err != nil {
				t.Fatalf("Normalize: %v", err)
			}
			if !bytes.Equal(ev.RawRecord, f.Record) {
				t.Fatal("raw record is not the input bytes")
			}
			if want, ok := wantKind[key]; !ok {
				t.Errorf("fixture has no expected kind in wantKind")
			} else if ev.Kind != want {
				t.Errorf("kind %q, want %q", ev.Kind, want)
			}
			if err := leaf.ValidateKind(ev.Kind); err != nil {
				t.Errorf("kind is not a valid leaf kind: %v", err)
			}
			if err := leaf.ValidateEventID(ev.NativeId); err != nil {
				t.Errorf("native id is not a valid event_id: %v", err)
			}
			if (ev.EventTime == nil) != slices.Contains(ev.Flags, FlagNoEventTime) {
				t.Errorf("event time %v but flags %v", ev.EventTime, ev.Flags)
			}
			got, err := JSON(ev)
			if err != nil {
				t.Fatal(err)
			}
			golden := strings.TrimSuffix(f.Path, ".json") + ".golden.json"
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./identity -run TestGolden -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("normalised view differs from %s (rerun with -update if the change is intended):\n%s", golden, got)
			}
		})
	}
	for k := range wantKind {
		if !seen[k] {
			t.Errorf("wantKind names %s, which has no fixture", k)
		}
	}
}

// TestMarshalRoundTrip: the stored encoding decodes to the same view and is
// byte-stable.
func TestMarshalRoundTrip(t *testing.T) {
	for _, f := range fixtures(t) {
		ev, err := Normalize(f.Format, f.Record)
		if err != nil {
			t.Fatalf("%s: %v", f.Path, err)
		}
		b1, err := Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b1, f.Record) {
			t.Errorf("%s: the stored view repeats the raw record", f.Path)
		}
		back, err := Unmarshal(b1, f.Format, f.Record)
		if err != nil {
			t.Fatal(err)
		}
		j1, _ := JSON(ev)
		j2, _ := JSON(back)
		if !bytes.Equal(j1, j2) || !bytes.Equal(back.RawRecord, f.Record) || back.Format != f.Format {
			t.Errorf("%s: view changed through Marshal/Unmarshal", f.Path)
		}
		b2, _ := Marshal(back)
		if !bytes.Equal(b1, b2) {
			t.Errorf("%s: re-encoding is not byte-identical", f.Path)
		}
		again, err := Renormalize(back)
		if err != nil {
			t.Fatal(err)
		}
		if b3, _ := Marshal(again); !bytes.Equal(b1, b3) {
			t.Errorf("%s: renormalising gives a different view", f.Path)
		}
	}
}

func normalizeFixture(t *testing.T, key string) *stelev1.IdentityEvent {
	t.Helper()
	format, name, _ := strings.Cut(key, "/")
	b, err := os.ReadFile(filepath.Join("testdata/golden", format, name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	ev, err := Normalize(format, b)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func readDoc() (string, error) {
	b, err := os.ReadFile("../docs/identity.md")
	return string(b), err
}

// TestViews: a stored payload's view against the current normaliser's.
func TestViews(t *testing.T) {
	ev := normalizeFixture(t, "entra.directoryAudit/user-create")
	ev.Origin = "file=x.json record=3"
	b, err := Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	p := &payload.Payload{Format: ev.Format, Record: ev.RawRecord, Normalized: b}
	stored, current, curErr, err := Views(p)
	if err != nil || curErr != nil {
		t.Fatal(err, curErr)
	}
	s, _ := JSON(stored)
	c, _ := JSON(current)
	if !bytes.Equal(s, c) {
		t.Errorf("same normaliser, different views:\n%s\n%s", s, c)
	}
	// A view stored by an older normaliser differs from the current one.
	old := proto.CloneOf(ev)
	old.NormalizerVersion = "0"
	old.Privilege = nil
	old.Targets = nil
	p.Normalized, _ = Marshal(old)
	stored, current, _, _ = Views(p)
	if stored.NormalizerVersion != "0" || current.NormalizerVersion != Version || len(current.Targets) == 0 {
		t.Errorf("stored v%s, current v%s", stored.NormalizerVersion, current.NormalizerVersion)
	}
	// No stored view: only the current one.
	p.Normalized = nil
	if stored, current, _, _ = Views(p); stored != nil || current == nil {
		t.Errorf("without a stored view: %v %v", stored, current)
	}
	// A corrupt stored view is an error.
	p.Normalized = []byte{0xff, 0xff}
	if _, _, _, err := Views(p); err == nil {
		t.Error("corrupt stored view decoded")
	}
}
