package game

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// board reads nine cells row by row, top row first: 'x', 'o', '.' for Empty and
// '?' for an invalid mark. Spaces and slashes are ignored, so rows can be set apart.
func board(tb testing.TB, s string) Board {
	tb.Helper()
	s = strings.NewReplacer(" ", "", "/", "").Replace(s)
	var b Board
	if len(s) != len(b) {
		tb.Fatalf("board %q has %d cells, want %d", s, len(s), len(b))
	}
	for i, c := range s {
		switch c {
		case 'x':
			b[i] = X
		case 'o':
			b[i] = O
		case '.':
			b[i] = Empty
		case '?':
			b[i] = Mark(3)
		default:
			tb.Fatalf("board %q: bad cell %q", s, c)
		}
	}
	return b
}

// show spells b the way board reads it, for failure messages.
func show(b Board) string {
	var sb strings.Builder
	for i, m := range b {
		if i > 0 && i%Size == 0 {
			sb.WriteByte('/')
		}
		switch m {
		case X:
			sb.WriteByte('x')
		case O:
			sb.WriteByte('o')
		case Empty:
			sb.WriteByte('.')
		default:
			sb.WriteByte('?')
		}
	}
	return sb.String()
}

// oracle scores positions by plain minimax with the same scale as the bot (1+e for
// a win leaving e squares empty, 0 for a draw), but written independently of it:
// it uses Board.Winner and Board.Full and memoises in a map, with no keys or table.
// An oracle is not safe for concurrent use.
type oracle map[oracleKey]int

type oracleKey struct {
	b    Board
	turn Mark
}

// move returns the score for turn of playing empty square i of b, which nobody has won.
func (o oracle) move(b Board, turn Mark, i int) int {
	b[i] = turn
	empties := 0
	for _, m := range b {
		if m == Empty {
			empties++
		}
	}
	if w, _ := b.Winner(); w == turn {
		return 1 + empties
	}
	if b.Full() {
		return 0
	}
	return -o.best(b, turn.Other())
}

// best returns the score of b, which nobody has won and is not full, for turn to move.
func (o oracle) best(b Board, turn Mark) int {
	if v, ok := o[oracleKey{b, turn}]; ok {
		return v
	}
	top := -100
	for i, m := range b {
		if m == Empty {
			top = max(top, o.move(b, turn, i))
		}
	}
	o[oracleKey{b, turn}] = top
	return top
}

// checkOptimal fails unless square (x, y) is empty on b and scores as well for
// team as the oracle's best move.
func checkOptimal(tb testing.TB, o oracle, b Board, team Mark, x, y int) {
	tb.Helper()
	if x < 0 || x >= Size || y < 0 || y >= Size || b.At(x, y) != Empty {
		tb.Fatalf("BestMove(%s, %v, hard) = (%d, %d), not an empty square", show(b), team, x, y)
	}
	if got, want := o.move(b, team, Index(x, y)), o.best(b, team); got != want {
		tb.Fatalf("BestMove(%s, %v, hard) = (%d, %d) scoring %d, want a move scoring %d", show(b), team, x, y, got, want)
	}
}

// TestHardIsOptimal checks every position reachable in a real game, with either
// team to move, against the oracle: Hard's move must be one of the best, which
// includes taking the quickest win and putting off a loss.
func TestHardIsOptimal(t *testing.T) {
	t.Parallel()
	o := oracle{}
	rng := rand.New(rand.NewPCG(1, 2))
	seen := map[Board]bool{} // the board fixes whose turn it is in a real game
	var walk func(g Game)
	walk = func(g Game) {
		if g.Status.Over() || seen[g.Board] {
			return
		}
		seen[g.Board] = true
		turn := g.Turn()
		x, y, ok := BestMove(g.Board, turn, Hard, rng)
		if !ok {
			t.Fatalf("BestMove(%s, %v, hard) not ok in a game in progress", show(g.Board), turn)
		}
		checkOptimal(t, o, g.Board, turn, x, y)
		for i, m := range g.Board {
			if m == Empty {
				next := g
				if err := next.Play(Move{X: i % Size, Y: i / Size, Team: turn}); err != nil {
					t.Fatalf("Play: %v", err)
				}
				walk(next)
			}
		}
	}
	walk(play(t))
	// 5,478 reachable positions, less the 958 where the game is over.
	if got, want := len(seen), 4520; got != want {
		t.Errorf("checked %d positions in progress, want %d", got, want)
	}
	t.Logf("hard bot optimal in all %d positions in progress", len(seen))
}

