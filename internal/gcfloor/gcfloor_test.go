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
		live, scan, floor uint64
		want              int
	}{
		{8 * mib, 6 * mib, 64 * mib, 400},  // goal 8 + (8+6)×4 = 64 MiB
		{16 * mib, 8 * mib, 64 * mib, 200}, // 16 + (16+8)×2
		{28 * mib, 8 * mib, 64 * mib, 100}, // the usual goal is the floor
		{100 * mib, 0, 64 * mib, 100},      // above it: the usual
		{1 * mib, 0, 64 * mib, 1600},       // the minimum heap, 4 MiB×16, is the floor
		{0, 0, 64 * mib, 1600},             // nothing known yet: the same
		{8 * mib, 6 * mib, 0, 100},         // no floor
		{0, 0, 2 * mib, 100},               // a floor under Go's own minimum
	} {
		if got := Percent(c.live, c.scan, c.floor); got != c.want {
			t.Errorf("Percent(%d, %d, %d) = %d, want %d", c.live, c.scan, c.floor, got, c.want)
		}
	}
}

// goal reads the runtime's heap goal.
func goal() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/goal:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
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
	before := gogc() // 100, unless the test runs with GOGC set
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
	// The goal the runtime set is the floor, not more: it also counts the
	// stacks and globals, and scales its minimum heap with GOGC.
	if g := goal(); g < floor*3/4 || g > floor*21/20 {
		t.Fatalf("heap goal %d MiB, want about the %d MiB floor", g>>20, floor>>20)
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
	if v := gogc(); v != before {
		t.Fatalf("after stop GOGC is %d, want %d as before", v, before)
	}
	runtime.GC()
	runtime.GC()
	time.Sleep(100 * time.Millisecond) // a cleanup in flight would run now
	if v := gogc(); v != before {
		t.Fatalf("a collection after stop set GOGC to %d", v)
	}
}
