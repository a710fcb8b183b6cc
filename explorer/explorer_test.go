package explorer_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/mod/sumdb/note"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stele-dev/stele/internal/cli"
	"github.com/stele-dev/stele/internal/headless"
	"github.com/stele-dev/stele/internal/steletest"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
	"github.com/stele-dev/stele/server"
)

var updateScreenshots = flag.Bool("update-screenshots", false, "rewrite docs/explorer-*.png from the test's browser")

func chromium(t *testing.T) string {
	p := headless.Find()
	if p == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("no Chromium: install Debian's chromium (.ci/services does)")
		}
		t.Skip("SKIPPING: no Chromium installed (apt-get install chromium, or set STELE_CHROMIUM)")
	}
	return p
}

// editingProxy serves target through a proxy that hands each successful
// JSON-object answer of the explorer's API to edit (with the request's
// path) and serves what edit leaves: a server lying about what it shows.
func editingProxy(t *testing.T, target string, edit func(path string, m map[string]any)) string {
	u, _ := url.Parse(target)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		resp, err := http.Get(u.ResolveReference(&url.URL{Path: r.URL.Path, RawQuery: r.URL.RawQuery}).String())
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		var m map[string]any
		if strings.HasPrefix(r.URL.Path, "/ui/api/") && resp.StatusCode == 200 && json.Unmarshal(body, &m) == nil {
			edit(r.URL.Path, m)
			body, _ = json.Marshal(m)
		}
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.Header().Del("Content-Length")
		w.WriteHeader(resp.StatusCode)
		w.Write(body)
	}))
	t.Cleanup(ts.Close)
	return ts.URL + "/"
}

// tamperingProxy serves the log through a proxy that flips one bit of the
// first inclusion-proof hash the explorer's API returns for an entry, and
// of the first event of a timeline.
func tamperingProxy(t *testing.T, target string) string {
	return editingProxy(t, target, func(path string, m map[string]any) {
		switch {
		case strings.HasPrefix(path, "/ui/api/entry/"):
			proof := m["proof"].([]any)
			h, _ := base64.StdEncoding.DecodeString(proof[0].(string))
			h[7] ^= 0x20
			proof[0] = base64.StdEncoding.EncodeToString(h)
		case strings.HasPrefix(path, "/ui/api/history"):
			incl := m["events"].([]any)[0].(map[string]any)["proof"].(map[string]any)["inclusion"].([]any)
			h, _ := hex.DecodeString(incl[0].(string))
			h[7] ^= 0x20
			incl[0] = hex.EncodeToString(h)
		}
	})
}

// checkpointTamperingProxy serves target's explorer with one bit of the
// root hash changed in every checkpoint it hands out (the signature left
// as it was).
func checkpointTamperingProxy(t *testing.T, target string) string {
	return editingProxy(t, target, func(path string, m map[string]any) {
		if path != "/ui/api/log" && !strings.HasPrefix(path, "/ui/api/entry/") {
			return
		}
		lines := strings.SplitN(m["checkpoint"].(string), "\n", 4) // origin, size, root, rest
		root, err := base64.StdEncoding.DecodeString(lines[2])
		if err != nil {
			t.Error(err)
			return
		}
		root[0] ^= 1
		lines[2] = base64.StdEncoding.EncodeToString(root)
		m["checkpoint"] = strings.Join(lines, "\n")
	})
}

// wait drops a poll's value.
func wait(a chromedp.Action[bool]) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := a(ctx, t)
		return err
	})
}

func lookupIndex(t *testing.T, ctx context.Context, base string, index int) (status, steps, event string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"ui/"),
		wait(chromedp.Poll[bool](`document.getElementById('cp-status').className.startsWith('banner')`, chromedp.WithPollingTimeout(20*time.Second))),
		chromedp.SendKeys("#index", fmt.Sprint(index)),
		chromedp.Click("#lookup button[type=submit]"),
		wait(chromedp.Poll[bool](`/Verified|FAILED/.test(document.getElementById('entry-status').textContent)`, chromedp.WithPollingTimeout(20*time.Second))),
	); err != nil {
		t.Fatal(err)
	}
	return pageState(t, ctx)
}

