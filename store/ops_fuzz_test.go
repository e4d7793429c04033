package store

import (
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/tictac/tictac/game"
)

// FuzzMove drives a game through the store's move path with any sequence of
// requests (either player, a stranger, squares off the board, repeated move
// ids, resignations) and checks what every store relies on: a refused request
// changes nothing, an accepted move adds exactly that move, a repeated move id
// is refused as a duplicate, and the game survives a round trip through its
// stored document.
func FuzzMove(f *testing.F) {
	f.Add([]byte{0x00, 0x14, 0x01, 0x15, 0x02})
	f.Add([]byte{0x04, 0x04, 0x24, 0x40, 0x88, 0xff, 0x13})
	f.Add([]byte{0xc0, 0x00, 0x11, 0x00})
	players := []string{"px", "po", "stranger"}
	f.Fuzz(func(t *testing.T, seq []byte) {
		start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
		g := Game{ID: "g1", PlayerX: "px", PlayerO: "po", Game: game.New(), Created: start, Started: start}
		if err := g.Start(); err != nil {
			t.Fatal(err)
		}
		for i, b := range seq {
			// Bits: 0-3 the square (some off the board), 4-5 who, 6-7 the move
			// id (three ids, or none); who == 3 resigns for X instead.
			who, sq, id := int(b>>4)&3, int(b&0x0f), int(b>>6)
			now := start.Add(time.Duration(i+1) * time.Second)
			before := g
			before.History = slices.Clone(g.History)
			var err error
			if who == 3 {
				err = g.Resign("px", now)
			} else {
				moveID := ""
				if id > 0 {
					moveID = string(rune('a' + id))
				}
				err = g.PlayMove(players[who], sq%4, sq/4, moveID, now)
				if err == nil {
					if len(g.History) != len(before.History)+1 {
						t.Fatalf("move %d accepted but history went from %d to %d", i, len(before.History), len(g.History))
					}
					if m := g.History[len(g.History)-1]; m.X != sq%4 || m.Y != sq/4 || m.ID != moveID || m.Team != before.Team(players[who]) {
						t.Fatalf("move %d stored as %+v", i, m)
					}
					for _, old := range before.History {
						if moveID != "" && old.ID == moveID && old.Team == before.Team(players[who]) {
							t.Fatalf("move %d: id %q played twice by one team", i, moveID)
						}
					}
				}
			}
			if err != nil && !reflect.DeepEqual(g, before) {
				t.Fatalf("request %d refused (%v) but the game changed:\n%+v\n%+v", i, err, before, g)
			}
			d := toDoc(&g, 0)
			back, err := fromDoc(&d)
			if err != nil {
				t.Fatalf("request %d: stored game does not load: %v", i, err)
			}
			if back.Board != g.Board || back.Status != g.Status || back.Winner != g.Winner || !slices.Equal(back.History, g.History) {
				t.Fatalf("request %d: round trip changed the game:\n%+v\n%+v", i, g, back)
			}
		}
	})
}
