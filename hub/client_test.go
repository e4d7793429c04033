package hub_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/tictac/tictac/hub"
	"github.com/tictac/tictac/store"
)

// server is a hub over a real embedded store behind a real HTTP server.
type server struct {
	url   string
	store *store.Bolt
	hub   *hub.Hub
	bus   *hub.MemoryBus
}

func newServer(tb testing.TB, opt hub.Options) *server {
	tb.Helper()
	st, err := store.OpenBolt(filepath.Join(tb.TempDir(), "t.db"), store.BoltOptions{NoSync: true})
	if err != nil {
		tb.Fatal(err)
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.NewTextHandler(tbWriter{tb}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	bus := hub.NewMemoryBus()
	h := hub.New(st, bus, opt)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); h.Run(ctx) }()
	ts := httptest.NewServer(h)
	tb.Cleanup(func() {
		closeCtx, c := context.WithTimeout(context.Background(), 5*time.Second)
		defer c()
		h.Close(closeCtx)
		ts.Close()
		cancel()
		<-done
		st.Close()
	})
	return &server{url: "ws" + strings.TrimPrefix(ts.URL, "http") + "/live", store: st, hub: h, bus: bus}
}

type tbWriter struct{ tb testing.TB }

func (w tbWriter) Write(p []byte) (int, error) {
	w.tb.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// msg is a frame from the server.
type msg struct {
	Action string          `json:"action"`
	Data   json.RawMessage `json:"data"`
}

func (m msg) decode(tb testing.TB, v any) {
	tb.Helper()
	if err := json.Unmarshal(m.Data, v); err != nil {
		tb.Fatalf("decode %s data %s: %v", m.Action, m.Data, err)
	}
}

// client is a real WebSocket client that reads frames in the background.
type client struct {
	tb     testing.TB
	ws     *websocket.Conn
	frames chan msg
	stats  chan msg
	closed chan error
	gameID string
	team   string
}

func dial(tb testing.TB, url string) *client {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		tb.Fatalf("dial %s: %v", url, err)
	}
	ws.SetReadLimit(1 << 20)
	c := &client{tb: tb, ws: ws, frames: make(chan msg, 256), stats: make(chan msg, 1024), closed: make(chan error, 1)}
	go c.readLoop()
	tb.Cleanup(func() { ws.CloseNow() })
	return c
}

func (c *client) readLoop() {
	for {
		_, data, err := c.ws.Read(context.Background())
		if err != nil {
			c.closed <- err
			close(c.frames)
			return
		}
		var m msg
		if err := json.Unmarshal(data, &m); err != nil {
			c.closed <- err
			close(c.frames)
			return
		}
		if m.Action == "statsUpdate" {
			select {
			case c.stats <- m:
			default:
			}
			continue
		}
		c.frames <- m
	}
}

func (c *client) send(v any) {
	c.tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		c.tb.Fatal(err)
	}
	c.sendRaw(websocket.MessageText, b)
}

func (c *client) sendRaw(typ websocket.MessageType, b []byte) {
	c.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.ws.Write(ctx, typ, b); err != nil {
		c.tb.Fatalf("write: %v", err)
	}
}

// next returns the next frame other than statsUpdate.
func (c *client) next() msg {
	c.tb.Helper()
	select {
	case m, ok := <-c.frames:
		if !ok {
			c.tb.Fatalf("socket closed while waiting for a frame: %v", <-c.closed)
		}
		return m
	case <-time.After(5 * time.Second):
		c.tb.Fatal("no frame within 5s")
	}
	return msg{}
}

// expect reads the next frame and fails unless it is action.
func (c *client) expect(action string) msg {
	c.tb.Helper()
	m := c.next()
	if m.Action != action {
		c.tb.Fatalf("got %s %s, want %s", m.Action, m.Data, action)
	}
	return m
}

// expectError reads the next frame and fails unless it is an error with code.
func (c *client) expectError(code string) {
	c.tb.Helper()
	m := c.expect("error")
	var e struct{ Code, Message string }
	m.decode(c.tb, &e)
	if e.Code != code || e.Message == "" {
		c.tb.Fatalf("got error %q (%q), want %q with a message", e.Code, e.Message, code)
	}
}

