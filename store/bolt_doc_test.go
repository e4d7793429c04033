package store

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/tictac/tictac/game"
)

func sampleGames() []Game {
	at := time.Date(2026, 11, 24, 1, 2, 3, 456789000, time.UTC)
	g := Game{ID: "abc", PlayerX: "px", PlayerO: "po", Game: game.New(), Created: at, Started: at.Add(time.Second),
		Mode: ModeBot, Level: "hard", Away: [2]int64{0, 17}, Rematch: [2]bool{true, false}, Spectators: 3, Version: 9}
	_ = g.Start()
	for i, m := range [][2]int{{0, 0}, {0, 1}, {1, 0}, {1, 1}, {2, 0}} {
		p := []string{"px", "po"}[i%2]
		_ = g.PlayMove(p, m[0], m[1], []string{"", "id<1>"}[i%2], at.Add(time.Duration(i)*time.Millisecond))
	}
	waiting := Game{ID: "w", PlayerX: "p", Game: game.New(), Created: at, Invite: "code", Mode: ModeFriend}
	odd := g
	odd.PlayerX = "é\"\\\n\u2028"
	zoned := g
	zoned.Created = at.In(time.FixedZone("x", 5*3600+1800))
	zoned.Ended, zoned.Reason, zoned.Next = at.Add(time.Hour), "line", "n"
	far := g
	far.Created = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	return []Game{{Game: game.New()}, g, waiting, odd, zoned, far}
}

func TestEncodeGame(t *testing.T) {
	t.Parallel()
	for i, g := range sampleGames() {
		for _, q := range []uint64{0, 42} {
			want, wantErr := json.Marshal(toDoc(&g, q))
			got, err := encodeGame(&g, q)
			if (err != nil) != (wantErr != nil) || !bytes.Equal(got, want) {
				t.Errorf("game %d queue %d:\ngot  %s, %v\nwant %s, %v", i, q, got, err, want, wantErr)
			}
		}
	}
}

func FuzzEncodeGame(f *testing.F) {
	f.Add("id", "x", "o", "inv", "lvl", "reason", int64(0), int64(1), 3, int64(1e9))
	f.Fuzz(func(t *testing.T, id, px, po, invite, level, reason string, away0, away1 int64, spectators int, unix int64) {
		g := sampleGames()[1]
		g.ID, g.PlayerX, g.PlayerO, g.Invite, g.Level, g.Reason = id, px, po, invite, level, reason
		g.Away, g.Spectators = [2]int64{away0, away1}, spectators
		g.Created = time.Unix(unix, unix%1e9)
		want, wantErr := json.Marshal(toDoc(&g, uint64(spectators)))
		got, err := encodeGame(&g, uint64(spectators))
		if (err != nil) != (wantErr != nil) || !bytes.Equal(got, want) {
			t.Errorf("got  %s, %v\nwant %s, %v", got, err, want, wantErr)
		}
	})
}
