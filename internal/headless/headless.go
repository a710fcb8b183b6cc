// Package headless finds and starts headless Chromium through chromedp, for
// the report's PDF and the browser tests of the report and the explorer.
package headless

import (
	"context"
	"os"
	"os/exec"

	"github.com/chromedp/chromedp"
)

// Find returns the path of a Chromium (or Chrome) binary: $STELE_CHROMIUM
// if set, else the first of chromium, chromium-browser, google-chrome,
// google-chrome-stable and headless-shell on $PATH; "" if none.
func Find() string {
	if p := os.Getenv("STELE_CHROMIUM"); p != "" {
		return p
	}
	for _, n := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless-shell"} {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	return ""
}

// New starts headless Chromium at execPath and returns a browser context
// (a tab) on it; cancel closes the browser. The sandbox is off, as it
// cannot run as root in a container; only trusted local pages are opened.
func New(ctx context.Context, execPath string) (context.Context, context.CancelFunc) {
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(execPath),
		chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1200, 900),
	)
	actx, cancelA := chromedp.NewExecAllocator(ctx, opts...)
	bctx, cancelB := chromedp.NewContext(actx)
	return bctx, func() { cancelB(); cancelA() }
}
