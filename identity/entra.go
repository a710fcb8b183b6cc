package identity

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/timestamppb"

	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
)

// auditRecord is what the facet builders read from an Entra audit record.
type auditRecord struct {
	key     string // activityKey of the activity name
	targets []obj
	mods    [][]obj // each target's modifiedProperties
	details []obj
}

// entraAudit normalises a Graph directoryAudit object.
func entraAudit(o obj, ev *stelev1.IdentityEvent) error {
	if isLARow(o) {
		return laRowAs(o, ev, "audit")
	}
	if !has(o, "activityDisplayName", "activityDateTime", "loggedByService", "initiatedBy", "targetResources") {
		return errNotFormat("an Entra directoryAudit", "activityDisplayName, activityDateTime, loggedByService, initiatedBy, targetResources")
	}
	ev.Source = &stelev1.IdentitySource{Provider: "entra", Tenant: o.str("tenantId"), Stream: "audit"}
	return auditProperties(o, ev)
}

// auditProperties normalises a directoryAudit object (Graph, or the
// properties of a diagnostic AuditLogs record).
func auditProperties(p obj, ev *stelev1.IdentityEvent) error {
	ev.NativeId = p.nativeID("id")
	if ev.EventTime == nil {
		if err := setTimes(ev, zoneUTC, timeField{"activityDateTime", p.str("activityDateTime")}); err != nil {
			return err
		}
	}
	ev.NativeAction = p.str("activityDisplayName")
	ev.NativeCategory = p.str("category")
	ev.NativeService = p.str("loggedByService")
	ev.NativeOperationType = p.str("operationType")
	ev.Outcome = entraResult(ev, p, "result")
	ev.Outcome.Reason = p.str("resultReason")
	if c := p.str("correlationId"); c != "" {
		ev.Correlation = &stelev1.Correlation{CorrelationId: c}
	}

	init, err := p.object("initiatedBy", "initiatedBy")
	if err != nil {
		return err
	}
	if ev.Actor, err = entraInitiator(init); err != nil {
		return err
	}
	a := &auditRecord{key: activityKey(ev.NativeAction)}
	if a.targets, err = p.objects("targetResources", "targetResources"); err != nil {
		return err
	}
	a.mods = make([][]obj, len(a.targets))
	for i, t := range a.targets {
		tg := &stelev1.Target{NativeType: t.str("type"), Id: t.str("id"), Login: t.str("userPrincipalName"), DisplayName: t.str("displayName")}
		// The path is worded only for an error: most records have none.
		mps, err := t.objects("modifiedProperties", "modifiedProperties")
		if err != nil {
			return fmt.Errorf("targetResources[%d].%w", i, err)
		}
		a.mods[i] = mps
		for _, mp := range mps {
			tg.Changes = append(tg.Changes, &stelev1.PropertyChange{Name: mp.str("displayName"), OldValue: nullable(mp.nullable("oldValue")), NewValue: nullable(mp.nullable("newValue"))})
		}
		ev.Targets = append(ev.Targets, tg)
	}
	if a.details, err = p.objects("additionalDetails", "additionalDetails"); err != nil {
		return err
	}
	for _, d := range a.details {
		ev.AdditionalDetails = append(ev.AdditionalDetails, &stelev1.KeyValue{Key: d.str("key"), Value: nullable(d.nullable("value"))})
	}

	ua := p.str("userAgent")
	if ua == "" {
		ua = detail(a, "User-Agent")
	}
	ip := ""
	if ev.Actor != nil {
		ip = realIP(ev, ev.Actor.IpAddress)
	}
	if ip != "" || ua != "" {
		ev.Client = &stelev1.Client{Ip: ip, UserAgent: ua}
	}

	act, ok := entraActivities[a.key]
	if !ok {
		ev.Kind = entraUnknownKind
		class(ev, stelev1.EventClass_EVENT_CLASS_OTHER, ocsfEntityManagement, 99)
		addFlag(ev, FlagUnknownActivity)
		return nil
	}
	ev.Kind = act.kind
	class(ev, classOf(act.classUID), act.classUID, act.activityID)
	if act.facet != nil {
		act.facet(ev, a)
	}
	return nil
}

// pimAppID is the application id of Microsoft's PIM service principal
// ("MS-PIM"), which performs the directory side of PIM operations.
const pimAppID = "01fc33a7-78ba-4d2f-a4b7-768e336e890e"

