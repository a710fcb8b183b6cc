package identity

import (
	"fmt"
	"strings"

	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
)

// signInTypes maps diagnostic categories and signInEventTypes values to the
// sign-in type and its kind segment.
var signInTypes = map[string]struct {
	t    stelev1.SignInType
	kind string
}{
	"signinlogs":                   {stelev1.SignInType_SIGN_IN_TYPE_INTERACTIVE, "interactive"},
	"interactiveuser":              {stelev1.SignInType_SIGN_IN_TYPE_INTERACTIVE, "interactive"},
	"noninteractiveusersigninlogs": {stelev1.SignInType_SIGN_IN_TYPE_NON_INTERACTIVE, "non_interactive"},
	"noninteractiveuser":           {stelev1.SignInType_SIGN_IN_TYPE_NON_INTERACTIVE, "non_interactive"},
	"serviceprincipalsigninlogs":   {stelev1.SignInType_SIGN_IN_TYPE_SERVICE_PRINCIPAL, "service_principal"},
	"serviceprincipal":             {stelev1.SignInType_SIGN_IN_TYPE_SERVICE_PRINCIPAL, "service_principal"},
	"managedidentitysigninlogs":    {stelev1.SignInType_SIGN_IN_TYPE_MANAGED_IDENTITY, "managed_identity"},
	"managedidentity":              {stelev1.SignInType_SIGN_IN_TYPE_MANAGED_IDENTITY, "managed_identity"},
	// Sign-ins of Microsoft's own (first-party) service principals.
	"microsoftserviceprincipalsigninlogs": {stelev1.SignInType_SIGN_IN_TYPE_SERVICE_PRINCIPAL, "microsoft_service_principal"},
	// AD FS sign-ins reported by Connect Health.
	"adfssigninlogs": {stelev1.SignInType_SIGN_IN_TYPE_UNSPECIFIED, "adfs"},
}

// entraSignIn normalises a Graph signIn object.
func entraSignIn(o obj, ev *stelev1.IdentityEvent) error {
	if isLARow(o) {
		return laRowAs(o, ev, "signin")
	}
	if !has(o, "createdDateTime", "signInEventTypes", "isInteractive", "appDisplayName", "clientAppUsed", "conditionalAccessStatus") {
		return errNotFormat("an Entra signIn", "createdDateTime, signInEventTypes, isInteractive, appDisplayName, clientAppUsed, conditionalAccessStatus")
	}
	tenant := o.str("resourceTenantId")
	if tenant == "" {
		tenant = o.str("tenantId")
	}
	ev.Source = &stelev1.IdentitySource{Provider: "entra", Tenant: tenant, Stream: "signin"}
	return signInProperties(o, ev, "", nil)
}

