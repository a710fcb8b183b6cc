package importer

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/stele-dev/stele/identity"
	"github.com/stele-dev/stele/leaf"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
)

// Provider is the identity provider whose records are imported.
type Provider string

// The providers stele import knows.
const (
	Entra          Provider = "entra"
	Okta           Provider = "okta"
	AWS            Provider = "cloudtrail"
	maxOriginBytes          = 1024
)

// TenantFlag is the stele import flag that names the tenant for records
// that do not carry it: Entra's tenant id, Okta's org host, AWS's account
// id.
func (p Provider) TenantFlag() string {
	switch p {
	case Okta:
		return "--org"
	case AWS:
		return "--account"
	}
	return "--tenant"
}

// Builder turns records into events for Stele. The server derives kind and
// event_time from the record (it never trusts a producer's normalised view),
// so events leave them empty; the Builder sets source, event_id (the
// record's native id, the same rule as the server's), format, record and
// origin.
type Builder struct {
	Provider Provider
	// Tenant is the tenant (Entra tenant id, Okta org host, AWS account id)
	// for records that do not carry it. A record that carries another one
	// is refused, so one import cannot mix tenants by mistake.
	Tenant string
}

// Event builds the event for record rec, read from file (a name for the
// origin; "-" for standard input).
func (b *Builder) Event(rec Record, file string) (*stelev1.Event, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(rec.Raw, &top); err != nil {
		return nil, fmt.Errorf("not a JSON object: %v", err)
	}
	var (
		format, stream, tenant string
		idField                = "id"
		id                     json.RawMessage
	)
	switch b.Provider {
	case Entra:
		var err error
		if isLARow(top) {
			// A Log Analytics row: its table, tenant and id follow
			// rules (column renames, JSON text) that only the
			// normaliser knows; ask it, so the two cannot disagree.
			view, err := identity.Normalize("entra.diagnostic", rec.Raw)
			if err != nil {
				return nil, err
			}
			format, stream, tenant = "entra.diagnostic", view.GetSource().GetStream(), view.GetSource().GetTenant()
			if err := ValidateTenant(stream); err != nil {
				return nil, fmt.Errorf("table %q cannot name a source stream", view.GetSource().GetNativeStream())
			}
			id, idField = nil, "Id"
			if v, ok := top["Id"]; ok {
				id = v
			}
			break
		}
		format, stream, tenant, id, idField, err = entra(top)
		if err != nil {
			return nil, err
		}
	case Okta:
		if !hasAny(top, "uuid", "eventType", "published") {
			return nil, errors.New("not an Okta System Log event: it has none of uuid, eventType, published")
		}
		format, stream, idField = "okta.systemLog", "system", "uuid"
		id, _ = field(top, "uuid")
	case AWS:
		if !hasAny(top, "eventID", "eventTime", "eventSource") {
			return nil, errors.New("not a CloudTrail record: it has none of eventID, eventTime, eventSource")
		}
		format, stream, idField = "aws.cloudtrail", "cloudtrail", "eventID"
		id, _ = field(top, "eventID")
		var err error
		if tenant, err = stringField(top, "recipientAccountId"); err != nil {
			return nil, err
		}
		if tenant == "" {
			// The account whose principal made the call: the same
			// account unless the call crossed accounts, when
			// recipientAccountId is there to say so.
			if ui, ok := field(top, "userIdentity"); ok {
				var u map[string]json.RawMessage
				if json.Unmarshal(ui, &u) == nil {
					if tenant, err = stringField(u, "accountId"); err != nil {
						return nil, fmt.Errorf("userIdentity.%w", err)
					}
				}
			}
		}
	default:
		return nil, fmt.Errorf("unknown provider %q", b.Provider)
	}
	tenant, err := b.tenant(tenant)
	if err != nil {
		return nil, err
	}
	prefix := string(b.Provider)
	if b.Provider == AWS {
		prefix = "aws"
	}
	source := prefix + "/" + tenant + "/" + stream
	if err := ValidateTenant(tenant); err != nil {
		return nil, err
	}
	eventID, err := NativeID(rec.Raw, id, idField)
	if err != nil {
		return nil, err
	}
	return &stelev1.Event{
		Source:  source,
		EventId: eventID,
		Format:  format,
		Record:  rec.Raw,
		Origin:  Origin(file, rec),
	}, nil
}

