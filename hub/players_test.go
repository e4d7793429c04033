package hub_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/tictac/tictac/game"
	"github.com/tictac/tictac/hub"
	"github.com/tictac/tictac/internal/testenv"
	"github.com/tictac/tictac/internal/wstest"
	"github.com/tictac/tictac/store"
)

type state struct {
	GameID, Team, Status, Mode string
	Move                       int
	Grid                       [3][3]string
	Winner, Reason, Invite     *string
	OpponentAway               *struct {
		Team     string
		Deadline int64
	}
	Spectators int
	Rematch    struct{ X, O bool }
}

func expectState(t *testing.T, c *wstest.Client) state {
	t.Helper()
	var s state
	c.Expect("state").Decode(t, &s)
	return s
}

// watchNew pairs two new players on url and has w watch their game.
func watchNew(t *testing.T, url string, w *wstest.Client) {
	t.Helper()
	y, z := wstest.Dial(t, url), wstest.Dial(t, url)
	wstest.Pair(t, y, z)
	w.Send(map[string]any{"action": "spectate", "data": map[string]any{"gameId": y.GameID}})
	expectState(t, w)
}

// TestResume: a player whose socket drops comes back with its session token
// to the same game, with its full state; the opponent sees it go and return.
func TestResume(t *testing.T) {
	t.Parallel()
	s := newServer(t, hub.Options{Grace: 10 * time.Second})
	// The session says how long a dropped player's seat is kept, for the
	// page to count down while it reconnects.
	c := wstest.Dial(t, s.url)
	c.Send(map[string]any{"action": "hello", "data": map[string]any{}})
	var sess struct {
		Token string
		Grace int64
	}
	c.Expect("session").Decode(t, &sess)
	if sess.Grace != 10_000 {
		t.Errorf("session grace %d ms, want 10000", sess.Grace)
	}
	x, tx := wstest.Hello(t, s.url, "")
	o, _ := wstest.Hello(t, s.url, "")
	wstest.Pair(t, x, o)
	x.Move(o, 1, 1)
	x.WS.Close(websocket.StatusGoingAway, "reload")
	o.Expect("playerAway")

	back, token := wstest.Hello(t, s.url, tx)
	if token != tx {
		t.Fatalf("session changed from %s to %s", tx, token)
	}
	var j struct{ GameID, Team string }
	back.Expect("joinGame").Decode(t, &j)
	st := expectState(t, back)
	if j.GameID != x.GameID || st.Team != "x" || st.Move != 1 || st.Grid[1][1] != "x" || st.Status != "in-progress" || st.OpponentAway != nil {
		t.Fatalf("resumed %+v %+v", j, st)
	}
	o.Expect("playerBack")
	back.Expect("playerBack") // everyone in the game hears it, the returner too
	back.GameID, back.Team = j.GameID, "x"
	o.Move(back, 0, 0)
	back.Move(o, 2, 2)
}

// outage is the embedded store whose Update and Move fail while down is
// set, as a database's writes do during an outage; reads still work, as they
// may for a moment. With onlyBack, only the updates that mark a player back
// fail. failed counts the failures.
type outage struct {
	*store.Bolt
	down, onlyBack atomic.Bool
	failed         atomic.Int64
	// lose makes Update and Move apply the change and fail all the same, as
	// a write whose answer was lost.
	lose atomic.Bool
	// noCreate makes Create fail, and nothing else: a blip that takes one
	// write.
	noCreate atomic.Bool
	// stall makes Move, once applied, answer only when its context ends or
	// a second has passed: a slow answer, during which anything may happen.
	stall atomic.Bool
}

// newOutageServer is newServer on an outage of its store.
func newOutageServer(tb testing.TB, opt hub.Options) (*server, *outage) {
	tb.Helper()
	var st *outage
	s := newServerOn(tb, opt, func(b *store.Bolt) hub.Store {
		st = &outage{Bolt: b}
		return st
	})
	return s, st
}

func (s *outage) Update(ctx context.Context, id string, fn func(*store.Game) error) (store.Game, error) {
	if s.down.Load() {
		fail := !s.onlyBack.Load()
		if !fail {
			g, err := s.Bolt.Game(ctx, id)
			was := g.Away
			fail = err == nil && fn(&g) == nil && g.Status == game.InProgress &&
				(was[0] != 0 && g.Away[0] == 0 || was[1] != 0 && g.Away[1] == 0)
		}
		if fail {
			s.failed.Add(1)
			return store.Game{}, errors.New("update: the store is down (test)")
		}
	}
	if s.lose.Load() {
		if _, err := s.Bolt.Update(ctx, id, fn); err != nil {
			return store.Game{}, err
		}
		s.failed.Add(1)
		return store.Game{}, errors.New("update: the answer was lost (test)")
	}
	return s.Bolt.Update(ctx, id, fn)
}

