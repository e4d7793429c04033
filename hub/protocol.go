package hub

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

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
	gameID string // fillSquare, joinGame (attach), rematch, spectate, leaveGame, sync
	x, y   int    // fillSquare
	moveID string // fillSquare
	token  string // hello
	mode   string // joinGame: "quick", "friend", "bot", "invite" or "attach"
	level  game.Level
	invite string // joinGame
}

type action uint8

const (
	actionPing action = iota + 1
	actionJoin
	actionFill
	actionHello
	actionRematch
	actionSpectate
	actionLeave
	actionList
	actionUnlist
	actionSync
	actionPauseStats
	actionResumeStats
)

// gameRef is the data of the actions that name a game.
type gameRef struct {
	GameID *string `json:"gameId"`
}

type joinData struct {
	Mode   string  `json:"mode"`
	Level  string  `json:"level"`
	Invite *string `json:"invite"`
	GameID *string `json:"gameId"`
}

// maxID bounds the ids a client may send (game ids, move ids, codes).
const maxID = 64

// decode parses a client frame. It returns a *clientError for anything that
// is not a well-formed message of the protocol.
func decode(data []byte) (request, error) {
	// A move, nearly every frame a client sends, is read in one pass by hand;
	// anything else, or a move written in a way that pass does not take,
	// goes the general way, which also says what is wrong.
	if r, ok := decodeFill(data); ok {
		return r, nil
	}
	return decodeAny(data)
}

// decodeAny is decode for every frame: what decodeFill must agree with
// (FuzzDecode checks that it does).
func decodeAny(data []byte) (request, error) {
	var in inbound
	if err := json.Unmarshal(data, &in); err != nil {
		return request{}, refuse("bad_json", `Frames must be JSON objects like {"action":"joinGame","data":null}.`)
	}
	switch in.Action {
	case "ping":
		return request{action: actionPing}, nil
	case "hello":
		var h struct {
			Token *string `json:"token"`
		}
		if !emptyData(in.Data) && (json.Unmarshal(in.Data, &h) != nil || h.Token == nil) {
			return request{}, refuse("bad_data", `hello takes {"token": string} or {}.`)
		}
		r := request{action: actionHello}
		if h.Token != nil {
			r.token = *h.Token
		}
		return r, nil
	case "joinGame":
		return decodeJoin(in.Data)
	case "fillSquare":
		var fs fillSquare
		if err := json.Unmarshal(in.Data, &fs); err != nil || fs.GameID == nil || len(*fs.GameID) > maxID || fs.Coords == nil || fs.Coords.X == nil || fs.Coords.Y == nil || len(fs.MoveID) > maxID {
			return request{}, refuse("bad_data", `fillSquare needs {"gameId": string of up to 64 characters, "coords": {"x": 0-2, "y": 0-2}} and may carry a "moveId" of up to 64 characters.`)
		}
		return request{action: actionFill, gameID: *fs.GameID, x: *fs.Coords.X, y: *fs.Coords.Y, moveID: fs.MoveID}, nil
	case "rematch", "spectate", "leaveGame", "sync":
		var ref gameRef
		if err := json.Unmarshal(in.Data, &ref); err != nil || ref.GameID == nil || len(*ref.GameID) > maxID {
			return request{}, refuse("bad_data", "%s needs {\"gameId\": string}.", in.Action)
		}
		act := map[string]action{"rematch": actionRematch, "spectate": actionSpectate, "leaveGame": actionLeave, "sync": actionSync}[in.Action]
		return request{action: act, gameID: *ref.GameID}, nil
	case "listGames":
		return request{action: actionList}, nil
	case "unlistGames":
		return request{action: actionUnlist}, nil
	case "pauseStats":
		return request{action: actionPauseStats}, nil
	case "resumeStats":
		return request{action: actionResumeStats}, nil
	case "":
		return request{}, refuse("bad_json", `Frames need an "action".`)
	}
	return request{}, refuse("unknown_action", "Unknown action; see the protocol in the README.")
}

func decodeJoin(raw json.RawMessage) (request, error) {
	r := request{action: actionJoin, mode: "quick"}
	if emptyData(raw) {
		return r, nil
	}
	var d joinData
	bad := refuse("bad_data", `joinGame takes null or {} (quick match), {"mode":"friend"}, {"invite": code}, {"mode":"bot","level":"easy"|"hard"} or {"gameId": id}.`)
	if err := json.Unmarshal(raw, &d); err != nil {
		return request{}, bad
	}
	switch {
	case d.Invite != nil && d.Mode == "" && d.GameID == nil && len(*d.Invite) <= maxID:
		r.mode, r.invite = "invite", *d.Invite
	case d.GameID != nil && d.Mode == "" && d.Invite == nil && len(*d.GameID) <= maxID:
		r.mode, r.gameID = "attach", *d.GameID
	case d.Mode == "friend" && d.Invite == nil && d.GameID == nil:
		r.mode = "friend"
	case d.Mode == "bot" && d.Invite == nil && d.GameID == nil:
		lvl, err := game.ParseLevel(d.Level)
		if err != nil {
			return request{}, bad
		}
		r.mode, r.level = "bot", lvl
	case d.Mode == "quick" && d.Invite == nil && d.GameID == nil:
	default:
		return request{}, bad
	}
	return r, nil
}

