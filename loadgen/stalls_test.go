package loadgen

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestStalls(t *testing.T) {
	t.Parallel()
	const start = 3 * time.Second
	at := func(window int) time.Duration { return start + time.Duration(window)*StallWindow + StallWindow/2 }

	// A tail spread over the run: one slow move in each of 100 stretches,
	// among fast ones everywhere.
	spread := newWindows(start, 10*time.Second)
	for i := range 200 {
		spread.record(at(i), 300*time.Microsecond)
		if i%2 == 0 {
			spread.record(at(i), 6*time.Millisecond)
		}
	}
	got := spread.stalls(7*time.Millisecond, 10*time.Second)
	want := Stalls{Over: 5 * time.Millisecond, Moves: 100, Windows: 100, Of: 200, HalfIn: 50}
	if got == nil || *got != want {
		t.Errorf("spread: %+v, want %+v", got, want)
	}

	// The same slow moves bunched in two stalls, 70 and 30 of them.
	bunched := newWindows(start, 10*time.Second)
	for i := range 100 {
		w := 40
		if i >= 70 {
			w = 150
		}
		bunched.record(at(w), 20*time.Millisecond)
		bunched.record(at(i), 4999*time.Microsecond) // under the step: not counted
	}
	got = bunched.stalls(5*time.Millisecond, 10*time.Second)
	want = Stalls{Over: 5 * time.Millisecond, Moves: 100, Windows: 2, Of: 200, HalfIn: 1}
	if got == nil || *got != want {
		t.Errorf("bunched: %+v, want %+v", got, want)
	}

	// Moves sent before the window count in its first stretch, after it in
	// its last; a run cut short reads only the stretches it ran.
	edges := newWindows(start, time.Second)
	edges.record(start-time.Millisecond, time.Second)
	edges.record(start+time.Hour, time.Second)
	edges.record(at(5), time.Second)
	if got, want := edges.stalls(time.Second, time.Second), (Stalls{Over: time.Second, Moves: 3, Windows: 3, Of: 20, HalfIn: 2}); got == nil || *got != want {
		t.Errorf("edges: %+v, want %+v", got, want)
	}
	if got, want := edges.stalls(time.Second, 4*StallWindow), (Stalls{Over: time.Second, Moves: 1, Windows: 1, Of: 4, HalfIn: 1}); got == nil || *got != want {
		t.Errorf("cut short: %+v, want %+v", got, want)
	}

	if got := edges.stalls(99*time.Microsecond, time.Second); got != nil {
		t.Errorf("a p99 under the smallest step: %+v, want nil", got)
	}
}

// The report says where the tail came from, in text and JSON.
func TestStallsReport(t *testing.T) {
	t.Parallel()
	r := &Report{Players: 2, Stalls: &Stalls{Over: 2 * time.Millisecond, Moves: 12, Windows: 3, Of: 200, HalfIn: 1}}
	var text strings.Builder
	if err := r.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if want := "opponent at or over 2ms: 12 moves, sent in 3 of 200 50ms stretches; the worst 1 hold half\n"; !strings.Contains(text.String(), want) {
		t.Errorf("text report lacks %q:\n%s", want, text.String())
	}
	var js strings.Builder
	if err := r.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back struct {
		Stalls map[string]float64 `json:"stalls"`
	}
	if err := json.Unmarshal([]byte(js.String()), &back); err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{"overMs": 2, "moves": 12, "windows": 3, "of": 200, "halfIn": 1, "windowMs": 50}
	for k, v := range want {
		if back.Stalls[k] != v {
			t.Errorf("JSON stalls %s = %v, want %v (%v)", k, back.Stalls[k], v, back.Stalls)
		}
	}
}
