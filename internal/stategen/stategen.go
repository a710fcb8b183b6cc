// Package stategen generates synthetic normalised identity events for the
// tests and benchmarks of state, drift and history: a deterministic mix of
// user lifecycle, directory-role grants and revocations, PIM activations,
// credential changes, consents, CA policy updates and sign-ins over a fixed
// population of one Entra tenant. It is test support: nothing in a binary
// uses it.
package stategen

import (
	"fmt"
	"math/rand/v2"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
)

// Tenant is the generated events' tenant id; Source their leaf source.
const (
	Tenant = "22222222-2222-4222-8222-222222222222"
	Source = "entra/" + Tenant + "/audit"
)

// Start is the first event's time; events are one second apart.
var Start = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// Roles are the role template ids grants pick from.
var Roles = []string{"62e90394-69f5-4237-9190-012177145e10", "fe930be7-5e62-47db-91af-98c3a49a38b1", "e8611ab8-c189-46e8-94e1-60213ab1f814", "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3"}

// ID returns the object id of a generated object: kind letter and number.
func ID(kind byte, n int) string { return fmt.Sprintf("%08x-0000-4000-8000-%012d", kind, n) }

// Generator makes events.
type Generator struct {
	rng   *rand.Rand
	users int
	apps  int
	n     int
}

// New returns a generator over users users and apps applications.
func New(seed uint64, users, apps int) *Generator {
	return &Generator{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), users: users, apps: apps}
}

// Next returns the next event.
func (g *Generator) Next() *stelev1.IdentityEvent {
	i := g.n
	g.n++
	at := Start.Add(time.Duration(i) * time.Second)
	ev := &stelev1.IdentityEvent{
		Source:    &stelev1.IdentitySource{Provider: "entra", Stream: "audit"},
		NativeId:  fmt.Sprintf("gen-%d", i),
		EventTime: timestamppb.New(at),
		Outcome:   &stelev1.Outcome{Status: stelev1.OutcomeStatus_OUTCOME_STATUS_SUCCESS},
		Actor:     &stelev1.Principal{Type: stelev1.PrincipalType_PRINCIPAL_TYPE_USER, Id: ID('a', 0), Login: "admin@example.com"},
	}
	u := g.rng.IntN(g.users)
	user := &stelev1.Target{NativeType: "User", Id: ID('u', u), Login: fmt.Sprintf("user%d@example.com", u)}
	switch r := g.rng.IntN(100); {
	case r < 30:
		ev.Kind = "signin.interactive.success"
	case r < 40:
		ev.Kind = []string{"user.create", "user.disable", "user.enable"}[g.rng.IntN(3)]
		ev.Targets = []*stelev1.Target{user}
	case r < 60:
		ev.Kind = []string{"directory.role.member.add", "directory.role.member.remove", "directory.role.eligibility.add"}[g.rng.IntN(3)]
		op := map[string]string{"directory.role.member.add": "grant", "directory.role.member.remove": "revoke", "directory.role.eligibility.add": "grant"}[ev.Kind]
		kind := stelev1.AssignmentKind_ASSIGNMENT_KIND_ACTIVE
		if ev.Kind == "directory.role.eligibility.add" {
			kind = stelev1.AssignmentKind_ASSIGNMENT_KIND_ELIGIBLE
		}
		ev.Targets = []*stelev1.Target{user}
		ev.Privilege = &stelev1.PrivilegeFacet{Op: op, RoleTemplateId: Roles[g.rng.IntN(len(Roles))], Assignment: kind,
			Duration: stelev1.AssignmentDuration_ASSIGNMENT_DURATION_PERMANENT, AssigneeId: user.Id, AssigneeLogin: user.Login}
	case r < 65:
		ev.Kind = "directory.role.activation"
		ev.Targets = []*stelev1.Target{user}
		ev.Privilege = &stelev1.PrivilegeFacet{Op: "activate", RoleTemplateId: Roles[g.rng.IntN(len(Roles))], Assignment: stelev1.AssignmentKind_ASSIGNMENT_KIND_ACTIVE,
			Duration: stelev1.AssignmentDuration_ASSIGNMENT_DURATION_TIMEBOUND, ViaPim: true, AssigneeId: user.Id, AssigneeLogin: user.Login,
			StartsAt: timestamppb.New(at), EndsAt: timestamppb.New(at.Add(8 * time.Hour))}
	case r < 80:
		a := g.rng.IntN(g.apps)
		app := &stelev1.Target{NativeType: "Application", Id: ID('b', a), DisplayName: fmt.Sprintf("app-%d", a)}
		ev.Targets = []*stelev1.Target{app}
		key := ID('c', a*4+g.rng.IntN(4))
		if g.rng.IntN(2) == 0 {
			ev.Kind = "app.credential.add"
			ev.Credential = &stelev1.CredentialFacet{Op: "add", Owner: "application", CredentialType: "client_secret", KeyId: key}
		} else {
			ev.Kind = "app.credential.remove"
			ev.Credential = &stelev1.CredentialFacet{Op: "remove", Owner: "application", CredentialType: "client_secret", KeyId: key}
		}
	case r < 85:
		ev.Kind = "app.registration.add"
		a := g.rng.IntN(g.apps)
		ev.Targets = []*stelev1.Target{{NativeType: "Application", Id: ID('b', a), DisplayName: fmt.Sprintf("app-%d", a)}}
	case r < 90:
		ev.Kind = "app.permission_grant.add"
		a := g.rng.IntN(g.apps)
		all := true
		ev.Consent = &stelev1.ConsentFacet{ClientId: ID('s', a), ClientDisplayName: fmt.Sprintf("app-%d", a), OnBehalfOfAll: &all, ConsentType: "AllPrincipals", Scopes: []string{"User.Read"}}
	case r < 95:
		ev.Kind = "policy.conditional_access.update"
		p := g.rng.IntN(20)
		ev.Policy = &stelev1.PolicyFacet{PolicyType: "conditional_access", Op: "update", Id: ID('p', p), DisplayName: fmt.Sprintf("policy-%d", p),
			StateAfter: []string{"enabled", "disabled", "enabledForReportingButNotEnforced"}[g.rng.IntN(3)]}
	default:
		ev.Kind = "user.security_info.add"
		ev.Targets = []*stelev1.Target{user}
		ev.Credential = &stelev1.CredentialFacet{Op: "add", Owner: "user", CredentialType: []string{"phone", "fido2", "authenticator_app"}[g.rng.IntN(3)]}
	}
	ev.Ocsf = &stelev1.OcsfClass{}
	return ev
}
