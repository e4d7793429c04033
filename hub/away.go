package hub

import (
	"context"
	"errors"
	"time"

	"github.com/tictac/tictac/game"
	"github.com/tictac/tictac/store"
)

// A player whose socket closes mid-game is marked away in the store, with a
// deadline; every replica in the game hears of it and forfeits the player at
// the deadline unless the player is back (marked so in the store) by then.
// These writes are the server's own, with no client to try again, so a
// write that the store fails (down, or too slow) is tried again here, in the
// background: a mark lost would leave the opponent waiting for a move with
// no countdown and the game in progress for ever, and a player back whose
// return is not stored would lose at the deadline. A write that failed may
// have landed all the same (its answer lost): a later attempt that finds it
// done tells the game what the lost answer would have. Attempts pending when
// the replica stops are lost with it.

// The wait between a background write that the store failed and its next
// attempt doubles from retryMin up to retryMax (retryBackMax for a player's
// return, which must land before the deadline, at most a grace period
// away); the write is given up on retryFor after its first failure.
const (
	retryMin     = 500 * time.Millisecond
	retryMax     = 30 * time.Second
	retryBackMax = time.Second
	retryFor     = 10 * time.Minute
)

// backoff paces the attempts of one background write: the wait before the
// next, and when the first failed. The zero backoff is a first attempt.
type backoff struct {
	wait, max time.Duration
	first     time.Time
}

// next returns the backoff after a failed attempt at now, or false once the
// write is to be given up on.
func (b backoff) next(now time.Time) (backoff, bool) {
	if b.max == 0 {
		b.max = retryMax
	}
	switch {
	case b.first.IsZero():
		return backoff{wait: min(retryMin, b.max), max: b.max, first: now}, true
	case now.Sub(b.first) >= retryFor:
		return b, false
	}
	return backoff{wait: min(2*b.wait, b.max), max: b.max, first: b.first}, true
}

// refusals are the errors by which a game or the store refuse a change:
// final answers, which no later attempt would change.
var refusals = []error{
	store.ErrNotFound, store.ErrNotPlayer, store.ErrNotAway, store.ErrNoRematch, store.ErrDuplicateMove, store.ErrClosed,
	game.ErrNotStarted, game.ErrOver, game.ErrNotYourTurn, game.ErrOffBoard, game.ErrOccupied, game.ErrBadTeam, game.ErrBadStatus,
	context.Canceled, errMarked,
}

// errMarked refuses a later attempt at an away mark: the player is marked
// away already, by an earlier attempt whose answer was lost or by another
// leave since.
var errMarked = errors.New("already marked away")

// storeFailed reports whether err is the store failing rather than a game or
// the store refusing the change: what a background write tries again.
func storeFailed(err error) bool {
	if err == nil {
		return false
	}
	for _, r := range refusals {
		if errors.Is(err, r) {
			return false
		}
	}
	var ce *clientError
	return !errors.As(err, &ce)
}

// retryLater runs attempt in the background after the backoff that follows
// b, unless a task with key is pending (which goes on instead), or logs that
// the write is given up on.
func (h *Hub) retryLater(key, what, id string, err error, b backoff, attempt func(ctx context.Context, b backoff)) {
	first := b.first.IsZero()
	b, ok := b.next(h.opt.Now())
	if !ok {
		h.log.Error(what+": the store failed it for too long; given up", "game", id, "since", b.first, "err", err)
		return
	}
	armed := h.bg.after(key, b.wait, func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, h.opt.StoreTimeout)
		defer cancel()
		attempt(ctx, b)
	})
	switch {
	case armed && first:
		h.log.Warn(what+": the store failed it; trying again", "game", id, "in", b.wait, "err", err)
	case armed:
		h.log.Debug(what+": the store failed it; trying again", "game", id, "in", b.wait, "err", err)
	}
}

// markAway marks player, of team, away from game id until the grace period
// from now, tells everyone in the game (their replicas arm the forfeit, see
// onAway) and arms it here too, for a game that nobody else hears of
// (against the computer, or left by both). b is the backoff of the attempts
// so far: a later attempt is dropped if the player is back here, and one
// that finds the player marked away already tells the game of that mark.
func (h *Hub) markAway(ctx context.Context, id string, team game.Mark, player string, b backoff) {
	deadline := h.opt.Now().Add(h.opt.Grace).UnixMilli()
	g, err := h.store.Update(ctx, id, func(g *store.Game) error {
		if !b.first.IsZero() && g.Away[team-1] != 0 {
			return errMarked
		}
		return g.SetAway(player, deadline)
	})
	if errors.Is(err, errMarked) {
		deadline, err = g.Away[team-1], nil // g is the game as stored
	}
	switch {
	case err == nil:
		h.log.Info("player away", "game", id, "team", team.String(), "deadline", time.UnixMilli(deadline))
		h.publish(ctx, &g, framePlayerAway(id, team, deadline, h.opt.Now().UnixMilli()))
		h.armForfeit(id, team, deadline)
	case storeFailed(err):
		h.markAwayLater(id, team, player, err, b)
	case !errors.Is(err, game.ErrOver) && !errors.Is(err, store.ErrNotFound):
		h.log.Warn("mark player away", "game", id, "err", err)
	}
}

// markAwayLater tries markAway again after the write that err failed.
func (h *Hub) markAwayLater(id string, team game.Mark, player string, err error, b backoff) {
	h.retryLater("away/"+id+"/"+team.String(), "mark player away", id, err, b, func(ctx context.Context, b backoff) {
		if !h.presentHere(id, team) {
			h.markAway(ctx, id, team, player, b)
		}
	})
}