// TestHardNeverLoses walks the whole tree of the opponent's choices: at each of
// its turns the opponent tries every empty square, and the bot answers with
// BestMove. Several seeds vary the bot's tie-breaks.
func TestHardNeverLoses(t *testing.T) {
	t.Parallel()
	for _, bot := range []Mark{X, O} {
		for _, seed := range []uint64{1, 2, 3, 42, 1e9} {
			t.Run(fmt.Sprintf("%v/seed%d", bot, seed), func(t *testing.T) {
				t.Parallel()
				rng := rand.New(rand.NewPCG(seed, 0))
				var games, wins, draws int
				var walk func(g Game, moves []Move)
				walk = func(g Game, moves []Move) {
					switch {
					case g.Status == FinishedDraw:
						games++
						draws++
						return
					case g.Status == Finished && g.Winner == bot:
						games++
						wins++
						return
					case g.Status.Over():
						t.Fatalf("bot %v lost: %v", bot, moves)
					}
					if g.Turn() == bot {
						x, y, ok := BestMove(g.Board, bot, Hard, rng)
						if !ok {
							t.Fatalf("BestMove(%s, %v, hard) not ok after %v", show(g.Board), bot, moves)
						}
						m := Move{X: x, Y: y, Team: bot}
						if err := g.Play(m); err != nil {
							t.Fatalf("bot move %+v after %v: %v", m, moves, err)
						}
						walk(g, append(moves, m))
						return
					}
					for i, c := range g.Board {
						if c != Empty {
							continue
						}
						next := g
						m := Move{X: i % Size, Y: i / Size, Team: bot.Other()}
						if err := next.Play(m); err != nil {
							t.Fatalf("opponent move %+v after %v: %v", m, moves, err)
						}
						walk(next, append(moves[:len(moves):len(moves)], m))
					}
				}
				walk(play(t), nil)
				if games == 0 {
					t.Fatal("no games played")
				}
				t.Logf("bot %v, seed %d: %d complete games, %d won, %d drawn, 0 lost", bot, seed, games, wins, draws)
			})
		}
	}
}

func TestHardWinsAndBlocks(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		board string
		team  Mark
		want  [2]int // x, y
	}{
		{"x wins row rather than block", "xx./oo./...", X, [2]int{2, 0}},
		{"o wins column rather than block", "xo./xo./..x", O, [2]int{1, 2}},
		{"x wins diagonal", "x.o/.x./o..", X, [2]int{2, 2}},
		{"o wins anti-diagonal", "x.o/xo./.x.", O, [2]int{0, 2}},
		{"x wins on the last square", "oxx/xxo/o.o", X, [2]int{1, 2}},
		{"o blocks row", "xx./.o./...", O, [2]int{2, 0}},
		{"x blocks column", "xo./.o./..x", X, [2]int{1, 2}},
		{"o blocks diagonal", "x.o/.x./...", O, [2]int{2, 2}},
		{"x blocks anti-diagonal", "x.o/.o./..x", X, [2]int{0, 2}},
		{"o blocks bottom row", ".../.o./xx.", O, [2]int{2, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := board(t, tt.board)
			for seed := range uint64(20) {
				x, y, ok := BestMove(b, tt.team, Hard, rand.New(rand.NewPCG(seed, 0)))
				if got := [2]int{x, y}; !ok || got != tt.want {
					t.Fatalf("seed %d: BestMove(%s, %v, hard) = %v, %v; want %v, true", seed, tt.board, tt.team, got, ok, tt.want)
				}
			}
		})
	}
}

