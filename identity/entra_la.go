package identity

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/types/known/timestamppb"

	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
)

// A Log Analytics (or Sentinel) row is an Entra record exported from a
// workspace table: PascalCase columns (TimeGenerated, Category,
// OperationName, ResultType, ...), dynamic columns as JSON or as JSON text
// (always text in CSV exports), and a Type column naming the table. Its
// TenantId column is the workspace's id; the Entra tenant is AADTenantId.

// laSuffixes are the unit suffixes the portal's CSV export adds to
// datetime column names.
const (
	laUTCSuffix   = " [UTC]"
	laLocalSuffix = " [Local Time]"
)

// isLARow tells a Log Analytics row: it has TimeGenerated (with or without
// the CSV export's " [UTC]"/" [Local Time]" suffix).
func isLARow(o obj) bool {
	for _, m := range o {
		// The suffixes only shorten the name and keep its first byte.
		if mayFold(m.name, "TimeGenerated") && strings.EqualFold(strings.TrimSuffix(strings.TrimSuffix(m.name, laUTCSuffix), laLocalSuffix), "TimeGenerated") {
			return true
		}
	}
	return false
}

// laRenames maps Log Analytics columns (lower-cased) whose name differs
// from the diagnostic/Graph property to that property.
var laRenames = map[string]string{
	"locationdetails":           "location",
	"location":                  "locationCode", // a country code, not the location object
	"conditionalaccesspolicies": "appliedConditionalAccessPolicies",
	"identity":                  "identity",
	// ResourceId is the Azure resource that emitted the row
	// (/tenants/…/providers/Microsoft.aadiam); the resource signed in
	// to is ResourceIdentity.
	"resourceid":       "azureResourceId",
	"resourceidentity": "resourceId",
}

// laRename looks name up in laRenames as strings.ToLower(name) would,
// without lower-casing an ASCII name into a new string.
func laRename(name string) (string, bool) {
	if !isASCII(name) {
		r, ok := laRenames[strings.ToLower(name)]
		return r, ok
	}
	for k, r := range laRenames {
		if strings.EqualFold(name, k) { // k is lower-case ASCII
			return r, true
		}
	}
	return "", false
}

// laProps rewrites a row as diagnostic properties: the export suffixes
// dropped from column names, the first letter lower-cased, renamed columns
// renamed, and JSON text in a column decoded when it is an object or an
// array (other text stays as it is). A column exported in local time is refused: its zone is unknown.
func laProps(o obj) (obj, error) {
	p := make(obj, 0, len(o))
	for _, m := range o {
		k, v := m.name, m.v
		name := k
		if strings.HasSuffix(name, laLocalSuffix) {
			return nil, fmt.Errorf("column %q is in the exporter's local time, whose zone the file does not say: export the query in UTC", k)
		}
		name = strings.TrimSuffix(name, laUTCSuffix)
		if r, ok := laRename(name); ok {
			name = r
		} else if name != "" {
			name = strings.ToLower(name[:1]) + name[1:]
		}
		if v.kind == kindString {
			if t := strings.TrimSpace(v.text); len(t) > 1 && (t[0] == '{' || t[0] == '[') {
				// Text that is not JSON stays text (a user agent may start
				// with "["); JSON with two readings is refused like a record.
				if dv, err := decodeText(t); err == nil {
					v = dv
				} else if !strings.HasPrefix(err.Error(), "record is not valid JSON") && !strings.HasPrefix(err.Error(), "record has trailing data") && !strings.HasPrefix(err.Error(), "record holds more than one") {
					return nil, fmt.Errorf("column %q holds JSON text that does not decode: %v", k, err)
				}
			}
		}
		p = p.set(name, v)
	}
	return p, nil
}

// set returns o with name set to v: replaced where o has exactly name,
// else appended. (Two columns may come to the same property name; the
// later in the row counts.)
func (o obj) set(name string, v value) obj {
	for i := range o {
		if o[i].name == name {
			o[i].v = v
			return o
		}
	}
	return append(o, member{name: name, v: v})
}

// laCategory is the diagnostic category of a row: from its Type (the
// table), else its Category when that is a diagnostic category, else
// AuditLogs when it has ActivityDisplayName.
func laCategory(o obj) (string, error) {
	table := o.str("Type")
	for _, c := range entraCategories {
		if table != "" && strings.EqualFold(c.table, table) {
			return c.name, nil
		}
	}
	if c, ok := entraCategories[strings.ToLower(o.str("Category"))]; ok && c.name != "AuditLogs" {
		return c.name, nil
	}
	if _, ok := o.get("ActivityDisplayName"); ok {
		return "AuditLogs", nil
	}
	if table != "" {
		return table, nil // an unknown table: flagged, kept raw
	}
	return "", fmt.Errorf("the Log Analytics row names no table (Type) or sign-in Category, and has no ActivityDisplayName: export it with the Type column")
}

// laRow normalises one Log Analytics row.
func laRow(o obj, ev *stelev1.IdentityEvent) error {
	props, err := laProps(o)
	if err != nil {
		return err
	}
	cat, err := laCategory(o)
	if err != nil {
		return err
	}
	tenant := firstNonEmpty(o.str("AADTenantId"), o.str("ResourceTenantId"))
	ev.Source = &stelev1.IdentitySource{Provider: "entra", Tenant: tenant, NativeStream: firstNonEmpty(o.str("Type"), cat)}
	envTime := timeField{"TimeGenerated", props.str("timeGenerated")}
	envBad := false
	if envTime.text != "" {
		if et, err := parseTimeZone("TimeGenerated", envTime.text, zoneUTC); err == nil {
			ev.EnvelopeTime, ev.EnvelopeTimeText = timestamppb.New(et), envTime.text
		} else {
			envBad = true
		}
	}
	if err := diagProperties(props, props, cat, ev, envTime); err != nil {
		return err
	}
	if envBad && ev.EventTime != nil {
		addFlag(ev, FlagTimeFallback)
	}
	if ev.NativeId == "" {
		ev.NativeId = o.nativeID("Id")
	}
	if ev.Correlation == nil && props.str("correlationId") != "" {
		ev.Correlation = &stelev1.Correlation{CorrelationId: props.str("correlationId")}
	}
	return nil
}

// laRowAs normalises a Log Analytics row sent as entra.signIn or
// entra.directoryAudit: it is read exactly as under entra.diagnostic when
// its table is of the stream the format names, and refused otherwise.
func laRowAs(o obj, ev *stelev1.IdentityEvent, stream string) error {
	cat, err := laCategory(o)
	if err != nil {
		return err
	}
	if EntraStream(cat) != stream {
		return fmt.Errorf("this is a Log Analytics row of %s, not of %s records: send it as entra.diagnostic", cat, stream)
	}
	return laRow(o, ev)
}
