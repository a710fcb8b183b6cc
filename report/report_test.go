package report_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stele-dev/stele/internal/cli"
	"github.com/stele-dev/stele/internal/headless"
	"github.com/stele-dev/stele/internal/steletest"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
	"github.com/stele-dev/stele/report"
	"github.com/stele-dev/stele/server"
)

func stele(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := cli.Main(args, strings.NewReader(""), &out, &errb)
	return out.String(), errb.String(), code
}

func ev(source, id string, seq uint64, age time.Duration) *stelev1.Event {
	rec := fmt.Sprintf(`{"id":%q,"activityDisplayName":"Add member to role","result":"success"}`, id)
	return &stelev1.Event{Source: source, SourceSeq: seq, EventId: id, Kind: "directory.role.member.add",
		EventTime: timestamppb.New(time.Now().Add(-age)), Format: "entra.directoryAudit", Record: []byte(rec)}
}

func appendAll(t *testing.T, l *steletest.Log, evs ...*stelev1.Event) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rs, err := l.Client.Append(ctx, evs)
	if err != nil {
		t.Fatal(err)
	}
	var last uint64
	for i, r := range rs {
		if r.Code != 0 {
			t.Fatalf("event %d refused: %s", i, r.Message)
		}
		last = r.Index
	}
	return last
}

