package audit_test

import (
	"context"
	"flag"
	"testing"
	"time"

	"github.com/stele-dev/stele/audit"
)

var benchEntries = flag.Int("audit-bench-entries", 200000, "entries in the log BenchmarkAudit builds")

// BenchmarkAudit builds a real Tessera POSIX log of small leaf v1 entries,
// serves it over loopback HTTP with internal/tiles and audits all of it.
//
//	go test ./audit/ -run '^$' -bench Audit -benchtime 3x
func BenchmarkAudit(b *testing.B) {
	k := newKey(b)
	dir := b.TempDir()
	start := time.Now()
	appendEntries(b, dir, k, cleanEntries(b, 0, *benchEntries))
	b.Logf("built a log of %d entries in %s", *benchEntries, time.Since(start).Round(time.Millisecond))
	url := serve(b, dir)
	var read uint64
	var secs float64
	for b.Loop() {
		rep, _, err := audit.Run(context.Background(), audit.Config{LogURL: url, Verifier: k.verifier})
		if err != nil || !rep.OK() {
			b.Fatalf("audit: %v %+v", err, rep.Failures)
		}
		read += rep.EntriesRead
		secs += rep.Seconds
	}
	b.ReportMetric(float64(read)/secs, "entries/s")
}
