package loadgen

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"runtime/metrics"
	"strconv"
	"time"
)

// Machine is what the machine and the load generator itself went through
// during the measured window. The load generator shares the machine with
// what it measures, so a latency can come from the load generator waiting
// for a core, or from the machine's cores being taken away by a hypervisor
// (steal); these figures say how much of either there was.
type Machine struct {
	// Busy and Steal are fractions of all the machine's CPU time: time spent
	// running anything, and time a hypervisor gave to someone else while
	// this machine had work. From /proc/stat (Linux); -1 elsewhere.
	Busy  float64
	Steal float64
	// SchedP99 and SchedP999 bound how long the load generator's runnable
	// goroutines waited for a core (Go's /sched/latencies, whose buckets
	// make these upper bounds within a factor of two at worst).
	SchedP99  time.Duration
	SchedP999 time.Duration
	// GCPauseMax is the load generator's longest stop-the-world pause.
	GCPauseMax time.Duration
}

// String describes m in one line.
func (m Machine) String() string {
	cpu := "cpu n/a"
	if m.Busy >= 0 {
		cpu = fmt.Sprintf("cpu busy %.0f%%  steal %.1f%%", m.Busy*100, m.Steal*100)
	}
	return fmt.Sprintf("machine: %s  load generator: sched wait p99 %s p99.9 %s  gc pause max %s",
		cpu, fmtDur(m.SchedP99), fmtDur(m.SchedP999), fmtDur(m.GCPauseMax))
}

// machineSample is the cumulative counters Machine is the difference of.
type machineSample struct {
	sched, gc *metrics.Float64Histogram
	cpu       []uint64 // /proc/stat's first line; nil when unreadable
}

var machineMetrics = []string{"/sched/latencies:seconds", "/sched/pauses/total/gc:seconds"}

func sampleMachine() machineSample {
	s := make([]metrics.Sample, len(machineMetrics))
	for i, name := range machineMetrics {
		s[i].Name = name
	}
	metrics.Read(s)
	return machineSample{sched: s[0].Value.Float64Histogram(), gc: s[1].Value.Float64Histogram(), cpu: procStat()}
}

// procStat reads the machine's CPU time counters: user, nice, system, idle,
// iowait, irq, softirq, steal, in clock ticks.
func procStat() []uint64 {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return nil
	}
	defer f.Close()
	line, err := bufio.NewReader(f).ReadBytes('\n')
	fields := bytes.Fields(line)
	if err != nil || len(fields) < 9 || string(fields[0]) != "cpu" {
		return nil
	}
	v := make([]uint64, 8)
	for i := range v {
		if v[i], err = strconv.ParseUint(string(fields[i+1]), 10, 64); err != nil {
			return nil
		}
	}
	return v
}

// since is what happened between a and b.
func (a machineSample) since(b machineSample) Machine {
	m := Machine{Busy: -1, Steal: -1}
	if a.cpu != nil && b.cpu != nil {
		var d [8]float64
		total := 0.0
		for i := range d {
			d[i] = float64(b.cpu[i] - a.cpu[i])
			total += d[i]
		}
		if total > 0 {
			const idle, iowait, steal = 3, 4, 7
			m.Steal = d[steal] / total
			m.Busy = (total - d[idle] - d[iowait] - d[steal]) / total
		}
	}
	m.SchedP99 = histQuantile(a.sched, b.sched, 0.99)
	m.SchedP999 = histQuantile(a.sched, b.sched, 0.999)
	m.GCPauseMax = histQuantile(a.gc, b.gc, 1)
	return m
}

// histQuantile is the upper bound of the bucket holding quantile q of the
// samples b gained over a (two readings of one runtime histogram).
func histQuantile(a, b *metrics.Float64Histogram, q float64) time.Duration {
	var n uint64
	for i := range b.Counts {
		n += b.Counts[i] - a.Counts[i]
	}
	if n == 0 {
		return 0
	}
	var c uint64
	for i := range b.Counts {
		c += b.Counts[i] - a.Counts[i]
		if float64(c) >= q*float64(n) {
			up := b.Buckets[i+1]
			if math.IsInf(up, 1) { // say the last bucket's lower bound
				up = b.Buckets[i]
			}
			return time.Duration(up * float64(time.Second))
		}
	}
	return 0
}

// MarshalJSON writes the durations in milliseconds.
func (m Machine) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Busy       float64 `json:"busy"`
		Steal      float64 `json:"steal"`
		SchedP99   float64 `json:"schedWaitP99Ms"`
		SchedP999  float64 `json:"schedWaitP999Ms"`
		GCPauseMax float64 `json:"gcPauseMaxMs"`
	}{m.Busy, m.Steal, ms(m.SchedP99), ms(m.SchedP999), ms(m.GCPauseMax)})
}
