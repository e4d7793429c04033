package loadgen

import (
	"math"
	"runtime"
	"runtime/metrics"
	"testing"
	"time"
)

func TestMachineSince(t *testing.T) {
	hist := func(counts ...uint64) *metrics.Float64Histogram {
		// Buckets of 1, 2, 4 and 8 ms, and the last one open.
		return &metrics.Float64Histogram{Counts: counts, Buckets: []float64{0, 0.001, 0.002, 0.004, 0.008, math.Inf(1)}}
	}
	a := machineSample{
		sched: hist(10, 0, 0, 0, 0), gc: hist(0, 0, 0, 0, 0),
		cpu: []uint64{100, 0, 50, 1000, 10, 0, 5, 20},
	}
	b := machineSample{
		// 1000 waits since a: 980 under 1 ms, 15 under 4 ms, 4 under 8, one longer.
		sched: hist(990, 0, 15, 4, 1), gc: hist(3, 0, 0, 1, 0),
		// 100 ticks: 30 user, 10 system, 40 idle, 10 iowait, 10 steal.
		cpu: []uint64{130, 0, 60, 1040, 20, 0, 5, 30},
	}
	m := a.since(b)
	if m.Busy != 0.4 || m.Steal != 0.1 {
		t.Errorf("busy %v steal %v, want 0.4 and 0.1", m.Busy, m.Steal)
	}
	if m.SchedP99 != 4*time.Millisecond || m.SchedP999 != 8*time.Millisecond {
		t.Errorf("sched p99 %v p99.9 %v, want 4ms and 8ms", m.SchedP99, m.SchedP999)
	}
	if m.GCPauseMax != 8*time.Millisecond {
		t.Errorf("gc pause max %v, want 8ms", m.GCPauseMax)
	}
	a.cpu = nil
	if m := a.since(b); m.Busy != -1 || m.Steal != -1 {
		t.Errorf("without /proc/stat: busy %v steal %v, want -1", m.Busy, m.Steal)
	}
	// The longest wait in the open bucket is given as at least its bound.
	b.sched = hist(10, 0, 0, 0, 1)
	if got := histQuantile(a.sched, b.sched, 1); got != 8*time.Millisecond {
		t.Errorf("open bucket: %v, want 8ms", got)
	}
}

// TestMachineReal: two real samples around some work give figures in range.
func TestMachineReal(t *testing.T) {
	a := sampleMachine()
	deadline := time.Now().Add(100 * time.Millisecond)
	for time.Now().Before(deadline) {
		runtime.Gosched()
	}
	runtime.GC()
	m := a.since(sampleMachine())
	if runtime.GOOS == "linux" && (m.Busy <= 0 || m.Busy > 1 || m.Steal < 0 || m.Steal > 1) {
		t.Errorf("busy %v steal %v after 100 ms of spinning, want busy in (0, 1], steal in [0, 1]", m.Busy, m.Steal)
	}
	if m.GCPauseMax <= 0 {
		t.Errorf("gc pause max %v after a GC, want above 0", m.GCPauseMax)
	}
	t.Log(m)
}
