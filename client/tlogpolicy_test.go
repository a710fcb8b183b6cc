package client_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stele-dev/stele/client"
)

// TestParsePolicyRefuses: every policy C2SP tlog-policy forbids, or that
// can never be met, is refused with the line and the reason.
func TestParsePolicyRefuses(t *testing.T) {
	w1, w2 := newWitnessKey(t, "w1.example/w"), newWitnessKey(t, "w2.example/w")
	lk := newLogKey(t, testOrigin, 1)
	w := func(name string, k witnessKey) string { return fmt.Sprintf("witness %s %s\n", name, k.vkey) }
	two := w("w1", w1) + w("w2", w2)
	cases := []struct {
		name, text, want string
	}{
		{"empty", "", "no quorum line"},
		{"comments only", "# nothing\n  # indented\n", "no quorum line"},
		{"quorum none", "quorum none\n", "quorum none requires no cosignature"},
		{"two quorums", two + "quorum w1\nquorum w2\n", "line 4: a second quorum line (the first is line 3)"},
		{"quorum undefined", two + "quorum w3\n", "quorum w3 is not a witness or group defined on a preceding line"},
		{"quorum before its witness", "quorum w1\n" + w("w1", w1), "line 1: quorum w1 is not"},
		{"quorum with two names", two + "quorum w1 w2\n", "this one has 3 fields"},
		{"k above n", two + "group g 3 w1 w2\nquorum g\n", "group g needs 3 of its 2 members, which can never be met"},
		{"k zero", two + "group g 0 w1 w2\nquorum g\n", "threshold must be 1 to 2"},
		{"k negative", two + "group g -1 w1 w2\nquorum g\n", `threshold "-1" is not all, any or a decimal number`},
		{"k huge", two + "group g 99999999999999999999 w1 w2\nquorum g\n", "is not all, any or a decimal number"},
		{"k word", two + "group g most w1 w2\nquorum g\n", `threshold "most"`},
		{"group without members", two + "group g any\nquorum g\n", "at least one member"},
		{"unknown member", two + "group g any w1 w9\nquorum g\n", "member w9 is not a witness or group defined on a preceding line"},
		{"member defined later", "group g any w1\n" + w("w1", w1) + "quorum g\n", "line 1: group g: member w1 is not"},
		{"group of itself (a cycle)", two + "group g any w1 g\nquorum g\n", "group g lists itself"},
		{"member twice", two + "group g 2 w1 w1\nquorum g\n", "lists w1 twice"},
		{"none as member", two + "group g any w1 none\nquorum g\n", `"none" cannot be a group member`},
		{"witness named none", w("none", w1) + "quorum none\n", `"none" is predefined`},
		{"witness name reused", w("w1", w1) + w("w1", w2) + "quorum w1\n", "the name w1 is already defined"},
		{"group name reused", two + "group w1 any w2\nquorum w1\n", "the name w1 is already defined"},
		{"same witness key twice", w("a", w1) + w("b", w1) + "quorum a\n", "witness b has the same public key as witness a"},
		{"log key as witness key", fmt.Sprintf("witness w1 %s\nquorum w1\n", lk.vkey), "a witness key is a cosignature key, type 0x04"},
		{"witness key as log key", "log " + w1.vkey + "\n" + two + "quorum w1\n", "a log's key is a signed-note Ed25519 key, type 0x01"},
		{"log twice", "log " + lk.vkey + "\nlog " + lk.vkey + "\n" + two + "quorum w1\n", "this log key is listed twice"},
		{"log line too long", "log " + lk.vkey + " https://l/ extra\n" + two + "quorum w1\n", `"log <vkey> [<url>]"`},
		{"witness without key", "witness w1\nquorum w1\n", `"witness <name> <vkey> [<url>]"`},
		{"witness bad key", "witness w1 notakey\nquorum w1\n", `key "notakey"`},
		{"witness bad URL", fmt.Sprintf("witness w1 %s ftp://w1/\nquorum w1\n", w1.vkey), `URL "ftp://w1/" is not an absolute http or https URL`},
		{"witness extra field", fmt.Sprintf("witness w1 %s https://w1/ more\nquorum w1\n", w1.vkey), "this one has 5 fields"},
		{"unknown keyword", two + "threshold 2\nquorum w1\n", `unknown keyword "threshold"`},
		{"CRLF", strings.ReplaceAll(two+"quorum w1\n", "\n", "\r\n"), "control character 0x0d at byte"},
		{"NUL", two + "quorum w1\x00\n", "line 3: control character 0x00"},
		{"DEL", two + "# \x7f\nquorum w1\n", "control character 0x7f"},
		{"vertical tab is not a separator", two + "quorum\vw1\n", "control character 0x0b"},
		{"unicode space is not a separator", two + "quorum\u00a0w1\n", `unknown keyword "quorum\u00a0w1"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := client.ParsePolicy([]byte(c.text))
			if err == nil {
				t.Fatalf("accepted %q", c.text)
			}
			if p != nil {
				t.Fatal("a policy returned with the error")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q, want it to contain %q", err, c.want)
			}
		})
	}
}

// TestPolicyGroups: nested "k of n" groups as C2SP tlog-policy defines
// them (its own example, and a public-and-own mix), checked on receipts.
func TestPolicyGroups(t *testing.T) {
	f := newFixture(t, 5)
	var x, y [3]witnessKey
	for i := range 3 {
		x[i] = newWitnessKey(t, fmt.Sprintf("x%d.example/w", i+1))
		y[i] = newWitnessKey(t, fmt.Sprintf("y%d.example/w", i+1))
	}
	// The spec's example, with tabs, blank and comment lines, URLs on
	// some witnesses and a log line.
	spec := fmt.Sprintf(`# C2SP tlog-policy's example
log %s

witness X1 %s https://x1.example/
witness	X2	%s
witness X3 %s
group X-witnesses 2 X1 X2 X3

  witness Y1 %s
witness Y2 %s http://127.0.0.1:7480/
witness Y3 %s
group Y-witnesses any Y1 Y2 Y3

group X-and-Y all X-witnesses Y-witnesses
quorum X-and-Y`, f.key.vkey, x[0].vkey, x[1].vkey, x[2].vkey, y[0].vkey, y[1].vkey, y[2].vkey)
	other := newLogKey(t, "other.example/log", 9)
	otherLog := strings.Replace(spec, "log "+f.key.vkey, "log "+other.vkey, 1)

	// An operator's own witness required, plus any two of four public ones.
	own := newWitnessKey(t, "witness.operator.example/w1")
	var pub [4]witnessKey
	mix := fmt.Sprintf("witness own %s http://127.0.0.1:7480/\n", own.vkey)
	for i := range pub {
		pub[i] = newWitnessKey(t, fmt.Sprintf("public%d.example/w", i+1))
		mix += fmt.Sprintf("witness p%d %s https://public%d.example/\n", i+1, pub[i].vkey, i+1)
	}
	mix += "group public 2 p1 p2 p3 p4\ngroup required all own public\nquorum required\n"

	cases := []struct {
		name, policy string
		cosigners    []witnessKey
		want         string
	}{
		{"spec: 2 X and 1 Y", spec, []witnessKey{x[0], x[2], y[1]}, ""},
		{"spec: 3 X and 3 Y", spec, []witnessKey{x[0], x[1], x[2], y[0], y[1], y[2]}, ""},
		{"spec: 1 X and 1 Y", spec, []witnessKey{x[1], y[0]}, "group X-witnesses needs 2 of [X1 X2 X3], has 1; group X-and-Y needs 2 of [X-witnesses Y-witnesses], has 1"},
		{"spec: 3 X and no Y", spec, []witnessKey{x[0], x[1], x[2]}, "group Y-witnesses needs 1 of [Y1 Y2 Y3], has 0"},
		{"spec: another log's policy", otherLog, []witnessKey{x[0], x[2], y[1]}, "not signed by a log the witness policy lists"},
		{"mix: own and two public", mix, []witnessKey{own, pub[1], pub[3]}, ""},
		{"mix: own and all public", mix, []witnessKey{own, pub[0], pub[1], pub[2], pub[3]}, ""},
		{"mix: four public, not own", mix, []witnessKey{pub[0], pub[1], pub[2], pub[3]}, "group required needs 2 of [own public], has 1"},
		{"mix: own and one public", mix, []witnessKey{own, pub[2]}, "group public needs 2 of [p1 p2 p3 p4], has 1"},
		{"mix: nobody", mix, nil, "cosigned by [], not by"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := client.ParsePolicy([]byte(c.policy))
			if err != nil {
				t.Fatal(err)
			}
			pr := f.proof(2)
			pr.Checkpoint = cosign(t, f.checkpoint, f.key.verifier, c.cosigners...)
			r, err := client.VerifyReceipt(pr.Marshal(), f.key.verifier)
			if err != nil {
				t.Fatal(err)
			}
			err = p.Check(r.Checkpoint)
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("Check: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("Check: %v, want an error containing %q", err, c.want)
			}
		})
	}
}