func (s *outage) Move(ctx context.Context, id, player string, x, y int, moveID string) (store.Game, error) {
	if s.down.Load() && !s.onlyBack.Load() {
		s.failed.Add(1)
		return store.Game{}, errors.New("move: the store is down (test)")
	}
	g, err := s.Bolt.Move(ctx, id, player, x, y, moveID)
	switch {
	case err != nil:
	case s.lose.Load():
		s.failed.Add(1)
		return store.Game{}, errors.New("move: the answer was lost (test)")
	case s.stall.Load():
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	return g, err
}

func (s *outage) Create(ctx context.Context, g store.Game) (store.Game, error) {
	if s.noCreate.Load() {
		s.failed.Add(1)
		return store.Game{}, errors.New("create: the store is down (test)")
	}
	return s.Bolt.Create(ctx, g)
}

func (s *outage) Leave(ctx context.Context, id, player string) (store.Game, error) {
	if s.down.Load() && !s.onlyBack.Load() {
		s.failed.Add(1)
		return store.Game{}, errors.New("leave: the store is down (test)")
	}
	return s.Bolt.Leave(ctx, id, player)
}

// TestWaitingGameCancelledAfterAnOutage: a quick game whose player left
// while the store failed is taken off the queue once it is back, so that the
// next player waits for an opponent of its own instead of being paired with
// nobody.
func TestWaitingGameCancelledAfterAnOutage(t *testing.T) {
	t.Parallel()
	s, st := newOutageServer(t, hub.Options{})
	x := waiting(t, s.url)
	st.down.Store(true)
	x.WS.Close(websocket.StatusGoingAway, "")
	waitFor(t, "the cancel to fail", func() bool { return st.failed.Load() > 0 })
	st.down.Store(false)
	waitFor(t, "the waiting game to go", func() bool {
		_, err := st.Game(t.Context(), x.GameID)
		return errors.Is(err, store.ErrNotFound)
	})
	y := wstest.Dial(t, s.url)
	y.Join()
	if y.GameID == x.GameID {
		t.Fatalf("paired with the game %s whose player left", x.GameID)
	}
	y.ExpectStatus("waiting")
}

// TestBotMovesAfterAnOutage: the computer's move that the store failed is
// played once the store is back.
func TestBotMovesAfterAnOutage(t *testing.T) {
	t.Parallel()
	s, st := newOutageServer(t, hub.Options{BotDelay: func(game.Level) time.Duration { return 200 * time.Millisecond }})
	x := wstest.Dial(t, s.url)
	x.Send(map[string]any{"action": "joinGame", "data": map[string]any{"mode": "bot", "level": "easy"}})
	var j struct{ GameID string }
	x.Expect("joinGame").Decode(t, &j)
	x.Await("updateGameStatus", 5*time.Second)
	x.Send(wstest.Fill(j.GameID, 1, 1))
	x.Await("updateGrid", 5*time.Second)
	st.down.Store(true) // before the computer answers
	x.Quiet(time.Second)
	st.down.Store(false)
	var g wstest.Grid
	x.Await("updateGrid", 10*time.Second).Decode(t, &g)
	if g.Move != 2 || g.Last.Team != "o" {
		t.Fatalf("after the outage: move %d by %q, want the computer's (o) move 2", g.Move, g.Last.Team)
	}
}

// awayMidGame pairs x, on urlX, with o, on urlO, both with sessions; x
// plays, then its page reloads: o hears x is away. It returns x's session
// token and its deadline.
func awayMidGame(t *testing.T, urlX, urlO string) (x, o *wstest.Client, tx string, deadline int64) {
	t.Helper()
	x, tx = wstest.Hello(t, urlX, "")
	o, _ = wstest.Hello(t, urlO, "")
	wstest.Pair(t, x, o)
	x.Move(o, 1, 1)
	x.WS.Close(websocket.StatusGoingAway, "reload")
	var away struct{ Deadline int64 }
	o.Expect("playerAway").Decode(t, &away)
	return x, o, tx, away.Deadline
}

// rejoin opens a socket on url with session token tx, which is put back in
// its game.
func rejoin(t *testing.T, url, tx string) *wstest.Client {
	t.Helper()
	back, _ := wstest.Hello(t, url, tx)
	back.Expect("joinGame")
	expectState(t, back)
	return back
}

// playsOn checks that back, x's new socket in x's game, and o go on playing.
func playsOn(back, x, o *wstest.Client) {
	back.GameID, back.Team = x.GameID, "x"
	o.Move(back, 0, 0)
	back.Move(o, 2, 2)
}

// TestBackDespiteAFailedWrite: a player who returns while the write that
// marks it back fails is not forfeited at the deadline for being away: the
// write is tried again until it lands, and the game goes on.
func TestBackDespiteAFailedWrite(t *testing.T) {
	t.Parallel()
	s, st := newOutageServer(t, hub.Options{Grace: 2 * time.Second})
	st.onlyBack.Store(true)
	x, o, tx, deadline := awayMidGame(t, s.url, s.url)

	st.down.Store(true)
	back := rejoin(t, s.url, tx)
	// Past the deadline: no forfeit of a player who is here.
	o.Quiet(time.Until(time.UnixMilli(deadline)) + 500*time.Millisecond)
	st.down.Store(false)
	o.Await("playerBack", 20*time.Second)
	back.Await("playerBack", 5*time.Second)
	playsOn(back, x, o)
}

// TestForfeitWaitsOutAnOutage: two replicas, each of which loses the store
// for a while. A player away from the first comes back to it while neither
// can write, and the deadline passes. The second, the opponent's, gets the
// store back first: it does not write again the forfeit that failed, as the
// player may be back somewhere whose write saying so has not landed. It
// starts the grace period over instead; the first replica, back in time,
// marks the player back, and the game goes on.
func TestForfeitWaitsOutAnOutage(t *testing.T) {
	t.Parallel()
	opt := hub.Options{Grace: 3 * time.Second}
	s, near := newOutageServer(t, opt) // the player's replica's view of the store
	far := &outage{Bolt: s.store}      // the opponent's replica's
	other := newReplicaOn(t, s, far, opt)
	x, o, tx, deadline := awayMidGame(t, s.url, other)

	near.down.Store(true)
	far.down.Store(true)
	back := rejoin(t, s.url, tx)
	o.Quiet(time.Until(time.UnixMilli(deadline)) + 200*time.Millisecond) // every write fails
	far.down.Store(false)
	o.Await("playerAway", 10*time.Second) // the grace period, over again
	near.down.Store(false)
	o.Await("playerBack", 10*time.Second)
	back.Await("playerBack", 10*time.Second)
	playsOn(back, x, o)
}

// TestForfeitWhoseAnswerWasLost: a forfeit that landed but whose answer was
// lost still ends the game for its players: the attempt that follows finds
// it done and tells them.
func TestForfeitWhoseAnswerWasLost(t *testing.T) {
	t.Parallel()
	s, st := newOutageServer(t, hub.Options{Grace: time.Second})
	x, o := wstest.Dial(t, s.url), wstest.Dial(t, s.url)
	wstest.Pair(t, x, o)
	x.Move(o, 1, 1)
	x.WS.Close(websocket.StatusGoingAway, "")
	o.Expect("playerAway")
	st.lose.Store(true)
	waitFor(t, "the forfeit", func() bool { return st.failed.Load() > 0 })
	st.lose.Store(false)
	if g, err := st.Game(t.Context(), o.GameID); err != nil || g.Status != game.Abandoned {
		t.Fatalf("stored game %v, %v: want the forfeit applied", g.Status, err)
	}
	o.ExpectStatus("abandoned")
	o.Expect("updateWinner")
}

// TestResyncMarksBack: two replicas bridged by Redis. While Redis is down,
// a player leaves the first replica, whose away mark the store fails for
// a moment, and comes back on the second; the mark lands after the return,
// and its playerAway never reaches the second replica. Once Redis is back,
// the second replica's resync finds its player marked away and marks it
// back, before the forfeit that the first replica armed falls due.
func TestResyncMarksBack(t *testing.T) {
	t.Parallel()
	url, redis := testenv.Redis(t)
	st, err := store.OpenBolt(filepath.Join(t.TempDir(), "t.db"), store.BoltOptions{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() }) // after the hubs' cleanups, registered below
	const grace = 10 * time.Second
	replica := func(s hub.Store) string {
		var h atomic.Pointer[hub.Hub]
		bus := newRedisBus(t, url, hub.RedisBusOptions{OnResubscribe: func(chs []string) {
			if h := h.Load(); h != nil {
				h.Resync(chs)
			}
		}})
		logger := slog.New(slog.NewTextHandler(tbWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
		h.Store(hub.New(s, bus, hub.Options{Grace: grace, Logger: logger}))
		return serve(t, h.Load())
	}
	near := &outage{Bolt: st} // the first replica's view of the store
	first, second := replica(near), replica(st)
	x, tx := wstest.Hello(t, first, "")
	o, _ := wstest.Hello(t, second, "")
	wstest.Pair(t, x, o)
	x.Move(o, 1, 1)

	redis.Stop()
	near.down.Store(true)
	x.WS.Close(websocket.StatusGoingAway, "reload")
	waitFor(t, "the first replica's away mark to fail", func() bool { return near.failed.Load() > 0 })
	back := rejoin(t, second, tx)
	if g, err := st.Game(t.Context(), x.GameID); err != nil || g.Away[0] != 0 {
		t.Fatalf("game on return %+v, %v: want nobody away yet", g.Away, err)
	}
	near.down.Store(false)
	waitFor(t, "the away mark to land", func() bool {
		g, err := st.Game(t.Context(), x.GameID)
		return err == nil && g.Away[0] != 0
	})
	restartRedis(t, redis, strings.TrimPrefix(url, "redis://"))
	o.Await("playerBack", grace)
	back.Await("playerBack", 5*time.Second)
	playsOn(back, x, o)
}

// TestForgedToken: a made-up or malformed token gets a fresh identity with
// no game; it cannot reach anyone's game.
func TestForgedToken(t *testing.T) {
	t.Parallel()
	s := newServer(t, hub.Options{Grace: 10 * time.Second})
	x, _ := wstest.Hello(t, s.url, "")
	o, _ := wstest.Hello(t, s.url, "")
	wstest.Pair(t, x, o)
	for _, forged := range []string{"00000000000000000000000000000000", "not-hex", strings.Repeat("A", 32)} {
		f, token := wstest.Hello(t, s.url, forged)
		if forged != "00000000000000000000000000000000" && token == forged {
			t.Errorf("malformed token %q was adopted", forged)
		}
		f.Quiet(50 * time.Millisecond) // no state: nothing to resume
		f.Send(wstest.Fill(x.GameID, 0, 0))
		f.ExpectError("not_in_game")
		f.Send(map[string]any{"action": "joinGame", "data": map[string]any{"gameId": x.GameID}})
		f.ExpectError("not_in_game")
	}
	// hello is only for the first message.
	x.Send(map[string]any{"action": "hello", "data": map[string]any{}})
	x.ExpectError("bad_session")
	x.Move(o, 0, 0)
}

// TestMoveIDs: a resent move is acknowledged again and applied once.
func TestMoveIDs(t *testing.T) {
	t.Parallel()
	s := newServer(t, hub.Options{})
	x, o := wstest.Dial(t, s.url), wstest.Dial(t, s.url)
	wstest.Pair(t, x, o)
	msg := wstest.Fill(x.GameID, 1, 1)
	msg["data"].(map[string]any)["moveId"] = "m-1"
	var ack struct {
		MoveID string
		Move   int
	}
	x.Send(msg)
	x.Expect("moveAck").Decode(t, &ack)
	if ack.MoveID != "m-1" || ack.Move != 1 {
		t.Fatalf("ack %+v", ack)
	}
	x.Expect("updateGrid")
	o.Expect("updateGrid")
	x.Send(msg) // the same move again, as after a lost ack
	x.Expect("moveAck").Decode(t, &ack)
	if ack.Move != 1 {
		t.Fatalf("second ack %+v, want the original move 1", ack)
	}
	// Told again, in case nobody was (see TestResentMoveReachesTheOpponent):
	// the same grid, which clients that have it ignore.
	for _, c := range []*wstest.Client{x, o} {
		var g wstest.Grid
		if c.Expect("updateGrid").Decode(t, &g); g.Move != 1 {
			t.Fatalf("grid after the resend %+v, want move 1 again", g)
		}
	}
	o.Quiet(50 * time.Millisecond)
	g, err := s.store.Game(context.Background(), x.GameID)
	if err != nil || g.Moves != 1 {
		t.Fatalf("game has %d moves, %v", g.Moves, err)
	}
}

// TestResentMoveReachesTheOpponent: a move that landed but whose answer was
// lost (the store timed out after applying it) is refused as unavailable,
// and nobody hears of it. The client resends it with its moveId; the resend,
// a duplicate, is acked and tells the game the move: else the opponent would
// wait for it for ever, and never learn that it ended the game.
func TestResentMoveReachesTheOpponent(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		before [][2]int // played first, by X and O in turn
		lost   [2]int   // X's move whose answer is lost
		ends   string   // the status it leaves the game in, if it ends it
	}{
		{"a move", nil, [2]int{1, 1}, ""},
		{"the winning move", [][2]int{{0, 0}, {0, 1}, {1, 0}, {1, 1}}, [2]int{2, 0}, "finished"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, st := newOutageServer(t, hub.Options{})
			x, o := wstest.Dial(t, s.url), wstest.Dial(t, s.url)
			wstest.Pair(t, x, o)
			wstest.Play(x, o, tc.before)
			msg := wstest.Fill(x.GameID, tc.lost[0], tc.lost[1])
			msg["data"].(map[string]any)["moveId"] = "m-lost"
			st.lose.Store(true)
			x.Send(msg)
			x.ExpectError("unavailable")
			st.lose.Store(false)
			o.Quiet(50 * time.Millisecond)
			x.Send(msg) // the client's resend, after 3 s without an ack
			var ack struct {
				MoveID string
				Move   int
			}
			x.Expect("moveAck").Decode(t, &ack)
			want := len(tc.before) + 1
			if ack.MoveID != "m-lost" || ack.Move != want {
				t.Fatalf("ack %+v, want m-lost as move %d", ack, want)
			}
			for _, c := range []*wstest.Client{x, o} {
				var g wstest.Grid
				c.Expect("updateGrid").Decode(t, &g)
				if g.Move != want || g.Grid[tc.lost[0]][tc.lost[1]] != "x" {
					t.Fatalf("grid after the resend %+v, want move %d, x at %v", g, want, tc.lost)
				}
				if tc.ends != "" {
					c.ExpectStatus(tc.ends)
					c.Expect("updateWinner")
				}
			}
			if tc.ends == "" {
				o.Move(x, 0, 0)
			}
		})
	}
}

// TestMoveToldAsItsReplicaStops: a move that the store takes while the
// mover's replica shuts down, closing the mover's socket mid-request, still
// reaches the opponent on another replica: the game is told of a change
// stored whatever became of the socket that asked for it.
func TestMoveToldAsItsReplicaStops(t *testing.T) {
	t.Parallel()
	s := newServer(t, hub.Options{})
	st := &outage{Bolt: s.store}
	url, h := newReplicaBy(t, st, &blipBus{Bus: s.bus}, hub.Options{})
	x, o := wstest.Dial(t, url), wstest.Dial(t, s.url)
	wstest.Pair(t, x, o)
	st.stall.Store(true)
	x.Send(wstest.Fill(x.GameID, 1, 1))
	waitFor(t, "the move to land", func() bool {
		g, err := s.store.Game(t.Context(), x.GameID)
		return err == nil && g.Moves == 1
	})
	closed := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		closed <- h.Close(ctx)
	}()
	x.ExpectClose()
	var g wstest.Grid
	o.Await("updateGrid", 5*time.Second).Decode(t, &g)
	if g.Move != 1 || g.Grid[1][1] != "x" {
		t.Fatalf("opponent's grid %+v, want x's move 1 at (1,1)", g)
	}
	if err := <-closed; err != nil {
		t.Fatalf("close the replica: %v", err)
	}
}

