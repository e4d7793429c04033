// Package store keeps games and live stats, embedded in one file (Bolt) or in RethinkDB.
package store

import (
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/tictac/tictac/game"
)

// Errors returned by the stores. Rule violations come back as the game package's
// errors (game.ErrNotYourTurn and the like), wrapped.
var (
	// ErrNotFound means no game has that id.
	ErrNotFound = errors.New("game not found")
	// ErrNotPlayer means the player does not play in that game.
	ErrNotPlayer = errors.New("not a player in this game")
	// ErrConflict means the game changed under a compare-and-set; reload and retry.
	ErrConflict = errors.New("game changed concurrently")
	// ErrClosed means the store was closed.
	ErrClosed = errors.New("store closed")
	// ErrDuplicateMove means the move's id was already applied; the game
	// returned with it is unchanged.
	ErrDuplicateMove = errors.New("move already applied")
	// ErrNotAway means the player is not away (any more) with that deadline.
	ErrNotAway = errors.New("player is not away")
	// ErrNoRematch means a rematch cannot be offered in that game.
	ErrNoRematch = errors.New("no rematch for this game")
)

// BotPlayer is the player id of the computer opponent. Human ids are hex
// digests, so they never collide with it.
const BotPlayer = "bot"

// Mode is how a game was made.
type Mode uint8

// The modes, spelled "quick", "friend" and "bot".
const (
	ModeQuick Mode = iota
	ModeFriend
	ModeBot
)

var modeNames = [...]string{"quick", "friend", "bot"}

// String returns the mode's spelling.
func (m Mode) String() string {
	if int(m) < len(modeNames) {
		return modeNames[m]
	}
	return fmt.Sprintf("mode(%d)", uint8(m))
}

func parseMode(s string) (Mode, error) {
	if s == "" {
		return ModeQuick, nil
	}
	for i, n := range modeNames {
		if n == s {
			return Mode(i), nil
		}
	}
	return 0, fmt.Errorf("unknown mode %q", s)
}

// Move is one move of a game's history.
type Move struct {
	X, Y int
	Team game.Mark
	At   time.Time
	// ID is the client's id for the move, so that a resent move is applied once.
	ID string
}

// Game is a stored game: its players, its state and its history.
type Game struct {
	ID string
	// PlayerX and PlayerO are the players' ids; PlayerO is empty while waiting.
	PlayerX, PlayerO string
	game.Game
	History []Move
	Created time.Time
	Started time.Time // zero while waiting
	Ended   time.Time // zero until the game is over

	Mode   Mode
	Level  string // the bot's level in ModeBot games
	Invite string // the invite code of a waiting ModeFriend game
	// Reason says how a game ended: "line", "draw", "forfeit" or "resign".
	Reason string
	// Away holds, for X then O, the unix millisecond deadline by which a
	// player whose socket dropped must be back; 0 while present.
	Away [2]int64
	// Rematch says, for X then O, who offered a rematch; Next is the id of
	// the rematch once both did.
	Rematch    [2]bool
	Next       string
	Spectators int
	// Version counts the writes of the game; stores write a game only if it
	// still has the version they read (compare-and-set).
	Version int64
}

// Team returns the team player plays in g, or game.Empty if it does not play.
func (g *Game) Team(player string) game.Mark {
	switch {
	case player == "":
		return game.Empty
	case player == g.PlayerX:
		return game.X
	case player == g.PlayerO:
		return game.O
	}
	return game.Empty
}

// NewID returns a random game id: 12 lowercase base32 characters (60 bits).
func NewID() string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return strings.ToLower(base32.StdEncoding.EncodeToString(b[:]))[:12]
}

// NewInvite returns a random invite code: 10 characters of [a-z2-7] (50 bits).
func NewInvite() string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return strings.ToLower(base32.StdEncoding.EncodeToString(b[:]))[:10]
}

// Stat names one live statistic.
type Stat int

