package server

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

func TestParsePolicy(t *testing.T) {
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	raw := base64.StdEncoding.EncodeToString(pub)
	_, vkey, err := note.GenerateKey(rand.Reader, "collector")
	if err != nil {
		t.Fatal(err)
	}
	const tok = `"token_sha256":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"`
	const tok2 = `"token_sha256":"60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752"`
	for _, c := range []struct {
		name, json, err string
	}{
		{"producer with rate", `{"identities":[{"name":"p",` + tok + `,"roles":["producer"],"sources":["entra/*/audit"],"events_per_second":50,"burst":100}]}`, ""},
		{"exempt from the default rate", `{"identities":[{"name":"p",` + tok + `,"roles":["producer"],"sources":["a"],"events_per_second":0}]}`, ""},
		{"rate without burst", `{"identities":[{"name":"p",` + tok + `,"roles":["producer"],"sources":["a"],"events_per_second":5}]}`, "burst of at least 1"},
		{"burst without rate", `{"identities":[{"name":"p",` + tok + `,"roles":["producer"],"sources":["a"],"burst":5}]}`, "burst is set without"},
		{"negative rate", `{"identities":[{"name":"p",` + tok + `,"roles":["producer"],"sources":["a"],"events_per_second":-1,"burst":1}]}`, "positive number"},
		{"zero burst", `{"identities":[{"name":"p",` + tok + `,"roles":["producer"],"sources":["a"],"events_per_second":1,"burst":0}]}`, "burst of at least 1"},
		{"signing keys, both forms", `{"signed_sources":["entra/*/audit"],"identities":[{"name":"p",` + tok + `,"roles":["producer"],"sources":["a"],"signing_keys":["` + raw + `","` + vkey + `"]}]}`, ""},
		{"signing key twice", `{"identities":[{"name":"p",` + tok + `,"roles":["producer"],"sources":["a"],"signing_keys":["` + raw + `"]},{"name":"q",` + tok2 + `,"roles":["producer"],"sources":["b"],"signing_keys":["` + raw + `"]}]}`, "also given to identity \"p\""},
		{"signing key for a reader", `{"identities":[{"name":"r",` + tok + `,"roles":["reader"],"signing_keys":["` + raw + `"]}]}`, "signing_keys are for producers"},
		{"short key", `{"identities":[{"name":"p",` + tok + `,"roles":["producer"],"sources":["a"],"signing_keys":["AAAA"]}]}`, "3 bytes, want 32"},
		{"not a key", `{"identities":[{"name":"p",` + tok + `,"roles":["producer"],"sources":["a"],"signing_keys":["hello world"]}]}`, "standard base64"},
		{"bad verifier key", `{"identities":[{"name":"p",` + tok + `,"roles":["producer"],"sources":["a"],"signing_keys":["` + vkey[:len(vkey)-2] + `xx"]}]}`, "verifier key"},
		{"bad signed source", `{"signed_sources":["entra/a*"],"identities":[]}`, "signed_sources"},
		{"read sources", `{"identities":[{"name":"r",` + tok + `,"roles":["reader"],"read_sources":["entra/t1/*"]}]}`, ""},
		{"empty read sources", `{"identities":[{"name":"r",` + tok + `,"roles":["reader"],"read_sources":[]}]}`, "read_sources is empty"},
		{"read sources for a producer", `{"identities":[{"name":"p",` + tok + `,"roles":["producer"],"sources":["a"],"read_sources":["a"]}]}`, "for readers and admins"},
		{"bad read source", `{"identities":[{"name":"r",` + tok + `,"roles":["reader"],"read_sources":["a//b"]}]}`, "read_sources"},
		{"unknown key", `{"identities":[],"rate":1}`, "unknown field"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, err := parsePolicy([]byte(c.json))
			if c.err == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if p == nil {
					t.Fatal("nil policy")
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Fatalf("got %v, want an error containing %q", err, c.err)
			}
		})
	}
}

func TestPolicyDecisions(t *testing.T) {
	p, err := parsePolicy([]byte(`{"signed_sources":["entra/*/audit"],"identities":[
	 {"name":"r","token_sha256":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08","roles":["reader"],"read_sources":["entra/t1/*","okta/*/system"]},
	 {"name":"all","token_sha256":"60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752","roles":["reader","admin"]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	var r, all *identity
	for _, id := range p.byToken {
		if id.name == "r" {
			r = id
		} else {
			all = id
		}
	}
	for _, c := range []struct {
		id     *identity
		source string
		want   bool
	}{
		{r, "entra/t1/audit", true}, {r, "entra/t2/audit", false}, {r, "okta/o1/system", true}, {r, "entra/t1", false},
		{all, "entra/t2/audit", true}, {all, "anything", true},
	} {
		if got := c.id.mayRead(c.source); got != c.want {
			t.Errorf("%s may read %s: %v, want %v", c.id.name, c.source, got, c.want)
		}
	}
	for src, want := range map[string]bool{"entra/t1/audit": true, "entra/t1/signin": false, "okta/o/audit": false} {
		if got := p.needsSignature(src); got != want {
			t.Errorf("needsSignature(%s) = %v, want %v", src, got, want)
		}
	}
}

// FuzzParsePolicy: the policy parser never panics, and what it accepts has
// consistent identities.
func FuzzParsePolicy(f *testing.F) {
	f.Add([]byte(`{"signed_sources":["entra/*/audit"],"identities":[{"name":"p","token_sha256":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08","roles":["producer"],"sources":["entra/*/audit"],"events_per_second":5,"burst":10,"signing_keys":["11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="]}]}`))
	f.Add([]byte(`{"identities":[{"name":"r","cert":"spiffe://x/y","roles":["reader"],"read_sources":["a/*"]}]}`))
	f.Add([]byte(`{"identities":[{"name":"a","cert":"c","roles":["admin"],"events_per_second":0}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := parsePolicy(b)
		if err != nil {
			return
		}
		for _, id := range p.byToken {
			if id.name == "" || len(id.roles) == 0 {
				t.Fatalf("accepted identity %+v", id)
			}
			if id.rate != nil && id.rate.perSecond > 0 && id.rate.burst < 1 {
				t.Fatalf("accepted rate %+v", id.rate)
			}
		}
	})
}

func TestParseSigningKey(t *testing.T) {
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	// (That a verifier key parses to its signer's public key is checked
	// end to end in TestProducerSignatures.)
	_, vkey, _ := note.GenerateKey(rand.Reader, "c")
	for _, c := range []struct {
		in   string
		want ed25519.PublicKey
		err  string
	}{
		{base64.StdEncoding.EncodeToString(pub), pub, ""},
		{vkey, nil, ""},
		{base64.StdEncoding.EncodeToString(pub[:31]), nil, "31 bytes"},
		{"", nil, "0 bytes"},
		{"c+00000000+" + strings.SplitN(vkey, "+", 3)[2], nil, "verifier key"},
		{"a+b", nil, "standard base64"},
	} {
		got, err := ParseSigningKey(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: %v, want error %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", c.in, err)
			continue
		}
		if c.want != nil && !got.Equal(c.want) {
			t.Errorf("%q: key %x, want %x", c.in, got, c.want)
		}
	}
}
