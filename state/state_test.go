package state_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stele-dev/stele/identity"
	"github.com/stele-dev/stele/internal/stategen"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
	"github.com/stele-dev/stele/state"
)

// fixture normalises a golden record of package identity.
func fixture(t testing.TB, format, name string) *stelev1.IdentityEvent {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "identity", "testdata", "golden", format, name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	ev, err := identity.Normalize(format, b)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// line renders a fact as the tests compare it.
func line(f *state.Fact) string {
	var attrs []string
	for k, v := range f.Attrs {
		attrs = append(attrs, k+"="+v)
	}
	slices.Sort(attrs)
	until := ""
	if f.Until != nil {
		until = " until=" + f.Until.UTC().Format(time.RFC3339)
	}
	return fmt.Sprintf("%s %s %s %s present=%v events=%v [%s]%s", f.Tenant, f.Type, f.Key, f.Object, f.Present, f.Events, strings.Join(attrs, " "), until)
}

func TestReplayFixtures(t *testing.T) {
	st := state.New()
	type step struct{ source, format, name string }
	steps := []step{
		{"entra/t1/audit", "entra.directoryAudit", "user-create"},                              // 0
		{"entra/t1/audit", "entra.directoryAudit", "role-member-add-direct"},                   // 1
		{"entra/t1/audit", "entra.directoryAudit", "pim-eligible-add-permanent"},               // 2
		{"entra/t1/audit", "entra.diagnostic", "pim-activation"},                               // 3: erin activates PRA (role 051 = e8611ab8…)
		{"entra/t1/audit", "entra.directoryAudit", "app-secret-added-hyphen"},                  // 4
		{"entra/t1/audit", "entra.directoryAudit", "ca-policy-update-casing"},                  // 5
		{"entra/t1/audit", "entra.directoryAudit", "delegated-permission-grant"},               // 6
		{"entra/t1/audit", "entra.directoryAudit", "app-role-grant-from-consent"},              // 7
		{"entra/t1/audit", "entra.directoryAudit", "security-info-admin-registered"},           // 8
		{"entra/t1/audit", "entra.directoryAudit", "user-disable"},                             // 9
		{"entra/t1/audit", "entra.directoryAudit", "unknown-activity"},                         // 10
		{"entra/t1/audit", "entra.directoryAudit", "password-reset-admin-failure"},             // 11: ignored kind (a failure, too)
		{"okta/example.okta.com/system", "okta.systemLog", "privilege-grant"},                  // 12
		{"aws/123456789012/cloudtrail", "aws.cloudtrail", "attach-user-policy"},                // 13
		{"aws/123456789012/cloudtrail", "aws.cloudtrail", "create-access-key-by-assumed-role"}, // 14
		{"entra/t1/signin", "entra.signIn", "graph-interactive-success"},                       // 15: ignored
	}
	for i, s := range steps {
		st.Apply(uint64(i), s.source, fixture(t, s.format, s.name))
	}
	st.Skip(16, "entra/t1/audit", "user.update", "erased")
	var got []string
	for _, f := range st.Facts() {
		got = append(got, line(f))
	}
	// Each expected fact, checked on its events and attributes; the whole
	// state is printed when one is missing.
	check := func(typ, keyPrefix string, wantEvents []uint64, attrs ...string) {
		t.Helper()
		for _, f := range st.Facts() {
			if f.Type == typ && strings.HasPrefix(f.Key, keyPrefix) {
				if !slices.Equal(f.Events, wantEvents) {
					t.Errorf("%s %s: events %v, want %v", typ, f.Key, f.Events, wantEvents)
				}
				for _, a := range attrs {
					k, v, _ := strings.Cut(a, "=")
					if f.Attrs[k] != v {
						t.Errorf("%s %s: %s=%q, want %q", typ, f.Key, k, f.Attrs[k], v)
					}
				}
				return
			}
		}
		t.Errorf("no %s fact with key %s…; facts:\n%s", typ, keyPrefix, strings.Join(got, "\n"))
	}
	check(state.User, "00000000-0000-4000-8000-000000000015", []uint64{0, 9}, "status=disabled", "login=ivy.new@example.com")
	check(state.DirectoryRole, "00000000-0000-4000-8000-000000000010|62e90394-69f5-4237-9190-012177145e10|/|active", []uint64{1},
		"role_name=Global Administrator", "duration=permanent", "via_pim=false")
	check(state.DirectoryRole, "00000000-0000-4000-8000-000000000011|e8611ab8-c189-46e8-94e1-60213ab1f814|/|eligible", []uint64{2}, "via_pim=true", "duration=permanent")
	// The activation names the role object only; the eligibility taught
	// the replay that 051 is the PRA template.
	check(state.DirectoryRole, "00000000-0000-4000-8000-000000000011|e8611ab8-c189-46e8-94e1-60213ab1f814|/|active", []uint64{3}, "duration=timebound", "activated=true")
	check(state.Credential, "application|00000000-0000-4000-8000-000000000082|00000000-0000-4000-8000-000000000091", []uint64{4}, "type=client_secret", "added=2026-03-05T07:10:00Z")
	check(state.Credential, "application|00000000-0000-4000-8000-000000000082|00000000-0000-4000-8000-000000000090", []uint64{4}, "type=certificate", "added=")
	check(state.CAPolicy, "00000000-0000-4000-8000-000000000060", []uint64{5}, "state=disabled")
	check(state.PermissionGrant, "00000000-0000-4000-8000-000000000070|AllPrincipals|", []uint64{6}, "scopes=Mail.Read offline_access")
	check(state.AppRoleAssignment, "00000000-0000-4000-8000-000000000070|00000000-0000-4000-8000-000000000071|810c84a8", []uint64{7}, "app_role=Mail.Read")
	check(state.AuthMethod, "", []uint64{8})
	check(state.DirectoryRole, "00u2userEXAMPLE|ra1superEXAMPLE|/|active", []uint64{12}, "role_name=Super Administrator")
	check(state.AttachedPolicy, "bob|arn:aws:iam::aws:policy/AdministratorAccess", []uint64{13})
	check(state.AccessKey, "bob|AKIAEXAMPLE00000BOB1", []uint64{14})
	// The active PRA assignment ends at 16:00.
	f := st.Lookup("entra/t1", state.DirectoryRole, "00000000-0000-4000-8000-000000000011|e8611ab8-c189-46e8-94e1-60213ab1f814|/|active")
	if f == nil || f.Until == nil || !f.ActiveAt(time.Date(2026, 3, 7, 15, 0, 0, 0, time.UTC)) || f.ActiveAt(time.Date(2026, 3, 7, 16, 0, 1, 0, time.UTC)) {
		t.Errorf("PIM activation: %+v, want active until 2026-03-07T16:00Z", f)
	}
	// Unused entries are listed with their reason.
	var unused []string
	for _, u := range st.Unused {
		unused = append(unused, fmt.Sprintf("%d %s %s", u.Index, u.Kind, u.Reason))
	}
	wantUnused := []string{"10 entra.audit.unknown unknown_activity", "16 user.update erased"}
	if !slices.Equal(unused, wantUnused) {
		t.Errorf("unused %q, want %q", unused, wantUnused)
	}
	if st.Failed != 0 || st.Ignored != 2 || st.Size != 17 {
		t.Errorf("failed %d ignored %d size %d, want 0, 2, 17", st.Failed, st.Ignored, st.Size)
	}
	if tn := st.Tenants(); !slices.Equal(tn, []string{"aws/123456789012", "entra/t1", "okta/example.okta.com"}) {
		t.Errorf("tenants %q", tn)
	}
}

// TestRevocations: removals mark facts removed with the removing event,
// re-grants bring them back with fresh attributes.
func TestRevocations(t *testing.T) {
	st := state.New()
	st.Apply(0, "entra/t1/audit", fixture(t, "entra.directoryAudit", "role-member-add-direct"))
	rm := fixture(t, "entra.directoryAudit", "role-member-remove-by-automation")
	rm.Privilege.AssigneeId = "00000000-0000-4000-8000-000000000010"
	rm.Privilege.RoleTemplateId = "62e90394-69f5-4237-9190-012177145e10"
	st.Apply(1, "entra/t1/audit", rm)
	key := "00000000-0000-4000-8000-000000000010|62e90394-69f5-4237-9190-012177145e10|/|active"
	f := st.Lookup("entra/t1", state.DirectoryRole, key)
	if f == nil || f.Present || !slices.Equal(f.Events, []uint64{0, 1}) {
		t.Fatalf("after removal: %+v", f)
	}
	if cur := st.Current("entra/t1", time.Time{}); len(cur) != 0 {
		t.Errorf("current facts after removal: %v", cur)
	}
	st.Apply(2, "entra/t1/audit", fixture(t, "entra.directoryAudit", "role-member-add-direct"))
	if f := st.Lookup("entra/t1", state.DirectoryRole, key); !f.Present || !slices.Equal(f.Events, []uint64{0, 1, 2}) {
		t.Errorf("after re-grant: %+v", f)
	}
	// A removal of something the ledger never saw is recorded as removed.
	st.Apply(3, "entra/t1/audit", fixture(t, "entra.directoryAudit", "role-member-remove-by-automation"))
	if f := st.Lookup("entra/t1", state.DirectoryRole, "00000000-0000-4000-8000-000000000085|9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3|/|active"); f == nil || f.Present {
		t.Errorf("removal of an unseen assignment: %+v", f)
	}
}

func snapshotOf(st *state.State) string {
	b, err := json.Marshal(struct {
		Facts  []*state.Fact
		Unused []state.Unused
		I, F   uint64
		Size   uint64
	}{st.Facts(), st.Unused, st.Ignored, st.Failed, st.Size})
	if err != nil {
		panic(err)
	}
	return string(b)
}

// TestPrefix: the state after the first N events of a long replay equals
// the state of those N events replayed on their own.
func TestPrefix(t *testing.T) {
	const total = 3000
	g := stategen.New(1, 200, 30)
	evs := make([]*stelev1.IdentityEvent, total)
	for i := range evs {
		evs[i] = g.Next()
	}
	sizes := []int{0, 1, 17, 500, 1234, 2999, total}
	at := map[int]string{}
	st := state.New()
	for i := 0; i <= total; i++ {
		if slices.Contains(sizes, i) {
			at[i] = snapshotOf(st)
		}
		if i < total {
			st.Apply(uint64(i), stategen.Source, evs[i])
		}
	}
	for _, n := range sizes {
		fresh := state.New()
		for i := range n {
			fresh.Apply(uint64(i), stategen.Source, evs[i])
		}
		if got := snapshotOf(fresh); got != at[n] {
			t.Errorf("size %d: fresh replay differs from the long replay's prefix", n)
		}
	}
	if len(st.Facts()) < 100 {
		t.Errorf("only %d facts from %d events: the generator exercises too little", len(st.Facts()), total)
	}
}

// BenchmarkReplay measures replay throughput (events/s) over generated
// events; the target is at least 100,000 events/s.
func BenchmarkReplay(b *testing.B) {
	const n = 200_000
	g := stategen.New(2, 20_000, 2_000)
	evs := make([]*stelev1.IdentityEvent, n)
	for i := range evs {
		evs[i] = g.Next()
	}
	b.ResetTimer()
	start, cpu0 := time.Now(), stategen.CPUTime()
	for range b.N {
		st := state.New()
		for i, ev := range evs {
			st.Apply(uint64(i), stategen.Source, ev)
		}
	}
	el, cpu := time.Since(start), stategen.CPUTime()-cpu0
	b.ReportMetric(float64(n*b.N)/el.Seconds(), "events/s")
	if cpu > 0 {
		// Includes the garbage collector's work on the other core.
		b.ReportMetric(float64(n*b.N)/cpu.Seconds(), "events/cpu-s")
	}
}

// TestUserCreatedDisabled: a user created with AccountEnabled false is
// disabled, and the next user created is enabled again.
func TestUserCreatedDisabled(t *testing.T) {
	st := state.New()
	off := fixture(t, "entra.directoryAudit", "user-create")
	off.Targets[0].Changes[0].NewValue.Value = "[false]"
	st.Apply(0, "entra/t1/audit", off)
	on := fixture(t, "entra.directoryAudit", "user-create")
	on.Targets[0].Id = "other"
	st.Apply(1, "entra/t1/audit", on)
	if f := st.Lookup("entra/t1", state.User, "00000000-0000-4000-8000-000000000015"); f.Attrs["status"] != "disabled" {
		t.Errorf("created disabled: %q", f.Attrs["status"])
	}
	if f := st.Lookup("entra/t1", state.User, "other"); f.Attrs["status"] != "enabled" {
		t.Errorf("created after a disabled one: %q", f.Attrs["status"])
	}
}

// TestActivationThenPermanent: a permanent grant after a PIM activation of
// the same role leaves a permanent, not activated, assignment.
func TestActivationThenPermanent(t *testing.T) {
	st := state.New()
	st.Apply(0, "entra/t1/audit", fixture(t, "entra.diagnostic", "pim-activation"))
	grant := fixture(t, "entra.directoryAudit", "role-member-add-direct")
	grant.Privilege.AssigneeId, grant.Privilege.RoleTemplateId, grant.Privilege.RoleId = "00000000-0000-4000-8000-000000000011", "", "00000000-0000-4000-8000-000000000051"
	st.Apply(1, "entra/t1/audit", grant)
	f := st.Lookup("entra/t1", state.DirectoryRole, "00000000-0000-4000-8000-000000000011|00000000-0000-4000-8000-000000000051|/|active")
	if f == nil || f.Attrs["activated"] != "false" || f.Attrs["duration"] != "permanent" || f.Until != nil || !slices.Equal(f.Events, []uint64{0, 1}) {
		t.Errorf("%+v", f)
	}
}