// lookupID looks an event up by (source, event_id) in the page at base.
func lookupID(t *testing.T, ctx context.Context, base, source, eventID string) (status, steps, event string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"ui/"),
		wait(chromedp.Poll[bool](`document.getElementById('cp-status').className.startsWith('banner')`, chromedp.WithPollingTimeout(20*time.Second))),
		chromedp.SendKeys("#source", source),
		chromedp.SendKeys("#event-id", eventID),
		chromedp.Click("#lookup-id button[type=submit]"),
		wait(chromedp.Poll[bool](`/Verified|FAILED|Not found|Lookup/.test(document.getElementById('entry-status').textContent)`, chromedp.WithPollingTimeout(20*time.Second))),
	); err != nil {
		t.Fatal(err)
	}
	return pageState(t, ctx)
}

// pageState reads the lookup's outcome, waiting for the payload when the
// entry verified.
func pageState(t *testing.T, ctx context.Context) (status, steps, event string) {
	t.Helper()
	get := func(js string) string {
		s, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	status = get(`document.getElementById('entry-status').textContent`)
	steps = get(`document.getElementById('proof-steps').innerText`)
	if strings.HasPrefix(status, "Verified") {
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.getElementById('event').textContent !== ''`, chromedp.WithPollingTimeout(20*time.Second))); err != nil {
			t.Fatal(err)
		}
	}
	event = get(`document.getElementById('event').innerText`)
	return
}

// TestExplorerInChromium serves the explorer from a real server whose
// checkpoints a real witness cosigns, and drives it in headless Chromium:
// a real proof verifies step by step, a tampered one is shown as failed,
// and the page passes basic accessibility checks.
func TestExplorerInChromium(t *testing.T) {
	exe := chromium(t)
	l := steletest.Start(t, true, server.Config{})
	var evs []*stelev1.Event
	for i := range 11 {
		id := fmt.Sprintf("a1b2c3d4-0000-4000-8000-%012d", i)
		evs = append(evs, &stelev1.Event{Source: "entra/00000000-0000-0000-0000-000000000001/audit", EventId: id,
			Kind: "directory.role.member.add", EventTime: timestamppb.New(time.Now().Add(-time.Minute)), Format: "entra.directoryAudit",
			Record: fmt.Appendf(nil, `{"id":%q,"activityDisplayName":"Add member to role","activityDateTime":"2026-11-25T10:00:00Z","result":"success","category":"RoleManagement","initiatedBy":{"user":{"userPrincipalName":"admin@contoso.example"}}}`, id)})
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := l.Client.Append(ctx, evs); err != nil {
		t.Fatal(err)
	}
	l.WaitSize(t, 11)

	bctx, stop := headless.New(context.Background(), exe)
	defer stop()
	if err := chromedp.Do(bctx, chromedp.EmulateViewport(900, 1000)); err != nil {
		t.Fatal(err)
	}

	status, steps, event := lookupIndex(t, bctx, l.URL, 6)
	if !strings.Contains(status, "Verified: entry 6 is in the log's tree of size 11") {
		t.Errorf("status: %q", status)
	}
	for _, want := range []string{"Ed25519 signature over the", "verifies (WebCrypto)", "leaf hash SHA-256(0x00", "step 1: sibling", "the computed root equals the checkpoint's root"} {
		if !strings.Contains(steps, want) {
			t.Errorf("steps lack %q:\n%s", want, steps)
		}
	}
	if strings.Contains(steps, "FAILED") {
		t.Errorf("a step failed:\n%s", steps)
	}
	if !strings.Contains(event, `"activityDisplayName":"Add member to role"`) || !strings.Contains(event, "Normalised event") {
		t.Errorf("event: %q", event)
	}
	page, err := chromedp.Run(bctx, chromedp.Evaluate[string](`document.body.innerText`))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Checkpoint verified: stele.localhost/log holds 11 entries", "w1", "11 events in the last 60 minutes"} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	// Each witness: whether it cosigned the latest checkpoint, and when it
	// last cosigned.
	row, err := chromedp.Run(bctx, chromedp.Evaluate[[]string](`[...document.getElementById('witnesses').tBodies[0].rows[0].cells].map(c => c.textContent)`))
	if err != nil || len(row) != 3 || row[0] != "w1" || row[1] != "yes" || !regexp.MustCompile(`^20\d\d-\d\d-\d\d \d\d:\d\d:\d\d`).MatchString(row[2]) {
		t.Errorf("the witness row: %q, %v; want w1, yes, its last cosigning time", row, err)
	}
	screenshot(t, bctx, "explorer-verified.png", "h-lookup")
	a11y(t, bctx)

	// By (source, event_id): found through the server's dedup index, then
	// verified exactly as a lookup by index.
	status, steps, event = lookupID(t, bctx, l.URL, evs[3].Source, evs[3].EventId)
	if !strings.Contains(status, "Verified: event "+evs[3].EventId+" of "+evs[3].Source+", entry 3 is in the log's tree of size 11") {
		t.Errorf("by event ID: status %q", status)
	}
	if !strings.Contains(steps, "the computed root equals the checkpoint's root") || strings.Contains(steps, "FAILED") {
		t.Errorf("by event ID: steps\n%s", steps)
	}
	if !strings.Contains(event, evs[3].EventId) || !strings.Contains(event, "Normalised event") {
		t.Errorf("by event ID: event %q", event)
	}
	if idx, _ := chromedp.Run(bctx, chromedp.Evaluate[string](`document.getElementById('index').value`)); idx != "3" {
		t.Errorf("by event ID: the index field shows %q, want 3", idx)
	}
	// An unknown (source, event_id): a clear not-found state, no proof.
	status, steps, event = lookupID(t, bctx, l.URL, evs[3].Source, "a1b2c3d4-0000-4000-8000-999999999999")
	if !strings.HasPrefix(status, "Not found: no event with source \""+evs[3].Source+"\" and event_id \"a1b2c3d4-0000-4000-8000-999999999999\" in the log") {
		t.Errorf("unknown event ID: status %q", status)
	}
	if steps != "" || event != "" {
		t.Errorf("unknown event ID: steps %q, event %q shown", steps, event)
	}
	if role, _ := chromedp.Run(bctx, chromedp.Evaluate[string](`document.getElementById('entry-status').getAttribute('role')`)); role != "alert" {
		t.Errorf("the not-found state is not announced: role %q", role)
	}
	screenshot(t, bctx, "explorer-not-found.png", "h-lookup")
	a11y(t, bctx)

	status, steps, _ = lookupIndex(t, bctx, tamperingProxy(t, l.URL), 6)
	if !strings.Contains(status, "Verification FAILED for entry 6") || !strings.Contains(steps, "✗ FAILED: the computed root") {
		t.Errorf("a tampered proof: status %q\n%s", status, steps)
	}
	if role, _ := chromedp.Run(bctx, chromedp.Evaluate[string](`document.getElementById('entry-status').getAttribute('role')`)); role != "alert" {
		t.Errorf("the failed state is not announced: role %q", role)
	}
	screenshot(t, bctx, "explorer-failed.png", "h-lookup")
	a11y(t, bctx)

	// A checkpoint whose signed text was altered (its root hash) fails its
	// signature check, both as the page's latest checkpoint and in a lookup.
	cpProxy := checkpointTamperingProxy(t, l.URL)
	status, steps, _ = lookupIndex(t, bctx, cpProxy, 6)
	if !strings.Contains(status, "Verification FAILED for entry 6") || !strings.Contains(steps, "✗ FAILED: the Ed25519 signature over the checkpoint text does not verify") {
		t.Errorf("a tampered checkpoint: status %q\n%s", status, steps)
	}
	if top, _ := chromedp.Run(bctx, chromedp.Evaluate[string](`document.getElementById('cp-status').textContent`)); !strings.HasPrefix(top, "Checkpoint verification FAILED") {
		t.Errorf("a tampered latest checkpoint: %q", top)
	}

	// The log key pinned in the page's address is what the page checks
	// against: the right one verifies; another key of the same name fails.
	openPinned := func(key string) (status, steps string) {
		t.Helper()
		if err := chromedp.Do(bctx, chromedp.Navigate(l.URL+"ui/?key="+url.QueryEscape(key)),
			wait(chromedp.Poll[bool](`document.getElementById('cp-status').className.startsWith('banner')`, chromedp.WithPollingTimeout(20*time.Second))),
		); err != nil {
			t.Fatal(err)
		}
		status, _ = chromedp.Run(bctx, chromedp.Evaluate[string](`document.getElementById('cp-status').textContent`))
		steps, _ = chromedp.Run(bctx, chromedp.Evaluate[string](`document.getElementById('cp-steps').innerText`))
		return status, steps
	}
	status, steps = openPinned(l.VKey)
	if !strings.HasPrefix(status, "Checkpoint verified") || !strings.Contains(steps, "pinned in this page's address (?key=), and the server reports the same") {
		t.Errorf("the log's own key pinned: %q\n%s", status, steps)
	}
	origin, _, _ := strings.Cut(l.VKey, "+")
	_, otherKey, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		t.Fatal(err)
	}
	status, steps = openPinned(otherKey)
	if !strings.HasPrefix(status, "Checkpoint verification FAILED") || !strings.Contains(steps, "the server reports another, which is not used") || !strings.Contains(steps, "✗ FAILED: no signature by "+origin) {
		t.Errorf("another key pinned: %q\n%s", status, steps)
	}
	// Unpinned, the page says whose key it used.
	lookupIndex(t, bctx, l.URL, 6)
	if s, _ := chromedp.Run(bctx, chromedp.Evaluate[string](`document.getElementById('cp-steps').innerText`)); !strings.Contains(s, "the log key is the one the server reports") {
		t.Errorf("unpinned: the steps do not say where the key came from:\n%s", s)
	}
}

// a11y checks accessibility basics: a language, one h1 and no skipped
// heading level, a label for every input, named buttons and links, charts
// with a text alternative, tables with a caption and headers with a scope,
// and text contrast of at least 4.5:1 (WCAG 2.1 AA).
func a11y(t *testing.T, ctx context.Context) {
	t.Helper()
	problems, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`(() => {
	  const p = [];
	  if (!document.documentElement.lang) p.push("no lang on <html>");
	  if (document.querySelectorAll("h1").length !== 1) p.push("not exactly one h1");
	  let prev = 0;
	  for (const h of document.querySelectorAll("h1,h2,h3,h4,h5,h6")) {
	    const n = +h.tagName[1];
	    if (n > prev + 1) p.push("heading level skipped at " + h.textContent);
	    prev = n;
	  }
	  for (const i of document.querySelectorAll("input,select,textarea")) {
	    if (!(i.labels && i.labels.length) && !i.getAttribute("aria-label")) p.push("input without a label: " + i.id);
	  }
	  for (const b of document.querySelectorAll("button")) if (!b.textContent.trim() && !b.getAttribute("aria-label")) p.push("unnamed button");
	  for (const s of document.querySelectorAll("svg")) if (s.getAttribute("role") !== "img" || !s.getAttribute("aria-label")) p.push("chart without a text alternative");
	  for (const th of document.querySelectorAll("th")) if (!th.getAttribute("scope")) p.push("th without scope");
	  for (const t of document.querySelectorAll("table")) if (!t.caption || !t.caption.textContent.trim()) p.push("table without a caption: " + t.id);
	  for (const a of document.querySelectorAll("a")) if (!a.textContent.trim() && !a.getAttribute("aria-label")) p.push("unnamed link");
	  if (!document.title) p.push("no title");
	  // Text contrast of every visible text element against its background
	  // (WCAG 2.1 AA: 4.5:1).
	  const rgb = (c) => (c.match(/[\d.]+/g) || []).map(Number);
	  const lum = ([r, g, b]) => [r, g, b].map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; })
	    .reduce((s, v, i) => s + v * [0.2126, 0.7152, 0.0722][i], 0);
	  const bg = (el) => {
	    for (; el; el = el.parentElement) {
	      const c = rgb(getComputedStyle(el).backgroundColor);
	      if (c.length === 3 || (c.length === 4 && c[3] > 0)) return c.slice(0, 3);
	    }
	    return [255, 255, 255];
	  };
	  for (const el of document.querySelectorAll("body *")) {
	    if (![...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim()) || !el.getClientRects().length) continue;
	    const a = lum(rgb(getComputedStyle(el).color)), b = lum(bg(el));
	    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
	    if (ratio < 4.5) p.push("contrast " + ratio.toFixed(2) + ":1 on <" + el.tagName.toLowerCase() + "> " + el.textContent.trim().slice(0, 40));
	  }
	  return p;
	})()`))
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) > 0 {
		t.Errorf("accessibility basics: %v", problems)
	}
}

// screenshot captures the viewport scrolled to the element with id at, and
// with -update-screenshots writes it to docs/name.
func screenshot(t *testing.T, ctx context.Context, name, at string) {
	t.Helper()
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById('`+at+`').scrollIntoView(), true`)); err != nil {
		t.Fatal(err)
	}
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Fatalf("screenshot is not a PNG")
	}
	if *updateScreenshots {
		if err := os.WriteFile("../docs/"+name, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestExplorerEventNeedsReader: on a server with an access policy, the
// explorer's event route authorises the browser's bearer token as gRPC
// GetEvent would: no token, or a token without the reader role, is refused;
// a reader token reads the record.
func TestExplorerEventNeedsReader(t *testing.T) {
	dir := t.TempDir()
	l := steletest.Start(t, false, server.Config{DataDir: dir})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rec := `{"id":"e-1","activityDisplayName":"Add member to role","result":"success"}`
	if _, err := l.Client.Append(ctx, []*stelev1.Event{{Source: "entra/t/audit", EventId: "e-1", Kind: "directory.role.member.add",
		EventTime: timestamppb.Now(), Format: "entra.directoryAudit", Record: []byte(rec)}}); err != nil {
		t.Fatal(err)
	}
	l.WaitSize(t, 1)
	l.Stop()

	hash := func(tok string) string { h := sha256.Sum256([]byte(tok)); return hex.EncodeToString(h[:]) }
	pol := filepath.Join(t.TempDir(), "auth.json")
	if err := os.WriteFile(pol, fmt.Appendf(nil, `{"identities":[
		{"name":"auditor","token_sha256":%q,"roles":["reader"]},
		{"name":"okta-reader","token_sha256":%q,"roles":["reader"],"read_sources":["okta/*"]},
		{"name":"collector","token_sha256":%q,"roles":["producer"],"sources":["entra/*/audit"]}]}`, hash("reader-token"), hash("okta-token"), hash("producer-token")), 0o600); err != nil {
		t.Fatal(err)
	}
	l = steletest.Start(t, false, server.Config{DataDir: dir, AuthPolicyFile: pol})
	getPath := func(path, token string) (int, string) {
		req, _ := http.NewRequest("GET", l.URL+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	get := func(token string) (int, string) { return getPath("ui/api/event/0", token) }
	if code, body := get(""); code != 401 || !strings.Contains(body, "Unauthenticated") {
		t.Errorf("no token: %d %s", code, body)
	}
	if code, body := get("wrong-token"); code != 401 || !strings.Contains(body, "not valid") {
		t.Errorf("unknown token: %d %s", code, body)
	}
	if code, body := get("producer-token"); code != 403 || !strings.Contains(body, "lacks the reader role") {
		t.Errorf("producer token: %d %s", code, body)
	}
	code, body := get("reader-token")
	var ev struct{ Record string }
	if err := json.Unmarshal([]byte(body), &ev); code != 200 || err != nil || ev.Record != rec {
		t.Errorf("reader token: %d %s", code, body)
	}

	// By (source, event_id) and subject timelines: the reader role too.
	lookup := "ui/api/lookup?source=entra/t/audit&event_id=e-1"
	for _, c := range []struct {
		path, token string
		code        int
		want        string
	}{
		{lookup, "", 401, "Unauthenticated"},
		{lookup, "producer-token", 403, "lacks the reader role"},
		{lookup, "okta-token", 403, `may not read payloads of source \"entra/t/audit\"`},
		{lookup, "reader-token", 200, `{"event_id":"e-1","index":0,"source":"entra/t/audit"}`},
		{"ui/api/lookup?source=entra/t/audit&event_id=e-2", "reader-token", 404, `NotFound: no event with source \"entra/t/audit\" and event_id \"e-2\" in the log`},
		{"ui/api/lookup?source=entra/t/audit", "reader-token", 400, "both source and event_id are required"},
		{"ui/api/history?subject=admin@contoso.example", "", 401, "Unauthenticated"},
		{"ui/api/history?subject=admin@contoso.example", "producer-token", 403, "lacks the reader role"},
		{"ui/api/history?subject=admin@contoso.example", "okta-token", 403, "a timeline reads the payload of every entry, so it needs the reader role on every source"},
		{"ui/api/history?subject=admin@contoso.example", "reader-token", 200, `"index_size":1`},
		{"ui/api/history?subject=", "reader-token", 400, "subject is required"},
	} {
		if code, body := getPath(c.path, c.token); code != c.code || !strings.Contains(body, c.want) {
			t.Errorf("%s with %q: %d %s, want %d and %s", c.path, c.token, code, body, c.code, c.want)
		}
	}
	// The proof side stays public: leaves hold no personal data.
	if resp, err := http.Get(l.URL + "ui/api/entry/0"); err != nil || resp.StatusCode != 200 {
		t.Errorf("entry without a token: %v %v", resp, err)
	}
}

// stele runs the stele CLI in-process and returns its standard output.
func stele(t *testing.T, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	if code := cli.Main(args, strings.NewReader(""), &out, &errb); code != 0 {
		t.Fatalf("stele %s: exit %d: %s", strings.Join(args, " "), code, errb.String())
	}
	return out.String()
}

// TestExplorerTimelineInChromium logs the scripted tenant of
// drift/testdata/scenario, asks the explorer for subjects' timelines in
// headless Chromium, and checks the rendered table row by row against
// `stele history --json` for the same log; a timeline link opens the
// entry's verified view.
func TestExplorerTimelineInChromium(t *testing.T) {
	exe := chromium(t)
	l := steletest.Start(t, false, server.Config{})
	stele(t, "submit", "--server", l.GRPC, "../drift/testdata/scenario/events.jsonl")
	l.WaitSize(t, 17)

	bctx, stop := headless.New(context.Background(), exe)
	defer stop()
	if err := chromedp.Do(bctx, chromedp.EmulateViewport(1100, 1000), chromedp.Navigate(l.URL+"ui/"),
		wait(chromedp.Poll[bool](`document.getElementById('cp-status').className.startsWith('banner')`, chromedp.WithPollingTimeout(20*time.Second))),
	); err != nil {
		t.Fatal(err)
	}
	type row struct{ Time, Entry, Kind, Source, As, Who, Outcome, Proof string }
	for _, subject := range []string{"bob@example.com", "00000000-0000-4000-8000-000000000070", "it.admin@example.com", "nobody@example.com"} {
		var want struct {
			Searched []string
			Events   []struct {
				Index               uint64
				Source, Kind, Actor string
				EventTime           string `json:"event_time"`
				As, Targets         []string
				Outcome, Problem    string
			}
		}
		if err := json.Unmarshal([]byte(stele(t, "history", "--log", l.URL, "--log-key", l.KeyFile, "--server", l.GRPC, "--subject", subject, "--json")), &want); err != nil {
			t.Fatal(err)
		}
		if err := chromedp.Do(bctx,
			wait(chromedp.Evaluate[bool](`document.getElementById('subject').value = '', true`)),
			chromedp.SendKeys("#subject", subject),
			chromedp.Click("#history button[type=submit]"),
			wait(chromedp.Poll[bool](`document.getElementById('history-status').className.startsWith('banner')`, chromedp.WithPollingTimeout(30*time.Second))),
		); err != nil {
			t.Fatal(err)
		}
		status, err := chromedp.Run(bctx, chromedp.Evaluate[string](`document.getElementById('history-status').textContent`))
		if err != nil {
			t.Fatal(err)
		}
		wantStatus := fmt.Sprintf("Timeline of %s: %d events, each inclusion proof verified in your browser against the checkpoint of size 17.", subject, len(want.Events))
		if status != wantStatus {
			t.Errorf("%s: status %q, want %q", subject, status, wantStatus)
		}
		rows, err := chromedp.Run(bctx, chromedp.Evaluate[[]row](`Array.from(document.querySelectorAll('#timeline tbody tr'), (tr) => {
		  const c = Array.from(tr.cells, (td) => td.textContent);
		  return {Time: c[0], Entry: c[1], Kind: c[2], Source: c[3], As: c[4], Who: c[5], Outcome: c[6], Proof: c[7]};
		})`))
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != len(want.Events) {
			t.Fatalf("%s: the page shows %d events, stele history %d", subject, len(rows), len(want.Events))
		}
		if subject == "bob@example.com" && len(rows) != 3 {
			t.Errorf("bob@example.com: %d events, docs/state.md shows 3", len(rows))
		}
		for i, w := range want.Events {
			wr := row{Time: strings.Replace(w.EventTime, "T", " ", 1), Entry: fmt.Sprintf("#%d", w.Index), Kind: w.Kind, Source: w.Source,
				As: strings.Join(w.As, "+"), Who: w.Actor + " → " + strings.Join(w.Targets, ", "), Outcome: strings.Join(slices.DeleteFunc([]string{w.Outcome, w.Problem}, func(s string) bool { return s == "" }), "; "),
				Proof: "✓ verified"}
			if rows[i] != wr {
				t.Errorf("%s: row %d:\n got %+v\nwant %+v", subject, i, rows[i], wr)
			}
		}
		caption, _ := chromedp.Run(bctx, chromedp.Evaluate[string](`document.getElementById('timeline').hidden ? '' : document.getElementById('timeline-caption').textContent`))
		if len(want.Events) > 0 && !strings.Contains(caption, "(searched: "+strings.Join(want.Searched, ", ")+")") {
			t.Errorf("%s: caption %q lacks the subjects searched %v", subject, caption, want.Searched)
		}
		if subject == "bob@example.com" {
			screenshot(t, bctx, "explorer-timeline.png", "h-history")
			a11y(t, bctx)
		}
	}

	// A server lying about one event's proof: that row and the timeline
	// are shown as failed.
	if err := chromedp.Do(bctx, chromedp.Navigate(tamperingProxy(t, l.URL)+"ui/"),
		wait(chromedp.Poll[bool](`document.getElementById('cp-status').className.startsWith('banner')`, chromedp.WithPollingTimeout(20*time.Second))),
		chromedp.SendKeys("#subject", "bob@example.com"),
		chromedp.Click("#history button[type=submit]"),
		wait(chromedp.Poll[bool](`document.getElementById('history-status').className.startsWith('banner')`, chromedp.WithPollingTimeout(30*time.Second))),
	); err != nil {
		t.Fatal(err)
	}
	status, err := chromedp.Run(bctx, chromedp.Evaluate[string](`document.getElementById('history-status').textContent + '|' + document.getElementById('history-status').getAttribute('role') + '|' +
		Array.from(document.querySelectorAll('#timeline tbody tr'), (tr) => tr.cells[7].textContent.slice(0, 9)).join(',')`))
	if err != nil {
		t.Fatal(err)
	}
	if want := "Timeline verification FAILED: 1 of 3 inclusion proofs did not verify.|alert|✗ FAILED:,✓ verifie,✓ verifie"; status != want {
		t.Errorf("a tampered timeline: %q, want %q", status, want)
	}

	// A timeline link opens that entry's verified view.
	if err := chromedp.Do(bctx, chromedp.Navigate(l.URL+"ui/"),
		wait(chromedp.Poll[bool](`document.getElementById('cp-status').className.startsWith('banner')`, chromedp.WithPollingTimeout(20*time.Second))),
		chromedp.SendKeys("#subject", "bob@example.com"),
		chromedp.Click("#history button[type=submit]"),
		wait(chromedp.Poll[bool](`document.getElementById('history-status').className.startsWith('banner')`, chromedp.WithPollingTimeout(30*time.Second))),
		chromedp.Click(`#timeline tbody tr:nth-child(2) a`),
		wait(chromedp.Poll[bool](`/Verified|FAILED/.test(document.getElementById('entry-status').textContent)`, chromedp.WithPollingTimeout(20*time.Second))),
	); err != nil {
		t.Fatal(err)
	}
	status, steps, event := pageState(t, bctx)
	if status != "Verified: entry 5 is in the log's tree of size 17, whose checkpoint the log signed." || strings.Contains(steps, "FAILED") {
		t.Errorf("the timeline's link: status %q\n%s", status, steps)
	}
	if !strings.Contains(event, "bob@example.com") {
		t.Errorf("the timeline's link: event %q", event)
	}
}

// TestExplorerTimelineExtends: the explorer's subject index follows the
// log: an event naming the subject logged after a first timeline request
// is in the next one, after the others.
func TestExplorerTimelineExtends(t *testing.T) {
	l := steletest.Start(t, false, server.Config{})
	stele(t, "submit", "--server", l.GRPC, "../drift/testdata/scenario/events.jsonl")
	l.WaitSize(t, 17)
	timeline := func() (size uint64, indexes []uint64) {
		resp, err := http.Get(l.URL + "ui/api/history?subject=BOB@example.com")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var tl struct {
			IndexSize uint64 `json:"index_size"`
			Events    []struct{ Index uint64 }
		}
		if err := json.NewDecoder(resp.Body).Decode(&tl); err != nil || resp.StatusCode != 200 {
			t.Fatalf("history: %d %v", resp.StatusCode, err)
		}
		for _, e := range tl.Events {
			indexes = append(indexes, e.Index)
		}
		return tl.IndexSize, indexes
	}
	if size, idx := timeline(); size != 17 || !slices.Equal(idx, []uint64{1, 5, 15}) {
		t.Fatalf("first timeline: size %d, events %v, want 17 and [1 5 15] (docs/state.md)", size, idx)
	}
	lines, err := os.ReadFile("../drift/testdata/scenario/events.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	// Bob's user.create again, as another event (another record id).
	line := strings.Split(string(lines), "\n")[1]
	again := strings.Replace(line, "00000000-0000-4000-8000-000000000502", "00000000-0000-4000-8000-000000000599", 1)
	if again == line {
		t.Fatal("the scenario's second line is not bob's user.create")
	}
	f := filepath.Join(t.TempDir(), "again.jsonl")
	if err := os.WriteFile(f, []byte(again+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	stele(t, "submit", "--server", l.GRPC, f)
	l.WaitSize(t, 18)
	if size, idx := timeline(); size != 18 || !slices.Equal(idx, []uint64{1, 5, 15, 17}) {
		t.Errorf("after one more event: size %d, events %v, want 18 and [1 5 15 17]", size, idx)
	}
}