// TestInvite: a friend's game is private; the link's code lets one friend in.
func TestInvite(t *testing.T) {
	t.Parallel()
	s := newServer(t, hub.Options{})
	host := wstest.Dial(t, s.url)
	host.Send(map[string]any{"action": "joinGame", "data": map[string]any{"mode": "friend"}})
	var j struct{ GameID, Team, Invite string }
	host.Expect("joinGame").Decode(t, &j)
	host.GameID, host.Team = j.GameID, j.Team
	host.ExpectStatus("waiting")
	if len(j.Invite) != 10 || j.Team != "x" {
		t.Fatalf("friend game %+v", j)
	}
	// A quick match does not land in a friend's game.
	stranger := wstest.Dial(t, s.url)
	stranger.Join()
	if stranger.GameID == j.GameID {
		t.Fatal("quick match joined a private game")
	}
	for _, code := range []string{"aaaaaaaaaa", "", strings.Repeat("z", 64)} {
		bad := wstest.Dial(t, s.url)
		bad.Send(map[string]any{"action": "joinGame", "data": map[string]any{"invite": code}})
		bad.ExpectError("invite_not_found")
	}
	host.Send(map[string]any{"action": "joinGame", "data": map[string]any{"invite": j.Invite}})
	host.ExpectError("already_playing")
	friend := wstest.Dial(t, s.url)
	friend.Send(map[string]any{"action": "joinGame", "data": map[string]any{"invite": j.Invite}})
	var fj struct{ GameID, Team string }
	friend.Expect("joinGame").Decode(t, &fj)
	friend.GameID, friend.Team = fj.GameID, fj.Team
	if fj.GameID != j.GameID || fj.Team != "o" {
		t.Fatalf("friend joined %+v", fj)
	}
	for _, c := range []*wstest.Client{host, friend} {
		c.Expect("playerJoin")
		c.ExpectStatus("in-progress")
	}
	// The code is used up.
	late := wstest.Dial(t, s.url)
	late.Send(map[string]any{"action": "joinGame", "data": map[string]any{"invite": j.Invite}})
	late.ExpectError("invite_not_found")
	host.Move(friend, 0, 0)
}

