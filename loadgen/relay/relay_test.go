package relay_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/tictac/tictac/loadgen/relay"
)

type client struct {
	tb   testing.TB
	conn *websocket.Conn
}

func dial(tb testing.TB, url string) *client {
	tb.Helper()
	ctx, cancel := context.WithTimeout(tb.Context(), 5*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		tb.Fatalf("dial: %v", err)
	}
	tb.Cleanup(func() { conn.CloseNow() })
	return &client{tb, conn}
}

func (c *client) send(frame string) {
	c.tb.Helper()
	ctx, cancel := context.WithTimeout(c.tb.Context(), 5*time.Second)
	defer cancel()
	if err := c.conn.Write(ctx, websocket.MessageText, []byte(frame)); err != nil {
		c.tb.Fatalf("write %s: %v", frame, err)
	}
}

// expect reads the next frame and checks its action and, when want is not
// empty, that its data holds want's fields.
func (c *client) expect(action, want string) map[string]any {
	c.tb.Helper()
	ctx, cancel := context.WithTimeout(c.tb.Context(), 5*time.Second)
	defer cancel()
	_, b, err := c.conn.Read(ctx)
	if err != nil {
		c.tb.Fatalf("read, want %s: %v", action, err)
	}
	var f struct {
		Action string         `json:"action"`
		Data   map[string]any `json:"data"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		c.tb.Fatalf("frame %s: %v", b, err)
	}
	if f.Action != action {
		c.tb.Fatalf("got %s, want action %s", b, action)
	}
	if want != "" {
		var w map[string]any
		if err := json.Unmarshal([]byte(want), &w); err != nil {
			c.tb.Fatalf("bad want %s: %v", want, err)
		}
		for k, v := range w {
			got, _ := json.Marshal(f.Data[k])
			exp, _ := json.Marshal(v)
			if string(got) != string(exp) {
				c.tb.Fatalf("%s: %s = %s, want %s (frame %s)", action, k, got, exp, b)
			}
		}
	}
	return f.Data
}

func start(t *testing.T) string {
	rl := relay.New()
	srv := httptest.NewServer(rl)
	t.Cleanup(func() {
		rl.Close()
		srv.Close()
	})
	return "ws" + strings.TrimPrefix(srv.URL, "http") + "/live"
}

// pair joins two clients into one game and returns them as X and O.
func pair(t *testing.T, url string) (x, o *client) {
	x, o = dial(t, url), dial(t, url)
	x.send(`{"action":"joinGame"}`)
	x.expect("joinGame", `{"gameId":"g1","team":"x"}`)
	x.expect("updateGameStatus", `{"status":"waiting"}`)
	o.send(`{"action":"joinGame","data":{}}`)
	o.expect("joinGame", `{"gameId":"g1","team":"o"}`)
	for _, c := range []*client{o, x} {
		c.expect("playerJoin", `{"team":"o"}`)
		c.expect("updateGameStatus", `{"status":"in-progress"}`)
	}
	return x, o
}

func fill(c *client, x, y int) {
	c.send(`{"action":"fillSquare","data":{"gameId":"g1","coords":{"x":` + string(rune('0'+x)) + `,"y":` + string(rune('0'+y)) + `}}}`)
}

func TestGameToAWin(t *testing.T) {
	t.Parallel()
	x, o := pair(t, start(t))
	moves := []struct {
		c    *client
		x, y int
		team string
	}{{x, 0, 0, "x"}, {o, 1, 0, "o"}, {x, 0, 1, "x"}, {o, 1, 1, "o"}, {x, 0, 2, "x"}}
	for i, m := range moves {
		fill(m.c, m.x, m.y)
		for _, c := range []*client{x, o} {
			d := c.expect("updateGrid", `{"gameId":"g1","move":`+string(rune('1'+i))+`,"last":{"x":`+string(rune('0'+m.x))+`,"y":`+string(rune('0'+m.y))+`,"team":"`+m.team+`"}}`)
			if got := d["grid"].([]any)[m.x].([]any)[m.y]; got != m.team {
				t.Fatalf("grid[%d][%d] = %v, want %s", m.x, m.y, got, m.team)
			}
		}
	}
	for _, c := range []*client{x, o} {
		c.expect("updateGameStatus", `{"status":"finished"}`)
		c.expect("updateWinner", `{"winner":"x","line":[[0,0],[0,1],[0,2]]}`)
	}
	fill(o, 2, 2)
	o.expect("error", `{"code":"game_over"}`)
	x.send(`{"action":"joinGame"}`)
	x.expect("joinGame", `{"gameId":"g2","team":"x"}`)
}

func TestRefusals(t *testing.T) {
	t.Parallel()
	x, o := pair(t, start(t))
	tests := []struct {
		c     *client
		frame string
		code  string
	}{
		{o, `{"action":"fillSquare","data":{"gameId":"g1","coords":{"x":0,"y":0}}}`, "not_your_turn"},
		{x, `{"action":"fillSquare","data":{"gameId":"g9","coords":{"x":0,"y":0}}}`, "not_in_game"},
		{x, `{"action":"fillSquare","data":{"gameId":"g1","coords":{"x":3,"y":0}}}`, "off_board"},
		{x, `{"action":"fillSquare","data":{"gameId":"g1"}}`, "bad_data"},
		{x, `{"action":"joinGame"}`, "already_playing"},
		{x, `{"action":"dance"}`, "unknown_action"},
		{x, `not json`, "bad_json"},
	}
	for _, tt := range tests {
		tt.c.send(tt.frame)
		tt.c.expect("error", `{"code":"`+tt.code+`"}`)
	}
	x.send(`{"action":"ping"}`)
	x.expect("pong", "")
	fill(x, 1, 1)
	x.expect("updateGrid", `{"move":1}`)
	o.expect("updateGrid", `{"move":1}`)
	fill(o, 1, 1)
	o.expect("error", `{"code":"occupied"}`)
}

func TestAbandon(t *testing.T) {
	t.Parallel()
	x, o := pair(t, start(t))
	x.conn.Close(websocket.StatusNormalClosure, "")
	o.expect("updateGameStatus", `{"gameId":"g1","status":"abandoned"}`)
	o.expect("updateWinner", `{"winner":null,"line":null}`)
	o.send(`{"action":"joinGame"}`)
	o.expect("joinGame", `{"gameId":"g2","team":"x"}`)
}

func TestWaitingPlayerLeaves(t *testing.T) {
	t.Parallel()
	url := start(t)
	a := dial(t, url)
	a.send(`{"action":"joinGame"}`)
	a.expect("joinGame", `{"team":"x"}`)
	a.expect("updateGameStatus", `{"status":"waiting"}`)
	a.conn.Close(websocket.StatusNormalClosure, "")
	// The next joiner must not be paired with the player who left.
	b := dial(t, url)
	var d map[string]any
	for range 50 { // the relay notices a's close asynchronously
		b.send(`{"action":"joinGame"}`)
		d = b.expect("joinGame", "")
		if d["team"] == "x" {
			break
		}
		b.expect("playerJoin", "")
		b.expect("updateGameStatus", "")
		b.expect("updateGameStatus", `{"status":"abandoned"}`)
		b.expect("updateWinner", "")
	}
	if d["team"] != "x" {
		t.Fatalf("joinGame %v: want team x in a new game", d)
	}
}

func TestFrameLimit(t *testing.T) {
	t.Parallel()
	c := dial(t, start(t))
	c.send(`{"action":"ping","data":"` + strings.Repeat("a", 5000) + `"}`)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	_, _, err := c.conn.Read(ctx)
	if got, want := websocket.CloseStatus(err), websocket.StatusMessageTooBig; got != want {
		t.Errorf("close status %v (%v), want %v", got, err, want)
	}
}
