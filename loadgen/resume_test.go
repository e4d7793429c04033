package loadgen

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tictac/tictac/hub"
	"github.com/tictac/tictac/internal/testenv"
	"github.com/tictac/tictac/store"
)

// compareAcked checks every game of acked against the store and returns how
// many moves were acknowledged.
func compareAcked(t *testing.T, acked map[string][]AckedMove, game func(id string) (store.Game, error)) (moves int) {
	t.Helper()
	for id, ms := range acked {
		g, err := game(id)
		if err != nil {
			t.Errorf("game %s: %v", id, err)
			continue
		}
		stored := make([]AckedMove, len(g.History))
		for i, m := range g.History {
			stored[i] = AckedMove{Move: i + 1, X: m.X, Y: m.Y, Team: m.Team.String(), ID: m.ID}
		}
		if err := CompareAcked(ms, stored); err != nil {
			t.Errorf("game %s: %v", id, err)
		}
		moves += len(ms)
	}
	return moves
}

// TestPlayResume: players with Resume ride out every socket being dropped
// twice mid-game (a proxy between them and the server is cut and restored),
// come back into their games, resend what was not acknowledged, and finish
// their games at the end; what they were acknowledged is what is stored.
func TestPlayResume(t *testing.T) {
	t.Parallel()
	st, url := startHub(t, hub.Options{Grace: 20 * time.Second})
	proxy := testenv.StartProxy(t, strings.TrimPrefix(url, "http://"))
	go func() {
		for range 2 {
			time.Sleep(time.Second)
			proxy.Cut()
			time.Sleep(200 * time.Millisecond)
			proxy.Restore()
		}
	}()
	rep, err := Play(t.Context(), PlayConfig{
		URLs: []string{"ws://" + proxy.Addr + "/live"}, Players: 40, Think: 20 * time.Millisecond,
		Duration: 3 * time.Second, Ramp: 200 * time.Millisecond, Timeout: 2 * time.Second, Resume: true, Seed: 3,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := rep.Err(); err != nil {
		t.Fatal(err)
	}
	moves := compareAcked(t, rep.Acked, func(id string) (store.Game, error) { return st.Game(t.Context(), id) })
	t.Logf("%d games, %d acked moves, %d disconnects, %d resends, %d unfinished, errors %v",
		len(rep.Acked), moves, rep.Disconnects, rep.Resends, rep.Unfinished, rep.ErrorCodes)
	if rep.Disconnects < 40 || len(rep.Acked) < 20 || rep.Unfinished != 0 {
		t.Errorf("%d disconnects, %d games, %d unfinished %v: want every player cut off, games played and finished",
			rep.Disconnects, len(rep.Acked), rep.Unfinished, rep.UnfinishedGames)
	}
	// Every game the players were in has ended.
	err = st.Games(t.Context(), func(g store.Game) bool {
		if !g.Status.Over() {
			t.Errorf("game %s is %s after the players finished: x %s, o %s, %d moves, away %v, version %d, created %s, started %s",
				g.ID, g.Status, g.PlayerX, g.PlayerO, g.Moves, g.Away, g.Version, g.Created.Format(time.StampMilli), g.Started.Format(time.StampMilli))
		}
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
}

// startHub serves a hub over a fresh embedded store (soft) for the test and
// returns the store and the server's http:// address.
func startHub(t *testing.T, opt hub.Options) (*store.Bolt, string) {
	return startHubOn(t, opt, nil)
}

// startHubOn is startHub with the hub's store wrapped by wrap, if not nil.
func startHubOn(t *testing.T, opt hub.Options, wrap func(*store.Bolt) hub.Store) (*store.Bolt, string) {
	st, err := store.OpenBolt(filepath.Join(t.TempDir(), "t.db"), store.BoltOptions{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	opt.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelError}))
	var hs hub.Store = st
	if wrap != nil {
		hs = wrap(st)
	}
	h := hub.New(hs, hub.NewMemoryBus(), opt)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); h.Run(ctx) }()
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		cctx, c := context.WithTimeout(context.Background(), 5*time.Second)
		defer c()
		h.Close(cctx)
		srv.Close()
		cancel()
		<-done
		st.Close()
	})
	return st, srv.URL
}

// slowJoins answers every quick join late.
type slowJoins struct {
	*store.Bolt
	delay time.Duration
}

func (s slowJoins) Join(ctx context.Context, player, newID string) (store.Game, error) {
	time.Sleep(s.delay)
	return s.Bolt.Join(ctx, player, newID)
}

// TestPlayLeavesAfterLateJoin: a resuming player whose join is answered
// after the run ended, with a game to wait in, leaves it at once instead of
// waiting for an opponent until the run's Finish cuts it off.
func TestPlayLeavesAfterLateJoin(t *testing.T) {
	t.Parallel()
	_, url := startHubOn(t, hub.Options{}, func(b *store.Bolt) hub.Store { return slowJoins{b, 1500 * time.Millisecond} })
	rep, err := Play(t.Context(), PlayConfig{
		URLs: []string{"ws" + strings.TrimPrefix(url, "http") + "/live"}, Players: 1,
		Duration: time.Second, Timeout: 2 * time.Second, Finish: 4 * time.Second, Resume: true, Seed: 5,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := rep.Err(); err != nil {
		t.Fatal(err)
	}
	// The join goes out within the run's second (a socket and a session
	// away) and is answered after it.
	if len(rep.Joined) != 1 {
		t.Fatalf("joined %v, want one game (the join answered late)", rep.Joined)
	}
	if rep.Cut != 0 {
		t.Errorf("%d players cut off at the end of Finish, want 0: the player waited in its game instead of leaving", rep.Cut)
	}
}

type testWriter struct{ tb testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.tb.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

func TestCompareAcked(t *testing.T) {
	t.Parallel()
	m := func(n, x, y int, team, id string) AckedMove {
		return AckedMove{Move: n, X: x, Y: y, Team: team, ID: id}
	}
	stored := []AckedMove{m(1, 1, 1, "x", "a"), m(2, 0, 0, "o", "b"), m(3, 2, 2, "x", "c")}
	tests := []struct {
		name  string
		acked []AckedMove
		ok    bool
	}{
		{"same, in another order", []AckedMove{m(2, 0, 0, "o", "b"), m(3, 2, 2, "x", "c"), m(1, 1, 1, "x", "a")}, true},
		{"acked twice", []AckedMove{m(1, 1, 1, "x", "a"), m(1, 1, 1, "x", "a"), m(2, 0, 0, "o", "b"), m(3, 2, 2, "x", "c")}, true},
		{"a stored move never acked", []AckedMove{m(1, 1, 1, "x", "a"), m(2, 0, 0, "o", "b")}, false},
		{"an acked move not stored", append(slices.Clone(stored), m(4, 0, 1, "o", "d")), false},
		{"another square", []AckedMove{m(1, 1, 1, "x", "a"), m(2, 0, 1, "o", "b"), m(3, 2, 2, "x", "c")}, false},
		{"another number", []AckedMove{m(1, 1, 1, "x", "a"), m(3, 0, 0, "o", "b"), m(2, 2, 2, "x", "c")}, false},
		{"one number, two moves", []AckedMove{m(1, 1, 1, "x", "a"), m(1, 1, 1, "x", "z"), m(2, 0, 0, "o", "b"), m(3, 2, 2, "x", "c")}, false},
	}
	for _, tt := range tests {
		if err := CompareAcked(tt.acked, stored); (err == nil) != tt.ok {
			t.Errorf("%s: CompareAcked = %v, want ok %v", tt.name, err, tt.ok)
		}
	}
}
