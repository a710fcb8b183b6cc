package report

import (
	"fmt"
	"html"
	"html/template"
	"math"
	"strings"
)

// Charts are inline SVG built here: no script, no external asset, and the
// numbers each bar stands for are in its <title> (and in the tables beside).

type bar struct {
	label string
	value float64
}

const (
	chartW, chartH = 720, 220
	padL, padB     = 56, 48
	padT, padR     = 16, 12
)

func svgOpen(b *strings.Builder, title string) {
	fmt.Fprintf(b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-label="%s"><title>%s</title>`,
		chartW, chartH, chartW, chartH, html.EscapeString(title), html.EscapeString(title))
}

func axisMax(m float64) float64 {
	if m <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(m)))
	for _, f := range []float64{1, 2, 5, 10} {
		if f*p >= m {
			return f * p
		}
	}
	return 10 * p
}

func fmtNum(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1e12 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.3g", v)
}

func yAxis(b *strings.Builder, top float64, unit string) {
	ih := float64(chartH - padT - padB)
	for i := 0; i <= 4; i++ {
		v := top * float64(i) / 4
		y := float64(padT) + ih - ih*float64(i)/4
		fmt.Fprintf(b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ccc" stroke-width="1"/>`, padL, chartW-padR, y, y)
		fmt.Fprintf(b, `<text x="%d" y="%.1f" font-size="11" text-anchor="end" fill="#333">%s%s</text>`, padL-6, y+4, fmtNum(v), unit)
	}
}

// barChart draws labelled bars.
func barChart(title, unit string, bars []bar) template.HTML {
	var b strings.Builder
	svgOpen(&b, title)
	m := 0.0
	for _, x := range bars {
		m = max(m, x.value)
	}
	top := axisMax(m)
	yAxis(&b, top, unit)
	iw := float64(chartW - padL - padR)
	ih := float64(chartH - padT - padB)
	n := max(len(bars), 1)
	slot := iw / float64(n)
	every := max(1, n/12) // at most about 12 x labels
	for i, x := range bars {
		h := ih * x.value / top
		xx := float64(padL) + slot*float64(i) + slot*0.1
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#2b5d8a"><title>%s: %s%s</title></rect>`,
			xx, float64(padT)+ih-h, slot*0.8, h, html.EscapeString(x.label), fmtNum(x.value), html.EscapeString(unit))
		if i%every == 0 {
			fmt.Fprintf(&b, `<text x="%.1f" y="%d" font-size="11" text-anchor="middle" fill="#333">%s</text>`,
				xx+slot*0.4, chartH-padB+16, html.EscapeString(x.label))
		}
	}
	if len(bars) == 0 {
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="13" text-anchor="middle">no data in the period</text>`, chartW/2, chartH/2)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// seriesColors tell witnesses apart (with the legend's names).
var seriesColors = []string{"#2b5d8a", "#b5462b", "#2f7d32", "#7a4b9a", "#8a6d1c"}

// pointChart draws one series of points per name over the x positions 0..n-1.
func pointChart(title, unit string, n int, names []string, ys map[string][]float64, xlabel func(int) string) template.HTML {
	var b strings.Builder
	svgOpen(&b, title)
	m := 0.0
	for _, v := range ys {
		for _, y := range v {
			if !math.IsNaN(y) {
				m = max(m, y)
			}
		}
	}
	top := axisMax(m)
	yAxis(&b, top, unit)
	iw := float64(chartW - padL - padR)
	ih := float64(chartH - padT - padB)
	slot := iw / float64(max(n, 1))
	for si, name := range names {
		col := seriesColors[si%len(seriesColors)]
		for i, y := range ys[name] {
			if math.IsNaN(y) {
				continue
			}
			cx := float64(padL) + slot*(float64(i)+0.5)
			cy := float64(padT) + ih - ih*max(y, 0)/top
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="4" fill="%s"><title>%s, %s: %s%s</title></circle>`,
				cx, cy, col, html.EscapeString(name), html.EscapeString(xlabel(i)), fmtNum(y), unit)
		}
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="10" height="10" fill="%s"/><text x="%d" y="%d" font-size="11" fill="#333">%s</text>`,
			padL+si*180, chartH-18, col, padL+si*180+14, chartH-9, html.EscapeString(name))
	}
	every := max(1, n/10)
	for i := 0; i < n; i += every {
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" font-size="11" text-anchor="middle" fill="#333">%s</text>`,
			float64(padL)+slot*(float64(i)+0.5), chartH-padB+16, html.EscapeString(xlabel(i)))
	}
	if n == 0 || len(names) == 0 {
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="13" text-anchor="middle">no cosigned checkpoint in the period</text>`, chartW/2, chartH/2)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

func (r *Report) chartPerDay() template.HTML {
	var bars []bar
	for _, d := range r.Entries.PerDay {
		bars = append(bars, bar{d.Day[5:], float64(d.Count)})
	}
	return barChart("Events admitted per day (UTC)", "", bars)
}

func (r *Report) chartDelay() template.HTML {
	var bars []bar
	for _, d := range r.Entries.Delay.Buckets {
		bars = append(bars, bar{d.Label, float64(d.Count)})
	}
	return barChart("Admission delay: events per delay range", "", bars)
}

func (r *Report) chartWitness() template.HTML {
	names := []string{}
	ys := map[string][]float64{}
	for _, w := range r.Witnesses {
		names = append(names, w.Name)
		ys[w.Name] = make([]float64, len(r.Checkpoints))
		for i := range ys[w.Name] {
			ys[w.Name][i] = math.NaN()
		}
	}
	for i, c := range r.Checkpoints {
		for _, s := range c.Cosigners {
			if v, ok := ys[s.Witness]; ok {
				v[i] = s.LatencySeconds
			}
		}
	}
	return pointChart("Witness latency: seconds from a checkpoint's last admission to each cosignature", "s", len(r.Checkpoints), names, ys,
		func(i int) string { return fmt.Sprintf("size %d", r.Checkpoints[i].Size) })
}
