package store

import (
	"fmt"
	"time"

	"github.com/tictac/tictac/game"
)

// doc is a game as both stores write it: the history is the truth, and the
// board is replayed from it, so a stored game is always a legal sequence of moves.
type doc struct {
	ID      string    `json:"id" rethinkdb:"id"`
	Status  string    `json:"status" rethinkdb:"status"`
	PlayerX string    `json:"playerX" rethinkdb:"playerX"`
	PlayerO string    `json:"playerO,omitempty" rethinkdb:"playerO,omitempty"`
	Moves   []moveDoc `json:"moves" rethinkdb:"moves"`
	Winner  string    `json:"winner,omitempty" rethinkdb:"winner,omitempty"`
	Created time.Time `json:"created" rethinkdb:"created"`
	Started time.Time `json:"started,omitzero" rethinkdb:"started,omitempty"`
	Ended   time.Time `json:"ended,omitzero" rethinkdb:"ended,omitempty"`
	// Queue orders waiting games, oldest first; it is zero once a game starts.
	Queue uint64 `json:"queue,omitempty" rethinkdb:"queue,omitempty"`

	Mode       string   `json:"mode,omitempty" rethinkdb:"mode,omitempty"`
	Level      string   `json:"level,omitempty" rethinkdb:"level,omitempty"`
	Invite     string   `json:"invite,omitempty" rethinkdb:"invite,omitempty"`
	Reason     string   `json:"reason,omitempty" rethinkdb:"reason,omitempty"`
	Away       [2]int64 `json:"away" rethinkdb:"away"`
	Rematch    [2]bool  `json:"rematch" rethinkdb:"rematch"`
	Next       string   `json:"next,omitempty" rethinkdb:"next,omitempty"`
	Spectators int      `json:"spectators" rethinkdb:"spectators"`
	Version    int64    `json:"version" rethinkdb:"version"`
}

type moveDoc struct {
	X    int       `json:"x" rethinkdb:"x"`
	Y    int       `json:"y" rethinkdb:"y"`
	Team string    `json:"team" rethinkdb:"team"`
	At   time.Time `json:"at" rethinkdb:"at"`
	ID   string    `json:"id,omitempty" rethinkdb:"id,omitempty"`
}

func toDoc(g *Game, queue uint64) doc {
	d := doc{
		ID: g.ID, Status: g.Status.String(), PlayerX: g.PlayerX, PlayerO: g.PlayerO,
		Winner: g.Winner.String(), Created: g.Created, Started: g.Started, Ended: g.Ended,
		Moves: make([]moveDoc, len(g.History)), Queue: queue,
		Mode: g.Mode.String(), Level: g.Level, Invite: g.Invite, Reason: g.Reason, Away: g.Away,
		Rematch: g.Rematch, Next: g.Next, Spectators: g.Spectators, Version: g.Version,
	}
	for i, m := range g.History {
		d.Moves[i] = moveDoc{X: m.X, Y: m.Y, Team: m.Team.String(), At: m.At, ID: m.ID}
	}
	return d
}

// fromDoc rebuilds a game by replaying its moves. It fails if the document is
// not a legal game, which is how corruption shows up.
func fromDoc(d *doc) (Game, error) {
	g := Game{ID: d.ID, PlayerX: d.PlayerX, PlayerO: d.PlayerO, Game: game.New(),
		Created: d.Created, Started: d.Started, Ended: d.Ended, History: make([]Move, 0, len(d.Moves)),
		Level: d.Level, Invite: d.Invite, Reason: d.Reason, Away: d.Away, Rematch: d.Rematch, Next: d.Next,
		Spectators: d.Spectators, Version: d.Version}
	mode, err := parseMode(d.Mode)
	if err != nil {
		return Game{}, fmt.Errorf("game %s: %w", d.ID, err)
	}
	g.Mode = mode
	status, err := game.ParseStatus(d.Status)
	if err != nil {
		return Game{}, fmt.Errorf("game %s: %w", d.ID, err)
	}
	if status != game.Waiting {
		if err := g.Start(); err != nil {
			return Game{}, fmt.Errorf("game %s: %w", d.ID, err)
		}
	}
	for i, m := range d.Moves {
		team, err := game.ParseMark(m.Team)
		if err != nil {
			return Game{}, fmt.Errorf("game %s move %d: %w", d.ID, i+1, err)
		}
		if err := g.Play(game.Move{X: m.X, Y: m.Y, Team: team}); err != nil {
			return Game{}, fmt.Errorf("game %s move %d: %w", d.ID, i+1, err)
		}
		g.History = append(g.History, Move{X: m.X, Y: m.Y, Team: team, At: m.At, ID: m.ID})
	}
	if status == game.Abandoned {
		var winner game.Mark
		if d.Winner != "" {
			if winner, err = game.ParseMark(d.Winner); err != nil {
				return Game{}, fmt.Errorf("game %s: %w", d.ID, err)
			}
		}
		if err := g.Abandon(winner); err != nil {
			return Game{}, fmt.Errorf("game %s: %w", d.ID, err)
		}
	}
	if g.Status != status {
		return Game{}, fmt.Errorf("game %s: stored status %s but its moves make it %s", d.ID, status, g.Status)
	}
	if w := g.Winner.String(); w != d.Winner {
		return Game{}, fmt.Errorf("game %s: stored winner %q but its moves make it %q", d.ID, d.Winner, w)
	}
	return g, nil
}

// EncodeGame returns g as the stores write it (JSON, one line), for a
// replica to hand a game it stored to the others (see Rethink.Learn).
func EncodeGame(g *Game) []byte {
	b, err := encodeGame(g, 0)
	if err != nil {
		panic(fmt.Sprintf("encode game %s: %v", g.ID, err)) // only strings and times, all encodable
	}
	return b
}

// DecodeGame reads what EncodeGame wrote, checking that its moves make the
// game it says.
func DecodeGame(b []byte) (Game, error) { return decode(b) }