// TestHardVsHard plays the bot against itself: every game is a draw, and the
// random tie-breaks make the games differ.
func TestHardVsHard(t *testing.T) {
	t.Parallel()
	const games = 500
	distinct := map[Board]bool{}
	for seed := range uint64(games) {
		rng := rand.New(rand.NewPCG(seed, 7))
		g := play(t)
		var moves []Move
		for !g.Status.Over() {
			x, y, ok := BestMove(g.Board, g.Turn(), Hard, rng)
			if !ok {
				t.Fatalf("seed %d: BestMove(%s, %v, hard) not ok", seed, show(g.Board), g.Turn())
			}
			m := Move{X: x, Y: y, Team: g.Turn()}
			if err := g.Play(m); err != nil {
				t.Fatalf("seed %d: move %+v after %v: %v", seed, m, moves, err)
			}
			moves = append(moves, m)
		}
		if g.Status != FinishedDraw {
			t.Fatalf("seed %d: got %v won by %v after %v, want a draw", seed, g.Status, g.Winner, moves)
		}
		distinct[g.Board] = true
	}
	// A final board does not record the order of moves, so this undercounts distinct games.
	if got, want := len(distinct), 10; got < want {
		t.Errorf("%d games ended on %d distinct boards, want at least %d", games, got, want)
	}
	t.Logf("%d hard-vs-hard games all drawn, on %d distinct final boards", games, len(distinct))
}

// TestEasyPlaysEmptySquares plays Easy on many random positions in progress.
func TestEasyPlaysEmptySquares(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 4))
	for n := range 5000 {
		// A random game cut short at a random point; restart if it ended.
		g := play(t)
		for range rng.IntN(Size * Size) {
			x, y, _ := BestMove(g.Board, g.Turn(), Easy, rng)
			if err := g.Play(Move{X: x, Y: y, Team: g.Turn()}); err != nil {
				t.Fatalf("position %d: %v", n, err)
			}
			if g.Status.Over() {
				g = play(t)
			}
		}
		x, y, ok := BestMove(g.Board, g.Turn(), Easy, rng)
		if !ok || x < 0 || x >= Size || y < 0 || y >= Size || g.Board.At(x, y) != Empty {
			t.Fatalf("BestMove(%s, %v, easy) = %d, %d, %v; want an empty square", show(g.Board), g.Turn(), x, y, ok)
		}
	}
}

// TestEasyIsUniform draws many moves on a few boards: every empty square comes up
// about equally often, and no filled square ever does.
func TestEasyIsUniform(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		board string
	}{
		{"empty", ".../.../..."},
		{"one each", "x../.o./..."},
		{"two left", "xox/oxo/..o"},
		{"one left", "xox/oxo/.xo"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := board(t, tt.board)
			empties := 0
			for _, m := range b {
				if m == Empty {
					empties++
				}
			}
			// With 2000 draws a square, 15% either way is about 5 standard deviations.
			const perSquare = 2000
			rng := rand.New(rand.NewPCG(5, 6))
			var counts [Size * Size]int
			for range perSquare * empties {
				x, y, ok := BestMove(b, X, Easy, rng)
				if !ok {
					t.Fatalf("BestMove(%s, x, easy) not ok", tt.board)
				}
				counts[Index(x, y)]++
			}
			for i, m := range b {
				lo, hi := perSquare*85/100, perSquare*115/100
				if m != Empty {
					lo, hi = 0, 0
				}
				if got := counts[i]; got < lo || got > hi {
					t.Errorf("square %d (%v) chosen %d times, want %d to %d", i, m, got, lo, hi)
				}
			}
		})
	}
}