// quiet fails if a frame other than statsUpdate arrives within d.
func (c *client) quiet(d time.Duration) {
	c.tb.Helper()
	select {
	case m, ok := <-c.frames:
		if ok {
			c.tb.Fatalf("unexpected frame %s %s", m.Action, m.Data)
		}
	case <-time.After(d):
	}
}

// expectClose waits for the server to close the socket and returns the status.
func (c *client) expectClose() websocket.StatusCode {
	c.tb.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case _, ok := <-c.frames:
			if !ok {
				return websocket.CloseStatus(<-c.closed)
			}
		case <-timeout:
			c.tb.Fatal("socket not closed within 5s")
		}
	}
}

func (c *client) ping() {
	c.tb.Helper()
	c.send(map[string]any{"action": "ping"})
	c.expect("pong")
}

// join sends joinGame and reads the reply, remembering the game and team.
func (c *client) join() {
	c.tb.Helper()
	c.send(map[string]any{"action": "joinGame", "data": nil})
	var d struct{ GameID, Team string }
	c.expect("joinGame").decode(c.tb, &d)
	if d.GameID == "" || (d.Team != "x" && d.Team != "o") {
		c.tb.Fatalf("joinGame reply %+v", d)
	}
	c.gameID, c.team = d.GameID, d.Team
}

// pair joins a and b into one game: a plays x, b plays o.
func pair(tb testing.TB, a, b *client) {
	tb.Helper()
	a.join()
	a.expectStatus("waiting")
	b.join()
	if a.team != "x" || b.team != "o" || a.gameID != b.gameID {
		tb.Fatalf("paired a=%s/%s b=%s/%s", a.gameID, a.team, b.gameID, b.team)
	}
	for _, c := range []*client{a, b} {
		var pj struct{ GameID, Team string }
		c.expect("playerJoin").decode(tb, &pj)
		if pj.GameID != a.gameID || pj.Team != "o" {
			tb.Fatalf("playerJoin %+v", pj)
		}
		c.expectStatus("in-progress")
	}
}

func (c *client) expectStatus(status string) {
	c.tb.Helper()
	var d struct{ GameID, Status string }
	c.expect("updateGameStatus").decode(c.tb, &d)
	if d.Status != status || d.GameID != c.gameID {
		c.tb.Fatalf("got status %q for %s, want %q for %s", d.Status, d.GameID, status, c.gameID)
	}
}

type grid struct {
	GameID string       `json:"gameId"`
	Grid   [3][3]string `json:"grid"` // "" for null
	Move   int          `json:"move"`
	Last   struct {
		X, Y int
		Team string
	} `json:"last"`
}

func fill(gameID string, x, y int) map[string]any {
	return map[string]any{"action": "fillSquare", "data": map[string]any{"gameId": gameID, "coords": map[string]int{"x": x, "y": y}}}
}

// move plays (x, y) for c and checks that both c and other see it.
func (c *client) move(other *client, x, y int) grid {
	c.tb.Helper()
	c.send(fill(c.gameID, x, y))
	var got [2]grid
	for i, p := range []*client{c, other} {
		p.expect("updateGrid").decode(c.tb, &got[i])
	}
	if got[0] != got[1] {
		c.tb.Fatalf("players disagree: %+v vs %+v", got[0], got[1])
	}
	g := got[0]
	if g.Grid[x][y] != c.team || g.Last.X != x || g.Last.Y != y || g.Last.Team != c.team {
		c.tb.Fatalf("move (%d,%d) by %s not in grid %+v", x, y, c.team, g)
	}
	return g
}

// latestStats drains the stats frames received so far and merges them.
func (c *client) latestStats(into map[string]int64) {
	for {
		select {
		case m := <-c.stats:
			var list []struct {
				ID    string
				Value int64
			}
			m.decode(c.tb, &list)
			for _, e := range list {
				into[e.ID] = e.Value
			}
		default:
			return
		}
	}
}
