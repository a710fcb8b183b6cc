package worm

import (
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

func TestParse(t *testing.T) {
	day := 24 * time.Hour
	for _, c := range []struct {
		in   string
		mode types.ObjectLockRetentionMode
		d    time.Duration
		str  string
	}{
		{"governance:36h", types.ObjectLockRetentionModeGovernance, 36 * time.Hour, "governance:36h0m0s"},
		{"compliance:7y", types.ObjectLockRetentionModeCompliance, 7 * 365 * day, "compliance:2555d"},
		{"COMPLIANCE:30d", types.ObjectLockRetentionModeCompliance, 30 * day, "compliance:30d"},
		{"governance:1s", types.ObjectLockRetentionModeGovernance, time.Second, "governance:1s"},
	} {
		r, err := Parse(c.in)
		if err != nil || r.Mode != c.mode || r.Period != c.d || r.String() != c.str {
			t.Errorf("Parse(%q) = %+v %q, %v", c.in, r, r.String(), err)
		}
	}
	for _, bad := range []string{"", "governance", "governance:", "legal:7y", "compliance:-1h", "compliance:0s", "compliance:7", "compliance:7x",
		"compliance:d", "compliance:1.5y", "compliance:99999999999d", ":7y", "governance:500ms"} {
		if r, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted: %+v", bad, r)
		}
	}
}

func TestIsLogObject(t *testing.T) {
	for _, c := range []struct {
		prefix, key string
		want        bool
	}{
		{"", "tile/0/000", true},
		{"", "tile/entries/001.p/3", true},
		{"", "checkpoint", false},
		{"", ".state/treeState", false},
		{"logs/a", "logs/a/tile/1/000", true},
		{"/logs/a/", "logs/a/tile/1/000", true},
		{"logs/a", "logs/a/checkpoint", false},
		{"logs/a", "logs/b/tile/0/000", false},
		{"logs/a", "tile/0/000", false},
		{"logs/a", "logs/atile/0/000", false},
	} {
		if got := IsLogObject(c.prefix, c.key); got != c.want {
			t.Errorf("IsLogObject(%q, %q) = %v", c.prefix, c.key, got)
		}
	}
}