// isPIMService tells whether the actor is the PIM service principal.
func isPIMService(a *stelev1.Principal) bool {
	if a == nil || a.NativeType != "app" {
		return false
	}
	return strings.EqualFold(a.AppId, pimAppID) || strings.EqualFold(a.DisplayName, "MS-PIM") || strings.EqualFold(a.ServicePrincipalName, "MS-PIM")
}

func nullable(n nullStr) *stelev1.NullableString {
	return &stelev1.NullableString{Present: n.present, Value: n.value}
}

// entraResult reads a result that may be a string ("success") or, in
// legacy records, a number (0 success, 1 failure, 2 timeout).
func entraResult(ev *stelev1.IdentityEvent, o obj, key string) *stelev1.Outcome {
	v, _ := o.get(key)
	if v.kind == kindNumber {
		addFlag(ev, FlagNumericResult)
	}
	text := scalarText(v)
	out := &stelev1.Outcome{NativeResult: text}
	switch strings.ToLower(text) {
	case "":
	case "success", "0":
		out.Status = stelev1.OutcomeStatus_OUTCOME_STATUS_SUCCESS
	case "failure", "1":
		out.Status = stelev1.OutcomeStatus_OUTCOME_STATUS_FAILURE
	case "timeout", "2":
		out.Status = stelev1.OutcomeStatus_OUTCOME_STATUS_TIMEOUT
	default:
		out.Status = stelev1.OutcomeStatus_OUTCOME_STATUS_OTHER
	}
	return out
}

// entraInitiator reads initiatedBy {user, app}. A user without a UPN (such
// as "Azure AD PIM") is the system; an app without an appId is the system,
// or a managed identity when it says so.
func entraInitiator(init obj) (*stelev1.Principal, error) {
	user, err := init.object("user", "initiatedBy.user")
	if err != nil {
		return nil, err
	}
	app, err := init.object("app", "initiatedBy.app")
	if err != nil {
		return nil, err
	}
	switch {
	case len(user) > 0 && (user.str("id") != "" || user.str("displayName") != "" || user.str("userPrincipalName") != ""):
		p := &stelev1.Principal{NativeType: "user", Type: stelev1.PrincipalType_PRINCIPAL_TYPE_USER, Id: user.str("id"), Login: user.str("userPrincipalName"),
			DisplayName: user.str("displayName"), IpAddress: user.str("ipAddress"), UserType: user.str("userType"), TenantId: user.str("homeTenantId")}
		if p.Login == "" {
			p.Type = stelev1.PrincipalType_PRINCIPAL_TYPE_SYSTEM
		}
		return p, nil
	case len(app) > 0:
		p := &stelev1.Principal{NativeType: "app", Type: stelev1.PrincipalType_PRINCIPAL_TYPE_SERVICE_PRINCIPAL, AppId: app.str("appId"), DisplayName: app.str("displayName"),
			ServicePrincipalId: app.str("servicePrincipalId"), ServicePrincipalName: app.str("servicePrincipalName")}
		p.Id = p.ServicePrincipalId
		if p.AppId == "" {
			p.Type = stelev1.PrincipalType_PRINCIPAL_TYPE_SYSTEM
			if strings.EqualFold(p.DisplayName, "Managed Service Identity") {
				p.Type = stelev1.PrincipalType_PRINCIPAL_TYPE_MANAGED_IDENTITY
			}
		}
		return p, nil
	}
	return nil, nil
}

// detail returns the first additionalDetails value under key (case-insensitive).
func detail(a *auditRecord, key string) string {
	for _, d := range a.details {
		if strings.EqualFold(d.str("key"), key) {
			return d.str("value")
		}
	}
	return ""
}

// property returns the first modified property named name across the
// targets, as its new value (or old value when the new one is null).
func property(a *auditRecord, name string) (old, new nullStr) {
	for _, mps := range a.mods {
		for _, mp := range mps {
			if strings.EqualFold(mp.str("displayName"), name) {
				return mp.nullable("oldValue"), mp.nullable("newValue")
			}
		}
	}
	return nullStr{}, nullStr{}
}

