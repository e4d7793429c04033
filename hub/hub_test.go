package hub_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/tictac/tictac/hub"
	"github.com/tictac/tictac/internal/wstest"
	"github.com/tictac/tictac/store"
)

func TestPing(t *testing.T) {
	t.Parallel()
	s := newServer(t, hub.Options{})
	c := wstest.Dial(t, s.url)
	c.Ping()
}

// TestFullGames plays every kind of ending and checks what both players see.
func TestFullGames(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		moves  [][2]int // alternate x, o
		status string
		winner *string
		line   [][2]int
	}{
		{"x wins", [][2]int{{0, 0}, {0, 1}, {1, 0}, {1, 1}, {2, 0}}, "finished", ptr("x"), [][2]int{{0, 0}, {1, 0}, {2, 0}}},
		{"o wins", [][2]int{{0, 0}, {2, 0}, {1, 0}, {1, 1}, {2, 2}, {0, 2}}, "finished", ptr("o"), [][2]int{{2, 0}, {1, 1}, {0, 2}}},
		{"draw", [][2]int{{0, 0}, {1, 0}, {2, 0}, {1, 1}, {0, 1}, {2, 1}, {1, 2}, {0, 2}, {2, 2}}, "finished-draw", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newServer(t, hub.Options{})
			x, o := wstest.Dial(t, s.url), wstest.Dial(t, s.url)
			wstest.Pair(t, x, o)
			var last wstest.Grid
			for i, m := range tt.moves {
				p, q := x, o
				if i%2 == 1 {
					p, q = o, x
				}
				last = p.Move(q, m[0], m[1])
				if last.Move != i+1 {
					t.Fatalf("move %d: got move number %d", i+1, last.Move)
				}
			}
			for _, p := range []*wstest.Client{x, o} {
				p.ExpectStatus(tt.status)
				var w struct {
					GameID string
					Winner *string
					Line   [][2]int
				}
				p.Expect("updateWinner").Decode(t, &w)
				if fmt.Sprint(deref(w.Winner), w.Line) != fmt.Sprint(deref(tt.winner), tt.line) || w.GameID != x.GameID {
					t.Errorf("got winner %v line %v, want %v %v", deref(w.Winner), w.Line, deref(tt.winner), tt.line)
				}
			}
			// Nothing moves after the end.
			o.Send(wstest.Fill(o.GameID, 2, 2))
			o.ExpectError("game_over")
			// Both can go on to the next game, which pairs them again.
			pairNext(t, o, x)
		})
	}
}

func ptr(s string) *string { return &s }

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}

// TestForfeit: a player whose socket drops mid-game is waited for, then
// loses by forfeit; the one left behind wins and plays on.
func TestForfeit(t *testing.T) {
	t.Parallel()
	s := newServer(t, hub.Options{})
	x, o := wstest.Dial(t, s.url), wstest.Dial(t, s.url)
	wstest.Pair(t, x, o)
	x.Move(o, 1, 1)
	o.WS.Close(websocket.StatusNormalClosure, "bye")
	var away struct {
		Team     string
		Deadline int64
	}
	x.Expect("playerAway").Decode(t, &away)
	if away.Team != "o" || away.Deadline < time.Now().UnixMilli() {
		t.Fatalf("playerAway %+v", away)
	}
	x.ExpectStatus("abandoned")
	var w struct {
		Winner *string
		Reason string
	}
	x.Expect("updateWinner").Decode(t, &w)
	if w.Winner == nil || *w.Winner != "x" || w.Reason != "forfeit" {
		t.Errorf("forfeit winner %v reason %q, want x by forfeit", w.Winner, w.Reason)
	}
	x.Send(wstest.Fill(x.GameID, 0, 0))
	x.ExpectError("game_over")
	y := wstest.Dial(t, s.url)
	wstest.Pair(t, x, y)
}

