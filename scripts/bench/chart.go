package main

import (
	"fmt"
	"html"
	"math"
	"strings"
)

// chartSVG draws, for the throughput, p99 latency, idle memory and trickle (CPU per second, RSS) rows, each broker's median ratio
// to the reference as a bar with its range as a whisker, and a line at 1.0×. Plain SVG written
// here: no plotting tool needed.
func (res *results) chartSVG() string {
	var rows []rowKey
	for _, k := range res.Rows {
		switch k.Metric {
		case mThroughput, mP99, mRSS, mCPUPerSecond, mBrokerRSS:
			rows = append(rows, k)
		}
	}
	ref, others := res.Brokers[0], res.Brokers[1:]
	colors := []string{"#d62728", "#ff7f0e", "#1f77b4", "#2ca02c"}
	const (
		labelW = 300
		plotW  = 420
		barH   = 7
		top    = 62
	)
	rowH := barH*len(others) + 10
	xmax := 2.0
	for _, k := range rows {
		for _, br := range others {
			if s := res.ratio(k, br, ref); s.Max > xmax {
				xmax = math.Ceil(s.Max*2) / 2
			}
		}
	}
	xmax = min(xmax, 6)
	x := func(v float64) float64 { return labelW + min(v, xmax)/xmax*plotW }
	height := top + rowH*len(rows) + 30
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="11">`+"\n", labelW+plotW+50, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="10" y="16" font-size="13" font-weight="bold">Ratio to %s per round: bar = median, whisker = min–max</text>`+"\n", html.EscapeString(ref))
	fmt.Fprintf(&b, `<text x="10" y="28">throughput: higher is better; latency and memory: lower is better; bars past %.0f× are cut and labelled</text>`+"\n", xmax)
	for i, br := range others {
		lx := 10 + i*180
		fmt.Fprintf(&b, `<rect x="%d" y="36" width="12" height="10" fill="%s"/><text x="%d" y="45">%s</text>`+"\n", lx, colors[i%len(colors)], lx+16, html.EscapeString(br))
	}
	// Grid every 0.5×, the 1.0× line bold.
	for v := 0.0; v <= xmax+1e-9; v += 0.5 {
		w, c := "0.5", "#ccc"
		if v == 1 {
			w, c = "1.5", "#000"
		}
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s" stroke-width="%s"/>`+"\n", x(v), top-4, x(v), top+rowH*len(rows), c, w)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%.1f×</text>`+"\n", x(v), top+rowH*len(rows)+14, v)
	}
	for i, k := range rows {
		y0 := top + i*rowH
		label := fmt.Sprintf("%s — %s", k.Case, k.Metric.Name)
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end">%s</text>`+"\n", labelW-6, y0+rowH/2+3, html.EscapeString(label))
		for j, br := range others {
			s := res.ratio(k, br, ref)
			if math.IsNaN(s.Median) {
				continue
			}
			y := y0 + 4 + j*barH
			fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"><title>%s: %s</title></rect>`+"\n",
				labelW, y, x(s.Median)-labelW, barH-1, colors[j%len(colors)], html.EscapeString(br), html.EscapeString(fmtRatio(s)))
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#333"/>`+"\n", x(s.Min), float64(y)+float64(barH)/2, x(s.Max), float64(y)+float64(barH)/2)
			if s.Median > xmax {
				fmt.Fprintf(&b, `<text x="%.1f" y="%d" font-size="9">%.1f×</text>`+"\n", x(xmax)+3, y+barH-1, s.Median)
			}
		}
	}
	b.WriteString("</svg>\n")
	return b.String()
}
