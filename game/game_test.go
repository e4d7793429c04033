package game

import (
	"errors"
	"testing"
)

// play starts a game and applies moves in order, failing the test on the first error.
func play(tb testing.TB, moves ...[2]int) Game {
	tb.Helper()
	g := New()
	if err := g.Start(); err != nil {
		tb.Fatalf("Start: %v", err)
	}
	for i, m := range moves {
		if err := g.Play(Move{X: m[0], Y: m[1], Team: g.Turn()}); err != nil {
			tb.Fatalf("move %d %v: %v", i+1, m, err)
		}
	}
	return g
}

func TestOutcomes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		moves  [][2]int
		status Status
		winner Mark
		line   int
	}{
		{"x wins top row", [][2]int{{0, 0}, {0, 1}, {1, 0}, {1, 1}, {2, 0}}, Finished, X, 0},
		{"o wins middle column", [][2]int{{0, 0}, {1, 0}, {2, 2}, {1, 1}, {0, 2}, {1, 2}}, Finished, O, 4},
		{"x wins diagonal", [][2]int{{0, 0}, {1, 0}, {1, 1}, {2, 0}, {2, 2}}, Finished, X, 6},
		{"x wins anti-diagonal", [][2]int{{2, 0}, {0, 0}, {1, 1}, {1, 0}, {0, 2}}, Finished, X, 7},
		{"x wins on the last square", [][2]int{{0, 0}, {1, 0}, {2, 0}, {0, 1}, {1, 1}, {2, 1}, {1, 2}, {0, 2}, {2, 2}}, Finished, X, 6},
		{"draw", [][2]int{{0, 0}, {1, 0}, {2, 0}, {1, 1}, {0, 1}, {2, 1}, {1, 2}, {0, 2}, {2, 2}}, FinishedDraw, Empty, -1},
		{"in progress", [][2]int{{1, 1}, {0, 0}}, InProgress, Empty, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := play(t, tt.moves...)
			if g.Status != tt.status || g.Winner != tt.winner || g.Line != tt.line {
				t.Errorf("got status %v winner %q line %d, want %v %q %d", g.Status, g.Winner, g.Line, tt.status, tt.winner, tt.line)
			}
			if g.Moves != len(tt.moves) {
				t.Errorf("got %d moves, want %d", g.Moves, len(tt.moves))
			}
		})
	}
}

func TestRefusedMoves(t *testing.T) {
	t.Parallel()
	finished := play(t, [2]int{0, 0}, [2]int{0, 1}, [2]int{1, 0}, [2]int{1, 1}, [2]int{2, 0})
	abandoned := play(t, [2]int{0, 0})
	if err := abandoned.Abandon(Empty); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		game Game
		move Move
		want error
	}{
		{"waiting", New(), Move{0, 0, X}, ErrNotStarted},
		{"o first", play(t), Move{0, 0, O}, ErrNotYourTurn},
		{"x twice", play(t, [2]int{0, 0}), Move{1, 1, X}, ErrNotYourTurn},
		{"no team", play(t), Move{0, 0, Empty}, ErrBadTeam},
		{"bad team", play(t), Move{0, 0, Mark(7)}, ErrBadTeam},
		{"x too big", play(t), Move{3, 0, X}, ErrOffBoard},
		{"y negative", play(t), Move{0, -1, X}, ErrOffBoard},
		{"filled", play(t, [2]int{1, 1}), Move{1, 1, O}, ErrOccupied},
		{"finished", finished, Move{2, 2, O}, ErrOver},
		{"abandoned", abandoned, Move{2, 2, O}, ErrOver},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := tt.game
			err := tt.game.Play(tt.move)
			if !errors.Is(err, tt.want) {
				t.Errorf("Play(%+v) = %v, want %v", tt.move, err, tt.want)
			}
			if tt.game != before {
				t.Errorf("refused move changed the game: got %+v, want %+v", tt.game, before)
			}
		})
	}
}

func TestAbandon(t *testing.T) {
	t.Parallel()
	g := play(t, [2]int{0, 0})
	if err := g.Abandon(O); err != nil {
		t.Fatalf("Abandon: %v", err)
	}
	if g.Status != Abandoned || g.Winner != O {
		t.Errorf("got %v %v, want abandoned o", g.Status, g.Winner)
	}
	if err := g.Abandon(X); !errors.Is(err, ErrOver) {
		t.Errorf("second Abandon = %v, want ErrOver", err)
	}
	if g.Winner != O {
		t.Errorf("second Abandon changed winner to %v", g.Winner)
	}
}

