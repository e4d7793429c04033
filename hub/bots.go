package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/tictac/tictac/game"
	"github.com/tictac/tictac/store"
)

// background runs the hub's timed work: the computer's moves, the forfeits
// of players who do not come back, and the writes of those that the store
// failed, tried again (see away.go). Each task is a timer owned by the hub;
// Close stops them all.
type background struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	rng    *rand.Rand
	timers map[*time.Timer]struct{}
	armed  map[string]bool // tasks armed here, by key (those that have one)
}

func newBackground(seed uint64) *background {
	ctx, cancel := context.WithCancel(context.Background())
	return &background{ctx: ctx, cancel: cancel, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		timers: make(map[*time.Timer]struct{}), armed: make(map[string]bool)}
}

// after runs fn in d unless the hub closes first or a task with the same key
// is already armed, and reports whether it armed fn. Tasks with an empty key
// are never refused as such.
func (b *background) after(key string, d time.Duration, fn func(ctx context.Context)) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ctx.Err() != nil || key != "" && b.armed[key] {
		return false
	}
	if key != "" {
		b.armed[key] = true
	}
	b.wg.Add(1)
	var t *time.Timer
	t = time.AfterFunc(d, func() {
		defer b.wg.Done()
		b.mu.Lock()
		delete(b.timers, t)
		delete(b.armed, key)
		b.mu.Unlock()
		if b.ctx.Err() == nil {
			fn(b.ctx)
		}
	})
	b.timers[t] = struct{}{}
	return true
}

// random runs fn with the shared source of randomness.
func (b *background) random(fn func(*rand.Rand)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	fn(b.rng)
}

// stop cancels every pending task and waits for those running.
func (b *background) stop() {
	b.mu.Lock()
	b.cancel()
	for t := range b.timers {
		if t.Stop() {
			b.wg.Done()
		}
	}
	b.timers = map[*time.Timer]struct{}{}
	b.mu.Unlock()
	b.wg.Wait()
}

// botTeam returns the computer's team in g, or game.Empty.
func botTeam(g *store.Game) game.Mark {
	return g.Team(store.BotPlayer)
}

// scheduleBot arms the computer's next move if it is its turn in g.
func (h *Hub) scheduleBot(g store.Game) {
	team := botTeam(&g)
	if g.Mode != store.ModeBot || team == game.Empty || g.Turn() != team {
		return
	}
	lvl, err := game.ParseLevel(g.Level)
	if err != nil {
		h.log.Warn("bot game with a bad level", "game", g.ID, "level", g.Level)
		return
	}
	var delay time.Duration
	if h.opt.BotDelay != nil {
		delay = h.opt.BotDelay(lvl)
	} else {
		h.bg.random(func(r *rand.Rand) { delay = lvl.Delay(r) })
	}
	id := g.ID // the closure takes the id alone: capturing g would put every game passed here on the heap
	h.bg.after(fmt.Sprintf("bot/%s/%d", id, g.Moves), delay, func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, h.opt.StoreTimeout)
		defer cancel()
		h.botMove(ctx, id, lvl, backoff{})
	})
}

// botMove plays the computer's move in game id, if it is still its turn. If
// the store fails it, it is tried again with backoff b (see retryLater):
// else the player would wait for the computer until the page reconnects.
func (h *Hub) botMove(ctx context.Context, id string, lvl game.Level, b backoff) {
	retry := func(ctx context.Context, b backoff) { h.botMove(ctx, id, lvl, b) }
	g, err := h.store.Game(ctx, id)
	if storeFailed(err) {
		h.retryLater("bot/"+id, "bot: load game", id, err, b, retry)
		return
	}
	if err != nil {
		h.log.Warn("bot: load game", "game", id, "err", err)
		return
	}
	team := botTeam(&g)
	if g.Turn() != team || team == game.Empty {
		if n := len(g.History); !b.first.IsZero() && team != game.Empty && n > 0 && g.History[n-1].Team == team {
			// The failed attempt landed, its answer lost: tell the game.
			if err := h.published(ctx, g); err != nil {
				h.log.Warn("bot: publish", "game", id, "err", err)
			}
		}
		return
	}
	var x, y int
	var ok bool
	h.bg.random(func(r *rand.Rand) { x, y, ok = game.BestMove(g.Board, team, lvl, r) })
	if !ok {
		return
	}
	// The move id makes a move armed on two replicas count once.
	g, err = h.store.Move(ctx, id, store.BotPlayer, x, y, fmt.Sprintf("bot-%d", g.Moves+1))
	if errors.Is(err, store.ErrDuplicateMove) || errors.Is(err, game.ErrNotYourTurn) || errors.Is(err, game.ErrOver) {
		return
	}
	if storeFailed(err) {
		h.retryLater("bot/"+id, "bot: move", id, err, b, retry)
		return
	}
	if err != nil {
		h.log.Warn("bot: move", "game", id, "err", err)
		return
	}
	if err := h.published(ctx, g); err != nil {
		h.log.Warn("bot: publish", "game", id, "err", err)
	}
}

