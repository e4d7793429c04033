package hub_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/tictac/tictac/hub"
)

func TestPing(t *testing.T) {
	t.Parallel()
	s := newServer(t, hub.Options{})
	c := dial(t, s.url)
	c.ping()
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
			x, o := dial(t, s.url), dial(t, s.url)
			pair(t, x, o)
			var last grid
			for i, m := range tt.moves {
				p, q := x, o
				if i%2 == 1 {
					p, q = o, x
				}
				last = p.move(q, m[0], m[1])
				if last.Move != i+1 {
					t.Fatalf("move %d: got move number %d", i+1, last.Move)
				}
			}
			for _, p := range []*client{x, o} {
				p.expectStatus(tt.status)
				var w struct {
					GameID string
					Winner *string
					Line   [][2]int
				}
				p.expect("updateWinner").decode(t, &w)
				if fmt.Sprint(deref(w.Winner), w.Line) != fmt.Sprint(deref(tt.winner), tt.line) || w.GameID != x.gameID {
					t.Errorf("got winner %v line %v, want %v %v", deref(w.Winner), w.Line, deref(tt.winner), tt.line)
				}
			}
			// Nothing moves after the end.
			o.send(fill(o.gameID, 2, 2))
			o.expectError("game_over")
			// Both can go on to the next game, which pairs them again.
			pair(t, o, x)
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

func TestAbandon(t *testing.T) {
	t.Parallel()
	s := newServer(t, hub.Options{})
	x, o := dial(t, s.url), dial(t, s.url)
	pair(t, x, o)
	x.move(o, 1, 1)
	o.ws.Close(websocket.StatusNormalClosure, "bye")
	x.expectStatus("abandoned")
	var w struct{ Winner *string }
	x.expect("updateWinner").decode(t, &w)
	if w.Winner != nil {
		t.Errorf("abandoned game has winner %q", *w.Winner)
	}
	x.send(fill(x.gameID, 0, 0))
	x.expectError("game_over")
	// The one left behind plays on with someone new.
	y := dial(t, s.url)
	pair(t, x, y)
}

// TestLeaveWhileWaiting checks that a player who leaves the queue is not paired.
func TestLeaveWhileWaiting(t *testing.T) {
	t.Parallel()
	s := newServer(t, hub.Options{})
	ghost := dial(t, s.url)
	ghost.join()
	ghost.expectStatus("waiting")
	ghost.ws.Close(websocket.StatusNormalClosure, "")
	// The store processes the leave after the close; give it a moment by
	// polling through a real join rather than sleeping blindly.
	deadline := time.Now().Add(5 * time.Second)
	for {
		a := dial(t, s.url)
		a.join()
		if a.gameID != ghost.gameID {
			if a.team != "x" {
				t.Fatalf("first player after the ghost left got team %s in %s", a.team, a.gameID)
			}
			a.expectStatus("waiting")
			b := dial(t, s.url)
			b.join()
			if b.gameID != a.gameID || b.team != "o" {
				t.Fatalf("b joined %s/%s, want %s/o", b.gameID, b.team, a.gameID)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("joined the ghost's game")
		}
		a.ws.Close(websocket.StatusNormalClosure, "")
		time.Sleep(10 * time.Millisecond)
	}
}

func TestJoinTwice(t *testing.T) {
	t.Parallel()
	s := newServer(t, hub.Options{})
	x, o := dial(t, s.url), dial(t, s.url)
	x.join()
	x.expectStatus("waiting")
	first := x.gameID
	x.join() // still waiting: the same game, not a second one
	if x.gameID != first || x.team != "x" {
		t.Fatalf("second join gave %s/%s, want %s/x", x.gameID, x.team, first)
	}
	o.join()
	if o.gameID != first {
		t.Fatalf("o joined %s, want %s", o.gameID, first)
	}
	x.expect("playerJoin")
	x.expectStatus("in-progress")
	x.send(map[string]any{"action": "joinGame"})
	x.expectError("already_playing")
}

// TestRefusedMoves checks that the server, not the client, decides who moves.
func TestRefusedMoves(t *testing.T) {
	t.Parallel()
	s := newServer(t, hub.Options{})
	x, o := dial(t, s.url), dial(t, s.url)
	x.join()
	x.expectStatus("waiting")
	x.send(fill(x.gameID, 0, 0))
	x.expectError("not_started")
	o.join()
	for _, p := range []*client{x, o} {
		p.expect("playerJoin")
		p.expectStatus("in-progress")
	}
	other1, other2 := dial(t, s.url), dial(t, s.url)
	pair(t, other1, other2)

	tests := []struct {
		name string
		who  *client
		msg  map[string]any
		code string
	}{
		{"o moves first", o, fill(o.gameID, 0, 0), "not_your_turn"},
		{"o claims team x", o, map[string]any{"action": "fillSquare", "data": map[string]any{"gameId": o.gameID, "team": "x", "coords": map[string]int{"x": 0, "y": 0}}}, "not_your_turn"},
		{"off the board", x, fill(x.gameID, 3, 0), "off_board"},
		{"negative", x, fill(x.gameID, 0, -1), "off_board"},
		{"another game", x, fill(other1.gameID, 0, 0), "not_in_game"},
		{"made-up game", x, fill("nope", 0, 0), "not_in_game"},
		{"watcher", dial(t, s.url), fill(x.gameID, 0, 0), "not_in_game"},
	}
	for _, tt := range tests {
		tt.who.send(tt.msg)
		tt.who.expectError(tt.code)
	}
	x.move(o, 1, 1)
	x.send(fill(x.gameID, 0, 0))
	x.expectError("not_your_turn")
	o.send(fill(o.gameID, 1, 1))
	o.expectError("occupied")
	// Nobody else heard any of it, and the game is intact.
	other1.quiet(50 * time.Millisecond)
	other2.quiet(0)
	g, err := s.store.Game(context.Background(), x.gameID)
	if err != nil {
		t.Fatal(err)
	}
	if g.Moves != 1 {
		t.Errorf("game has %d moves, want 1", g.Moves)
	}
	o.move(x, 0, 0)
}

// TestBadInput sends every kind of bad frame; each gets a clear answer and
// neither the game nor the other sockets notice.
func TestBadInput(t *testing.T) {
	t.Parallel()
	s := newServer(t, hub.Options{})
	x, o := dial(t, s.url), dial(t, s.url)
	pair(t, x, o)
	bystander1, bystander2 := dial(t, s.url), dial(t, s.url)
	pair(t, bystander1, bystander2)

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
		{"fill no coords", fmt.Sprintf(`{"action":"fillSquare","data":{"gameId":%q}}`, x.gameID), "bad_data"},
		{"fill no y", fmt.Sprintf(`{"action":"fillSquare","data":{"gameId":%q,"coords":{"x":1}}}`, x.gameID), "bad_data"},
		{"fill no game", `{"action":"fillSquare","data":{"coords":{"x":1,"y":1}}}`, "bad_data"},
		{"x a string", fmt.Sprintf(`{"action":"fillSquare","data":{"gameId":%q,"coords":{"x":"1","y":1}}}`, x.gameID), "bad_data"},
		{"x a fraction", fmt.Sprintf(`{"action":"fillSquare","data":{"gameId":%q,"coords":{"x":1.5,"y":1}}}`, x.gameID), "bad_data"},
		{"x huge", fmt.Sprintf(`{"action":"fillSquare","data":{"gameId":%q,"coords":{"x":1e40,"y":1}}}`, x.gameID), "bad_data"},
		{"gameId a number", `{"action":"fillSquare","data":{"gameId":5,"coords":{"x":1,"y":1}}}`, "bad_data"},
		{"data an array", `{"action":"fillSquare","data":[1,2]}`, "bad_data"},
		{"x out of range", fmt.Sprintf(`{"action":"fillSquare","data":{"gameId":%q,"coords":{"x":9999999999,"y":1}}}`, x.gameID), "off_board"},
	}
	for _, tt := range tests {
		x.sendRaw(websocket.MessageText, []byte(tt.raw))
		m := x.expect("error")
		var e struct{ Code, Message string }
		m.decode(t, &e)
		if e.Code != tt.code || e.Message == "" {
			t.Errorf("%s: got %q %q, want %q", tt.name, e.Code, e.Message, tt.code)
		}
	}
	x.sendRaw(websocket.MessageBinary, []byte{0, 1, 2})
	x.expectError("bad_frame")

	// After all that, the game is untouched and goes on.
	g, err := s.store.Game(context.Background(), x.gameID)
	if err != nil || g.Moves != 0 {
		t.Fatalf("game after bad input: %d moves, %v", g.Moves, err)
	}
	x.move(o, 2, 2)

	// A frame over 4 KiB closes that socket with 1009, and only that one.
	big := `{"action":"ping","pad":"` + strings.Repeat("a", 5000) + `"}`
	x.sendRaw(websocket.MessageText, []byte(big))
	if code := x.expectClose(); code != websocket.StatusMessageTooBig {
		t.Errorf("big frame closed with %v, want 1009", code)
	}
	o.expectStatus("abandoned")
	bystander1.quiet(50 * time.Millisecond)
	bystander1.move(bystander2, 0, 0)
}

// TestFlood checks the rate limit: a socket that floods gets rate_limited and
// is closed; its neighbours play on.
func TestFlood(t *testing.T) {
	t.Parallel()
	s := newServer(t, hub.Options{})
	a, b := dial(t, s.url), dial(t, s.url)
	pair(t, a, b)
	flooder := dial(t, s.url)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	go func() {
		for i := 0; i < 10000 && ctx.Err() == nil; i++ {
			if flooder.ws.Write(ctx, websocket.MessageText, []byte(`{"action":"ping"}`)) != nil {
				return
			}
		}
	}()
	var pongs int
	for {
		m, ok := <-flooder.frames
		if !ok {
			break
		}
		switch m.Action {
		case "pong":
			pongs++
		case "error":
			var e struct{ Code string }
			m.decode(t, &e)
			if e.Code != "rate_limited" {
				t.Fatalf("got error %s", e.Code)
			}
		}
	}
	var ce websocket.CloseError
	if err := <-flooder.closed; !errors.As(err, &ce) || ce.Code != websocket.StatusPolicyViolation || ce.Reason != "rate limited" {
		t.Errorf("flooder closed with %v, want 1008 rate limited", err)
	}
	if pongs < 50 || pongs > 200 {
		t.Errorf("flooder got %d pongs before the limit, want about the burst of 100", pongs)
	}
	a.move(b, 1, 1)
	b.move(a, 0, 0)
}

// TestConcurrentJoins has 200 clients join at once: exactly 100 games form,
// each with one x and one o, and every game plays out without cross-talk.
func TestConcurrentJoins(t *testing.T) {
	t.Parallel()
	s := newServer(t, hub.Options{})
	const n = 200
	clients := make([]*client, n)
	for i := range clients {
		clients[i] = dial(t, s.url)
	}
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.send(map[string]any{"action": "joinGame"})
		}()
	}
	wg.Wait()
	type seat struct{ x, o *client }
	games := map[string]*seat{}
	for _, c := range clients {
		var d struct{ GameID, Team string }
		c.expect("joinGame").decode(t, &d)
		c.gameID, c.team = d.GameID, d.Team
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
			for _, c := range []*client{st.x, st.o} {
				for {
					m := c.next()
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
				g := p.move(q, sq[0], sq[1])
				if g.GameID != id {
					t.Errorf("game %s got a grid for %s", id, g.GameID)
				}
			}
			for _, c := range []*client{st.x, st.o} {
				c.expectStatus("finished")
				c.expect("updateWinner")
			}
		}()
	}
	play.Wait()
	stats, _ := s.store.Stats(context.Background())
	if stats[0] != n/2 {
		t.Errorf("totalGames = %d, want %d", stats[0], n/2)
	}
}
