// Package monitor follows a Stele log: it verifies each new checkpoint
// against a trusted state, compares the log's checkpoint with what
// witnesses serve (split-view detection), and evaluates alert rules on new
// entries. Everything it reads is public (tlog-tiles and the witnesses'
// C2SP monitoring endpoints): it needs no credentials.
package monitor

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

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
// characters, including "/"). With Count > 1, the rule fires when Count
// matching leaves of one source have event times within Window; it then
// starts counting again.
type Rule struct {
	Name        string   `json:"name"`
	Description string   `json:"description,omitempty"`
	Severity    string   `json:"severity,omitempty"`
	Kinds       []string `json:"kinds"`
	Source      string   `json:"source,omitempty"`
	Count       int      `json:"count,omitempty"`
	Window      Duration `json:"window,omitzero"`
	// Fields would match payload fields (actor, target, role, app,
	// outcome). It is refused: payloads need reader credentials and the
	// normalised event model (issue 3).
	Fields map[string]any `json:"fields,omitempty"`

	kinds  []*regexp.Regexp
	source *regexp.Regexp
}

// Duration is a time.Duration written as a Go duration string ("5m").
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration is a string such as \"5m\": %v", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

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
		if len(r.Fields) > 0 {
			return nil, fmt.Errorf("rules: rule %q matches payload fields, which needs reader credentials and the normalised event model (issue 3); match on kinds, source and counts for now", r.Name)
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
	// Count and FirstIndex are set for counting rules: how many events
	// fired it and the index of the first of them.
	Count      int
	FirstIndex uint64
}

// NewEngine returns an engine for rs.
func NewEngine(rs *Rules) *Engine {
	return &Engine{rules: rs.Rules, counts: map[string][]hit{}}
}

// Eval returns the rules that fire on the leaf at index.
func (e *Engine) Eval(index uint64, l *leaf.Leaf) []Match {
	var out []Match
	for _, r := range e.rules {
		if !r.Matches(l) {
			continue
		}
		if r.Count <= 1 {
			out = append(out, Match{Rule: r})
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
			out = append(out, Match{Rule: r, Count: len(kept), FirstIndex: kept[0].index})
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
