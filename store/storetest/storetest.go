// Package storetest is the conformance suite that every game store passes.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tictac/tictac/game"
	"github.com/tictac/tictac/store"
)

// Store is the behaviour under test: what the hub and `tictac check` use.
type Store interface {
	Join(ctx context.Context, player, newID string) (store.Game, error)
	Leave(ctx context.Context, id, player string) (store.Game, error)
	Move(ctx context.Context, id, player string, x, y int) (store.Game, error)
	Game(ctx context.Context, id string) (store.Game, error)
	Stats(ctx context.Context) (store.Stats, error)
	WatchStats(ctx context.Context) (*store.Subscription, error)
	SetOnline(ctx context.Context, n int64) error
}

// Run runs the suite. open returns a new, empty store that lives until the
// test ends; each subtest gets its own.
func Run(t *testing.T, open func(t *testing.T) Store) {
	tests := []struct {
		name string
		fn   func(*testing.T, Store)
	}{
		{"JoinPairs", testJoinPairs},
		{"JoinIsIdempotentForTheWaiter", testJoinIdempotent},
		{"LeaveWhileWaiting", testLeaveWaiting},
		{"PlayToEveryEnd", testPlayToEnd},
		{"RefusalsChangeNothing", testRefusals},
		{"Abandon", testAbandon},
		{"ConcurrentJoins", testConcurrentJoins},
		{"ConcurrentMoves", testConcurrentMoves},
		{"WatchStats", testWatchStats},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, open(t))
		})
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

// start opens a game between two new players and returns it with their ids.
func start(t *testing.T, s Store) (g store.Game, x, o string) {
	t.Helper()
	x, o = store.NewID(), store.NewID()
	id := store.NewID()
	w, err := s.Join(ctx(t), x, id)
	if err != nil || w.ID != id || w.Status != game.Waiting {
		t.Fatalf("Join(x) = %+v, %v; want a new waiting game %s", w, err, id)
	}
	g, err = s.Join(ctx(t), o, store.NewID())
	if err != nil || g.ID != id || g.Status != game.InProgress || g.PlayerX != x || g.PlayerO != o {
		t.Fatalf("Join(o) = %+v, %v; want game %s in progress", g, err, id)
	}
	return g, x, o
}

func testJoinPairs(t *testing.T, s Store) {
	g, x, o := start(t, s)
	if g.Team(x) != game.X || g.Team(o) != game.O || g.Team("stranger") != game.Empty {
		t.Errorf("teams: x=%v o=%v stranger=%v", g.Team(x), g.Team(o), g.Team("stranger"))
	}
	if g.Started.IsZero() || g.Created.IsZero() {
		t.Errorf("times not set: %+v", g)
	}
	// The next joiner opens a new game rather than joining a full one.
	id := store.NewID()
	n, err := s.Join(ctx(t), store.NewID(), id)
	if err != nil || n.ID != id || n.Status != game.Waiting {
		t.Fatalf("third Join = %+v, %v; want new waiting game", n, err)
	}
}

func testJoinIdempotent(t *testing.T, s Store) {
	p := store.NewID()
	first, err := s.Join(ctx(t), p, store.NewID())
	if err != nil {
		t.Fatal(err)
	}
	again, err := s.Join(ctx(t), p, store.NewID())
	if err != nil || again.ID != first.ID || again.Status != game.Waiting {
		t.Fatalf("second Join = %+v, %v; want the same waiting game %s", again, err, first.ID)
	}
}

func testLeaveWaiting(t *testing.T, s Store) {
	p := store.NewID()
	w, err := s.Join(ctx(t), p, store.NewID())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Leave(ctx(t), w.ID, "stranger"); !errors.Is(err, store.ErrNotPlayer) {
		t.Errorf("Leave by a stranger = %v, want ErrNotPlayer", err)
	}
	left, err := s.Leave(ctx(t), w.ID, p)
	if err != nil || left.Status != game.Waiting {
		t.Fatalf("Leave = %+v, %v", left, err)
	}
	id := store.NewID()
	n, err := s.Join(ctx(t), store.NewID(), id)
	if err != nil || n.ID != id {
		t.Fatalf("Join after the waiter left = %+v, %v; want a new game, not the abandoned one", n, err)
	}
	if _, err := s.Game(ctx(t), w.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("left waiting game still loads: %v", err)
	}
	st, _ := s.Stats(ctx(t))
	if st[store.TotalGames] != 0 || st[store.AbandonedGames] != 0 {
		t.Errorf("a game that never started counted: %v", st)
	}
}