// ValidateTenant checks that tenant can be one segment of a source.
func ValidateTenant(tenant string) error {
	if strings.Contains(tenant, "/") {
		return fmt.Errorf("the tenant %q cannot name a source: it has a '/'", tenant)
	}
	if err := leaf.ValidateSource(tenant); err != nil {
		return fmt.Errorf("the tenant %q cannot name a source: %v", tenant, err)
	}
	return nil
}

// tenant reconciles the record's tenant with the flag's.
func (b *Builder) tenant(fromRecord string) (string, error) {
	switch {
	case fromRecord == "" && b.Tenant == "":
		return "", fmt.Errorf("the record does not say its %s: pass %s", b.tenantWord(), b.Provider.TenantFlag())
	case fromRecord == "":
		return b.Tenant, nil
	case b.Tenant != "" && !strings.EqualFold(fromRecord, b.Tenant):
		return "", fmt.Errorf("the record's %s is %q, not %q as %s says: import each %s separately", b.tenantWord(), fromRecord, b.Tenant, b.Provider.TenantFlag(), b.tenantWord())
	}
	return fromRecord, nil
}

func (b *Builder) tenantWord() string {
	switch b.Provider {
	case Okta:
		return "org"
	case AWS:
		return "account"
	}
	return "tenant"
}

// isLARow tells a Log Analytics / Sentinel export row (PascalCase
// columns, no properties): it has a TimeGenerated column.
func isLARow(top map[string]json.RawMessage) bool {
	if _, ok := field(top, "properties"); ok {
		return false
	}
	for k := range top {
		if strings.EqualFold(strings.TrimSuffix(strings.TrimSuffix(k, " [UTC]"), " [Local Time]"), "TimeGenerated") {
			return true
		}
	}
	return false
}

// entra classifies an Entra record: a diagnostic-settings record (category
// and properties; its tenant is tenantId, or the one in resourceId), a
// Graph directoryAudit (activityDateTime) or a Graph signIn
// (createdDateTime). Graph records do not carry their tenant.
func entra(top map[string]json.RawMessage) (format, stream, tenant string, id json.RawMessage, idField string, err error) {
	if props, ok := field(top, "properties"); ok && hasAny(top, "category") {
		cat, err := stringField(top, "category")
		if err != nil {
			return "", "", "", nil, "", err
		}
		switch c := identity.EntraStream(cat); {
		case c == "audit" || c == "signin":
			stream = c
		case c == "":
			return "", "", "", nil, "", errors.New("category is empty: a diagnostic-settings record names its log category (AuditLogs, SignInLogs, ...)")
		default:
			// Other categories (ProvisioningLogs, RiskyUsers, ...) are kept
			// raw in a stream of their own; the server flags them.
			if strings.Contains(c, "/") || leaf.ValidateSource(c) != nil {
				return "", "", "", nil, "", fmt.Errorf("category %q cannot name a source stream: use letters, digits and . _ : @ - only", cat)
			}
			stream = c
		}
		var p map[string]json.RawMessage
		if err := json.Unmarshal(props, &p); err != nil || p == nil {
			return "", "", "", nil, "", errors.New("\"properties\" is not a JSON object")
		}
		if tenant, err = stringField(top, "tenantId"); err != nil {
			return "", "", "", nil, "", err
		}
		if tenant == "" {
			if rid, _ := stringField(top, "resourceId"); rid != "" {
				tenant = tenantFromResourceID(rid)
			}
		}
		id, _ := field(p, "id")
		return "entra.diagnostic", stream, tenant, id, "properties.id", nil
	}
	// Graph records name their tenant rarely (beta sign-ins carry
	// resourceTenantId); where they do, it is the normaliser's rule.
	switch {
	case hasAny(top, "activityDateTime", "activityDisplayName"):
		id, _ := field(top, "id")
		tenant, err := stringField(top, "tenantId")
		return "entra.directoryAudit", "audit", tenant, id, "id", err
	case hasAny(top, "createdDateTime"):
		id, _ := field(top, "id")
		tenant, err := stringField(top, "resourceTenantId")
		if err == nil && tenant == "" {
			tenant, err = stringField(top, "tenantId")
		}
		return "entra.signIn", "signin", tenant, id, "id", err
	}
	return "", "", "", nil, "", errors.New("not an Entra audit or sign-in record: it has neither category and properties (diagnostic settings), activityDateTime (Graph directoryAudit) nor createdDateTime (Graph signIn)")
}

