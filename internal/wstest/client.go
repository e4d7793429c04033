// Package wstest is a real WebSocket client of the tictac protocol, for tests.
package wstest

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// Msg is a frame from the server.
type Msg struct {
	Action string          `json:"action"`
	Data   json.RawMessage `json:"data"`
}

// Decode decodes the frame's data into v.
func (m Msg) Decode(tb testing.TB, v any) {
	tb.Helper()
	if err := json.Unmarshal(m.Data, v); err != nil {
		tb.Fatalf("decode %s data %s: %v", m.Action, m.Data, err)
	}
}

// Client is a real WebSocket client that reads frames in the background.
type Client struct {
	tb     testing.TB
	WS     *websocket.Conn
	Frames chan Msg
	Stats  chan Msg
	Closed chan error
	GameID string
	Team   string
}

// Dial opens a socket to url; it is closed when the test ends.
func Dial(tb testing.TB, url string) *Client {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		tb.Fatalf("dial %s: %v", url, err)
	}
	ws.SetReadLimit(1 << 20)
	c := &Client{tb: tb, WS: ws, Frames: make(chan Msg, 256), Stats: make(chan Msg, 1024), Closed: make(chan error, 1)}
	go c.readLoop()
	tb.Cleanup(func() { ws.CloseNow() })
	return c
}

func (c *Client) readLoop() {
	for {
		_, data, err := c.WS.Read(context.Background())
		if err != nil {
			c.Closed <- err
			close(c.Frames)
			return
		}
		var m Msg
		if err := json.Unmarshal(data, &m); err != nil {
			c.Closed <- err
			close(c.Frames)
			return
		}
		if m.Action == "statsUpdate" {
			select {
			case c.Stats <- m:
			default:
			}
			continue
		}
		c.Frames <- m
	}
}

// Send writes v as a JSON text frame.
func (c *Client) Send(v any) {
	c.tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		c.tb.Fatal(err)
	}
	c.SendRaw(websocket.MessageText, b)
}

// SendRaw writes b as one frame of type typ.
func (c *Client) SendRaw(typ websocket.MessageType, b []byte) {
	c.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.WS.Write(ctx, typ, b); err != nil {
		c.tb.Fatalf("write: %v", err)
	}
}

// Next returns the next frame other than statsUpdate.
func (c *Client) Next() Msg {
	c.tb.Helper()
	select {
	case m, ok := <-c.Frames:
		if !ok {
			c.tb.Fatalf("socket closed while waiting for a frame: %v", <-c.Closed)
		}
		return m
	case <-time.After(5 * time.Second):
		c.tb.Fatal("no frame within 5s")
	}
	return Msg{}
}

// Expect reads the next frame and fails unless it is action.
func (c *Client) Expect(action string) Msg {
	c.tb.Helper()
	m := c.Next()
	if m.Action != action {
		c.tb.Fatalf("got %s %s, want %s", m.Action, m.Data, action)
	}
	return m
}

// ExpectError reads the next frame and fails unless it is an error with code.
func (c *Client) ExpectError(code string) {
	c.tb.Helper()
	m := c.Expect("error")
	var e struct{ Code, Message string }
	m.Decode(c.tb, &e)
	if e.Code != code || e.Message == "" {
		c.tb.Fatalf("got error %q (%q), want %q with a message", e.Code, e.Message, code)
	}
}

// Await reads frames until one is action and returns it, failing if none
// comes within d.
func (c *Client) Await(action string, d time.Duration) Msg {
	c.tb.Helper()
	timeout := time.After(d)
	for {
		select {
		case m, ok := <-c.Frames:
			if !ok {
				c.tb.Fatalf("socket closed while waiting for %s: %v", action, <-c.Closed)
			}
			if m.Action == action {
				return m
			}
		case <-timeout:
			c.tb.Fatalf("no %s within %v", action, d)
		}
	}
}

// Quiet fails if a frame other than statsUpdate arrives within d.
func (c *Client) Quiet(d time.Duration) {
	c.tb.Helper()
	select {
	case m, ok := <-c.Frames:
		if ok {
			c.tb.Fatalf("unexpected frame %s %s", m.Action, m.Data)
		}
	case <-time.After(d):
	}
}

// ExpectClose waits for the server to close the socket and returns the status.
func (c *Client) ExpectClose() websocket.StatusCode {
	c.tb.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case _, ok := <-c.Frames:
			if !ok {
				return websocket.CloseStatus(<-c.Closed)
			}
		case <-timeout:
			c.tb.Fatal("socket not closed within 5s")
		}
	}
}