// TestLeaveWhileWaiting checks that a player who leaves the queue is not paired.
func TestLeaveWhileWaiting(t *testing.T) {
	t.Parallel()
	s := newServer(t, hub.Options{})
	ghost := waiting(t, s.url)
	ghost.WS.Close(websocket.StatusNormalClosure, "")
	// The store processes the leave after the close; give it a moment by
	// polling through a real join rather than sleeping blindly.
	deadline := time.Now().Add(5 * time.Second)
	for {
		a := wstest.Dial(t, s.url)
		a.Join()
		if a.GameID != ghost.GameID {
			if a.Team != "x" {
				t.Fatalf("first player after the ghost left got team %s in %s", a.Team, a.GameID)
			}
			a.ExpectStatus("waiting")
			b := wstest.Dial(t, s.url)
			b.Join()
			if b.GameID != a.GameID || b.Team != "o" {
				t.Fatalf("b joined %s/%s, want %s/o", b.GameID, b.Team, a.GameID)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("joined the ghost's game")
		}
		a.WS.Close(websocket.StatusNormalClosure, "")
		time.Sleep(10 * time.Millisecond)
	}
}

func TestJoinTwice(t *testing.T) {
	t.Parallel()
	s := newServer(t, hub.Options{})
	x, o := wstest.Dial(t, s.url), wstest.Dial(t, s.url)
	x.Join()
	x.ExpectStatus("waiting")
	first := x.GameID
	x.Join() // still waiting: the same game, not a second one
	if x.GameID != first || x.Team != "x" {
		t.Fatalf("second join gave %s/%s, want %s/x", x.GameID, x.Team, first)
	}
	o.Join()
	if o.GameID != first {
		t.Fatalf("o joined %s, want %s", o.GameID, first)
	}
	x.Expect("playerJoin")
	x.ExpectStatus("in-progress")
	x.Send(map[string]any{"action": "joinGame"})
	x.ExpectError("already_playing")
}

// TestRefusedMoves checks that the server, not the client, decides who moves.
func TestRefusedMoves(t *testing.T) {
	t.Parallel()
	s := newServer(t, hub.Options{})
	x, o := wstest.Dial(t, s.url), wstest.Dial(t, s.url)
	x.Join()
	x.ExpectStatus("waiting")
	x.Send(wstest.Fill(x.GameID, 0, 0))
	x.ExpectError("not_started")
	o.Join()
	for _, p := range []*wstest.Client{x, o} {
		p.Expect("playerJoin")
		p.ExpectStatus("in-progress")
	}
	other1, other2 := wstest.Dial(t, s.url), wstest.Dial(t, s.url)
	wstest.Pair(t, other1, other2)

	tests := []struct {
		name string
		who  *wstest.Client
		msg  map[string]any
		code string
	}{
		{"o moves first", o, wstest.Fill(o.GameID, 0, 0), "not_your_turn"},
		{"o claims team x", o, map[string]any{"action": "fillSquare", "data": map[string]any{"gameId": o.GameID, "team": "x", "coords": map[string]int{"x": 0, "y": 0}}}, "not_your_turn"},
		{"off the board", x, wstest.Fill(x.GameID, 3, 0), "off_board"},
		{"negative", x, wstest.Fill(x.GameID, 0, -1), "off_board"},
		{"another game", x, wstest.Fill(other1.GameID, 0, 0), "not_in_game"},
		{"made-up game", x, wstest.Fill("nope", 0, 0), "not_in_game"},
		{"watcher", wstest.Dial(t, s.url), wstest.Fill(x.GameID, 0, 0), "not_in_game"},
	}
	for _, tt := range tests {
		tt.who.Send(tt.msg)
		tt.who.ExpectError(tt.code)
	}
	x.Move(o, 1, 1)
	x.Send(wstest.Fill(x.GameID, 0, 0))
	x.ExpectError("not_your_turn")
	o.Send(wstest.Fill(o.GameID, 1, 1))
	o.ExpectError("occupied")
	// Nobody else heard any of it, and the game is intact.
	other1.Quiet(50 * time.Millisecond)
	other2.Quiet(0)
	g, err := s.store.Game(context.Background(), x.GameID)
	if err != nil {
		t.Fatal(err)
	}
	if g.Moves != 1 {
		t.Errorf("game has %d moves, want 1", g.Moves)
	}
	o.Move(x, 0, 0)
}

// TestBadInput sends every kind of bad frame; each gets a clear answer and
// neither the game nor the other sockets notice.
func TestBadInput(t *testing.T) {
	t.Parallel()
	s := newServer(t, hub.Options{})
	x, o := wstest.Dial(t, s.url), wstest.Dial(t, s.url)
	wstest.Pair(t, x, o)
	bystander1, bystander2 := wstest.Dial(t, s.url), wstest.Dial(t, s.url)
	wstest.Pair(t, bystander1, bystander2)

	tests := []struct {
		name string
		raw  string
		code string
	}{
		{"not json", `hello`, "bad_json"},
		{"truncated", `{"action":"ping"`, "bad_json"},
		{"array", `[1,2]`, "bad_json"},
		{"null", `null`, "bad_json"},
		{"no action", `{"data":{}}`, "bad_json"},
		{"action not a string", `{"action":7}`, "bad_json"},
		{"unknown action", `{"action":"cheat"}`, "unknown_action"},
		{"join with junk", `{"action":"joinGame","data":"please"}`, "bad_data"},
		{"fill no data", `{"action":"fillSquare"}`, "bad_data"},
		{"fill no coords", fmt.Sprintf(`{"action":"fillSquare","data":{"gameId":%q}}`, x.GameID), "bad_data"},
		{"fill no y", fmt.Sprintf(`{"action":"fillSquare","data":{"gameId":%q,"coords":{"x":1}}}`, x.GameID), "bad_data"},
		{"fill no game", `{"action":"fillSquare","data":{"coords":{"x":1,"y":1}}}`, "bad_data"},
		{"x a string", fmt.Sprintf(`{"action":"fillSquare","data":{"gameId":%q,"coords":{"x":"1","y":1}}}`, x.GameID), "bad_data"},
		{"x a fraction", fmt.Sprintf(`{"action":"fillSquare","data":{"gameId":%q,"coords":{"x":1.5,"y":1}}}`, x.GameID), "bad_data"},
		{"x huge", fmt.Sprintf(`{"action":"fillSquare","data":{"gameId":%q,"coords":{"x":1e40,"y":1}}}`, x.GameID), "bad_data"},
		{"gameId a number", `{"action":"fillSquare","data":{"gameId":5,"coords":{"x":1,"y":1}}}`, "bad_data"},
		{"data an array", `{"action":"fillSquare","data":[1,2]}`, "bad_data"},
		{"x out of range", fmt.Sprintf(`{"action":"fillSquare","data":{"gameId":%q,"coords":{"x":9999999999,"y":1}}}`, x.GameID), "off_board"},
	}
	for _, tt := range tests {
		x.SendRaw(websocket.MessageText, []byte(tt.raw))
		m := x.Expect("error")
		var e struct{ Code, Message string }
		m.Decode(t, &e)
		if e.Code != tt.code || e.Message == "" {
			t.Errorf("%s: got %q %q, want %q", tt.name, e.Code, e.Message, tt.code)
		}
	}
	x.SendRaw(websocket.MessageBinary, []byte{0, 1, 2})
	x.ExpectError("bad_frame")

	// After all that, the game is untouched and goes on.
	g, err := s.store.Game(context.Background(), x.GameID)
	if err != nil || g.Moves != 0 {
		t.Fatalf("game after bad input: %d moves, %v", g.Moves, err)
	}
	x.Move(o, 2, 2)

	// A frame over 4 KiB (here 1 MiB) closes that socket with 1009, and
	// only that one. The server closes as soon as it reads the frame's length,
	// so the rest of the write may fail: that is the point.
	big := `{"action":"ping","pad":"` + strings.Repeat("a", 1<<20) + `"}`
	x.WS.Write(context.Background(), websocket.MessageText, []byte(big))
	if code := x.ExpectClose(); code != websocket.StatusMessageTooBig {
		t.Errorf("big frame closed with %v, want 1009", code)
	}
	o.Expect("playerAway")
	o.ExpectStatus("abandoned")
	bystander1.Quiet(50 * time.Millisecond)
	bystander1.Move(bystander2, 0, 0)
}

// TestFlood checks the rate limit: a socket that floods gets rate_limited and
// is closed; its neighbours play on. Pings change nothing; the others are
// the messages that no game paces, counted whether they change anything or
// not.
func TestFlood(t *testing.T) {
	t.Parallel()
	s := newServer(t, hub.Options{})
	a, b := wstest.Dial(t, s.url), wstest.Dial(t, s.url)
	wstest.Pair(t, a, b)
	c, d := wstest.Dial(t, s.url), wstest.Dial(t, s.url) // neighbours nobody watches
	wstest.Pair(t, c, d)
	watched := fmt.Sprintf(`{"action":"spectate","data":{"gameId":%q}}`, a.GameID)
	left := fmt.Sprintf(`{"action":"leaveGame","data":{"gameId":%q}}`, a.GameID)
	// GAME stands for the game id of the flooder's latest joinGame reply,
	// which a frame after a join waits for.
	const join = `{"action":"joinGame"}`
	for _, tc := range []struct {
		name       string
		once, loop []string // frames sent once, then in turn over and over
		pongs      bool
	}{
		{"pings", nil, []string{`{"action":"ping"}`}, true},
		{"reads of a game", []string{join}, []string{`{"action":"sync","data":{"gameId":"GAME"}}`}, false},
		{"game lists", nil, []string{`{"action":"listGames"}`, `{"action":"unlistGames"}`}, false},
		{"stats switches", nil, []string{`{"action":"pauseStats"}`, `{"action":"resumeStats"}`}, false},
		{"watching and leaving", nil, []string{watched, left}, false},
		{"joining and leaving", nil, []string{join, `{"action":"leaveGame","data":{"gameId":"GAME"}}`}, false},
		{"playing the computer and resigning", nil, []string{`{"action":"joinGame","data":{"mode":"bot","level":"easy"}}`, `{"action":"leaveGame","data":{"gameId":"GAME"}}`}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			flooder := wstest.Dial(t, s.url)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			games := make(chan string, 1)
			go func() {
				frames := append(slices.Clone(tc.once), slices.Repeat(tc.loop, 10000/len(tc.loop))...)
				var game string
				joined := false
				for _, f := range frames {
					if strings.Contains(f, "GAME") && joined {
						select {
						case game = <-games:
						case <-ctx.Done():
							return
						}
						joined = false
					}
					if strings.Contains(f, `"joinGame"`) {
						joined = true
					}
					if flooder.WS.Write(ctx, websocket.MessageText, []byte(strings.Replace(f, "GAME", game, 1))) != nil {
						return
					}
				}
			}()
			var pongs int
		read:
			for {
				var m wstest.Msg
				var open bool
				select {
				case m, open = <-flooder.Frames:
				case <-ctx.Done():
					t.Fatal("the flooder is still open after 10s")
				}
				switch {
				case !open:
					break read
				case m.Action == "pong":
					pongs++
				case m.Action == "joinGame":
					var j struct{ GameID string }
					m.Decode(t, &j)
					select {
					case games <- j.GameID:
					default: // the writer has stopped
					}
				case m.Action == "error":
					var e struct{ Code string }
					m.Decode(t, &e)
					if e.Code != "rate_limited" && e.Code != "not_in_game" {
						t.Fatalf("got error %s", e.Code)
					}
				}
			}
			var ce websocket.CloseError
			if err := <-flooder.Closed; !errors.As(err, &ce) || ce.Code != websocket.StatusPolicyViolation || ce.Reason != "rate limited" {
				t.Errorf("flooder closed with %v, want 1008 rate limited", err)
			}
			if tc.pongs && (pongs < 100 || pongs > 200) {
				t.Errorf("flooder got %d pongs before the limit, want about the burst of 100", pongs)
			}
		})
	}
	c.Move(d, 1, 1)
	d.Move(c, 0, 0)
}

