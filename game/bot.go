package game

import (
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"sync"
	"time"
)

// Level is how well the computer opponent plays. The zero value is Easy.
type Level uint8

// The levels, spelled on the wire as String returns.
const (
	// Easy plays a uniformly random empty square.
	Easy Level = iota
	// Hard plays perfectly: it never loses, and wins whenever the other side slips.
	Hard
)

// ErrBadLevel is returned by ParseLevel for a spelling it does not know.
var ErrBadLevel = errors.New("level must be easy or hard")

var levelNames = [...]string{"easy", "hard"}

// String returns the wire spelling, "easy" or "hard", or "level(n)" for an unknown level.
func (l Level) String() string {
	if int(l) < len(levelNames) {
		return levelNames[l]
	}
	return fmt.Sprintf("level(%d)", uint8(l))
}

// ParseLevel reads "easy" or "hard" back. It returns ErrBadLevel for anything else.
func ParseLevel(s string) (Level, error) {
	for i, n := range levelNames {
		if n == s {
			return Level(i), nil
		}
	}
	return 0, ErrBadLevel
}

// Think times, uniform between the bounds: long enough that the bot's answer does
// not land on the same frame as the human's move, with Hard "thinking" longer.
const (
	easyDelayMin, easyDelayMax = 300 * time.Millisecond, 800 * time.Millisecond
	hardDelayMin, hardDelayMax = 500 * time.Millisecond, 1200 * time.Millisecond
)

// delayRange returns the inclusive bounds of Delay; unknown levels get Easy's.
func (l Level) delayRange() (lo, hi time.Duration) {
	if l == Hard {
		return hardDelayMin, hardDelayMax
	}
	return easyDelayMin, easyDelayMax
}

// Delay returns a human-like think time to wait before the bot answers, drawn
// uniformly from rng: 300–800 ms for Easy (and unknown levels), 500–1200 ms for Hard,
// bounds included. A nil rng uses the goroutine-safe generator of math/rand/v2.
func (l Level) Delay(rng *rand.Rand) time.Duration {
	lo, hi := l.delayRange()
	return lo + time.Duration(int64N(rng, int64(hi-lo)+1))
}

// BestMove picks the square (column x, row y) that team should play on b at level lvl.
//
// Easy picks a uniformly random empty square. Hard plays perfectly, from any
// position, legal or not, with team to move: it never turns a drawn or won
// position into a loss, prefers the quickest win and the slowest loss, and breaks
// the remaining ties uniformly at random so that games vary.
//
// Randomness comes only from rng, so a seeded rng makes the choice reproducible;
// a nil rng uses the goroutine-safe generator of math/rand/v2. A *rand.Rand is not
// safe for concurrent use.
//
// ok is false, and x and y are 0, when there is no move to make: b has no empty
// square or a line is already won. It is also false when team is not X or O, lvl is
// not Easy or Hard, or b holds a mark other than Empty, X and O.
func BestMove(b Board, team Mark, lvl Level, rng *rand.Rand) (x, y int, ok bool) {
	if (team != X && team != O) || (lvl != Easy && lvl != Hard) {
		return 0, 0, false
	}
	p, valid := positionOf(b)
	if !valid || p.over() {
		return 0, 0, false
	}

	var best [Size * Size]int // candidate squares, as board indexes
	n := 0
	top := int8(minScore)
	for i := range best {
		if p.filled(i) {
			continue
		}
		v := int8(0) // Easy: every empty square ties
		if lvl == Hard {
			next, score, over := p.play(i, team)
			if !over {
				score = -scores()[next.key][team.Other()-1]
			}
			v = score
		}
		switch {
		case v > top:
			top, best[0], n = v, i, 1
		case v == top:
			best[n] = i
			n++
		}
	}
	i := best[0]
	if n > 1 {
		i = best[intN(rng, n)]
	}
	return i % Size, i / Size, true
}

// Scores are negamax values for the side to move: 0 for a draw with best play,
// 1+e for a win that leaves e squares empty, and -(1+e) for such a loss, so that
// maximising the score also picks the quickest win and the slowest loss.
// minScore is below any of them.
const minScore = -(Size*Size + 1)

// position is a board as bitmasks (bit i for square i), for the search, and as a key:
// the board read as a base-3 number whose digits are the marks (Empty 0, X 1, O 2).
type position struct {
	xs, os uint16
	key    int
}

// numKeys is the number of position keys, 3^9.
const numKeys = 19683

