// Package storetest is the conformance suite that every game store passes.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"maps"
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
	Expire(ctx context.Context, id, player string, deadline int64) (store.Game, error)
	Move(ctx context.Context, id, player string, x, y int, moveID string) (store.Game, error)
	Update(ctx context.Context, id string, fn func(*store.Game) error) (store.Game, error)
	Create(ctx context.Context, g store.Game) (store.Game, error)
	JoinInvite(ctx context.Context, player, code string) (store.Game, error)
	Active(ctx context.Context, player string) (store.Game, error)
	Live(ctx context.Context, limit int) ([]store.Game, error)
	Playing(ctx context.Context, fn func(store.Game) bool) error
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
		{"JoinGivesBackTheGameInProgress", testJoinInProgress},
		{"LeaveWhileWaiting", testLeaveWaiting},
		{"PlayToEveryEnd", testPlayToEnd},
		{"RefusalsChangeNothing", testRefusals},
		{"Abandon", testAbandon},
		{"ConcurrentJoins", testConcurrentJoins},
		{"ConcurrentMoves", testConcurrentMoves},
		{"WatchStats", testWatchStats},
		{"MoveIDsApplyOnce", testMoveIDs},
		{"Resign", testResign},
		{"AwayAndForfeit", testAwayForfeit},
		{"FriendInvite", testInvite},
		{"InviteWaitsForItsPlayer", testInviteAway},
		{"BotGame", testBotGame},
		{"Rematch", testRematch},
		{"ActiveAndLive", testActiveLive},
		{"ConcurrentUpdates", testConcurrentUpdates},
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

