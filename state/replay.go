package state

import (
	"encoding/json"
	"slices"
	"strings"
	"time"

	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
)

// TenantOf returns the tenant ("<provider>/<tenant>") of an entry: the
// first two segments of the leaf's source (entra/<tenant-id>/audit ->
// entra/<tenant-id>), else the event's own provider and tenant.
func TenantOf(source string, ev *stelev1.IdentityEvent) string {
	if p := strings.SplitN(source, "/", 3); len(p) >= 2 && p[0] != "" && p[1] != "" {
		return p[0] + "/" + p[1]
	}
	if s := ev.GetSource(); s.GetProvider() != "" {
		return s.GetProvider() + "/" + s.GetTenant()
	}
	return source
}

// Skip records an entry whose event is not available (erased payload,
// unreadable record, payload not fetched) as unused and advances the state
// past it.
func (s *State) Skip(index uint64, source, kind, reason string) {
	s.Unused = append(s.Unused, Unused{Index: index, Source: source, Kind: kind, Reason: reason})
	s.Size = max(s.Size, index+1)
}

// Apply replays the event at log index index, submitted under source (the
// leaf's source). Entries must be applied in log order.
func (s *State) Apply(index uint64, source string, ev *stelev1.IdentityEvent) {
	s.Size = max(s.Size, index+1)
	kind := ev.GetKind()
	unused := func(reason string) {
		s.Unused = append(s.Unused, Unused{Index: index, Source: source, Kind: kind, Reason: reason})
	}
	if slices.Contains(ev.GetFlags(), "unknown_activity") {
		unused("unknown_activity")
		return
	}
	h, ok := handlers[kind]
	if !ok {
		if ignoredKind(kind) {
			s.Ignored++
			return
		}
		unused("unhandled kind")
		return
	}
	if st := ev.GetOutcome().GetStatus(); st != stelev1.OutcomeStatus_OUTCOME_STATUS_SUCCESS && st != stelev1.OutcomeStatus_OUTCOME_STATUS_UNSPECIFIED {
		s.Failed++
		return
	}
	r := &replay{s: s, index: index, tenant: TenantOf(source, ev), ev: ev}
	if ev.GetEventTime() != nil {
		r.at = ev.GetEventTime().AsTime()
	}
	if reason := h(r); reason != "" {
		unused("no subject: " + reason)
	}
}

// ignoredKind reports kinds that never change identity state.
func ignoredKind(kind string) bool {
	// stele.*: the log's own events (erasures).
	for _, p := range []string{"signin.", "session.", "user.password.", "group.owner.", "policy.update", "stele."} {
		if strings.HasPrefix(kind, p) {
			return true
		}
	}
	switch kind {
	case "directory.role.activation.request", "directory.role.activation.approve", "directory.role.activation.deny",
		"directory.role.activation.request.expire", "directory.role.eligibility.request", "directory.role.eligibility.cancel",
		"directory.role.eligibility.remove.request", "directory.role.member.request", "directory.role.member.remove.request",
		"app.registration.update", "group.delete":
		return true
	}
	return false
}

// replay is one event being applied.
type replay struct {
	s      *State
	index  uint64
	tenant string
	ev     *stelev1.IdentityEvent
	at     time.Time
}

// set makes a fact present (creating it or updating its attributes) and
// records the event on it.
// attrs are key, value pairs; empty values are not set.
func (r *replay) set(typ, key, subject, object string, until *time.Time, attrs ...string) *Fact {
	id := r.tenant + "\x00" + typ + "\x00" + key
	f := r.s.facts[id]
	if f == nil {
		f = &Fact{Tenant: r.tenant, Type: typ, Key: key, Attrs: map[string]string{}}
		r.s.add(id, f)
	}
	if !f.Present {
		// Re-created: what the removed fact said no longer holds.
		clear(f.Attrs)
	}
	f.Present = true
	f.Subject, f.Object = firstOf(subject, f.Subject), firstOf(object, f.Object)
	for i := 0; i+1 < len(attrs); i += 2 {
		if attrs[i+1] != "" {
			f.Attrs[attrs[i]] = attrs[i+1]
		}
	}
	f.Until = until
	r.touch(f)
	return f
}

