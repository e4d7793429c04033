package loadgen

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

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
	// 21 players: at most one waits for an opponent at any time.
	if rep.Waiting > 1 {
		t.Errorf("waiting %d, want at most 1", rep.Waiting)
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
