// Package monitor follows a Stele log: it verifies each new checkpoint
// against a trusted state, compares the log's checkpoint with what
// witnesses serve (split-view detection), and evaluates alert rules on new
// entries. Everything it verifies is public (tlog-tiles and the witnesses'
// C2SP monitoring endpoints); only rules on event fields need payloads,
// and so reader credentials (Config.Events).
package monitor

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/stele-dev/stele/internal/jsontime"
	"github.com/stele-dev/stele/leaf"
)

//go:embed default-rules.json
var defaultRules []byte

// DefaultRulesJSON is the default rule file, as shipped.
func DefaultRulesJSON() []byte { return bytes.Clone(defaultRules) }

// DefaultRules returns the default rules for identity threats.
func DefaultRules() *Rules {
	r, err := ParseRules(defaultRules)
	if err != nil {
		panic("monitor: default rules: " + err.Error())
	}
	return r
}

// Rules is a rule file: {"rules": [Rule...]}.
type Rules struct {
	Rules []*Rule `json:"rules"`
}

// Rule matches leaves. A leaf matches when its kind matches one of Kinds
// and its source matches Source (both globs where * matches any run of
// characters, including "/"), and, when the rule has Fields, the event's
// normalised view matches every one of them. With Count > 1, the rule fires
// when Count matching leaves of one source have event times within Window;
// it then starts counting again.
//
// Fields maps a dotted path in the normalised view (the JSON form of
// stele.v1.IdentityEvent with proto field names and every field present,
// e.g. "privilege.via_pim", "actor.login", "outcome.status",
// "targets.display_name") to a glob or a list of globs; the field matches
// when its value, as text, matches one of them. A glob starting with "!"
// is a negation: the value must not match the rest of it (a list of only
// negations matches any value none of them matches). A path through a list
// matches when any element does. Booleans are "true"/"false", enums their
// names (e.g. "OUTCOME_STATUS_FAILURE"), a missing or null field "".
// Fields need the payload, so reader credentials: without them a rule
// with Fields fires on kind and source alone and says so (conservative:
// an unchecked alert rather than a missed one).
type Rule struct {
	Name        string              `json:"name"`
	Description string              `json:"description,omitempty"`
	Severity    string              `json:"severity,omitempty"`
	Kinds       []string            `json:"kinds"`
	Source      string              `json:"source,omitempty"`
	Count       int                 `json:"count,omitempty"`
	Window      Duration            `json:"window,omitzero"`
	Fields      map[string]Patterns `json:"fields,omitempty"`

	kinds  []*regexp.Regexp
	source *regexp.Regexp
	fields []fieldMatch
}

// Patterns is one glob or a list of globs (JSON string or array).
type Patterns []string

// UnmarshalJSON accepts a string or an array of strings.
func (p *Patterns) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*p = Patterns{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return fmt.Errorf("a field condition is a string or an array of strings")
	}
	*p = many
	return nil
}

type fieldMatch struct {
	path []string
	any  []*regexp.Regexp
	not  []bool
}

// Duration is a time.Duration written as a Go duration string ("5m").
type Duration = jsontime.Duration

// ParseRules parses and checks a rule file. Unknown fields are refused, so
// a misspelt condition never silently matches everything.
func ParseRules(b []byte) (*Rules, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var rs Rules
	if err := dec.Decode(&rs); err != nil {
		return nil, fmt.Errorf("rules: %v", err)
	}
	if dec.More() {
		return nil, errors.New("rules: trailing data after the rules object")
	}
	names := map[string]bool{}
	for i, r := range rs.Rules {
		if r == nil {
			return nil, fmt.Errorf("rules: rule %d is null", i)
		}
		if r.Name == "" {
			return nil, fmt.Errorf("rules: rule %d has no name", i)
		}
		if names[r.Name] {
			return nil, fmt.Errorf("rules: two rules are named %q", r.Name)
		}
		names[r.Name] = true
		for _, path := range slices.Sorted(maps.Keys(r.Fields)) {
			pats := r.Fields[path]
			parts := strings.Split(path, ".")
			if slices.Contains(parts, "") {
				return nil, fmt.Errorf("rules: rule %q: field path %q has an empty segment", r.Name, path)
			}
			if len(pats) == 0 {
				return nil, fmt.Errorf("rules: rule %q: field %q has no patterns", r.Name, path)
			}
			fm := fieldMatch{path: parts}
			for _, p := range pats {
				neg := strings.HasPrefix(p, "!")
				fm.any = append(fm.any, glob(strings.TrimPrefix(p, "!")))
				fm.not = append(fm.not, neg)
			}
			r.fields = append(r.fields, fm)
		}
		if len(r.Kinds) == 0 {
			return nil, fmt.Errorf("rules: rule %q has no kinds", r.Name)
		}
		for _, k := range r.Kinds {
			if k == "" {
				return nil, fmt.Errorf("rules: rule %q has an empty kind", r.Name)
			}
			r.kinds = append(r.kinds, glob(k))
		}
		if r.Source == "" {
			r.Source = "*"
		}
		r.source = glob(r.Source)
		if r.Count < 0 {
			return nil, fmt.Errorf("rules: rule %q has a negative count", r.Name)
		}
		if r.Count > 1 && r.Window <= 0 {
			return nil, fmt.Errorf("rules: rule %q counts %d events but has no window", r.Name, r.Count)
		}
		if r.Count <= 1 && r.Window != 0 {
			return nil, fmt.Errorf("rules: rule %q has a window but no count above 1", r.Name)
		}
	}
	return &rs, nil
}

