package main

import (
	"fmt"
	"math"
	"strings"
)

// point is one measurement: x snapshots, y seconds.
type point struct{ x, y float64 }

// series is one line of the plot.
type series struct {
	name   string
	sys    system
	dashed bool
	points []point
}

var seriesColor = [numSystems]string{"#7f7f7f", "#1f77b4", "#d62728"}

// walkPlot draws the series on log-log axes as a self-contained SVG.
func walkPlot(ss []series) string {
	const (
		width, height            = 760, 460
		left, right, top, bottom = 78, 190, 46, 62
	)
	pw, ph := float64(width-left-right), float64(height-top-bottom)
	xmin, xmax, ymin, ymax := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	for _, s := range ss {
		for _, p := range s.points {
			if p.x <= 0 || p.y <= 0 {
				continue
			}
			xmin, xmax = math.Min(xmin, p.x), math.Max(xmax, p.x)
			ymin, ymax = math.Min(ymin, p.y), math.Max(ymax, p.y)
		}
	}
	if math.IsInf(xmin, 1) {
		xmin, xmax, ymin, ymax = 1000, 100000, 0.1, 10
	}
	// Whole decades around the data.
	lx0, lx1 := math.Floor(math.Log10(xmin)), math.Ceil(math.Log10(xmax))
	ly0, ly1 := math.Floor(math.Log10(ymin)), math.Ceil(math.Log10(ymax))
	if lx1 == lx0 {
		lx1++
	}
	if ly1 == ly0 {
		ly1++
	}
	px := func(x float64) float64 { return float64(left) + (math.Log10(x)-lx0)/(lx1-lx0)*pw }
	py := func(y float64) float64 { return float64(top) + (ly1-math.Log10(y))/(ly1-ly0)*ph }

	var sb strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&sb, format, a...) }
	w(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		width, height, width, height)
	w(`<rect width="%d" height="%d" fill="white"/>`+"\n", width, height)
	w(`<text x="%d" y="24" font-size="15" font-weight="bold">Whole-tree walk (getdents + lstat of every entry), median</text>`+"\n", left)
	// Grid and ticks.
	for e := lx0; e <= lx1; e++ {
		x := px(math.Pow(10, e))
		w(`<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/>`+"\n", x, top, x, height-bottom)
		w(`<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", x, height-bottom+18, thousands(int(math.Pow(10, e))))
	}
	for e := ly0; e <= ly1; e++ {
		for _, m := range []float64{1, 2, 5} {
			v := m * math.Pow(10, e)
			if e == ly1 && m > 1 {
				break
			}
			y := py(v)
			stroke := "#ddd"
			if m != 1 {
				stroke = "#f0f0f0"
			}
			w(`<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s"/>`+"\n", left, y, width-right, y, stroke)
			w(`<text x="%d" y="%.1f" text-anchor="end" dominant-baseline="middle">%s</text>`+"\n", left-6, y, tickLabel(v))
		}
	}
	w(`<rect x="%d" y="%d" width="%.0f" height="%.0f" fill="none" stroke="#333"/>`+"\n", left, top, pw, ph)
	w(`<text x="%.1f" y="%d" text-anchor="middle">store size (snapshots, log scale)</text>`+"\n", float64(left)+pw/2, height-18)
	w(`<text transform="translate(18 %.1f) rotate(-90)" text-anchor="middle">walk time (seconds, log scale)</text>`+"\n", float64(top)+ph/2)
	// Lines.
	for _, s := range ss {
		color := seriesColor[s.sys]
		dash := ""
		if s.dashed {
			dash = ` stroke-dasharray="6 4"`
		}
		var pts []string
		for _, p := range s.points {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(p.x), py(p.y)))
		}
		w(`<polyline points="%s" fill="none" stroke="%s" stroke-width="2"%s/>`+"\n", strings.Join(pts, " "), color, dash)
		for _, p := range s.points {
			fill := color
			if s.dashed {
				fill = "white"
			}
			w(`<circle cx="%.1f" cy="%.1f" r="3.5" fill="%s" stroke="%s" stroke-width="1.5"><title>%s: %s snapshots, %s</title></circle>`+"\n",
				px(p.x), py(p.y), fill, color, s.name, thousands(int(p.x)), secs(p.y))
		}
	}
	// Legend.
	lx, ly := width-right+16, top+8
	for i, s := range ss {
		y := ly + i*20
		dash := ""
		if s.dashed {
			dash = ` stroke-dasharray="6 4"`
		}
		w(`<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"%s/>`+"\n", lx, y, lx+28, y, seriesColor[s.sys], dash)
		w(`<text x="%d" y="%d" dominant-baseline="middle">%s</text>`+"\n", lx+36, y, s.name)
	}
	w("</svg>\n")
	return sb.String()
}

// tickLabel formats an axis value in seconds.
func tickLabel(v float64) string {
	switch {
	case v >= 1 && v == math.Round(v):
		return thousands(int(v)) + " s"
	case v >= 1:
		return fmt.Sprintf("%.3g s", v)
	default:
		return fmt.Sprintf("%.3g ms", v*1000)
	}
}