// The statistics. Counters only grow; GamesInProgress and PlayersOnline are gauges.
const (
	TotalGames Stat = iota
	TotalMoves
	WonByX
	WonByO
	TiedGames
	AbandonedGames
	GamesInProgress
	PlayersOnline
	NumStats
)

var statNames = [NumStats]string{"totalGames", "totalMoves", "wonByX", "wonByO", "tiedGames", "abandonedGames", "gamesInProgress", "playersOnline"}

// String returns the stat's id on the wire and in the database, e.g. "totalGames".
func (s Stat) String() string {
	if s >= 0 && s < NumStats {
		return statNames[s]
	}
	return fmt.Sprintf("stat(%d)", int(s))
}

// ParseStat returns the Stat with that id, or false.
func ParseStat(id string) (Stat, bool) {
	for i, n := range statNames {
		if n == id {
			return Stat(i), true
		}
	}
	return 0, false
}

// Stats is one value per Stat.
type Stats [NumStats]int64

// delta returns what a game's change from before to after adds to the stats.
// A game counts in TotalGames from the moment it starts.
func delta(before, after *Game) Stats {
	var d Stats
	if before.Status == game.Waiting && after.Status != game.Waiting {
		d[TotalGames]++
		d[GamesInProgress]++
	}
	d[TotalMoves] += int64(after.Moves - before.Moves)
	if !before.Status.Over() && after.Status.Over() {
		d[GamesInProgress]--
		switch after.Status {
		case game.Finished:
			if after.Winner == game.X {
				d[WonByX]++
			} else {
				d[WonByO]++
			}
		case game.FinishedDraw:
			d[TiedGames]++
		case game.Abandoned:
			d[AbandonedGames]++
		}
	}
	return d
}

// Subscription delivers stats as they change. Only the latest value is kept:
// a slow reader skips intermediate values instead of blocking the store.
type Subscription struct {
	ch     chan Stats
	cancel func()
}

// C returns the channel of stats. It is closed when the subscription ends.
func (s *Subscription) C() <-chan Stats { return s.ch }

// Close ends the subscription. It is safe to call more than once.
func (s *Subscription) Close() { s.cancel() }

// feed fans stats out to subscriptions without ever blocking the writer.
type feed struct {
	mu     sync.Mutex
	subs   map[*Subscription]struct{}
	last   Stats
	closed bool // by closeAll: a later subscription is closed at once
}

func (f *feed) current() Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last
}

func (f *feed) publish(s Stats) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s == f.last {
		return
	}
	f.last = s
	for sub := range f.subs {
		offer(sub.ch, s)
	}
}

// offer replaces whatever is buffered in ch with s; ch has a buffer of one.
func offer(ch chan Stats, s Stats) {
	select {
	case <-ch:
	default:
	}
	select {
	case ch <- s:
	default:
	}
}

func (f *feed) subscribe() *Subscription {
	sub := &Subscription{ch: make(chan Stats, 1)}
	var once sync.Once
	sub.cancel = func() {
		once.Do(func() {
			f.mu.Lock()
			delete(f.subs, sub)
			close(sub.ch)
			f.mu.Unlock()
		})
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	sub.ch <- f.last
	if f.closed {
		// Subscribed as the store closed: it ends as the others did.
		once.Do(func() { close(sub.ch) })
		return sub
	}
	if f.subs == nil {
		f.subs = make(map[*Subscription]struct{})
	}
	f.subs[sub] = struct{}{}
	return sub
}

func (f *feed) closeAll() {
	f.mu.Lock()
	subs := f.subs
	f.subs, f.closed = nil, true
	f.mu.Unlock()
	for sub := range subs {
		sub.cancel()
	}
}

// Expected returns what g adds to the counters, by itself: what the stats
// must add up to over every stored game (PlayersOnline aside).
func Expected(g *Game) Stats {
	empty := Game{Game: game.New()}
	return delta(&empty, g)
}
