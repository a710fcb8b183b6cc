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
		{"entra.directoryAudit", `{"additionalDetails":"x"}`, "additionalDetails is a JSON string, want an array"},
		{"entra.signIn", `{"createdDateTime":"yesterday"}`, `createdDateTime "yesterday" is not an RFC 3339 time`},
		{"entra.signIn", `{"status":0}`, "status is a JSON number, want an object"},
		{"entra.signIn", `{"location":{"geoCoordinates":"0,0"}}`, "location.geoCoordinates is a JSON string, want an object"},
		{"entra.diagnostic", `{"category":"AuditLogs"}`, "properties is missing"},
		{"entra.diagnostic", `{"properties":{}}`, "category is missing"},
		{"entra.diagnostic", `{"category":"AuditLogs","properties":"x"}`, "properties is a JSON string, want an object"},
		{"entra.diagnostic", `{"time":"noon","category":"AuditLogs","properties":{}}`, `time "noon" is not an RFC 3339 time`},
		{"entra.diagnostic", `{"category":"SignInLogs","properties":{"status":[]}}`, "properties: status is a JSON array, want an object"},
		{"okta.systemLog", `{"published":"2026-01-01"}`, `published "2026-01-01" is not an RFC 3339 time`},
		{"okta.systemLog", `{"outcome":"SUCCESS"}`, "outcome is a JSON string, want an object"},
		{"okta.systemLog", `{"client":{"userAgent":"curl"}}`, "client.userAgent is a JSON string, want an object"},
		{"aws.cloudtrail", `{"eventTime":"2026-01-01 00:00:00"}`, `eventTime "2026-01-01 00:00:00" is not an RFC 3339 time`},
		{"aws.cloudtrail", `{"userIdentity":{"sessionContext":{"sessionIssuer":1}}}`, "userIdentity.sessionContext.sessionIssuer is a JSON number, want an object"},
		{"aws.cloudtrail", `{"Records":[]}`, ""}, // a container is well-formed JSON: flagged unknown, not an error
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
		ev, err := Normalize(c.format, []byte(c.record))
		if c.want == "" {
			if err != nil {
				t.Errorf("%s %s: %v, want it admitted", c.format, c.record, err)
			} else if ev.Kind != "aws.unknown" {
				t.Errorf("%s %s: kind %q", c.format, c.record, ev.Kind)
			}
			continue
		}
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