// remove marks a fact removed, creating it as removed when the ledger never
// saw it made (a removal of something that predates the log).
func (r *replay) remove(typ, key, subject, object string) *Fact {
	id := r.tenant + "\x00" + typ + "\x00" + key
	f := r.s.facts[id]
	if f == nil {
		f = &Fact{Tenant: r.tenant, Type: typ, Key: key, Subject: subject, Object: object, Attrs: map[string]string{}}
		r.s.add(id, f)
	}
	f.Present = false
	f.Until = nil
	r.touch(f)
	return f
}

func (r *replay) touch(f *Fact) {
	if n := len(f.Events); n == 0 || f.Events[n-1] != r.index {
		f.Events = append(f.Events, r.index)
	}
	f.Changed = r.at
}

func firstOf(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// handler applies one kind; it returns a reason when the event does not
// name what it acts on.
type handler func(r *replay) string

var handlers = map[string]handler{
	"directory.role.member.add":         roleGrant(stelev1.AssignmentKind_ASSIGNMENT_KIND_ACTIVE),
	"directory.role.activation":         roleGrant(stelev1.AssignmentKind_ASSIGNMENT_KIND_ACTIVE),
	"directory.role.eligibility.add":    roleGrant(stelev1.AssignmentKind_ASSIGNMENT_KIND_ELIGIBLE),
	"directory.role.member.remove":      roleRevoke(stelev1.AssignmentKind_ASSIGNMENT_KIND_ACTIVE),
	"directory.role.activation.expire":  roleRevoke(stelev1.AssignmentKind_ASSIGNMENT_KIND_ACTIVE),
	"directory.role.deactivation":       roleRevoke(stelev1.AssignmentKind_ASSIGNMENT_KIND_ACTIVE),
	"directory.role.eligibility.remove": roleRevoke(stelev1.AssignmentKind_ASSIGNMENT_KIND_ELIGIBLE),

	"app.role_assignment.add":    appRole(true),
	"app.role_assignment.remove": appRole(false),

	"app.permission_grant.add":    grant(true),
	"app.permission_grant.remove": grant(false),
	"consent.user.grant":          grant(true),
	"consent.admin.grant":         grant(true),

	"app.registration.add":         object(Application, true),
	"app.registration.delete":      object(Application, false),
	"app.service_principal.add":    object(ServicePrincipal, true),
	"app.service_principal.delete": object(ServicePrincipal, false),

	"app.credential.add":                  credential(Application),
	"app.credential.remove":               credential(Application),
	"app.credential.update":               credential(Application),
	"service_principal.credential.add":    credential(ServicePrincipal),
	"service_principal.credential.remove": credential(ServicePrincipal),
	"service_principal.credential.update": credential(ServicePrincipal),

	"policy.conditional_access.add":    caPolicy,
	"policy.conditional_access.update": caPolicy,
	"policy.conditional_access.delete": caPolicy,

	"user.create":  userStatus("enabled"),
	"user.enable":  userStatus("enabled"),
	"user.restore": userStatus("enabled"),
	"user.disable": userStatus("disabled"),
	"user.delete":  userStatus("deleted"),
	"user.update":  userUpdate,

	"user.security_info.add":         method(true),
	"user.security_info.add.self":    method(true),
	"user.security_info.update":      method(true),
	"user.security_info.update.self": method(true),
	"user.security_info.remove":      method(false),
	"user.security_info.remove.self": method(false),

	"group.create":        groupCreate,
	"group.member.add":    groupMember(true),
	"group.member.remove": groupMember(false),

	"user.access_key.add":    accessKey(true),
	"user.access_key.remove": accessKey(false),
	"user.policy.attach":     attachedPolicy(true),
	"user.policy.detach":     attachedPolicy(false),
}

// roleID is the role's stable id: the template id when the event (or an
// earlier one naming the same role object) gives it, else the role id.
func (r *replay) roleID(p *stelev1.PrivilegeFacet) string {
	alias := r.tenant + "\x00" + p.GetRoleId()
	if t := p.GetRoleTemplateId(); t != "" {
		if p.GetRoleId() != "" {
			r.s.roleAlias[alias] = t
		}
		return t
	}
	if t, ok := r.s.roleAlias[alias]; ok {
		return t
	}
	return p.GetRoleId()
}

func assignee(p *stelev1.PrivilegeFacet) string {
	return firstOf(p.GetAssigneeId(), p.GetAssigneeLogin())
}

func scope(p *stelev1.PrivilegeFacet) string { return firstOf(p.GetScope(), "/") }

func roleKey(r *replay, p *stelev1.PrivilegeFacet, k stelev1.AssignmentKind) (key, who, role string) {
	who, role = assignee(p), r.roleID(p)
	return Key(who, role, scope(p), assignmentName(k)), who, role
}

func assignmentName(k stelev1.AssignmentKind) string {
	if k == stelev1.AssignmentKind_ASSIGNMENT_KIND_ELIGIBLE {
		return "eligible"
	}
	return "active"
}

func roleGrant(k stelev1.AssignmentKind) handler {
	return func(r *replay) string {
		p := r.ev.GetPrivilege()
		if p == nil || assignee(p) == "" || (p.GetRoleId() == "" && p.GetRoleTemplateId() == "") {
			return "privilege without assignee or role"
		}
		key, who, role := roleKey(r, p, k)
		duration := "permanent"
		var until *time.Time
		if p.GetDuration() == stelev1.AssignmentDuration_ASSIGNMENT_DURATION_TIMEBOUND || p.GetEndsAt() != nil || r.ev.GetKind() == "directory.role.activation" {
			duration = "timebound"
		}
		if p.GetEndsAt() != nil {
			t := p.GetEndsAt().AsTime()
			until = &t
		}
		// Every attribute a later grant could contradict is set, never
		// left over: a permanent grant after an activation is not
		// "activated".
		r.set(DirectoryRole, key, who, role, until, "assignment", assignmentName(k), "duration", duration, "via_pim", boolText(p.GetViaPim()),
			"role_name", p.GetRoleName(), "scope", scope(p), "assignee_login", p.GetAssigneeLogin(), "role_id", p.GetRoleId(),
			"activated", boolText(r.ev.GetKind() == "directory.role.activation"))
		return ""
	}
}

func roleRevoke(k stelev1.AssignmentKind) handler {
	return func(r *replay) string {
		p := r.ev.GetPrivilege()
		if p == nil || assignee(p) == "" || (p.GetRoleId() == "" && p.GetRoleTemplateId() == "") {
			return "privilege without assignee or role"
		}
		key, who, role := roleKey(r, p, k)
		if r.s.facts[r.tenant+"\x00"+DirectoryRole+"\x00"+key] == nil && p.GetScope() == "" {
			// A revocation that does not name the scope removes the
			// assignment at whatever scope the ledger has.
			for _, f := range r.s.groups[groupOf(r.tenant, DirectoryRole, key)] {
				if f.Present && strings.HasSuffix(f.Key, "|"+assignmentName(k)) {
					key = f.Key
					break
				}
			}
		}
		r.remove(DirectoryRole, key, who, role)
		return ""
	}
}

func boolText(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

func appRole(add bool) handler {
	return func(r *replay) string {
		p := r.ev.GetPrivilege()
		if p == nil || p.GetAssigneeId() == "" {
			return "app role assignment without assignee"
		}
		key := Key(p.GetAssigneeId(), p.GetScope(), p.GetRoleId())
		if !add {
			r.remove(AppRoleAssignment, key, p.GetAssigneeId(), p.GetScope())
			return ""
		}
		r.set(AppRoleAssignment, key, p.GetAssigneeId(), p.GetScope(), nil, "app_role_id", p.GetRoleId(), "app_role", p.GetRoleName(), "resource", p.GetScope())
		return ""
	}
}

// grant applies a delegated permission grant or a consent: a grant of the
// client to all principals (tenant-wide) or to the consenting principal.
func grant(add bool) handler {
	return func(r *replay) string {
		c := r.ev.GetConsent()
		if c == nil || c.GetClientId() == "" {
			return "consent without client"
		}
		consentType, principal := "Principal", ""
		if c.GetOnBehalfOfAll() || strings.EqualFold(c.GetConsentType(), "AllPrincipals") {
			consentType = "AllPrincipals"
		} else {
			principal = r.ev.GetActor().GetId()
		}
		key := Key(c.GetClientId(), consentType, principal)
		if !add {
			r.remove(PermissionGrant, key, c.GetClientId(), principal)
			return ""
		}
		f := r.set(PermissionGrant, key, c.GetClientId(), principal, nil, "consent_type", consentType, "client_name", c.GetClientDisplayName())
		scopes := strings.Fields(f.Attrs["scopes"])
		for _, sc := range c.GetScopes() {
			if !slices.Contains(scopes, sc) {
				scopes = append(scopes, sc)
			}
		}
		slices.Sort(scopes)
		if len(scopes) > 0 {
			f.Attrs["scopes"] = strings.Join(scopes, " ")
		}
		if c.GetAdminConsent() {
			f.Attrs["admin_consent"] = "true"
		}
		return ""
	}
}

// firstTarget returns the first target that is not a user (the object an
// application or service-principal event acts on).
func firstTarget(ev *stelev1.IdentityEvent, types ...string) *stelev1.Target {
	for _, t := range ev.GetTargets() {
		for _, typ := range types {
			if strings.EqualFold(t.GetNativeType(), typ) {
				return t
			}
		}
	}
	if len(ev.GetTargets()) > 0 {
		return ev.GetTargets()[0]
	}
	return nil
}

// change returns the unquoted new value of a target's modified property.
func change(t *stelev1.Target, name string) (string, bool) {
	for _, c := range t.GetChanges() {
		if strings.EqualFold(c.GetName(), name) {
			if !c.GetNewValue().GetPresent() {
				return "", false
			}
			return unquoteValue(c.GetNewValue().GetValue()), true
		}
	}
	return "", false
}

// unquoteValue decodes Entra's modified-property values: a JSON string, or
// a one-element JSON array such as ["Ivy"] or [true].
func unquoteValue(v string) string {
	var s string
	if json.Unmarshal([]byte(v), &s) == nil {
		return s
	}
	var list []any
	if json.Unmarshal([]byte(v), &list) == nil && len(list) == 1 {
		switch x := list[0].(type) {
		case string:
			return x
		case bool:
			return boolText(x)
		}
	}
	return strings.TrimSpace(v)
}

func object(typ string, add bool) handler {
	return func(r *replay) string {
		t := firstTarget(r.ev, "Application", "ServicePrincipal")
		if t == nil || t.GetId() == "" {
			return "no application or service principal target"
		}
		if !add {
			r.remove(typ, t.GetId(), t.GetId(), "")
			return ""
		}
		attrs := []string{"display_name", t.GetDisplayName()}
		if id, ok := change(t, "AppId"); ok {
			attrs = append(attrs, "app_id", id)
		}
		r.set(typ, t.GetId(), t.GetId(), "", nil, attrs...)
		return ""
	}
}

// credential applies a credential change of an application or service
// principal. When the record carries the whole KeyDescription list, the
// owner's credentials become exactly that list; otherwise the facet's one
// key is added or removed.
func credential(owner string) handler {
	return func(r *replay) string {
		t := firstTarget(r.ev, "Application", "ServicePrincipal")
		if t == nil || t.GetId() == "" {
			return "no credential owner"
		}
		ownerID := t.GetId()
		prefix := Key(owner, ownerID) + "|"
		if list, old, ok := keyDescriptions(t); ok {
			before := map[string]bool{}
			for _, k := range old {
				before[k["KeyIdentifier"]] = true
			}
			keep := map[string]bool{}
			for _, k := range list {
				id := k["KeyIdentifier"]
				if id == "" {
					continue
				}
				keep[id] = true
				key := prefix + id
				if f := r.s.Lookup(r.tenant, Credential, key); f != nil && f.Present {
					continue // unchanged by this event
				}
				attrs := []string{"owner", owner, "type", credentialType(k["KeyType"]), "display_name", k["DisplayName"],
					"usage", k["KeyUsage"], "owner_name", t.GetDisplayName(), "first_seen", r.at.UTC().Format(time.RFC3339)}
				if !before[id] {
					// Not in the old list: this event added it.
					attrs = append(attrs, "added", r.at.UTC().Format(time.RFC3339))
				}
				r.set(Credential, key, ownerID, id, nil, attrs...)
			}
			for _, f := range r.s.groups[groupOf(r.tenant, Credential, prefix)] {
				if f.Present && !keep[f.Object] {
					r.remove(Credential, f.Key, ownerID, f.Object)
				}
			}
			return ""
		}
		c := r.ev.GetCredential()
		if c.GetKeyId() == "" {
			return "credential change without key id"
		}
		key := prefix + c.GetKeyId()
		if c.GetOp() == "remove" {
			r.remove(Credential, key, ownerID, c.GetKeyId())
			return ""
		}
		r.set(Credential, key, ownerID, c.GetKeyId(), nil, "owner", owner, "type", c.GetCredentialType(), "display_name", c.GetDisplayName(),
			"owner_name", t.GetDisplayName(), "first_seen", r.at.UTC().Format(time.RFC3339), "added", r.at.UTC().Format(time.RFC3339))
		return ""
	}
}

func credentialType(keyType string) string {
	switch strings.ToLower(keyType) {
	case "password":
		return "client_secret"
	case "asymmetricx509cert":
		return "certificate"
	}
	return strings.ToLower(keyType)
}

// keyDescriptions parses the KeyDescription lists of a target (new and
// old): JSON arrays of "[KeyIdentifier=…,KeyType=…,KeyUsage=…,DisplayName=…]".
func keyDescriptions(t *stelev1.Target) (after, before []map[string]string, ok bool) {
	for _, c := range t.GetChanges() {
		if !strings.EqualFold(c.GetName(), "KeyDescription") || !c.GetNewValue().GetPresent() {
			continue
		}
		after, ok = keyList(c.GetNewValue().GetValue())
		if !ok {
			return nil, nil, false
		}
		if c.GetOldValue().GetPresent() {
			before, _ = keyList(c.GetOldValue().GetValue())
		}
		return after, before, true
	}
	return nil, nil, false
}

func keyList(v string) ([]map[string]string, bool) {
	var list []string
	if json.Unmarshal([]byte(v), &list) != nil {
		var inner string
		if json.Unmarshal([]byte(v), &inner) != nil || json.Unmarshal([]byte(inner), &list) != nil {
			return nil, false
		}
	}
	out := make([]map[string]string, 0, len(list))
	for _, e := range list {
		e = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(e), "["), "]")
		m := map[string]string{}
		for _, kv := range strings.Split(e, ",") {
			if k, val, ok := strings.Cut(kv, "="); ok {
				m[strings.TrimSpace(k)] = strings.TrimSpace(val)
			}
		}
		out = append(out, m)
	}
	return out, true
}

