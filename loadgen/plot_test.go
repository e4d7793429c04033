package loadgen

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// snapshotOf records values (in µs) into a new histogram and snapshots it.
func snapshotOf(values ...int) *HistogramSnapshot {
	h := NewHistogram()
	for _, v := range values {
		h.Record(time.Duration(v) * time.Microsecond)
	}
	return h.Snapshot()
}

// TestHistogramJSON: a snapshot survives JSON as it was, and JSON that no
// snapshot could have written is refused.
func TestHistogramJSON(t *testing.T) {
	t.Parallel()
	var values []int
	for v := 1; v <= 5000; v += 7 {
		values = append(values, v, v*v)
	}
	want := snapshotOf(values...)
	b, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	var got HistogramSnapshot
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.N != want.N || got.Sum != want.Sum || got.Max != want.Max || !slices.Equal(got.Counts, want.Counts) {
		t.Errorf("after JSON: n %d sum %v max %v, want n %d sum %v max %v (counts equal: %v)",
			got.N, got.Sum, got.Max, want.N, want.Sum, want.Max, slices.Equal(got.Counts, want.Counts))
	}
	for _, bad := range []string{
		`{"n":1,"sumUs":1,"maxUs":1001,"buckets":[[1001,1]]}`,              // 1001 µs is inside a bucket 4 µs wide, not at its start
		`{"n":2,"sumUs":3,"maxUs":2,"buckets":[[1,1],[2,2]]}`,              // counts add up to 3
		`{"n":1,"sumUs":1,"maxUs":1,"buckets":[[18446744073709551615,1]]}`, // past the last bucket
		`{"n":1,"buckets":"many"}`,
	} {
		var s HistogramSnapshot
		if err := json.Unmarshal([]byte(bad), &s); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

// TestTail: the curve gives, at each bucket's top, the share of values above.
func TestTail(t *testing.T) {
	t.Parallel()
	var values []int
	for range 990 {
		values = append(values, 100)
	}
	for range 9 {
		values = append(values, 5000)
	}
	values = append(values, 80000)
	pts := tail(snapshotOf(values...))
	above := func(us float64) float64 { // the curve's value at us
		frac := 1.0
		for _, p := range pts {
			if p.Us <= us {
				frac = p.Above
			}
		}
		return frac
	}
	for _, c := range []struct{ us, want float64 }{
		{50, 1}, {101, 0.01}, {4000, 0.01}, {5100, 0.001}, {79000, 0.001}, {81000, 0},
	} {
		if got := above(c.us); got != c.want {
			t.Errorf("share above %v µs: %v, want %v (curve %v)", c.us, got, c.want, pts)
		}
	}
	if last := pts[len(pts)-1]; last.Above != 0 {
		t.Errorf("the curve ends at %v, want at 0", last)
	}
	if tail(snapshotOf()) != nil {
		t.Error("an empty histogram has a curve")
	}
}

// TestBenchPlot: tictac bench plot reads play reports and draws each run's
// curve and legend into well-formed SVG; it refuses reports without
// histograms and files that are not reports.
func TestBenchPlot(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name string, rep *Report) string {
		path := filepath.Join(dir, name)
		if err := writeFile(path, rep.WriteJSON); err != nil {
			t.Fatal(err)
		}
		return path
	}
	fast := write("fast.json", &Report{MoverHist: snapshotOf(100, 200, 300), OpponentHist: snapshotOf(150, 250, 350, 450)})
	slow := write("slow.json", &Report{MoverHist: snapshotOf(1000, 2000), OpponentHist: snapshotOf(1500, 2500, 90000)})
	out := filepath.Join(dir, "tails.svg")
	if err := Main(t.Context(), []string{"plot", "-o", out, "-title", "two runs", "relay=" + fast, slow}, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	svg, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	d := xml.NewDecoder(bytes.NewReader(svg))
	paths := 0
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed SVG: %v", err)
		}
		if el, ok := tok.(xml.StartElement); ok && el.Name.Local == "path" {
			paths++
		}
	}
	for _, want := range []string{"two runs", "relay: p50 250µs", "slow: p50 2.5", "p99.9 90ms"} {
		if !bytes.Contains(svg, []byte(want)) {
			t.Errorf("the plot lacks %q", want)
		}
	}
	if paths != 2 {
		t.Errorf("%d curves, want 2", paths)
	}

	bare := write("bare.json", &Report{})
	notJSON := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(notJSON, []byte("p99 1ms"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"plot", bare}, {"plot", notJSON}, {"plot"}, {"plot", filepath.Join(dir, "missing.json")}} {
		if err := Main(t.Context(), args, io.Discard, io.Discard); err == nil {
			t.Errorf("%v: no error", args)
		} else if strings.Contains(err.Error(), "panic") {
			t.Errorf("%v: %v", args, err)
		}
	}
}
