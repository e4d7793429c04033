// Package game holds the rules of tic-tac-toe and the computer opponent, with no I/O.
package game

import (
	"errors"
	"fmt"
)

// Mark is what a cell holds: Empty, X or O. X and O double as the two teams.
type Mark uint8

// The marks. Empty is the zero value so that a new Board is empty.
const (
	Empty Mark = iota
	X
	O
)

// String returns "x", "o" or "" for Empty, the spelling the wire protocol uses.
func (m Mark) String() string {
	switch m {
	case X:
		return "x"
	case O:
		return "o"
	}
	return ""
}

// Other returns the opposing team: O for X, X for O, and Empty for Empty.
func (m Mark) Other() Mark {
	switch m {
	case X:
		return O
	case O:
		return X
	}
	return Empty
}

// ParseMark reads "x" or "o". It returns ErrBadTeam for anything else.
func ParseMark(s string) (Mark, error) {
	switch s {
	case "x", "X":
		return X, nil
	case "o", "O":
		return O, nil
	}
	return Empty, ErrBadTeam
}

// Status is where a game stands. The zero value is Waiting.
type Status uint8

// The statuses, spelled on the wire as String returns.
const (
	Waiting Status = iota
	InProgress
	Finished
	FinishedDraw
	Abandoned
)

var statusNames = [...]string{"waiting", "in-progress", "finished", "finished-draw", "abandoned"}

// String returns the wire spelling: "waiting", "in-progress", "finished", "finished-draw" or "abandoned".
func (s Status) String() string {
	if int(s) < len(statusNames) {
		return statusNames[s]
	}
	return fmt.Sprintf("status(%d)", uint8(s))
}

// ParseStatus reads a wire spelling back. It returns ErrBadStatus for anything else.
func ParseStatus(s string) (Status, error) {
	for i, n := range statusNames {
		if n == s {
			return Status(i), nil
		}
	}
	return 0, ErrBadStatus
}

// Over reports whether no more moves can be made.
func (s Status) Over() bool { return s >= Finished }

// Errors returned by Play and Abandon. Callers branch on them with errors.Is.
var (
	ErrNotStarted  = errors.New("game has not started")
	ErrOver        = errors.New("game is over")
	ErrNotYourTurn = errors.New("not your turn")
	ErrOffBoard    = errors.New("square is off the board")
	ErrOccupied    = errors.New("square is already filled")
	ErrBadTeam     = errors.New("team must be x or o")
	ErrBadStatus   = errors.New("unknown game status")
)

// Size is the width and height of the board.
const Size = 3

// Board holds the nine cells, indexed by Index(x, y).
type Board [Size * Size]Mark

// Index returns the position of column x, row y in a Board.
func Index(x, y int) int { return y*Size + x }

// At returns the mark at column x, row y.
func (b *Board) At(x, y int) Mark { return b[Index(x, y)] }

// Full reports whether no cell is empty.
func (b *Board) Full() bool {
	for _, m := range b {
		if m == Empty {
			return false
		}
	}
	return true
}

// Lines are the eight ways to win, as board indexes.
var Lines = [8][3]int{
	{0, 1, 2}, {3, 4, 5}, {6, 7, 8}, // rows
	{0, 3, 6}, {1, 4, 7}, {2, 5, 8}, // columns
	{0, 4, 8}, {2, 4, 6}, // diagonals
}

// Winner returns the mark that holds a whole line and that line's index in Lines,
// or Empty and -1 when nobody does.
func (b *Board) Winner() (Mark, int) {
	for i, l := range Lines {
		if m := b[l[0]]; m != Empty && m == b[l[1]] && m == b[l[2]] {
			return m, i
		}
	}
	return Empty, -1
}

// Move is one filled square.
type Move struct {
	X, Y int
	Team Mark
}

// Game is the state of one game: its board, whose turn it is and how it ended.
// The zero value is a waiting game with an empty board.
type Game struct {
	Board  Board
	Status Status
	// Moves counts the moves played; it is the compare-and-set version of the game.
	Moves int
	// Winner is X or O once a game is Finished, or the team left standing when
	// a game is Abandoned with a winner (a forfeit). Empty otherwise.
	Winner Mark
	// Line is the index in Lines of the winning line, or -1.
	Line int
}

// New returns a game waiting for its second player.
func New() Game { return Game{Line: -1} }

// Start begins play: X moves first. It returns ErrOver if the game already ended.
func (g *Game) Start() error {
	if g.Status != Waiting {
		return ErrOver
	}
	g.Status = InProgress
	return nil
}

// Turn returns the team to move, or Empty when the game is not in progress.
func (g *Game) Turn() Mark {
	if g.Status != InProgress {
		return Empty
	}
	if g.Moves%2 == 0 {
		return X
	}
	return O
}

// Play fills square (x, y) for team. On error nothing changes; the error is one of
// ErrNotStarted, ErrOver, ErrBadTeam, ErrNotYourTurn, ErrOffBoard or ErrOccupied.
func (g *Game) Play(m Move) error {
	switch {
	case g.Status == Waiting:
		return ErrNotStarted
	case g.Status.Over():
		return ErrOver
	case m.Team != X && m.Team != O:
		return ErrBadTeam
	case m.Team != g.Turn():
		return ErrNotYourTurn
	case m.X < 0 || m.X >= Size || m.Y < 0 || m.Y >= Size:
		return ErrOffBoard
	case g.Board.At(m.X, m.Y) != Empty:
		return ErrOccupied
	}
	g.Board[Index(m.X, m.Y)] = m.Team
	g.Moves++
	if w, line := g.Board.Winner(); w != Empty {
		g.Status, g.Winner, g.Line = Finished, w, line
	} else if g.Board.Full() {
		g.Status = FinishedDraw
	}
	return nil
}

// Abandon ends a game that will not be finished. winner is the team awarded the
// game (Empty for none). It returns ErrOver if the game already ended.
func (g *Game) Abandon(winner Mark) error {
	if g.Status.Over() {
		return ErrOver
	}
	g.Status, g.Winner = Abandoned, winner
	return nil
}
