package identity

import (
	"net/url"
	"strings"

	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
)

// oktaEvent is one entry of the Okta eventType catalogue.
type oktaEvent struct {
	kind                 string
	classUID, activityID int32
}

// oktaEvents maps Okta System Log eventTypes to kinds. Sign-in kinds get
// ".success"/".failure" appended from outcome.result.
var oktaEvents = map[string]oktaEvent{
	"user.session.start":               {"signin.interactive", ocsfAuthentication, 1},
	"user.authentication.auth_via_mfa": {"signin.mfa", ocsfAuthentication, 1},
	"user.lifecycle.create":            {"user.create", ocsfAccountChange, 1},
	"user.lifecycle.activate":          {"user.enable", ocsfAccountChange, 2},
	"user.lifecycle.reactivate":        {"user.enable", ocsfAccountChange, 2},
	"user.lifecycle.deactivate":        {"user.disable", ocsfAccountChange, 5},
	"user.lifecycle.suspend":           {"user.disable", ocsfAccountChange, 5},
	"user.lifecycle.delete.initiated":  {"user.delete", ocsfAccountChange, 6},
	"user.lifecycle.delete.completed":  {"user.delete", ocsfAccountChange, 6},
	"user.account.privilege.grant":     {"directory.role.member.add", ocsfUserAccessManagement, 1},
	"user.account.privilege.revoke":    {"directory.role.member.remove", ocsfUserAccessManagement, 2},
	"user.mfa.factor.activate":         {"user.security_info.add", ocsfAccountChange, 10},
	"user.mfa.factor.deactivate":       {"user.security_info.remove", ocsfAccountChange, 11},
	"user.account.reset_password":      {"user.password.reset", ocsfAccountChange, 4},
	"user.account.update_password":     {"user.password.change", ocsfAccountChange, 3},
	"app.oauth2.as.consent.grant":      {"consent.user.grant", ocsfUserAccessManagement, 1},
	"policy.lifecycle.update":          {"policy.update", ocsfEntityManagement, 3},
	"group.user_membership.add":        {"group.member.add", ocsfGroupManagement, 3},
	"group.user_membership.remove":     {"group.member.remove", ocsfGroupManagement, 4},
}

