package identity

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/types/known/timestamppb"

	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
)

// diagCategory is what the normaliser does with one Entra diagnostic
// category.
type diagCategory struct {
	name string // the category as Microsoft spells it
	// table is the Log Analytics / Sentinel table the category lands in.
	table string
	// kind is the kind of every record of the category; "" for the audit
	// and sign-in categories, whose kind comes from the record.
	kind string
}

// entraCategories lists every log category Entra's diagnostic settings
// emit (learn.microsoft.com, "Microsoft Entra activity log integration
// options": the diagnostic-settings categories, checked 2025), keyed by the
// lower-cased name. docs/identity.md lists the same table.
var entraCategories = map[string]diagCategory{}

func init() {
	for _, c := range []diagCategory{
		{"AuditLogs", "AuditLogs", ""},
		{"SignInLogs", "SigninLogs", ""},
		{"NonInteractiveUserSignInLogs", "AADNonInteractiveUserSignInLogs", ""},
		{"ServicePrincipalSignInLogs", "AADServicePrincipalSignInLogs", ""},
		{"ManagedIdentitySignInLogs", "AADManagedIdentitySignInLogs", ""},
		{"MicrosoftServicePrincipalSignInLogs", "AADMicrosoftServicePrincipalSignInLogs", ""},
		{"ADFSSignInLogs", "ADFSSignInLogs", ""},
		{"CustomSecurityAttributeAuditLogs", "AADCustomSecurityAttributeAuditLogs", ""},
		{"ProvisioningLogs", "AADProvisioningLogs", ""},
		{"RiskyUsers", "AADRiskyUsers", "risk.user.update"},
		{"UserRiskEvents", "AADUserRiskEvents", "risk.user.detection"},
		{"RiskyServicePrincipals", "AADRiskyServicePrincipals", "risk.service_principal.update"},
		{"ServicePrincipalRiskEvents", "AADServicePrincipalRiskEvents", "risk.service_principal.detection"},
		{"MicrosoftGraphActivityLogs", "MicrosoftGraphActivityLogs", "graph.activity"},
		{"NetworkAccessTrafficLogs", "NetworkAccessTraffic", "network_access.traffic"},
		{"NetworkAccessAlerts", "NetworkAccessAlerts", "network_access.alert"},
		{"NetworkAccessConnectionEvents", "NetworkAccessConnectionEvents", "network_access.connection"},
		{"RemoteNetworkHealthLogs", "RemoteNetworkHealthLogs", "network_access.remote_network_health"},
		{"EnrichedOffice365AuditLogs", "EnrichedMicrosoft365AuditLogs", "network_access.office365_audit"},
		{"B2CRequestLogs", "AADB2CRequestLogs", "b2c.request"},
	} {
		entraCategories[strings.ToLower(c.name)] = c
	}
}

// EntraStream is the source stream of an Entra diagnostic category: "audit"
// for AuditLogs (and the 2018 "Audit"), "signin" for every sign-in
// category, and the lower-cased category for the others.
func EntraStream(category string) string {
	c := strings.ToLower(category)
	switch {
	case c == "auditlogs" || c == "audit":
		return "audit"
	case signInTypes[c].kind != "":
		return "signin"
	}
	return c
}

