package client_test

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	"github.com/stele-dev/stele/client"
	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

type witnessKey struct {
	name   string
	signer note.Signer
	vkey   string // cosignature (0x04) verifier key
}

func newWitnessKey(t *testing.T, name string) witnessKey {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := fnote.NewSignerForCosignatureV1(skey)
	if err != nil {
		t.Fatal(err)
	}
	cv, err := fnote.VKeyToCosignatureV1(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return witnessKey{name: name, signer: s, vkey: cv}
}

// cosign adds w's cosignature to a signed checkpoint.
func cosign(t *testing.T, cp []byte, logV note.Verifier, ws ...witnessKey) []byte {
	t.Helper()
	n, err := note.Open(cp, note.VerifierList(logV))
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range ws {
		signed, err := note.Sign(&note.Note{Text: n.Text}, w.signer)
		if err != nil {
			t.Fatal(err)
		}
		cp = append(cp, signed[len(n.Text)+1:]...)
	}
	return cp
}

func TestPolicy(t *testing.T) {
	f := newFixture(t, 5)
	w1, w2, w3 := newWitnessKey(t, "w1.example/w"), newWitnessKey(t, "w2.example/w"), newWitnessKey(t, "w3.example/w")
	policy := func(q string) string {
		return fmt.Sprintf("witness w1 %s http://127.0.0.1:1/\nwitness w2 %s http://127.0.0.1:2/\nwitness w3 %s http://127.0.0.1:3/\ngroup g %s w1 w2 w3\nquorum g\n", w1.vkey, w2.vkey, w3.vkey, q)
	}
	other := newWitnessKey(t, "other.example/w")
	tampered := cosign(t, f.checkpoint, f.key.verifier, w1, w2)
	// Flip one bit of the Ed25519 signature in w2's cosignature (the last
	// line), keeping the base64 well formed: the line still parses, and
	// only the signature check can reject it.
	lines := strings.Split(strings.TrimSuffix(string(tampered), "\n"), "\n")
	last := lines[len(lines)-1]
	sp := strings.LastIndexByte(last, ' ')
	sig, err := base64.StdEncoding.DecodeString(last[sp+1:])
	if err != nil {
		t.Fatal(err)
	}
	sig[len(sig)-1] ^= 1
	lines[len(lines)-1] = last[:sp+1] + base64.StdEncoding.EncodeToString(sig)
	tampered = []byte(strings.Join(lines, "\n") + "\n")

	cases := []struct {
		name    string
		quorum  string
		cp      []byte
		wantErr string
	}{
		{"2 of 3 with two", "2", cosign(t, f.checkpoint, f.key.verifier, w1, w3), ""},
		{"2 of 3 with three", "2", cosign(t, f.checkpoint, f.key.verifier, w1, w2, w3), ""},
		{"2 of 3 with one", "2", cosign(t, f.checkpoint, f.key.verifier, w2), "cosigned by [w2.example/w], not by [w1.example/w, w3.example/w]"},
		{"2 of 3 with none", "2", f.checkpoint, "cosigned by [], not by"},
		{"all with two", "all", cosign(t, f.checkpoint, f.key.verifier, w1, w2), "not by [w3.example/w]"},
		{"any with one", "any", cosign(t, f.checkpoint, f.key.verifier, w3), ""},
		{"unknown witness does not count", "1", cosign(t, f.checkpoint, f.key.verifier, other), "does not meet the witness policy"},
		{"a bad cosignature does not count", "2", tampered, "does not meet the witness policy"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := client.ParsePolicy([]byte(policy(c.quorum)))
			if err != nil {
				t.Fatal(err)
			}
			cp, err := client.ParseCheckpoint(c.cp, f.key.verifier)
			if err != nil {
				t.Fatal(err)
			}
			err = p.Check(cp)
			switch {
			case c.wantErr == "" && err != nil:
				t.Fatalf("Check: %v", err)
			case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
				t.Fatalf("Check: %v, want error containing %q", err, c.wantErr)
			}
		})
	}

	for _, bad := range []string{
		"quorum none\n",
		"witness w1 notakey http://x/\nquorum w1\n",
		fmt.Sprintf("witness w1 %s http://x/\nquorum nobody\n", w1.vkey),
	} {
		if _, err := client.ParsePolicy([]byte(bad)); err == nil {
			t.Errorf("ParsePolicy(%q) accepted a bad policy", bad)
		}
	}
}