// blipBus is a Bus that fails as Redis's may: the failAt-th Subscribe from
// now fails (a blip), and a Publish whose context is done fails.
type blipBus struct {
	hub.Bus
	failAt atomic.Int64 // 0: none
}

func (b *blipBus) Subscribe(ctx context.Context, channel string, fn func([]byte)) (func(), error) {
	if b.failAt.Add(-1) == 0 {
		return nil, errors.New("subscribe: redis blip (test)")
	}
	return b.Bus.Subscribe(ctx, channel, fn)
}

func (b *blipBus) Publish(ctx context.Context, channel string, msg []byte) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	return b.Bus.Publish(ctx, channel, msg)
}

// TestSeatedDespiteAFailedSubscribe: the store seats a player in a game (a
// quick pairing, or a friend's invite), then the player's replica cannot
// subscribe to the game. That is no "unavailable, nothing changed": the game
// started. The host hears so, and that the player is away, with the usual
// countdown; the player's socket is closed to reconnect, and its page, back,
// plays the game.
func TestSeatedDespiteAFailedSubscribe(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		// start opens the host's game and returns the guest's joinGame.
		start  func(t *testing.T, host *wstest.Client) map[string]any
		failAt int64 // the guest's subscribe to the host's game
	}{
		{"quick", func(t *testing.T, host *wstest.Client) map[string]any {
			host.Join()
			host.ExpectStatus("waiting")
			return map[string]any{"action": "joinGame", "data": nil}
		}, 2}, // after the one to the game the guest would open
		{"invite", func(t *testing.T, host *wstest.Client) map[string]any {
			host.Send(map[string]any{"action": "joinGame", "data": map[string]any{"mode": "friend"}})
			var j struct{ GameID, Team, Invite string }
			host.Expect("joinGame").Decode(t, &j)
			host.GameID, host.Team = j.GameID, j.Team
			host.ExpectStatus("waiting")
			return map[string]any{"action": "joinGame", "data": map[string]any{"invite": j.Invite}}
		}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			opt := hub.Options{Grace: 10 * time.Second}
			s := newServer(t, opt)
			bus := &blipBus{Bus: s.bus}
			replica, _ := newReplicaBy(t, s.hs, bus, opt)
			host := wstest.Dial(t, s.url)
			join := tc.start(t, host)
			guest, token := wstest.Hello(t, replica, "")
			bus.failAt.Store(tc.failAt)
			guest.Send(join)
			if code := guest.ExpectClose(); code != websocket.StatusTryAgainLater {
				t.Fatalf("guest's socket closed with %v, want %v (reconnect)", code, websocket.StatusTryAgainLater)
			}
			host.Expect("playerJoin")
			host.ExpectStatus("in-progress")
			var away struct{ Team string }
			if host.Expect("playerAway").Decode(t, &away); away.Team != "o" {
				t.Fatalf("playerAway for %q, want the guest (o)", away.Team)
			}
			back, _ := wstest.Hello(t, replica, token)
			var j struct{ GameID, Team string }
			back.Expect("joinGame").Decode(t, &j)
			if st := expectState(t, back); j.GameID != host.GameID || st.Team != "o" || st.Status != "in-progress" {
				t.Fatalf("guest back in %+v, state %s as %s; want %s in progress as o", j, st.Status, st.Team, host.GameID)
			}
			host.Expect("playerBack")
			back.Expect("playerBack")
			back.GameID, back.Team = j.GameID, j.Team
			host.Move(back, 1, 1)
		})
	}
}