// pow3[i] is the weight of square i in a position's key.
var pow3 = [Size * Size]int{1, 3, 9, 27, 81, 243, 729, 2187, 6561}

// positionOf converts b. valid is false if b holds a mark other than Empty, X and O.
func positionOf(b Board) (p position, valid bool) {
	for i, m := range b {
		switch m {
		case X:
			p.xs |= 1 << i
		case O:
			p.os |= 1 << i
		case Empty:
			continue
		default:
			return position{}, false
		}
		p.key += int(m) * pow3[i]
	}
	return p, true
}

// filled reports whether square i holds a mark.
func (p position) filled(i int) bool { return (p.xs|p.os)&(1<<i) != 0 }

// over reports whether a line is won or the board is full.
func (p position) over() bool {
	return won(p.xs) || won(p.os) || p.xs|p.os == 1<<(Size*Size)-1
}

// play fills empty square i of p, which nobody has won, for side. When that ends
// the game, over is true and score is side's score; otherwise score is 0.
func (p position) play(i int, side Mark) (next position, score int8, over bool) {
	next = p
	next.key += int(side) * pow3[i]
	mine := &next.xs
	if side == O {
		mine = &next.os
	}
	*mine |= 1 << i
	empties := Size*Size - bits.OnesCount16(next.xs|next.os)
	switch {
	case won(*mine):
		return next, int8(1 + empties), true
	case empties == 0:
		return next, 0, true // a draw
	}
	return next, 0, false
}

// won reports whether the marks in mask fill one of Lines. The masks are spelled
// out because building them from Lines on each call made solving twice as slow.
func won(mask uint16) bool {
	const (
		row0, row1, row2 = 0b000_000_111, 0b000_111_000, 0b111_000_000
		col0, col1, col2 = 0b001_001_001, 0b010_010_010, 0b100_100_100
		diag, anti       = 0b100_010_001, 0b001_010_100
	)
	return mask&row0 == row0 || mask&row1 == row1 || mask&row2 == row2 ||
		mask&col0 == col0 || mask&col1 == col1 || mask&col2 == col2 ||
		mask&diag == diag || mask&anti == anti
}

// scoreTable holds, for every position key and side to move (X at 0, O at 1), the
// score of that position. Entries for positions that are over hold minScore.
type scoreTable [numKeys][2]int8

// scores is solved once, on the first hard move, and only read after:
// BestMove then costs nine lookups instead of a search of up to 550,000 nodes.
// Solving every key (39,366 positions, reachable or not) takes 3-12 ms, once
// per process: not at start-up, which the first page waits for.
var scores = sync.OnceValue(solveAll)

// solveAll fills a table by memoised negamax over every position that is not
// over, reachable in a real game or not, for both sides to move.
func solveAll() *scoreTable {
	t := new(scoreTable)
	for k := range t {
		t[k] = [2]int8{minScore, minScore}
	}
	// Enumerate the positions square by square rather than decode each key,
	// which took a third of the time.
	var fill func(i int, p position)
	fill = func(i int, p position) {
		if i == Size*Size {
			if !p.over() {
				t.solve(p, X)
				t.solve(p, O)
			}
			return
		}
		fill(i+1, p)
		fill(i+1, position{xs: p.xs | 1<<i, os: p.os, key: p.key + int(X)*pow3[i]})
		fill(i+1, position{xs: p.xs, os: p.os | 1<<i, key: p.key + int(O)*pow3[i]})
	}
	fill(0, position{})
	return t
}

// solve returns the score of p, which is not over, for side to move, memoising it
// and every position below it in t.
func (t *scoreTable) solve(p position, side Mark) int8 {
	if v := t[p.key][side-1]; v != minScore {
		return v
	}
	top := int8(minScore)
	for i := range Size * Size {
		if p.filled(i) {
			continue
		}
		next, score, over := p.play(i, side)
		if !over {
			score = -t.solve(next, side.Other())
		}
		top = max(top, score)
	}
	t[p.key][side-1] = top
	return top
}

// intN returns a uniform int in [0, n) from rng, or from math/rand/v2 when rng is nil.
func intN(rng *rand.Rand, n int) int {
	if rng == nil {
		return rand.IntN(n)
	}
	return rng.IntN(n)
}

// int64N returns a uniform int64 in [0, n) from rng, or from math/rand/v2 when rng is nil.
func int64N(rng *rand.Rand, n int64) int64 {
	if rng == nil {
		return rand.Int64N(n)
	}
	return rng.Int64N(n)
}
