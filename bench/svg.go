package bench

import (
	"fmt"
	"html"
	"math"
	"strings"
)

// Series is one line of a chart.
type Series struct {
	Name   string
	Color  string
	Points [][2]float64 // x, y
}

// LineChart renders series as a self-contained SVG line chart with axes,
// ticks and a legend. Empty series are skipped; with no point at all the
// chart says so instead of drawing empty axes.
func LineChart(title, xLabel, yLabel string, series []Series) string {
	const (
		w, h                     = 760, 320
		left, right, top, bottom = 72, 16, 34, 44
	)
	pw, ph := float64(w-left-right), float64(h-top-bottom)
	minX, maxX, maxY := math.Inf(1), math.Inf(-1), 0.0
	n := 0
	for _, s := range series {
		for _, p := range s.Points {
			if math.IsNaN(p[1]) || math.IsInf(p[1], 0) {
				continue
			}
			minX, maxX = math.Min(minX, p[0]), math.Max(maxX, p[0])
			maxY = math.Max(maxY, p[1])
			n++
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`+"\n", w, h, w, h)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", w, h)
	fmt.Fprintf(&b, `<text x="%d" y="20" font-size="14" font-weight="bold">%s</text>`+"\n", left, html.EscapeString(title))
	if n == 0 {
		fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#666">no data</text></svg>`+"\n", left, top+int(ph/2))
		return b.String()
	}
	if maxX <= minX {
		maxX = minX + 1
	}
	maxY = niceCeil(maxY)
	if maxY == 0 {
		maxY = 1
	}
	px := func(x float64) float64 { return float64(left) + (x-minX)/(maxX-minX)*pw }
	py := func(y float64) float64 { return float64(top) + ph - y/maxY*ph }
	// Grid and y ticks.
	for i := 0; i <= 5; i++ {
		y := maxY * float64(i) / 5
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#e5e5e5"/>`+"\n", left, w-right, py(y), py(y))
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", left-6, py(y)+4, human(y))
	}
	// X ticks at round multiples of a 1/2/5 step.
	step := math.Max(niceCeil((maxX-minX)/6), 1e-9)
	for x := math.Ceil(minX/step) * step; x <= maxX+step*1e-9; x += step {
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="#333"/>`+"\n", px(x), px(x), h-bottom, h-bottom+4)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", px(x), h-bottom+16, human(x))
	}
	fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="#333"/>`+"\n", left, w-right, h-bottom, h-bottom)
	fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="#333"/>`+"\n", left, left, top, h-bottom)
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">%s</text>`+"\n", left+int(pw/2), h-8, html.EscapeString(xLabel))
	fmt.Fprintf(&b, `<text transform="translate(14,%d) rotate(-90)" text-anchor="middle">%s</text>`+"\n", top+int(ph/2), html.EscapeString(yLabel))
	lx := left + 8
	for _, s := range series {
		if len(s.Points) == 0 {
			continue
		}
		var pts strings.Builder
		for _, p := range s.Points {
			if math.IsNaN(p[1]) || math.IsInf(p[1], 0) {
				continue
			}
			fmt.Fprintf(&pts, "%.1f,%.1f ", px(p[0]), py(p[1]))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.6" points="%s"/>`+"\n", s.Color, strings.TrimSpace(pts.String()))
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="12" height="3" fill="%s"/><text x="%d" y="%d">%s</text>`+"\n", lx, top+2, s.Color, lx+16, top+7, html.EscapeString(s.Name))
		lx += 24 + 7*len(s.Name)
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 0
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

// human prints v with k/M suffixes.
func human(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 1e6:
		return trimZero(fmt.Sprintf("%.2f", v/1e6)) + "M"
	case a >= 1e3:
		return trimZero(fmt.Sprintf("%.1f", v/1e3)) + "k"
	case a >= 10 || a == 0:
		return fmt.Sprintf("%.0f", v)
	default:
		return trimZero(fmt.Sprintf("%.2f", v))
	}
}

func trimZero(s string) string {
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}