// TestConcurrentJoins has 200 clients join at once: exactly 100 games form,
// each with one x and one o, and every game plays out without cross-talk.
func TestConcurrentJoins(t *testing.T) {
	t.Parallel()
	s := newServer(t, hub.Options{})
	const n = 200
	clients := make([]*wstest.Client, n)
	for i := range clients {
		clients[i] = wstest.Dial(t, s.url)
	}
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.Send(map[string]any{"action": "joinGame"})
		}()
	}
	wg.Wait()
	type seat struct{ x, o *wstest.Client }
	games := map[string]*seat{}
	for _, c := range clients {
		var d struct{ GameID, Team string }
		c.Expect("joinGame").Decode(t, &d)
		c.GameID, c.Team = d.GameID, d.Team
		st := games[d.GameID]
		if st == nil {
			st = &seat{}
			games[d.GameID] = st
		}
		switch {
		case d.Team == "x" && st.x == nil:
			st.x = c
		case d.Team == "o" && st.o == nil:
			st.o = c
		default:
			t.Fatalf("game %s got a second %s", d.GameID, d.Team)
		}
	}
	if len(games) != n/2 {
		t.Fatalf("got %d games, want %d", len(games), n/2)
	}
	// Every game plays to a win for x, all at once.
	var play sync.WaitGroup
	for id, st := range games {
		if st.x == nil || st.o == nil {
			t.Fatalf("game %s is missing a player", id)
		}
		play.Add(1)
		go func() {
			defer play.Done()
			for _, c := range []*wstest.Client{st.x, st.o} {
				for {
					m := c.Next()
					if m.Action == "updateGameStatus" && strings.Contains(string(m.Data), "in-progress") {
						break
					}
				}
			}
			for i, sq := range [][2]int{{0, 0}, {0, 1}, {1, 0}, {1, 1}, {2, 0}} {
				p, q := st.x, st.o
				if i%2 == 1 {
					p, q = q, p
				}
				g := p.Move(q, sq[0], sq[1])
				if g.GameID != id {
					t.Errorf("game %s got a grid for %s", id, g.GameID)
				}
			}
			for _, c := range []*wstest.Client{st.x, st.o} {
				c.ExpectStatus("finished")
				c.Expect("updateWinner")
			}
		}()
	}
	play.Wait()
	stats, _ := s.store.Stats(context.Background())
	if stats[0] != n/2 {
		t.Errorf("totalGames = %d, want %d", stats[0], n/2)
	}
}