// TestNoMove checks that BestMove refuses when there is nothing to play or its
// inputs are not valid, at both levels.
func TestNoMove(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		board string
		team  Mark
		lvls  []Level
	}{
		{"full draw", "xox/xoo/oxx", X, []Level{Easy, Hard}},
		{"full draw o", "xox/xoo/oxx", O, []Level{Easy, Hard}},
		{"x won", "xxx/oo./...", O, []Level{Easy, Hard}},
		{"x won, x to move", "xxx/oo./...", X, []Level{Easy, Hard}},
		{"o won column", "xo./xo./.ox", X, []Level{Easy, Hard}},
		{"full and won", "xxx/oox/oxo", O, []Level{Easy, Hard}},
		{"no team", ".../.../...", Empty, []Level{Easy, Hard}},
		{"bad team", ".../.../...", Mark(3), []Level{Easy, Hard}},
		{"bad level", ".../.../...", X, []Level{Level(2), Level(255)}},
		{"bad mark", "?../.../...", X, []Level{Easy, Hard}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := board(t, tt.board)
			for _, lvl := range tt.lvls {
				x, y, ok := BestMove(b, tt.team, lvl, rand.New(rand.NewPCG(1, 1)))
				if ok || x != 0 || y != 0 {
					t.Errorf("BestMove(%s, %v, %v) = %d, %d, %v; want 0, 0, false", tt.board, tt.team, lvl, x, y, ok)
				}
			}
		})
	}
}

// TestNilRand checks that a nil rng falls back to math/rand/v2.
func TestNilRand(t *testing.T) {
	t.Parallel()
	b := board(t, "x../.o./...")
	for _, lvl := range []Level{Easy, Hard} {
		for range 100 {
			x, y, ok := BestMove(b, X, lvl, nil)
			if !ok || b.At(x, y) != Empty {
				t.Fatalf("BestMove(nil rng, %v) = %d, %d, %v; want an empty square", lvl, x, y, ok)
			}
		}
		lo, hi := lvl.delayRange()
		if d := lvl.Delay(nil); d < lo || d > hi {
			t.Errorf("%v.Delay(nil) = %v, want %v to %v", lvl, d, lo, hi)
		}
	}
}

func TestLevelSpelling(t *testing.T) {
	t.Parallel()
	for _, l := range []Level{Easy, Hard} {
		got, err := ParseLevel(l.String())
		if err != nil || got != l {
			t.Errorf("ParseLevel(%q) = %v, %v; want %v, nil", l.String(), got, err, l)
		}
	}
	if got, want := Easy.String()+","+Hard.String(), "easy,hard"; got != want {
		t.Errorf("got spellings %q, want %q", got, want)
	}
	if got, want := Level(9).String(), "level(9)"; got != want {
		t.Errorf("Level(9).String() = %q, want %q", got, want)
	}
	for _, s := range []string{"", "medium", "Easy", "HARD", " hard", "level(9)"} {
		if _, err := ParseLevel(s); !errors.Is(err, ErrBadLevel) {
			t.Errorf("ParseLevel(%q) = %v, want ErrBadLevel", s, err)
		}
	}
}

func TestDelay(t *testing.T) {
	t.Parallel()
	tests := []struct {
		lvl    Level
		lo, hi time.Duration
	}{
		{Easy, 300 * time.Millisecond, 800 * time.Millisecond},
		{Hard, 500 * time.Millisecond, 1200 * time.Millisecond},
		{Level(9), 300 * time.Millisecond, 800 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.lvl.String(), func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(8, 9))
			least, most := time.Duration(1<<63-1), time.Duration(0)
			for range 10000 {
				d := tt.lvl.Delay(rng)
				if d < tt.lo || d > tt.hi {
					t.Fatalf("Delay = %v, want %v to %v", d, tt.lo, tt.hi)
				}
				least, most = min(least, d), max(most, d)
			}
			// Uniform draws fill the range: the extremes of 10,000 land within 1% of the bounds.
			if slack := (tt.hi - tt.lo) / 100; least > tt.lo+slack || most < tt.hi-slack {
				t.Errorf("Delay ranged %v to %v, want close to %v to %v", least, most, tt.lo, tt.hi)
			}
		})
	}
}