// unquote decodes a modified-property value that is a JSON string inside a
// string ("\"Global Administrator\""), or returns it as is.
func unquote(s string) string {
	if s == "" {
		return s
	}
	switch s[0] {
	case '"':
		// The common case, a quoted string without escapes, without a
		// trip through encoding/json (TestUnquote holds it to that).
		if len(s) >= 2 && s[len(s)-1] == '"' && plainJSONText(s[1:len(s)-1]) {
			return s[1 : len(s)-1]
		}
	case ' ', '\t', '\n', '\r', 'n':
	default:
		// Not a JSON string nor null (with or without whitespace):
		// json.Unmarshal would refuse it.
		return s
	}
	return unquoteJSON(s)
}

// plainJSONText reports whether s can stand between quotes as it is: UTF-8
// without quotes, backslashes or control characters.
func plainJSONText(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' {
			return false
		}
	}
	return utf8.ValidString(s)
}

// unquoteJSON is unquote through encoding/json: the reference for the fast
// cases and the reader of every other.
func unquoteJSON(s string) string {
	var v string
	if json.Unmarshal([]byte(s), &v) == nil {
		return v
	}
	return s
}

// propValue is the unquoted new (or else old) value of a modified property.
func propValue(a *auditRecord, name string) string {
	old, new := property(a, name)
	if new.present {
		return unquote(new.value)
	}
	return unquote(old.value)
}

// principalTarget returns the first target that is a user or service
// principal.
func principalTarget(a *auditRecord) obj {
	for _, t := range a.targets {
		switch strings.ToLower(t.str("type")) {
		case "user", "serviceprincipal":
			return t
		}
	}
	return nil
}

func typedTarget(a *auditRecord, typ string) obj {
	for _, t := range a.targets {
		if strings.EqualFold(t.str("type"), typ) {
			return t
		}
	}
	return nil
}

func rolePrivilege(ev *stelev1.IdentityEvent, a *auditRecord, op string, k stelev1.AssignmentKind, d stelev1.AssignmentDuration, pim bool) {
	byPIM := isPIMService(ev.GetActor())
	if byPIM {
		// The directory's own record of a PIM operation (same
		// correlationId as the PIM service's record): a grant through
		// PIM, not a new permanent one.
		addFlag(ev, FlagViaPIMService)
		d = stelev1.AssignmentDuration_ASSIGNMENT_DURATION_UNSPECIFIED
	}
	pf := &stelev1.PrivilegeFacet{Op: op, Assignment: k, Duration: d, ViaPim: pim || byPIM || strings.EqualFold(ev.NativeService, "PIM") || strings.EqualFold(ev.NativeService, "Privileged Identity Management"),
		RoleId: propValue(a, "Role.ObjectID"), RoleTemplateId: propValue(a, "Role.TemplateId"), RoleName: propValue(a, "Role.DisplayName")}
	if r := typedTarget(a, "Role"); r != nil {
		if pf.RoleId == "" {
			pf.RoleId = r.str("id")
		}
		if pf.RoleName == "" {
			pf.RoleName = r.str("displayName")
		}
	}
	if pf.RoleTemplateId == "" {
		pf.RoleTemplateId = propValue(a, "RoleDefinitionOriginId")
	}
	if t := principalTarget(a); t != nil {
		pf.AssigneeId = t.str("id")
		pf.AssigneeLogin = t.str("userPrincipalName")
	}
	for _, key := range []string{"StartTime", "startDateTime"} {
		if s := detail(a, key); s != "" {
			if t, err := parseTime(key, s); err == nil {
				pf.StartsAt = timestamppb.New(t)
			}
			break
		}
	}
	for _, key := range []string{"EndTime", "ExpirationTime", "endDateTime"} {
		if s := detail(a, key); s != "" {
			if t, err := parseTime(key, s); err == nil {
				pf.EndsAt = timestamppb.New(t)
			}
			break
		}
	}
	pf.Justification = detail(a, "Justification")
	if pf.Justification == "" {
		pf.Justification = detail(a, "Reason")
	}
	pf.Scope = detail(a, "DirectoryScopeId")
	ev.Privilege = pf
}

