package store

import (
	"slices"
	"testing"
	"time"

	"github.com/tictac/tictac/game"
)

// TestCountUrgency checks the bookkeeping of what a replica owes: a game's
// start and end are counted at the next count, its moves alone may wait;
// and when a batch counts a game that was written again meanwhile, the game
// stays owed for the newer writes only, urgent only if one of them is.
func TestCountUrgency(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	s := &Rethink{owed: map[string]owedGame{}, flush: 200 * time.Millisecond, now: func() time.Time { return now }}
	started := Game{ID: "g", PlayerX: "x", PlayerO: "o", Game: game.New(), Version: 1}
	if err := started.Start(); err != nil {
		t.Fatal(err)
	}
	next := func(g Game, fn func(*Game) error) Game {
		t.Helper()
		g.History = slices.Clone(g.History)
		if err := fn(&g); err != nil {
			t.Fatal(err)
		}
		g.Version++
		return g
	}
	moved := next(started, func(g *Game) error { return g.PlayMove("x", 0, 0, "m1", now) })
	resigned := next(moved, func(g *Game) error { return g.Resign("o", now) })
	canWait := func(id string) bool {
		o := s.owed[id]
		return o.urgent == 0 && now.Sub(o.since) < s.countLag()
	}

	s.owe(nil, &started) // paired: a write whose change is unknown here
	if canWait("g") {
		t.Fatal("a game that starts waits for its count")
	}
	batch := &countBatch{games: map[string]owedGame{"g": s.owed["g"]}}
	s.owe(&started, &moved) // while the batch counts the start
	now = now.Add(time.Second)
	s.counted(batch)
	o, ok := s.owed["g"]
	if !ok || o.version != moved.Version || o.want != Expected(&moved) {
		t.Fatalf("after the batch: %+v, %v; want the move owed", o, ok)
	}
	if !canWait("g") || !o.since.Equal(now) {
		t.Errorf("a move written during the count of the start: urgent %d since %v; want it to wait, from now", o.urgent, o.since)
	}
	if now = now.Add(s.countLag()); canWait("g") {
		t.Error("a move still waits after countLag")
	}

	s.owe(&moved, &resigned)
	if canWait("g") {
		t.Fatal("a game that ends waits for its count")
	}
	batch = &countBatch{games: map[string]owedGame{"g": {version: moved.Version}}}
	s.counted(batch)
	if o := s.owed["g"]; o.urgent != resigned.Version {
		t.Errorf("an end written during the count of a move: urgent %d, want %d", o.urgent, resigned.Version)
	}
	s.counted(&countBatch{games: map[string]owedGame{"g": s.owed["g"]}})
	if o, ok := s.owed["g"]; ok {
		t.Errorf("counted at its last version, the game is still owed: %+v", o)
	}
}