func caPolicy(r *replay) string {
	p := r.ev.GetPolicy()
	if p == nil || p.GetId() == "" {
		return "conditional-access change without policy id"
	}
	if r.ev.GetKind() == "policy.conditional_access.delete" {
		r.remove(CAPolicy, p.GetId(), p.GetId(), "")
		return ""
	}
	state := p.GetStateAfter()
	if state == "" && r.ev.GetKind() == "policy.conditional_access.add" {
		state = "unknown"
	}
	r.set(CAPolicy, p.GetId(), p.GetId(), "", nil, "display_name", p.GetDisplayName(), "state", state)
	return ""
}

// userTarget returns the id and login of the user an account event is
// about: the first User (or IAMUser) target, else the first target.
func userTarget(ev *stelev1.IdentityEvent) (id, login string, t *stelev1.Target) {
	t = firstTarget(ev, "User", "IAMUser")
	if t == nil {
		return "", "", nil
	}
	return firstOf(t.GetId(), t.GetLogin()), t.GetLogin(), t
}

func userStatus(status string) handler {
	return func(r *replay) string {
		id, login, t := userTarget(r.ev)
		if id == "" {
			return "account event without a user"
		}
		st := status
		if r.ev.GetKind() == "user.create" {
			if v, ok := change(t, "AccountEnabled"); ok && strings.EqualFold(v, "false") {
				st = "disabled" // created disabled
			}
		}
		// A deleted user stays a fact: status deleted.
		r.set(User, id, id, "", nil, "status", st, "login", login, "display_name", t.GetDisplayName())
		return ""
	}
}

