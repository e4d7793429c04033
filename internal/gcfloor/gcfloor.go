// Package gcfloor keeps the garbage collector from running while the heap is
// small. A replica's live heap is a few MB at a thousand players, and with
// GOGC=100 it collects each time that much more is allocated: at 2,500
// moves a second, twice a second, each time taking a core's quarter for
// 10-20 ms while the moves wait (BENCHMARKS.md, sessions 5, 6 and 10). With
// a floor the heap may grow to the floor first; once Go's usual goal (about
// twice the live heap, plus the stacks) reaches the floor, GOGC is 100
// again, so the floor costs at most its size in memory, and nothing to a
// replica whose usual goal is past it.
package gcfloor

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// Percent returns the GOGC that makes the runtime's heap goal floor bytes,
// given what the last collection found: live bytes of heap, and scan bytes
// of stacks and globals scanned. It returns 100 when the usual goal is at
// least the floor. The runtime's goal is live + (live+scan)×GOGC/100, and no
// less than a minimum heap of 4 MiB×GOGC/100 (runtime/mgcpacer.go), so
// GOGC is also kept low enough that this minimum stays within the floor.
func Percent(live, scan, floor uint64) int {
	if floor <= 2*live+scan {
		return 100
	}
	p := floor * 100 / minHeap
	if live+scan > 0 {
		p = min(p, (floor-live)*100/(live+scan))
	}
	return int(max(p, 100))
}

// minHeap is the runtime's minimum heap goal at GOGC=100.
const minHeap = 4 << 20

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
	t := &tuner{floor: floor, sample: []metrics.Sample{
		{Name: "/gc/heap/live:bytes"}, {Name: "/gc/scan/stack:bytes"}, {Name: "/gc/scan/globals:bytes"},
	}}
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

// tune sets GOGC for what the last collection left. It reports false once
// stopped.
func (t *tuner) tune() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return false
	}
	metrics.Read(t.sample)
	var v [3]uint64
	for i, s := range t.sample {
		if s.Value.Kind() == metrics.KindUint64 {
			v[i] = s.Value.Uint64()
		}
	}
	if p := Percent(v[0], v[1]+v[2], t.floor); p != t.last {
		debug.SetGCPercent(p)
		t.last = p
	}
	return true
}
