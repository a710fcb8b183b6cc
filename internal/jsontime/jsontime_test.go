package jsontime

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestDuration(t *testing.T) {
	for _, c := range []struct {
		in   string
		want time.Duration
		err  string
	}{
		{in: `"30s"`, want: 30 * time.Second},
		{in: `"1m30s"`, want: 90 * time.Second},
		{in: `"0s"`, want: 0},
		{in: `"250ms"`, want: 250 * time.Millisecond},
		{in: `30`, err: `a duration is a string such as "30s", not 30`},
		{in: `null`, err: `invalid duration`},
		{in: `"30"`, err: `missing unit`},
		{in: `"-5s"`, err: `duration "-5s" is negative`},
		{in: `"soon"`, err: `invalid duration`},
		{in: `""`, err: `invalid duration`},
		{in: `{"s":1}`, err: `a duration is a string`},
	} {
		var d Duration
		err := json.Unmarshal([]byte(c.in), &d)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: error %v, want one containing %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || time.Duration(d) != c.want {
			t.Errorf("%s: %v, %v; want %v", c.in, time.Duration(d), err, c.want)
		}
		out, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		var back Duration
		if err := json.Unmarshal(out, &back); err != nil || back != d {
			t.Errorf("%s: %s reads back as %v, %v", c.in, out, time.Duration(back), err)
		}
	}
}

func TestOr(t *testing.T) {
	if got := Duration(0).Or(time.Minute); got != time.Minute {
		t.Errorf("zero: %v", got)
	}
	if got := Duration(time.Second).Or(time.Minute); got != time.Second {
		t.Errorf("set: %v", got)
	}
}

// FuzzDuration: any input is refused with an error or read as a
// non-negative duration that writes and reads back to itself.
func FuzzDuration(f *testing.F) {
	for _, s := range []string{`"30s"`, `"1h2m3.5s"`, `30`, `"-1s"`, `"9223372036854775807ns"`, `"\u00b5s"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var d Duration
		if err := json.Unmarshal(b, &d); err != nil {
			return
		}
		if d < 0 {
			t.Fatalf("%q read as negative %v", b, time.Duration(d))
		}
		out, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		var back Duration
		if err := json.Unmarshal(out, &back); err != nil || back != d {
			t.Fatalf("%q: %s reads back as %v, %v", b, out, time.Duration(back), err)
		}
	})
}
