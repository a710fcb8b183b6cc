package audit_test

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/stele-dev/stele/audit"
	"github.com/stele-dev/stele/internal/testlog"
)

var (
	benchEntries = flag.Int("audit-bench-entries", 200000, "entries in the log BenchmarkAudit builds")
	benchDir     = flag.String("audit-bench-dir", "", "BenchmarkAudit keeps its log in this directory and reuses it on the next run (so a CPU profile shows the audit, not the build)")
)

// BenchmarkAudit builds a real Tessera POSIX log of small leaf v1 entries,
// serves it over loopback HTTP with internal/tiles and audits all of it.
//
//	go test ./audit/ -run '^$' -bench Audit -benchtime 3x
//	go test ./audit/ -run '^$' -bench Audit -benchtime 10x -audit-bench-dir /tmp/auditlog -cpuprofile cpu.prof
func BenchmarkAudit(b *testing.B) {
	dir, v := benchLog(b)
	url := serve(b, dir)
	var read uint64
	var secs float64
	cpu0 := cpuTime()
	for b.Loop() {
		rep, _, err := audit.Run(context.Background(), audit.Config{LogURL: url, Verifier: v})
		if err != nil || !rep.OK() {
			b.Fatalf("audit: %v %+v", err, rep.Failures)
		}
		read += rep.EntriesRead
		secs += rep.Seconds
	}
	b.ReportMetric(float64(read)/secs, "entries/s")
	// The process's CPU time per entry (the audit and the handler serving
	// it): what the machine's other load moves least.
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(read), "cpu-ns/entry")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchLog returns the directory of BenchmarkAudit's log and its verifier:
// a fresh log, or with -audit-bench-dir the one kept there by an earlier
// run (its verifier key is kept next to it, outside the served paths).
func benchLog(b *testing.B) (string, note.Verifier) {
	dir := *benchDir
	if dir == "" {
		dir = b.TempDir()
	} else if vkey, err := os.ReadFile(filepath.Join(dir, ".bench-vkey")); err == nil {
		v, err := note.NewVerifier(string(vkey))
		if err != nil {
			b.Fatal(err)
		}
		b.Logf("reusing the log of %d entries in %s", checkpointSize(b, dir), dir)
		return dir, v
	}
	k := testlog.NewKey(b, origin)
	start := time.Now()
	testlog.Append(b, dir, k.Signer, cleanEntries(b, 0, *benchEntries), nil)
	b.Logf("built a log of %d entries in %s", *benchEntries, time.Since(start).Round(time.Millisecond))
	if *benchDir != "" {
		if err := os.WriteFile(filepath.Join(dir, ".bench-vkey"), []byte(k.VKey), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	return dir, k.Verifier
}
