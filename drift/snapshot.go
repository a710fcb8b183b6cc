// Package drift compares the identity state the ledger implies (package
// state) with the live state of a tenant, read from Microsoft Graph JSON
// snapshots, and checks both against a baseline of what must hold.
//
// A snapshot is a directory of Graph collection responses, byte for byte
// as Graph returns them (GET …/roleManagement/directory/roleAssignments and
// the others in Resources), one file per page: <resource>.json, then
// <resource>.2.json, <resource>.3.json … while a page carries an
// @odata.nextLink. snapshot.json names the tenant and when the snapshot was
// taken. A resource without a file is not compared; a page whose
// @odata.nextLink has no next file is an error (an incomplete snapshot
// would report every missing object as drift).
package drift

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/stele-dev/stele/state"
)

// Resources are the Graph collections a snapshot may hold: file name
// (without .json) and the Graph v1.0 path it is the response of.
var Resources = []struct{ Name, Path string }{
	{"roleAssignments", "/roleManagement/directory/roleAssignments"},
	{"roleEligibilitySchedules", "/roleManagement/directory/roleEligibilitySchedules"},
	{"oauth2PermissionGrants", "/oauth2PermissionGrants"},
	{"servicePrincipals", "/servicePrincipals"},
	{"applications", "/applications"},
	{"conditionalAccessPolicies", "/identity/conditionalAccess/policies"},
	{"users", "/users?$select=id,userPrincipalName,displayName,accountEnabled"},
}

// factTypes are the fact types each resource yields; drift compares a type
// only when the snapshot has every resource that yields it.
var factTypes = map[string][]string{
	"roleAssignments":           {state.DirectoryRole + "/active"},
	"roleEligibilitySchedules":  {state.DirectoryRole + "/eligible"},
	"oauth2PermissionGrants":    {state.PermissionGrant},
	"servicePrincipals":         {state.ServicePrincipal, state.Credential + "/service_principal"},
	"applications":              {state.Application, state.Credential + "/application"},
	"conditionalAccessPolicies": {state.CAPolicy},
	"users":                     {state.User},
}

// Manifest is snapshot.json.
type Manifest struct {
	// Tenant is the tenant as in the log's sources: "entra/<tenant-id>".
	Tenant string `json:"tenant"`
	// TakenAt is when the snapshot was read (RFC 3339).
	TakenAt time.Time `json:"taken_at"`
}

// Snapshot is a tenant's live state as facts of package state (Present,
// without events).
type Snapshot struct {
	Manifest
	// Compared are the fact classes the snapshot covers (see factTypes):
	// "directory_role/active", "credential/application", "user", ...
	Compared map[string]bool
	Facts    map[string]*state.Fact // by Fact.ID
}

// ReadSnapshot reads a snapshot directory.
func ReadSnapshot(dir string) (*Snapshot, error) {
	mb, err := os.ReadFile(filepath.Join(dir, "snapshot.json"))
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w (the manifest names the tenant and when the snapshot was taken)", err)
	}
	m, err := ParseManifest(mb)
	if err != nil {
		return nil, err
	}
	s := NewSnapshot(m)
	for _, r := range Resources {
		for page := 1; ; page++ {
			name := r.Name + ".json"
			if page > 1 {
				name = r.Name + "." + strconv.Itoa(page) + ".json"
			}
			b, err := os.ReadFile(filepath.Join(dir, name))
			if errors.Is(err, fs.ErrNotExist) {
				if page > 1 {
					return nil, fmt.Errorf("snapshot: %s page %d has an @odata.nextLink but there is no %s: the snapshot is incomplete", r.Name, page-1, name)
				}
				break
			}
			if err != nil {
				return nil, fmt.Errorf("snapshot: %w", err)
			}
			next, err := s.AddPage(r.Name, b)
			if err != nil {
				return nil, fmt.Errorf("snapshot: %s: %w", name, err)
			}
			if !next {
				break
			}
		}
	}
	return s, nil
}

// ParseManifest parses snapshot.json strictly.
func ParseManifest(b []byte) (Manifest, error) {
	var m Manifest
	if err := decodeStrict(b, &m, true); err != nil {
		return m, fmt.Errorf("snapshot.json: %w", err)
	}
	p := strings.Split(m.Tenant, "/")
	if len(p) != 2 || p[0] != "entra" || p[1] == "" {
		return m, fmt.Errorf("snapshot.json: tenant %q is not entra/<tenant-id>", m.Tenant)
	}
	if m.TakenAt.IsZero() {
		return m, errors.New("snapshot.json: taken_at is required (RFC 3339)")
	}
	return m, nil
}

// NewSnapshot returns an empty snapshot of a tenant.
func NewSnapshot(m Manifest) *Snapshot {
	return &Snapshot{Manifest: m, Compared: map[string]bool{}, Facts: map[string]*state.Fact{}}
}