// tenantFromResourceID returns <tid> from "/tenants/<tid>/providers/…".
func tenantFromResourceID(rid string) string {
	parts := strings.Split(strings.Trim(rid, "/"), "/")
	if len(parts) >= 2 && strings.EqualFold(parts[0], "tenants") {
		return parts[1]
	}
	return ""
}

// field returns the value under key, matched exactly or else without
// regard to case (as the server's normalisers match keys: Entra's own
// records are not consistent about case).
func field(top map[string]json.RawMessage, key string) (json.RawMessage, bool) {
	if v, ok := top[key]; ok {
		return v, true
	}
	for k, v := range top {
		if strings.EqualFold(k, key) {
			return v, true
		}
	}
	return nil, false
}

func hasAny(top map[string]json.RawMessage, keys ...string) bool {
	for _, k := range keys {
		if _, ok := field(top, k); ok {
			return true
		}
	}
	return false
}

// stringField returns a string field, "" when it is absent or null.
func stringField(top map[string]json.RawMessage, key string) (string, error) {
	raw, ok := field(top, key)
	if !ok || bytes.Equal(raw, []byte("null")) {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("%q is not a string", key)
	}
	return s, nil
}

// NativeID is the event_id of a record whose native id field (named field,
// for messages) holds id, by the server's rule: a string as it is, a number
// or a boolean in its JSON spelling; when the record has none (absent,
// null, "", an object or an array), "sha256:" and the lower-case hex SHA-256
// of the record's exact bytes.
func NativeID(record []byte, id json.RawMessage, field string) (string, error) {
	var s string
	switch {
	case len(id) == 0:
	case id[0] == '"':
		if err := json.Unmarshal(id, &s); err != nil {
			return "", fmt.Errorf("the record's %s is not a valid string", field)
		}
	case id[0] == '-' || (id[0] >= '0' && id[0] <= '9') || bytes.Equal(id, []byte("true")) || bytes.Equal(id, []byte("false")):
		s = string(id)
	}
	if s == "" {
		sum := sha256.Sum256(record)
		return "sha256:" + hex.EncodeToString(sum[:]), nil
	}
	if err := leaf.ValidateEventID(s); err != nil {
		return "", fmt.Errorf("the record's %s cannot be an event id: %v", field, err)
	}
	return s, nil
}

// Origin is where a record came from, for Event.origin:
// "file=NAME record=N offset=O". NAME is quoted (Go syntax) when it has
// spaces, quotes, '=' or non-printable characters, and shortened from the
// left to keep the origin within 1 KiB.
func Origin(file string, rec Record) string {
	tail := fmt.Sprintf(" record=%d offset=%d", rec.N, rec.Offset)
	name := file
	if strings.ContainsAny(name, " \"=\t") || strconv.Quote(name) != `"`+name+`"` {
		name = strconv.Quote(name)
	}
	if room := maxOriginBytes - len("file=") - len(tail); len(name) > room {
		r := []rune(file)
		for len(name) > room && len(r) > 0 {
			r = r[len(r)/8+1:]
			name = strconv.Quote("..." + string(r))
		}
	}
	return "file=" + name + tail
}