func TestStartTwice(t *testing.T) {
	t.Parallel()
	g := play(t)
	if err := g.Start(); !errors.Is(err, ErrOver) {
		t.Errorf("Start on a started game = %v, want ErrOver", err)
	}
}

func TestSpelling(t *testing.T) {
	t.Parallel()
	for s := Waiting; s <= Abandoned; s++ {
		got, err := ParseStatus(s.String())
		if err != nil || got != s {
			t.Errorf("ParseStatus(%q) = %v, %v; want %v", s.String(), got, err, s)
		}
	}
	if _, err := ParseStatus("won"); !errors.Is(err, ErrBadStatus) {
		t.Errorf("ParseStatus(won) = %v, want ErrBadStatus", err)
	}
	for _, m := range []Mark{X, O} {
		got, err := ParseMark(m.String())
		if err != nil || got != m {
			t.Errorf("ParseMark(%q) = %v, %v", m.String(), got, err)
		}
		if m.Other().Other() != m || m.Other() == m {
			t.Errorf("Other of %v is wrong", m)
		}
	}
	if _, err := ParseMark(""); !errors.Is(err, ErrBadTeam) {
		t.Errorf("ParseMark(\"\") = %v, want ErrBadTeam", err)
	}
}

// FuzzPlay checks that no sequence of moves, legal or not, breaks an invariant:
// counts of marks follow the turn order, a refused move changes nothing, a won
// game has exactly the winner's line, and nothing is played after the end.
func FuzzPlay(f *testing.F) {
	f.Add([]byte{0, 1, 3, 4, 6})
	f.Add([]byte{4, 4, 0, 8, 2, 6, 3, 5, 7, 1})
	f.Add([]byte{0x10, 0x33, 0xff, 0, 9, 200})
	f.Fuzz(func(t *testing.T, seq []byte) {
		g := New()
		if err := g.Start(); err != nil {
			t.Fatal(err)
		}
		for _, b := range seq {
			// Low nibble picks the square (some off the board), high bits the team.
			m := Move{X: int(b&0x0f) % 4, Y: int(b&0x0f) / 4, Team: Mark(b>>4) % 4}
			before := g
			err := g.Play(m)
			if err != nil {
				if g != before {
					t.Fatalf("refused %+v (%v) but game changed", m, err)
				}
				continue
			}
			if before.Status != InProgress || m.Team != before.Turn() {
				t.Fatalf("accepted %+v in %+v", m, before)
			}
			checkInvariants(t, &g)
		}
	})
}

func checkInvariants(t *testing.T, g *Game) {
	t.Helper()
	var xs, os int
	for _, m := range g.Board {
		switch m {
		case X:
			xs++
		case O:
			os++
		}
	}
	if xs+os != g.Moves || xs-os < 0 || xs-os > 1 {
		t.Fatalf("board has %d x and %d o after %d moves", xs, os, g.Moves)
	}
	w, line := g.Board.Winner()
	switch g.Status {
	case Finished:
		if w == Empty || w != g.Winner || line != g.Line {
			t.Fatalf("finished with winner %v line %d, board says %v %d", g.Winner, g.Line, w, line)
		}
	case FinishedDraw:
		if w != Empty || !g.Board.Full() {
			t.Fatalf("draw but board has winner %v, full %v", w, g.Board.Full())
		}
	case InProgress:
		if w != Empty || g.Board.Full() {
			t.Fatalf("in progress but board has winner %v, full %v", w, g.Board.Full())
		}
	default:
		t.Fatalf("status %v after a move", g.Status)
	}
}

func BenchmarkPlay(b *testing.B) {
	moves := [][2]int{{0, 0}, {1, 0}, {2, 0}, {1, 1}, {0, 1}, {2, 1}, {1, 2}, {0, 2}, {2, 2}}
	b.ReportAllocs()
	for b.Loop() {
		g := New()
		_ = g.Start()
		for _, m := range moves {
			if err := g.Play(Move{X: m[0], Y: m[1], Team: g.Turn()}); err != nil {
				b.Fatal(err)
			}
		}
	}
}