// oktaSystemLog normalises one Okta System Log LogEvent.
func oktaSystemLog(o obj, ev *stelev1.IdentityEvent) error {
	if !has(o, "uuid", "eventType", "published") {
		return errNotFormat("an Okta System Log event", "uuid, eventType, published")
	}
	ev.NativeId = o.nativeID("uuid")
	if err := setTime(ev, "published", o.str("published")); err != nil {
		return err
	}
	ev.NativeAction = o.str("eventType")
	ev.NativeCategory = o.str("legacyEventType")
	ev.Source = &stelev1.IdentitySource{Provider: "okta", Stream: "system"}

	outcome, err := o.object("outcome", "outcome")
	if err != nil {
		return err
	}
	out := &stelev1.Outcome{NativeResult: outcome.str("result"), Reason: outcome.str("reason")}
	switch strings.ToUpper(out.NativeResult) {
	case "": // no outcome: unknown, not failure
	case "SUCCESS", "ALLOW":
		out.Status = stelev1.OutcomeStatus_OUTCOME_STATUS_SUCCESS
	case "FAILURE", "DENY":
		out.Status = stelev1.OutcomeStatus_OUTCOME_STATUS_FAILURE
	default:
		out.Status = stelev1.OutcomeStatus_OUTCOME_STATUS_OTHER
	}
	ev.Outcome = out

	actor, err := o.object("actor", "actor")
	if err != nil {
		return err
	}
	if actor != nil {
		ev.Actor = &stelev1.Principal{NativeType: actor.str("type"), Id: actor.str("id"), Login: actor.str("alternateId"), DisplayName: actor.str("displayName"), Type: oktaPrincipal(actor.str("type"))}
	}
	cl, err := o.object("client", "client")
	if err != nil {
		return err
	}
	if cl != nil {
		c := &stelev1.Client{Ip: realIP(ev, cl.str("ipAddress")), ClientApp: cl.str("id")}
		if ua, err := cl.object("userAgent", "client.userAgent"); err != nil {
			return err
		} else if ua != nil {
			c.UserAgent = ua.str("rawUserAgent")
			if ua.str("os") != "" || ua.str("browser") != "" || cl.str("device") != "" {
				c.Device = &stelev1.Device{Os: ua.str("os"), Browser: ua.str("browser"), Name: cl.str("device")}
			}
		}
		if geo, err := cl.object("geographicalContext", "client.geographicalContext"); err != nil {
			return err
		} else if geo != nil {
			l := &stelev1.Location{City: geo.str("city"), State: geo.str("state"), Country: geo.str("country")}
			if gl, err := geo.object("geolocation", "client.geographicalContext.geolocation"); err != nil {
				return err
			} else if gl != nil {
				l.Latitude, l.Longitude = gl.float("lat"), gl.float("lon")
			}
			c.Location = l
		}
		ev.Client = c
	}
	targets, err := o.objects("target", "target")
	if err != nil {
		return err
	}
	for _, t := range targets {
		ev.Targets = append(ev.Targets, &stelev1.Target{NativeType: t.str("type"), Id: t.str("id"), Login: t.str("alternateId"), DisplayName: t.str("displayName")})
	}
	corr := &stelev1.Correlation{}
	if tx, err := o.object("transaction", "transaction"); err != nil {
		return err
	} else if tx != nil {
		corr.RequestId = tx.str("id")
	}
	if ac, err := o.object("authenticationContext", "authenticationContext"); err != nil {
		return err
	} else if ac != nil {
		corr.SessionId = ac.str("externalSessionId")
	}
	if corr.RequestId != "" || corr.SessionId != "" {
		ev.Correlation = corr
	}

	// The org is the host of an actor/target detail URL when present; Okta
	// records do not name their org otherwise, so the tenant is usually
	// left to the source the producer submits under.
	if d, _ := o.object("debugContext", "debugContext"); d != nil {
		if dd, _ := d.object("debugData", "debugContext.debugData"); dd != nil {
			if u, err := url.Parse(dd.str("requestUri")); err == nil && u.Host != "" {
				ev.Source.Tenant = u.Host
			}
		}
	}

	e, ok := oktaEvents[ev.NativeAction]
	if !ok {
		ev.Kind = "okta.unknown"
		class(ev, stelev1.EventClass_EVENT_CLASS_OTHER, ocsfEntityManagement, 99)
		addFlag(ev, FlagUnknownActivity)
		return nil
	}
	ev.Kind = e.kind
	if strings.HasPrefix(e.kind, "user.security_info.") && ev.Actor != nil && ev.Actor.Id != "" {
		for _, t := range ev.Targets {
			if t.Id == ev.Actor.Id {
				ev.Kind += ".self"
				break
			}
		}
	}
	if e.classUID == ocsfAuthentication {
		ev.Kind += "." + outcomeSegment(out.Status)
		ev.Authentication = &stelev1.AuthenticationFacet{Type: stelev1.SignInType_SIGN_IN_TYPE_INTERACTIVE}
	}
	class(ev, classOf(e.classUID), e.classUID, e.activityID)
	if e.classUID == ocsfUserAccessManagement && strings.HasPrefix(e.kind, "directory.role") {
		pf := &stelev1.PrivilegeFacet{Op: "grant", Assignment: stelev1.AssignmentKind_ASSIGNMENT_KIND_ACTIVE}
		if strings.HasSuffix(e.kind, ".remove") {
			pf.Op = "revoke"
		}
		for _, t := range targets {
			switch strings.ToLower(t.str("type")) {
			case "user":
				pf.AssigneeId, pf.AssigneeLogin = t.str("id"), t.str("alternateId")
			case "role":
				pf.RoleId, pf.RoleName = t.str("id"), t.str("displayName")
			}
		}
		// Okta names the roles granted or revoked in debugData
		// (privilegeGranted / privilegeRevoked), e.g. "Organization
		// administrator, Application administrator (all)".
		if d, _ := o.object("debugContext", "debugContext"); d != nil {
			if dd, _ := d.object("debugData", "debugContext.debugData"); dd != nil {
				if r := firstNonEmpty(dd.str("privilegeGranted"), dd.str("privilegeRevoked")); r != "" {
					pf.RoleName = r
				}
			}
		}
		ev.Privilege = pf
	}
	return nil
}

func oktaPrincipal(t string) stelev1.PrincipalType {
	switch strings.ToLower(t) {
	case "user":
		return stelev1.PrincipalType_PRINCIPAL_TYPE_USER
	case "publicclientapp", "appinstance", "client":
		return stelev1.PrincipalType_PRINCIPAL_TYPE_SERVICE_PRINCIPAL
	case "systemprincipal":
		return stelev1.PrincipalType_PRINCIPAL_TYPE_SYSTEM
	case "":
		return stelev1.PrincipalType_PRINCIPAL_TYPE_UNSPECIFIED
	}
	return stelev1.PrincipalType_PRINCIPAL_TYPE_OTHER
}