func emptyData(raw json.RawMessage) bool {
	if len(raw) == 0 || string(raw) == "null" {
		return true
	}
	var m map[string]json.RawMessage
	return json.Unmarshal(raw, &m) == nil && len(m) == 0
}

type fillSquare struct {
	MoveID string  `json:"moveId"`
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

// frameJoinGame tells a player which game and team it joined.
func frameJoinGame(g *store.Game, team game.Mark) []byte {
	d := struct {
		GameID   string  `json:"gameId"`
		Team     string  `json:"team"`
		Opponent string  `json:"opponent"`
		Level    *string `json:"level,omitempty"`
		Invite   *string `json:"invite,omitempty"`
	}{GameID: g.ID, Team: team.String(), Opponent: "human"}
	if g.Mode == store.ModeBot {
		d.Opponent, d.Level = "bot", &g.Level
	}
	if g.Invite != "" && team == game.X {
		d.Invite = &g.Invite
	}
	return frame("joinGame", d)
}

func framePlayerJoin(id string, team game.Mark) []byte {
	return frame("playerJoin", gameTeam{id, team.String()})
}

func frameStatus(g *store.Game) []byte {
	return frame("updateGameStatus", struct {
		GameID string `json:"gameId"`
		Status string `json:"status"`
		Move   int    `json:"move"`
	}{g.ID, g.Status.String(), g.Moves})
}

// frameSession gives the client its session, and how long the server keeps
// its seat in a game when its connection drops (grace), so that the page can
// count it down while it reconnects.
func frameSession(token string, grace time.Duration) []byte {
	return frame("session", struct {
		Token string `json:"token"`
		Grace int64  `json:"grace"`
	}{token, grace.Milliseconds()})
}

func frameMoveAck(id, moveID string, move int) []byte {
	return frame("moveAck", struct {
		GameID string `json:"gameId"`
		MoveID string `json:"moveId"`
		Move   int    `json:"move"`
	}{id, moveID, move})
}

// framePlayerAway carries the server's clock (now) beside the deadline, so
// that a client whose clock is off still counts down right.
func framePlayerAway(id string, team game.Mark, deadline, now int64) []byte {
	return frame("playerAway", struct {
		GameID   string `json:"gameId"`
		Team     string `json:"team"`
		Deadline int64  `json:"deadline"`
		Now      int64  `json:"now"`
	}{id, team.String(), deadline, now})
}

func framePlayerBack(id string, team game.Mark) []byte {
	return frame("playerBack", gameTeam{id, team.String()})
}

func framePlayerLeft(id string, team game.Mark) []byte {
	return frame("playerLeft", gameTeam{id, team.String()})
}

func frameRematchOffer(id string, team game.Mark) []byte {
	return frame("rematchOffer", gameTeam{id, team.String()})
}

func frameRematch(id, next string) []byte {
	return frame("rematch", struct {
		GameID    string `json:"gameId"`
		NewGameID string `json:"newGameId"`
	}{id, next})
}

func frameSpectators(g *store.Game) []byte {
	return frame("spectators", struct {
		GameID string `json:"gameId"`
		Count  int    `json:"count"`
	}{g.ID, g.Spectators})
}

func frameLeft(id string) []byte {
	return frame("left", struct {
		GameID string `json:"gameId"`
	}{id})
}

// frameCancelled tells the sockets in a quick game that waited that it is
// gone: its player's socket that made it closed. Another socket of the same
// player may have taken it up meanwhile on another replica (a page that
// reconnected there first), and would wait in it for ever.
func frameCancelled(id string) []byte {
	return frame("gameCancelled", struct {
		GameID string `json:"gameId"`
	}{id})
}

type listedGame struct {
	GameID     string `json:"gameId"`
	Move       int    `json:"move"`
	Spectators int    `json:"spectators"`
	Mode       string `json:"mode"`
}

func frameGameList(games []store.Game) []byte {
	list := make([]listedGame, len(games))
	for i, g := range games {
		list[i] = listedGame{g.ID, g.Moves, g.Spectators, g.Mode.String()}
	}
	return frame("gameList", struct {
		Games []listedGame `json:"games"`
	}{list})
}

type square struct {
	X    int    `json:"x"`
	Y    int    `json:"y"`
	Team string `json:"team"`
}

// frameState is the whole of a game as viewer (a team, or Empty for a
// spectator) sees it: what a client needs after a resume, a sync or to watch.
func frameState(g *store.Game, viewer game.Mark) []byte {
	var grid [game.Size][game.Size]*string
	for x := range game.Size {
		for y := range game.Size {
			if m := g.Board.At(x, y); m != game.Empty {
				v := m.String()
				grid[x][y] = &v
			}
		}
	}
	team := "spectator"
	if viewer != game.Empty {
		team = viewer.String()
	}
	var last *square
	if n := len(g.History); n > 0 {
		m := g.History[n-1]
		last = &square{m.X, m.Y, m.Team.String()}
	}
	var winner, reason, level, invite *string
	if g.Winner != game.Empty {
		w := g.Winner.String()
		winner = &w
	}
	if g.Reason != "" {
		reason = &g.Reason
	}
	if g.Mode == store.ModeBot {
		level = &g.Level
	}
	if g.Invite != "" && viewer == game.X {
		invite = &g.Invite
	}
	type away struct {
		Team     string `json:"team"`
		Deadline int64  `json:"deadline"`
	}
	var opponentAway *away
	for i, d := range g.Away {
		if t := []game.Mark{game.X, game.O}[i]; d != 0 && t != viewer {
			opponentAway = &away{t.String(), d}
		}
	}
	return frame("state", struct {
		GameID       string                        `json:"gameId"`
		Team         string                        `json:"team"`
		Status       string                        `json:"status"`
		Grid         [game.Size][game.Size]*string `json:"grid"`
		Move         int                           `json:"move"`
		Last         *square                       `json:"last"`
		Winner       *string                       `json:"winner"`
		Line         [][2]int                      `json:"line"`
		Reason       *string                       `json:"reason"`
		Mode         string                        `json:"mode"`
		Level        *string                       `json:"level"`
		Invite       *string                       `json:"invite"`
		OpponentAway *away                         `json:"opponentAway"`
		Spectators   int                           `json:"spectators"`
		Rematch      struct{ X, O bool }           `json:"rematch"`
		Now          int64                         `json:"now"`
	}{
		GameID: g.ID, Team: team, Status: g.Status.String(), Grid: grid, Move: g.Moves, Last: last,
		Winner: winner, Line: winningLine(g), Reason: reason, Mode: g.Mode.String(), Level: level, Invite: invite,
		OpponentAway: opponentAway, Spectators: g.Spectators,
		Rematch: struct{ X, O bool }{g.Rematch[0], g.Rematch[1]},
		Now:     time.Now().UnixMilli(),
	})
}

func winningLine(g *store.Game) [][2]int {
	if g.Line < 0 || g.Status != game.Finished {
		return nil
	}
	var line [][2]int
	for _, i := range game.Lines[g.Line] {
		line = append(line, [2]int{i % game.Size, i / game.Size})
	}
	return line
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
	return frame("updateWinner", struct {
		GameID string   `json:"gameId"`
		Winner *string  `json:"winner"`
		Line   [][2]int `json:"line"`
		Move   int      `json:"move"`
		Reason string   `json:"reason"`
	}{g.ID, winner, winningLine(g), g.Moves, g.Reason})
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
// keep the room's state without decoding JSON. When the store is a Learner, a
// last line carries the game as stored (storedPrefix, its version, `,"data":`,
// the store's JSON of the game, '}'): replicas keep it from their sockets and
// hand it to the store.
// It is shaped like a frame so that a replica of an older version, which
// passes every line on, hands its players a frame that clients ignore.
func busMessage(g *store.Game, stored []byte, frames ...[]byte) []byte {
	n := 2
	for _, f := range frames {
		n += len(f) + 1
	}
	if stored != nil {
		n += len(storedPrefix) + 20 + len(storedData) + len(stored) + 1
	}
	b := make([]byte, 2, n)
	b[0], b[1] = byte(g.Status), byte(g.Moves)
	for i, f := range frames {
		if i > 0 {
			b = append(b, '\n')
		}
		b = append(b, f...)
	}
	if stored != nil {
		b = append(b, '\n')
		b = append(b, storedPrefix...)
		b = strconv.AppendInt(b, g.Version, 10)
		b = append(b, storedData...)
		b = append(b, stored...)
		b = append(b, '}')
	}
	return b
}

// storedPrefix starts the line of a bus message that carries the game as
// stored, and storedData follows its version.
var (
	storedPrefix = []byte(`{"action":"storedGame","version":`)
	storedData   = []byte(`,"data":`)
)
