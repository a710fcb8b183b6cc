package drift

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/stele-dev/stele/state"
)

// GlobalAdministrator is the role template id of Entra's Global
// Administrator role.
const GlobalAdministrator = "62e90394-69f5-4237-9190-012177145e10"

// Baseline is baseline.json: what must hold in a tenant. Every list names
// principals, policies or apps by id or by name (UPN, display name, appId),
// compared case-insensitively. An omitted rule is not checked.
type Baseline struct {
	// Tenant, when set, limits the baseline to one tenant
	// ("entra/<tenant-id>").
	Tenant string `json:"tenant,omitempty"`
	// CAPoliciesEnabled: these conditional-access policies exist and are
	// "enabled".
	CAPoliciesEnabled []string `json:"ca_policies_enabled,omitempty"`
	// GlobalAdministrators: every holder of Global Administrator (active
	// or eligible) is in this list.
	GlobalAdministrators []string `json:"global_administrators,omitempty"`
	// BreakGlass: the only principals allowed a permanent active Global
	// Administrator assignment. Set (even empty) to check.
	BreakGlass *[]string `json:"break_glass,omitempty"`
	// MaxCredentialAgeDays: no application or service-principal credential
	// added longer ago than this many days. 0: not checked.
	MaxCredentialAgeDays int `json:"max_credential_age_days,omitempty"`
	// TenantWideConsentAllowed: the only client apps allowed a tenant-wide
	// (AllPrincipals) delegated grant. Set (even empty) to check.
	TenantWideConsentAllowed *[]string `json:"tenant_wide_consent_allowed,omitempty"`
}

// ParseBaseline parses baseline.json strictly: no unknown fields, no
// duplicate keys, no trailing data, no empty names.
func ParseBaseline(b []byte) (*Baseline, error) {
	var bl Baseline
	if err := decodeStrict(b, &bl, true); err != nil {
		return nil, fmt.Errorf("baseline: %w", err)
	}
	if bl.Tenant != "" {
		if p := strings.Split(bl.Tenant, "/"); len(p) != 2 || p[0] == "" || p[1] == "" {
			return nil, fmt.Errorf("baseline: tenant %q is not provider/tenant (e.g. entra/<tenant-id>)", bl.Tenant)
		}
	}
	if bl.MaxCredentialAgeDays < 0 {
		return nil, errors.New("baseline: max_credential_age_days must not be negative")
	}
	lists := map[string][]string{"ca_policies_enabled": bl.CAPoliciesEnabled, "global_administrators": bl.GlobalAdministrators}
	if bl.BreakGlass != nil {
		lists["break_glass"] = *bl.BreakGlass
	}
	if bl.TenantWideConsentAllowed != nil {
		lists["tenant_wide_consent_allowed"] = *bl.TenantWideConsentAllowed
	}
	for name, l := range lists {
		for i, v := range l {
			if strings.TrimSpace(v) == "" {
				return nil, fmt.Errorf("baseline: %s[%d] is empty", name, i)
			}
		}
	}
	return &bl, nil
}

// Deviation is one thing that does not hold.
type Deviation struct {
	Rule    string `json:"rule"`
	Tenant  string `json:"tenant"`
	Message string `json:"message"`
	// Source is "ledger" (the state the log implies) or "tenant" (the
	// snapshot).
	Source string `json:"source"`
	// Fact is the offending fact's type and key ("" when something is
	// missing, such as a CA policy the ledger never saw).
	Type string `json:"type,omitempty"`
	Key  string `json:"key,omitempty"`
	// Events are the ledger events that made the fact what it is (for
	// Source "ledger").
	Events []uint64 `json:"events"`
}

// ID identifies a deviation for deduplication.
func (d Deviation) ID() string {
	return strings.Join([]string{d.Rule, d.Tenant, d.Source, d.Type, d.Key, fmt.Sprint(d.Events)}, "\x00")
}

func matches(list []string, names ...string) bool {
	for _, l := range list {
		for _, n := range names {
			if n != "" && strings.EqualFold(strings.TrimSpace(l), n) {
				return true
			}
		}
	}
	return false
}