// decodeStrict decodes one JSON value into v after checkJSON; with
// known, unknown fields are refused (our own files); Graph objects may
// carry fields we do not read.
func decodeStrict(b []byte, v any, known bool) error {
	if len(bytes.TrimSpace(b)) == 0 {
		return errors.New("empty input, want a JSON object")
	}
	if err := checkJSON(b); err != nil {
		return err
	}
	if known {
		// encoding/json matches keys case-insensitively: a "Tenant" would
		// set tenant. Our own files must use the exact names.
		var keys map[string]json.RawMessage
		if err := json.Unmarshal(b, &keys); err != nil {
			return err
		}
		allowed := jsonNames(v)
		for k := range keys {
			if !slices.Contains(allowed, k) {
				return fmt.Errorf("unknown field %q (known: %s)", k, strings.Join(allowed, ", "))
			}
		}
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if known {
		dec.DisallowUnknownFields()
	}
	return dec.Decode(v)
}

// jsonNames are the JSON field names of the struct v points to.
func jsonNames(v any) []string {
	t := reflect.TypeOf(v).Elem()
	var out []string
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			out = append(out, name)
		}
	}
	return out
}

// page is a Graph collection response.
type page struct {
	Context  string            `json:"@odata.context"`
	NextLink *string           `json:"@odata.nextLink"`
	Value    []json.RawMessage `json:"value"`
}

// AddPage adds one page of a resource's collection response and reports
// whether the page says more follow (@odata.nextLink).
func (s *Snapshot) AddPage(resource string, b []byte) (next bool, err error) {
	if _, ok := factTypes[resource]; !ok {
		return false, fmt.Errorf("unknown resource %q", resource)
	}
	var p page
	if err := decodeStrict(b, &p, false); err != nil {
		return false, err
	}
	if p.Value == nil {
		return false, errors.New(`not a Graph collection response: no "value" array`)
	}
	for _, c := range factTypes[resource] {
		s.Compared[c] = true
	}
	for i, raw := range p.Value {
		if err := s.addObject(resource, raw); err != nil {
			return false, fmt.Errorf("value[%d]: %w", i, err)
		}
	}
	return p.NextLink != nil && *p.NextLink != "", nil
}

// Graph objects, with the properties drift reads.
type (
	roleAssignment struct {
		ID               string  `json:"id"`
		PrincipalID      string  `json:"principalId"`
		RoleDefinitionID string  `json:"roleDefinitionId"`
		DirectoryScopeID string  `json:"directoryScopeId"`
		AppScopeID       *string `json:"appScopeId"`
	}
	eligibilitySchedule struct {
		roleAssignment
		Status       string `json:"status"`
		MemberType   string `json:"memberType"`
		ScheduleInfo *struct {
			StartDateTime *time.Time `json:"startDateTime"`
			Expiration    *struct {
				Type        string     `json:"type"`
				EndDateTime *time.Time `json:"endDateTime"`
			} `json:"expiration"`
		} `json:"scheduleInfo"`
	}
	permissionGrant struct {
		ID          string  `json:"id"`
		ClientID    string  `json:"clientId"`
		ConsentType string  `json:"consentType"`
		PrincipalID *string `json:"principalId"`
		ResourceID  string  `json:"resourceId"`
		Scope       string  `json:"scope"`
	}
	keyCredential struct {
		KeyID         string     `json:"keyId"`
		DisplayName   *string    `json:"displayName"`
		Type          string     `json:"type"`
		Usage         string     `json:"usage"`
		StartDateTime *time.Time `json:"startDateTime"`
		EndDateTime   *time.Time `json:"endDateTime"`
	}
	directoryObject struct {
		ID                  string          `json:"id"`
		AppID               string          `json:"appId"`
		DisplayName         *string         `json:"displayName"`
		KeyCredentials      []keyCredential `json:"keyCredentials"`
		PasswordCredentials []keyCredential `json:"passwordCredentials"`
	}
	caPolicy struct {
		ID          string  `json:"id"`
		DisplayName *string `json:"displayName"`
		State       string  `json:"state"`
	}
	user struct {
		ID                string  `json:"id"`
		UserPrincipalName *string `json:"userPrincipalName"`
		DisplayName       *string `json:"displayName"`
		AccountEnabled    *bool   `json:"accountEnabled"`
	}
)

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func (s *Snapshot) put(typ, key, subject, object string, attrs map[string]string, until *time.Time) error {
	f := &state.Fact{Tenant: s.Tenant, Type: typ, Key: key, Subject: subject, Object: object, Attrs: map[string]string{}, Present: true, Until: until}
	for k, v := range attrs {
		if v != "" {
			f.Attrs[k] = v
		}
	}
	if old, ok := s.Facts[f.ID()]; ok {
		if typ != state.PermissionGrant {
			return fmt.Errorf("%s %s appears twice", typ, key)
		}
		// One grant per resource: the client's scopes are their union.
		f.Attrs["scopes"] = unionFields(old.Attrs["scopes"], f.Attrs["scopes"])
	}
	s.Facts[f.ID()] = f
	return nil
}