// TestStatsCoalesced drives many moves while a watcher counts statsUpdate
// frames: however fast the moves, at most one frame per StatsInterval, and
// none once nothing changes.
func TestStatsCoalesced(t *testing.T) {
	t.Parallel()
	s := newServer(t, hub.Options{})
	watcher := wstest.Dial(t, s.url)
	begin := time.Now()
	var wg sync.WaitGroup
	players := make([][2]*wstest.Client, 10)
	for i := range players {
		players[i] = [2]*wstest.Client{wstest.Dial(t, s.url), wstest.Dial(t, s.url)}
	}
	for range 20 {
		// Pair one game at a time so that pairs do not cross, then play all at once.
		for _, p := range players {
			pairNext(t, p[0], p[1])
		}
		for _, p := range players {
			wg.Add(1)
			go func() {
				defer wg.Done()
				winTopRow(p[0], p[1])
			}()
		}
		wg.Wait()
	}
	busy := time.Since(begin)
	time.Sleep(600 * time.Millisecond) // let the last change through
	frames, values := countStats(t, watcher)
	// The first frame is the full set on connect; the rest are spaced by at
	// least 250ms, plus one for the change that lands just after the busy time.
	if limit := 1 + int(busy/(250*time.Millisecond)) + 2; frames > limit {
		t.Errorf("%d statsUpdate frames in %v, want at most %d", frames, busy, limit)
	}
	if frames < 2 {
		t.Errorf("only %d statsUpdate frames: changes were not relayed", frames)
	}
	if values["totalMoves"] != 10*20*5 || values["wonByX"] != 10*20 || values["totalGames"] != 10*20 {
		t.Errorf("watcher ended with %v", values)
	}
	// Nothing changes now, so nothing is sent.
	time.Sleep(600 * time.Millisecond)
	if n, _ := countStats(t, watcher); n != 0 {
		t.Errorf("%d statsUpdate frames while nothing changed", n)
	}
}