// TestReportInChromium makes a report for a real period of a real server's
// log, cosigned by a real witness, with an erasure and a source_seq gap;
// renders it in headless Chromium and reads the rendered page; and checks
// that verify-report accepts it and refuses edited copies.
func TestReportInChromium(t *testing.T) {
	chromium := headless.Find()
	if chromium == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("no Chromium: install Debian's chromium (.ci/services does)")
		}
		t.Skip("SKIPPING: no Chromium installed (apt-get install chromium, or set STELE_CHROMIUM)")
	}
	l := steletest.Start(t, true, server.Config{})
	cpDir := t.TempDir()
	saveCP := func(name string, cp []byte) {
		if err := os.WriteFile(filepath.Join(cpDir, name), cp, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// Before the period: one entry, its checkpoint seen.
	appendAll(t, l, ev("entra/t1/audit", "before-1", 0, time.Minute))
	saveCP("a", l.WaitSize(t, 1))
	// Cosignature timestamps are whole seconds: start the period on one.
	from := time.Now().UTC().Truncate(time.Second).Add(time.Second)
	time.Sleep(time.Until(from))

	// The period: two sources, a gap in source_seq (3 is missing), delays
	// from seconds to hours, an erasure; checkpoints seen along the way.
	appendAll(t, l, ev("entra/t1/audit", "p-1", 1, 2*time.Second), ev("entra/t1/audit", "p-2", 2, 30*time.Second),
		ev("entra/t1/audit", "p-4", 4, 3*time.Hour))
	saveCP("b", l.WaitSize(t, 4))
	idx := appendAll(t, l, ev("okta/acme/system", "o-1", 0, 5*time.Minute), ev("okta/acme/system", "o-2", 0, 2*time.Minute))
	saveCP("c", l.WaitSize(t, idx+1))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := l.Client.Erase(ctx, idx, "GDPR Art. 17 request", "DSR-2026-0042"); err != nil {
		t.Fatal(err)
	}
	saveCP("d", l.WaitSize(t, idx+2))
	time.Sleep(1100 * time.Millisecond)
	to := time.Now().UTC()
	time.Sleep(1100 * time.Millisecond)

	// After the period: not counted.
	appendAll(t, l, ev("entra/t1/audit", "after-1", 5, time.Second))
	l.WaitSize(t, idx+3)

	out := filepath.Join(t.TempDir(), "report")
	key := filepath.Join(t.TempDir(), "operator.key")
	stdout, stderr, code := stele(t, "report", "--log", l.URL, "--log-key", l.KeyFile, "--policy", l.PolicyFile,
		"--from", from.Format(time.RFC3339Nano), "--to", to.Format(time.RFC3339Nano), "--out", out,
		"--checkpoints", cpDir, "--signing-key", key, "--server", l.GRPC, "--pdf", "on")
	if code != 0 {
		t.Fatalf("stele report: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "6 entries, 3 checkpoints seen") {
		t.Errorf("report summary: %s", stdout)
	}

	// The twin.
	var r report.Report
	twin, err := os.ReadFile(filepath.Join(out, report.JSONFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(twin, &r); err != nil {
		t.Fatal(err)
	}
	if r.Entries.Count != 6 || len(r.Entries.Sources) != 3 {
		t.Errorf("entries: %d in %d sources, want 6 in 3 (entra, okta, erasure)", r.Entries.Count, len(r.Entries.Sources))
	}
	if s := r.Entries.Sources[0]; s.Source != "entra/t1/audit" || s.Count != 3 || s.Gaps != 1 || len(s.GapRanges) != 1 || s.GapRanges[0].FirstMissing != 3 {
		t.Errorf("entra source: %+v, want 3 entries and source_seq 3 missing", s)
	}
	if len(r.Erasures) != 1 || r.Erasures[0].Reason != "GDPR Art. 17 request" || r.Erasures[0].Reference != "DSR-2026-0042" || *r.Erasures[0].ErasedIndex != idx {
		t.Errorf("erasures: %+v", r.Erasures)
	}
	if k := r.Consistency; k == nil || !k.Verified || k.FromSize != 4 || k.ToSize != idx+2 || k.ProofHashes == 0 {
		t.Errorf("consistency: %+v", k)
	}
	if len(r.Checkpoints) != 3 || len(r.Checkpoints[0].Cosigners) != 1 || r.Checkpoints[0].Cosigners[0].Witness != "w1" {
		t.Errorf("checkpoints: %+v", r.Checkpoints)
	}
	if d := r.Entries.Delay; d.Count != 6 || d.Max < 3*3600-60 || d.P50 < 1 {
		t.Errorf("delay: %+v", d)
	}
	for _, c := range r.Controls {
		if c.Status != report.Evidenced {
			t.Errorf("control %s %s: %s", c.Framework, c.ID, c.Status)
		}
	}

	// The page: self-contained, and what Chromium renders of it.
	page, err := os.ReadFile(filepath.Join(out, report.HTMLFile))
	if err != nil {
		t.Fatal(err)
	}
	if m := regexp.MustCompile(`(?i)(src|href)\s*=\s*"([^#"][^"]*)"|<script|<link|url\(`).Find(page); m != nil {
		t.Errorf("the page is not self-contained: %s", m)
	}
	bctx, stop := headless.New(context.Background(), chromium)
	defer stop()
	abs, _ := filepath.Abs(filepath.Join(out, report.HTMLFile))
	if err := chromedp.Do(bctx, chromedp.Navigate("file://"+abs)); err != nil {
		t.Fatal(err)
	}
	text, err := chromedp.Run(bctx, chromedp.Evaluate[string](`document.body.innerText`))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Evidence report for the identity audit log " + r.Log.Origin,
		r.Log.KeyHash, "w1",
		fmt.Sprintf("Verified: the tree of size %d", idx+2),
		fmt.Sprintf("extends the tree of size 4 (root %s…) with a consistency proof of %d hashes", r.Consistency.FromRoot[:16], r.Consistency.ProofHashes),
		"3–3 (between entries 2 and 3)",
		"GDPR Art. 17 request", "DSR-2026-0042",
		"A.8.15", "A.8.16", "A.5.33", "CC7.2", "CC7.3", "§164.312(b)", "§164.312(c)(1)", "Art. 5(1)(f)", "Art. 17",
		"stele audit --log " + l.URL,
		"Not covered: ", "refuses deletion (WORM retention): check it with stele retention-check",
		"SHA-256 of report.json: " + report.Digest(twin),
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the rendered page lacks %q", want)
		}
	}
	// Every claim's evidence link lands on a section of the page.
	broken, err := chromedp.Run(bctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('a[href^="#"]')].map(a => a.getAttribute('href')).filter(h => !document.getElementById(h.slice(1)))`))
	if err != nil {
		t.Fatal(err)
	}
	if len(broken) > 0 {
		t.Errorf("links to no section: %v", broken)
	}
	// The three charts, each with its marks: a bar per day and per delay
	// range, a point per cosignature.
	for _, c := range []struct {
		label, mark string
		min         int
	}{
		{"Events admitted per day (UTC)", "rect", 1},
		{"Admission delay: events per delay range", "rect", 3},
		{"Witness latency: seconds from a checkpoint's last admission to each cosignature", "circle", len(r.Checkpoints)},
	} {
		n, err := chromedp.Run(bctx, chromedp.Evaluate[int](fmt.Sprintf(`(() => { const cs = [...document.querySelectorAll('svg[role=img]')].filter(s => s.getAttribute('aria-label') === %q); return cs.length === 1 ? cs[0].querySelectorAll(%q).length : -1 })()`, c.label, c.mark)))
		if err != nil || n < c.min {
			t.Errorf("chart %q: %d %s marks (-1: not exactly one such chart), want at least %d; %v", c.label, n, c.mark, c.min, err)
		}
	}
	if pdf, err := os.ReadFile(filepath.Join(out, report.PDFFile)); err != nil || !bytes.HasPrefix(pdf, []byte("%PDF-")) {
		t.Errorf("report.pdf: %v, %.8q", err, pdf)
	}

	// The seal.
	if o, e, code := stele(t, "verify-report", "--key", key+".pub", out); code != 0 || !strings.Contains(o, "report OK: report.json, report.html, report.pdf") {
		t.Fatalf("verify-report: exit %d\n%s%s", code, o, e)
	}
	for _, f := range []string{report.JSONFile, report.HTMLFile, report.PDFFile} {
		edited := filepath.Join(t.TempDir(), "edited")
		if err := os.CopyFS(edited, os.DirFS(out)); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(filepath.Join(edited, f))
		b = bytes.Replace(b, []byte("6"), []byte("7"), 1)
		if err := os.WriteFile(filepath.Join(edited, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
		o, e, code := stele(t, "verify-report", "--key", key+".pub", edited)
		if code != 1 || !strings.Contains(e, f+" was changed after it was sealed") {
			t.Errorf("verify-report of an edited %s: exit %d\n%s%s", f, code, o, e)
		}
	}
	other := filepath.Join(t.TempDir(), "other.key")
	otherOut := t.TempDir()
	if o, e, code := stele(t, "report", "--log", l.URL, "--log-key", l.KeyFile, "--from", "2026-01-01", "--to", "2026-01-02", "--out", otherOut, "--signing-key", other, "--pdf", "off"); code != 0 {
		t.Fatalf("a report without a PDF: exit %d\n%s%s", code, o, e)
	}
	if _, e, code := stele(t, "verify-report", "--key", other+".pub", out); code != 1 || !strings.Contains(e, "signature does not verify") {
		t.Errorf("verify-report with another operator's key: exit %d, %s", code, e)
	}
	// A PDF dropped into a report sealed without one is refused, not ignored.
	if o, e, code := stele(t, "verify-report", "--key", other+".pub", otherOut); code != 0 || !strings.Contains(o, "report OK: report.json, report.html sealed by") {
		t.Fatalf("verify-report of a report without a PDF: exit %d\n%s%s", code, o, e)
	}
	if err := os.WriteFile(filepath.Join(otherOut, report.PDFFile), []byte("%PDF-1.4 not the report"), 0o644); err != nil {
		t.Fatal(err)
	}
	if o, e, code := stele(t, "verify-report", "--key", other+".pub", otherOut); code != 1 || !strings.Contains(e, "report.pdf is in the report directory but the seal does not cover it") {
		t.Errorf("verify-report with an unsealed PDF added: exit %d\n%s%s", code, o, e)
	}
}