// testJoinInProgress: a player seated in a quick game in progress who joins
// again (a join whose answer was lost, retried) gets that game back, not a
// second one; once it is over, a join opens a new game.
func testJoinInProgress(t *testing.T, s Store) {
	g, x, o := start(t, s)
	for _, p := range []string{o, x} {
		again, err := s.Join(ctx(t), p, store.NewID())
		if err != nil || again.ID != g.ID || again.Status != game.InProgress || again.PlayerX != x || again.PlayerO != o {
			t.Fatalf("Join again = %+v, %v; want game %s in progress", again, err, g.ID)
		}
	}
	if _, err := s.Leave(ctx(t), g.ID, x); err != nil {
		t.Fatal(err)
	}
	id := store.NewID()
	n, err := s.Join(ctx(t), o, id)
	if err != nil || n.ID != id || n.Status != game.Waiting {
		t.Fatalf("Join after the game ended = %+v, %v; want new waiting game %s", n, err, id)
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
			if g, err = s.Move(ctx(t), g.ID, p, m[0], m[1], ""); err != nil {
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
	if _, err := s.Move(ctx(t), g.ID, x, 1, 1, ""); err != nil {
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
		if _, err := s.Move(ctx(t), tt.id, tt.p, tt.x, tt.y, ""); !errors.Is(err, tt.target) {
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
	if _, err := s.Move(ctx(t), g.ID, x, 0, 0, ""); err != nil {
		t.Fatal(err)
	}
	a, err := s.Leave(ctx(t), g.ID, o)
	if err != nil || a.Status != game.Abandoned || a.Ended.IsZero() {
		t.Fatalf("Leave = %+v, %v; want abandoned", a, err)
	}
	if _, err := s.Leave(ctx(t), g.ID, x); !errors.Is(err, game.ErrOver) {
		t.Errorf("second Leave = %v, want game.ErrOver", err)
	}
	if _, err := s.Move(ctx(t), g.ID, x, 1, 1, ""); !errors.Is(err, game.ErrOver) {
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
					got, err := s.Move(ctx(t), g.ID, p, sq%3, sq/3, "")
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
	if _, err := s.Move(ctx(t), g.ID, x, 0, 0, ""); err != nil {
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

func testMoveIDs(t *testing.T, s Store) {
	g, x, o := start(t, s)
	first, err := s.Move(ctx(t), g.ID, x, 1, 1, "m1")
	if err != nil || first.Moves != 1 {
		t.Fatalf("Move = %d moves, %v", first.Moves, err)
	}
	again, err := s.Move(ctx(t), g.ID, x, 1, 1, "m1")
	if !errors.Is(err, store.ErrDuplicateMove) || again.Moves != 1 || again.MoveNumber(game.X, "m1") != 1 {
		t.Fatalf("resent move = %d moves, %v; want ErrDuplicateMove with the game unchanged", again.Moves, err)
	}
	// The same id from the other player is another move, with its own
	// number when it is resent.
	if g, err = s.Move(ctx(t), g.ID, o, 0, 0, "m1"); err != nil || g.Moves != 2 {
		t.Fatalf("o's move m1 = %d moves, %v", g.Moves, err)
	}
	again, err = s.Move(ctx(t), g.ID, o, 0, 0, "m1")
	if !errors.Is(err, store.ErrDuplicateMove) || again.MoveNumber(game.O, "m1") != 2 || again.MoveNumber(game.X, "m1") != 1 {
		t.Fatalf("o's resent m1 = %v, numbered %d (x's %d); want ErrDuplicateMove, 2 (1)", err, again.MoveNumber(game.O, "m1"), again.MoveNumber(game.X, "m1"))
	}
	eventually(t, s, store.Stats{store.TotalGames: 1, store.TotalMoves: 2, store.GamesInProgress: 1})
}

func testResign(t *testing.T, s Store) {
	g, x, o := start(t, s)
	if _, err := s.Move(ctx(t), g.ID, x, 1, 1, ""); err != nil {
		t.Fatal(err)
	}
	r, err := s.Leave(ctx(t), g.ID, x)
	if err != nil || r.Status != game.Abandoned || r.Winner != game.O || r.Reason != "resign" {
		t.Fatalf("resign = %v %v %q, %v; want abandoned, o wins, resign", r.Status, r.Winner, r.Reason, err)
	}
	if _, err := s.Leave(ctx(t), g.ID, o); !errors.Is(err, game.ErrOver) {
		t.Errorf("leave after the end = %v, want game.ErrOver", err)
	}
	eventually(t, s, store.Stats{store.TotalGames: 1, store.TotalMoves: 1, store.AbandonedGames: 1})
}

func testAwayForfeit(t *testing.T, s Store) {
	g, x, o := start(t, s)
	now := time.Now()
	away, err := s.Update(ctx(t), g.ID, func(g *store.Game) error { return g.SetAway(o, 1000) })
	if err != nil || away.Away != [2]int64{0, 1000} || away.Version <= g.Version {
		t.Fatalf("SetAway = %v (version %d after %d), %v", away.Away, away.Version, g.Version, err)
	}
	// Back in time: the forfeit with the old deadline is refused.
	if _, err := s.Update(ctx(t), g.ID, func(g *store.Game) error { return g.SetBack(o) }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update(ctx(t), g.ID, func(g *store.Game) error { return g.Forfeit(o, 1000, now) }); !errors.Is(err, store.ErrNotAway) {
		t.Fatalf("forfeit after coming back = %v, want ErrNotAway", err)
	}
	// Away again and gone for good.
	if _, err := s.Update(ctx(t), g.ID, func(g *store.Game) error { return g.SetAway(o, 2000) }); err != nil {
		t.Fatal(err)
	}
	f, err := s.Update(ctx(t), g.ID, func(g *store.Game) error { return g.Forfeit(o, 2000, now) })
	if err != nil || f.Status != game.Abandoned || f.Winner != game.X || f.Reason != "forfeit" {
		t.Fatalf("forfeit = %v %v %q, %v", f.Status, f.Winner, f.Reason, err)
	}
	loaded, err := s.Game(ctx(t), g.ID)
	if err != nil || loaded.Reason != "forfeit" || loaded.Winner != game.X || loaded.Team(x) != game.X {
		t.Fatalf("stored forfeit %+v, %v", loaded, err)
	}
	eventually(t, s, store.Stats{store.TotalGames: 1, store.AbandonedGames: 1})
}

func testInvite(t *testing.T, s Store) {
	x, o := store.NewID(), store.NewID()
	code := store.NewInvite()
	w, err := s.Create(ctx(t), store.Game{ID: store.NewID(), PlayerX: x, Game: game.New(), Mode: store.ModeFriend, Invite: code, Created: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	// Quick matching never pairs with a friend's game.
	q, err := s.Join(ctx(t), store.NewID(), store.NewID())
	if err != nil || q.ID == w.ID {
		t.Fatalf("quick join took the friend game: %+v, %v", q, err)
	}
	if _, err := s.JoinInvite(ctx(t), o, "nope234567"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("wrong code = %v, want ErrNotFound", err)
	}
	if _, err := s.JoinInvite(ctx(t), x, code); !errors.Is(err, store.ErrNotPlayer) {
		t.Errorf("creator joining own invite = %v, want ErrNotPlayer", err)
	}
	g, err := s.JoinInvite(ctx(t), o, code)
	if err != nil || g.ID != w.ID || g.Status != game.InProgress || g.PlayerO != o || g.Invite != "" || g.Mode != store.ModeFriend {
		t.Fatalf("JoinInvite = %+v, %v", g, err)
	}
	if _, err := s.JoinInvite(ctx(t), store.NewID(), code); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("used code = %v, want ErrNotFound", err)
	}
	// A cancelled invite is gone.
	c2 := store.NewInvite()
	w2, err := s.Create(ctx(t), store.Game{ID: store.NewID(), PlayerX: x, Game: game.New(), Mode: store.ModeFriend, Invite: c2, Created: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Leave(ctx(t), w2.ID, x); err != nil {
		t.Fatal(err)
	}
	if _, err := s.JoinInvite(ctx(t), o, c2); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("cancelled code = %v, want ErrNotFound", err)
	}
}

// testInviteAway: a friend's game waits for its player, gone with its
// invite link out, until a deadline; Expire then deletes it, but only if
// the player is still away with that deadline and nobody came.
func testInviteAway(t *testing.T, s Store) {
	x, o := store.NewID(), store.NewID()
	invite := func() store.Game {
		t.Helper()
		g, err := s.Create(ctx(t), store.Game{ID: store.NewID(), PlayerX: x, Game: game.New(), Mode: store.ModeFriend, Invite: store.NewInvite(), Created: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	away := func(g store.Game, deadline int64) store.Game {
		t.Helper()
		a, err := s.Update(ctx(t), g.ID, func(g *store.Game) error { return g.SetAway(x, deadline) })
		if err != nil || a.Away != [2]int64{deadline, 0} || a.Status != game.Waiting {
			t.Fatalf("SetAway on a waiting invite = %v %v, %v", a.Status, a.Away, err)
		}
		return a
	}
	later := time.Now().Add(time.Hour).UnixMilli()

	// Only a friend's game waits for its player: a quick one does not.
	q, err := s.Join(ctx(t), x, store.NewID())
	if err != nil || q.Status != game.Waiting {
		t.Fatalf("Join = %+v, %v", q, err)
	}
	if _, err := s.Update(ctx(t), q.ID, func(g *store.Game) error { return g.SetAway(x, later) }); !errors.Is(err, game.ErrNotStarted) {
		t.Errorf("SetAway on a waiting quick game = %v, want game.ErrNotStarted", err)
	}
	if _, err := s.Leave(ctx(t), q.ID, x); err != nil {
		t.Fatal(err)
	}

	// Back in time: the invite stays, and Expire with the old deadline is refused.
	g := away(invite(), later)
	if back, err := s.Update(ctx(t), g.ID, func(g *store.Game) error { return g.SetBack(x) }); err != nil || back.Away != [2]int64{} {
		t.Fatalf("SetBack = %v, %v", back.Away, err)
	}
	if _, err := s.Expire(ctx(t), g.ID, x, later); !errors.Is(err, store.ErrNotAway) {
		t.Errorf("Expire after coming back = %v, want ErrNotAway", err)
	}
	// Away again: Expire needs this deadline, and the creator.
	away(g, later+1)
	if _, err := s.Expire(ctx(t), g.ID, x, later); !errors.Is(err, store.ErrNotAway) {
		t.Errorf("Expire with an old deadline = %v, want ErrNotAway", err)
	}
	if _, err := s.Expire(ctx(t), g.ID, o, later+1); !errors.Is(err, store.ErrNotPlayer) {
		t.Errorf("Expire by a stranger = %v, want ErrNotPlayer", err)
	}
	gone, err := s.Expire(ctx(t), g.ID, x, later+1)
	if err != nil || gone.ID != g.ID {
		t.Fatalf("Expire = %+v, %v", gone, err)
	}
	if _, err := s.Game(ctx(t), g.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("expired game: Game = %v, want ErrNotFound", err)
	}
	if _, err := s.JoinInvite(ctx(t), o, g.Invite); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("expired invite: JoinInvite = %v, want ErrNotFound", err)
	}
	if _, err := s.Active(ctx(t), x); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("expired invite: Active = %v, want ErrNotFound", err)
	}

	// The friend comes while the player is away: the game starts, the
	// player still away with that deadline, and Expire has nothing to do.
	g = away(invite(), later)
	a, err := s.Active(ctx(t), x)
	if err != nil || a.ID != g.ID || a.Status != game.Waiting {
		t.Fatalf("Active of the away player = %+v, %v; want its waiting invite", a, err)
	}
	started, err := s.JoinInvite(ctx(t), o, g.Invite)
	if err != nil || started.Status != game.InProgress || started.Away != [2]int64{later, 0} {
		t.Fatalf("JoinInvite while its player is away = %v %v, %v", started.Status, started.Away, err)
	}
	if _, err := s.Expire(ctx(t), g.ID, x, later); !errors.Is(err, store.ErrNotAway) {
		t.Errorf("Expire of a started game = %v, want ErrNotAway", err)
	}
	if _, err := s.Update(ctx(t), g.ID, func(g *store.Game) error { return g.Forfeit(x, later, time.Now()) }); err != nil {
		t.Errorf("forfeit at the carried deadline: %v", err)
	}

	// Past its deadline an invite is dead even if nothing expired it.
	g = away(invite(), time.Now().Add(-time.Second).UnixMilli())
	if _, err := s.JoinInvite(ctx(t), o, g.Invite); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("invite past its player's deadline: JoinInvite = %v, want ErrNotFound", err)
	}
	eventually(t, s, store.Stats{store.TotalGames: 1, store.AbandonedGames: 1})
}

func testBotGame(t *testing.T, s Store) {
	p := store.NewID()
	g := store.Game{ID: store.NewID(), PlayerX: p, PlayerO: store.BotPlayer, Game: game.New(), Mode: store.ModeBot, Level: "hard", Created: time.Now(), Started: time.Now()}
	if err := g.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx(t), g); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Move(ctx(t), g.ID, p, 1, 1, "a"); err != nil {
		t.Fatal(err)
	}
	got, err := s.Move(ctx(t), g.ID, store.BotPlayer, 0, 0, "")
	if err != nil || got.Moves != 2 || got.Level != "hard" || got.Mode != store.ModeBot {
		t.Fatalf("bot move = %+v, %v", got, err)
	}
	eventually(t, s, store.Stats{store.TotalGames: 1, store.TotalMoves: 2, store.GamesInProgress: 1})
}

func testRematch(t *testing.T, s Store) {
	g, x, o := start(t, s)
	if _, err := s.Update(ctx(t), g.ID, func(g *store.Game) error { _, err := g.OfferRematch(x, "n1"); return err }); !errors.Is(err, store.ErrNoRematch) {
		t.Fatalf("rematch of a game in progress = %v, want ErrNoRematch", err)
	}
	for i, m := range [][2]int{{0, 0}, {0, 1}, {1, 0}, {1, 1}, {2, 0}} {
		p := []string{x, o}[i%2]
		if _, err := s.Move(ctx(t), g.ID, p, m[0], m[1], ""); err != nil {
			t.Fatal(err)
		}
	}
	next := store.NewID()
	var both bool
	one, err := s.Update(ctx(t), g.ID, func(g *store.Game) (err error) { both, err = g.OfferRematch(x, next); return err })
	if err != nil || both || one.Rematch != [2]bool{true, false} || one.Next != "" {
		t.Fatalf("first offer = %v %q both=%v, %v", one.Rematch, one.Next, both, err)
	}
	two, err := s.Update(ctx(t), g.ID, func(g *store.Game) (err error) { both, err = g.OfferRematch(o, next); return err })
	if err != nil || !both || two.Next != next {
		t.Fatalf("second offer = %v %q both=%v, %v", two.Rematch, two.Next, both, err)
	}
	r, err := s.Create(ctx(t), store.RematchOf(&two, time.Now()))
	if err != nil || r.PlayerX != o || r.PlayerO != x || r.Status != game.InProgress {
		t.Fatalf("rematch game = %+v, %v", r, err)
	}
	active, err := s.Active(ctx(t), x)
	if err != nil || active.ID != next {
		t.Errorf("x's active game = %s, %v; want the rematch %s", active.ID, err, next)
	}
	eventually(t, s, store.Stats{store.TotalGames: 2, store.TotalMoves: 5, store.WonByX: 1, store.GamesInProgress: 1})
}

func testActiveLive(t *testing.T, s Store) {
	p := store.NewID()
	if _, err := s.Active(ctx(t), p); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Active of a newcomer = %v, want ErrNotFound", err)
	}
	g, x, o := start(t, s)
	g2, _, _ := start(t, s)
	w, err := s.Join(ctx(t), p, store.NewID())
	if err != nil {
		t.Fatal(err)
	}
	if a, err := s.Active(ctx(t), p); err != nil || a.ID != w.ID {
		t.Errorf("Active while waiting = %s, %v; want %s", a.ID, err, w.ID)
	}
	for _, q := range []string{x, o} {
		if a, err := s.Active(ctx(t), q); err != nil || a.ID != g.ID {
			t.Errorf("Active in game = %s, %v; want %s", a.ID, err, g.ID)
		}
	}
	live, err := s.Live(ctx(t), 100)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, l := range live {
		ids[l.ID] = true
	}
	if !ids[g.ID] || !ids[g2.ID] || ids[w.ID] {
		t.Errorf("Live = %v; want %s and %s, not the waiting %s", ids, g.ID, g2.ID, w.ID)
	}
	playing := map[string]bool{}
	err = s.Playing(ctx(t), func(l store.Game) bool {
		if l.Status != game.InProgress {
			t.Errorf("Playing gave game %s, %s", l.ID, l.Status)
		}
		playing[l.ID] = true
		return true
	})
	if err != nil || !maps.Equal(playing, ids) {
		t.Errorf("Playing = %v, %v; want what Live(100) gives, %v", playing, err, ids)
	}
	n := 0
	if err := s.Playing(ctx(t), func(store.Game) bool { n++; return false }); err != nil || n != 1 {
		t.Errorf("Playing asked to stop after one game called fn %d times, %v", n, err)
	}
	if _, err := s.Leave(ctx(t), g.ID, x); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Active(ctx(t), o); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Active after the game ended = %v, want ErrNotFound", err)
	}
	live, _ = s.Live(ctx(t), 100)
	for _, l := range live {
		if l.ID == g.ID {
			t.Error("an ended game is still live")
		}
	}
	if one, _ := s.Live(ctx(t), 1); len(one) != 1 {
		t.Errorf("Live(1) gave %d games", len(one))
	}
}

// testConcurrentUpdates: many goroutines bump the spectators of one game at
// once; with compare-and-set none of the increments is lost.
func testConcurrentUpdates(t *testing.T, s Store) {
	g, _, _ := start(t, s)
	var wg sync.WaitGroup
	for range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.Update(ctx(t), g.ID, func(g *store.Game) error { g.Watch(+1); return nil }); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	got, err := s.Game(ctx(t), g.ID)
	if err != nil || got.Spectators != 40 {
		t.Fatalf("spectators = %d, %v; want 40", got.Spectators, err)
	}
}
