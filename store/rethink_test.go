package store_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	r "gopkg.in/rethinkdb/rethinkdb-go.v6"

	"github.com/tictac/tictac/game"
	"github.com/tictac/tictac/internal/testenv"
	"github.com/tictac/tictac/store"
	"github.com/tictac/tictac/store/storetest"
)

var _ storetest.Store = (*store.Rethink)(nil)

// newDB returns a database name of its own for one test, so that tests can
// share a server (and a real RethinkDB given by RETHINKDB_ADDR).
func newDB() string { return "test_" + store.NewID() }

type testLog struct{ tb testing.TB }

func (w testLog) Write(p []byte) (int, error) {
	w.tb.Helper()
	w.tb.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// openRethink opens a store on addr and closes it when the test ends.
func openRethink(tb testing.TB, addr, db string, opts ...func(*store.RethinkOptions)) *store.Rethink {
	tb.Helper()
	opt := store.RethinkOptions{Addrs: []string{addr}, DB: db, FlushInterval: 50 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(testLog{tb}, nil))}
	for _, o := range opts {
		o(&opt)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := store.OpenRethink(ctx, opt)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("close: %v", err)
		}
	})
	return s
}

func replica(name string) func(*store.RethinkOptions) {
	return func(o *store.RethinkOptions) { o.Replica = name }
}

func TestRethinkConformance(t *testing.T) {
	t.Parallel()
	addr := testenv.RethinkDB(t)
	storetest.Run(t, func(t *testing.T) storetest.Store {
		return openRethink(t, addr, newDB())
	})
}