func caPolicy(op string) auditFacet {
	return func(ev *stelev1.IdentityEvent, a *auditRecord) {
		pf := &stelev1.PolicyFacet{PolicyType: "conditional_access", Op: op}
		if t := typedTarget(a, "Policy"); t != nil {
			pf.Id, pf.DisplayName = t.str("id"), t.str("displayName")
		} else if len(a.targets) > 0 {
			pf.Id, pf.DisplayName = a.targets[0].str("id"), a.targets[0].str("displayName")
		}
		old, new := property(a, "ConditionalAccessPolicy")
		pf.StateBefore = policyState(old)
		pf.StateAfter = policyState(new)
		ev.Policy = pf
	}
}

// policyState reads "state" from a Conditional Access policy JSON value.
func policyState(v nullStr) string {
	if !v.present {
		return ""
	}
	var p struct {
		State string `json:"state"`
	}
	if json.Unmarshal([]byte(v.value), &p) != nil {
		// The policy can be a JSON string holding the JSON.
		if json.Unmarshal([]byte(unquote(v.value)), &p) != nil {
			return ""
		}
	}
	return p.State
}

func securityInfo(op string, byAdmin bool) auditFacet {
	return func(ev *stelev1.IdentityEvent, a *auditRecord) {
		cf := &stelev1.CredentialFacet{Op: op, Owner: "user", CredentialType: methodType(ev.GetOutcome().GetReason()), ByAdmin: byAdmin}
		if t := principalTarget(a); t != nil {
			cf.DisplayName = t.str("userPrincipalName")
		}
		ev.Credential = cf
	}
}

// methodType guesses the authentication method from the result reason text
// Entra writes for security-info events.
func methodType(reason string) string {
	r := strings.ToLower(reason)
	switch {
	case strings.Contains(r, "authenticator app"):
		return "authenticator_app"
	case strings.Contains(r, "fido"):
		return "fido2"
	case strings.Contains(r, "phone"):
		return "phone"
	case strings.Contains(r, "email"):
		return "email"
	case strings.Contains(r, "hello for business"):
		return "windows_hello"
	case strings.Contains(r, "temporary access pass"):
		return "temporary_access_pass"
	}
	return "security_info"
}

func password(op string) auditFacet {
	return func(ev *stelev1.IdentityEvent, a *auditRecord) {
		cf := &stelev1.CredentialFacet{Op: op, Owner: "user", CredentialType: "password"}
		if t := principalTarget(a); t != nil {
			cf.DisplayName = t.str("userPrincipalName")
			cf.ByAdmin = ev.GetActor().GetId() != "" && ev.GetActor().GetId() != t.str("id")
		}
		ev.Credential = cf
	}
}

func consent(ev *stelev1.IdentityEvent, a *auditRecord) {
	cf := &stelev1.ConsentFacet{
		AdminConsent:  boolText(propValue(a, "ConsentContext.IsAdminConsent")),
		OnBehalfOfAll: boolText(propValue(a, "ConsentContext.OnBehalfOfAll")),
		AppOnly:       boolText(propValue(a, "ConsentContext.IsAppOnly")),
	}
	if t := typedTarget(a, "ServicePrincipal"); t != nil {
		cf.ClientId, cf.ClientDisplayName = t.str("id"), t.str("displayName")
	}
	perms := propValue(a, "ConsentAction.Permissions")
	cf.Scopes = permissionScopes(perms)
	if m := fieldAfter(perms, "ConsentType:"); m != "" {
		cf.ConsentType = m
	}
	if cf.AdminConsent != nil && *cf.AdminConsent {
		ev.Kind = "consent.admin.grant"
	}
	ev.Consent = cf
}

func boolText(s string) *bool {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true":
		b := true
		return &b
	case "false":
		b := false
		return &b
	}
	return nil
}

// permissionScopes pulls the scopes out of ConsentAction.Permissions text,
// which looks like "[] => [[Id: …, ConsentType: AllPrincipals, Scope:
// Mail.Read offline_access, CreatedDateTime: , …]]".
func permissionScopes(s string) []string {
	var scopes []string
	rest := s
	for {
		i := strings.Index(rest, "Scope:")
		if i < 0 {
			break
		}
		rest = rest[i+len("Scope:"):]
		end := strings.IndexAny(rest, ",]")
		if end < 0 {
			end = len(rest)
		}
		for _, f := range strings.Fields(rest[:end]) {
			if !slices.Contains(scopes, f) {
				scopes = append(scopes, f)
			}
		}
	}
	return scopes
}

