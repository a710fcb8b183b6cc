package report

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"time"
)

//go:embed report.html.tmpl
var htmlTemplate string

var tmpl = template.Must(template.New("report").Funcs(template.FuncMap{
	"anchor": claimAnchor,
	"ts": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"tsp": func(t *time.Time) string {
		if t == nil {
			return "never in the period"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"secs": secs,
	"short": func(s string) string {
		if len(s) > 16 {
			return s[:16] + "…"
		}
		return s
	},
	"statusClass": func(s string) string {
		switch s {
		case Evidenced:
			return "ok"
		case Exception:
			return "bad"
		default:
			return "na"
		}
	},
	"deref": func(p *uint64) string {
		if p == nil {
			return "—"
		}
		return fmt.Sprint(*p)
	},
	"boolp": func(p *bool) string {
		switch {
		case p == nil:
			return "no policy"
		case *p:
			return "yes"
		default:
			return "NO"
		}
	},
}).Parse(htmlTemplate))

// Digest is the hex SHA-256 of b, as the report and its seal name files.
func Digest(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// RenderHTML renders the report as one self-contained HTML page: inline
// CSS and SVG, no script and no external asset. twin is the report's JSON
// encoding (Report.JSON), whose SHA-256 the page shows.
func RenderHTML(r *Report, twin []byte) ([]byte, error) {
	var b bytes.Buffer
	err := tmpl.Execute(&b, struct {
		*Report
		TwinSHA256                            string
		ChartPerDay, ChartDelay, ChartWitness template.HTML
	}{r, Digest(twin), r.chartPerDay(), r.chartDelay(), r.chartWitness()})
	if err != nil {
		return nil, fmt.Errorf("rendering the report: %w", err)
	}
	return b.Bytes(), nil
}
