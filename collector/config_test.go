package collector_test

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stele-dev/stele/collector"
)

// TestDocumentedConfigsParse loads every JSON example of docs/collector.md
// with the strict loader.
func TestDocumentedConfigsParse(t *testing.T) {
	b, err := os.ReadFile("../docs/collector.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```json\n(.*?)```").FindAllStringSubmatch(string(b), -1)
	kinds := map[string]bool{}
	for i, m := range blocks {
		cfg, err := collector.ParseConfig(strings.NewReader(m[1]))
		if err != nil {
			t.Errorf("example %d of docs/collector.md: %v\n%s", i+1, err, m[1])
			continue
		}
		for _, s := range cfg.Sources {
			kinds[map[bool]string{true: "entra_storage"}[s.EntraStorage != nil]+map[bool]string{true: "cloudtrail_s3"}[s.CloudTrail != nil]+
				map[bool]string{true: "entra_eventhub"}[s.EventHub != nil]+map[bool]string{true: "entra_graph"}[s.Graph != nil]+
				map[bool]string{true: "okta_systemlog"}[s.Okta != nil]] = true
		}
	}
	for _, k := range []string{"entra_storage", "entra_eventhub", "entra_graph", "okta_systemlog", "cloudtrail_s3"} {
		if !kinds[k] {
			t.Errorf("docs/collector.md has no example config for %s", k)
		}
	}
}

// TestConfigErrors: the loader refuses what it cannot run, saying why.
func TestConfigErrors(t *testing.T) {
	const src = `"sources": [{"name": "a", "entra_storage": {"auth": "connection_string", "connection_string_env": "X"}}]`
	for _, tc := range []struct{ cfg, want string }{
		{`{"server": {"address": "h:1"}, "state_dir": "/s", ` + src + `, "extra": 1}`, `unknown field "extra"`},
		{`{"state_dir": "/s", ` + src + `}`, "server.address is required"},
		{`{"server": {"address": "h:1"}, ` + src + `}`, "state_dir is required"},
		{`{"server": {"address": "h:1"}, "state_dir": "/s", "sources": []}`, "sources is empty"},
		{`{"server": {"address": "h:1"}, "state_dir": "/s", "sources": [{"name": "a"}]}`, "give exactly one of"},
		{`{"server": {"address": "h:1"}, "state_dir": "/s", "sources": [{"name": "A/b", "entra_storage": {"auth": "sas"}}]}`, "use 1 to 64 lower-case"},
		{`{"server": {"address": "h:1"}, "state_dir": "/s", "sources": [{"name": "a", "entra_storage": {"auth": "sas"}}]}`, "auth sas needs account_url"},
		{`{"server": {"address": "h:1"}, "state_dir": "/s", "sources": [{"name": "a", "entra_storage": {"auth": "password"}}]}`, `auth "password": use`},
		{`{"server": {"address": "h:1"}, "state_dir": "/s", "sources": [{"name": "a", "cloudtrail_s3": {}}]}`, "bucket is required"},
		{`{"server": {"address": "h:1"}, "state_dir": "/s", "sources": [{"name": "a", "entra_eventhub": {"brokers": ["x"], "connection_string_env": "X"}}]}`, "is not host:port"},
		{`{"server": {"address": "h:1"}, "state_dir": "/s", "drain_timeout": 30, ` + src + `}`, `a duration is a string`},
		{`{"server": {"address": "h:1"}, "state_dir": "/s", ` + src[:len(src)-1] + `, {"name": "a", "cloudtrail_s3": {"bucket": "b"}}]}`, "is used twice"},
		{"{\n\"server\": {\"address\": 7}}", "line 2"},
		{`{"server": {"address": "h:1"}, "state_dir": "/s", "sources": [{"name": "g", "entra_graph": {"auth": "client_secret", "client_id": "c", "client_secret_env": "X"}}]}`, "tenant is required"},
		{`{"server": {"address": "h:1"}, "state_dir": "/s", "sources": [{"name": "g", "entra_graph": {"tenant": "t", "auth": "client_secret", "client_id": "c"}}]}`, "needs client_secret_file or client_secret_env"},
		{`{"server": {"address": "h:1"}, "state_dir": "/s", "sources": [{"name": "g", "entra_graph": {"tenant": "t", "auth": "azure_identity", "logs": ["riskyUsers"]}}]}`, `"riskyUsers" is not directoryAudits or signIns`},
		{`{"server": {"address": "h:1"}, "state_dir": "/s", "sources": [{"name": "g", "entra_graph": {"tenant": "t", "auth": "azure_identity", "endpoint": "http://graph"}}]}`, "give an https:// URL"},
		{`{"server": {"address": "h:1"}, "state_dir": "/s", "sources": [{"name": "g", "entra_graph": {"tenant": "t", "auth": "azure_identity", "overlap": "10s"}}]}`, "overlap is under 1m"},
		{`{"server": {"address": "h:1"}, "state_dir": "/s", "sources": [{"name": "g", "entra_graph": {"tenant": "t", "auth": "azure_identity", "top": 5000}}]}`, "top is 1 to 1000"},
		{`{"server": {"address": "h:1"}, "state_dir": "/s", "sources": [{"name": "o", "okta_systemlog": {"org_url": "https://x.okta.com/api/v1", "auth": "api_token", "api_token_env": "X"}}]}`, "without a path"},
		{`{"server": {"address": "h:1"}, "state_dir": "/s", "sources": [{"name": "o", "okta_systemlog": {"org_url": "https://x.okta.com", "auth": "private_key_jwt", "client_id": "c"}}]}`, "needs client_id and private_key_file"},
		{`{"server": {"address": "h:1"}, "state_dir": "/s", "sources": [{"name": "o", "okta_systemlog": {"org_url": "https://x.okta.com", "auth": "oauth"}}]}`, `auth "oauth": use api_token or private_key_jwt`},
		{`{"server": {"address": "h:1"}, "state_dir": "/s", "sources": [{"name": "o", "okta_systemlog": {"org_url": "https://x.okta.com", "auth": "api_token", "api_token_env": "X", "dpop": true}}]}`, "dpop needs auth private_key_jwt"},
	} {
		_, err := collector.ParseConfig(strings.NewReader(tc.cfg))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("config %s: error %v, want one containing %q", tc.cfg, err, tc.want)
		}
	}
}