// fieldAfter returns the text after label up to the next "," or "]".
func fieldAfter(s, label string) string {
	i := strings.Index(s, label)
	if i < 0 {
		return ""
	}
	rest := s[i+len(label):]
	if end := strings.IndexAny(rest, ",]"); end >= 0 {
		rest = rest[:end]
	}
	return strings.TrimSpace(rest)
}

func appRole(op string) auditFacet {
	return func(ev *stelev1.IdentityEvent, a *auditRecord) {
		pf := &stelev1.PrivilegeFacet{Op: op, Assignment: stelev1.AssignmentKind_ASSIGNMENT_KIND_ACTIVE, Duration: stelev1.AssignmentDuration_ASSIGNMENT_DURATION_PERMANENT,
			RoleId: propValue(a, "AppRole.Id"), RoleName: propValue(a, "AppRole.Value")}
		if id := propValue(a, "ServicePrincipal.ObjectID"); id != "" {
			pf.AssigneeId = id
		}
		if t := typedTarget(a, "ServicePrincipal"); t != nil {
			pf.Scope = t.str("id")
		}
		ev.Privilege = pf
	}
}

func delegatedGrant(ev *stelev1.IdentityEvent, a *auditRecord) {
	cf := &stelev1.ConsentFacet{Scopes: strings.Fields(propValue(a, "DelegatedPermissionGrant.Scope")), ConsentType: propValue(a, "DelegatedPermissionGrant.ConsentType")}
	if t := typedTarget(a, "ServicePrincipal"); t != nil {
		cf.ClientId, cf.ClientDisplayName = t.str("id"), t.str("displayName")
	}
	if strings.EqualFold(cf.ConsentType, "AllPrincipals") {
		b := true
		cf.OnBehalfOfAll = &b
	}
	ev.Consent = cf
}

// keyCredential reads the KeyDescription lists of an application or
// service-principal credential change: entries that appear only in the new
// list were added, entries only in the old list removed.
func keyCredential(owner string) auditFacet {
	return func(ev *stelev1.IdentityEvent, a *auditRecord) {
		old, new := property(a, "KeyDescription")
		before, after := keyEntries(old), keyEntries(new)
		added, removed := keyDiff(after, before), keyDiff(before, after)
		cf := &stelev1.CredentialFacet{Owner: owner}
		var pick map[string]string
		switch {
		case len(added) > 0 && len(removed) == 0:
			cf.Op, pick = "add", added[0]
		case len(removed) > 0 && len(added) == 0:
			cf.Op, pick = "remove", removed[0]
		case len(added) > 0:
			cf.Op, pick = "update", added[0]
		default:
			cf.Op = "update"
		}
		if pick != nil {
			cf.KeyId = pick["KeyIdentifier"]
			cf.DisplayName = pick["DisplayName"]
			switch strings.ToLower(pick["KeyType"]) {
			case "password":
				cf.CredentialType = "client_secret"
			case "asymmetricx509cert":
				cf.CredentialType = "certificate"
			default:
				cf.CredentialType = strings.ToLower(pick["KeyType"])
			}
		}
		prefix := "app.credential."
		if owner == "service_principal" {
			prefix = "service_principal.credential."
		}
		ev.Kind = prefix + cf.Op
		ev.Credential = cf
	}
}

// keyEntries parses a KeyDescription value: a JSON array of strings such as
// "[KeyIdentifier=…,KeyType=Password,KeyUsage=Verify,DisplayName=…]".
func keyEntries(v nullStr) []map[string]string {
	if !v.present {
		return nil
	}
	var list []string
	if json.Unmarshal([]byte(v.value), &list) != nil {
		if json.Unmarshal([]byte(unquote(v.value)), &list) != nil {
			return nil
		}
	}
	var out []map[string]string
	for _, e := range list {
		e = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(e), "["), "]")
		m := map[string]string{}
		for _, kv := range strings.Split(e, ",") {
			k, val, ok := strings.Cut(kv, "=")
			if ok {
				m[strings.TrimSpace(k)] = strings.TrimSpace(val)
			}
		}
		out = append(out, m)
	}
	return out
}

func keyDiff(a, b []map[string]string) []map[string]string {
	var out []map[string]string
	for _, x := range a {
		found := false
		for _, y := range b {
			if x["KeyIdentifier"] == y["KeyIdentifier"] {
				found = true
				break
			}
		}
		if !found {
			out = append(out, x)
		}
	}
	return out
}