// signInProperties normalises a signIn object (Graph, the properties of a
// diagnostic sign-in record, or a Log Analytics row rewritten by laProps).
// category is the diagnostic category, "" for Graph; env is the diagnostic
// envelope (nil for Graph), whose resultType decides the outcome when the
// properties have no status.
func signInProperties(p obj, ev *stelev1.IdentityEvent, category string, env obj) error {
	ev.NativeId = p.nativeID("id")
	if ev.EventTime == nil {
		if err := setTimes(ev, zoneUTC, timeField{"createdDateTime", p.str("createdDateTime")}); err != nil {
			return err
		}
	}
	ev.NativeAction = "Sign-in activity"
	ev.NativeCategory = category

	typ, ok := signInTypes[strings.ToLower(category)]
	if !ok {
		for _, t := range p.strs("signInEventTypes") {
			if typ, ok = signInTypes[strings.ToLower(t)]; ok {
				break
			}
		}
	}
	if !ok {
		if b := p.boolean("isInteractive"); b != nil {
			ok = true
			typ = signInTypes["interactiveuser"]
			if !*b {
				typ = signInTypes["noninteractiveuser"]
				if p.str("userId") == "" && p.str("servicePrincipalId") != "" {
					typ = signInTypes["serviceprincipal"]
				}
			}
		}
	}

	status, err := p.object("status", "status")
	if err != nil {
		return err
	}
	out := signInOutcome(status, p, env)
	ev.Outcome = out

	actor := &stelev1.Principal{Id: p.str("userId"), Login: p.str("userPrincipalName"), DisplayName: p.str("userDisplayName"), UserType: p.str("userType"), TenantId: p.str("homeTenantId")}
	switch typ.t {
	case stelev1.SignInType_SIGN_IN_TYPE_SERVICE_PRINCIPAL, stelev1.SignInType_SIGN_IN_TYPE_MANAGED_IDENTITY:
		actor.Type = stelev1.PrincipalType_PRINCIPAL_TYPE_SERVICE_PRINCIPAL
		if typ.t == stelev1.SignInType_SIGN_IN_TYPE_MANAGED_IDENTITY {
			actor.Type = stelev1.PrincipalType_PRINCIPAL_TYPE_MANAGED_IDENTITY
		}
		actor.NativeType = "servicePrincipal"
		actor.ServicePrincipalId = p.str("servicePrincipalId")
		actor.ServicePrincipalName = p.str("servicePrincipalName")
		actor.AppId = p.str("appId")
		actor.CredentialId = p.str("servicePrincipalCredentialKeyId")
		if actor.Id == "" {
			actor.Id = actor.ServicePrincipalId
		}
		if actor.DisplayName == "" {
			actor.DisplayName = actor.ServicePrincipalName
		}
	default:
		actor.Type = stelev1.PrincipalType_PRINCIPAL_TYPE_USER
		actor.NativeType = "user"
	}
	ev.Actor = actor

	cl := &stelev1.Client{Ip: realIP(ev, p.str("ipAddress")), UserAgent: p.str("userAgent"), ClientApp: p.str("clientAppUsed")}
	dev, err := p.object("deviceDetail", "deviceDetail")
	if err != nil {
		return err
	}
	if len(dev) > 0 {
		cl.Device = &stelev1.Device{Id: dev.str("deviceId"), Name: dev.str("displayName"), Os: dev.str("operatingSystem"), Browser: dev.str("browser"),
			Compliant: dev.boolean("isCompliant"), Managed: dev.boolean("isManaged"), TrustType: dev.str("trustType")}
	}
	loc, err := p.object("location", "location")
	if err != nil {
		return err
	}
	if len(loc) > 0 {
		l := &stelev1.Location{City: loc.str("city"), State: loc.str("state"), Country: loc.str("countryOrRegion")}
		if geo, err := loc.object("geoCoordinates", "location.geoCoordinates"); err != nil {
			return err
		} else if geo != nil {
			l.Latitude, l.Longitude = geo.float("latitude"), geo.float("longitude")
			if l.Latitude != nil && l.Longitude != nil && *l.Latitude == 0 && *l.Longitude == 0 {
				// Managed-identity sign-ins carry 0,0 as a placeholder:
				// the Gulf of Guinea is no one's location.
				l.Latitude, l.Longitude = nil, nil
				addFlag(ev, FlagPlaceholderLocation)
			}
		}
		if l.City != "" || l.State != "" || l.Country != "" || l.Latitude != nil {
			cl.Location = l
		}
	}
	ev.Client = cl

	af := &stelev1.AuthenticationFacet{Type: typ.t, AppId: p.str("appId"), AppDisplayName: p.str("appDisplayName"), ResourceId: p.str("resourceId"),
		ResourceDisplayName: p.str("resourceDisplayName"), Protocol: p.str("authenticationProtocol"), ClientCredentialType: p.str("clientCredentialType"),
		Requirement: p.str("authenticationRequirement"), ConditionalAccessStatus: p.str("conditionalAccessStatus"), RiskLevel: p.str("riskLevelDuringSignIn"),
		SessionId: p.str("sessionId")}
	switch strings.ToLower(af.Requirement) {
	case "multifactorauthentication":
		if out.Status == stelev1.OutcomeStatus_OUTCOME_STATUS_SUCCESS {
			b := true
			af.Mfa = &b
		}
	case "singlefactorauthentication":
		b := false
		af.Mfa = &b
	}
	steps, err := p.objects("authenticationDetails", "authenticationDetails")
	if err != nil {
		return err
	}
	for _, s := range steps {
		if m := s.str("authenticationMethod"); m != "" {
			af.Methods = append(af.Methods, m)
		}
	}
	pols, err := p.objects("appliedConditionalAccessPolicies", "appliedConditionalAccessPolicies")
	if err != nil {
		return err
	}
	for _, pol := range pols {
		af.ConditionalAccessPolicies = append(af.ConditionalAccessPolicies, fmt.Sprintf("%s=%s", pol.str("displayName"), pol.str("result")))
	}
	ev.Authentication = af

	corr := &stelev1.Correlation{CorrelationId: p.str("correlationId"), RequestId: p.str("originalRequestId"), SessionId: p.str("sessionId")}
	if corr.CorrelationId != "" || corr.RequestId != "" || corr.SessionId != "" {
		ev.Correlation = corr
	}

	class(ev, stelev1.EventClass_EVENT_CLASS_AUTHENTICATION, ocsfAuthentication, 1)
	result := outcomeSegment(out.Status)
	if !ok {
		ev.Kind = "signin.unknown." + result
		addFlag(ev, FlagUnknownActivity)
		return nil
	}
	ev.Kind = "signin." + typ.kind + "." + result
	return nil
}

// signInOutcome is the one decision on a sign-in's outcome, which the kind
// then repeats: status.errorCode when the record has a status, else the
// resultType of the row or of the diagnostic envelope. "0" and "Success"
// are success, any other code failure, nothing at all unknown.
func signInOutcome(status, p, env obj) *stelev1.Outcome {
	out := &stelev1.Outcome{Code: status.str("errorCode"), Reason: status.str("failureReason")}
	if out.Code == "" {
		out.Code = p.str("resultType")
		if out.Reason == "" {
			out.Reason = p.str("resultDescription")
		}
	}
	if out.Code == "" {
		out.Code = env.str("resultType")
		if out.Reason == "" {
			out.Reason = env.str("resultDescription")
		}
	}
	out.NativeResult = out.Code
	switch strings.ToLower(strings.TrimSpace(out.Code)) {
	case "":
	case "0", "success":
		out.Status = stelev1.OutcomeStatus_OUTCOME_STATUS_SUCCESS
	default:
		out.Status = stelev1.OutcomeStatus_OUTCOME_STATUS_FAILURE
	}
	return out
}