// TestInviteWaitsForItsPlayer: the page that made an invite may lose its
// socket while the link is out (a phone switches to a chat app to send it).
// The game keeps waiting for its player for the grace period: the player
// finds it again, with the same link; a friend who opens the link meanwhile
// starts the game and sees the player's countdown; after the grace period
// the link is dead.
func TestInviteWaitsForItsPlayer(t *testing.T) {
	t.Parallel()
	const grace = 2 * time.Second
	s := newServer(t, hub.Options{Grace: grace})
	invite := func(token string) (*wstest.Client, string, struct{ GameID, Team, Invite string }) {
		t.Helper()
		host, tok := wstest.Hello(t, s.url, token)
		host.Send(map[string]any{"action": "joinGame", "data": map[string]any{"mode": "friend"}})
		var j struct{ GameID, Team, Invite string }
		host.Expect("joinGame").Decode(t, &j)
		host.GameID, host.Team = j.GameID, j.Team
		host.ExpectStatus("waiting")
		return host, tok, j
	}

	t.Run("the player comes back to the same link", func(t *testing.T) {
		host, tok, j := invite("")
		host.WS.Close(websocket.StatusGoingAway, "switched apps")
		time.Sleep(100 * time.Millisecond) // the server sees it go
		back, _ := wstest.Hello(t, s.url, tok)
		var bj struct{ GameID, Team, Invite string }
		back.Expect("joinGame").Decode(t, &bj)
		st := expectState(t, back)
		if bj != j || st.Status != "waiting" || st.Invite == nil || *st.Invite != j.Invite {
			t.Fatalf("back in %+v, state %+v %v; want %+v waiting with its invite", bj, st.Status, st.Invite, j)
		}
		back.GameID, back.Team = j.GameID, "x"
		time.Sleep(grace + 300*time.Millisecond) // past the first deadline: the invite holds
		friend, _ := wstest.Hello(t, s.url, "")
		friend.Send(map[string]any{"action": "joinGame", "data": map[string]any{"invite": j.Invite}})
		var fj struct{ GameID, Team string }
		friend.Expect("joinGame").Decode(t, &fj)
		friend.GameID, friend.Team = fj.GameID, fj.Team
		if fj.GameID != j.GameID {
			t.Fatalf("friend joined %s, want %s", fj.GameID, j.GameID)
		}
		for _, c := range []*wstest.Client{back, friend} {
			c.Expect("playerJoin")
			c.ExpectStatus("in-progress")
		}
		friend.Quiet(50 * time.Millisecond) // no countdown: the player is here
		back.Move(friend, 1, 1)
	})

	t.Run("a friend comes while the player is away", func(t *testing.T) {
		host, tok, j := invite("")
		host.WS.Close(websocket.StatusGoingAway, "switched apps")
		time.Sleep(100 * time.Millisecond)
		friend, _ := wstest.Hello(t, s.url, "")
		friend.Send(map[string]any{"action": "joinGame", "data": map[string]any{"invite": j.Invite}})
		var fj struct{ GameID, Team string }
		friend.Expect("joinGame").Decode(t, &fj)
		friend.GameID, friend.Team = fj.GameID, fj.Team
		friend.Expect("playerJoin")
		friend.ExpectStatus("in-progress")
		var away struct {
			Team     string
			Deadline int64
		}
		friend.Expect("playerAway").Decode(t, &away)
		if left := time.Until(time.UnixMilli(away.Deadline)); away.Team != "x" || left <= 0 || left > grace {
			t.Fatalf("playerAway %+v (%v left), want x within %v", away, left, grace)
		}
		back, _ := wstest.Hello(t, s.url, tok)
		back.Expect("joinGame")
		st := expectState(t, back)
		if st.Status != "in-progress" || st.Team != "x" {
			t.Fatalf("back in %+v, want the game in progress as x", st)
		}
		friend.Expect("playerBack")
		back.Expect("playerBack")
		back.GameID, back.Team = j.GameID, "x"
		back.Move(friend, 0, 0)
	})

	t.Run("the link dies after the grace period", func(t *testing.T) {
		host, tok, j := invite("")
		host.WS.Close(websocket.StatusGoingAway, "gone")
		time.Sleep(grace + 500*time.Millisecond)
		friend, _ := wstest.Hello(t, s.url, "")
		friend.Send(map[string]any{"action": "joinGame", "data": map[string]any{"invite": j.Invite}})
		friend.ExpectError("invite_not_found")
		if _, err := s.store.Game(context.Background(), j.GameID); err == nil {
			t.Error("the expired invite's game is still stored")
		}
		back, _ := wstest.Hello(t, s.url, tok)
		back.Quiet(100 * time.Millisecond) // nothing to resume
	})

	t.Run("the page came back on another replica first", func(t *testing.T) {
		// Replica A has not seen the old socket close yet (a phone's
		// network dropped: only its pings will tell) when the page is back
		// on replica B. A marks the player away when it does notice; B,
		// where the player is, marks it back, so the invite outlives A's
		// deadline.
		other := newReplicaOf(t, s, hub.Options{Grace: grace})
		host, tok, j := invite("")
		back, _ := wstest.Hello(t, other, tok)
		back.Expect("joinGame")
		if st := expectState(t, back); st.Status != "waiting" || st.Invite == nil || *st.Invite != j.Invite {
			t.Fatalf("back on the other replica in %+v, want the invite waiting", st)
		}
		back.GameID, back.Team = j.GameID, "x"
		host.WS.Close(websocket.StatusGoingAway, "noticed late")
		back.Expect("playerAway") // what A says; B answers it by marking the player back
		time.Sleep(grace + 500*time.Millisecond)
		friend, _ := wstest.Hello(t, s.url, "")
		friend.Send(map[string]any{"action": "joinGame", "data": map[string]any{"invite": j.Invite}})
		var fj struct{ GameID, Team string }
		friend.Expect("joinGame").Decode(t, &fj)
		friend.GameID, friend.Team = fj.GameID, fj.Team
		for _, c := range []*wstest.Client{back, friend} {
			c.Expect("playerJoin")
			c.ExpectStatus("in-progress")
		}
		back.Move(friend, 1, 1)
	})

	t.Run("a lapsed invite is cancelled when its player is seen", func(t *testing.T) {
		// The replica that armed the expiry is gone (a restart): the game
		// still waits, its player away past the deadline.
		host, tok, j := invite("")
		host.WS.Close(websocket.StatusNormalClosure, "")
		lapse(t, s, j.GameID)
		back, _ := wstest.Hello(t, s.url, tok)
		back.Quiet(200 * time.Millisecond) // nothing to resume
		if _, err := s.store.Game(context.Background(), j.GameID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("lapsed invite's game: %v, want it deleted", err)
		}
		back.Send(map[string]any{"action": "sync", "data": map[string]any{"gameId": j.GameID}})
		back.ExpectError("not_in_game")
	})

	t.Run("a lapsed invite asked for by another tab", func(t *testing.T) {
		// The player's other tab, in no game, asks for it by id.
		tab, tok := wstest.Hello(t, s.url, "")
		host, _, j := invite(tok)
		host.WS.Close(websocket.StatusNormalClosure, "")
		lapse(t, s, j.GameID)
		tab.Send(map[string]any{"action": "sync", "data": map[string]any{"gameId": j.GameID}})
		tab.ExpectError("not_in_game")
		if _, err := s.store.Game(context.Background(), j.GameID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("lapsed invite's game: %v, want it deleted", err)
		}
	})

	t.Run("a quick game does not wait", func(t *testing.T) {
		q, tok := wstest.Hello(t, s.url, "")
		q.Join()
		q.WS.Close(websocket.StatusGoingAway, "gone")
		time.Sleep(100 * time.Millisecond)
		if _, err := s.store.Game(context.Background(), q.GameID); err == nil {
			t.Error("a waiting quick game outlived its socket")
		}
		back, _ := wstest.Hello(t, s.url, tok)
		back.Quiet(100 * time.Millisecond)
	})
}

