package importer

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
)

const tid = "11111111-1111-4111-8111-111111111111"

func TestBuilderEvent(t *testing.T) {
	for _, tc := range []struct {
		name     string
		provider Provider
		flag     string
		record   string
		source   string
		format   string
		id       string // "" means the sha256 rule
		err      string
	}{
		{name: "diagnostic audit", provider: Entra, record: `{"time":"2024-01-02T03:04:05.1234567Z","tenantId":"` + tid + `","category":"AuditLogs","properties":{"id":"Directory_abc_1"}}`,
			source: "entra/" + tid + "/audit", format: "entra.diagnostic", id: "Directory_abc_1"},
		{name: "diagnostic sign-in, tenant from resourceId, category case", provider: Entra, record: `{"resourceId":"/tenants/` + tid + `/providers/Microsoft.aadiam","category":"NonInteractiveUserSIgnInLogs","properties":{"id":"s1"}}`,
			source: "entra/" + tid + "/signin", format: "entra.diagnostic", id: "s1"},
		{name: "diagnostic, flag agrees", provider: Entra, flag: tid, record: `{"tenantId":"` + tid + `","category":"ManagedIdentitySignInLogs","properties":{"id":"s2"}}`,
			source: "entra/" + tid + "/signin", format: "entra.diagnostic", id: "s2"},
		{name: "diagnostic, legacy Audit category, no id", provider: Entra, record: `{"tenantId":"` + tid + `","category":"Audit","properties":{"auditEventCategory":"x"}}`,
			source: "entra/" + tid + "/audit", format: "entra.diagnostic"},
		{name: "diagnostic, flag disagrees", provider: Entra, flag: "22222222-2222-4222-8222-222222222222", record: `{"tenantId":"` + tid + `","category":"AuditLogs","properties":{"id":"x"}}`,
			err: `the record's tenant is "` + tid + `", not "22222222-2222-4222-8222-222222222222" as --tenant says`},
		{name: "diagnostic, other category: a stream of its own", provider: Entra, record: `{"tenantId":"` + tid + `","category":"ProvisioningLogs","properties":{"id":"x"}}`,
			source: "entra/" + tid + "/provisioninglogs", format: "entra.diagnostic", id: "x"},
		{name: "diagnostic, keys in another case", provider: Entra, record: `{"TenantId":"` + tid + `","Category":"AuditLogs","Properties":{"Id":"y"}}`,
			source: "entra/" + tid + "/audit", format: "entra.diagnostic", id: "y"},
		{name: "diagnostic, category with a space", provider: Entra, record: `{"tenantId":"` + tid + `","category":"Risky Users","properties":{"id":"x"}}`,
			err: `category "Risky Users" cannot name a source stream`},
		{name: "diagnostic, category with a slash", provider: Entra, record: `{"tenantId":"` + tid + `","category":"a/b","properties":{"id":"x"}}`,
			err: `category "a/b" cannot name a source stream`},
		{name: "diagnostic, empty category", provider: Entra, record: `{"tenantId":"` + tid + `","category":"","properties":{"id":"x"}}`,
			err: "category is empty"},
		{name: "diagnostic, properties not an object", provider: Entra, record: `{"tenantId":"` + tid + `","category":"AuditLogs","properties":"x"}`,
			err: `"properties" is not a JSON object`},
		{name: "diagnostic, Microsoft service principal sign-ins are sign-ins", provider: Entra, record: `{"tenantId":"` + tid + `","category":"MicrosoftServicePrincipalSignInLogs","properties":{"id":"m1"}}`,
			source: "entra/" + tid + "/signin", format: "entra.diagnostic", id: "m1"},
		{name: "log analytics row, tenant from AADTenantId, not the workspace's TenantId", provider: Entra, record: `{"TenantId":"99999999-9999-4999-8999-999999999999","AADTenantId":"` + tid + `","TimeGenerated":"2025-11-14T01:48:53Z","Type":"SigninLogs","Id":"la-1","CreatedDateTime":"2025-11-14T01:48:50Z","ResultType":"0"}`,
			source: "entra/" + tid + "/signin", format: "entra.diagnostic", id: "la-1"},
		{name: "log analytics csv row, no tenant column", provider: Entra, flag: tid, record: `{"TimeGenerated [UTC]":"11/14/2025 1:48:53 AM","Id":"la-2","Category":"NonInteractiveUserSignInLogs","ResultType":"50126"}`,
			source: "entra/" + tid + "/signin", format: "entra.diagnostic", id: "la-2"},
		{name: "log analytics audit row", provider: Entra, record: `{"AADTenantId":"` + tid + `","TimeGenerated [UTC]":"11/14/2025 1:48:53 AM","Id":"Directory_x","Type":"AuditLogs","Category":"UserManagement","ActivityDisplayName":"Add user"}`,
			source: "entra/" + tid + "/audit", format: "entra.diagnostic", id: "Directory_x"},
		{name: "log analytics row in local time", provider: Entra, flag: tid, record: `{"TimeGenerated [Local Time]":"11/14/2025 1:48:53 AM","Type":"SigninLogs"}`,
			err: "local time"},
		{name: "cloudtrail account from userIdentity.accountId", provider: AWS, record: `{"eventID":"e-2","userIdentity":{"type":"IAMUser","accountId":"111122223333"}}`,
			source: "aws/111122223333/cloudtrail", format: "aws.cloudtrail", id: "e-2"},
		{name: "cloudtrail recipientAccountId wins", provider: AWS, record: `{"eventID":"e-3","recipientAccountId":"444455556666","userIdentity":{"accountId":"111122223333"}}`,
			source: "aws/444455556666/cloudtrail", format: "aws.cloudtrail", id: "e-3"},
		{name: "cloudtrail without any account", provider: AWS, record: `{"eventID":"e-4","userIdentity":{"type":"AWSService"}}`,
			err: "the record does not say its account: pass --account"},
		{name: "graph directoryAudit", provider: Entra, flag: tid, record: `{"id":"Directory_1","activityDateTime":"2024-01-02T03:04:05Z"}`,
			source: "entra/" + tid + "/audit", format: "entra.directoryAudit", id: "Directory_1"},
		{name: "graph signIn", provider: Entra, flag: tid, record: `{"id":"66ea54eb","createdDateTime":"2024-01-02T03:04:05Z"}`,
			source: "entra/" + tid + "/signin", format: "entra.signIn", id: "66ea54eb"},
		{name: "graph record without --tenant", provider: Entra, record: `{"id":"a","activityDisplayName":"Add user"}`,
			err: "the record does not say its tenant: pass --tenant"},
		{name: "not entra", provider: Entra, flag: tid, record: `{"uuid":"u"}`,
			err: "not an Entra audit or sign-in record"},
		{name: "numeric id, in its JSON spelling", provider: Entra, flag: tid, record: `{"id":17.50,"activityDateTime":"x"}`,
			source: "entra/" + tid + "/audit", format: "entra.directoryAudit", id: "17.50"},
		{name: "object id counts as none", provider: Entra, flag: tid, record: `{"id":{"a":1},"activityDateTime":"x"}`,
			source: "entra/" + tid + "/audit", format: "entra.directoryAudit"},
		{name: "id with a control character", provider: Entra, flag: tid, record: `{"id":"a\u0001","activityDateTime":"x"}`,
			err: "the record's id cannot be an event id"},
		{name: "empty id", provider: Entra, flag: tid, record: `{"id":"","activityDateTime":"x"}`,
			source: "entra/" + tid + "/audit", format: "entra.directoryAudit"},
		{name: "tenant that cannot name a source", provider: Entra, flag: "a/b", record: `{"id":"x","activityDateTime":"x"}`,
			err: `the tenant "a/b" cannot name a source`},
		{name: "okta", provider: Okta, flag: "example.okta.com", record: `{"uuid":"u-1","published":"2024-01-02T03:04:05.000Z","eventType":"user.session.start"}`,
			source: "okta/example.okta.com/system", format: "okta.systemLog", id: "u-1"},
		{name: "okta without --org", provider: Okta, record: `{"uuid":"u-1"}`,
			err: "the record does not say its org: pass --org"},
		{name: "okta, not okta", provider: Okta, flag: "example.okta.com", record: `{"id":"x"}`,
			err: "not an Okta System Log event"},
		{name: "cloudtrail", provider: AWS, record: `{"eventID":"e-1","eventTime":"2024-01-02T03:04:05Z","recipientAccountId":"123456789012"}`,
			source: "aws/123456789012/cloudtrail", format: "aws.cloudtrail", id: "e-1"},
		{name: "cloudtrail from --account", provider: AWS, flag: "123456789012", record: `{"eventID":"e-2","eventSource":"iam.amazonaws.com"}`,
			source: "aws/123456789012/cloudtrail", format: "aws.cloudtrail", id: "e-2"},
		{name: "cloudtrail, account not a string", provider: AWS, record: `{"eventID":"e-2","recipientAccountId":123}`,
			err: `"recipientAccountId" is not a string`},
		{name: "cloudtrail, not cloudtrail", provider: AWS, flag: "123456789012", record: `{"id":"x"}`,
			err: "not a CloudTrail record"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := &Builder{Provider: tc.provider, Tenant: tc.flag}
			rec := Record{N: 3, Offset: 120, Raw: []byte(tc.record)}
			ev, err := b.Event(rec, "dir/PT1H.json")
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			id := tc.id
			if id == "" {
				sum := sha256.Sum256([]byte(tc.record))
				id = "sha256:" + hex.EncodeToString(sum[:])
			}
			if ev.Source != tc.source || ev.Format != tc.format || ev.EventId != id || string(ev.Record) != tc.record {
				t.Errorf("got source %q format %q id %q record %q; want %q %q %q", ev.Source, ev.Format, ev.EventId, ev.Record, tc.source, tc.format, id)
			}
			if ev.Kind != "" || ev.EventTime != nil {
				t.Errorf("kind %q, event_time %v: the server derives them, they must be unset", ev.Kind, ev.EventTime)
			}
			if ev.Origin != "file=dir/PT1H.json record=3 offset=120" {
				t.Errorf("origin %q", ev.Origin)
			}
		})
	}
}

func TestOrigin(t *testing.T) {
	rec := Record{N: 17, Offset: 2048}
	for _, tc := range []struct{ file, want string }{
		{"PT1H.json", "file=PT1H.json record=17 offset=2048"},
		{"-", "file=- record=17 offset=2048"},
		{"my export.json", `file="my export.json" record=17 offset=2048`},
		{"tenantId=x/PT1H.json", `file="tenantId=x/PT1H.json" record=17 offset=2048`},
		{"a\nb", `file="a\nb" record=17 offset=2048`},
	} {
		if got := Origin(tc.file, rec); got != tc.want {
			t.Errorf("Origin(%q) = %q, want %q", tc.file, got, tc.want)
		}
	}
	long := strings.Repeat("d/", 700) + "PT1H.json"
	got := Origin(long, rec)
	if len(got) > maxOriginBytes || !strings.HasPrefix(got, `file="...`) || !strings.HasSuffix(got, `/PT1H.json" record=17 offset=2048`) {
		t.Errorf("long name: origin %q (%d bytes)", got, len(got))
	}
}