// TestRethinkReplicas runs two stores on one database, as two replicas of
// the server would.
func TestRethinkReplicas(t *testing.T) {
	t.Parallel()
	addr := testenv.RethinkDB(t)
	two := func(t *testing.T) [2]*store.Rethink {
		db := newDB()
		return [2]*store.Rethink{openRethink(t, addr, db, replica("a")), openRethink(t, addr, db, replica("b"))}
	}
	// pair seats a new player x through a and a new player o through b in
	// one game, and returns it with them.
	pair := func(t *testing.T, a, b *store.Rethink) (w store.Game, x, o string) {
		t.Helper()
		x, o = store.NewID(), store.NewID()
		w, err := a.Join(t.Context(), x, store.NewID())
		if err != nil {
			t.Fatal(err)
		}
		if g, err := b.Join(t.Context(), o, store.NewID()); err != nil || g.ID != w.ID {
			t.Fatalf("Join on the other replica = %+v, %v; want game %s", g, err, w.ID)
		}
		return w, x, o
	}

	t.Run("JoinsPairAcrossReplicas", func(t *testing.T) {
		t.Parallel()
		s := two(t)
		const n = 60
		games := make([]store.Game, n)
		players := make([]string, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			players[i] = store.NewID()
			wg.Go(func() { games[i], errs[i] = s[i%2].Join(t.Context(), players[i], store.NewID()) })
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
			g, err := s[0].Game(t.Context(), id)
			if err != nil {
				t.Fatal(err)
			}
			if len(ps) != 2 || g.Status != game.InProgress || g.PlayerX == g.PlayerO || g.Team(ps[0]) == game.Empty || g.Team(ps[1]) == game.Empty {
				t.Fatalf("game %s: players %v, stored %+v", id, ps, g)
			}
		}
		want := store.Stats{store.TotalGames: n / 2, store.GamesInProgress: n / 2}
		converge(t, s[:], want)
	})

	// Moves alternate between replicas: a replica whose game moved on
	// elsewhere must neither refuse a good move nor take a bad one (what a
	// replica that remembered its games, to move with one query, would have
	// to get right).
	t.Run("MovesThroughTwoReplicas", func(t *testing.T) {
		t.Parallel()
		s := two(t)
		a, b := s[0], s[1]
		w, x, o := pair(t, a, b)
		move := func(s *store.Rethink, p string, sq int, wantErr error, wantMoves int) {
			t.Helper()
			g, err := s.Move(t.Context(), w.ID, p, sq%3, sq/3, "")
			if !errors.Is(err, wantErr) || g.Moves != wantMoves {
				t.Fatalf("move %d: %v with %d moves, want %v with %d", sq, err, g.Moves, wantErr, wantMoves)
			}
		}
		move(a, x, 0, nil, 1)                 // a knows move 1
		move(b, o, 4, nil, 2)                 // through b: a's game is stale
		move(a, x, 1, nil, 3)                 // a thinks it is o's turn: the stored game says x's
		move(a, x, 2, game.ErrNotYourTurn, 3) // a knows it all: a real refusal
		move(b, o, 1, game.ErrOccupied, 3)    // b is stale: the square was taken since
		move(b, o, 3, nil, 4)
		move(a, o, 5, game.ErrNotYourTurn, 4) // o's move on a's stale game looks fine; the write says no
		move(a, x, 2, nil, 5)                 // x wins on the top row
		g, err := b.Game(t.Context(), w.ID)
		if err != nil {
			t.Fatal(err)
		}
		if g.Status != game.Finished || g.Winner != game.X || g.Moves != 5 {
			t.Fatalf("stored game: %v, winner %v, %d moves; want won by x in 5", g.Status, g.Winner, g.Moves)
		}
	})

	t.Run("LearntGameTakesNoRead", func(t *testing.T) {
		t.Parallel()
		s := two(t)
		a, b := s[0], s[1]
		w, x, o := pair(t, a, b)
		// move plays through s and returns how many games s read for it.
		move := func(s *store.Rethink, p string, sq int) (store.Game, int64) {
			t.Helper()
			before := s.Loads()
			g, err := s.Move(t.Context(), w.ID, p, sq%3, sq/3, store.NewID())
			if err != nil {
				t.Fatalf("move %d: %v", sq, err)
			}
			return g, s.Loads() - before
		}
		// learn hands s game g as the hub does with every bus message, and
		// reports whether s decoded it.
		learn := func(s *store.Rethink, g store.Game) (decoded bool) {
			s.Learn(g.ID, g.Version, func() (store.Game, error) { decoded = true; return g, nil })
			return decoded
		}
		// Each replica knows the game as of its own player's last move, or
		// as the other replica hands it over.
		g, _ := move(a, x, 0)
		if learn(a, g) {
			t.Error("a decoded the game it had just written")
		}
		if !learn(b, g) {
			t.Error("b did not take the game a wrote")
		}
		g, reads := move(b, o, 4)
		if reads != 0 {
			t.Errorf("o's move on a game b learnt read it %d times, want 0", reads)
		}
		if _, reads := move(a, x, 1); reads != 1 {
			t.Errorf("x's move on a game a knows one move old read it %d times, want 1", reads)
		}
		// A game learnt late changes nothing: b already knows newer.
		if learn(b, g) {
			t.Error("b decoded a game older than it knows")
		}
		learn(a, g) // older than what a knows
		g, _ = move(b, o, 3)
		learn(a, g)
		if g, reads = move(a, x, 2); reads != 0 || g.Status != game.Finished || g.Winner != game.X {
			t.Errorf("x's winning move: %v won by %v, %d reads; want finished, won by x, 0 reads", g.Status, g.Winner, reads)
		}
		stored, err := b.Game(t.Context(), w.ID)
		if err != nil {
			t.Fatal(err)
		}
		if stored.Moves != 5 || stored.Status != game.Finished || len(stored.History) != 5 || stored.History[1].Team != game.O {
			t.Fatalf("stored game: %d moves, %v, history %v; want x's win in 5", stored.Moves, stored.Status, stored.History)
		}
	})

	t.Run("GameReadsMetric", func(t *testing.T) {
		t.Parallel()
		reg := prometheus.NewRegistry()
		db := newDB()
		a := openRethink(t, addr, db, replica("a"), func(o *store.RethinkOptions) { o.Registerer = reg })
		b := openRethink(t, addr, db, replica("b"))
		w, _, _ := pair(t, a, b)
		if _, err := a.Game(t.Context(), w.ID); err != nil {
			t.Fatal(err)
		}
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var got float64 = -1
		for _, mf := range mfs {
			if mf.GetName() == "tictac_store_game_reads_total" {
				got = mf.GetMetric()[0].GetCounter().GetValue()
			}
		}
		if want := float64(a.Loads()); got != want || want < 1 {
			t.Errorf("tictac_store_game_reads_total = %v, want the %v games a read (at least the one asked for)", got, want)
		}
	})

	t.Run("MovesApplyOnceAcrossReplicas", func(t *testing.T) {
		t.Parallel()
		s := two(t)
		w, x, o := pair(t, s[0], s[1])
		var mu sync.Mutex
		accepted := map[int]int{}
		for range 9 {
			var wg sync.WaitGroup
			for i, p := range []string{x, o, x, o} {
				for sq := range 9 {
					wg.Go(func() {
						g, err := s[i%2].Move(t.Context(), w.ID, p, sq%3, sq/3, "")
						if err == nil {
							mu.Lock()
							accepted[g.Moves]++
							mu.Unlock()
						}
					})
				}
			}
			wg.Wait()
		}
		final, err := s[1].Game(t.Context(), w.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !final.Status.Over() || len(accepted) != final.Moves {
			t.Fatalf("final %v after %d moves; accepted move numbers %v", final.Status, final.Moves, accepted)
		}
		for n, c := range accepted {
			if c != 1 {
				t.Errorf("move %d accepted %d times, want once", n, c)
			}
		}
		want := store.Stats{store.TotalGames: 1, store.TotalMoves: int64(final.Moves)}
		switch {
		case final.Status == game.FinishedDraw:
			want[store.TiedGames] = 1
		case final.Winner == game.X:
			want[store.WonByX] = 1
		default:
			want[store.WonByO] = 1
		}
		converge(t, s[:], want)
	})

	// A waiter leaves on one replica while a joiner arrives on the other:
	// either the joiner got the game (and the leave abandoned it) or the game
	// is gone (and the joiner waits in a new one).
	t.Run("LeaveRacesJoin", func(t *testing.T) {
		t.Parallel()
		s := two(t)
		for round := range 20 {
			a, b := store.NewID(), store.NewID()
			w, err := s[0].Join(t.Context(), a, store.NewID())
			if err != nil || w.Status != game.Waiting {
				t.Fatalf("round %d: Join = %+v, %v; want a waiting game", round, w, err)
			}
			var left, joined store.Game
			var leaveErr, joinErr error
			var wg sync.WaitGroup
			wg.Go(func() { left, leaveErr = s[0].Leave(t.Context(), w.ID, a) })
			wg.Go(func() { joined, joinErr = s[1].Join(t.Context(), b, store.NewID()) })
			wg.Wait()
			if leaveErr != nil || joinErr != nil {
				t.Fatalf("round %d: Leave: %v, Join: %v", round, leaveErr, joinErr)
			}
			switch {
			case joined.ID == w.ID:
				if joined.Status != game.InProgress || left.Status != game.Abandoned {
					t.Fatalf("round %d: joined %v game, leave made it %v; want in progress, then abandoned", round, joined.Status, left.Status)
				}
			default:
				if joined.Status != game.Waiting || left.Status != game.Waiting {
					t.Fatalf("round %d: joined %v game, left %v; want both waiting", round, joined.Status, left.Status)
				}
				if _, err := s[1].Game(t.Context(), w.ID); !errors.Is(err, store.ErrNotFound) {
					t.Fatalf("round %d: left waiting game still loads: %v", round, err)
				}
				if _, err := s[1].Leave(t.Context(), joined.ID, b); err != nil {
					t.Fatal(err)
				}
			}
		}
	})

	// Spectators come and go through both replicas while the players move:
	// no increment is lost and every move is applied once.
	t.Run("UpdatesAcrossReplicas", func(t *testing.T) {
		t.Parallel()
		s := two(t)
		x, o := store.NewID(), store.NewID()
		w, err := s[0].Join(t.Context(), x, store.NewID())
		if err != nil {
			t.Fatal(err)
		}
		g, err := s[1].Join(t.Context(), o, store.NewID())
		if err != nil || g.ID != w.ID {
			t.Fatalf("Join on the other replica = %+v, %v; want game %s", g, err, w.ID)
		}
		const n = 60
		var mu sync.Mutex
		accepted := map[int]int{}
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				if _, err := s[i%2].Update(t.Context(), g.ID, func(g *store.Game) error { g.Watch(+1); return nil }); err != nil {
					t.Errorf("update %d: %v", i, err)
				}
			})
		}
		for i, p := range []string{x, o, x, o} {
			for sq := range 9 {
				wg.Go(func() {
					if got, err := s[i%2].Move(t.Context(), g.ID, p, sq%3, sq/3, ""); err == nil {
						mu.Lock()
						accepted[got.Moves]++
						mu.Unlock()
					}
				})
			}
		}
		wg.Wait()
		final, err := s[0].Game(t.Context(), g.ID)
		if err != nil {
			t.Fatal(err)
		}
		if final.Spectators != n {
			t.Errorf("spectators = %d, want %d", final.Spectators, n)
		}
		if want := g.Version + n + int64(final.Moves); final.Version != want {
			t.Errorf("version = %d, want %d (%d before, %d updates, %d moves)", final.Version, want, g.Version, n, final.Moves)
		}
		if len(accepted) != final.Moves {
			t.Errorf("accepted move numbers %v, game has %d moves", accepted, final.Moves)
		}
		for m, c := range accepted {
			if c != 1 {
				t.Errorf("move %d accepted %d times, want once", m, c)
			}
		}
	})

	// Two friends use one invite code at once, each through a replica:
	// exactly one gets in, the other finds the code used.
	t.Run("JoinInviteAcrossReplicas", func(t *testing.T) {
		t.Parallel()
		s := two(t)
		for round := range 10 {
			x, code := store.NewID(), store.NewInvite()
			w, err := s[round%2].Create(t.Context(), store.Game{ID: store.NewID(), PlayerX: x, Game: game.New(),
				Mode: store.ModeFriend, Invite: code, Created: time.Now()})
			if err != nil {
				t.Fatal(err)
			}
			joiners := [2]string{store.NewID(), store.NewID()}
			var games [2]store.Game
			var errs [2]error
			var wg sync.WaitGroup
			for i := range 2 {
				wg.Go(func() { games[i], errs[i] = s[i].JoinInvite(t.Context(), joiners[i], code) })
			}
			wg.Wait()
			in := -1
			for i, err := range errs {
				switch {
				case err == nil:
					if in >= 0 {
						t.Fatalf("round %d: both joiners got in: %+v, %+v", round, games[0], games[1])
					}
					in = i
				case !errors.Is(err, store.ErrNotFound):
					t.Fatalf("round %d: joiner %d: %v, want ErrNotFound", round, i, err)
				}
			}
			if in < 0 {
				t.Fatalf("round %d: nobody got in: %v", round, errs)
			}
			stored, err := s[1-in].Game(t.Context(), w.ID)
			if err != nil || stored.PlayerO != joiners[in] || stored.Status != game.InProgress || stored.Invite != "" || stored.Version != 1 {
				t.Fatalf("round %d: stored %+v, %v; want joiner %d in progress at version 1", round, stored, err, in)
			}
			for i, p := range joiners {
				a, err := s[i].Active(t.Context(), p)
				switch {
				case i == in && (err != nil || a.ID != w.ID):
					t.Errorf("round %d: Active(winner) = %s, %v; want %s", round, a.ID, err, w.ID)
				case i != in && !errors.Is(err, store.ErrNotFound):
					t.Errorf("round %d: Active(loser) = %s, %v; want ErrNotFound", round, a.ID, err)
				}
			}
		}
		converge(t, s[:], store.Stats{store.TotalGames: 10, store.GamesInProgress: 10})
	})

	t.Run("Games", func(t *testing.T) {
		t.Parallel()
		s := two(t)
		for i := range 3 {
			if _, err := s[0].Join(t.Context(), "p"+strconv.Itoa(i), "g"+strconv.Itoa(i)); err != nil {
				t.Fatal(err)
			}
		}
		var ids []string
		err := s[1].Games(t.Context(), func(g store.Game) bool {
			ids = append(ids, g.ID+":"+g.Status.String())
			return true
		})
		if want := []string{"g0:in-progress", "g2:waiting"}; err != nil || !slices.Equal(ids, want) {
			t.Errorf("Games = %v, %v; want %v", ids, err, want)
		}
		n := 0
		if err := s[1].Games(t.Context(), func(store.Game) bool { n++; return false }); err != nil || n != 1 {
			t.Errorf("Games stopped after %d calls, %v; want 1", n, err)
		}
	})

	t.Run("PresenceSumsReplicas", func(t *testing.T) {
		t.Parallel()
		s := two(t)
		if err := s[0].SetOnline(t.Context(), 3); err != nil {
			t.Fatal(err)
		}
		if err := s[1].SetOnline(t.Context(), 4); err != nil {
			t.Fatal(err)
		}
		online(t, s[0], 7)
		online(t, s[1], 7)
		if err := s[1].Close(); err != nil {
			t.Fatal(err)
		}
		online(t, s[0], 3)
		if _, err := s[1].Stats(t.Context()); !errors.Is(err, store.ErrClosed) {
			t.Errorf("Stats on a closed store = %v, want ErrClosed", err)
		}
	})

	t.Run("SchemaCreatedByManyAtOnce", func(t *testing.T) {
		t.Parallel()
		db := newDB()
		const n = 4
		stores := make([]*store.Rethink, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { stores[i] = openRethink(t, addr, db, replica(strconv.Itoa(i))) })
		}
		wg.Wait()
		if t.Failed() {
			return
		}
		w, err := stores[0].Join(t.Context(), "x", "g")
		if err != nil {
			t.Fatal(err)
		}
		if g, err := stores[n-1].Join(t.Context(), "o", "unused"); err != nil || g.ID != w.ID || g.Status != game.InProgress {
			t.Fatalf("Join = %+v, %v; want game %s in progress", g, err, w.ID)
		}
		converge(t, stores, store.Stats{store.TotalGames: 1, store.GamesInProgress: 1})
	})
}

