package worm

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/transparency-dev/tessera/api/layout"
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
			if !strings.HasPrefix(got[i].Reason, w) || got[i].Key != c.key || !got[i].Whole {
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

func TestCheckpointSize(t *testing.T) {
	root := "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
	for _, c := range []struct {
		in   string
		size uint64
		ok   bool
	}{
		{"example.com/log\n0\n" + root + "\n\n— example.com/log AAAA\n", 0, true},
		{"example.com/log\n600\n" + root + "\n", 600, true},
		{"example.com/log\n18446744073709551615\n" + root + "\n", 1<<64 - 1, true},
		{"example.com/log\n18446744073709551616\n" + root + "\n", 0, false},
		{"example.com/log\n0600\n" + root + "\n", 0, false},
		{"example.com/log\n-1\n" + root + "\n", 0, false},
		{"example.com/log\n+1\n" + root + "\n", 0, false},
		{"example.com/log\n 1\n" + root + "\n", 0, false},
		{"example.com/log\n\n" + root + "\n", 0, false},
		{"\n1\n" + root + "\n", 0, false},
		{"example.com/log\n1\n", 0, false},
		{"example.com/log\n1", 0, false},
		{"", 0, false},
		{"example.com/log\n1\n" + root + "\n" + strings.Repeat("x", maxCheckpoint), 0, false},
	} {
		size, err := CheckpointSize([]byte(c.in))
		if c.ok && (err != nil || size != c.size) || !c.ok && err == nil {
			t.Errorf("CheckpointSize(%.40q) = %d, %v; want %d, ok %v", c.in, size, err, c.size, c.ok)
		}
	}
}

// TestExpected: the full bundles and tiles a tree needs are listed as
// missing until seen; partial, non-canonical and out-of-tree paths count
// for nothing.
func TestExpected(t *testing.T) {
	for _, c := range []struct {
		size    uint64
		seen    []string
		missing []string
	}{
		{0, nil, nil},
		{255, []string{"tile/entries/000.p/255"}, nil},
		{256, nil, []string{"tile/entries/000", "tile/0/000"}},
		{256, []string{"tile/0/000", "tile/entries/000"}, nil},
		{600, []string{"tile/entries/000", "tile/0/000", "tile/0/001", "tile/entries/002.p/88", "tile/0/002.p/88"}, []string{"tile/entries/001"}},
		{600, []string{"tile/entries/0", "tile/entries/001/", "tile/0/x000/001", "tile/1/000", "tile/entries/002", "checkpoint", "tile/entries/001"},
			[]string{"tile/entries/000", "tile/0/000", "tile/0/001"}},
		{65536, nil, append(append(paths("tile/entries/", 256), paths("tile/0/", 256)...), "tile/1/000")},
		{256*1000 + 5, []string{"tile/entries/999", "tile/entries/x001/000"}, nil}, // checked below: 1000 bundles, 1000 + 3 tiles
	} {
		e := newExpected(c.size)
		for _, k := range c.seen {
			e.mark(k)
		}
		var got []string
		for k := range e.missing() {
			got = append(got, k)
		}
		if c.size == 256*1000+5 {
			if len(got) != 1000+1000+3-1 || slices.Contains(got, "tile/entries/999") || slices.Contains(got, "tile/entries/x001/000") ||
				!slices.Contains(got, "tile/entries/998") || !slices.Contains(got, "tile/0/999") || !slices.Contains(got, "tile/1/002") || slices.Contains(got, "tile/1/003") {
				t.Errorf("size %d: %d missing: %v…", c.size, len(got), got[:5])
			}
			continue
		}
		if !slices.Equal(got, c.missing) {
			t.Errorf("size %d, seen %v: missing %v, want %v", c.size, c.seen, got, c.missing)
		}
	}
}

func paths(dir string, n int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("%s%03d", dir, i))
	}
	return out
}

// FuzzCheckpointSize: CheckpointSize never panics, and a size it reads is
// the second line, printed back exactly.
func FuzzCheckpointSize(f *testing.F) {
	f.Add([]byte("example.com/log\n600\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n\n— example.com/log AAAA\n"))
	f.Add([]byte("example.com/log\n0600\nx\n"))
	f.Add([]byte("a\n18446744073709551616\nx\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		size, err := CheckpointSize(raw)
		if err != nil {
			return
		}
		if lines := strings.SplitN(string(raw), "\n", 3); len(lines) < 3 || lines[1] != strconv.FormatUint(size, 10) {
			t.Fatalf("CheckpointSize(%q) = %d", raw, size)
		}
	})
}

// FuzzParseFull: parseFull never panics, and a path it accepts is the
// canonical path of the full bundle or tile it names.
func FuzzParseFull(f *testing.F) {
	for _, s := range []string{"tile/entries/000", "tile/0/x001/234", "tile/entries/001.p/3", "tile/6/000", "tile/7/000", "tile/0/0", "checkpoint"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		k, n, ok := parseFull(p)
		if !ok {
			return
		}
		want := layout.EntriesPath(n, 0)
		if k > 0 {
			want = layout.TilePath(uint64(k-1), n, 0)
		}
		if k < 0 || k > 7 || p != want {
			t.Fatalf("parseFull(%q) = %d, %d: the canonical path is %q", p, k, n, want)
		}
	})
}
