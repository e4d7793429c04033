// Package gcfloor keeps the garbage collector from running while the heap is
// small. A replica's live heap is a few MB at a thousand players, and with
// GOGC=100 it collects each time that much more is allocated: at 2,500
// moves a second, twice a second, each time taking a core's quarter for
// 10-20 ms while the moves wait (BENCHMARKS.md, sessions 5 and 6). With a
// floor the heap may grow to the floor first; once the live heap is half the
// floor or more, GOGC is 100 again, so a replica holding many sockets keeps
// the memory per socket it had.
package gcfloor

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// Percent returns the GOGC that gives a live heap of live bytes a heap goal
// of floor bytes, and 100 when the usual goal (twice the live heap) is as
// large. It never returns more than maxPercent.
func Percent(live, floor uint64) int {
	if live == 0 || floor <= 2*live {
		return 100
	}
	return int(min(float64(floor)/float64(live)*100-100, maxPercent))
}

// maxPercent bounds Percent: for a nearly empty heap a floor would otherwise
// ask for an absurd GOGC.
const maxPercent = 100_000

// sentinel is what a collection finds unreachable, which runs a tuning. It
// is not tiny (the runtime may batch tiny objects, whose cleanups then need
// not run) and not zero-sized.
type sentinel [64]byte

type tuner struct {
	floor   uint64
	mu      sync.Mutex
	stopped bool
	last    int
	sample  []metrics.Sample
}

// active is set while a tuner runs: GOGC is the process's, so one at a time.
var active sync.Mutex

// Start sets GOGC after every collection so that the heap goal is at least
// floor bytes (see Percent), until stop is called, which puts GOGC back to
// what it was. While one tuner runs, another Start does nothing (several
// servers in one test process). The caller must not start it when GOGC was
// set by the operator (the environment variable), whose choice stands.
func Start(floor uint64) (stop func()) {
	if !active.TryLock() {
		return func() {}
	}
	t := &tuner{floor: floor, sample: []metrics.Sample{{Name: "/gc/heap/live:bytes"}}}
	before := debug.SetGCPercent(100)
	t.last = 100
	t.tune()
	t.arm()
	var once sync.Once
	return func() {
		once.Do(func() {
			t.mu.Lock()
			defer t.mu.Unlock()
			t.stopped = true
			debug.SetGCPercent(before)
			active.Unlock()
		})
	}
}

// arm makes the next collection run tune, and arm again.
func (t *tuner) arm() {
	runtime.AddCleanup(new(sentinel), func(t *tuner) {
		if t.tune() {
			t.arm()
		}
	}, t)
}

// tune sets GOGC for the live heap the last collection left. It reports
// false once stopped.
func (t *tuner) tune() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return false
	}
	metrics.Read(t.sample)
	live := uint64(0)
	if v := t.sample[0].Value; v.Kind() == metrics.KindUint64 {
		live = v.Uint64()
	}
	if p := Percent(live, t.floor); p != t.last {
		debug.SetGCPercent(p)
		t.last = p
	}
	return true
}
