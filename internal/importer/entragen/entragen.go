// Package entragen writes invented Entra ID exports of any size, for
// measuring stele import: diagnostic-settings audit and sign-in records
// (tenant 11111111-…, example.com, RFC 5737 addresses, made-up GUIDs) in the
// containers operators have. The output depends only on the arguments, so
// the same call writes the same bytes, and a re-import is all duplicates.
package entragen

import (
	"bufio"
	"fmt"
	"io"
	"time"
)

// Tenant is the tenant id of every generated record.
const Tenant = "11111111-1111-4111-8111-111111111111"

// Container is how records are laid out.
type Container string

// The containers Write can produce.
const (
	// EventHub writes {"records":[…]} messages, one per line, of PerMessage
	// records each.
	EventHub Container = "eventhub"
	// JSONL writes one record per line, as storage-account blobs do.
	JSONL Container = "jsonl"
	// Graph writes Graph list-response pages of Graph directoryAudit
	// objects (no tenant in the records: import with --tenant Tenant).
	Graph Container = "graph"
)

// PerMessage is the number of records per Event Hub message or Graph page.
const PerMessage = 100

var activities = []string{
	"Add member to role", "Add user", "Update conditional access policy", "Consent to application",
	"User registered security info", "Reset password (by admin)", "Disable account",
	"Add service principal credentials", "Update application – Certificates and secrets management",
}

var base = time.Date(2024, 1, 2, 3, 0, 0, 0, time.UTC)

// Write writes records in container c until at least size bytes are out
// (ending the current message or page), and returns the number of records.
func Write(w io.Writer, c Container, size int64) (int, error) {
	bw := bufio.NewWriterSize(w, 1<<20)
	cw := &counter{w: bw}
	n := 0
	for cw.n < size {
		switch c {
		case JSONL:
			fmt.Fprintf(cw, "%s\n", diagnostic(n))
			n++
		case EventHub, Graph:
			if c == EventHub {
				fmt.Fprint(cw, `{"records":[`)
			} else {
				fmt.Fprint(cw, `{"@odata.context":"https://graph.microsoft.com/v1.0/$metadata#auditLogs/directoryAudits","value":[`)
			}
			for i := 0; i < PerMessage; i++ {
				if i > 0 {
					fmt.Fprint(cw, ",")
				}
				if c == EventHub {
					fmt.Fprint(cw, diagnostic(n))
				} else {
					fmt.Fprint(cw, audit(n, "Z"))
				}
				n++
			}
			if c == Graph {
				fmt.Fprintf(cw, `],"@odata.nextLink":"https://graph.microsoft.com/v1.0/auditLogs/directoryAudits?$skiptoken=%d"}`+"\n", n)
			} else {
				fmt.Fprint(cw, "]}\n")
			}
		default:
			return n, fmt.Errorf("unknown container %q", c)
		}
		if cw.err != nil {
			return n, cw.err
		}
	}
	return n, bw.Flush()
}

type counter struct {
	w   io.Writer
	n   int64
	err error
}

func (c *counter) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	c.err = err
	return n, err
}

func guid(kind, n int) string { return fmt.Sprintf("%08x-0000-4000-8000-%012x", kind, n) }

// diagnostic is record n as a diagnostic-settings record: every third one a
// sign-in, the others audit records.
func diagnostic(n int) string {
	t := base.Add(time.Duration(n) * time.Second).Format("2006-01-02T15:04:05.0000000Z")
	if n%3 == 2 {
		return fmt.Sprintf(`{"time":"%s","resourceId":"/tenants/%s/providers/Microsoft.aadiam","operationName":"Sign-in activity","operationVersion":"1.0","category":"SignInLogs","tenantId":"%s","resultType":"0","resultSignature":"None","durationMs":0,"callerIpAddress":"203.0.113.%d","correlationId":"%s","identity":"User %d","Level":4,"location":"FR","properties":%s}`,
			t, Tenant, Tenant, n%250+1, guid(2, n), n%1000, signIn(n, t))
	}
	a := activities[n%len(activities)]
	return fmt.Sprintf(`{"time":"%s","resourceId":"/tenants/%s/providers/Microsoft.aadiam","operationName":"%s","operationVersion":"1.0","category":"AuditLogs","tenantId":"%s","resultSignature":"None","durationMs":0,"callerIpAddress":"198.51.100.%d","correlationId":"%s","identity":"IT Admin","Level":4,"properties":%s}`,
		t, Tenant, a, Tenant, n%250+1, guid(3, n), audit(n, "+00:00"))
}

