package loadgen

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/tictac/tictac/hub"
	"github.com/tictac/tictac/loadgen/relay"
)

// startRelay serves a floor relay for the test and returns its ws:// URL.
func startRelay(tb testing.TB) string {
	tb.Helper()
	_, url := startRelayHandle(tb)
	return url
}

// startRelayHandle is startRelay that also returns the relay, to close it early.
func startRelayHandle(tb testing.TB) (*relay.Relay, string) {
	tb.Helper()
	rl := relay.New()
	srv := httptest.NewServer(rl)
	tb.Cleanup(func() {
		rl.Close()
		srv.Close()
	})
	return rl, wsURL(srv)
}

func wsURL(srv *httptest.Server) string {
	return "ws" + strings.TrimPrefix(srv.URL, "http") + "/live"
}

func TestPlayAgainstRelay(t *testing.T) {
	t.Parallel()
	url := startRelay(t)
	rep, err := Play(t.Context(), PlayConfig{
		URLs:     []string{url},
		Players:  50,
		Duration: 2 * time.Second,
		Ramp:     200 * time.Millisecond,
		Sources:  2,
		Seed:     1,
	})
	if err != nil {
		t.Fatalf("Play: %v", err)
	}
	t.Logf("moves %d games %d mover p50 %v p99 %v opponent p99 %v", rep.Moves, rep.Games, rep.Mover.P50, rep.Mover.P99, rep.Opponent.P99)
	if err := rep.Err(); err != nil {
		t.Fatal(err)
	}
	if rep.Games == 0 || rep.Moves < 5*rep.Games {
		t.Errorf("games %d, moves %d: want games above 0 and at least 5 moves a game", rep.Games, rep.Moves)
	}
	if rep.Errors != 0 || rep.Timeouts != 0 || rep.DialErrors != 0 || rep.Disconnects != 0 {
		t.Errorf("errors %d %v, timeouts %d, dial errors %d, disconnects %d (%s): want none",
			rep.Errors, rep.ErrorCodes, rep.Timeouts, rep.DialErrors, rep.Disconnects, rep.FirstError)
	}
	if rep.Mover.Count == 0 || rep.Opponent.Count == 0 {
		t.Errorf("latency counts %d, %d: want both above 0", rep.Mover.Count, rep.Opponent.Count)
	}
	if rep.Connected != 50 {
		t.Errorf("connected at end %d, want 50", rep.Connected)
	}
	// The moves at the p99 and over, by when they were sent: 1% of them at
	// least (the step is at or under the p99's bucket), in the window's
	// stretches.
	if s := rep.Stalls; rep.Opponent.P99 >= 100*time.Microsecond &&
		(s == nil || s.Over > rep.Opponent.P99 || 100*uint64(s.Moves)+100 < rep.Opponent.Count || uint64(s.Moves) > rep.Opponent.Count ||
			s.Of != 40 || s.Windows < 1 || s.Windows > s.Of || s.HalfIn < 1 || s.HalfIn > s.Windows) {
		t.Errorf("stalls %+v with opponent %+v: want the moves at or over a step under the p99, in 1-40 stretches", s, rep.Opponent)
	}
	// The machine's load over the window: players played on it.
	if runtime.GOOS == "linux" && (rep.Machine.Busy <= 0 || rep.Machine.Steal < 0) {
		t.Errorf("machine %+v: want the window's CPU time read", rep.Machine)
	}
}

func TestPlayWithThink(t *testing.T) {
	t.Parallel()
	url := startRelay(t)
	rep, err := Play(t.Context(), PlayConfig{
		URLs: []string{url}, Players: 21, Think: 20 * time.Millisecond, Jitter: 0.5,
		Duration: time.Second, Seed: 2,
	})
	if err != nil {
		t.Fatalf("Play: %v", err)
	}
	if err := rep.Err(); err != nil {
		t.Fatal(err)
	}
	if rep.Games == 0 {
		t.Errorf("games %d, want some", rep.Games)
	}
	// 21 players: at most one waits for an opponent at any time. A player
	// counts as waiting from its joinGame until its game's in-progress
	// status, so at the end of the run one more may be counted whose
	// pairing's frames are on their way (CI saw 2 once).
	if rep.Waiting > 2 {
		t.Errorf("waiting %d, want at most 2", rep.Waiting)
	}
}

func TestPlayRefusesRemote(t *testing.T) {
	t.Parallel()
	_, err := Play(t.Context(), PlayConfig{URLs: []string{"ws://example.com/live"}, Players: 1, Duration: time.Second})
	if err == nil {
		t.Fatal("Play against example.com: got nil error, want ErrNotLoopback")
	}
}

var _ http.Handler = (*relay.Relay)(nil)

func TestPlayCancelled(t *testing.T) {
	t.Parallel()
	url := startRelay(t)
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	rep, err := Play(ctx, PlayConfig{URLs: []string{url}, Players: 10, Duration: time.Minute})
	if err != nil {
		t.Fatalf("Play: %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("cancelled run took %v, want it to stop promptly", d)
	}
	if err := rep.Err(); err != nil {
		t.Fatal(err)
	}
}

// TestIsStatsMatchesServer: the prefix players skip live-stats frames by is
// the one the server sends (were it not, every stats frame would be decoded
// in full: still correct, but the load generator would spend its cores on
// them), and no other frame of a game starts with it.
func TestIsStatsMatchesServer(t *testing.T) {
	t.Parallel()
	_, url := startHub(t, hub.Options{StatsInterval: 10 * time.Millisecond})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var socks [2]*websocket.Conn
	for i := range socks {
		c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(url, "http")+"/live", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		if err := c.Write(ctx, websocket.MessageText, []byte(`{"action":"joinGame","data":{"mode":"quick"}}`)); err != nil {
			t.Fatal(err)
		}
		socks[i] = c
	}
	// Both players' frames until the game started and stats came: the
	// joining player's frames (joinGame, playerJoin, updateGameStatus) are
	// not stats, the statsUpdate frames are.
	var stats, other int
	for stats == 0 || other < 3 {
		_, b, err := socks[1].Read(ctx)
		if err != nil {
			t.Fatalf("after %d stats and %d other frames: %v", stats, other, err)
		}
		var f struct{ Action string }
		if err := json.Unmarshal(b, &f); err != nil {
			t.Fatal(err)
		}
		if got, want := isStats(b), f.Action == "statsUpdate"; got != want {
			t.Fatalf("isStats(%s) = %v, want %v", b, got, want)
		}
		if f.Action == "statsUpdate" {
			stats++
		} else {
			other++
		}
	}
}
