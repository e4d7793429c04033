package loadgen

import (
	"math"
	"sync"
	"testing"
	"time"
)

func TestHistogramQuantiles(t *testing.T) {
	t.Parallel()
	µs := time.Microsecond
	tests := []struct {
		name   string
		values func(record func(time.Duration))
		q      []float64
		want   []time.Duration
	}{
		{"empty", func(func(time.Duration)) {}, []float64{0.5, 1}, []time.Duration{0, 0}},
		{"uniform 1µs..10ms", func(rec func(time.Duration)) {
			for v := 1; v <= 10000; v++ {
				rec(time.Duration(v) * µs)
			}
		}, []float64{0.5, 0.9, 0.99, 0.999, 1}, []time.Duration{5000 * µs, 9000 * µs, 9900 * µs, 9990 * µs, 10000 * µs}},
		{"exact below 256µs", func(rec func(time.Duration)) {
			for v := 1; v <= 100; v++ {
				rec(time.Duration(v) * µs)
			}
		}, []float64{0.5, 0.9, 1}, []time.Duration{50 * µs, 90 * µs, 100 * µs}},
		{"constant", func(rec func(time.Duration)) {
			for range 1000 {
				rec(123456 * µs)
			}
		}, []float64{0, 0.5, 0.999}, []time.Duration{123456 * µs, 123456 * µs, 123456 * µs}},
		{"tail of 1%", func(rec func(time.Duration)) {
			for range 990 {
				rec(time.Millisecond)
			}
			for range 10 {
				rec(time.Second)
			}
		}, []float64{0.5, 0.99, 0.995, 0.999}, []time.Duration{time.Millisecond, time.Millisecond, time.Second, time.Second}},
		{"beyond the range", func(rec func(time.Duration)) {
			rec(2 * time.Minute)
		}, []float64{0.5, 1}, []time.Duration{2 * time.Minute, 2 * time.Minute}},
		{"sub-microsecond and negative", func(rec func(time.Duration)) {
			rec(-time.Second)
			rec(500 * time.Nanosecond)
		}, []float64{0.5, 1}, []time.Duration{0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := NewHistogram()
			tt.values(h.Record)
			s := h.Snapshot()
			for i, q := range tt.q {
				got, want := s.Quantile(q), tt.want[i]
				// Within 1% (plus the 1µs resolution), except past
				// HistogramMax where only Max is exact.
				tol := time.Duration(float64(want)*0.01) + µs
				if q < 1 && want > HistogramMax {
					tol = want
				}
				if diff := got - want; diff > tol || -diff > tol {
					t.Errorf("Quantile(%v) = %v, want %v ± %v", q, got, want, tol)
				}
			}
		})
	}
}

func TestHistogramBuckets(t *testing.T) {
	t.Parallel()
	for v := uint64(0); v < uint64(HistogramMax/time.Microsecond); v = v*101/100 + 1 {
		i := bucketOf(v)
		low, width := bucketRange(i)
		if v < low || v >= low+width {
			t.Fatalf("value %d in bucket %d = [%d, %d)", v, i, low, low+width)
		}
		if width > 1 && float64(width)/float64(low) > 1.0/subBuckets+1e-9 {
			t.Fatalf("bucket %d = [%d, %d) is %.2f%% wide, want at most %.2f%%", i, low, low+width,
				100*float64(width)/float64(low), 100.0/subBuckets)
		}
	}
	if numBuckets > 4000 {
		t.Errorf("%d buckets, want a compact histogram", numBuckets)
	}
}

func TestHistogramConcurrent(t *testing.T) {
	t.Parallel()
	h := NewHistogram()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 1000 {
				h.Record(time.Duration(g*1000+i) * time.Microsecond)
			}
		})
	}
	wg.Wait()
	s := h.Snapshot()
	if s.N != 8000 {
		t.Errorf("N = %d, want 8000", s.N)
	}
	if got, want := s.Max, 7999*time.Microsecond; got != want {
		t.Errorf("Max = %v, want %v", got, want)
	}
	if got, want := s.Mean(), 3999500*time.Nanosecond; math.Abs(float64(got-want)) > float64(time.Microsecond) {
		t.Errorf("Mean = %v, want %v", got, want)
	}
}

// TestHistogramSince: the difference of two snapshots holds what was
// recorded between them, so the progress line's last-second p99 shows a
// stall that the run's p99 so far would hide.
func TestHistogramSince(t *testing.T) {
	h := NewHistogram()
	for range 1000 {
		h.Record(time.Millisecond)
	}
	before := h.Snapshot()
	for range 100 {
		h.Record(200 * time.Millisecond)
	}
	after := h.Snapshot()
	d := after.Since(before)
	if d.N != 100 || d.Sum != 100*200*time.Millisecond {
		t.Fatalf("since: N %d, sum %v; want 100, 20s", d.N, d.Sum)
	}
	if p50 := d.Quantile(0.5); p50 < 190*time.Millisecond || p50 > 210*time.Millisecond {
		t.Errorf("the last second's p50 = %v, want about 200ms", p50)
	}
	if all := after.Quantile(0.5); all > 2*time.Millisecond {
		t.Errorf("the run's p50 = %v, want about 1ms", all)
	}
	if e := after.Since(after); e.N != 0 || e.Quantile(0.99) != 0 {
		t.Errorf("a snapshot since itself: N %d, p99 %v; want empty", e.N, e.Quantile(0.99))
	}
}
