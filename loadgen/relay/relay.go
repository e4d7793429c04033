// Package relay is the floor relay: a minimal in-memory server of the tictac wire protocol that every server figure is read against.
package relay

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/tictac/tictac/game"
)

// DefaultWriteTimeout bounds every socket write when Relay.WriteTimeout is zero.
const DefaultWriteTimeout = 5 * time.Second

// maxFrame is the protocol's frame limit; bigger frames close the socket with 1009.
const maxFrame = 4096

// Relay pairs joiners into games and relays moves, with no store, bus or stats.
// It has one read goroutine per socket and writes straight from it; the zero
// value is not usable, call New.
type Relay struct {
	// WriteTimeout bounds each socket write (DefaultWriteTimeout when zero).
	// Set it before serving.
	WriteTimeout time.Duration

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	closed  bool
	waiting *table // the game waiting for its second player, if any
	nextID  uint64
}

// table is one game and its two seats, X then O.
type table struct {
	id      string
	mu      sync.Mutex
	g       game.Game
	players [2]*player
}

// player is one socket. Its fields are only touched by its own read goroutine.
//
// Every message about a game is written while holding the game's lock, so
// that both players see its messages in one order (no abandon before the
// joinGame it ends, no grid after the abandon). A slow socket can only stall
// its own game, and only for the write timeout.
type player struct {
	conn *websocket.Conn
	tab  *table
	team game.Mark
}

// New returns a relay ready to serve; Close stops it.
func New() *Relay {
	ctx, cancel := context.WithCancel(context.Background())
	return &Relay{ctx: ctx, cancel: cancel}
}

// Close closes every socket, abandoning their games, and waits for their
// goroutines to return. Later requests get 503.
func (r *Relay) Close() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.cancel()
	r.wg.Wait()
}

// ServeHTTP upgrades the request to a WebSocket and serves it until it closes.
func (r *Relay) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		http.Error(w, "relay closed", http.StatusServiceUnavailable)
		return
	}
	r.wg.Add(1)
	r.mu.Unlock()
	defer r.wg.Done()

	conn, err := websocket.Accept(w, req, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		return // Accept has already written the HTTP error.
	}
	defer conn.CloseNow()
	conn.SetReadLimit(maxFrame)
	p := &player{conn: conn}
	defer r.leave(p)
	for {
		typ, b, err := conn.Read(r.ctx)
		if err != nil {
			return
		}
		if typ != websocket.MessageText {
			r.sendError(p, "bad_frame", "frames must be JSON text")
			continue
		}
		var f struct {
			Action string          `json:"action"`
			Data   json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(b, &f); err != nil {
			r.sendError(p, "bad_json", "frame is not JSON")
			continue
		}
		switch f.Action {
		case "joinGame":
			r.join(p)
		case "fillSquare":
			r.fill(p, f.Data)
		case "ping":
			r.send(p, encode("pong", nil))
		default:
			r.sendError(p, "unknown_action", "unknown action "+strconv.Quote(f.Action))
		}
	}
}

// join seats p in the waiting game, or opens a new one.
func (r *Relay) join(p *player) {
	if t := p.tab; t != nil {
		t.mu.Lock()
		over := t.g.Status.Over()
		t.mu.Unlock()
		if !over {
			r.sendError(p, "already_playing", "finish or leave your game first")
			return
		}
		p.tab = nil
	}
	for {
		r.mu.Lock()
		t := r.waiting
		if t == nil {
			r.nextID++
			t = &table{id: "g" + strconv.FormatUint(r.nextID, 10), g: game.New()}
			t.players[0] = p
			t.mu.Lock() // before a joiner can see t, so it writes after us
			r.waiting = t
			r.mu.Unlock()
			p.tab, p.team = t, game.X
			r.send(p, encode("joinGame", teamData{t.id, "x"}))
			r.send(p, encode("updateGameStatus", statusData{t.id, game.Waiting.String()}))
			t.mu.Unlock()
			return
		}
		r.waiting = nil
		r.mu.Unlock()

		t.mu.Lock()
		if t.g.Start() != nil { // its player left between our two locks
			t.mu.Unlock()
			continue
		}
		t.players[1] = p
		p.tab, p.team = t, game.O
		joined := encode("playerJoin", teamData{t.id, "o"})
		status := encode("updateGameStatus", statusData{t.id, game.InProgress.String()})
		r.send(p, encode("joinGame", teamData{t.id, "o"}))
		r.send(p, joined)
		r.send(p, status)
		r.send(t.players[0], joined)
		r.send(t.players[0], status)
		t.mu.Unlock()
		return
	}
}

