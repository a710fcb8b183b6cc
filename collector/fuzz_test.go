package collector

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// FuzzParseConfig: any bytes give a config that passed every check, or an
// error; never a panic.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(`{"server": {"address": "h:1"}, "state_dir": "/s", "sources": [{"name": "a", "entra_storage": {"auth": "connection_string", "connection_string_env": "X"}}]}`))
	f.Add([]byte(`{"server": {"address": "h:1"}, "state_dir": "/s", "sources": [{"name": "c", "cloudtrail_s3": {"bucket": "b", "poll_interval": "1m"}}]}`))
	f.Add([]byte(`{"server": {"address": "h:1"}, "state_dir": "/s", "sources": [{"name": "e", "entra_eventhub": {"brokers": ["h:9093"], "connection_string_env": "X"}}]}`))
	f.Add([]byte(`{"server": {"address": "h:1"}, "state_dir": "/s", "sources": [{"name": "g", "entra_graph": {"tenant": "t", "auth": "client_secret", "client_id": "c", "client_secret_env": "X", "overlap": "15m"}}]}`))
	f.Add([]byte(`{"server": {"address": "h:1"}, "state_dir": "/s", "sources": [{"name": "o", "okta_systemlog": {"org_url": "https://x.okta.com", "auth": "api_token", "api_token_env": "X"}}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		cfg, err := ParseConfig(bytes.NewReader(b))
		if err != nil {
			return
		}
		if cfg.Server.Address == "" || cfg.StateDir == "" || len(cfg.Sources) == 0 {
			t.Fatalf("accepted a config without the required keys: %s", b)
		}
		for _, s := range cfg.Sources {
			if _, err := s.kind(); err != nil || !sourceName.MatchString(s.Name) {
				t.Fatalf("accepted source %q: %v", s.Name, err)
			}
		}
	})
}

// FuzzBlobName: a blob name the storage source takes for an hourly log
// blob names that hour.
func FuzzBlobName(f *testing.F) {
	f.Add("tenantId=11111111-1111-4111-8111-111111111111/y=2026/m=12/d=05/h=19/m=00/PT1H.json")
	f.Add("resourceId=/SUBSCRIPTIONS/X/y=2026/m=02/d=30/h=25/m=00/PT1H.json")
	f.Add("tenantId=t/y=2026/m=12/d=05/h=19/m=00/PT1H.json.tmp")
	f.Fuzz(func(t *testing.T, name string) {
		h, ok := parseBlobHour(name)
		if !ok {
			return
		}
		if h.Location() != time.UTC || !h.Equal(h.Truncate(time.Hour)) {
			t.Fatalf("%q: hour %v is not a UTC hour", name, h)
		}
		if !strings.Contains(name, h.Format("y=2006/m=01/d=02/h=15/")) {
			t.Fatalf("%q: parsed as %v, which the name does not spell", name, h)
		}
	})
}

// FuzzLinkHeader: a next link is always a target between < and > in the
// header, never a parameter's text; no panic.
func FuzzLinkHeader(f *testing.F) {
	f.Add(`<https://example.okta.com/api/v1/logs?after=1_1&limit=100>; rel="next", <https://x/>; rel="self"`)
	f.Add(`<https://h/e>; title="a, <https://evil/>; rel=next", <https://h/f>; rel="next"`)
	f.Add(`<a>; rel="prev next"; rel=self`)
	f.Add(`<unterminated; rel=next`)
	f.Fuzz(func(t *testing.T, h string) {
		got, ok := linkRel([]string{h}, "next")
		if !ok {
			if got != "" {
				t.Fatalf("no link, yet %q", got)
			}
			return
		}
		if !strings.Contains(h, "<"+got+">") {
			t.Fatalf("%q: link %q is not a <target> of the header", h, got)
		}
	})
}

// FuzzGraphPage: every record of a page is valid JSON found verbatim in
// the page; no panic.
func FuzzGraphPage(f *testing.F) {
	f.Add([]byte(`{"@odata.context":"c","value":[{"id":"a"},{"id": "b" }],"@odata.nextLink":"https://g/x"}`))
	f.Add([]byte(`{"value":[]}`))
	f.Add([]byte(`{"value":[1,null,"s"],"value":[{}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		recs, _, err := parseGraphPage(b)
		if err != nil {
			return
		}
		for _, r := range recs {
			if !json.Valid(r) || !bytes.Contains(b, r) {
				t.Fatalf("record %q is not valid JSON found in the page", r)
			}
		}
	})
}

// FuzzOktaPage: likewise for a System Log page.
func FuzzOktaPage(f *testing.F) {
	f.Add([]byte(`[{"uuid":"a"},{"uuid": "b"}]`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		recs, err := parseOktaPage(b)
		if err != nil {
			return
		}
		for _, r := range recs {
			if !json.Valid(r) || !bytes.Contains(b, r) {
				t.Fatalf("record %q is not valid JSON found in the page", r)
			}
		}
	})
}
