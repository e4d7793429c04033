package loadgen

import (
	"encoding/json"
	"fmt"
	"math/bits"
	"sync/atomic"
	"time"
)

// The histogram is log-linear: values are whole microseconds, exact below
// 2*subBuckets, then each power of two is cut into subBuckets equal buckets,
// so a bucket is never wider than 1/subBuckets (0.8%) of its values.
const (
	subBits    = 7
	subBuckets = 1 << subBits

	// HistogramMax is the largest latency a Histogram tells apart; larger
	// values are counted in its last bucket (and still reported as Max).
	HistogramMax = 60 * time.Second
)

var numBuckets = bucketOf(uint64(HistogramMax/time.Microsecond)) + 1

// bucketOf returns the bucket holding v microseconds.
func bucketOf(v uint64) int {
	shift := max(bits.Len64(v)-(subBits+1), 0)
	return shift*subBuckets + int(v>>shift)
}

// bucketRange returns the lowest value of bucket i and its width, in microseconds.
func bucketRange(i int) (low, width uint64) {
	if i < 2*subBuckets {
		return uint64(i), 1
	}
	shift := i/subBuckets - 1
	return uint64(i-shift*subBuckets) << shift, 1 << shift
}

// Histogram counts latencies with about 1% relative error from 1µs to
// HistogramMax. Record is lock-free and safe for concurrent use; the zero value
// is not usable, call NewHistogram.
type Histogram struct {
	counts []atomic.Uint64
	n      atomic.Uint64
	sum    atomic.Uint64 // microseconds
	max    atomic.Uint64 // microseconds
}

// NewHistogram returns an empty histogram (about 20 KiB).
func NewHistogram() *Histogram {
	return &Histogram{counts: make([]atomic.Uint64, numBuckets)}
}

// Record counts one latency. Negative latencies count as zero.
func (h *Histogram) Record(d time.Duration) {
	v := uint64(max(d, 0) / time.Microsecond)
	h.counts[min(bucketOf(v), numBuckets-1)].Add(1)
	h.n.Add(1)
	h.sum.Add(v)
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			break
		}
	}
}

// Snapshot copies the counts so far. Counts recorded while it runs may be
// missing from it, which a progress line can live with.
func (h *Histogram) Snapshot() *HistogramSnapshot {
	s := &HistogramSnapshot{Counts: make([]uint64, numBuckets)}
	for i := range h.counts {
		c := h.counts[i].Load()
		s.Counts[i] = c
		s.N += c
	}
	s.Sum = time.Duration(h.sum.Load()) * time.Microsecond
	s.Max = time.Duration(h.max.Load()) * time.Microsecond
	return s
}

// HistogramSnapshot is a still copy of a Histogram that quantiles are read from.
type HistogramSnapshot struct {
	// Counts is indexed by bucket; see Bucket for a bucket's range.
	Counts []uint64
	// N is the number of values, Sum their total and Max the largest one.
	N   uint64
	Sum time.Duration
	Max time.Duration
}

// Bucket returns the range [low, low+width) of latencies counted in Counts[i].
func (s *HistogramSnapshot) Bucket(i int) (low, width time.Duration) {
	l, w := bucketRange(i)
	return time.Duration(l) * time.Microsecond, time.Duration(w) * time.Microsecond
}

// Quantile returns the latency at or below which a fraction q of the values
// lie, as the top of its bucket (never above Max). It returns 0 when empty.
func (s *HistogramSnapshot) Quantile(q float64) time.Duration {
	if s.N == 0 {
		return 0
	}
	rank := uint64(q*float64(s.N) + 0.5)
	rank = min(max(rank, 1), s.N)
	var seen uint64
	for i, c := range s.Counts {
		seen += c
		if seen >= rank {
			if i == len(s.Counts)-1 {
				return s.Max // the last bucket also holds everything beyond HistogramMax
			}
			low, width := s.Bucket(i)
			return min(low+width-time.Microsecond, s.Max)
		}
	}
	return s.Max
}

// Since returns what s holds that prev, an earlier snapshot of the same
// histogram, did not: the latencies recorded in between. Its Max is s's,
// an upper bound.
func (s *HistogramSnapshot) Since(prev *HistogramSnapshot) *HistogramSnapshot {
	d := &HistogramSnapshot{Counts: make([]uint64, len(s.Counts)), Sum: s.Sum - prev.Sum, Max: s.Max}
	for i, c := range s.Counts {
		if i < len(prev.Counts) {
			c -= min(c, prev.Counts[i])
		}
		d.Counts[i] = c
		d.N += c
	}
	return d
}

// Mean returns the average latency, or 0 when empty.
func (s *HistogramSnapshot) Mean() time.Duration {
	if s.N == 0 {
		return 0
	}
	return s.Sum / time.Duration(s.N)
}

// histJSON is a snapshot as JSON: the non-empty buckets only, each as its
// lowest value in µs and its count (see Bucket for a bucket's width).
type histJSON struct {
	N       uint64      `json:"n"`
	SumUs   int64       `json:"sumUs"`
	MaxUs   int64       `json:"maxUs"`
	Buckets [][2]uint64 `json:"buckets"`
}

// MarshalJSON writes the snapshot with its non-empty buckets, so that a
// report carries the whole distribution (tictac bench plot reads it back).
func (s *HistogramSnapshot) MarshalJSON() ([]byte, error) {
	h := histJSON{N: s.N, SumUs: s.Sum.Microseconds(), MaxUs: s.Max.Microseconds(), Buckets: [][2]uint64{}}
	for i, c := range s.Counts {
		if c > 0 {
			low, _ := bucketRange(i)
			h.Buckets = append(h.Buckets, [2]uint64{low, c})
		}
	}
	return json.Marshal(h)
}

// UnmarshalJSON reads what MarshalJSON wrote. It refuses a bucket that does
// not start where one of this histogram's buckets starts, and counts that
// do not add up to n.
func (s *HistogramSnapshot) UnmarshalJSON(b []byte) error {
	var h histJSON
	if err := json.Unmarshal(b, &h); err != nil {
		return fmt.Errorf("histogram: %w", err)
	}
	counts := make([]uint64, numBuckets)
	var n uint64
	for _, bc := range h.Buckets {
		i := bucketOf(bc[0])
		if low, _ := bucketRange(i); low != bc[0] || i >= numBuckets {
			return fmt.Errorf("histogram: no bucket starts at %d µs", bc[0])
		}
		counts[i] += bc[1]
		n += bc[1]
	}
	if n != h.N {
		return fmt.Errorf("histogram: buckets count %d values, n says %d", n, h.N)
	}
	*s = HistogramSnapshot{Counts: counts, N: n, Sum: time.Duration(h.SumUs) * time.Microsecond, Max: time.Duration(h.MaxUs) * time.Microsecond}
	return nil
}