// userUpdate applies an "Update user" that changes AccountEnabled.
func userUpdate(r *replay) string {
	id, login, t := userTarget(r.ev)
	if id == "" {
		return "account event without a user"
	}
	v, ok := change(t, "AccountEnabled")
	if !ok {
		if f := r.s.Lookup(r.tenant, User, id); f != nil {
			r.touch(f)
		}
		return ""
	}
	status := "enabled"
	if strings.EqualFold(v, "false") {
		status = "disabled"
	}
	r.set(User, id, id, "", nil, "status", status, "login", login)
	return ""
}

func method(add bool) handler {
	return func(r *replay) string {
		id, login, _ := userTarget(r.ev)
		if id == "" {
			// Self-service: the actor is the user.
			id, login = firstOf(r.ev.GetActor().GetId(), r.ev.GetActor().GetLogin()), r.ev.GetActor().GetLogin()
		}
		if id == "" {
			return "security-info event without a user"
		}
		typ := firstOf(r.ev.GetCredential().GetCredentialType(), "security_info")
		key := Key(id, typ)
		if !add {
			r.remove(AuthMethod, key, id, typ)
			return ""
		}
		r.set(AuthMethod, key, id, typ, nil, "method", typ, "login", login)
		return ""
	}
}

func groupCreate(r *replay) string {
	t := firstTarget(r.ev, "Group")
	if t == nil || t.GetId() == "" {
		return "group event without a group"
	}
	if v, ok := change(t, "IsAssignableToRole"); ok && strings.EqualFold(v, "true") {
		r.s.roleAlias[r.tenant+"\x00group:"+t.GetId()] = "role_assignable"
	}
	return ""
}

