package report

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/stele-dev/stele/internal/headless"
)

// Write writes dir/report.json and dir/report.html (creating dir), and,
// when chromium is a Chromium binary (see headless.Find), dir/report.pdf
// printed from the HTML by headless Chromium.
func Write(ctx context.Context, r *Report, dir, chromium string) error {
	twin, err := r.JSON()
	if err != nil {
		return err
	}
	page, err := RenderHTML(r, twin)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for name, b := range map[string][]byte{JSONFile: twin, HTMLFile: page} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return err
		}
	}
	os.Remove(filepath.Join(dir, PDFFile)) // never leave a stale PDF beside a new report
	if chromium == "" {
		return nil
	}
	pdf, err := PrintPDF(ctx, chromium, filepath.Join(dir, HTMLFile))
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, PDFFile), pdf, 0o644)
}

// PrintPDF prints the HTML file at path to PDF (A4) with headless Chromium.
func PrintPDF(ctx context.Context, chromium, path string) ([]byte, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	bctx, stop := headless.New(ctx, chromium)
	defer stop()
	if err := chromedp.Do(bctx, chromedp.Navigate("file://"+abs)); err != nil {
		return nil, fmt.Errorf("opening the report in %s: %w", chromium, err)
	}
	pdf, err := chromedp.Run(bctx, chromedp.PrintToPDF(chromedp.PDFPaper(chromedp.PaperA4), chromedp.PDFPrintBackground()))
	if err != nil {
		return nil, fmt.Errorf("printing the report to PDF with %s: %w", chromium, err)
	}
	return pdf, nil
}
