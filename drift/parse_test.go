package drift_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stele-dev/stele/drift"
)

var manifest = drift.Manifest{Tenant: "entra/t1", TakenAt: time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)}

func TestAddPage(t *testing.T) {
	for _, tc := range []struct {
		name, resource, page string
		wantErr              string // "" for success
		wantFacts            int
		wantNext             bool
	}{
		{"role assignment", "roleAssignments", `{"@odata.context":"x","value":[{"id":"a","principalId":"p","roleDefinitionId":"r","directoryScopeId":"/","appScopeId":null}]}`, "", 1, false},
		{"next link", "roleAssignments", `{"value":[],"@odata.nextLink":"https://graph.microsoft.com/v1.0/x?$skiptoken=1"}`, "", 0, true},
		{"eligibility with end", "roleEligibilitySchedules", `{"value":[{"id":"e","principalId":"p","roleDefinitionId":"r","directoryScopeId":"/","scheduleInfo":{"startDateTime":"2026-01-01T00:00:00Z","expiration":{"type":"afterDateTime","endDateTime":"2027-01-01T00:00:00Z","duration":null}}}]}`, "", 1, false},
		{"grant", "oauth2PermissionGrants", `{"value":[{"id":"g","clientId":"c","consentType":"Principal","principalId":"u","resourceId":"r","scope":"User.Read"}]}`, "", 1, false},
		{"grants merge per client", "oauth2PermissionGrants", `{"value":[{"id":"g1","clientId":"c","consentType":"AllPrincipals","principalId":null,"resourceId":"r1","scope":"a"},{"id":"g2","clientId":"c","consentType":"AllPrincipals","principalId":null,"resourceId":"r2","scope":"b"}]}`, "", 1, false},
		{"service principal with credentials", "servicePrincipals", `{"value":[{"id":"s","appId":"a","displayName":"n","keyCredentials":[{"keyId":"k1","type":"AsymmetricX509Cert","usage":"Verify","startDateTime":"2026-01-01T00:00:00Z","endDateTime":"2027-01-01T00:00:00Z"}],"passwordCredentials":[{"keyId":"k2","displayName":"s","hint":"abc","secretText":null,"startDateTime":"2026-01-01T00:00:00Z","endDateTime":"2027-01-01T00:00:00Z"}]}]}`, "", 3, false},
		{"policy", "conditionalAccessPolicies", `{"value":[{"id":"p","displayName":"x","state":"enabledForReportingButNotEnforced"}]}`, "", 1, false},
		{"user without accountEnabled", "users", `{"value":[{"id":"u","userPrincipalName":"a@example.com"}]}`, "", 1, false},
		{"not an object", "users", `[]`, "cannot unmarshal", 0, false},
		{"no value", "users", `{"@odata.context":"x"}`, `no "value" array`, 0, false},
		{"value not array", "users", `{"value":{}}`, "cannot unmarshal", 0, false},
		{"element not object", "users", `{"value":[1]}`, "value[0]: not a JSON object", 0, false},
		{"missing id", "users", `{"value":[{"userPrincipalName":"a"}]}`, "value[0]: id is missing", 0, false},
		{"duplicate object", "users", `{"value":[{"id":"u"},{"id":"u"}]}`, "appears twice", 0, false},
		{"duplicate key", "users", `{"value":[{"id":"u","id":"v"}]}`, `key "id" appears twice`, 0, false},
		{"keys differing in case", "users", `{"value":[{"id":"u","ID":"v"}]}`, "differ only in case", 0, false},
		{"trailing data", "users", `{"value":[]} {}`, "trailing data", 0, false},
		{"bad time", "roleEligibilitySchedules", `{"value":[{"id":"e","principalId":"p","roleDefinitionId":"r","scheduleInfo":{"startDateTime":"yesterday"}}]}`, "cannot parse", 0, false},
		{"wrong type", "users", `{"value":[{"id":"u","accountEnabled":"yes"}]}`, "cannot unmarshal string", 0, false},
		{"bad consent type", "oauth2PermissionGrants", `{"value":[{"id":"g","clientId":"c","consentType":"Everyone"}]}`, "neither AllPrincipals nor Principal", 0, false},
		{"principal grant without principal", "oauth2PermissionGrants", `{"value":[{"id":"g","clientId":"c","consentType":"Principal","principalId":null}]}`, "without principalId", 0, false},
		{"credential without key id", "applications", `{"value":[{"id":"a","appId":"b","keyCredentials":[{"type":"Symmetric"}]}]}`, "has no keyId", 0, false},
		{"invalid UTF-8", "users", "{\"value\":[{\"id\":\"\xff\"}]}", "invalid UTF-8", 0, false},
		{"unknown resource", "groups", `{"value":[]}`, "unknown resource", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := drift.NewSnapshot(manifest)
			next, err := s.AddPage(tc.resource, []byte(tc.page))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(s.Facts) != tc.wantFacts || next != tc.wantNext {
				t.Errorf("%d facts, next %v; want %d, %v", len(s.Facts), next, tc.wantFacts, tc.wantNext)
			}
		})
	}
}

