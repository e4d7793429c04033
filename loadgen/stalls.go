package loadgen

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"sync/atomic"
	"time"
)

// StallWindow is how finely a run's measured window is cut to tell a tail
// spread over the run from one bunched in stalls.
const StallWindow = 50 * time.Millisecond

// stallSteps are the latencies Stalls counts moves at or over: 1-2-5 steps,
// so that the report names a round figure.
var stallSteps = []time.Duration{
	100 * time.Microsecond, 200 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 2 * time.Millisecond, 5 * time.Millisecond,
	10 * time.Millisecond, 20 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 200 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second,
}

// windows counts opponent latencies by the StallWindow of the measured
// window in which the move was sent, and by the highest of stallSteps each
// reached. record is lock-free; a run of MaxDuration holds 72,000 windows
// (4.9 MB of counts).
type windows struct {
	start  time.Duration // the measured window's start, since the run's
	counts []atomic.Uint32
}

func newWindows(start, length time.Duration) *windows {
	n := int((length + StallWindow - 1) / StallWindow)
	return &windows{start: start, counts: make([]atomic.Uint32, max(n, 1)*(len(stallSteps)+1))}
}

// record counts a move sent at sent (since the run's start) that took
// latency. A move sent just before the window, and seen in it, counts in its
// first stretch. (A move seen in the window was sent before its end; the
// bound on the last stretch is only a guard.)
func (w *windows) record(sent, latency time.Duration) {
	n := len(w.counts) / (len(stallSteps) + 1)
	i := min(max(int((sent-w.start)/StallWindow), 0), n-1)
	step, _ := slices.BinarySearch(stallSteps, latency+1) // steps at or under latency
	w.counts[i*(len(stallSteps)+1)+step].Add(1)
}

// stalls reads the moves at or over the largest of stallSteps at or under
// low (nil when low is under the smallest) in the first elapsed of the
// window. Given the lowest latency of the histogram bucket the p99 falls
// in, those are at least the slowest 1% of the moves.
func (w *windows) stalls(low, elapsed time.Duration) *Stalls {
	step, _ := slices.BinarySearch(stallSteps, low+1)
	if step == 0 {
		return nil
	}
	width := len(stallSteps) + 1
	n := min(max(int((elapsed+StallWindow-1)/StallWindow), 1), len(w.counts)/width)
	s := &Stalls{Over: stallSteps[step-1], Of: n}
	per := make([]int64, 0, n)
	for i := range n {
		var c int64
		for j := step; j < width; j++ {
			c += int64(w.counts[i*width+j].Load())
		}
		if c > 0 {
			per = append(per, c)
			s.Moves += c
		}
	}
	s.Windows = len(per)
	slices.SortFunc(per, func(a, b int64) int { return cmp.Compare(b, a) })
	var sum int64
	for _, c := range per {
		if 2*sum >= s.Moves {
			break
		}
		sum += c
		s.HalfIn++
	}
	return s
}

// Stalls tells a run's tail spread over the run from one bunched in short
// stretches (stalls of the server or of the machine): the measured window
// is cut into StallWindow stretches, and the moves whose opponent latency
// reached Over (the largest 1-2-5 step at or under the run's p99, so at
// least the slowest 1% of the moves) are counted by the stretch they were
// sent in. Spread evenly, Moves would fill
// about min(Moves, Of) stretches and half of them take half of those; a
// HalfIn of a few stretches says a few stalls made the p99.
type Stalls struct {
	Over    time.Duration
	Moves   int64 // moves at or over Over
	Windows int   // stretches with at least one of them
	Of      int   // stretches in the measured window
	HalfIn  int   // the fewest stretches that hold half of Moves
}

// String is the report's line.
func (s *Stalls) String() string {
	return fmt.Sprintf("opponent at or over %v: %d moves, sent in %d of %d %v stretches; the worst %d hold half",
		s.Over, s.Moves, s.Windows, s.Of, StallWindow, s.HalfIn)
}

// MarshalJSON writes Over in milliseconds.
func (s *Stalls) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Over     float64 `json:"overMs"`
		Moves    int64   `json:"moves"`
		Windows  int     `json:"windows"`
		Of       int     `json:"of"`
		HalfIn   int     `json:"halfIn"`
		WindowMs float64 `json:"windowMs"`
	}{ms(s.Over), s.Moves, s.Windows, s.Of, s.HalfIn, ms(StallWindow)})
}