// FuzzBestMove feeds arbitrary boards, legal or not, with either team and any
// level: BestMove refuses exactly when it should, plays only empty squares, and
// at Hard plays a move as good as the oracle's best.
func FuzzBestMove(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0}, uint8(1), uint8(1), uint64(1))
	f.Add([]byte{1, 1, 0, 2, 2, 0, 0, 0, 0}, uint8(2), uint8(1), uint64(2))
	f.Add([]byte{1, 1, 1, 1, 1, 0, 0, 0, 0}, uint8(2), uint8(1), uint64(3)) // X has five, O none
	f.Add([]byte{1, 2, 1, 1, 2, 2, 2, 1, 0}, uint8(1), uint8(0), uint64(4))
	f.Add([]byte{3, 0, 0, 0, 0, 0, 0, 0, 0}, uint8(1), uint8(1), uint64(5))
	f.Add([]byte{1, 1, 1, 2, 2, 0, 0, 0, 0}, uint8(2), uint8(1), uint64(6))
	f.Fuzz(func(t *testing.T, cells []byte, team, lvl uint8, seed uint64) {
		var b Board
		valid := team == uint8(X) || team == uint8(O)
		valid = valid && (Level(lvl) == Easy || Level(lvl) == Hard)
		for i := range b {
			if i < len(cells) {
				b[i] = Mark(cells[i] % 4)
			}
			valid = valid && b[i] <= O
		}
		w, _ := b.Winner()
		valid = valid && w == Empty && !b.Full()
		x, y, ok := BestMove(b, Mark(team), Level(lvl), rand.New(rand.NewPCG(seed, 0)))
		if ok != valid {
			t.Fatalf("BestMove(%s, %v, %v) ok = %v, want %v", show(b), Mark(team), Level(lvl), ok, valid)
		}
		switch {
		case !ok:
			if x != 0 || y != 0 {
				t.Fatalf("BestMove(%s, %v, %v) = %d, %d, false; want 0, 0", show(b), Mark(team), Level(lvl), x, y)
			}
		case Level(lvl) == Hard:
			checkOptimal(t, oracle{}, b, Mark(team), x, y)
		case x < 0 || x >= Size || y < 0 || y >= Size || b.At(x, y) != Empty:
			t.Fatalf("BestMove(%s, %v, easy) = %d, %d; want an empty square", show(b), Mark(team), x, y)
		}
	})
}

func BenchmarkBestMoveHard(b *testing.B) {
	tests := []struct {
		name  string
		board string
		team  Mark
	}{
		{"empty", ".../.../...", X},
		{"mid-game", "x.o/.x./...", O},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			bd := board(b, tt.board)
			rng := rand.New(rand.NewPCG(1, 2))
			b.ReportAllocs()
			for b.Loop() {
				if _, _, ok := BestMove(bd, tt.team, Hard, rng); !ok {
					b.Fatal("no move")
				}
			}
		})
	}
}

// BenchmarkSolveAll measures the one-off cost, paid when the package is
// initialised, of solving every position.
func BenchmarkSolveAll(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if t := solveAll(); t[0][0] != 0 {
			b.Fatalf("empty board scores %d for x, want 0 (a draw)", t[0][0])
		}
	}
}

// TestWonMatchesLines checks won's spelled-out masks against Lines and Winner on
// every set of squares.
func TestWonMatchesLines(t *testing.T) {
	t.Parallel()
	for mask := range uint16(1 << (Size * Size)) {
		var b Board
		for i := range b {
			if mask&(1<<i) != 0 {
				b[i] = X
			}
		}
		w, _ := b.Winner()
		if got, want := won(mask), w == X; got != want {
			t.Errorf("won(%09b) = %v, want %v", mask, got, want)
		}
	}
}
