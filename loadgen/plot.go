package loadgen

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
)

// A PlotRun is one run's latency histogram, named for the plot's legend.
type PlotRun struct {
	Label string
	Hist  *HistogramSnapshot
}

// tailPoint says that a fraction Above of the values lie above Us µs.
type tailPoint struct {
	Us    float64
	Above float64
}

// tail returns the fraction of values above each bucket's top, from the
// first non-empty bucket on, ending where nothing lies above: the curve a
// tail plot draws. Every bucket is only about 1% wide, so reading a value
// at its bucket's top is as exact as the quantiles of the report.
func tail(s *HistogramSnapshot) []tailPoint {
	if s == nil || s.N == 0 {
		return nil
	}
	var pts []tailPoint
	var seen uint64
	for i, c := range s.Counts {
		if c == 0 && seen == 0 {
			continue
		}
		seen += c
		low, width := bucketRange(i)
		top := float64(low + width)
		if i == len(s.Counts)-1 {
			top = math.Max(top, float64(s.Max.Microseconds()))
		}
		pts = append(pts, tailPoint{Us: top, Above: float64(s.N-seen) / float64(s.N)})
		if seen == s.N {
			break
		}
	}
	return pts
}

// tailColors are the plot's line colours, in the order of the runs.
var tailColors = []string{"#7f7f7f", "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"}