// entraDiagnostic normalises one record of an Entra diagnostic-settings
// export (Event Hub records[] element or storage-blob line), or one row of
// a Log Analytics / Sentinel table export (PascalCase columns).
func entraDiagnostic(o obj, ev *stelev1.IdentityEvent) error {
	props, err := o.object("properties", "properties")
	if err != nil {
		return err
	}
	if props == nil {
		if isLARow(o) {
			return laRow(o, ev)
		}
		return fmt.Errorf("properties is missing: an Entra diagnostic record carries the event under \"properties\", a Log Analytics row has TimeGenerated (is this a Graph object? use format entra.directoryAudit or entra.signIn)")
	}
	cat := o.str("category")
	ev.Source = &stelev1.IdentitySource{Provider: "entra", Tenant: o.str("tenantId"), NativeStream: cat}
	if ev.Source.Tenant == "" {
		ev.Source.Tenant = tenantFromResourceID(o.str("resourceId"))
	}
	if cat == "" {
		return fmt.Errorf("category is missing: an Entra diagnostic record names its log category (AuditLogs, SignInLogs, ...)")
	}
	envTime := timeField{"time", o.str("time")}
	envBad := false
	if envTime.text != "" {
		if et, err := parseTimeZone("time", envTime.text, zoneUTC); err == nil {
			ev.EnvelopeTime, ev.EnvelopeTimeText = timestamppb.New(et), envTime.text
		} else {
			envBad = true
		}
	}
	if err := diagProperties(o, props, cat, ev, envTime); err != nil {
		return err
	}
	if envBad && ev.EventTime != nil {
		addFlag(ev, FlagTimeFallback)
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
	return nil
}

// diagProperties normalises the properties of a diagnostic record (or a
// rewritten Log Analytics row) of category cat; env is the envelope (the
// row itself for Log Analytics), envTime its time field, used when the
// properties' own time is absent or unreadable.
func diagProperties(env, props obj, cat string, ev *stelev1.IdentityEvent, envTime timeField) error {
	lc := strings.ToLower(cat)
	ev.Source.Stream = EntraStream(cat)
	switch {
	case lc == "auditlogs" || lc == "customsecurityattributeauditlogs":
		if err := setTimes(ev, zoneUTC, timeField{"properties.activityDateTime", props.str("activityDateTime")}, envTime); err != nil {
			return err
		}
		if err := auditProperties(props, ev); err != nil {
			return fmt.Errorf("properties: %w", err)
		}
		if ev.Outcome.GetNativeResult() == "" {
			if rt := env.str("resultType"); rt != "" {
				ev.Outcome = entraResult(ev, env, "resultType")
			}
		}
	case signInTypes[lc].kind != "":
		if err := setTimes(ev, zoneUTC, timeField{"properties.createdDateTime", props.str("createdDateTime")}, envTime); err != nil {
			return err
		}
		if err := signInProperties(props, ev, cat, env); err != nil {
			return fmt.Errorf("properties: %w", err)
		}
	case lc == "audit":
		if err := setTimes(ev, zoneUTC, envTime); err != nil {
			return err
		}
		legacyAudit(env, props, ev)
	case lc == "provisioninglogs":
		if err := setTimes(ev, zoneUTC, timeField{"properties.activityDateTime", props.str("activityDateTime")}, envTime); err != nil {
			return err
		}
		return provisioning(env, props, ev)
	default:
		return otherCategory(env, props, cat, ev, envTime)
	}
	return nil
}

// commonOutcome reads the envelope's resultType/resultDescription with the
// sign-in rule ("0" and "Success" are success).
func commonOutcome(env obj) *stelev1.Outcome {
	return signInOutcome(nil, nil, env)
}

// commonActor is the actor the envelope's common fields name: identity (a
// display name), and the properties' user fields when they have them.
func commonActor(env, props obj) *stelev1.Principal {
	p := &stelev1.Principal{Id: props.str("userId"), Login: props.str("userPrincipalName"), DisplayName: props.str("userDisplayName")}
	if p.DisplayName == "" {
		p.DisplayName = env.str("identity")
	}
	if p.Id == "" && p.Login == "" && p.DisplayName == "" {
		if sp := props.str("servicePrincipalId"); sp != "" {
			return &stelev1.Principal{Type: stelev1.PrincipalType_PRINCIPAL_TYPE_SERVICE_PRINCIPAL, NativeType: "servicePrincipal", Id: sp, ServicePrincipalId: sp,
				DisplayName: props.str("servicePrincipalDisplayName"), AppId: props.str("appId")}
		}
		return nil
	}
	if p.Login != "" || p.Id != "" {
		p.Type, p.NativeType = stelev1.PrincipalType_PRINCIPAL_TYPE_USER, "user"
	}
	return p
}

// provisioning normalises a ProvisioningLogs record (Graph
// provisioningObjectSummary in properties).
func provisioning(env, props obj, ev *stelev1.IdentityEvent) error {
	ev.NativeId = props.nativeID("id")
	action := props.str("provisioningAction")
	ev.NativeAction = firstNonEmpty(env.str("operationName"), action)
	ev.NativeOperationType = action
	info, err := props.object("provisioningStatusInfo", "properties.provisioningStatusInfo")
	if err != nil {
		return err
	}
	st := info.str("status")
	ev.Outcome = &stelev1.Outcome{NativeResult: st}
	switch strings.ToLower(st) {
	case "success":
		ev.Outcome.Status = stelev1.OutcomeStatus_OUTCOME_STATUS_SUCCESS
	case "failure":
		ev.Outcome.Status = stelev1.OutcomeStatus_OUTCOME_STATUS_FAILURE
	case "":
		ev.Outcome = commonOutcome(env)
	default: // skipped, warning
		ev.Outcome.Status = stelev1.OutcomeStatus_OUTCOME_STATUS_OTHER
	}
	if ed, err := info.object("errorInformation", "properties.provisioningStatusInfo.errorInformation"); err != nil {
		return err
	} else if ed != nil {
		ev.Outcome.Code, ev.Outcome.Reason = ed.str("errorCode"), ed.str("reason")
	}
	init, err := props.object("initiatedBy", "properties.initiatedBy")
	if err != nil {
		return err
	}
	if init != nil {
		ev.Actor = &stelev1.Principal{NativeType: init.str("initiatorType"), Id: init.str("id"), DisplayName: init.str("displayName"), Type: stelev1.PrincipalType_PRINCIPAL_TYPE_SYSTEM}
	}
	for _, k := range []string{"sourceIdentity", "targetIdentity"} {
		t, err := props.object(k, "properties."+k)
		if err != nil {
			return err
		}
		if t != nil {
			ev.Targets = append(ev.Targets, &stelev1.Target{NativeType: firstNonEmpty(t.str("identityType"), k), Id: t.str("id"), DisplayName: t.str("displayName")})
		}
	}
	if c := props.str("changeId"); c != "" {
		ev.Correlation = &stelev1.Correlation{CorrelationId: env.str("correlationId"), RequestId: c}
	}
	ev.Kind = "provisioning.unknown"
	activity := int32(99)
	switch strings.ToLower(action) {
	case "create":
		ev.Kind, activity = "provisioning.create", 1
	case "update":
		ev.Kind = "provisioning.update"
	case "delete", "stageddelete":
		ev.Kind, activity = "provisioning.delete", 6
	case "disable":
		ev.Kind, activity = "provisioning.disable", 5
	case "other":
		ev.Kind = "provisioning.other"
	default:
		addFlag(ev, FlagUnknownActivity)
	}
	class(ev, stelev1.EventClass_EVENT_CLASS_ACCOUNT_CHANGE, ocsfAccountChange, activity)
	return nil
}

// otherCategory normalises the categories without a facet of their own
// (risk, Graph activity, Global Secure Access, B2C) and unknown ones: the
// id, time, actor, client and outcome the common fields give, the kind from
// the category table, or entra.diagnostic.unknown flagged.
func otherCategory(env, props obj, cat string, ev *stelev1.IdentityEvent, envTime timeField) error {
	c, known := entraCategories[strings.ToLower(cat)]
	ev.NativeId = props.nativeID("id")
	ev.NativeAction = firstNonEmpty(env.str("operationName"), props.str("riskEventType"), props.str("action"))
	cands := []timeField{}
	for _, k := range []string{"activityDateTime", "detectedDateTime", "riskLastUpdatedDateTime", "createdDateTime"} {
		if t := props.str(k); t != "" {
			cands = append(cands, timeField{"properties." + k, t})
			break
		}
	}
	if err := setTimes(ev, zoneUTC, append(cands, envTime)...); err != nil {
		return err
	}
	ev.Actor = commonActor(env, props)
	ev.Outcome = commonOutcome(env)
	if ip := realIP(ev, firstNonEmpty(props.str("ipAddress"), props.str("sourceIp"))); ip != "" {
		ev.Client = &stelev1.Client{Ip: ip}
	}
	if r := props.str("riskLevel"); r != "" {
		ev.AdditionalDetails = append(ev.AdditionalDetails, &stelev1.KeyValue{Key: "riskLevel", Value: &stelev1.NullableString{Present: true, Value: r}})
	}
	if r := props.str("riskState"); r != "" {
		ev.AdditionalDetails = append(ev.AdditionalDetails, &stelev1.KeyValue{Key: "riskState", Value: &stelev1.NullableString{Present: true, Value: r}})
	}
	if c := props.str("correlationId"); c != "" {
		ev.Correlation = &stelev1.Correlation{CorrelationId: c}
	}
	class(ev, stelev1.EventClass_EVENT_CLASS_OTHER, ocsfEntityManagement, 99)
	if !known {
		ev.Kind = "entra.diagnostic.unknown"
		addFlag(ev, FlagUnknownCategory)
		return nil
	}
	ev.Kind = c.kind
	if c.kind == "risk.service_principal.update" && ev.Actor == nil {
		// riskyServicePrincipal: the object is the service principal itself.
		ev.Actor = &stelev1.Principal{NativeType: "servicePrincipal", Id: props.str("id"), DisplayName: props.str("displayName"), AppId: props.str("appId")}
	}
	if strings.HasPrefix(c.kind, "risk.") && ev.Actor != nil {
		// A risk record is about the user or service principal at risk,
		// who did nothing: the subject is a target, not the actor.
		a := ev.Actor
		ev.Targets = append(ev.Targets, &stelev1.Target{NativeType: a.NativeType, Id: firstNonEmpty(a.Id, a.ServicePrincipalId), Login: a.Login, DisplayName: a.DisplayName})
		ev.Actor = nil
	}
	return nil
}

// tenantFromResourceID returns <tid> from "/tenants/<tid>/providers/…".
func tenantFromResourceID(rid string) string {
	parts := strings.Split(strings.Trim(rid, "/"), "/")
	if len(parts) >= 2 && strings.EqualFold(parts[0], "tenants") {
		return parts[1]
	}
	return ""
}

// legacyAudit keeps a 2018 preview-schema record ("category": "Audit",
// flattened properties) raw, with only its id, time, action and result.
func legacyAudit(o, props obj, ev *stelev1.IdentityEvent) {
	addFlag(ev, FlagLegacySchema)
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