// fill plays a move and tells both players.
func (r *Relay) fill(p *player, data json.RawMessage) {
	var d struct {
		GameID string `json:"gameId"`
		Coords *struct {
			X int `json:"x"`
			Y int `json:"y"`
		} `json:"coords"`
	}
	if err := json.Unmarshal(data, &d); err != nil || d.Coords == nil {
		r.sendError(p, "bad_data", "fillSquare needs gameId and coords")
		return
	}
	t := p.tab
	if t == nil || d.GameID != t.id {
		r.sendError(p, "not_in_game", "you are not in game "+strconv.Quote(d.GameID))
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.g.Play(game.Move{X: d.Coords.X, Y: d.Coords.Y, Team: p.team}); err != nil {
		code, msg := errorCode(err)
		r.sendError(p, code, msg)
		return
	}
	msgs := [][]byte{encode("updateGrid", gridData{
		GameID: t.id, Grid: wireGrid(&t.g.Board), Move: t.g.Moves,
		Last: lastData{X: d.Coords.X, Y: d.Coords.Y, Team: p.team.String()},
	})}
	if t.g.Status.Over() {
		msgs = append(msgs, encode("updateGameStatus", statusData{t.id, t.g.Status.String()}), encode("updateWinner", winnerData(t.id, &t.g)))
	}
	for _, to := range t.players {
		for _, m := range msgs {
			r.send(to, m)
		}
	}
}

// leave takes a closed socket out of the queue and abandons its game.
func (r *Relay) leave(p *player) {
	t := p.tab
	if t == nil {
		return
	}
	r.mu.Lock()
	if r.waiting == t {
		r.waiting = nil
	}
	r.mu.Unlock()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.g.Abandon(game.Empty) != nil {
		return
	}
	other := t.players[seat(p.team.Other())]
	r.send(other, encode("updateGameStatus", statusData{t.id, game.Abandoned.String()}))
	r.send(other, encode("updateWinner", winnerData(t.id, &t.g)))
}

// send writes one frame with a timeout. A failed write closes the socket,
// which its read goroutine then notices, so the error needs no handling here.
func (r *Relay) send(p *player, msg []byte) {
	if p == nil {
		return
	}
	timeout := r.WriteTimeout
	if timeout <= 0 {
		timeout = DefaultWriteTimeout
	}
	ctx, cancel := context.WithTimeout(r.ctx, timeout)
	defer cancel()
	_ = p.conn.Write(ctx, websocket.MessageText, msg)
}

func (r *Relay) sendError(p *player, code, message string) {
	r.send(p, encode("error", errorData{code, message}))
}

// errorCode turns a rules error into the protocol's error code.
func errorCode(err error) (code, message string) {
	switch {
	case errors.Is(err, game.ErrNotStarted):
		return "not_started", err.Error()
	case errors.Is(err, game.ErrOver):
		return "game_over", err.Error()
	case errors.Is(err, game.ErrNotYourTurn):
		return "not_your_turn", err.Error()
	case errors.Is(err, game.ErrOffBoard):
		return "off_board", err.Error()
	case errors.Is(err, game.ErrOccupied):
		return "occupied", err.Error()
	}
	return "internal", err.Error()
}

// seat is the index of team in table.players.
func seat(team game.Mark) int {
	if team == game.O {
		return 1
	}
	return 0
}

type (
	teamData struct {
		GameID string `json:"gameId"`
		Team   string `json:"team"`
	}
	statusData struct {
		GameID string `json:"gameId"`
		Status string `json:"status"`
	}
	lastData struct {
		X    int    `json:"x"`
		Y    int    `json:"y"`
		Team string `json:"team"`
	}
	gridData struct {
		GameID string        `json:"gameId"`
		Grid   [3][3]*string `json:"grid"`
		Move   int           `json:"move"`
		Last   lastData      `json:"last"`
	}
	errorData struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
)

// encode marshals a frame once, to be written to every recipient.
func encode(action string, data any) []byte {
	f := struct {
		Action string `json:"action"`
		Data   any    `json:"data,omitempty"`
	}{action, data}
	b, err := json.Marshal(f)
	if err != nil {
		panic("relay: encode " + action + ": " + err.Error()) // our own types always marshal
	}
	return b
}

var markNames = [...]*string{game.X: ptr("x"), game.O: ptr("o")}

func ptr(s string) *string { return &s }

// wireGrid lays the board out as the protocol's grid[x][y].
func wireGrid(b *game.Board) (g [3][3]*string) {
	for x := range game.Size {
		for y := range game.Size {
			g[x][y] = markNames[b.At(x, y)]
		}
	}
	return g
}

func winnerData(id string, g *game.Game) any {
	d := struct {
		GameID string     `json:"gameId"`
		Winner *string    `json:"winner"`
		Line   *[3][2]int `json:"line"`
	}{GameID: id, Winner: markNames[g.Winner]}
	if g.Status == game.Finished && g.Line >= 0 {
		var line [3][2]int
		for i, idx := range game.Lines[g.Line] {
			line[i] = [2]int{idx % game.Size, idx / game.Size}
		}
		d.Line = &line
	}
	return d
}