// lapse waits until the invite's player is marked away, then moves the
// deadline into the past: as if the replica that armed its expiry stopped.
func lapse(t *testing.T, s *server, id string) {
	t.Helper()
	waitFor(t, "the player marked away", func() bool {
		g, err := s.store.Game(context.Background(), id)
		return err == nil && g.Away[0] != 0
	})
	past := time.Now().Add(-time.Second).UnixMilli()
	if _, err := s.store.Update(context.Background(), id, func(g *store.Game) error { return g.SetAway(g.PlayerX, past) }); err != nil {
		t.Fatal(err)
	}
}

// TestRematchDeclined: a player who leaves an ended game, by going back to
// the home screen, by closing the page, or by going on to a new game or to
// watch one, is announced to the other, whose rematch offer will not be
// answered. (One who joins the rematch is not: see TestRematch.)
func TestRematchDeclined(t *testing.T) {
	t.Parallel()
	s := newServer(t, hub.Options{})
	tests := []struct {
		how   string
		leave func(t *testing.T, o *wstest.Client)
	}{
		{"leaveGame", func(t *testing.T, o *wstest.Client) {
			o.Send(map[string]any{"action": "leaveGame", "data": map[string]any{"gameId": o.GameID}})
			o.Expect("left")
		}},
		{"close", func(t *testing.T, o *wstest.Client) {
			o.WS.Close(websocket.StatusGoingAway, "closed the page")
		}},
		{"new game", func(t *testing.T, o *wstest.Client) {
			o.Send(map[string]any{"action": "joinGame", "data": map[string]any{"mode": "bot", "level": "easy"}})
			o.Expect("joinGame")
		}},
		{"spectate", func(t *testing.T, o *wstest.Client) { watchNew(t, s.url, o) }},
	}
	for _, tc := range tests {
		t.Run(tc.how, func(t *testing.T) {
			x, o := wstest.Dial(t, s.url), wstest.Dial(t, s.url)
			wstest.Pair(t, x, o)
			winTopRow(x, o)
			x.Send(map[string]any{"action": "rematch", "data": map[string]any{"gameId": x.GameID}})
			x.Expect("rematchOffer")
			o.Expect("rematchOffer")
			tc.leave(t, o)
			var left struct{ GameID, Team string }
			x.Expect("playerLeft").Decode(t, &left)
			if left.GameID != x.GameID || left.Team != "o" {
				t.Fatalf("playerLeft %+v, want o of %s", left, x.GameID)
			}
			// The leaver is not told of itself.
			x.Send(map[string]any{"action": "leaveGame", "data": map[string]any{"gameId": x.GameID}})
			x.Expect("left")
			x.Quiet(50 * time.Millisecond)
		})
	}
}

