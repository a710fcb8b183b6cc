package identity

import (
	"strings"
	"testing"
)

// TestBadRecords: records a normaliser cannot read get a specific error
// naming the format and what is wrong.
func TestBadRecords(t *testing.T) {
	cases := []struct {
		format, record, want string
	}{
		{"entra.directoryAudit", `{"id":"1"`, "entra.directoryAudit: record is not valid JSON"},
		{"entra.directoryAudit", `[{"id":"1"}]`, "record is a JSON array, not an object"},
		{"entra.directoryAudit", `{"id":"1"} {"id":"2"}`, "more than one JSON value"},
		{"entra.directoryAudit", `{"activityDateTime":"2026-13-01T00:00:00Z"}`, `activityDateTime "2026-13-01T00:00:00Z" is not an RFC 3339 time`},
		{"entra.directoryAudit", `{"initiatedBy":"admin"}`, "initiatedBy is a JSON string, want an object"},
		{"entra.directoryAudit", `{"initiatedBy":{"user":[1]}}`, "initiatedBy.user is a JSON array, want an object"},
		{"entra.directoryAudit", `{"targetResources":{"id":"x"}}`, "targetResources is a JSON object, want an array"},
		{"entra.directoryAudit", `{"targetResources":[{"modifiedProperties":[1]}]}`, "targetResources[0].modifiedProperties[0] is a JSON number, want an object"},
		{"entra.directoryAudit", `{"activityDisplayName":"Add user","additionalDetails":"x"}`, "additionalDetails is a JSON string, want an array"},
		{"entra.signIn", `{"createdDateTime":"yesterday"}`, `createdDateTime "yesterday" is not an RFC 3339 time`},
		{"entra.signIn", `{"createdDateTime":"2026-01-01T00:00:00Z","status":0}`, "status is a JSON number, want an object"},
		{"entra.signIn", `{"appDisplayName":"x","location":{"geoCoordinates":"0,0"}}`, "location.geoCoordinates is a JSON string, want an object"},
		{"entra.diagnostic", `{"category":"AuditLogs"}`, "properties is missing"},
		{"entra.diagnostic", `{"properties":{}}`, "category is missing"},
		{"entra.diagnostic", `{"category":"AuditLogs","properties":"x"}`, "properties is a JSON string, want an object"},
		{"entra.diagnostic", `{"time":"noon","category":"AuditLogs","properties":{}}`, `time "noon" is not an RFC 3339 time`},
		{"entra.diagnostic", `{"category":"SignInLogs","properties":{"status":[]}}`, "properties: status is a JSON array, want an object"},
		{"okta.systemLog", `{"published":"2026-01-01"}`, `published "2026-01-01" is not an RFC 3339 time`},
		{"okta.systemLog", `{"uuid":"u1","outcome":"SUCCESS"}`, "outcome is a JSON string, want an object"},
		{"okta.systemLog", `{"uuid":"u1","client":{"userAgent":"curl"}}`, "client.userAgent is a JSON string, want an object"},
		{"aws.cloudtrail", `{"eventTime":"2026-01-01 noon"}`, `eventTime "2026-01-01 noon" is not an RFC 3339 time`},
		{"aws.cloudtrail", `{"eventID":"e1","userIdentity":{"sessionContext":{"sessionIssuer":1}}}`, "userIdentity.sessionContext.sessionIssuer is a JSON number, want an object"},
		{"aws.cloudtrail", `{"Records":[]}`, "this is a CloudTrail log file"},
		// Records of one provider sent under another format (issue 13.5).
		{"entra.directoryAudit", `{"uuid":"u1","published":"2026-01-01T00:00:00Z","eventType":"user.session.start"}`, "not an Entra directoryAudit: the record has none of activityDisplayName"},
		{"entra.signIn", `{"eventID":"e1","eventTime":"2026-01-01T00:00:00Z"}`, "not an Entra signIn"},
		{"okta.systemLog", `{"id":"x","activityDisplayName":"Add user"}`, "not an Okta System Log event"},
		{"aws.cloudtrail", `{"uuid":"u1","eventType":"user.session.start"}`, "not a CloudTrail record"},
		{"entra.diagnostic", `{"uuid":"u1","eventType":"user.session.start"}`, "properties is missing"},
		// Records two parsers could read differently.
		{"entra.directoryAudit", `{"id":"1","activityDisplayName":"Add user","id":"2"}`, "record has a duplicate key at /id (byte 43)"},
		{"okta.systemLog", `{"uuid":"u","outcome":{"result":"SUCCESS","result":"FAILURE"}}`, "duplicate key at /outcome/result"},
		{"json", "{\"id\":\"a\xffb\"}", "record has invalid UTF-8 at /id (byte 8)"},
		{"aws.cloudtrail", `{"eventID":"\ud800"}`, "invalid UTF-8 at /eventID"},
		{"entra.signIn", `{"TimeGenerated":"2025-11-14T01:48:53Z","Type":"AADRiskyUsers","Id":"r1"}`, "this is a Log Analytics row of RiskyUsers, not of signin records: send it as entra.diagnostic"},
		{"entra.directoryAudit", `{"TimeGenerated":"2025-11-14T01:48:53Z","Type":"SigninLogs","Id":"s1"}`, "not of audit records"},
		// Time forms: zone-less text only where the provider documents UTC.
		{"okta.systemLog", `{"uuid":"u","published":"2026-01-01 10:00:00"}`, "has no zone, and this format does not document one: it is ambiguous"},
		{"entra.diagnostic", `{"category":"SignInLogs","time":"14/11/2025 1:48:53 AM","properties":{}}`, "is day/month/year"},
		{"entra.diagnostic", `{"category":"SignInLogs","time":"11/14/2025 13:48:53 PM","properties":{}}`, "has hour 13 with AM/PM"},
		{"json", `{"time":"11/14/2025 1:48:53 AM"}`, "is a month/day form this format does not document"},
		{"entra.diagnostic", `{"TimeGenerated [Local Time]":"11/14/2025 1:48:53 AM","Type":"SigninLogs"}`, "is in the exporter's local time"},
		{"entra.diagnostic", `{"TimeGenerated":"2025-11-14T01:48:53Z","Type":"SigninLogs","Status":"{\"errorCode\":0,\"errorCode\":1}"}`, `column "Status" holds JSON text that does not decode: record has a duplicate key`},
		{"ocsf", `{"activity_id":1}`, "class_uid is missing"},
		{"ocsf", `{"class_uid":"3002","activity_id":1}`, "class_uid is a JSON string, want an integer"},
		{"ocsf", `{"class_uid":3002,"activity_id":1.5}`, "activity_id 1.5 is not an integer"},
		{"ocsf", `{"class_uid":3002,"activity_id":300}`, "activity_id 300 is out of range"},
		{"ocsf", `{"class_uid":3002,"activity_id":1,"time":"2026-01-01"}`, "time is string, want epoch milliseconds"},
		{"json", `{"id":"1","time":"soon"}`, `time "soon" is not an RFC 3339 time`},
		{"json", `nul`, "json: record is not valid JSON"},
		{"nope", `{}`, `no normaliser for this format: "nope"`},
	}
	for _, c := range cases {
		_, err := Normalize(c.format, []byte(c.record))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %s: error %v, want it to contain %q", c.format, c.record, err, c.want)
		}
	}
}