// Ping sends the protocol's ping and waits for pong.
func (c *Client) Ping() {
	c.tb.Helper()
	c.Send(map[string]any{"action": "ping"})
	c.Expect("pong")
}

// Join sends joinGame and reads the reply, remembering the game and team.
func (c *Client) Join() {
	c.tb.Helper()
	c.Send(map[string]any{"action": "joinGame", "data": nil})
	var d struct{ GameID, Team string }
	c.Expect("joinGame").Decode(c.tb, &d)
	if d.GameID == "" || (d.Team != "x" && d.Team != "o") {
		c.tb.Fatalf("joinGame reply %+v", d)
	}
	c.GameID, c.Team = d.GameID, d.Team
}

// Pair joins a and b into one game: a plays x, b plays o.
func Pair(tb testing.TB, a, b *Client) {
	tb.Helper()
	a.Join()
	a.ExpectStatus("waiting")
	b.Join()
	if a.Team != "x" || b.Team != "o" || a.GameID != b.GameID {
		tb.Fatalf("paired a=%s/%s b=%s/%s", a.GameID, a.Team, b.GameID, b.Team)
	}
	for _, c := range []*Client{a, b} {
		var pj struct{ GameID, Team string }
		c.Expect("playerJoin").Decode(tb, &pj)
		if pj.GameID != a.GameID || pj.Team != "o" {
			tb.Fatalf("playerJoin %+v", pj)
		}
		c.ExpectStatus("in-progress")
	}
}

// ExpectStatus reads the next frame and fails unless it is updateGameStatus with status for c's game.
func (c *Client) ExpectStatus(status string) {
	c.tb.Helper()
	var d struct{ GameID, Status string }
	c.Expect("updateGameStatus").Decode(c.tb, &d)
	if d.Status != status || d.GameID != c.GameID {
		c.tb.Fatalf("got status %q for %s, want %q for %s", d.Status, d.GameID, status, c.GameID)
	}
}

// Grid is the data of updateGrid.
type Grid struct {
	GameID string       `json:"gameId"`
	Grid   [3][3]string `json:"grid"` // "" for null
	Move   int          `json:"move"`
	Last   struct {
		X, Y int
		Team string
	} `json:"last"`
}

// Fill returns a fillSquare message.
func Fill(gameID string, x, y int) map[string]any {
	return map[string]any{"action": "fillSquare", "data": map[string]any{"gameId": gameID, "coords": map[string]int{"x": x, "y": y}}}
}

// Move plays (x, y) for c and checks that both c and other see it.
func (c *Client) Move(other *Client, x, y int) Grid {
	c.tb.Helper()
	c.Send(Fill(c.GameID, x, y))
	var got [2]Grid
	for i, p := range []*Client{c, other} {
		p.Expect("updateGrid").Decode(c.tb, &got[i])
	}
	if got[0] != got[1] {
		c.tb.Fatalf("players disagree: %+v vs %+v", got[0], got[1])
	}
	g := got[0]
	if g.Grid[x][y] != c.Team || g.Last.X != x || g.Last.Y != y || g.Last.Team != c.Team {
		c.tb.Fatalf("move (%d,%d) by %s not in grid %+v", x, y, c.Team, g)
	}
	return g
}

// Play plays moves in turn, x first, each checked as Move does, and
// returns the grid after the last.
func Play(x, o *Client, moves [][2]int) Grid {
	x.tb.Helper()
	var g Grid
	for i, m := range moves {
		p, q := x, o
		if i%2 == 1 {
			p, q = o, x
		}
		g = p.Move(q, m[0], m[1])
	}
	return g
}

// LatestStats drains the stats frames received so far and merges them.
func (c *Client) LatestStats(into map[string]int64) {
	for {
		select {
		case m := <-c.Stats:
			var list []struct {
				ID    string
				Value int64
			}
			m.Decode(c.tb, &list)
			for _, e := range list {
				into[e.ID] = e.Value
			}
		default:
			return
		}
	}
}

// Hello opens a socket and starts a session on it: token "" asks the server
// for a new one. It returns the client and the session's token.
func Hello(tb testing.TB, url, token string) (*Client, string) {
	tb.Helper()
	c := Dial(tb, url)
	data := map[string]any{}
	if token != "" {
		data["token"] = token
	}
	c.Send(map[string]any{"action": "hello", "data": data})
	var s struct{ Token string }
	c.Expect("session").Decode(tb, &s)
	if len(s.Token) != 32 {
		tb.Fatalf("session token %q", s.Token)
	}
	return c, s.Token
}