// TestBotGame plays the hard computer to the end: it answers every move and
// never loses.
func TestBotGame(t *testing.T) {
	t.Parallel()
	s := newServer(t, hub.Options{})
	p := wstest.Dial(t, s.url)
	p.Send(map[string]any{"action": "joinGame", "data": map[string]any{"mode": "bot", "level": "hard"}})
	var j struct{ GameID, Team, Opponent, Level string }
	p.Expect("joinGame").Decode(t, &j)
	p.GameID, p.Team = j.GameID, j.Team
	if j.Team != "x" || j.Opponent != "bot" || j.Level != "hard" {
		t.Fatalf("bot game %+v", j)
	}
	p.Expect("playerJoin")
	p.ExpectStatus("in-progress")
	var board [3][3]string
	for {
		// Play the first empty square; the bot answers.
		x, y := -1, -1
		for i := 0; i < 9 && x < 0; i++ {
			if board[i%3][i/3] == "" {
				x, y = i%3, i/3
			}
		}
		p.Send(wstest.Fill(p.GameID, x, y))
		var g wstest.Grid
		p.Expect("updateGrid").Decode(t, &g)
		board = g.Grid
		m := p.Next()
		if m.Action == "updateGameStatus" {
			var w struct{ Winner *string }
			p.Expect("updateWinner").Decode(t, &w)
			if w.Winner != nil && *w.Winner == "x" {
				t.Fatal("the hard bot lost")
			}
			return
		}
		if m.Action != "updateGrid" {
			t.Fatalf("got %s %s, want the bot's move", m.Action, m.Data)
		}
		m.Decode(t, &g)
		if g.Last.Team != "o" {
			t.Fatalf("bot's grid %+v", g)
		}
		board = g.Grid
		if g.Move == 9 {
			p.ExpectStatus("finished-draw")
			return
		}
		// The bot may have won with its move.
		select {
		case next := <-p.Frames:
			if next.Action == "updateGameStatus" {
				p.Expect("updateWinner")
				return
			}
			t.Fatalf("unexpected %s", next.Action)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// TestRematch: one offer alone starts nothing; both start a game with the
// teams swapped.
func TestRematch(t *testing.T) {
	t.Parallel()
	s := newServer(t, hub.Options{})
	x, o := wstest.Dial(t, s.url), wstest.Dial(t, s.url)
	wstest.Pair(t, x, o)
	x.Send(map[string]any{"action": "rematch", "data": map[string]any{"gameId": x.GameID}})
	x.ExpectError("rematch_unavailable")
	winTopRow(x, o)
	x.Send(map[string]any{"action": "rematch", "data": map[string]any{"gameId": x.GameID}})
	for _, c := range []*wstest.Client{x, o} {
		var offer struct{ Team string }
		c.Expect("rematchOffer").Decode(t, &offer)
		if offer.Team != "x" {
			t.Fatalf("offer by %s", offer.Team)
		}
	}
	o.Quiet(50 * time.Millisecond) // one side only: no game yet
	o.Send(map[string]any{"action": "rematch", "data": map[string]any{"gameId": o.GameID}})
	var next string
	for _, c := range []*wstest.Client{x, o} {
		c.Expect("rematchOffer")
		var r struct{ GameID, NewGameID string }
		c.Expect("rematch").Decode(t, &r)
		next = r.NewGameID
	}
	for _, c := range []*wstest.Client{x, o} {
		c.Send(map[string]any{"action": "joinGame", "data": map[string]any{"gameId": next}})
		var j struct{ GameID, Team string }
		c.Expect("joinGame").Decode(t, &j)
		st := expectState(t, c)
		if st.Status != "in-progress" || st.Move != 0 || j.GameID != next {
			t.Fatalf("rematch state %+v", st)
		}
		c.GameID, c.Team = j.GameID, j.Team
	}
	if x.Team != "o" || o.Team != "x" {
		t.Fatalf("teams not swapped: old x is now %s, old o is %s", x.Team, o.Team)
	}
	o.Move(x, 1, 1)
}

// TestRematchDespiteAFailedWrite: both players offered a rematch, and the
// store failed a write of the second offer: the rematch game's Create after
// the offer was stored, or the offer itself, stored but its answer lost.
// The rematch starts all the same: once the store is back, or when the
// client offers again, as the error it got tells it to.
func TestRematchDespiteAFailedWrite(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		fail    func(*outage) *atomic.Bool
		refused bool // the failed offer gets unavailable, and is made again
	}{
		{"its create failed", func(st *outage) *atomic.Bool { return &st.noCreate }, false},
		{"its answer was lost", func(st *outage) *atomic.Bool { return &st.lose }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, st := newOutageServer(t, hub.Options{})
			x, o := wstest.Dial(t, s.url), wstest.Dial(t, s.url)
			wstest.Pair(t, x, o)
			winTopRow(x, o)
			offer := func(c *wstest.Client) {
				c.Send(map[string]any{"action": "rematch", "data": map[string]any{"gameId": c.GameID}})
			}
			offer(x)
			x.Expect("rematchOffer")
			o.Expect("rematchOffer")
			fail := tc.fail(st)
			fail.Store(true)
			offer(o)
			if tc.refused {
				o.ExpectError("unavailable")
				fail.Store(false)
				offer(o)
			} else {
				for _, c := range []*wstest.Client{x, o} {
					c.Expect("rematchOffer")
				}
				o.Quiet(200 * time.Millisecond) // no game yet
				fail.Store(false)
			}
			var next string
			for _, c := range []*wstest.Client{x, o} {
				var r struct{ GameID, NewGameID string }
				c.Await("rematch", 5*time.Second).Decode(t, &r)
				next = r.NewGameID
			}
			for _, c := range []*wstest.Client{x, o} {
				c.Send(map[string]any{"action": "joinGame", "data": map[string]any{"gameId": next}})
				var j struct{ GameID, Team string }
				c.Expect("joinGame").Decode(t, &j)
				if st := expectState(t, c); st.Status != "in-progress" || j.GameID != next {
					t.Fatalf("rematch %s: joined %+v, state %+v", next, j, st)
				}
				c.GameID, c.Team = j.GameID, j.Team
			}
			o.Move(x, 1, 1) // the teams swapped: o opens
		})
	}
}

// TestSpectate: a watcher sees the game and the players see it watching; the
// watcher's moves change nothing.
func TestSpectate(t *testing.T) {
	t.Parallel()
	s := newServer(t, hub.Options{ListInterval: 20 * time.Millisecond})
	lobby := wstest.Dial(t, s.url)
	lobby.Send(map[string]any{"action": "listGames"})
	var list struct {
		Games []struct {
			GameID string
			Move   int
		}
	}
	lobby.Expect("gameList").Decode(t, &list)
	if len(list.Games) != 0 {
		t.Fatalf("games before any: %+v", list)
	}
	x, o := wstest.Dial(t, s.url), wstest.Dial(t, s.url)
	wstest.Pair(t, x, o)
	x.Move(o, 1, 1)
	// Lists come as the set changes; wait for the one with the new game.
	for len(list.Games) == 0 {
		lobby.Expect("gameList").Decode(t, &list)
	}
	if len(list.Games) != 1 || list.Games[0].GameID != x.GameID {
		t.Fatalf("live games %+v, want %s", list, x.GameID)
	}
	lobby.Send(map[string]any{"action": "spectate", "data": map[string]any{"gameId": x.GameID}})
	st := expectState(t, lobby)
	if st.Team != "spectator" || st.Grid[1][1] != "x" || st.Spectators != 1 {
		t.Fatalf("spectator state %+v", st)
	}
	for _, c := range []*wstest.Client{x, o, lobby} {
		var sp struct{ Count int }
		c.Expect("spectators").Decode(t, &sp)
		if sp.Count != 1 {
			t.Fatalf("spectators %d", sp.Count)
		}
	}
	lobby.Send(wstest.Fill(x.GameID, 0, 0))
	lobby.ExpectError("not_in_game")
	o.Move(x, 0, 0)
	lobby.Expect("updateGrid")
	lobby.Send(map[string]any{"action": "leaveGame", "data": map[string]any{"gameId": x.GameID}})
	lobby.Expect("left")
	for _, c := range []*wstest.Client{x, o} {
		var sp struct{ Count int }
		c.Expect("spectators").Decode(t, &sp)
		if sp.Count != 0 {
			t.Fatalf("spectators after leaving %d", sp.Count)
		}
	}
}

// TestResign: leaveGame in a game in progress gives it to the opponent.
func TestResign(t *testing.T) {
	t.Parallel()
	s := newServer(t, hub.Options{})
	x, o := wstest.Dial(t, s.url), wstest.Dial(t, s.url)
	wstest.Pair(t, x, o)
	x.Send(map[string]any{"action": "leaveGame", "data": map[string]any{"gameId": x.GameID}})
	for _, c := range []*wstest.Client{x, o} {
		c.ExpectStatus("abandoned")
		var w struct {
			Winner *string
			Reason string
		}
		c.Expect("updateWinner").Decode(t, &w)
		if w.Winner == nil || *w.Winner != "o" || w.Reason != "resign" {
			t.Fatalf("resign: winner %v reason %q", w.Winner, w.Reason)
		}
	}
	x.Expect("left")
}

// TestPerAddressLimit: a thousand sockets from one address are cut off at the
// limit with 429, and the game already running there plays on. Behind a
// trusted proxy, X-Real-IP is the address that counts.
func TestPerAddressLimit(t *testing.T) {
	t.Parallel()
	s := newServer(t, hub.Options{MaxConnsPerIP: 50, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	x, o := wstest.Dial(t, s.url), wstest.Dial(t, s.url)
	wstest.Pair(t, x, o)
	var opened, refused int
	var conns []*websocket.Conn
	for range 1000 {
		c, resp, err := websocket.Dial(context.Background(), s.url, nil)
		switch {
		case err == nil:
			opened++
			conns = append(conns, c)
		case resp != nil && resp.StatusCode == http.StatusTooManyRequests:
			refused++
		default:
			t.Fatalf("dial: %v", err)
		}
	}
	if opened != 48 || refused != 952 {
		t.Errorf("opened %d, refused %d; want 48 and 952 with a limit of 50", opened, refused)
	}
	x.Move(o, 1, 1)
	// Another client behind the proxy is its own address.
	c, _, err := websocket.Dial(context.Background(), s.url, &websocket.DialOptions{HTTPHeader: http.Header{"X-Real-IP": {"192.0.2.7"}}})
	if err != nil {
		t.Errorf("a different client behind the proxy was refused: %v", err)
	} else {
		c.CloseNow()
	}
	for _, c := range conns {
		c.CloseNow()
	}
	o.Move(x, 0, 0)
}

// TestResentMovesAreLimited: a move resent in a loop is told to the game
// again each time (the first answer may have been lost), so each resend
// counts against the rate limit: the resender is closed before its opponent
// is flooded off the game. One resend at a time, each acked before the
// next, so that the resender's own queue never fills (which would close it
// as too slow instead).
func TestResentMovesAreLimited(t *testing.T) {
	t.Parallel()
	s := newServer(t, hub.Options{})
	x, o := wstest.Dial(t, s.url), wstest.Dial(t, s.url)
	wstest.Pair(t, x, o)
	fill := wstest.Fill(x.GameID, 1, 1)
	fill["data"].(map[string]any)["moveId"] = "m1"
	limited := false
	for i := 0; i < 1000 && !limited; i++ {
		x.Send(fill)
		for acked := false; !acked && !limited; {
			m := x.Next()
			switch m.Action {
			case "moveAck":
				acked = true
			case "error":
				var e struct{ Code string }
				m.Decode(t, &e)
				if e.Code != "rate_limited" {
					t.Fatalf("resend %d: error %s", i+1, e.Code)
				}
				limited = true
			}
		}
	}
	if !limited {
		t.Fatal("1000 resends, none refused as rate limited")
	}
	var ce websocket.CloseError
	if err := <-x.Closed; !errors.As(err, &ce) || ce.Code != websocket.StatusPolicyViolation {
		t.Errorf("resender closed with %v, want 1008 rate limited", err)
	}
	// The opponent is still in the game, however many grids it was told.
	o.Send(map[string]any{"action": "ping"})
	o.Await("pong", 5*time.Second)
}

// TestCancelRetriedAfterTheGameWasTakenUp: a waiting game's cancellation
// that the store failed is not tried again on a game that its player took up
// again meanwhile on another replica and is now playing: Leave would resign
// it.
func TestCancelRetriedAfterTheGameWasTakenUp(t *testing.T) {
	t.Parallel()
	s, st := newOutageServer(t, hub.Options{})
	r2 := newReplicaOn(t, s, st.Bolt, hub.Options{}) // its own way to the store, up
	x, token := wstest.Hello(t, s.url, "")
	x.Join()
	x.ExpectStatus("waiting")
	st.down.Store(true)
	x.WS.Close(websocket.StatusGoingAway, "")
	waitFor(t, "the cancel to fail", func() bool { return st.failed.Load() > 0 })
	back, _ := wstest.Hello(t, r2, token)
	back.Join()
	o := wstest.Dial(t, r2)
	o.Join()
	if back.GameID != x.GameID || o.GameID != x.GameID {
		t.Fatalf("the page took up %s and the next player joined %s, want both in %s", back.GameID, o.GameID, x.GameID)
	}
	st.down.Store(false)
	time.Sleep(2 * time.Second) // the retry comes after 0.5 s
	if g, err := st.Game(t.Context(), x.GameID); err != nil || g.Status != game.InProgress {
		t.Fatalf("game %s after the retry: %v, %v; want in progress", x.GameID, g.Status, err)
	}
}

// TestOpenerGoneBeforeThePairing: a quick game whose opener left while it
// waited, and whose cancellation was lost (here the store failed it; a
// replica that dies does the same), is paired with the next player all the
// same. The opener, nowhere to be seen and never marked away, is marked
// away once a grace period passes without a move, and forfeits: the new
// player does not wait for ever.
func TestOpenerGoneBeforeThePairing(t *testing.T) {
	t.Parallel()
	const grace = 300 * time.Millisecond
	s, st := newOutageServer(t, hub.Options{Grace: grace})
	r2 := newReplicaOn(t, s, st.Bolt, hub.Options{Grace: grace})
	x := waiting(t, s.url)
	st.down.Store(true) // for the first replica only, and for good
	x.WS.Close(websocket.StatusGoingAway, "")
	waitFor(t, "the cancel to fail", func() bool { return st.failed.Load() > 0 })
	o := wstest.Dial(t, r2)
	o.Join()
	if o.GameID != x.GameID || o.Team != "o" {
		t.Fatalf("joined %s as %s, want the stranded game %s as o", o.GameID, o.Team, x.GameID)
	}
	var away struct{ Team string }
	o.Await("playerAway", 5*time.Second).Decode(t, &away)
	var w struct{ Winner, Reason string }
	o.Await("updateWinner", 5*time.Second).Decode(t, &w)
	if away.Team != "x" || w.Winner != "o" || w.Reason != "forfeit" {
		t.Errorf("away %q, then winner %q by %q; want x away, o winning by forfeit", away.Team, w.Winner, w.Reason)
	}
}

// TestSlowOpenerKeepsTheGame: an opener who is there but has not moved when
// the other replica's check comes is marked back at once by its own
// replica, and plays on.
func TestSlowOpenerKeepsTheGame(t *testing.T) {
	t.Parallel()
	const grace = 300 * time.Millisecond
	s := newServer(t, hub.Options{Grace: grace})
	r2 := newReplicaOf(t, s, hub.Options{Grace: grace})
	x := waiting(t, s.url)
	o := wstest.Dial(t, r2)
	o.Join()
	o.Await("playerAway", 5*time.Second) // the check, after the grace period
	o.Await("playerBack", 5*time.Second) // answered by the opener's replica
	time.Sleep(2 * grace)                // past the deadline the mark had
	x.Await("updateGameStatus", time.Second)
	x.Send(wstest.Fill(x.GameID, 1, 1))
	var g wstest.Grid
	o.Await("updateGrid", 5*time.Second).Decode(t, &g)
	if g.Move != 1 || g.Last.Team != "x" {
		t.Fatalf("after the check the opener's move came as %+v, want move 1 by x", g)
	}
}