// TestStatsPaused: a socket whose page is hidden pauses its stats and gets
// no statsUpdate frames while games end; resuming sends at once the values
// as they are now, and later changes reach it again.
func TestStatsPaused(t *testing.T) {
	t.Parallel()
	s := newServer(t, hub.Options{})
	hidden, shown := wstest.Dial(t, s.url), wstest.Dial(t, s.url)
	time.Sleep(300 * time.Millisecond)
	countStats(t, hidden) // the full set each socket gets on connect
	countStats(t, shown)
	hidden.Send(map[string]any{"action": "pauseStats"})
	hidden.Ping() // the pause is in effect
	x, o := wstest.Dial(t, s.url), wstest.Dial(t, s.url)
	for range 3 {
		pairNext(t, x, o)
		winTopRow(x, o)
	}
	time.Sleep(600 * time.Millisecond) // two intervals: the changes went out
	if n, _ := countStats(t, hidden); n != 0 {
		t.Errorf("%d statsUpdate frames to a socket that paused them", n)
	}
	if n, v := countStats(t, shown); n == 0 || v["totalGames"] != 3 {
		t.Errorf("the other socket got %d frames ending with %v, want totalGames 3", n, v)
	}

	hidden.Send(map[string]any{"action": "resumeStats"})
	hidden.Ping() // the values are queued before the pong
	if n, v := countStats(t, hidden); n != 1 || v["totalGames"] != 3 || v["wonByX"] != 3 || v["totalMoves"] != 15 {
		t.Errorf("on resume: %d frames ending with %v, want one with 3 games won by X in 15 moves", n, v)
	}
	pairNext(t, x, o)
	winTopRow(x, o)
	time.Sleep(600 * time.Millisecond)
	if _, v := countStats(t, hidden); v["totalGames"] != 4 {
		t.Errorf("after resuming, the next change gave %v, want totalGames 4", v)
	}
	hidden.Send(map[string]any{"action": "resumeStats"}) // not paused: nothing to send
	hidden.Ping()
	if n, _ := countStats(t, hidden); n != 0 {
		t.Errorf("resumeStats on a socket that never paused sent %d frames", n)
	}
}