// TestRethinkOldDocuments loads and updates games written before the players
// features: no version, mode, away, rematch or spectators.
func TestRethinkOldDocuments(t *testing.T) {
	t.Parallel()
	addr := testenv.RethinkDB(t)
	db := newDB()
	s := openRethink(t, addr, db)
	sess, err := r.Connect(r.ConnectOpts{Address: addr})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	at := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	old := []any{
		map[string]any{"id": "old1", "status": "in-progress", "playerX": "x", "playerO": "o", "created": at, "started": at,
			"moves": []any{map[string]any{"x": 1, "y": 1, "team": "x", "at": at}}},
		map[string]any{"id": "old2", "status": "waiting", "playerX": "w", "created": at, "moves": []any{}},
	}
	if _, err := r.DB(db).Table("games").Insert(old).RunWrite(sess); err != nil {
		t.Fatal(err)
	}
	g, err := s.Game(t.Context(), "old1")
	if err != nil || g.Version != 0 || g.Mode != store.ModeQuick || g.Moves != 1 || g.Away != [2]int64{} || g.Spectators != 0 {
		t.Fatalf("Game(old1) = %+v, %v", g, err)
	}
	if g, err = s.Move(t.Context(), "old1", "o", 0, 0, "m"); err != nil || g.Version != 1 || g.Moves != 2 {
		t.Fatalf("Move on an old game = version %d, %d moves, %v; want version 1, 2 moves", g.Version, g.Moves, err)
	}
	if g, err = s.Update(t.Context(), "old1", func(g *store.Game) error { return g.SetAway("x", 5) }); err != nil || g.Away != [2]int64{5, 0} {
		t.Fatalf("SetAway = %v, %v", g.Away, err)
	}
	loaded, err := s.Game(t.Context(), "old1")
	if err != nil || loaded.Version != 2 || loaded.Away != [2]int64{5, 0} || loaded.MoveNumber(game.O, "m") != 2 {
		t.Fatalf("stored %+v, %v", loaded, err)
	}
	if live, err := s.Live(t.Context(), 10); err != nil || len(live) != 1 || live[0].ID != "old1" {
		t.Errorf("Live = %v, %v; want old1", live, err)
	}
	if g, err := s.Leave(t.Context(), "old2", "w"); err != nil || g.Status != game.Waiting {
		t.Errorf("Leave(old2) = %+v, %v", g, err)
	}
}