// TestReadSnapshotPaging: pages are read while @odata.nextLink says more
// follow; a missing next page is an error, never a silently short
// snapshot.
func TestReadSnapshotPaging(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("snapshot.json", `{"tenant":"entra/t1","taken_at":"2026-03-10T12:00:00Z"}`)
	write("users.json", `{"value":[{"id":"u1"}],"@odata.nextLink":"https://graph.microsoft.com/v1.0/users?$skiptoken=x"}`)
	if _, err := drift.ReadSnapshot(dir); err == nil || !strings.Contains(err.Error(), "snapshot is incomplete") {
		t.Fatalf("missing page 2: %v", err)
	}
	write("users.2.json", `{"value":[{"id":"u2"}]}`)
	s, err := drift.ReadSnapshot(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Facts) != 2 || !s.Compared["user"] || s.Compared["ca_policy"] {
		t.Errorf("facts %d, compared %v", len(s.Facts), s.Compared)
	}
}

func TestParseManifest(t *testing.T) {
	for _, tc := range []struct{ in, wantErr string }{
		{`{"tenant":"entra/t1","taken_at":"2026-03-10T12:00:00Z"}`, ""},
		{`{"tenant":"entra/t1"}`, "taken_at is required"},
		{`{"tenant":"okta/x","taken_at":"2026-03-10T12:00:00Z"}`, "is not entra/<tenant-id>"},
		{`{"tenant":"entra/t1","taken_at":"2026-03-10T12:00:00Z","extra":1}`, "unknown field"},
		{`{"tenant":"entra/t1","taken_at":"March 10"}`, "cannot parse"},
	} {
		_, err := drift.ParseManifest([]byte(tc.in))
		if (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("%s: error %v, want %q", tc.in, err, tc.wantErr)
		}
	}
}

func TestParseBaseline(t *testing.T) {
	for _, tc := range []struct{ in, wantErr string }{
		{`{}`, ""},
		{`{"tenant":"entra/t1","ca_policies_enabled":["p"],"global_administrators":["a@example.com"],"break_glass":[],"max_credential_age_days":90,"tenant_wide_consent_allowed":["c"]}`, ""},
		{`{"ca_policies_enabled":["p"],"ca_policies_enabled":["q"]}`, "appears twice"},
		{`{"Tenant":"entra/t1"}`, "unknown field"},
		{`{"tenant":"entra/t1","TENANT":"entra/t2"}`, "differ only in case"},
		{`{"max_credential_age_days":-1}`, "must not be negative"},
		{`{"max_credential_age_days":1.5}`, "cannot unmarshal"},
		{`{"global_administrators":[""]}`, "global_administrators[0] is empty"},
		{`{"break_glass":[" "]}`, "break_glass[0] is empty"},
		{`{"tenant":"t1"}`, "is not provider/tenant"},
		{`{"global_administrators":"a"}`, "cannot unmarshal"},
		{`{} []`, "trailing data"},
		{``, "empty input"},
		{`{"global_adm`, "unexpected EOF"},
	} {
		_, err := drift.ParseBaseline([]byte(tc.in))
		if (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("%s: error %v, want %q", tc.in, err, tc.wantErr)
		}
	}
}

// FuzzBaseline: any bytes give a baseline or an error, never a panic, and a
// parsed baseline checks facts.
func FuzzBaseline(f *testing.F) {
	b, _ := os.ReadFile(filepath.Join(scenario, "baseline.json"))
	f.Add(b)
	f.Add([]byte(`{"break_glass":[],"tenant_wide_consent_allowed":[]}`))
	f.Add([]byte(`{"a":1,"a":2}`))
	st := replayFile(f, filepath.Join(scenario, "events.jsonl"), -1)
	f.Fuzz(func(t *testing.T, data []byte) {
		bl, err := drift.ParseBaseline(data)
		if err != nil {
			if bl != nil {
				t.Fatal("baseline returned with an error")
			}
			return
		}
		bl.Check("ledger", st.Current("", time.Time{}), manifest.TakenAt, func(string, string) []string { return nil })
	})
}

// FuzzSnapshotPage: any bytes as any resource's page give facts or an
// error, never a panic; a page that parses again parses the same.
func FuzzSnapshotPage(f *testing.F) {
	for _, r := range drift.Resources {
		b, err := os.ReadFile(filepath.Join(scenario, "snapshot", r.Name+".json"))
		if err == nil {
			f.Add(uint8(0), b)
		}
	}
	f.Add(uint8(3), []byte(`{"value":[{"id":"s","appId":"a","keyCredentials":[{"keyId":"k"}],"passwordCredentials":[{"keyId":"k2"}]}],"@odata.nextLink":"x"}`))
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		r := drift.Resources[int(which)%len(drift.Resources)]
		s := drift.NewSnapshot(manifest)
		next, err := s.AddPage(r.Name, data)
		if err != nil {
			return
		}
		s2 := drift.NewSnapshot(manifest)
		next2, err := s2.AddPage(r.Name, data)
		if err != nil || next != next2 || len(s2.Facts) != len(s.Facts) {
			t.Fatalf("a page parsed twice differs: %v", err)
		}
	})
}

// FuzzManifest: snapshot.json parses or is refused, never panics.
func FuzzManifest(f *testing.F) {
	f.Add([]byte(`{"tenant":"entra/t1","taken_at":"2026-03-10T12:00:00Z"}`))
	f.Add([]byte(`{"tenant":"entra/t1","Taken_At":"2026-03-10T12:00:00Z"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := drift.ParseManifest(data)
		if err == nil && (m.TakenAt.IsZero() || !strings.HasPrefix(m.Tenant, "entra/")) {
			t.Fatalf("accepted %+v", m)
		}
	})
}
