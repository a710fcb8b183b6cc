package identity

import (
	"fmt"
	"sort"
	"strings"
	"testing"
)

// TestNoContradiction: over every golden fixture, no view contradicts
// itself (kind against outcome against the OCSF export's status). The fuzz
// targets assert the same over their corpus (assertNoContradiction).
func TestNoContradiction(t *testing.T) {
	for _, f := range fixtures(t) {
		ev, err := Normalize(f.Format, f.Record)
		if err != nil {
			t.Fatalf("%s: %v", f.Path, err)
		}
		t.Run(f.Format+"/"+f.Name, func(t *testing.T) { assertNoContradiction(t, ev) })
	}
}

// TestFixtureCoverage counts the golden fixtures per normaliser and kind
// (run with -v to see the table), and checks that every Entra diagnostic
// category the normaliser knows has a fixture, as a diagnostic record or
// as a Log Analytics row.
func TestFixtureCoverage(t *testing.T) {
	counts := map[string]map[string]int{}
	categories := map[string]bool{}
	for _, f := range fixtures(t) {
		ev, err := Normalize(f.Format, f.Record)
		if err != nil {
			t.Fatalf("%s: %v", f.Path, err)
		}
		if counts[ev.Normalizer] == nil {
			counts[ev.Normalizer] = map[string]int{}
		}
		counts[ev.Normalizer][ev.Kind]++
		if f.Format == "entra.diagnostic" {
			categories[strings.ToLower(ev.GetSource().GetNativeStream())] = true
			categories[strings.ToLower(ev.GetNativeCategory())] = true
		}
	}
	var names []string
	for n := range counts {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	total := 0
	for _, n := range names {
		var kinds []string
		sum := 0
		for k, c := range counts[n] {
			kinds = append(kinds, fmt.Sprintf("%s=%d", k, c))
			sum += c
		}
		sort.Strings(kinds)
		total += sum
		fmt.Fprintf(&b, "%s (%d fixtures, %d kinds): %s\n", n, sum, len(kinds), strings.Join(kinds, " "))
	}
	t.Logf("golden fixtures per normaliser and kind (%d in all):\n%s", total, b.String())
	for lc, c := range entraCategories {
		if !categories[lc] && !categories[strings.ToLower(c.table)] {
			t.Errorf("Entra diagnostic category %s has no golden fixture", c.name)
		}
	}
}

// TestCategoriesDocumented: docs/identity.md lists every Entra diagnostic
// category with its table and kind.
func TestCategoriesDocumented(t *testing.T) {
	doc, err := readDoc()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range entraCategories {
		if !strings.Contains(doc, "| "+c.name+" | "+c.table+" |") {
			t.Errorf("docs/identity.md lacks the row for category %s (table %s)", c.name, c.table)
		}
		if c.kind != "" && !strings.Contains(doc, "`"+c.kind+"`") {
			t.Errorf("docs/identity.md lacks the kind %s", c.kind)
		}
	}
}