// onAway runs on every replica that hears a player went away from a game it
// has sockets in. If that player is in fact here on another socket, it is
// marked back at once; otherwise a forfeit is armed for the deadline. The
// store decides: a forfeit only lands if the player is still away with that
// very deadline, so replicas arming the same forfeit do no harm.
func (h *Hub) onAway(r *room, f []byte) {
	var away struct {
		Data struct {
			GameID   string `json:"gameId"`
			Team     string `json:"team"`
			Deadline int64  `json:"deadline"`
		} `json:"data"`
	}
	if json.Unmarshal(f, &away) != nil {
		return
	}
	team, err := game.ParseMark(away.Data.Team)
	if err != nil {
		return
	}
	id, deadline := away.Data.GameID, away.Data.Deadline
	if r.present(team) {
		h.markBackSoon(id, team)
		return
	}
	h.armForfeit(id, team, deadline)
}

// armForfeit runs forfeit at deadline, once per replica whoever asks.
func (h *Hub) armForfeit(id string, team game.Mark, deadline int64) {
	wait := time.Until(time.UnixMilli(deadline))
	h.bg.after(forfeitKey(id, team, deadline), wait, func(ctx context.Context) {
		h.forfeit(ctx, id, team, deadline)
	})
}

func forfeitKey(id string, team game.Mark, deadline int64) string {
	return fmt.Sprintf("forfeit/%s/%s/%d", id, team, deadline)
}

// forfeit ends game id for team's player, away since before deadline,
// unless the player is back by then. If the store fails the write, the
// player's grace period starts over once the store takes writes again (see
// renewAway).
func (h *Hub) forfeit(ctx context.Context, id string, team game.Mark, deadline int64) {
	if h.presentHere(id, team) {
		// Back here, but the write that says so has not landed (see
		// markBack): the player is not to lose by it.
		h.markBackSoon(id, team)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, h.opt.StoreTimeout)
	defer cancel()
	now := h.opt.Now()
	var player string
	g, err := h.store.Update(ctx, id, func(g *store.Game) error {
		player = playerOfTeam(g, team)
		return g.Forfeit(player, deadline, now)
	})
	switch {
	case errors.Is(err, game.ErrNotStarted):
		// A friend's game still waiting for the friend, whose player did
		// not come back: its invite dies.
		h.expireInvite(ctx, id, player, deadline)
		return
	case errors.Is(err, store.ErrNotAway), errors.Is(err, game.ErrOver), errors.Is(err, store.ErrNotFound):
		return
	case storeFailed(err):
		// Not tried again: the grace period starts over once the store is back.
		h.retryLater(forfeitKey(id, team, deadline), "renew grace after a failed forfeit", id, err, backoff{}, func(ctx context.Context, b backoff) {
			h.renewAway(ctx, id, team, deadline, b)
		})
		return
	case err != nil:
		h.log.Warn("forfeit", "game", id, "err", err)
		return
	}
	h.ended(&g)
	if err := h.publish(ctx, &g, frameStatus(&g), frameWinner(&g)); err != nil {
		h.log.Warn("forfeit: publish", "game", id, "err", err)
	}
}

func playerOfTeam(g *store.Game, team game.Mark) string {
	if team == game.X {
		return g.PlayerX
	}
	return g.PlayerO
}
