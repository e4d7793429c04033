package loadgen

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"strings"
)

// series is one latency histogram to plot.
type series struct {
	name, color string
	snap        *HistogramSnapshot
}

// binsPerDecade sets the plot's resolution: each bar spans a factor of 10^(1/10).
const binsPerDecade = 10

// WriteSVG plots the mover and opponent latency histograms as an SVG image:
// latency on a log scale across, moves per bin up.
func (r *Report) WriteSVG(w io.Writer) error {
	sub := fmt.Sprintf("mover p50 %s p99 %s max %s · opponent p50 %s p99 %s max %s · %.0f moves/s",
		fmtDur(r.Mover.P50), fmtDur(r.Mover.P99), fmtDur(r.Mover.Max),
		fmtDur(r.Opponent.P50), fmtDur(r.Opponent.P99), fmtDur(r.Opponent.Max), r.MovesPerSec)
	return writeSVG(w, r.Title(), sub, []series{
		{"mover", "#1f77b4", r.MoverHist},
		{"opponent", "#d62728", r.OpponentHist},
	})
}

func writeSVG(w io.Writer, title, subtitle string, ss []series) error {
	const (
		width, height            = 860, 480
		left, right, top, bottom = 80, 30, 70, 60
		plotW, plotH             = width - left - right, height - top - bottom
	)
	// Find the decades the data spans, in microseconds.
	lo, hi := math.Inf(1), 0.0
	for _, s := range ss {
		if s.snap == nil {
			continue
		}
		for i, c := range s.snap.Counts {
			if c == 0 {
				continue
			}
			v := binValue(s.snap, i)
			lo, hi = math.Min(lo, v), math.Max(hi, v)
		}
	}
	if hi == 0 {
		lo, hi = 100, 1000
	}
	loDec, hiDec := int(math.Floor(math.Log10(lo))), int(math.Floor(math.Log10(hi)))+1
	nbins := (hiDec - loDec) * binsPerDecade
	bins := make([][]uint64, len(ss))
	var top1 uint64
	for k, s := range ss {
		bins[k] = make([]uint64, nbins)
		if s.snap == nil {
			continue
		}
		for i, c := range s.snap.Counts {
			if c == 0 {
				continue
			}
			b := int(math.Floor((math.Log10(binValue(s.snap, i)) - float64(loDec)) * binsPerDecade))
			b = min(max(b, 0), nbins-1)
			bins[k][b] += c
			top1 = max(top1, bins[k][b])
		}
	}
	yMax, yStep := niceScale(top1)
	xAt := func(b float64) float64 { return left + b*plotW/float64(nbins) }
	yAt := func(c float64) float64 { return top + plotH - c*plotH/yMax }

	var buf bytes.Buffer
	fmt.Fprintf(&buf, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(&buf, `<rect width="%d" height="%d" fill="white"/>`+"\n", width, height)
	fmt.Fprintf(&buf, `<text x="%d" y="24" text-anchor="middle" font-size="15" font-weight="bold">%s</text>`+"\n", width/2, esc(title))
	fmt.Fprintf(&buf, `<text x="%d" y="44" text-anchor="middle" fill="#555">%s</text>`+"\n", width/2, esc(subtitle))
	// Grid and y axis.
	for y := 0.0; y <= yMax+yStep/2; y += yStep {
		fmt.Fprintf(&buf, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", left, left+plotW, yAt(y), yAt(y))
		fmt.Fprintf(&buf, `<text x="%d" y="%.1f" text-anchor="end" dominant-baseline="middle">%s</text>`+"\n", left-6, yAt(y), fmtCount(y))
	}
	// x axis: a tick and label per decade.
	for d := loDec; d <= hiDec; d++ {
		x := xAt(float64((d - loDec) * binsPerDecade))
		fmt.Fprintf(&buf, `<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="#999"/>`+"\n", x, x, top+plotH, top+plotH+5)
		fmt.Fprintf(&buf, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", x, top+plotH+18, decadeLabel(d))
	}
	fmt.Fprintf(&buf, `<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="#333"/>`+"\n", left, left+plotW, top+plotH, top+plotH)
	fmt.Fprintf(&buf, `<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="#333"/>`+"\n", left, left, top, top+plotH)
	fmt.Fprintf(&buf, `<text x="%d" y="%d" text-anchor="middle">latency (log scale, %d bins per decade)</text>`+"\n", left+plotW/2, height-14, binsPerDecade)
	fmt.Fprintf(&buf, `<text transform="translate(20 %d) rotate(-90)" text-anchor="middle">moves per bin</text>`+"\n", top+plotH/2)
	// Each series as a filled step outline.
	for k, s := range ss {
		var path strings.Builder
		fmt.Fprintf(&path, "M%.1f %.1f", xAt(0), yAt(0))
		for b, c := range bins[k] {
			fmt.Fprintf(&path, " L%.1f %.1f L%.1f %.1f", xAt(float64(b)), yAt(float64(c)), xAt(float64(b+1)), yAt(float64(c)))
		}
		fmt.Fprintf(&path, " L%.1f %.1f Z", xAt(float64(nbins)), yAt(0))
		fmt.Fprintf(&buf, `<path d="%s" fill="%s" fill-opacity="0.25" stroke="%s" stroke-width="1.5"/>`+"\n", path.String(), s.color, s.color)
		ly := top + 14 + 18*k
		fmt.Fprintf(&buf, `<rect x="%d" y="%d" width="14" height="10" fill="%s" fill-opacity="0.5" stroke="%s"/>`+"\n", left+plotW-150, ly-9, s.color, s.color)
		var n uint64
		if s.snap != nil {
			n = s.snap.N
		}
		fmt.Fprintf(&buf, `<text x="%d" y="%d">%s (%d)</text>`+"\n", left+plotW-130, ly, esc(s.name), n)
	}
	buf.WriteString("</svg>\n")
	if _, err := w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("write svg: %w", err)
	}
	return nil
}

// binValue is the middle of fine bucket i in microseconds, at least 1 so
// that it has a logarithm.
func binValue(s *HistogramSnapshot, i int) float64 {
	low, width := bucketRange(i)
	return math.Max(float64(low)+float64(width-1)/2, 1)
}

// niceScale returns an axis top at or above n and a step of 1, 2 or 5 times a
// power of ten that divides it into at most 6 parts.
func niceScale(n uint64) (top, step float64) {
	if n == 0 {
		return 1, 1
	}
	raw := float64(n) / 5
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step = mag * 10
	for _, m := range []float64{1, 2, 5} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	step = math.Max(step, 1)
	return math.Ceil(float64(n)/step) * step, step
}

func decadeLabel(d int) string {
	switch {
	case d < 3:
		return fmt.Sprintf("%.0fµs", math.Pow(10, float64(d)))
	case d < 6:
		return fmt.Sprintf("%.0fms", math.Pow(10, float64(d-3)))
	}
	return fmt.Sprintf("%.0fs", math.Pow(10, float64(d-6)))
}

func fmtCount(c float64) string {
	switch {
	case c >= 1e6:
		return fmt.Sprintf("%gM", c/1e6)
	case c >= 1e3:
		return fmt.Sprintf("%gk", c/1e3)
	}
	return fmt.Sprintf("%g", c)
}

func esc(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s)) // a strings.Builder does not fail
	return b.String()
}
