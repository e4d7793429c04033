package gcfloor

import (
	"runtime"
	"runtime/metrics"
	"testing"
	"time"
)

func TestPercent(t *testing.T) {
	t.Parallel()
	const mib = 1 << 20
	for _, c := range []struct {
		live, floor uint64
		want        int
	}{
		{0, 64 * mib, 100},         // nothing known yet: the usual
		{8 * mib, 64 * mib, 700},   // goal 8 × 8 = 64 MiB
		{16 * mib, 64 * mib, 300},  // 16 × 4
		{32 * mib, 64 * mib, 100},  // twice the live heap is the floor
		{100 * mib, 64 * mib, 100}, // above it: the usual
		{10, 64 * mib, maxPercent}, // a nearly empty heap: bounded
		{8 * mib, 0, 100},          // no floor
	} {
		if got := Percent(c.live, c.floor); got != c.want {
			t.Errorf("Percent(%d, %d) = %d, want %d", c.live, c.floor, got, c.want)
		}
	}
}

// gogc reads the GOGC in force.
func gogc() uint64 {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// waitGOGC collects until GOGC is as ok wants it, for up to 5 s, and
// returns the last value seen.
func waitGOGC(ok func(uint64) bool) uint64 {
	var v uint64
	for range 100 {
		runtime.GC()
		if v = gogc(); ok(v) {
			return v
		}
		time.Sleep(50 * time.Millisecond)
	}
	return v
}

// keep holds what the test keeps live.
var keep []byte

// TestStart: with a small live heap a collection raises GOGC so that the
// heap goal is the floor; with a live heap of half the floor or more it is
// 100 again; stop puts it back and later collections leave it alone.
func TestStart(t *testing.T) {
	const floor = 64 << 20
	stop := Start(floor)
	defer func() {
		if stop != nil {
			stop()
		}
	}()
	Start(1 << 40)() // a second tuner while one runs does nothing, nor does its stop
	if v := waitGOGC(func(v uint64) bool { return v > 300 }); v <= 300 {
		t.Fatalf("with a small live heap GOGC stayed %d, want it raised towards a %d MiB goal", v, floor>>20)
	}
	keep = make([]byte, 48<<20)
	for i := range keep {
		keep[i] = 1 // touched, so that it is really live and resident
	}
	if v := waitGOGC(func(v uint64) bool { return v == 100 }); v != 100 {
		t.Fatalf("with 48 MiB live GOGC is %d, want 100", v)
	}
	keep = nil
	if v := waitGOGC(func(v uint64) bool { return v > 300 }); v <= 300 {
		t.Fatalf("after the live heap shrank GOGC stayed %d, want it raised again", v)
	}
	stop()
	stop = nil
	if v := gogc(); v != 100 {
		t.Fatalf("after stop GOGC is %d, want 100 as before", v)
	}
	runtime.GC()
	runtime.GC()
	time.Sleep(100 * time.Millisecond) // a cleanup in flight would run now
	if v := gogc(); v != 100 {
		t.Fatalf("a collection after stop set GOGC to %d", v)
	}
}
