package monitor_test

import (
	"testing"

	"github.com/stele-dev/stele/monitor"
)

// FuzzParseRules: any bytes as a rule file give rules or an error, never a
// panic, and parsed rules evaluate a leaf, with and without an event view.
func FuzzParseRules(f *testing.F) {
	f.Add(monitor.DefaultRulesJSON())
	f.Add([]byte(`{"rules":[{"name":"a","kinds":["x.*"],"source":"s/*","fields":{"a.b":["!c*","d"]},"count":2,"window":"1m"}]}`))
	f.Add([]byte(`{"rules":[{"name":"a","kinds":["x"],"fields":{"a..b":"c"}}]}`))
	f.Add([]byte(`{"rules":[{"name":"a","kinds":["x"],"count":5}]}`))
	f.Add([]byte(`{"rules":[null]}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		rs, err := monitor.ParseRules(data)
		if err != nil {
			if rs != nil {
				t.Fatalf("rules returned with error %v", err)
			}
			return
		}
		e := monitor.NewEngine(rs)
		view := map[string]any{"a": map[string]any{"b": []any{"c1", true, nil, 3.5}}}
		for i := range 3 {
			e.Eval(uint64(i), lf("s/t/u", "x.y", base))
			e.EvalWith(uint64(i), lf("s/t/u", "x", base), func() (map[string]any, error) { return view, nil })
		}
	})
}