// glob compiles a pattern where * matches any run of characters.
func glob(p string) *regexp.Regexp {
	parts := strings.Split(p, "*")
	for i := range parts {
		parts[i] = regexp.QuoteMeta(parts[i])
	}
	return regexp.MustCompile(`\A` + strings.Join(parts, ".*") + `\z`)
}

// Matches reports whether the leaf matches the rule's kind and source.
func (r *Rule) Matches(l *leaf.Leaf) bool {
	if !r.source.MatchString(l.Source) {
		return false
	}
	for _, k := range r.kinds {
		if k.MatchString(l.Kind) {
			return true
		}
	}
	return false
}

// matchFields reports whether the view matches every field condition.
func (r *Rule) matchFields(view map[string]any) bool {
	for _, fm := range r.fields {
		vals := lookup(view, fm.path)
		if len(vals) == 0 {
			vals = []string{""}
		}
		ok := false
		for _, v := range vals {
			if fm.matches(v) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// matches reports whether v matches one of the positive globs (if there
// are any) and none of the negated ones.
func (fm fieldMatch) matches(v string) bool {
	pos, hit := false, false
	for i, re := range fm.any {
		if fm.not[i] {
			if re.MatchString(v) {
				return false
			}
			continue
		}
		pos = true
		hit = hit || re.MatchString(v)
	}
	return hit || !pos
}

// lookup returns the values, as text, at path in v; a list on the way
// yields the values of all its elements.
func lookup(v any, path []string) []string {
	switch x := v.(type) {
	case []any:
		var out []string
		for _, e := range x {
			out = append(out, lookup(e, path)...)
		}
		return out
	case map[string]any:
		if len(path) == 0 {
			return nil
		}
		return lookup(x[path[0]], path[1:])
	}
	if len(path) > 0 {
		return nil
	}
	switch x := v.(type) {
	case nil:
		return []string{""}
	case string:
		return []string{x}
	case bool:
		return []string{strconv.FormatBool(x)}
	default:
		b, _ := json.Marshal(x)
		return []string{string(b)}
	}
}

// EventView returns the normalised view of an entry's event as generic
// JSON (see Rule), or nil when the payload is not available (erased).
type EventView func() (map[string]any, error)

// Engine evaluates rules on leaves in log order. Its window counters are
// in memory: a restarted monitor starts counting afresh.
type Engine struct {
	rules  []*Rule
	counts map[string][]hit // rule name + "\x00" + source -> hits in window
}

type hit struct {
	index uint64
	at    time.Time
}

// Match is one rule firing on a leaf.
type Match struct {
	Rule *Rule
	// For a rule with Fields: FieldsChecked is true when the event's
	// normalised view was read and matched; false means the rule fired on
	// kind and source alone, and FieldsError (if set) says why.
	FieldsChecked bool
	FieldsError   string
	// Count and FirstIndex are set for counting rules: how many events
	// fired it and the index of the first of them.
	Count      int
	FirstIndex uint64
}

// NewEngine returns an engine for rs.
func NewEngine(rs *Rules) *Engine {
	return &Engine{rules: rs.Rules, counts: map[string][]hit{}}
}

// Eval returns the rules that fire on the leaf at index, without the
// event's normalised view: rules with Fields fire on kind and source.
func (e *Engine) Eval(index uint64, l *leaf.Leaf) []Match { return e.EvalWith(index, l, nil) }

// EvalWith is Eval with the event's normalised view, read (at most once)
// only when a rule with Fields matches the leaf.
func (e *Engine) EvalWith(index uint64, l *leaf.Leaf, view EventView) []Match {
	var out []Match
	var (
		read    bool
		ev      map[string]any
		viewErr error
	)
	for _, r := range e.rules {
		if !r.Matches(l) {
			continue
		}
		m := Match{Rule: r}
		if len(r.fields) > 0 {
			if view != nil && !read {
				read = true
				ev, viewErr = view()
			}
			switch {
			case view == nil:
				m.FieldsError = "no access to payloads (reader credentials)"
			case viewErr != nil:
				m.FieldsError = viewErr.Error()
			case ev == nil:
				m.FieldsError = "the payload was erased"
			case !r.matchFields(ev):
				continue
			default:
				m.FieldsChecked = true
			}
		}
		if r.Count <= 1 {
			out = append(out, m)
			continue
		}
		key := r.Name + "\x00" + l.Source
		hs := append(e.counts[key], hit{index, l.EventTime})
		// Keep the hits within the window before the newest event time.
		newest := l.EventTime
		for _, h := range hs {
			if h.at.After(newest) {
				newest = h.at
			}
		}
		kept := hs[:0]
		for _, h := range hs {
			if newest.Sub(h.at) <= time.Duration(r.Window) {
				kept = append(kept, h)
			}
		}
		if len(kept) >= r.Count {
			m.Count, m.FirstIndex = len(kept), kept[0].index
			out = append(out, m)
			kept = kept[:0]
		}
		if len(kept) == 0 {
			delete(e.counts, key)
		} else {
			e.counts[key] = kept
		}
	}
	return out
}
