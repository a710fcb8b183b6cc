package identity

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
)

// OCSFProduct is the metadata.product an exported event names.
var OCSFProduct = map[string]any{"name": "Stele", "vendor_name": "Stele"}

// OCSF exports a normalised event as one OCSF event (schema OCSFVersion) of
// the class the event claims (ev.Ocsf): Account Change 3001, Authentication
// 3002, Authorize Session 3003, Entity Management 3004, User Access
// Management 3005 or Group Management 3006. The output is compact JSON with
// sorted keys. Stele's own fields without an OCSF home (kind, flags,
// assignment kind, ...) go under "unmapped".
func OCSF(ev *stelev1.IdentityEvent) ([]byte, error) {
	m, err := ocsfMap(ev)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("identity: OCSF: %w", err)
	}
	return b, nil
}

// OCSFObject is the OCSF event OCSF encodes, as the map it hands to
// json.Marshal: for an encoder that appends it itself (the forwarder's
// record package renders it for every record it delivers).
func OCSFObject(ev *stelev1.IdentityEvent) (map[string]any, error) { return ocsfMap(ev) }

func ocsfMap(ev *stelev1.IdentityEvent) (map[string]any, error) {
	if ev.GetOcsf().GetClassUid() == 0 {
		return nil, errors.New("identity: OCSF: the event has no OCSF class")
	}
	if ev.GetEventTime() == nil {
		return nil, errors.New("identity: OCSF: the event has no time; set it from the leaf's event_time")
	}
	cls, act := ev.Ocsf.ClassUid, ev.Ocsf.ActivityId
	md := map[string]any{"version": OCSFVersion, "product": OCSFProduct, "uid": ev.NativeId}
	setText(md, "log_provider", ev.GetSource().GetProvider())
	setText(md, "log_name", ev.GetSource().GetStream())
	setText(md, "tenant_uid", ev.GetSource().GetTenant())
	setText(md, "original_time", ev.EventTimeText)
	setText(md, "correlation_uid", ev.GetCorrelation().GetCorrelationId())
	m := map[string]any{
		"category_uid": 3,
		"class_uid":    cls,
		"activity_id":  act,
		"type_uid":     int64(cls)*100 + int64(act),
		"severity_id":  1, // Informational: Stele records, it does not judge
		"time":         ev.EventTime.AsTime().UnixMilli(),
		"metadata":     md,
		"status_id":    ocsfStatus(ev.GetOutcome().GetStatus()),
	}
	setText(m, "activity_name", ev.NativeAction)
	// status is the status_id's caption; the provider's own result and
	// error code are status_code, its reason status_detail.
	if s := ocsfStatusName(m["status_id"].(int)); s != "" {
		m["status"] = s
	}
	setText(m, "status_code", firstNonEmpty(ev.GetOutcome().GetCode(), ev.GetOutcome().GetNativeResult()))
	setText(m, "status_detail", ev.GetOutcome().GetReason())
	if a := ev.GetActor(); a != nil {
		m["actor"] = map[string]any{"user": ocsfPrincipal(a)}
	}
	if c := ev.GetClient(); c != nil && c.Ip != "" {
		m["src_endpoint"] = map[string]any{"ip": c.Ip}
	}
	unmapped := map[string]any{"stele_kind": ev.Kind, "normalizer": ev.Normalizer + "/" + ev.NormalizerVersion}
	if len(ev.Flags) > 0 {
		unmapped["flags"] = ev.Flags
	}
	m["unmapped"] = unmapped

	subject := ocsfSubject(ev)
	switch cls {
	case ocsfAuthentication:
		user := subject
		if a := ev.GetActor(); a != nil {
			user = ocsfPrincipal(a)
		}
		m["user"] = user
		svc := map[string]any{"name": firstNonEmpty(ev.GetAuthentication().GetResourceDisplayName(), ev.GetAuthentication().GetAppDisplayName(), ev.NativeService, ev.GetSource().GetProvider())}
		setText(svc, "uid", ev.GetAuthentication().GetResourceId())
		m["service"] = svc
		if a := ev.GetAuthentication(); a != nil && a.Mfa != nil {
			m["is_mfa"] = *a.Mfa
		}
	case ocsfAccountChange:
		m["user"] = subject
		if pol := ev.GetPolicy(); pol != nil && pol.Id != "" {
			m["policy"] = map[string]any{"uid": pol.Id, "name": firstNonEmpty(pol.DisplayName, pol.Id)}
		}
	case ocsfAuthorizeSession:
		user := subject
		if a := ev.GetActor(); a != nil {
			user = ocsfPrincipal(a)
		}
		m["user"] = user
		m["privileges"] = ocsfPrivileges(ev)
	case ocsfUserAccessManagement:
		m["user"] = subject
		m["privileges"] = ocsfPrivileges(ev)
		if p := ev.GetPrivilege(); p != nil {
			unmapped["assignment"] = p.Assignment.String()
			unmapped["duration"] = p.Duration.String()
			unmapped["via_pim"] = p.ViaPim
		}
	case ocsfGroupManagement:
		group := map[string]any{"name": ev.NativeAction}
		for _, t := range ev.Targets {
			if strings.Contains(strings.ToLower(t.NativeType), "group") {
				group = map[string]any{"name": firstNonEmpty(t.DisplayName, t.Id), "uid": t.Id}
			}
		}
		m["group"] = group
		m["user"] = subject
	default: // Entity Management and anything else: the entity acted on.
		entity := map[string]any{"name": firstNonEmpty(ev.NativeAction, ev.Kind)}
		if len(ev.Targets) > 0 {
			t := ev.Targets[0]
			entity = map[string]any{"name": firstNonEmpty(t.DisplayName, t.Login, t.Id, ev.NativeAction), "uid": t.Id, "type": t.NativeType}
		}
		m["entity"] = entity
	}
	return m, nil
}