// audit is record n as a directoryAudit object (Graph, or a diagnostic
// record's properties), about 1.5 KB.
func audit(n int, zone string) string {
	t := base.Add(time.Duration(n)*time.Second).Format("2006-01-02T15:04:05.0000000") + zone
	a := activities[n%len(activities)]
	return fmt.Sprintf(`{"id":"Directory_%s_%05d_%d","category":"RoleManagement","correlationId":"%s","result":"success","resultReason":"","activityDisplayName":"%s","activityDateTime":"%s","loggedByService":"Core Directory","operationType":"Assign","initiatedBy":{"user":{"id":"%s","displayName":"IT Admin","userPrincipalName":"it.admin@example.com","ipAddress":"198.51.100.%d","userType":"Member"},"app":null},"targetResources":[{"id":"%s","displayName":null,"type":"User","userPrincipalName":"user%d@example.com","modifiedProperties":[{"displayName":"Role.ObjectID","oldValue":null,"newValue":"\"%s\""},{"displayName":"Role.DisplayName","oldValue":null,"newValue":"\"Global Administrator\""},{"displayName":"Role.TemplateId","oldValue":null,"newValue":"\"62e90394-69f5-4237-9190-012177145e10\""},{"displayName":"Role.WellKnownObjectName","oldValue":null,"newValue":"\"CompanyAdministrator\""}],"administrativeUnits":[]}],"additionalDetails":[{"key":"User-Agent","value":"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.0.0"},{"key":"AppId","value":"%s"}],"userAgent":null}`,
		guid(3, n), n%99991, n, guid(3, n), a, t, guid(1, n%50), n%250+1, guid(4, n%5000), n%5000, guid(5, n%7), guid(6, n%20))
}

// signIn is record n as a sign-in's properties, about 1.5 KB.
func signIn(n int, t string) string {
	code, reason := 0, "Other."
	if n%17 == 0 {
		code, reason = 50126, "Error validating credentials due to invalid username or password."
	}
	return fmt.Sprintf(`{"id":"%s","createdDateTime":"%s","userDisplayName":"User %d","userPrincipalName":"user%d@example.com","userId":"%s","appId":"%s","appDisplayName":"Example Portal","ipAddress":"203.0.113.%d","clientAppUsed":"Browser","correlationId":"%s","conditionalAccessStatus":"success","isInteractive":true,"status":{"errorCode":%d,"failureReason":"%s","additionalDetails":null},"location":{"city":"Paris","state":"Paris","countryOrRegion":"FR","geoCoordinates":{"latitude":48.85,"longitude":2.35}},"deviceDetail":{"deviceId":"","displayName":"","operatingSystem":"Windows 10","browser":"Edge 120.0.0","isCompliant":false,"isManaged":false,"trustType":""},"resourceDisplayName":"Microsoft Graph","resourceId":"00000003-0000-0000-c000-000000000000","authenticationRequirement":"multiFactorAuthentication","authenticationDetails":[{"authenticationStepDateTime":"%s","authenticationMethod":"Password","authenticationMethodDetail":"Password in the cloud","succeeded":true,"authenticationStepResultDetail":"Correct password","authenticationStepRequirement":"Primary authentication"}],"signInEventTypes":["interactiveUser"],"userType":"Member","riskDetail":"none","riskLevelAggregated":"none","riskLevelDuringSignIn":"none","riskState":"none","riskEventTypes_v2":[]}`,
		guid(7, n), t, n%1000, n%1000, guid(4, n%1000), guid(8, n%10), n%250+1, guid(2, n), code, reason, t)
}