// converge waits until every store reports want (PlayersOnline aside).
func converge(t *testing.T, stores []*store.Rethink, want store.Stats) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for i, s := range stores {
		for {
			got, err := s.Stats(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			got[store.PlayersOnline] = 0
			if got == want {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("store %d: stats %v, want %v", i, got, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// pairUp has x and o join quick matches on s, in that order, and returns
// the game x waited in (as it waited: the pairing is the next version).
func pairUp(t *testing.T, s *store.Rethink, x, o string) store.Game {
	t.Helper()
	w, err := s.Join(t.Context(), x, store.NewID())
	if err != nil {
		t.Fatal(err)
	}
	if g, err := s.Join(t.Context(), o, store.NewID()); err != nil || g.ID != w.ID {
		t.Fatalf("%s joins: game %s, %v; want %s's", o, g.ID, err, x)
	}
	return w
}

func online(t *testing.T, s *store.Rethink, want int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := s.Stats(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if got[store.PlayersOnline] == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("playersOnline = %d, want %d", got[store.PlayersOnline], want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRethinkUnreachable(t *testing.T) {
	t.Parallel()
	addrs := []string{"127.0.0.1:" + strconv.Itoa(testenv.FreePort(t)), "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))}
	start := time.Now()
	s, err := store.OpenRethink(t.Context(), store.RethinkOptions{Addrs: addrs})
	if err == nil {
		s.Close()
		t.Fatal("OpenRethink on closed ports succeeded")
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("OpenRethink took %v to fail", took)
	}
	for _, a := range addrs {
		if !strings.Contains(err.Error(), a) {
			t.Errorf("error %q does not name %s", err, a)
		}
	}
}

// TestRethinkFeedSurvivesOutage cuts the store off the database for two
// seconds; meanwhile another replica keeps playing. Once the link is back the
// changefeed delivers again, starting with what it missed.
func TestRethinkFeedSurvivesOutage(t *testing.T) {
	t.Parallel()
	addr := testenv.RethinkDB(t)
	p := startProxy(t, addr)
	db := newDB()
	cut := openRethink(t, p.addr(), db, replica("behind-proxy"))
	direct := openRethink(t, addr, db, replica("direct"))

	sub, err := cut.WatchStats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	play := func(s *store.Rethink) store.Game {
		t.Helper()
		x := store.NewID()
		w, err := s.Join(t.Context(), x, store.NewID())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Join(t.Context(), store.NewID(), store.NewID()); err != nil {
			t.Fatal(err)
		}
		g, err := s.Move(t.Context(), w.ID, x, 1, 1, "")
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	play(cut)
	waitFeed(t, sub, 1)

	p.cut()
	play(direct)
	time.Sleep(2 * time.Second)
	if _, err := cut.Move(t.Context(), "nope", "x", 0, 0, ""); err == nil || errors.Is(err, store.ErrNotFound) {
		t.Errorf("Move while cut off = %v, want a connection error", err)
	}
	p.restore()

	waitFeed(t, sub, 2) // the move made elsewhere during the outage
	deadline := time.Now().Add(10 * time.Second)
	for {
		// The first queries after the outage may meet connections that died with it.
		if _, err := cut.Game(t.Context(), "nope"); errors.Is(err, store.ErrNotFound) {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("Game after the outage: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	play(cut)
	waitFeed(t, sub, 3)
}

func waitFeed(t *testing.T, sub *store.Subscription, moves int64) {
	t.Helper()
	timeout := time.After(15 * time.Second)
	var got store.Stats
	for got[store.TotalMoves] < moves {
		select {
		case got = <-sub.C():
		case <-timeout:
			t.Fatalf("feed reached %v, want %d moves", got, moves)
		}
	}
}

// proxy forwards TCP connections to a target, and can cut them all and
// refuse new ones until restored.
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	down   bool
	conns  map[net.Conn]struct{}
}

func startProxy(tb testing.TB, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { p.serve(c) })
		}
	})
	tb.Cleanup(func() {
		ln.Close()
		p.cut()
		wg.Wait()
	})
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) serve(c net.Conn) {
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.down {
		p.mu.Unlock()
		c.Close()
		up.Close()
		return
	}
	p.conns[c], p.conns[up] = struct{}{}, struct{}{}
	p.mu.Unlock()
	done := make(chan struct{})
	go func() { io.Copy(up, c); up.Close(); close(done) }()
	io.Copy(c, up)
	c.Close()
	<-done
}

func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

func (p *proxy) restore() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}

// BenchmarkRethinkMove measures moves through the store one at a time (each
// is a read and a conditional replace), and the conditional replace alone,
// against the server of testenv.RethinkDB. It reports the median and the
// 99th percentile.
func BenchmarkRethinkMove(b *testing.B) {
	addr := testenv.RethinkDB(b)
	db := newDB()
	s := openRethink(b, addr, db)
	ctx := context.Background()
	b.Run("Move", func(b *testing.B) {
		squares := [][2]int{{0, 0}, {1, 0}, {2, 0}, {1, 1}, {0, 1}, {2, 1}, {1, 2}, {0, 2}, {2, 2}}
		var g store.Game
		lat := make([]time.Duration, 0, b.N)
		i := len(squares)
		for b.Loop() {
			if i == len(squares) {
				b.StopTimer()
				w, err := s.Join(ctx, store.NewID(), store.NewID())
				if err != nil {
					b.Fatal(err)
				}
				if g, err = s.Join(ctx, store.NewID(), store.NewID()); err != nil || g.ID != w.ID {
					b.Fatal(g, err)
				}
				i = 0
				b.StartTimer()
			}
			p := g.PlayerX
			if i%2 == 1 {
				p = g.PlayerO
			}
			start := time.Now()
			if _, err := s.Move(ctx, g.ID, p, squares[i][0], squares[i][1], ""); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(start))
			i++
		}
		report(b, lat)
	})
	b.Run("ConditionalUpdate", func(b *testing.B) {
		sess, err := r.Connect(r.ConnectOpts{Address: addr})
		if err != nil {
			b.Fatal(err)
		}
		defer sess.Close()
		t := r.DB(db).Table("stats")
		if _, err := t.Insert(map[string]any{"id": "bench", "n": 0}, r.InsertOpts{Conflict: "replace"}).RunWrite(sess); err != nil {
			b.Fatal(err)
		}
		lat := make([]time.Duration, 0, b.N)
		n := 0
		for b.Loop() {
			start := time.Now()
			w, err := t.Get("bench").Replace(func(d r.Term) any {
				return r.Branch(d.Field("n").Eq(n), d.Merge(map[string]any{"n": n + 1}), d)
			}).RunWrite(sess)
			if err != nil || w.Replaced != 1 {
				b.Fatal(w, err)
			}
			lat = append(lat, time.Since(start))
			n++
		}
		report(b, lat)
	})
}

func report(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// TestRethinkCountsSurviveACrash: a replica that dies before adding the
// counts of the games it wrote (here: cut off from the database, then
// closed, so its last flush fails and its memory is gone, as after SIGKILL)
// loses nothing. Another replica counts those games, exactly once, even
// when a dead replica left a batch half-way: one claim whose counts were
// added but not settled, and one whose counts were never added. Two
// replicas recover at once, and neither counts anything twice.
func TestRethinkCountsSurviveACrash(t *testing.T) {
	t.Parallel()
	addr := testenv.RethinkDB(t)
	db := newDB()
	cut := startProxy(t, addr)
	ctx := t.Context()
	// The replica that dies never flushes in its lifetime.
	a, err := store.OpenRethink(ctx, store.RethinkOptions{Addrs: []string{cut.addr()}, DB: db, FlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	// Three games: X wins one, one is in progress, one waits.
	var ids []string
	for i, moves := range [][][2]int{{{0, 0}, {1, 0}, {0, 1}, {1, 1}, {0, 2}}, {{1, 1}, {0, 0}}} {
		x, o := "x"+strconv.Itoa(i), "o"+strconv.Itoa(i)
		w, err := a.Join(ctx, x, store.NewID())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.Join(ctx, o, store.NewID()); err != nil {
			t.Fatal(err)
		}
		for j, m := range moves {
			p := x
			if j%2 == 1 {
				p = o
			}
			if _, err := a.Move(ctx, w.ID, p, m[0], m[1], "m"+strconv.Itoa(j)); err != nil {
				t.Fatal(err)
			}
		}
		ids = append(ids, w.ID)
	}
	if _, err := a.Join(ctx, "lonely", store.NewID()); err != nil {
		t.Fatal(err)
	}
	cut.cut()
	a.Close()
	cut.restore()

	// What the games say, and the half-done batch of a dead writer: game 0's
	// counts were added (step 2) but the claim not settled; game 1's claim
	// was never added.
	sess, err := r.Connect(r.ConnectOpts{Address: addr})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	var want store.Stats
	var first store.Stats
	b0 := openRethink(t, addr, db, func(o *store.RethinkOptions) { o.FlushInterval = time.Hour })
	err = b0.Games(ctx, func(g store.Game) bool {
		e := store.Expected(&g)
		if g.ID == ids[0] {
			first = e
		}
		for i := range want {
			want[i] += e[i]
		}
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	if want[store.TotalGames] != 2 || want[store.TotalMoves] != 7 || want[store.WonByX] != 1 || want[store.GamesInProgress] != 1 {
		t.Fatalf("the games say %v", want)
	}
	vec := func(s store.Stats) []any {
		out := make([]any, len(s))
		for i, v := range s {
			out[i] = v
		}
		return out
	}
	games, stats := r.DB(db).Table("games"), r.DB(db).Table("stats")
	for i, k := range []string{"added", "lost"} {
		var g store.Stats
		if i == 0 {
			g = first
		} else {
			for j := range g {
				g[j] = want[j] - first[j]
			}
		}
		claim := map[string]any{"k": k, "w": "dead/1", "ver": r.Row.Field("version"), "from": vec(store.Stats{}), "to": vec(g)}
		if _, err := games.Get(ids[i]).Update(map[string]any{"claim": claim}).RunWrite(sess); err != nil {
			t.Fatal(err)
		}
	}
	values := map[string]any{}
	for i, v := range first {
		if store.Stat(i) != store.PlayersOnline {
			values[store.Stat(i).String()] = v
		}
	}
	if _, err := stats.Get("counters").Update(map[string]any{"values": values, "applied": map[string]any{"added": "dead/1"},
		"writers": map[string]any{"dead/1": r.Now().Sub(60)}}).RunWrite(sess); err != nil {
		t.Fatal(err)
	}
	if got, _ := b0.Stats(ctx); got[store.TotalGames] == 2 {
		t.Fatalf("stats %v before any recovery: the test sets nothing up", got)
	}

	// Two live replicas recover the counts, at once.
	b := openRethink(t, addr, db, replica("b"))
	c := openRethink(t, addr, db, replica("c"))
	converge(t, []*store.Rethink{b, c}, want)
	// And the counts stay right: nothing is owed, claimed or pending any more.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var left struct {
			Owed    int            `rethinkdb:"owed"`
			Claims  int            `rethinkdb:"claims"`
			Applied map[string]any `rethinkdb:"applied"`
			Writers map[string]any `rethinkdb:"writers"`
		}
		q := r.Expr(map[string]any{
			"owed":    games.GetAllByIndex("owed", true).Count(),
			"claims":  games.HasFields("claim").Count(),
			"applied": stats.Get("counters").Field("applied"),
			"writers": stats.Get("counters").Field("writers"),
		})
		if err := q.ReadOne(&left, sess); err != nil {
			t.Fatal(err)
		}
		_, deadStill := left.Writers["dead/1"]
		if left.Owed == 0 && left.Claims == 0 && len(left.Applied) == 0 && !deadStill {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after recovery: %d games owed, %d claimed, applied %v, writers %v", left.Owed, left.Claims, left.Applied, left.Writers)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(3 * time.Second) // two more recoveries of each replica
	converge(t, []*store.Rethink{b, c}, want)
}

// TestRethinkRevokedWriterCountsOnce: a replica whose writer was revoked
// (as recovery does to a replica it believes gone, say after a long cut)
// cannot add its counts under that name; it registers again, and what it
// claimed is freed and counted once.
func TestRethinkRevokedWriterCountsOnce(t *testing.T) {
	t.Parallel()
	addr := testenv.RethinkDB(t)
	db := newDB()
	a := openRethink(t, addr, db)
	sess, err := r.Connect(r.ConnectOpts{Address: addr})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	counters := r.DB(db).Table("stats").Get("counters")
	writers := func() map[string]any {
		var w map[string]any
		if err := counters.Field("writers").ReadOne(&w, sess); err != nil {
			t.Fatal(err)
		}
		return w
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(writers()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the replica never registered as a writer")
		}
		time.Sleep(20 * time.Millisecond)
	}
	first := writers()
	if _, err := counters.Replace(func(c r.Term) any {
		return c.Without("writers").Merge(map[string]any{"writers": map[string]any{}})
	}).RunWrite(sess); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	w := pairUp(t, a, "x", "o")
	if _, err := a.Move(ctx, w.ID, "x", 1, 1, "m1"); err != nil {
		t.Fatal(err)
	}
	want := store.Stats{store.TotalGames: 1, store.TotalMoves: 1, store.GamesInProgress: 1}
	converge(t, []*store.Rethink{a}, want)
	now := writers()
	for name := range first {
		if _, ok := now[name]; ok {
			t.Errorf("revoked writer %s is back among %v", name, now)
		}
	}
	if len(now) != 1 {
		t.Errorf("writers %v, want the replica's new name alone", now)
	}
	time.Sleep(3 * time.Second) // a recovery or two more: nothing counts twice
	converge(t, []*store.Rethink{a}, want)
}

// TestRethinkMovesWaitForACount checks when a replica counts the games it
// wrote: a game's start and end at its next count, its moves alone only once
// they have waited countLag (1.25 s on the store's clock at a FlushInterval
// of 50 ms), and everything it owes when it closes.
func TestRethinkMovesWaitForACount(t *testing.T) {
	t.Parallel()
	addr := testenv.RethinkDB(t)
	db := newDB()
	t0 := time.Now()
	var skew atomic.Int64 // the store's clock stands still unless moved
	a := openRethink(t, addr, db, func(o *store.RethinkOptions) {
		o.Now = func() time.Time { return t0.Add(time.Duration(skew.Load())) }
	})
	ctx := t.Context()
	move := func(id, p string, x, y int) {
		t.Helper()
		if _, err := a.Move(ctx, id, p, x, y, store.NewID()); err != nil {
			t.Fatal(err)
		}
	}

	g1 := pairUp(t, a, "x1", "o1").ID
	converge(t, []*store.Rethink{a}, store.Stats{store.TotalGames: 1, store.GamesInProgress: 1})
	move(g1, "x1", 0, 0)
	// A game that starts after the move is counted at the next count: the
	// count that takes it passes the move by (converge wants TotalMoves 0).
	g2 := pairUp(t, a, "x2", "o2").ID
	converge(t, []*store.Rethink{a}, store.Stats{store.TotalGames: 2, store.GamesInProgress: 2})

	skew.Store(int64(2 * time.Second)) // the move has waited long enough
	converge(t, []*store.Rethink{a}, store.Stats{store.TotalGames: 2, store.TotalMoves: 1, store.GamesInProgress: 2})

	// A game that ends is counted at once, whatever the clock.
	if _, err := a.Leave(ctx, g1, "o1"); err != nil {
		t.Fatal(err)
	}
	converge(t, []*store.Rethink{a}, store.Stats{store.TotalGames: 2, store.TotalMoves: 1, store.AbandonedGames: 1, store.GamesInProgress: 1})

	// Closing counts the moves still waiting.
	move(g2, "x2", 1, 1)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	b := openRethink(t, addr, db)
	converge(t, []*store.Rethink{b}, store.Stats{store.TotalGames: 2, store.TotalMoves: 2, store.AbandonedGames: 1, store.GamesInProgress: 1})
}

// TestRethinkWriteDropsAField: a change that empties an optional field is
// written as a replace of the whole document (an update cannot drop a
// field), which keeps the counting fields: the move before it, still owed
// (the store's clock stands still, so its count waits), is counted when the
// store closes.
func TestRethinkWriteDropsAField(t *testing.T) {
	t.Parallel()
	addr := testenv.RethinkDB(t)
	db := newDB()
	t0 := time.Now()
	a := openRethink(t, addr, db, func(o *store.RethinkOptions) { o.Now = func() time.Time { return t0 } })
	ctx := t.Context()
	w := pairUp(t, a, "x", "o")
	converge(t, []*store.Rethink{a}, store.Stats{store.TotalGames: 1, store.GamesInProgress: 1})
	if _, err := a.Move(ctx, w.ID, "x", 0, 0, "m1"); err != nil {
		t.Fatal(err)
	}
	for _, next := range []string{"later", ""} {
		if _, err := a.Update(ctx, w.ID, func(g *store.Game) error { g.Next = next; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	b := openRethink(t, addr, db)
	if g, err := b.Game(ctx, w.ID); err != nil || g.Next != "" || g.Moves != 1 || g.Version != w.Version+4 {
		t.Fatalf("stored game: next %q, %d moves, version %d, %v; want no next, 1 move, version %d", g.Next, g.Moves, g.Version, err, w.Version+4)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	converge(t, []*store.Rethink{b}, store.Stats{store.TotalGames: 1, store.TotalMoves: 1, store.GamesInProgress: 1})
}

// TestRethinkJoinTakenID: a join whose new game's id is taken is refused,
// and the game that has the id is left alone (pairUp's waiter gets the
// game as it waited; it is in progress since).
func TestRethinkJoinTakenID(t *testing.T) {
	t.Parallel()
	s := openRethink(t, testenv.RethinkDB(t), newDB())
	g := pairUp(t, s, store.NewID(), store.NewID())
	if _, err := s.Join(t.Context(), store.NewID(), g.ID); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("join with a taken id = %v, want already exists", err)
	}
	if got, err := s.Game(t.Context(), g.ID); err != nil || got.PlayerX != g.PlayerX || got.Status != game.InProgress {
		t.Fatalf("the game with that id is now %+v, %v; want it in progress as it was", got, err)
	}
}