// TestActivityKey: the matching rule for activity names.
func TestActivityKey(t *testing.T) {
	for in, want := range map[string]string{
		"Update application – Certificates and secrets management":  "update application - certificates and secrets management",
		"Update application — Certificates  and secrets management": "update application - certificates and secrets management",
		"Add member to role.":              "add member to role",
		"  add MEMBER\tto role ":           "add member to role",
		"Update Conditional Access policy": "update conditional access policy",
	} {
		if got := activityKey(in); got != want {
			t.Errorf("activityKey(%q) = %q, want %q", in, got, want)
		}
	}
	// The ASCII pass answers exactly as the general rule.
	cases := []string{"", ".", "..", " . ", "a .", "A\vB\fC\r\n.", "x\u00a0y", "Ünïcode Name.", "\x85a", "tab\tend\t", "Add  member  to  role ."}
	for name := range entraActivities {
		cases = append(cases, name, strings.ToUpper(name)+".")
	}
	for _, in := range cases {
		if got, want := activityKey(in), activityKeyText(in); got != want {
			t.Errorf("activityKey(%q) = %q, activityKeyText gives %q", in, got, want)
		}
	}
}

// TestCatalogueDocumented: every Entra activity, Okta eventType and
// CloudTrail event the normalisers know, and every kind they give, is in
// docs/identity.md.
func TestCatalogueDocumented(t *testing.T) {
	doc, err := readDoc()
	if err != nil {
		t.Fatal(err)
	}
	lower := strings.ToLower(doc)
	for key, a := range entraActivities {
		if !strings.Contains(lower, "| "+key+" |") {
			t.Errorf("docs/identity.md lacks the Entra activity %q", key)
		}
		if !strings.Contains(doc, "`"+a.kind+"`") {
			t.Errorf("docs/identity.md lacks the kind %q", a.kind)
		}
	}
	for et, e := range oktaEvents {
		if !strings.Contains(doc, "| "+et+" |") || !strings.Contains(doc, "`"+e.kind) {
			t.Errorf("docs/identity.md lacks Okta %q → %q", et, e.kind)
		}
	}
	for name, e := range cloudTrailEvents {
		if !strings.Contains(doc, "| "+name+" |") || !strings.Contains(doc, "`"+e.kind) {
			t.Errorf("docs/identity.md lacks CloudTrail %q → %q", name, e.kind)
		}
	}
}