func unionFields(a, b string) string {
	out := strings.Fields(a)
	for _, x := range strings.Fields(b) {
		if !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}

func required(fields ...string) error {
	for i := 0; i+1 < len(fields); i += 2 {
		if fields[i+1] == "" {
			return fmt.Errorf("%s is missing or empty", fields[i])
		}
	}
	return nil
}

func (s *Snapshot) addObject(resource string, raw json.RawMessage) error {
	if len(raw) == 0 || raw[0] != '{' {
		return errors.New("not a JSON object")
	}
	switch resource {
	case "roleAssignments", "roleEligibilitySchedules":
		var o eligibilitySchedule
		if err := json.Unmarshal(raw, &o); err != nil {
			return err
		}
		if err := required("id", o.ID, "principalId", o.PrincipalID, "roleDefinitionId", o.RoleDefinitionID); err != nil {
			return err
		}
		scope := o.DirectoryScopeID
		if scope == "" {
			scope = "/"
		}
		assignment, duration := "active", ""
		var until *time.Time
		if resource == "roleEligibilitySchedules" {
			assignment, duration = "eligible", "permanent"
			if si := o.ScheduleInfo; si != nil && si.Expiration != nil && si.Expiration.Type != "noExpiration" {
				duration = "timebound"
				until = si.Expiration.EndDateTime
			}
		}
		return s.put(state.DirectoryRole, state.Key(o.PrincipalID, o.RoleDefinitionID, scope, assignment), o.PrincipalID, o.RoleDefinitionID,
			map[string]string{"assignment": assignment, "scope": scope, "duration": duration, "graph_id": o.ID}, until)
	case "oauth2PermissionGrants":
		var o permissionGrant
		if err := json.Unmarshal(raw, &o); err != nil {
			return err
		}
		if err := required("id", o.ID, "clientId", o.ClientID, "consentType", o.ConsentType); err != nil {
			return err
		}
		principal := ""
		if o.ConsentType == "Principal" {
			if principal = str(o.PrincipalID); principal == "" {
				return errors.New("a Principal grant without principalId")
			}
		} else if o.ConsentType != "AllPrincipals" {
			return fmt.Errorf("consentType %q is neither AllPrincipals nor Principal", o.ConsentType)
		}
		return s.put(state.PermissionGrant, state.Key(o.ClientID, o.ConsentType, principal), o.ClientID, principal,
			map[string]string{"consent_type": o.ConsentType, "scopes": unionFields("", o.Scope)}, nil)
	case "servicePrincipals", "applications":
		var o directoryObject
		if err := json.Unmarshal(raw, &o); err != nil {
			return err
		}
		if err := required("id", o.ID, "appId", o.AppID); err != nil {
			return err
		}
		typ, owner := state.ServicePrincipal, "service_principal"
		if resource == "applications" {
			typ, owner = state.Application, "application"
		}
		if err := s.put(typ, o.ID, o.ID, "", map[string]string{"display_name": str(o.DisplayName), "app_id": o.AppID}, nil); err != nil {
			return err
		}
		for _, list := range []struct {
			creds    []keyCredential
			password bool
		}{{o.KeyCredentials, false}, {o.PasswordCredentials, true}} {
			for i, c := range list.creds {
				if c.KeyID == "" {
					return fmt.Errorf("credential %d of %s has no keyId", i, o.ID)
				}
				ctype := "client_secret"
				if !list.password {
					ctype = map[string]string{"AsymmetricX509Cert": "certificate", "X509CertAndPassword": "certificate", "Symmetric": "symmetric"}[c.Type]
					if ctype == "" {
						ctype = strings.ToLower(c.Type)
					}
				}
				attrs := map[string]string{"owner": owner, "type": ctype, "display_name": str(c.DisplayName), "owner_name": str(o.DisplayName), "app_id": o.AppID}
				if c.StartDateTime != nil {
					attrs["added"] = c.StartDateTime.UTC().Format(time.RFC3339)
				}
				if c.EndDateTime != nil {
					attrs["expires"] = c.EndDateTime.UTC().Format(time.RFC3339)
				}
				if err := s.put(state.Credential, state.Key(owner, o.ID, c.KeyID), o.ID, c.KeyID, attrs, nil); err != nil {
					return err
				}
			}
		}
		return nil
	case "conditionalAccessPolicies":
		var o caPolicy
		if err := json.Unmarshal(raw, &o); err != nil {
			return err
		}
		if err := required("id", o.ID, "state", o.State); err != nil {
			return err
		}
		return s.put(state.CAPolicy, o.ID, o.ID, "", map[string]string{"display_name": str(o.DisplayName), "state": o.State}, nil)
	case "users":
		var o user
		if err := json.Unmarshal(raw, &o); err != nil {
			return err
		}
		if err := required("id", o.ID); err != nil {
			return err
		}
		attrs := map[string]string{"login": str(o.UserPrincipalName), "display_name": str(o.DisplayName)}
		if o.AccountEnabled != nil {
			attrs["status"] = map[bool]string{true: "enabled", false: "disabled"}[*o.AccountEnabled]
		}
		return s.put(state.User, o.ID, o.ID, "", attrs, nil)
	}
	return fmt.Errorf("unknown resource %q", resource)
}