func groupMember(add bool) handler {
	return func(r *replay) string {
		group := firstTarget(r.ev, "Group")
		var member *stelev1.Target
		for _, t := range r.ev.GetTargets() {
			if t != group {
				member = t
				break
			}
		}
		if group == nil || member == nil || firstOf(group.GetId(), group.GetDisplayName()) == "" {
			return "group membership without group and member"
		}
		gid := firstOf(group.GetId(), group.GetDisplayName())
		if v, ok := change(member, "Group.ObjectID"); ok && v != "" {
			gid = v
		}
		mid := firstOf(member.GetId(), member.GetLogin())
		key := Key(gid, mid)
		if !add {
			r.remove(GroupMember, key, mid, gid)
			return ""
		}
		attrs := []string{"group_name", group.GetDisplayName(), "member_login", member.GetLogin()}
		if r.s.roleAlias[r.tenant+"\x00group:"+gid] == "role_assignable" {
			attrs = append(attrs, "role_assignable", "true")
		}
		r.set(GroupMember, key, mid, gid, nil, attrs...)
		return ""
	}
}

func accessKey(add bool) handler {
	return func(r *replay) string {
		c := r.ev.GetCredential()
		user := firstOf(c.GetDisplayName(), r.ev.GetActor().GetLogin())
		if user == "" || c.GetKeyId() == "" {
			return "access-key event without user or key id"
		}
		key := Key(user, c.GetKeyId())
		if !add {
			r.remove(AccessKey, key, user, c.GetKeyId())
			return ""
		}
		r.set(AccessKey, key, user, c.GetKeyId(), nil, "created", r.at.UTC().Format(time.RFC3339))
		return ""
	}
}

func attachedPolicy(add bool) handler {
	return func(r *replay) string {
		p := r.ev.GetPrivilege()
		if p == nil || assignee(p) == "" || p.GetRoleId() == "" {
			return "policy attachment without user or policy"
		}
		key := Key(assignee(p), p.GetRoleId())
		if !add {
			r.remove(AttachedPolicy, key, assignee(p), p.GetRoleId())
			return ""
		}
		r.set(AttachedPolicy, key, assignee(p), p.GetRoleId(), nil)
		return ""
	}
}
