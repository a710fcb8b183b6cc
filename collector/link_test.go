package collector

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/url"
	"testing"
	"time"
)

func TestLinkRel(t *testing.T) {
	const okta = `<https://example.okta.com/api/v1/logs?limit=100&sortOrder=ASCENDING&since=2026-12-01T00%3A00%3A00Z>; rel="self"`
	const next = `<https://example.okta.com/api/v1/logs?after=1733443200000_1&limit=100&sortOrder=ASCENDING>; rel="next"`
	for _, tc := range []struct {
		name   string
		values []string
		want   string
		ok     bool
	}{
		{"okta two headers", []string{okta, next}, "https://example.okta.com/api/v1/logs?after=1733443200000_1&limit=100&sortOrder=ASCENDING", true},
		{"comma joined", []string{okta + ", " + next}, "https://example.okta.com/api/v1/logs?after=1733443200000_1&limit=100&sortOrder=ASCENDING", true},
		{"self only", []string{okta}, "", false},
		{"none", nil, "", false},
		{"unquoted rel", []string{`<https://h/a>; rel=next`}, "https://h/a", true},
		{"several relation types", []string{`<https://h/b>; rel="prev next"`}, "https://h/b", true},
		{"case", []string{`<https://h/c>; REL="Next"`}, "https://h/c", true},
		{"comma inside the target", []string{`<https://h/d?x=1,2>; rel="next"`}, "https://h/d?x=1,2", true},
		{"comma inside a quoted parameter", []string{`<https://h/e>; title="a, <https://evil/>; rel=next", <https://h/f>; rel="next"`}, "https://h/f", true},
		{"first rel wins", []string{`<https://h/g>; rel="self"; rel="next"`}, "", false},
		{"other params", []string{`<https://h/h>; type="application/json"; rel="next"; title*=UTF-8''x`}, "https://h/h", true},
		{"unterminated", []string{`<https://h/i; rel="next"`}, "", false},
		{"junk then link", []string{`garbage, <https://h/j>; rel="next"`}, "https://h/j", true},
		{"rel nextx", []string{`<https://h/k>; rel="nextx"`}, "", false},
	} {
		got, ok := linkRel(tc.values, "next")
		if got != tc.want || ok != tc.ok {
			t.Errorf("%s: linkRel = %q, %v; want %q, %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}

func TestParseGraphPage(t *testing.T) {
	for _, tc := range []struct {
		page    string
		n       int
		next    string
		wantErr bool
	}{
		{`{"@odata.context":"https://graph.microsoft.com/v1.0/$metadata#auditLogs/directoryAudits","value":[{"id":"a"},{"id":"b"}],"@odata.nextLink":"https://graph.microsoft.com/v1.0/auditLogs/directoryAudits?$skiptoken=x"}`, 2, "https://graph.microsoft.com/v1.0/auditLogs/directoryAudits?$skiptoken=x", false},
		{`{"value":[]}`, 0, "", false},
		{`{"value":[1, "x", null]}`, 3, "", false}, // not records: each reported by the builder
		{`{"@odata.nextLink":"https://g/x"}`, 0, "", true},
		{`{"value":{}}`, 0, "", true},
		{`{"value":[],"@odata.nextLink":""}`, 0, "", true},
		{`[]`, 0, "", true},
		{`{"value":[{"id":"a"}]`, 0, "", true},
	} {
		recs, next, err := parseGraphPage([]byte(tc.page))
		if (err != nil) != tc.wantErr || len(recs) != tc.n || next != tc.next {
			t.Errorf("%s: %d records, next %q, err %v", tc.page, len(recs), next, err)
		}
	}
	recs, _, _ := parseGraphPage([]byte(`{"value":[ {"id": "a",  "x":1.50} ]}`))
	if string(recs[0]) != `{"id": "a",  "x":1.50}` {
		t.Errorf("record bytes changed: %s", recs[0])
	}
}

func TestParseOktaPage(t *testing.T) {
	for _, tc := range []struct {
		page string
		n    int
		err  bool
	}{
		{`[]`, 0, false},
		{`[{"uuid":"a"}, {"uuid":"b"}]`, 2, false},
		{`null`, 0, true},
		{`{"errorCode":"E0000011"}`, 0, true},
		{`[{"uuid":"a"}`, 0, true},
	} {
		recs, err := parseOktaPage([]byte(tc.page))
		if (err != nil) != tc.err || len(recs) != tc.n {
			t.Errorf("%s: %d records, err %v", tc.page, len(recs), err)
		}
	}
}

func TestSameOrigin(t *testing.T) {
	base, _ := url.Parse("https://graph.microsoft.com")
	for next, ok := range map[string]bool{
		"https://graph.microsoft.com/v1.0/auditLogs/signIns?$skiptoken=x": true,
		"https://GRAPH.microsoft.com/v1.0/x":                              true,
		"http://graph.microsoft.com/v1.0/x":                               false,
		"https://graph.microsoft.com.evil.example/v1.0/x":                 false,
		"https://graph.microsoft.com:444/v1.0/x":                          false,
		"/v1.0/relative":                                                  false,
		"https://user@evil.example/":                                      false,
	} {
		if _, err := sameOrigin(base, next); (err == nil) != ok {
			t.Errorf("sameOrigin(%q) = %v, want ok=%v", next, err, ok)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"3":                             3 * time.Second,
		"0":                             0,
		"99999":                         time.Hour,
		"Sat, 05 Dec 2026 12:00:10 GMT": 10 * time.Second,
		"Sat, 05 Dec 2026 11:00:00 GMT": 0,
	} {
		h := http.Header{"Retry-After": {v}}
		if got, ok := retryAfter(h, now); !ok || got != want {
			t.Errorf("Retry-After %q = %v, %v; want %v", v, got, ok, want)
		}
	}
	for _, v := range []string{"", "-1", "soon"} {
		if _, ok := retryAfter(http.Header{"Retry-After": {v}}, now); ok {
			t.Errorf("Retry-After %q read as a wait", v)
		}
	}
}

func TestParseSigningKey(t *testing.T) {
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	ek, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	_, edk, _ := ed25519.GenerateKey(rand.Reader)
	p8 := func(k any) []byte {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}
	sec1, _ := x509.MarshalECPrivateKey(ek)
	for _, tc := range []struct {
		name string
		pem  []byte
		alg  string
	}{
		{"rsa pkcs1", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rk)}), "RS256"},
		{"rsa pkcs8", p8(rk), "RS256"},
		{"ec sec1", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1}), "ES384"},
		{"ec pkcs8", p8(ek), "ES384"},
		{"ed25519", p8(edk), ""},
		{"certificate", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1}}), ""},
		{"not pem", []byte("key"), ""},
	} {
		_, m, err := parseSigningKey(tc.pem)
		switch {
		case tc.alg == "" && err == nil:
			t.Errorf("%s: accepted", tc.name)
		case tc.alg != "" && (err != nil || m.Alg() != tc.alg):
			t.Errorf("%s: %v, %v; want %s", tc.name, m, err, tc.alg)
		}
	}
}
