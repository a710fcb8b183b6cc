package importer

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stele-dev/stele/identity"
)

// readFile reads every record of in with detection, through the Builder,
// and returns the events' records and the server normaliser's views.
func importAll(t *testing.T, in []byte, b *Builder) (Container, []string, []string) {
	t.Helper()
	r, err := NewReader(bytes.NewReader(in), Auto)
	if err != nil {
		t.Fatal(err)
	}
	var kinds, sources []string
	for {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			return r.Container(), kinds, sources
		}
		if err != nil {
			t.Fatal(err)
		}
		if rec.Err != nil {
			t.Fatalf("record %d: %v", rec.N, rec.Err)
		}
		ev, err := b.Event(rec, "f")
		if err != nil {
			t.Fatalf("record %d: %v", rec.N, err)
		}
		view, err := identity.Normalize(ev.Format, ev.Record)
		if err != nil {
			t.Fatalf("record %d: server would refuse it: %v", rec.N, err)
		}
		if view.NativeId != ev.EventId {
			t.Errorf("record %d: event_id %q, the server's %q", rec.N, ev.EventId, view.NativeId)
		}
		kinds = append(kinds, view.Kind)
		sources = append(sources, ev.Source)
	}
}

// TestShapesEndToEnd imports the file shapes of issue 22 as a first-time
// user would, from the golden fixtures shaped like the providers'
// examples: a pretty-printed single record, an Okta Event Hook body, and a
// Log Analytics CSV export; every record is one the server admits.
func TestShapesEndToEnd(t *testing.T) {
	golden := filepath.Join("..", "..", "identity", "testdata", "golden")
	read := func(p string) []byte {
		b, err := os.ReadFile(filepath.Join(golden, p))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// Pretty-printed single records, as AWS's user guide shows them and a
	// browser saves a Graph entity.
	for _, tc := range []struct {
		file, kind, source string
		b                  *Builder
	}{
		{"aws.cloudtrail/assume-role-userguide-pretty.json", "session.role.assume", "aws/111111111111/cloudtrail", &Builder{Provider: AWS}},
		{"aws.cloudtrail/console-login-root-mfa-userguide-pretty.json", "signin.interactive.success", "aws/111111111111/cloudtrail", &Builder{Provider: AWS}},
		{"entra.directoryAudit/graph-v1-entity-pretty.json", "group.member.add", "entra/" + tid + "/audit", &Builder{Provider: Entra, Tenant: tid}},
		{"entra.signIn/graph-v1-entity-pretty.json", "signin.interactive.success", "entra/" + tid + "/signin", &Builder{Provider: Entra, Tenant: tid}},
		{"okta.systemLog/session-start-success-docs-shape.json", "signin.interactive.success", "okta/example.okta.com/system", &Builder{Provider: Okta, Tenant: "example.okta.com"}},
		// CloudTrail without recipientAccountId: the account is userIdentity's.
		{"aws.cloudtrail/create-user-account-from-useridentity.json", "user.create", "aws/444455556666/cloudtrail", &Builder{Provider: AWS}},
	} {
		c, kinds, sources := importAll(t, read(tc.file), tc.b)
		if len(kinds) != 1 || kinds[0] != tc.kind || sources[0] != tc.source {
			t.Errorf("%s: read as %s: kinds %v sources %v, want one %s in %s", tc.file, c, kinds, sources, tc.kind, tc.source)
		}
	}

	// An Okta Event Hook body carrying two System Log events.
	e1 := bytes.TrimSpace(read("okta.systemLog/event-hook-event-user-create.json"))
	e2 := bytes.TrimSpace(read("okta.systemLog/privilege-grant-org-admin-debugdata.json"))
	hook := []byte(`{"eventType":"com.okta.event_hook","eventTypeVersion":"1.0","cloudEventsVersion":"0.1","source":"https://example.okta.com/api/v1/eventHooks/whoEXAMPLE","eventId":"b5a188b9-5ece-4636-b041-482ffda96311","eventTime":"2025-11-14T10:00:01.000Z","contentType":"application/json","data":{"events":[` + string(e1) + `,` + string(e2) + `]}}`)
	c, kinds, _ := importAll(t, hook, &Builder{Provider: Okta, Tenant: "example.okta.com"})
	if c != OktaHook || strings.Join(kinds, ",") != "user.create,directory.role.member.add" {
		t.Errorf("event hook: %s %v", c, kinds)
	}

	// A Log Analytics CSV export of AADNonInteractiveUserSignInLogs, with
	// the portal's "[UTC]" columns, US times and JSON text in dynamic
	// columns: the same row as the golden la-noninteractive-csv-row.
	csvIn := "TenantId,TimeGenerated [UTC],OperationName,Category,ResultType,ResultDescription,CorrelationId,Identity,Level,Location,AADTenantId,AppDisplayName,AppId,AuthenticationDetails,ClientAppUsed,ConditionalAccessPolicies,ConditionalAccessStatus,CreatedDateTime [UTC],DeviceDetail,Id,IPAddress,IsInteractive,LocationDetails,Status,UserDisplayName,UserId,UserPrincipalName,Type\r\n" +
		`99999999-9999-4999-8999-999999999999,"11/14/2025 1:48:53 AM",Sign-in activity,NonInteractiveUserSignInLogs,50126,Error validating credentials due to invalid username or password.,00000000-0000-4000-8000-000000001011,Lee Example,4,DE,` + tid + `,Microsoft Office,d3590ed6-52b3-4102-aeff-aad2292ab01c,[],Mobile Apps and Desktop clients,[],notApplied,"11/14/2025 1:48:50 AM","{""deviceId"":"""",""operatingSystem"":""Ios""}",00000000-0000-4000-8000-000000001012,203.0.113.9,false,"{""city"":""Hamburg"",""state"":""Hamburg"",""countryOrRegion"":""DE"",""geoCoordinates"":{""latitude"":53.55,""longitude"":9.99}}","{""errorCode"":50126,""failureReason"":""Error validating credentials due to invalid username or password.""}",Lee Example,00000000-0000-4000-8000-000000000602,lee@example.com,AADNonInteractiveUserSignInLogs` + "\r\n"
	r, err := NewReader(strings.NewReader(csvIn), Auto)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := r.Next()
	if err != nil || rec.Err != nil {
		t.Fatal(err, rec.Err)
	}
	if want := bytes.TrimSpace(read("entra.diagnostic/la-noninteractive-csv-row.json")); !bytes.Equal(rec.Raw, want) {
		t.Errorf("CSV row rendered as\n%s\nthe golden fixture is\n%s", rec.Raw, want)
	}
	// The same table through the Log Analytics query API: typed cells,
	// dynamic columns as JSON text.
	api := `{"tables":[{"name":"PrimaryResult","columns":[{"name":"TenantId","type":"string"},{"name":"TimeGenerated","type":"datetime"},{"name":"Category","type":"string"},` +
		`{"name":"ResultType","type":"string"},{"name":"AADTenantId","type":"string"},{"name":"Id","type":"string"},{"name":"IsInteractive","type":"bool"},{"name":"Status","type":"string"},` +
		`{"name":"UserPrincipalName","type":"string"},{"name":"Type","type":"string"}],"rows":[["99999999-9999-4999-8999-999999999999","2025-11-14T01:48:53.6134712Z","NonInteractiveUserSignInLogs",` +
		`"0","` + tid + `","api-1",false,"{\"errorCode\":0}","lee@example.com","AADNonInteractiveUserSignInLogs"]]}]}`
	c, kinds, sources := importAll(t, []byte(api), &Builder{Provider: Entra})
	if c != LATables || len(kinds) != 1 || kinds[0] != "signin.non_interactive.success" || sources[0] != "entra/"+tid+"/signin" {
		t.Errorf("query API response: %s %v %v", c, kinds, sources)
	}
	c, kinds, sources = importAll(t, []byte(csvIn), &Builder{Provider: Entra})
	if c != CSV || len(kinds) != 1 || kinds[0] != "signin.non_interactive.failure" || sources[0] != "entra/"+tid+"/signin" {
		t.Errorf("CSV: %s %v %v", c, kinds, sources)
	}
}
