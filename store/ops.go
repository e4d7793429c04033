package store

import (
	"time"

	"github.com/tictac/tictac/game"
)

// The changes a game goes through, as pure functions of the game. Every store
// applies them the same way: read the game, call one, write it back only if
// nobody wrote it in between (Version). A returned error means no change.

// slot returns the index of player's team in Away and Rematch, or -1.
func (g *Game) slot(player string) int {
	switch g.Team(player) {
	case game.X:
		return 0
	case game.O:
		return 1
	}
	return -1
}

// PlayMove fills square (x, y) for player. A moveID already in the history
// returns ErrDuplicateMove and changes nothing. Other errors: ErrNotPlayer,
// or the game package's refusals.
func (g *Game) PlayMove(player string, x, y int, moveID string, now time.Time) error {
	team := g.Team(player)
	if team == game.Empty {
		return ErrNotPlayer
	}
	if moveID != "" {
		for _, m := range g.History {
			if m.ID == moveID && m.Team == team {
				return ErrDuplicateMove
			}
		}
	}
	if err := g.Play(game.Move{X: x, Y: y, Team: team}); err != nil {
		return err
	}
	g.History = append(g.History, Move{X: x, Y: y, Team: team, At: now, ID: moveID})
	switch g.Status {
	case game.Finished:
		g.Ended, g.Reason = now, "line"
	case game.FinishedDraw:
		g.Ended, g.Reason = now, "draw"
	}
	return nil
}

// MoveNumber returns the move number at which team's moveID was applied, or
// 0. Each player's ids are its own (see PlayMove).
func (g *Game) MoveNumber(team game.Mark, moveID string) int {
	for i, m := range g.History {
		if moveID != "" && m.ID == moveID && m.Team == team {
			return i + 1
		}
	}
	return 0
}

// AcceptInvite puts player in a friend's game that waits with code, and
// starts it. An invite whose player went away and is past the deadline to
// come back is dead (ErrNotFound), as if Expire had run; one still within
// it starts with that player away, and the deadline holds.
func (g *Game) AcceptInvite(player, code string, now time.Time) error {
	if g.Status != game.Waiting || g.Invite == "" || g.Invite != code {
		return ErrNotFound
	}
	if g.Away[0] != 0 && now.UnixMilli() >= g.Away[0] {
		return ErrNotFound
	}
	if player == g.PlayerX {
		return ErrNotPlayer
	}
	g.PlayerO, g.Invite, g.Started = player, "", now
	return g.Start()
}

// Resign ends a game in progress: player's opponent wins. ErrNotPlayer, or
// game.ErrNotStarted / game.ErrOver.
func (g *Game) Resign(player string, now time.Time) error {
	return g.concede(player, "resign", now)
}

// Forfeit ends a game in progress whose player did not come back by deadline:
// the opponent wins. ErrNotAway if the player came back (or left with another
// deadline) since.
func (g *Game) Forfeit(player string, deadline int64, now time.Time) error {
	i := g.slot(player)
	if i < 0 {
		return ErrNotPlayer
	}
	if g.Away[i] != deadline || deadline == 0 {
		return ErrNotAway
	}
	return g.concede(player, "forfeit", now)
}

func (g *Game) concede(player, reason string, now time.Time) error {
	team := g.Team(player)
	if team == game.Empty {
		return ErrNotPlayer
	}
	if g.Status == game.Waiting {
		return game.ErrNotStarted
	}
	if err := g.Abandon(team.Other()); err != nil {
		return err
	}
	g.Ended, g.Reason, g.Away = now, reason, [2]int64{}
	return nil
}

// SetAway marks player as gone until deadline (unix milliseconds). Only a
// game in progress waits for a player, and a friend's game waiting for the
// friend (its invite link is out) waits for its own: other waiting games
// get game.ErrNotStarted, ended ones game.ErrOver.
func (g *Game) SetAway(player string, deadline int64) error {
	i := g.slot(player)
	if i < 0 {
		return ErrNotPlayer
	}
	switch {
	case g.Status == game.Waiting && g.Mode != ModeFriend:
		return game.ErrNotStarted
	case g.Status != game.InProgress && g.Status != game.Waiting:
		return game.ErrOver
	}
	g.Away[i] = deadline
	return nil
}

// expiring checks that g is a friend's game still waiting for the friend
// while its player is away with deadline: what Expire deletes. Otherwise
// ErrNotAway (the player came back, went away again with another deadline,
// or the friend came) or ErrNotPlayer.
func (g *Game) expiring(player string, deadline int64) error {
	i := g.slot(player)
	if i < 0 {
		return ErrNotPlayer
	}
	if g.Status != game.Waiting || deadline == 0 || g.Away[i] != deadline {
		return ErrNotAway
	}
	return nil
}

// SetBack marks player as present again. It returns ErrNotAway if it was.
func (g *Game) SetBack(player string) error {
	i := g.slot(player)
	if i < 0 {
		return ErrNotPlayer
	}
	if g.Away[i] == 0 {
		return ErrNotAway
	}
	g.Away[i] = 0
	return nil
}

// OfferRematch records player's offer of a rematch of a finished game. When
// both players have offered and no rematch exists yet, it sets Next to nextID
// and reports true: the caller then creates that game (see RematchOf).
func (g *Game) OfferRematch(player, nextID string) (bool, error) {
	i := g.slot(player)
	if i < 0 {
		return false, ErrNotPlayer
	}
	if g.Status != game.Finished && g.Status != game.FinishedDraw {
		return false, ErrNoRematch
	}
	g.Rematch[i] = true
	if g.Mode == ModeBot {
		g.Rematch = [2]bool{true, true} // the computer always wants another
	}
	if g.Rematch[0] && g.Rematch[1] && g.Next == "" {
		g.Next = nextID
		return true, nil
	}
	return false, nil
}

// RematchOf returns the game that follows g: the same players and mode with
// the teams swapped, in progress.
func RematchOf(g *Game, now time.Time) Game {
	n := Game{ID: g.Next, PlayerX: g.PlayerO, PlayerO: g.PlayerX, Game: game.New(), Mode: g.Mode, Level: g.Level,
		Created: now, Started: now}
	_ = n.Start()
	return n
}

// Watch adds delta (+1 or -1) to the spectators of g.
func (g *Game) Watch(delta int) {
	g.Spectators = max(0, g.Spectators+delta)
}

// Opponent returns the other player of player's game, or "".
func (g *Game) Opponent(player string) string {
	switch player {
	case g.PlayerX:
		return g.PlayerO
	case g.PlayerO:
		return g.PlayerX
	}
	return ""
}
