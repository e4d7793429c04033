package hub

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/tictac/tictac/game"
	"github.com/tictac/tictac/store"
)

// inbound is a frame from a client: {"action": ..., "data": ...}.
type inbound struct {
	Action string          `json:"action"`
	Data   json.RawMessage `json:"data"`
}

// request is a decoded client frame.
type request struct {
	action action
	gameID string // fillSquare
	x, y   int    // fillSquare
}

type action uint8

const (
	actionPing action = iota + 1
	actionJoin
	actionFill
)

// decode parses a client frame. It returns a *clientError for anything that
// is not a well-formed message of the protocol.
func decode(data []byte) (request, error) {
	var in inbound
	if err := json.Unmarshal(data, &in); err != nil {
		return request{}, refuse("bad_json", `Frames must be JSON objects like {"action":"joinGame","data":null}.`)
	}
	switch in.Action {
	case "ping":
		return request{action: actionPing}, nil
	case "joinGame":
		if !emptyData(in.Data) {
			return request{}, refuse("bad_data", "joinGame takes no data (null or {}) for a quick match.")
		}
		return request{action: actionJoin}, nil
	case "fillSquare":
		var fs fillSquare
		if err := json.Unmarshal(in.Data, &fs); err != nil || fs.GameID == nil || fs.Coords == nil || fs.Coords.X == nil || fs.Coords.Y == nil {
			return request{}, refuse("bad_data", `fillSquare needs {"gameId": string, "coords": {"x": 0-2, "y": 0-2}}.`)
		}
		return request{action: actionFill, gameID: *fs.GameID, x: *fs.Coords.X, y: *fs.Coords.Y}, nil
	case "":
		return request{}, refuse("bad_json", `Frames need an "action".`)
	}
	return request{}, refuse("unknown_action", "Unknown action; use joinGame, fillSquare or ping.")
}

func emptyData(raw json.RawMessage) bool {
	if len(raw) == 0 || string(raw) == "null" {
		return true
	}
	var m map[string]json.RawMessage
	return json.Unmarshal(raw, &m) == nil && len(m) == 0
}

type fillSquare struct {
	GameID *string `json:"gameId"`
	Coords *struct {
		X *int `json:"x"`
		Y *int `json:"y"`
	} `json:"coords"`
}

// clientError is a refusal sent to a client as {"action":"error","data":{code,message}}.
type clientError struct {
	Code, Message string
}

func (e *clientError) Error() string { return e.Code + ": " + e.Message }

func refuse(code, format string, args ...any) *clientError {
	return &clientError{Code: code, Message: fmt.Sprintf(format, args...)}
}

// toClientError turns any error from handling a message into what the client is
// told. This is the one place where errors become client messages.
func toClientError(err error) *clientError {
	var ce *clientError
	switch {
	case errors.As(err, &ce):
		return ce
	case errors.Is(err, game.ErrNotYourTurn):
		return refuse("not_your_turn", "It is not your turn.")
	case errors.Is(err, game.ErrOccupied):
		return refuse("occupied", "That square is already filled.")
	case errors.Is(err, game.ErrOffBoard):
		return refuse("off_board", "Coordinates must be 0, 1 or 2.")
	case errors.Is(err, game.ErrOver):
		return refuse("game_over", "This game is over.")
	case errors.Is(err, game.ErrNotStarted):
		return refuse("not_started", "The game has not started: wait for an opponent.")
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrNotPlayer):
		return refuse("not_in_game", "You do not play in that game.")
	case errors.Is(err, store.ErrClosed):
		return refuse("unavailable", "The server is shutting down; try again in a moment.")
	}
	return refuse("unavailable", "The game store is unavailable; nothing was changed. Try again.")
}

// Server-to-client frames. Each is encoded once and sent as is to every recipient.

var framePong = []byte(`{"action":"pong"}`)

func frame(action string, data any) []byte {
	b, err := json.Marshal(struct {
		Action string `json:"action"`
		Data   any    `json:"data"`
	}{action, data})
	if err != nil {
		panic(fmt.Sprintf("encode %s: %v", action, err)) // only our own types get here
	}
	return b
}

func frameError(e *clientError) []byte {
	return frame("error", struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}{e.Code, e.Message})
}

type gameTeam struct {
	GameID string `json:"gameId"`
	Team   string `json:"team"`
}

func frameJoinGame(id string, team game.Mark) []byte {
	return frame("joinGame", gameTeam{id, team.String()})
}

func framePlayerJoin(id string, team game.Mark) []byte {
	return frame("playerJoin", gameTeam{id, team.String()})
}

func frameStatus(id string, s game.Status) []byte {
	return frame("updateGameStatus", struct {
		GameID string `json:"gameId"`
		Status string `json:"status"`
	}{id, s.String()})
}

// frameGrid encodes updateGrid by hand: it is sent on every move.
func frameGrid(g *store.Game) []byte {
	b := make([]byte, 0, 192)
	b = append(b, `{"action":"updateGrid","data":{"gameId":`...)
	b = strconv.AppendQuote(b, g.ID)
	b = append(b, `,"grid":[`...)
	for x := range game.Size {
		if x > 0 {
			b = append(b, ',')
		}
		b = append(b, '[')
		for y := range game.Size {
			if y > 0 {
				b = append(b, ',')
			}
			switch g.Board.At(x, y) {
			case game.X:
				b = append(b, `"x"`...)
			case game.O:
				b = append(b, `"o"`...)
			default:
				b = append(b, "null"...)
			}
		}
		b = append(b, ']')
	}
	b = append(b, `],"move":`...)
	b = strconv.AppendInt(b, int64(g.Moves), 10)
	if n := len(g.History); n > 0 {
		m := g.History[n-1]
		b = append(b, `,"last":{"x":`...)
		b = strconv.AppendInt(b, int64(m.X), 10)
		b = append(b, `,"y":`...)
		b = strconv.AppendInt(b, int64(m.Y), 10)
		b = append(b, `,"team":"`...)
		b = append(b, m.Team.String()...)
		b = append(b, `"}`...)
	}
	return append(b, "}}"...)
}

func frameWinner(g *store.Game) []byte {
	var winner *string
	if g.Winner != game.Empty {
		w := g.Winner.String()
		winner = &w
	}
	var line [][2]int
	if g.Line >= 0 {
		for _, i := range game.Lines[g.Line] {
			line = append(line, [2]int{i % game.Size, i / game.Size})
		}
	}
	return frame("updateWinner", struct {
		GameID string   `json:"gameId"`
		Winner *string  `json:"winner"`
		Line   [][2]int `json:"line"`
	}{g.ID, winner, line})
}

type statEntry struct {
	ID    string `json:"id"`
	Value int64  `json:"value"`
}

// frameStats encodes the stats that differ between prev and next (all of them
// when full is set), or returns nil when none do.
func frameStats(prev, next *store.Stats, full bool) []byte {
	var list []statEntry
	for i, v := range next {
		if full || v != prev[i] {
			list = append(list, statEntry{store.Stat(i).String(), v})
		}
	}
	if list == nil {
		return nil
	}
	return frame("statsUpdate", list)
}

// Bus messages carry one or more frames for a game, joined by newlines (JSON
// never contains a raw newline), after a two-byte header: the game's status and
// its move count once these frames are applied. The header lets every replica
// keep the room's state without decoding JSON.
func busMessage(g *store.Game, frames ...[]byte) []byte {
	n := 2
	for _, f := range frames {
		n += len(f) + 1
	}
	b := make([]byte, 2, n)
	b[0], b[1] = byte(g.Status), byte(g.Moves)
	return append(b, bytes.Join(frames, []byte{'\n'})...)
}