func testPlayToEnd(t *testing.T, s Store) {
	tests := []struct {
		moves  [][2]int
		status game.Status
		winner game.Mark
	}{
		{[][2]int{{0, 0}, {0, 1}, {1, 0}, {1, 1}, {2, 0}}, game.Finished, game.X},
		{[][2]int{{0, 0}, {2, 0}, {1, 0}, {1, 1}, {2, 2}, {0, 2}}, game.Finished, game.O},
		{[][2]int{{0, 0}, {1, 0}, {2, 0}, {1, 1}, {0, 1}, {2, 1}, {1, 2}, {0, 2}, {2, 2}}, game.FinishedDraw, game.Empty},
	}
	var moves int64
	for _, tt := range tests {
		g, x, o := start(t, s)
		for i, m := range tt.moves {
			p := x
			if i%2 == 1 {
				p = o
			}
			var err error
			if g, err = s.Move(ctx(t), g.ID, p, m[0], m[1]); err != nil {
				t.Fatalf("move %d: %v", i+1, err)
			}
			moves++
		}
		if g.Status != tt.status || g.Winner != tt.winner || g.Ended.IsZero() {
			t.Fatalf("ended %v %v (ended %v), want %v %v", g.Status, g.Winner, g.Ended, tt.status, tt.winner)
		}
		loaded, err := s.Game(ctx(t), g.ID)
		if err != nil {
			t.Fatal(err)
		}
		if loaded.Game != g.Game || len(loaded.History) != len(tt.moves) || loaded.PlayerX != x || loaded.PlayerO != o {
			t.Fatalf("loaded %+v, want %+v", loaded, g)
		}
		for i, m := range loaded.History {
			if m.X != tt.moves[i][0] || m.Y != tt.moves[i][1] || m.At.IsZero() {
				t.Fatalf("history[%d] = %+v, want %v with a time", i, m, tt.moves[i])
			}
		}
	}
	want := store.Stats{store.TotalGames: 3, store.TotalMoves: moves, store.WonByX: 1, store.WonByO: 1, store.TiedGames: 1}
	eventually(t, s, want)
}

func testRefusals(t *testing.T, s Store) {
	g, x, o := start(t, s)
	if _, err := s.Move(ctx(t), g.ID, x, 1, 1); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		id, p  string
		x, y   int
		target error
	}{
		{"out of turn", g.ID, x, 0, 0, game.ErrNotYourTurn},
		{"filled", g.ID, o, 1, 1, game.ErrOccupied},
		{"off board", g.ID, o, 3, 1, game.ErrOffBoard},
		{"stranger", g.ID, "stranger", 0, 0, store.ErrNotPlayer},
		{"no such game", "nope", o, 0, 0, store.ErrNotFound},
	}
	for _, tt := range tests {
		if _, err := s.Move(ctx(t), tt.id, tt.p, tt.x, tt.y); !errors.Is(err, tt.target) {
			t.Errorf("%s: got %v, want %v", tt.name, err, tt.target)
		}
	}
	loaded, err := s.Game(ctx(t), g.ID)
	if err != nil || loaded.Moves != 1 {
		t.Fatalf("after refusals: %d moves, %v", loaded.Moves, err)
	}
	eventually(t, s, store.Stats{store.TotalGames: 1, store.TotalMoves: 1, store.GamesInProgress: 1})
}

func testAbandon(t *testing.T, s Store) {
	g, x, o := start(t, s)
	if _, err := s.Move(ctx(t), g.ID, x, 0, 0); err != nil {
		t.Fatal(err)
	}
	a, err := s.Leave(ctx(t), g.ID, o)
	if err != nil || a.Status != game.Abandoned || a.Ended.IsZero() {
		t.Fatalf("Leave = %+v, %v; want abandoned", a, err)
	}
	if _, err := s.Leave(ctx(t), g.ID, x); !errors.Is(err, game.ErrOver) {
		t.Errorf("second Leave = %v, want game.ErrOver", err)
	}
	if _, err := s.Move(ctx(t), g.ID, x, 1, 1); !errors.Is(err, game.ErrOver) {
		t.Errorf("Move after abandon = %v, want game.ErrOver", err)
	}
	eventually(t, s, store.Stats{store.TotalGames: 1, store.TotalMoves: 1, store.AbandonedGames: 1})
}

