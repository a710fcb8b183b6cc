package identity

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
)

// ocsfClasses is the part of the OCSF 1.8.0 schema (ocsf/ocsf-schema,
// events/iam/*.json and events/base_event.json at tag 1.8.0) that an
// exported event must satisfy: each class's activity ids (0 Unknown and 99
// Other are valid for all), its required attributes, and its constraints.
var ocsfClasses = map[int]struct {
	name       string
	activities []int
	required   []string
	atLeastOne []string // at least one of these must be present
	justOne    []string // exactly one of these must be present
}{
	3001: {"Account Change", []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, []string{"user"}, nil, nil},
	3002: {"Authentication", []int{1, 2, 3, 4, 5, 6, 7}, []string{"user"}, []string{"service", "dst_endpoint"}, nil},
	3003: {"Authorize Session", []int{1, 2}, []string{"user"}, nil, []string{"privileges", "group"}},
	3004: {"Entity Management", []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13}, []string{"entity"}, nil, nil},
	3005: {"User Access Management", []int{1, 2}, []string{"user", "privileges"}, nil, nil},
	3006: {"Group Management", []int{1, 2, 3, 4, 5, 6, 7, 8}, []string{"group"}, []string{"privileges", "user"}, nil},
}

// baseRequired are the base event's required attributes (1.8.0).
var baseRequired = []string{"activity_id", "category_uid", "class_uid", "metadata", "severity_id", "time", "type_uid"}

// validateOCSF checks one exported event against ocsfClasses.
func validateOCSF(name string, b []byte, claimed *stelev1.OcsfClass) []string {
	var problems []string
	errorf := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return []string{fmt.Sprintf("%s: OCSF output is not JSON: %v", name, err)}
	}
	for _, f := range baseRequired {
		if _, ok := m[f]; !ok {
			errorf("%s: base attribute %q missing", name, f)
		}
	}
	num := func(k string) int {
		f, ok := m[k].(float64)
		if !ok || f != float64(int64(f)) {
			errorf("%s: %s is %v, want an integer", name, k, m[k])
		}
		return int(f)
	}
	cls, act, typ := num("class_uid"), num("activity_id"), num("type_uid")
	if num("category_uid") != 3 {
		errorf("%s: category_uid %v, want 3 (Identity & Access Management)", name, m["category_uid"])
	}
	if typ != cls*100+act {
		errorf("%s: type_uid %d, want class_uid*100+activity_id = %d", name, typ, cls*100+act)
	}
	if cls != int(claimed.ClassUid) || act != int(claimed.ActivityId) || int64(typ) != claimed.TypeUid {
		errorf("%s: exported %d/%d/%d, the event claims %d/%d/%d", name, cls, act, typ, claimed.ClassUid, claimed.ActivityId, claimed.TypeUid)
	}
	if s := num("severity_id"); (s < 0 || s > 6) && s != 99 {
		errorf("%s: severity_id %d", name, s)
	}
	if s, ok := m["status_id"]; ok && !slices.Contains([]float64{0, 1, 2, 99}, s.(float64)) {
		errorf("%s: status_id %v", name, s)
	}
	if num("time") <= 0 {
		errorf("%s: time %v", name, m["time"])
	}
	md, _ := m["metadata"].(map[string]any)
	if md["version"] != OCSFVersion {
		errorf("%s: metadata.version %v, want %s", name, md["version"], OCSFVersion)
	}
	if p, _ := md["product"].(map[string]any); p == nil || p["name"] == "" || p["vendor_name"] == "" {
		errorf("%s: metadata.product %v lacks name / vendor_name", name, md["product"])
	}
	c, ok := ocsfClasses[cls]
	if !ok {
		return append(problems, fmt.Sprintf("%s: class_uid %d is not an IAM class this test knows", name, cls))
	}
	if act != 0 && act != 99 && !slices.Contains(c.activities, act) {
		errorf("%s: activity_id %d is not an activity of %s", name, act, c.name)
	}
	for _, f := range c.required {
		v, ok := m[f]
		if !ok || v == nil {
			errorf("%s: %s requires %q", name, c.name, f)
		}
		if obj, isObj := v.(map[string]any); isObj && len(obj) == 0 {
			errorf("%s: %s.%s is empty", name, c.name, f)
		}
		if arr, isArr := v.([]any); isArr && len(arr) == 0 {
			errorf("%s: %s.%s is empty", name, c.name, f)
		}
	}
	present := 0
	for _, f := range c.atLeastOne {
		if _, ok := m[f]; ok {
			present++
		}
	}
	if len(c.atLeastOne) > 0 && present == 0 {
		errorf("%s: %s needs at least one of %v", name, c.name, c.atLeastOne)
	}
	present = 0
	for _, f := range c.justOne {
		if _, ok := m[f]; ok {
			present++
		}
	}
	if len(c.justOne) > 0 && present != 1 {
		errorf("%s: %s needs exactly one of %v, has %d", name, c.name, c.justOne, present)
	}
	return problems
}

// TestOCSFExportValidates exports every golden fixture and checks it
// against the class it claims.
func TestOCSFExportValidates(t *testing.T) {
	classes := map[int32]bool{}
	for _, f := range fixtures(t) {
		ev, err := Normalize(f.Format, f.Record)
		if err != nil {
			t.Fatal(err)
		}
		if ev.EventTime == nil {
			if _, err := OCSF(ev); err == nil {
				t.Errorf("%s: exported without a time", f.Path)
			}
			continue
		}
		b, err := OCSF(ev)
		if err != nil {
			t.Fatalf("%s: %v", f.Path, err)
		}
		for _, p := range validateOCSF(f.Path, b, ev.Ocsf) {
			t.Error(p)
		}
		classes[ev.Ocsf.ClassUid] = true
	}
	for cls := range ocsfClasses {
		if !classes[int32(cls)] {
			t.Errorf("no fixture exports class %d", cls)
		}
	}
}

// TestOCSFValidatorCatchesBadEvents: the validator is not a rubber stamp.
func TestOCSFValidatorCatchesBadEvents(t *testing.T) {
	ev := normalizeFixture(t, "entra.directoryAudit/role-member-add-direct")
	good, err := OCSF(ev)
	if err != nil {
		t.Fatal(err)
	}
	for _, mutate := range []func(m map[string]any){
		func(m map[string]any) { delete(m, "user") },
		func(m map[string]any) { delete(m, "privileges") },
		func(m map[string]any) { m["type_uid"] = 300502 },
		func(m map[string]any) { m["metadata"] = map[string]any{"version": "1.8.0"} },
		func(m map[string]any) { m["activity_id"], m["type_uid"] = 7, 300507 },
	} {
		var m map[string]any
		json.Unmarshal(good, &m)
		mutate(m)
		b, _ := json.Marshal(m)
		if len(validateOCSF("mutated", b, ev.Ocsf)) == 0 {
			t.Errorf("validator accepted a broken event: %s", b)
		}
	}
}