// markBackSoon marks team's player back in game id, in the background, if a
// socket of this replica plays team there (see markBack).
func (h *Hub) markBackSoon(id string, team game.Mark) {
	h.bg.after("", 0, func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, h.opt.StoreTimeout)
		defer cancel()
		h.markBack(ctx, id, team, backoff{})
	})
}

// markBack marks team's player back in game id and tells the game, while a
// socket of this replica plays team there. b is the backoff of the attempts
// so far; one chain of attempts runs per player and game here at a time.
func (h *Hub) markBack(ctx context.Context, id string, team game.Mark, b backoff) {
	if !h.presentHere(id, team) {
		return
	}
	g, err := h.store.Update(ctx, id, func(g *store.Game) error { return g.SetBack(playerOfTeam(g, team)) })
	switch {
	case err == nil && g.Status == game.InProgress: // a waiting game has nobody to tell
		h.publish(ctx, &g, framePlayerBack(id, team))
	case storeFailed(err):
		b.max = retryBackMax
		h.retryLater("back/"+id+"/"+team.String(), "mark player back", id, err, b, func(ctx context.Context, b backoff) {
			h.markBack(ctx, id, team, b)
		})
	}
}

// renewAway starts team's grace period in game id over if the player is
// still away with deadline. forfeit does it in place of a forfeit that the
// store failed: by the time the store takes writes again, the player may
// have come back to another replica whose write saying so the store failed
// too. That replica hears the new playerAway and marks the player back
// (onAway); otherwise the forfeit follows the new deadline. A friend's game
// still waiting for the friend gets no new grace: its invite expires. b is
// the backoff of the attempts so far.
func (h *Hub) renewAway(ctx context.Context, id string, team game.Mark, deadline int64, b backoff) {
	if h.presentHere(id, team) {
		h.markBack(ctx, id, team, backoff{})
		return
	}
	next := h.opt.Now().Add(h.opt.Grace).UnixMilli()
	var stored int64
	g, err := h.store.Update(ctx, id, func(g *store.Game) error {
		switch stored = g.Away[team-1]; {
		case stored != deadline:
			return store.ErrNotAway
		case g.Status == game.Waiting:
			return game.ErrNotStarted
		}
		return g.SetAway(playerOfTeam(g, team), next)
	})
	switch {
	case err == nil:
		h.log.Info("player away, grace renewed after the store failed a forfeit", "game", id, "team", team.String(), "deadline", time.UnixMilli(next))
		h.publish(ctx, &g, framePlayerAway(id, team, next, h.opt.Now().UnixMilli()))
		h.armForfeit(id, team, next)
	case errors.Is(err, game.ErrNotStarted):
		h.expireInvite(ctx, id, playerOfTeam(&g, team), deadline)
	case errors.Is(err, store.ErrNotAway) && stored != 0:
		h.armForfeit(id, team, stored) // renewed elsewhere, or by an attempt whose answer was lost
	case errors.Is(err, store.ErrNotAway) && g.Status == game.Abandoned && g.Reason == "forfeit" && g.Winner == team.Other():
		// The forfeit landed, its answer lost, or another replica's did:
		// the game hears of its end (again, at worst).
		h.publish(ctx, &g, frameStatus(&g), frameWinner(&g))
	case storeFailed(err):
		h.retryLater(forfeitKey(id, team, deadline), "renew grace after a failed forfeit", id, err, b, func(ctx context.Context, b backoff) {
			h.renewAway(ctx, id, team, deadline, b)
		})
	}
}

// deserted reports whether game id has a room on this replica in which no
// live socket plays team: its sockets closed, and are on their way out.
func (h *Hub) deserted(id string, team game.Mark) bool {
	h.mu.Lock()
	r := h.rooms[id]
	h.mu.Unlock()
	return r != nil && !r.present(team)
}

// presentHere reports whether a live socket of this replica plays team in
// game id.
func (h *Hub) presentHere(id string, team game.Mark) bool {
	h.mu.Lock()
	r := h.rooms[id]
	h.mu.Unlock()
	return r != nil && r.present(team)
}

// watchOpener looks after game g, started on this replica by its second
// player joining its opener (X) who waited in it: should X neither play nor
// be marked away within the grace period, X is marked away, which starts
// the countdown to a forfeit. X's socket may be gone with nobody left to
// say so: its replica died while X waited, or the page closed and the
// game's cancellation was lost. A replica where X is present marks X back
// at once (see onAway), so an opener who is there but slow loses nothing.
func (h *Hub) watchOpener(g store.Game) {
	id, player := g.ID, g.PlayerX
	if h.presentHere(id, game.X) {
		// Here, where a socket that closes marks its player away: nothing
		// to watch (so a replica that pairs its own players, one alone
		// above all, arms no timer a game).
		return
	}
	h.bg.after("opener/"+id, h.opt.Grace, func(ctx context.Context) {
		if h.presentHere(id, game.X) {
			return
		}
		ctx, cancel := context.WithTimeout(ctx, h.opt.StoreTimeout)
		defer cancel()
		cur, err := h.store.Game(ctx, id)
		if err != nil || cur.Status != game.InProgress || cur.Moves > 0 || cur.Away[0] != 0 {
			return
		}
		h.log.Info("opener silent since the game started: marked away", "game", id)
		h.markAway(ctx, id, game.X, player, backoff{})
	})
}