// testConcurrentJoins: many players join at once; every pair is well formed.
func testConcurrentJoins(t *testing.T, s Store) {
	const n = 100
	games := make([]store.Game, n)
	players := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		players[i] = store.NewID()
		wg.Add(1)
		go func() {
			defer wg.Done()
			games[i], errs[i] = s.Join(ctx(t), players[i], store.NewID())
		}()
	}
	wg.Wait()
	seats := map[string][]string{}
	for i, g := range games {
		if errs[i] != nil {
			t.Fatalf("join %d: %v", i, errs[i])
		}
		seats[g.ID] = append(seats[g.ID], players[i])
	}
	if len(seats) != n/2 {
		t.Fatalf("%d players made %d games, want %d", n, len(seats), n/2)
	}
	for id, ps := range seats {
		g, err := s.Game(ctx(t), id)
		if err != nil {
			t.Fatal(err)
		}
		if len(ps) != 2 || g.Status != game.InProgress || g.PlayerX == g.PlayerO || g.Team(ps[0]) == game.Empty || g.Team(ps[1]) == game.Empty {
			t.Fatalf("game %s: players %v, stored %+v", id, ps, g)
		}
	}
	eventually(t, s, store.Stats{store.TotalGames: n / 2, store.GamesInProgress: n / 2})
}

// testConcurrentMoves: both players fire every square at once, many times over;
// exactly one move wins each move number and the game stays legal.
func testConcurrentMoves(t *testing.T, s Store) {
	g, x, o := start(t, s)
	var wg sync.WaitGroup
	var mu sync.Mutex
	accepted := map[int]int{} // move number -> how many calls got it
	for round := 0; round < 9; round++ {
		for _, p := range []string{x, o} {
			for sq := range 9 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					got, err := s.Move(ctx(t), g.ID, p, sq%3, sq/3)
					if err == nil {
						mu.Lock()
						accepted[got.Moves]++
						mu.Unlock()
					}
				}()
			}
		}
		wg.Wait()
	}
	final, err := s.Game(ctx(t), g.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !final.Status.Over() {
		t.Fatalf("game not over after every square was tried: %+v", final)
	}
	for n := 1; n <= final.Moves; n++ {
		if accepted[n] != 1 {
			t.Errorf("move %d accepted %d times, want once", n, accepted[n])
		}
	}
	if len(accepted) != final.Moves {
		t.Errorf("accepted move numbers %v, game has %d moves", accepted, final.Moves)
	}
}

func testWatchStats(t *testing.T, s Store) {
	c, cancel := context.WithCancel(ctx(t))
	sub, err := s.WatchStats(c)
	if err != nil {
		t.Fatal(err)
	}
	first := <-sub.C()
	if first != (store.Stats{}) {
		t.Errorf("first value of an empty store = %v", first)
	}
	g, x, _ := start(t, s)
	if _, err := s.Move(ctx(t), g.ID, x, 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.SetOnline(ctx(t), 2); err != nil {
		t.Fatal(err)
	}
	want := store.Stats{store.TotalGames: 1, store.TotalMoves: 1, store.GamesInProgress: 1, store.PlayersOnline: 2}
	timeout := time.After(10 * time.Second)
	for got := first; got != want; {
		select {
		case got = <-sub.C():
		case <-timeout:
			t.Fatalf("stats feed reached %v, want %v", got, want)
		}
	}
	cancel()
	timeout = time.After(10 * time.Second)
	for {
		select {
		case _, ok := <-sub.C():
			if !ok {
				return
			}
		case <-timeout:
			t.Fatal("subscription still open after its context ended")
		}
	}
}

// eventually waits for Stats to equal want, ignoring PlayersOnline.
func eventually(t *testing.T, s Store, want store.Stats) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := s.Stats(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		got[store.PlayersOnline] = 0
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("stats %s, want %s", format(got), format(want))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func format(s store.Stats) string {
	out := ""
	for i, v := range s {
		out += fmt.Sprintf("%s=%d ", store.Stat(i), v)
	}
	return out
}
