// Package state replays normalised identity events (stele.v1.IdentityEvent,
// package identity) into the identity state they imply, per tenant: who
// holds which directory role (active or eligible, permanent or time-bound,
// at which scope, through PIM or not), which app roles and OAuth2 grants
// exist, which applications and service principals hold which
// credentials, which conditional-access policies are in which state, which
// users exist and whether they are enabled, which authentication methods
// they have, who is in which group; for Okta admin roles, factors and user
// status; for AWS IAM users, access keys and attached policies.
//
// Every fact carries the log indexes of the events that made it so. A fact
// that an event removed stays in the state as removed (Present false) with
// the removing event's index: drift needs to tell "never logged" from
// "logged as removed". Events the replay cannot use (erased payloads,
// records the normaliser cannot read, activities it does not know) are
// listed in State.Unused, never dropped silently.
//
// The replay is a pure function of the events in log order: State.Apply is
// called once per log entry, with its index.
package state

import (
	"cmp"
	"slices"
	"strings"
	"time"
)

// Fact types.
const (
	// DirectoryRole: a directory (admin) role held by a principal. Entra
	// roles and Okta admin roles. Key: principal|role|scope|assignment.
	DirectoryRole = "directory_role"
	// AppRoleAssignment: an app role granted to a principal on a resource
	// service principal. Key: principal|resource|app role id.
	AppRoleAssignment = "app_role_assignment"
	// PermissionGrant: an OAuth2 delegated permission grant (consent).
	// Key: client|consent type|principal ("" for AllPrincipals).
	PermissionGrant = "oauth2_permission_grant"
	// Application: an app registration. Key: object id.
	Application = "application"
	// ServicePrincipal: a service principal. Key: object id.
	ServicePrincipal = "service_principal"
	// Credential: a key or password credential of an application or
	// service principal. Key: owner type|owner id|key id.
	Credential = "credential"
	// CAPolicy: a conditional-access policy. Key: policy id.
	CAPolicy = "ca_policy"
	// User: a user account (Entra, Okta, AWS IAM). Key: object id, Okta
	// user id, or IAM user name.
	User = "user"
	// AuthMethod: an authentication method (MFA factor) of a user.
	// Key: user|method type.
	AuthMethod = "auth_method"
	// GroupMember: membership of a group. Key: group|member.
	GroupMember = "group_member"
	// AccessKey: an AWS access key of an IAM user. Key: user|key id.
	AccessKey = "access_key"
	// AttachedPolicy: an IAM policy attached to an IAM user.
	// Key: user|policy ARN.
	AttachedPolicy = "attached_policy"
)

// Fact is one thing the ledger says holds (or held, when Present is false)
// in a tenant.
type Fact struct {
	// Tenant is "<provider>/<tenant>" as in the leaf's source, e.g.
	// "entra/<tenant-id>", "okta/<org-host>", "aws/<account-id>".
	Tenant string `json:"tenant"`
	Type   string `json:"type"`
	// Key identifies the fact within its tenant and type (see the type
	// constants); Subject is the principal it is about (user, service
	// principal, IAM user, application) and Object what it gives or
	// names (role, resource, policy, key id).
	Key     string `json:"key"`
	Subject string `json:"subject,omitempty"`
	Object  string `json:"object,omitempty"`
	// Attrs are the fact's properties as the events stated them (role
	// name, scope, duration, via_pim, state, credential type, ...).
	Attrs map[string]string `json:"attrs,omitempty"`
	// Until is when a time-bound fact ends (a PIM activation, a
	// time-bound assignment); nil for permanent facts or when unknown.
	Until *time.Time `json:"until,omitempty"`
	// Present is false when the last event about the fact removed it.
	Present bool `json:"present"`
	// Events are the log indexes of the events that made the fact what it
	// is, in log order (the one that created it, each that changed it,
	// and the one that removed it).
	Events []uint64 `json:"events"`
	// Changed is the event time of the last event about the fact.
	Changed time.Time `json:"changed"`
}