// TestStatsBudget: with more sockets than the budget allows at the usual
// interval, every socket still hears of changes, less often, and the replica
// as a whole stays within its frames a second.
func TestStatsBudget(t *testing.T) {
	t.Parallel()
	const watchers, budget = 40, 40 // frames a second, all sockets together
	s := newServer(t, hub.Options{StatsBudget: budget})
	conns := make([]*wstest.Client, watchers)
	for i := range conns {
		conns[i] = wstest.Dial(t, s.url)
	}
	time.Sleep(300 * time.Millisecond)
	for _, c := range conns {
		countStats(t, c) // the full set each socket gets on connect
	}
	x, o := wstest.Dial(t, s.url), wstest.Dial(t, s.url)
	begin := time.Now()
	for time.Since(begin) < 2*time.Second {
		pairNext(t, x, o)
		winTopRow(x, o)
	}
	busy := time.Since(begin)
	total := 0
	for i, c := range conns {
		n, _ := countStats(t, c)
		total += n
		if n == 0 {
			t.Errorf("watcher %d heard nothing in %v of games", i, busy)
		}
	}
	// At the usual 4 a second the watchers would get about 4*watchers*busy
	// frames; the budget allows budget*busy, plus one group (sent before the
	// wait it causes) and the two players' sockets.
	if limit := int(busy.Seconds()*budget) + watchers/8 + 2 + 10; total > limit {
		t.Errorf("%d statsUpdate frames to %d watchers in %v, want at most %d (budget %d/s)", total, watchers, busy, limit, budget)
	}
}

// pairNext pairs a (as x) and b (as o) in a new quick game, as wstest.Pair
// does. If they come from a game together, ended, a goes first and b, still
// in it, hears that a left it.
func pairNext(tb testing.TB, a, b *wstest.Client) {
	tb.Helper()
	if a.GameID == "" || a.GameID != b.GameID {
		wstest.Pair(tb, a, b)
		return
	}
	old, team := a.GameID, a.Team
	a.Join()
	a.ExpectStatus("waiting")
	var left struct{ GameID, Team string }
	b.Expect("playerLeft").Decode(tb, &left)
	if got, want := left.GameID+"/"+left.Team, old+"/"+team; got != want {
		tb.Fatalf("playerLeft %s, want %s", got, want)
	}
	b.Join()
	if a.Team != "x" || b.Team != "o" || a.GameID != b.GameID {
		tb.Fatalf("paired a=%s/%s b=%s/%s", a.GameID, a.Team, b.GameID, b.Team)
	}
	for _, c := range []*wstest.Client{a, b} {
		c.Expect("playerJoin")
		c.ExpectStatus("in-progress")
	}
}

// winTopRow plays a paired game that X wins along the top row in five moves.
func winTopRow(x, o *wstest.Client) {
	wstest.Play(x, o, [][2]int{{0, 0}, {0, 1}, {1, 0}, {1, 1}, {2, 0}})
	for _, p := range []*wstest.Client{x, o} {
		p.ExpectStatus("finished")
		p.Expect("updateWinner")
	}
}