// WriteTailSVG plots each run's latencies as the fraction of moves slower
// than each latency, both axes on a log scale, so that the tail (p99,
// p99.9, the worst) reads as plainly as the median. Lines for p50, p90, p99
// and p99.9 cross the plot; a run's value at one is where its curve meets it.
func WriteTailSVG(w io.Writer, title string, runs []PlotRun) error {
	if len(runs) == 0 || len(runs) > len(tailColors) {
		return fmt.Errorf("plot: %d runs, want 1 to %d", len(runs), len(tailColors))
	}
	const (
		width, height            = 860, 480
		left, right, top, bottom = 80, 30, 50, 60
		plotW, plotH             = width - left - right, height - top - bottom
	)
	curves := make([][]tailPoint, len(runs))
	lo, hi := math.Inf(1), 0.0
	minFrac := 1e-3 // the y axis reaches p99.9 at least
	for k, r := range runs {
		curves[k] = tail(r.Hist)
		for _, p := range curves[k] {
			lo, hi = math.Min(lo, p.Us), math.Max(hi, p.Us)
		}
		if r.Hist != nil && r.Hist.N > 0 {
			minFrac = math.Min(minFrac, 1/float64(r.Hist.N))
		}
	}
	if hi == 0 {
		lo, hi = 100, 1000
	}
	loDec, hiDec := int(math.Floor(math.Log10(lo))), int(math.Ceil(math.Log10(hi)))
	hiDec = max(hiDec, loDec+1)
	fracDecs := int(math.Ceil(-math.Log10(minFrac)))
	xAt := func(us float64) float64 {
		return left + (math.Log10(us)-float64(loDec))*plotW/float64(hiDec-loDec)
	}
	// A fraction of 0 (nothing slower) is drawn at the bottom edge.
	yAt := func(frac float64) float64 {
		if frac <= 0 {
			return top + plotH
		}
		return top + math.Min(-math.Log10(frac), float64(fracDecs))*plotH/float64(fracDecs)
	}

	var buf bytes.Buffer
	fmt.Fprintf(&buf, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(&buf, `<rect width="%d" height="%d" fill="white"/>`+"\n", width, height)
	fmt.Fprintf(&buf, `<text x="%d" y="24" text-anchor="middle" font-size="15" font-weight="bold">%s</text>`+"\n", width/2, esc(title))
	// y: a line per decade of the fraction, the named quantiles labelled.
	names := map[int]string{0: "all", 1: "p90", 2: "p99", 3: "p99.9", 4: "p99.99"}
	for d := 0; d <= fracDecs; d++ {
		y := yAt(math.Pow(10, -float64(d)))
		fmt.Fprintf(&buf, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", left, left+plotW, y, y)
		label := fmt.Sprintf("1e-%d", d)
		if n, ok := names[d]; ok {
			label = n
		}
		fmt.Fprintf(&buf, `<text x="%d" y="%.1f" text-anchor="end" dominant-baseline="middle">%s</text>`+"\n", left-6, y, label)
	}
	y50 := yAt(0.5)
	fmt.Fprintf(&buf, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd" stroke-dasharray="4 3"/>`+"\n", left, left+plotW, y50, y50)
	fmt.Fprintf(&buf, `<text x="%d" y="%.1f" text-anchor="end" dominant-baseline="middle">p50</text>`+"\n", left-6, y50)
	// x: a tick per decade, and lines at 2 and 5 times it.
	for d := loDec; d <= hiDec; d++ {
		x := xAt(math.Pow(10, float64(d)))
		fmt.Fprintf(&buf, `<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="#ccc"/>`+"\n", x, x, top, top+plotH+5)
		fmt.Fprintf(&buf, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", x, top+plotH+18, decadeLabel(d))
		for _, m := range []float64{2, 5} {
			if d < hiDec {
				xm := xAt(m * math.Pow(10, float64(d)))
				fmt.Fprintf(&buf, `<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="#eee"/>`+"\n", xm, xm, top, top+plotH)
				fmt.Fprintf(&buf, `<text x="%.1f" y="%d" text-anchor="middle" font-size="10" fill="#888">%.0f</text>`+"\n", xm, top+plotH+16, m)
			}
		}
	}
	fmt.Fprintf(&buf, `<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="#333"/>`+"\n", left, left+plotW, top+plotH, top+plotH)
	fmt.Fprintf(&buf, `<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="#333"/>`+"\n", left, left, top, top+plotH)
	fmt.Fprintf(&buf, `<text x="%d" y="%d" text-anchor="middle">latency (log scale)</text>`+"\n", left+plotW/2, height-14)
	fmt.Fprintf(&buf, `<text transform="translate(20 %d) rotate(-90)" text-anchor="middle">moves slower than that (log scale)</text>`+"\n", top+plotH/2)
	// The legend sits at the bottom left, where fast moves are few: the
	// curves run high at the left and fall to the right.
	legendTop := top + plotH - 10 - 18*len(runs)
	fmt.Fprintf(&buf, `<rect x="%d" y="%d" width="400" height="%d" fill="white" fill-opacity="0.85"/>`+"\n", left+6, legendTop-4, 18*len(runs)+4)
	for k, r := range runs {
		color := tailColors[k]
		if pts := curves[k]; len(pts) > 0 {
			var path strings.Builder
			fmt.Fprintf(&path, "M%.1f %.1f", xAt(lo), yAt(1))
			for _, p := range pts {
				fmt.Fprintf(&path, " L%.1f %.1f", xAt(p.Us), yAt(p.Above))
			}
			fmt.Fprintf(&buf, `<path d="%s" fill="none" stroke="%s" stroke-width="2"/>`+"\n", path.String(), color)
		}
		ly := legendTop + 12 + 18*k
		fmt.Fprintf(&buf, `<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="%s" stroke-width="3"/>`+"\n", left+12, left+28, ly-4, ly-4, color)
		sum := "no moves"
		if r.Hist != nil && r.Hist.N > 0 {
			sum = fmt.Sprintf("p50 %s p99 %s p99.9 %s", fmtDur(r.Hist.Quantile(0.5)), fmtDur(r.Hist.Quantile(0.99)), fmtDur(r.Hist.Quantile(0.999)))
		}
		fmt.Fprintf(&buf, `<text x="%d" y="%d">%s: %s</text>`+"\n", left+34, ly, esc(r.Label), esc(sum))
	}
	buf.WriteString("</svg>\n")
	if _, err := w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("write svg: %w", err)
	}
	return nil
}

// mainPlot is `tictac bench plot`: the latency tails of several runs, from
// their JSON reports (tictac bench play -report), in one SVG.
func mainPlot(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tictac bench plot", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("o", "", "write the SVG to this `file` (default: standard output)")
	title := fs.String("title", "opponent latency", "the plot's title")
	mover := fs.Bool("mover", false, "plot the mover's latency instead of the opponent's")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: tictac bench plot [flags] [label=]report.json ...\n\n"+
			"Plots the latency tails of up to %d runs, read from the JSON reports of\n"+
			"tictac bench play (-report or -json), in one SVG. A run's label is its\n"+
			"file's name unless given before an =.\n\n", len(tailColors))
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errors.New("no reports given")
	}
	var runs []PlotRun
	for _, arg := range fs.Args() {
		label, path, ok := strings.Cut(arg, "=")
		if !ok {
			path = arg
			label = strings.TrimSuffix(filepath.Base(path), ".json")
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		var rep Report
		if err := json.Unmarshal(b, &rep); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		h := rep.OpponentHist
		if *mover {
			h = rep.MoverHist
		}
		if h == nil {
			return fmt.Errorf("%s: the report has no histograms (written by an older tictac bench?)", path)
		}
		runs = append(runs, PlotRun{Label: label, Hist: h})
	}
	if *out == "" {
		return WriteTailSVG(stdout, *title, runs)
	}
	return writeFile(*out, func(w io.Writer) error { return WriteTailSVG(w, *title, runs) })
}