// ID is the fact's identity across tenants and types.
func (f *Fact) ID() string { return f.Tenant + "\x00" + f.Type + "\x00" + f.Key }

// Last is the index of the last event about the fact.
func (f *Fact) Last() uint64 { return f.Events[len(f.Events)-1] }

// ActiveAt reports whether the fact holds at time t: present, and not a
// time-bound fact that ended before t.
func (f *Fact) ActiveAt(t time.Time) bool {
	return f.Present && (f.Until == nil || t.IsZero() || f.Until.After(t))
}

// Attr returns an attribute, "" when unset.
func (f *Fact) Attr(k string) string { return f.Attrs[k] }

// Unused is a log entry the replay could not use.
type Unused struct {
	Index  uint64 `json:"index"`
	Source string `json:"source"`
	Kind   string `json:"kind"`
	// Reason: "erased", "unknown_activity", "normaliser: ...", "payload
	// unavailable: ...", "unhandled kind", "no subject: ...".
	Reason string `json:"reason"`
}

// State is the identity state implied by a prefix of the log.
type State struct {
	// Size is the number of log entries applied (the next index).
	Size  uint64
	facts map[string]*Fact
	// roleAlias maps a tenant's directory-role object ids to role
	// template ids, learned from events that name both.
	roleAlias map[string]string
	// groups indexes facts by the first two parts of their key (a role
	// holder and role, a credential's owner), for events that act on
	// all of them.
	groups map[string][]*Fact
	// Unused lists the entries that changed no fact and could not have:
	// see Unused.Reason. Events of kinds that never change state (sign-ins,
	// requests, password changes) are counted in Ignored, not listed.
	Unused  []Unused
	Ignored uint64
	// Failed counts events whose outcome was not a success: they change
	// nothing.
	Failed uint64
}

// New returns an empty state.
func New() *State {
	return &State{facts: map[string]*Fact{}, roleAlias: map[string]string{}, groups: map[string][]*Fact{}}
}

func (s *State) add(id string, f *Fact) {
	s.facts[id] = f
	g := groupOf(f.Tenant, f.Type, f.Key)
	s.groups[g] = append(s.groups[g], f)
}

// groupOf is the group a fact key falls in: its first two parts.
func groupOf(tenant, typ, key string) string {
	if i := strings.IndexByte(key, '|'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '|'); j >= 0 {
			key = key[:i+1+j]
		}
	}
	return tenant + "\x00" + typ + "\x00" + key
}

// Facts returns every fact (present and removed), sorted by tenant, type
// and key.
func (s *State) Facts() []*Fact {
	out := make([]*Fact, 0, len(s.facts))
	for _, f := range s.facts {
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b *Fact) int {
		return cmp.Or(strings.Compare(a.Tenant, b.Tenant), strings.Compare(a.Type, b.Type), strings.Compare(a.Key, b.Key))
	})
	return out
}

// Current returns the facts that hold at time t (present and not expired;
// t zero: ignore expiry), optionally only of one tenant ("" for all).
func (s *State) Current(tenant string, t time.Time) []*Fact {
	var out []*Fact
	for _, f := range s.Facts() {
		if (tenant == "" || f.Tenant == tenant) && f.ActiveAt(t) {
			out = append(out, f)
		}
	}
	return out
}

// Lookup returns the fact of a tenant, type and key, or nil.
func (s *State) Lookup(tenant, typ, key string) *Fact {
	return s.facts[tenant+"\x00"+typ+"\x00"+key]
}

// Tenants returns the tenants the state has facts about, sorted.
func (s *State) Tenants() []string {
	seen := map[string]bool{}
	for _, f := range s.facts {
		seen[f.Tenant] = true
	}
	out := make([]string, 0, len(seen))
	for t := range seen {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

// Key joins key parts with "|".
func Key(parts ...string) string { return strings.Join(parts, "|") }
