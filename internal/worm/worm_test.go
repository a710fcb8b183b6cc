package worm

import (
	"strings"
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
		{"compliance:100y", types.ObjectLockRetentionModeCompliance, 36500 * day, "compliance:36500d"},
		{"compliance:106751d", types.ObjectLockRetentionModeCompliance, 106751 * day, "compliance:106751d"},
	} {
		r, err := Parse(c.in)
		if err != nil || r.Mode != c.mode || r.Period != c.d || r.String() != c.str {
			t.Errorf("Parse(%q) = %+v %q, %v", c.in, r, r.String(), err)
		}
	}
	for _, bad := range []string{"", "governance", "governance:", "legal:7y", "compliance:-1h", "compliance:0s", "compliance:7", "compliance:7x",
		"compliance:d", "compliance:1.5y", "compliance:1000y", "compliance:106752d", "governance:4294967295y", "compliance:99999999999d", ":7y", "governance:500ms"} {
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

// TestJudgeBucket: only a bucket with Object Lock that keeps versions is
// accepted; each refusal says what to run.
func TestJudgeBucket(t *testing.T) {
	for _, c := range []struct {
		locked     bool
		versioning types.BucketVersioningStatus
		want       string // "" accepted
	}{
		{true, types.BucketVersioningStatusEnabled, ""},
		{false, types.BucketVersioningStatusEnabled, "--object-lock-enabled-for-bucket"},
		{false, "", "does not have S3 Object Lock enabled"},
		{true, types.BucketVersioningStatusSuspended, "versioning: Suspended"},
		{true, "", "versioning: never enabled"},
	} {
		err := judgeBucket("b", c.locked, c.versioning)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("judgeBucket(locked %v, %q) = %v, want %q", c.locked, c.versioning, err, c.want)
		}
	}
}

// TestJudgeKey: a full tile or bundle whose current version is a delete
// marker, or with versions of different content, is reported; a partial
// one deleted by Tessera's garbage collection is not.
func TestJudgeKey(t *testing.T) {
	v := func(id, etag string, latest bool) version { return version{id: id, etag: etag, latest: latest} }
	dm := func(id string, latest bool) version { return version{id: id, latest: latest, deleteMarker: true} }
	for _, c := range []struct {
		key  string
		vs   []version
		want []string
	}{
		{"p/tile/0/000", []version{v("1", "a", true)}, nil},
		{"p/tile/0/000", []version{v("2", "a", true), v("1", "a", false)}, nil}, // the same bytes again
		{"p/tile/0/000", []version{dm("2", true), v("1", "a", false)}, []string{"deleted: the current version is a delete marker"}},
		{"p/tile/0/000", []version{v("3", "a", true), dm("2", false), v("1", "a", false)}, nil}, // restored
		{"p/tile/entries/001", []version{v("2", "b", true), v("1", "a", false)}, []string{"rewritten: 2 versions with different content"}},
		{"p/tile/entries/001", []version{dm("3", true), v("2", "b", false), v("1", "a", false)}, []string{"deleted", "rewritten"}},
		{"p/tile/0/000.p/7", []version{dm("2", true), v("1", "a", false)}, nil},
	} {
		got := judgeKey(c.key, c.vs)
		if len(got) != len(c.want) {
			t.Errorf("judgeKey(%q, %v) = %d problems, want %d", c.key, c.vs, len(got), len(c.want))
			continue
		}
		for i, w := range c.want {
			if !strings.HasPrefix(got[i].Reason, w) || got[i].Key != c.key {
				t.Errorf("judgeKey(%q, %v)[%d] = %+v, want %q", c.key, c.vs, i, got[i], w)
			}
		}
	}
}

// TestJudgeRetention: missing, weaker and shorter retention are reported,
// with the minute of slack.
func TestJudgeRetention(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	gov, comp := Retention{types.ObjectLockRetentionModeGovernance, time.Hour}, Retention{types.ObjectLockRetentionModeCompliance, time.Hour}
	for _, c := range []struct {
		mode  string
		until time.Time
		r     Retention
		want  string
	}{
		{"GOVERNANCE", at.Add(time.Hour), gov, ""},
		{"COMPLIANCE", at.Add(time.Hour), gov, ""},
		{"COMPLIANCE", at.Add(time.Hour), comp, ""},
		{"GOVERNANCE", at.Add(time.Hour - Slack), gov, ""},
		{"GOVERNANCE", at.Add(time.Hour - Slack - time.Second), gov, "retained until 2026-01-01T00:58:59Z, 1s short of 1h0m0s"},
		{"GOVERNANCE", at.Add(time.Hour), comp, "mode GOVERNANCE, compliance required"},
		{"", time.Time{}, gov, "no retention"},
		{"GOVERNANCE", time.Time{}, gov, "no retention"},
	} {
		pr := judgeRetention(&Problem{Key: "k", LastModified: at, Mode: c.mode, RetainUntil: c.until}, c.r)
		if c.want == "" && pr != nil || c.want != "" && (pr == nil || pr.Reason != c.want) {
			t.Errorf("judgeRetention(%s until %v, %s) = %+v, want %q", c.mode, c.until, c.r, pr, c.want)
		}
	}
}

// FuzzParse: Parse never panics, accepts only a governance or compliance
// retention of a second or more, and what it accepts prints as a string
// it parses back to the same retention.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"governance:36h", "compliance:7y", "COMPLIANCE:30d", "legal:7y", "compliance:", "governance:500ms", "compliance:99999999999d", "compliance:1.5y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := Parse(s)
		if err != nil {
			return
		}
		if r.Mode != types.ObjectLockRetentionModeGovernance && r.Mode != types.ObjectLockRetentionModeCompliance || r.Period < time.Second || r.Period > time.Duration(maxDays)*24*time.Hour {
			t.Fatalf("Parse(%q) accepted %+v", s, r)
		}
		back, err := Parse(r.String())
		if err != nil || back != r {
			t.Fatalf("Parse(%q) = %+v, printed %q, parsed back as %+v, %v", s, r, r.String(), back, err)
		}
	})
}