func countStats(t *testing.T, c *wstest.Client) (int, map[string]int64) {
	values := map[string]int64{}
	n := 0
	for {
		select {
		case m := <-c.Stats:
			n++
			var list []struct {
				ID    string
				Value int64
			}
			m.Decode(t, &list)
			for _, e := range list {
				values[e.ID] = e.Value
			}
		default:
			return n, values
		}
	}
}

// learning is the embedded store made a hub.Learner that records what it is
// told, as the RethinkDB store would use it.
type learning struct {
	*store.Bolt
	mu     sync.Mutex
	learnt []store.Game
	bad    []string
}

func (l *learning) Learn(id string, version int64, decode func() (store.Game, error)) {
	g, err := decode()
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil || g.ID != id || g.Version != version {
		l.bad = append(l.bad, fmt.Sprintf("game %s version %d: decoded %s version %d, %v", id, version, g.ID, g.Version, err))
	}
	l.learnt = append(l.learnt, g)
}

// With a store that learns, every bus message carries its game as stored:
// the store is told of each, and no socket sees the line that carries it.
func TestBusCarriesStoredGame(t *testing.T) {
	t.Parallel()
	var l *learning
	s := newServerOn(t, hub.Options{}, func(b *store.Bolt) hub.Store {
		l = &learning{Bolt: b}
		return l
	})
	x, o := wstest.Dial(t, s.url), wstest.Dial(t, s.url)
	wstest.Pair(t, x, o)
	winTopRow(x, o) // each client fails on a frame it does not expect
	x.Quiet(100 * time.Millisecond)
	o.Quiet(100 * time.Millisecond)

	stored, err := s.store.Game(t.Context(), x.GameID)
	if err != nil {
		t.Fatal(err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, b := range l.bad {
		t.Error(b)
	}
	var moves []int
	for _, g := range l.learnt {
		if g.ID == x.GameID {
			moves = append(moves, g.Moves)
		}
	}
	// The pairing, then the five moves.
	if fmt.Sprint(moves) != "[0 1 2 3 4 5]" {
		t.Fatalf("learnt the game at moves %v, want [0 1 2 3 4 5]", moves)
	}
	last := l.learnt[len(l.learnt)-1]
	if !reflect.DeepEqual(last, stored) {
		t.Errorf("last game learnt:\n%+v\nstored:\n%+v", last, stored)
	}
}

// slowOnline is the embedded store taking long to hear that one socket is
// open, as a preemption between a count and its report would: the report
// of one waits for release, and closes landed once it is made.
type slowOnline struct {
	*store.Bolt
	release, landed chan struct{}
	once            *sync.Once
}

func (s slowOnline) SetOnline(ctx context.Context, n int64) error {
	if n != 1 {
		return s.Bolt.SetOnline(ctx, n)
	}
	select {
	case <-s.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	err := s.Bolt.SetOnline(ctx, n)
	s.once.Do(func() { close(s.landed) })
	return err
}

// TestPlayersOnlineInOrder: the count of the first socket, reported slowly,
// does not land after the second socket's and stay.
func TestPlayersOnlineInOrder(t *testing.T) {
	t.Parallel()
	slow := slowOnline{release: make(chan struct{}), landed: make(chan struct{}), once: new(sync.Once)}
	s := newServerOn(t, hub.Options{}, func(b *store.Bolt) hub.Store { slow.Bolt = b; return slow })
	// Dialled off the test's goroutine (the handshake may wait for the
	// report held back), so without wstest, which fails the test.
	conns := make(chan *websocket.Conn, 2)
	defer func() {
		for range len(conns) {
			(<-conns).CloseNow()
		}
	}()
	dial := func() {
		if c, _, err := websocket.Dial(t.Context(), s.url, nil); err == nil {
			conns <- c
		}
	}
	for n := 1; n <= 2; n++ {
		go dial()
		waitFor(t, fmt.Sprintf("%d sockets open", n), func() bool { return s.hub.Online() >= n })
	}
	close(slow.release)
	select {
	case <-slow.landed:
	case <-time.After(5 * time.Second):
		t.Fatal("the first socket's report never landed")
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		st, err := s.store.Stats(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if st[store.PlayersOnline] == 2 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("playersOnline %d with %d sockets open", st[store.PlayersOnline], s.hub.Online())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