// Check evaluates the baseline on facts (one source: the ledger's current
// facts, or a snapshot's) at time at. names resolves a principal id to the
// names it may be listed under (its UPN): pass the logins the ledger knows.
func (bl *Baseline) Check(source string, facts []*state.Fact, at time.Time, names func(tenant, id string) []string) []Deviation {
	var out []Deviation
	dev := func(rule string, f *state.Fact, msg string, args ...any) {
		d := Deviation{Rule: rule, Source: source, Message: fmt.Sprintf(msg, args...), Events: []uint64{}}
		if f != nil {
			d.Tenant, d.Type, d.Key = f.Tenant, f.Type, f.Key
			if source == "ledger" {
				d.Events = slices.Clone(f.Events)
			}
		}
		out = append(out, d)
	}
	tenants := map[string]bool{}
	enabled := map[string]map[string]bool{}
	for _, f := range facts {
		if bl.Tenant != "" && f.Tenant != bl.Tenant {
			continue
		}
		if !strings.HasPrefix(f.Tenant, "entra/") {
			continue
		}
		tenants[f.Tenant] = true
		if !f.ActiveAt(at) {
			continue
		}
		switch f.Type {
		case state.CAPolicy:
			if matches(bl.CAPoliciesEnabled, f.Key, f.Attr("display_name")) {
				if enabled[f.Tenant] == nil {
					enabled[f.Tenant] = map[string]bool{}
				}
				for _, want := range bl.CAPoliciesEnabled {
					if matches([]string{want}, f.Key, f.Attr("display_name")) {
						enabled[f.Tenant][strings.ToLower(want)] = f.Attr("state") == "enabled"
						if f.Attr("state") != "enabled" {
							dev("ca_policy_enabled", f, "conditional-access policy %q (%s) is %q, the baseline wants it enabled", f.Attr("display_name"), f.Key, f.Attr("state"))
						}
					}
				}
			}
		case state.DirectoryRole:
			if f.Object != GlobalAdministrator {
				continue
			}
			who := append([]string{f.Subject, f.Attr("assignee_login")}, names(f.Tenant, f.Subject)...)
			assignment := f.Attr("assignment")
			if assignment == "" {
				assignment = "active"
			}
			if bl.GlobalAdministrators != nil && !matches(bl.GlobalAdministrators, who...) {
				dev("global_administrators", f, "%s holds Global Administrator (%s) and is not in the baseline's list", display(who), assignment)
			}
			permanent := assignment == "active" && f.Until == nil && f.Attr("activated") != "true" && f.Attr("duration") != "timebound"
			if bl.BreakGlass != nil && permanent && !matches(*bl.BreakGlass, who...) {
				dev("permanent_global_administrator", f, "%s holds a permanent active Global Administrator assignment and is not a named break-glass account", display(who))
			}
		case state.Credential:
			if bl.MaxCredentialAgeDays == 0 {
				continue
			}
			added, how := f.Attr("added"), "was added"
			if added == "" {
				// In the list of the first event that showed it: at
				// least this old.
				added, how = f.Attr("first_seen"), "was first seen"
			}
			t, err := time.Parse(time.RFC3339, added)
			if err != nil {
				continue
			}
			if age := at.Sub(t); age > time.Duration(bl.MaxCredentialAgeDays)*24*time.Hour {
				dev("credential_age", f, "%s credential %s of %s %q %s %s, %d days before %s (limit %d)", f.Attr("type"), f.Object, f.Attr("owner"), f.Attr("owner_name"),
					how, added, int(age.Hours()/24), at.UTC().Format(time.RFC3339), bl.MaxCredentialAgeDays)
			}
		case state.PermissionGrant:
			if bl.TenantWideConsentAllowed == nil || f.Attr("consent_type") != "AllPrincipals" {
				continue
			}
			if !matches(*bl.TenantWideConsentAllowed, f.Subject, f.Attr("client_name"), f.Attr("app_id")) {
				dev("tenant_wide_consent", f, "client %s (%s) has a tenant-wide delegated grant (%s) and is not in the baseline's allowed list", f.Subject, f.Attr("client_name"), f.Attr("scopes"))
			}
		}
	}
	// A wanted policy that does not exist (or never appeared in the log).
	for t := range tenants {
		for _, want := range bl.CAPoliciesEnabled {
			if _, ok := enabled[t][strings.ToLower(want)]; !ok {
				out = append(out, Deviation{Rule: "ca_policy_enabled", Tenant: t, Source: source, Events: []uint64{},
					Message: fmt.Sprintf("conditional-access policy %q is not known to the %s at all; the baseline wants it enabled", want, source)})
			}
		}
	}
	slices.SortFunc(out, func(a, b Deviation) int {
		return cmp.Or(strings.Compare(a.Tenant, b.Tenant), strings.Compare(a.Rule, b.Rule), strings.Compare(a.Key, b.Key), strings.Compare(a.Message, b.Message))
	})
	return out
}

func display(names []string) string {
	var out []string
	for _, n := range names {
		if n != "" && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return strings.Join(out, " / ")
}
