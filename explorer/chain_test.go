package explorer_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stele-dev/stele/internal/headless"
	"github.com/stele-dev/stele/internal/logkey"
	"github.com/stele-dev/stele/internal/steletest"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
	"github.com/stele-dev/stele/server"
)

// chainState loads the page at base and returns the chain section's
// frozen and predecessor banners and its steps, once they are shown.
func chainState(t *testing.T, ctx context.Context, base, ready string) (frozen, pred, steps string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"ui/"),
		wait(chromedp.Poll[bool](`document.getElementById('`+ready+`').className.startsWith('banner')`, chromedp.WithPollingTimeout(20*time.Second))),
	); err != nil {
		page, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
		t.Fatalf("%v\n%s", err, page)
	}
	get := func(js string) string {
		s, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	return get(`document.getElementById('frozen-status').textContent`), get(`document.getElementById('pred-status').textContent`),
		get(`document.getElementById('chain-steps').innerText`)
}

// TestExplorerChainInChromium: a frozen log's explorer shows, verified in
// the browser from the signed freeze statement, that the log is frozen,
// its final size and its successor (origin and URL); a statement altered
// on the way is shown as failed; the successor's explorer, configured with
// its predecessor, names it and verifies that the predecessor's statement
// names it as the successor.
func TestExplorerChainInChromium(t *testing.T) {
	exe := chromium(t)
	dirA, dirB := t.TempDir(), t.TempDir()
	keyA, err := logkey.LoadOrCreate(dirA, "a.stele.test/log", "", logkey.MLDSAAuto)
	if err != nil {
		t.Fatal(err)
	}
	keyB, err := logkey.LoadOrCreate(dirB, "b.stele.test/log", "", logkey.MLDSAAuto)
	if err != nil {
		t.Fatal(err)
	}
	a := steletest.Start(t, false, server.Config{DataDir: dirA})
	var evs []*stelev1.Event
	for _, id := range []string{"e1", "e2", "e3"} {
		evs = append(evs, &stelev1.Event{Source: "app/demo", EventId: id, Kind: "user.signin", EventTime: timestamppb.Now(), Format: "json", Record: []byte(`{"user":"alice"}`)})
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rs, err := a.Client.Append(ctx, evs)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if r.Code != 0 {
			t.Fatalf("append: %d %s", r.Code, r.Message)
		}
	}
	a.WaitSize(t, 3)
	a.Stop()
	const succURL = "https://b.stele.test/log/"
	if _, err := server.Freeze(ctx, server.Config{DataDir: dirA, CheckpointInterval: 100 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)}, server.Successor{Key: keyB.VKey, URL: succURL}); err != nil {
		t.Fatal(err)
	}
	a = steletest.Start(t, false, server.Config{DataDir: dirA}) // frozen: read-only by itself
	b := steletest.Start(t, false, server.Config{DataDir: dirB, PredecessorKey: keyA.VKey, PredecessorURL: a.URL})

	bctx, stop := headless.New(context.Background(), exe)
	defer stop()
	if err := chromedp.Do(bctx, chromedp.EmulateViewport(900, 1000)); err != nil {
		t.Fatal(err)
	}
	frozen, _, steps := chainState(t, bctx, a.URL, "frozen-status")
	if want := "Frozen: verified, this log ends at size 3 and takes no more entries. Its successor is b.stele.test/log at " + succURL + "."; frozen != want {
		t.Errorf("frozen log: %q, want %q", frozen, want)
	}
	for _, want := range []string{"byte log's freeze statement text verifies (WebCrypto)", "it freezes log a.stele.test/log", "final size 3",
		"its successor is b.stele.test/log, with a key of that name", "the final tree is the verified checkpoint's (size 3)"} {
		if !strings.Contains(steps, want) {
			t.Errorf("steps lack %q:\n%s", want, steps)
		}
	}
	if strings.Contains(steps, "FAILED") {
		t.Errorf("a step failed:\n%s", steps)
	}
	page, _ := chromedp.Run(bctx, chromedp.Evaluate[string](`document.getElementById('frozen-facts').innerText`))
	for _, want := range []string{"Successor origin", "b.stele.test/log", keyB.VKey, succURL} {
		if !strings.Contains(page, want) {
			t.Errorf("the frozen log's facts lack %q:\n%s", want, page)
		}
	}
	screenshot(t, bctx, "explorer-frozen.png", "h-chain")
	a11y(t, bctx)

	// A server (or a proxy) that alters the statement: the browser says so.
	frozen, _, steps = chainState(t, bctx, alteringFreeze(t, a.URL), "frozen-status")
	if !strings.HasPrefix(frozen, "Freeze statement verification FAILED") || !strings.Contains(steps, "✗ FAILED: the Ed25519 signature over the log's freeze statement text does not verify") {
		t.Errorf("an altered freeze statement: %q\n%s", frozen, steps)
	}

	// The successor names its predecessor, verified.
	frozen, pred, steps := chainState(t, bctx, b.URL, "pred-status")
	if want := "Predecessor: verified, a.stele.test/log at " + a.URL + " is frozen at size 3 and names this log as its successor."; pred != want {
		t.Errorf("successor: %q, want %q\n%s", pred, want, steps)
	}
	if frozen != "" {
		t.Errorf("the open successor is shown frozen: %q", frozen)
	}
	a11y(t, bctx)

	// A predecessor that names another successor is refused.
	c := steletest.Start(t, false, server.Config{PredecessorKey: keyA.VKey, PredecessorURL: a.URL})
	_, pred, _ = chainState(t, bctx, c.URL, "pred-status")
	if !strings.HasPrefix(pred, "Predecessor a.stele.test/log: verification FAILED: it names b.stele.test/log, not this log") {
		t.Errorf("a log the predecessor does not name: %q", pred)
	}
}

// alteringFreeze serves the log through a proxy that changes the final
// size in the freeze statement the explorer's API returns.
func alteringFreeze(t *testing.T, target string) string {
	return editingProxy(t, target, func(path string, m map[string]any) {
		if path == "/ui/api/log" {
			m["frozen"] = strings.Replace(m["frozen"].(string), "\nsize 3\n", "\nsize 2\n", 1)
		}
	})
}
