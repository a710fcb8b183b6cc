package identity

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/types/known/timestamppb"

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
}

// entraSignIn normalises a Graph signIn object.
func entraSignIn(o obj, ev *stelev1.IdentityEvent) error {
	tenant := o.str("resourceTenantId")
	if tenant == "" {
		tenant = o.str("tenantId")
	}
	ev.Source = &stelev1.IdentitySource{Provider: "entra", Tenant: tenant, Stream: "signin"}
	return signInProperties(o, ev, "")
}

// signInProperties normalises a signIn object (Graph, or the properties of
// a diagnostic sign-in record). category is the diagnostic category, "" for
// Graph.
func signInProperties(p obj, ev *stelev1.IdentityEvent, category string) error {
	ev.NativeId = p.nativeID("id")
	if err := setTime(ev, "createdDateTime", p.str("createdDateTime")); err != nil {
		return err
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
	out := &stelev1.Outcome{Code: status.str("errorCode"), Reason: status.str("failureReason"), NativeResult: status.str("errorCode")}
	switch {
	case out.Code == "0":
		out.Status = stelev1.OutcomeStatus_OUTCOME_STATUS_SUCCESS
	case out.Code != "":
		out.Status = stelev1.OutcomeStatus_OUTCOME_STATUS_FAILURE
	}
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
		}
		cl.Location = l
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
	result := "failure"
	if out.Status == stelev1.OutcomeStatus_OUTCOME_STATUS_SUCCESS {
		result = "success"
	}
	if !ok {
		ev.Kind = "signin.unknown." + result
		addFlag(ev, FlagUnknownActivity)
		return nil
	}
	ev.Kind = "signin." + typ.kind + "." + result
	return nil
}

// entraDiagnostic normalises one record of an Entra diagnostic-settings
// export (Event Hub records[] element or storage-blob line).
func entraDiagnostic(o obj, ev *stelev1.IdentityEvent) error {
	cat := o.str("category")
	ev.Source = &stelev1.IdentitySource{Provider: "entra", Tenant: o.str("tenantId"), NativeStream: cat}
	if t := o.str("time"); t != "" {
		et, err := parseTime("time", t)
		if err != nil {
			return err
		}
		ev.EnvelopeTime, ev.EnvelopeTimeText = timestamppb.New(et), t
	}
	props, err := o.object("properties", "properties")
	if err != nil {
		return err
	}
	if props == nil {
		return fmt.Errorf("properties is missing: an Entra diagnostic record carries the event under \"properties\" (is this a Graph object? use format entra.directoryAudit or entra.signIn)")
	}
	lc := strings.ToLower(cat)
	switch {
	case lc == "auditlogs":
		ev.Source.Stream = "audit"
		if err := auditProperties(props, ev); err != nil {
			return fmt.Errorf("properties: %w", err)
		}
	case signInTypes[lc].kind != "":
		ev.Source.Stream = "signin"
		if err := signInProperties(props, ev, cat); err != nil {
			return fmt.Errorf("properties: %w", err)
		}
	case lc == "audit":
		legacyAudit(o, props, ev)
	case cat == "":
		return fmt.Errorf("category is missing: an Entra diagnostic record names its log category (AuditLogs, SignInLogs, ...)")
	default:
		ev.Source.Stream = strings.ToLower(cat)
		ev.NativeId = props.nativeID("id")
		ev.NativeAction = o.str("operationName")
		ev.Kind = "entra.diagnostic.unknown"
		class(ev, stelev1.EventClass_EVENT_CLASS_OTHER, ocsfEntityManagement, 99)
		addFlag(ev, FlagUnknownActivity)
	}
	if ev.EventTime == nil && ev.EnvelopeTime != nil {
		ev.EventTime, ev.EventTimeText = ev.EnvelopeTime, ev.EnvelopeTimeText
	}
	if ev.Client == nil {
		ev.Client = &stelev1.Client{}
	}
	if ev.Client.Ip == "" {
		ev.Client.Ip = realIP(ev, o.str("callerIpAddress"))
	}
	if ev.Correlation == nil && o.str("correlationId") != "" {
		ev.Correlation = &stelev1.Correlation{CorrelationId: o.str("correlationId")}
	}
	if ev.Outcome == nil || ev.Outcome.NativeResult == "" {
		if rt := o.str("resultType"); rt != "" {
			ev.Outcome = entraResult(ev, o, "resultType")
		}
	}
	return nil
}

// legacyAudit keeps a 2018 preview-schema record ("category": "Audit",
// flattened properties) raw, with only its id, time, action and result.
func legacyAudit(o, props obj, ev *stelev1.IdentityEvent) {
	addFlag(ev, FlagLegacySchema)
	ev.Source.Stream = "audit"
	ev.NativeId = props.nativeID("id")
	ev.NativeAction = o.str("operationName")
	ev.NativeCategory = props.str("auditEventCategory")
	ev.Outcome = entraResult(ev, o, "resultType")
	if id := o.str("identity"); id != "" {
		ev.Actor = &stelev1.Principal{DisplayName: id, NativeType: props.str("identityType")}
	}
	if act, ok := entraActivities[activityKey(ev.NativeAction)]; ok {
		ev.Kind = act.kind
		class(ev, classOf(act.classUID), act.classUID, act.activityID)
		return
	}
	ev.Kind = entraUnknownKind
	class(ev, stelev1.EventClass_EVENT_CLASS_OTHER, ocsfEntityManagement, 99)
	addFlag(ev, FlagUnknownActivity)
}