func ocsfStatus(s stelev1.OutcomeStatus) int {
	switch s {
	case stelev1.OutcomeStatus_OUTCOME_STATUS_SUCCESS:
		return 1
	case stelev1.OutcomeStatus_OUTCOME_STATUS_FAILURE:
		return 2
	case stelev1.OutcomeStatus_OUTCOME_STATUS_UNSPECIFIED:
		return 0
	}
	return 99
}

// ocsfStatusName is the OCSF caption of a status_id.
func ocsfStatusName(id int) string {
	switch id {
	case 1:
		return "Success"
	case 2:
		return "Failure"
	case 99:
		return "Other"
	}
	return "Unknown"
}

// ocsfPrincipal renders a principal as an OCSF user object.
func ocsfPrincipal(p *stelev1.Principal) map[string]any {
	u := map[string]any{"name": firstNonEmpty(p.Login, p.DisplayName, p.ServicePrincipalName, p.Id, "unknown")}
	setText(u, "uid", firstNonEmpty(p.Id, p.ServicePrincipalId))
	if p.Login != "" && strings.Contains(p.Login, "@") {
		u["email_addr"] = p.Login
	}
	setText(u, "type", p.NativeType)
	if p.TenantId != "" {
		u["org"] = map[string]any{"uid": p.TenantId}
	}
	return u
}

// ocsfSubject is the user an event is about: the assignee of a privilege,
// the first user or service-principal target, or else the actor.
func ocsfSubject(ev *stelev1.IdentityEvent) map[string]any {
	if p := ev.GetPrivilege(); p != nil && (p.AssigneeId != "" || p.AssigneeLogin != "") {
		return ocsfPrincipal(&stelev1.Principal{Id: p.AssigneeId, Login: p.AssigneeLogin})
	}
	if c := ev.GetConsent(); c != nil && c.ClientId != "" {
		return ocsfPrincipal(&stelev1.Principal{Id: c.ClientId, DisplayName: c.ClientDisplayName, NativeType: "ServicePrincipal"})
	}
	for _, t := range ev.Targets {
		switch strings.ToLower(t.NativeType) {
		case "user", "serviceprincipal", "iamuser":
			return ocsfPrincipal(&stelev1.Principal{Id: t.Id, Login: t.Login, DisplayName: t.DisplayName, NativeType: t.NativeType})
		}
	}
	if a := ev.GetActor(); a != nil {
		return ocsfPrincipal(a)
	}
	return map[string]any{"name": "unknown"}
}

// ocsfPrivileges lists what was granted: the role, app role or scopes.
func ocsfPrivileges(ev *stelev1.IdentityEvent) []string {
	out := []string{} // privilege names only, never the event type
	if p := ev.GetPrivilege(); p != nil {
		if p.RoleName != "" && ev.GetSource().GetProvider() == "okta" {
			// Okta lists several roles in one text.
			for _, r := range strings.Split(p.RoleName, ", ") {
				if r = strings.TrimSpace(r); r != "" {
					out = append(out, r)
				}
			}
		} else if r := firstNonEmpty(p.RoleName, p.RoleId, p.RoleTemplateId); r != "" {
			out = append(out, r)
		}
	}
	if c := ev.GetConsent(); c != nil {
		out = append(out, c.Scopes...)
		out = append(out, c.AppRoles...)
	}
	return out
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

// setText sets m[key] to v unless v is empty: OCSF leaves unknown
// attributes out rather than empty.
func setText(m map[string]any, key, v string) {
	if v != "" {
		m[key] = v
	}
}
