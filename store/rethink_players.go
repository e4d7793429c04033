package store

import (
	"context"
	"errors"
	"fmt"

	r "gopkg.in/rethinkdb/rethinkdb-go.v6"

	"github.com/tictac/tictac/game"
)

// JoinInvite puts player in the friend game waiting with invite code. It
// returns ErrNotFound when no game waits with that code (wrong, used, or
// cancelled), and ErrNotPlayer when player is its creator. Of several
// players who use one code at once, through any replicas, exactly one gets
// in: the others find the game started and get ErrNotFound.
func (s *Rethink) JoinInvite(ctx context.Context, player, code string) (Game, error) {
	if err := s.enter(); err != nil {
		return Game{}, fmt.Errorf("invite: %w", err)
	}
	defer s.ops.Done()
	if code == "" {
		return Game{}, fmt.Errorf("invite: %w", ErrNotFound)
	}
	g, err := s.invited(ctx, code)
	if err != nil {
		return Game{}, fmt.Errorf("invite: %w", err)
	}
	id, now := g.ID, s.stamp()
	g, err, _ = s.apply(ctx, g, func(g *Game) error { return g.AcceptInvite(player, code, now) })
	if err := s.updated(id, g, err); err != nil {
		return g, err
	}
	return g, nil
}

// invited returns the waiting game with invite code, or ErrNotFound.
func (s *Rethink) invited(ctx context.Context, code string) (Game, error) {
	cur, err := s.games().GetAllByIndex(indexInvite, code).Run(s.sess, r.RunOpts{Context: ctx})
	if err != nil {
		return Game{}, err
	}
	defer cur.Close()
	var d doc
	for cur.Next(&d) {
		if d.Status == game.Waiting.String() && d.Invite == code {
			return fromDoc(&d)
		}
		d = doc{}
	}
	if err := cur.Err(); err != nil {
		return Game{}, err
	}
	return Game{}, ErrNotFound
}

// Active returns player's latest game if it waits or is in progress, else
// ErrNotFound. The latest game is recorded just after the game is written,
// so a replica that dies in between leaves the previous one recorded.
func (s *Rethink) Active(ctx context.Context, player string) (Game, error) {
	if err := s.enter(); err != nil {
		return Game{}, fmt.Errorf("active game: %w", err)
	}
	defer s.ops.Done()
	g, err := s.active(ctx, player)
	if err != nil {
		return Game{}, fmt.Errorf("active game: %w", err)
	}
	return g, nil
}

func (s *Rethink) active(ctx context.Context, player string) (Game, error) {
	// One query: the seat, then its game. (A missing seat is null on
	// RethinkDB and an empty selection on reqlite: the field's default
	// covers both.)
	cur, err := s.db.Table(tablePlayers).Get(player).Field("game").Default(nil).Do(func(id r.Term) any {
		return r.Branch(id.Eq(nil), nil, s.games().Get(id))
	}).Run(s.sess, r.RunOpts{Context: ctx})
	if err != nil {
		return Game{}, err
	}
	defer cur.Close()
	var d doc
	if err := cur.One(&d); err != nil {
		if errors.Is(err, r.ErrEmptyResult) {
			return Game{}, ErrNotFound
		}
		return Game{}, err
	}
	s.loads.Add(1)
	g, err := fromDoc(&d)
	if err != nil {
		return Game{}, err
	}
	// A seat is recorded before the write that takes it (see seated), so the
	// record may name a game the player did not get into.
	if g.Status.Over() || g.Team(player) == game.Empty {
		return Game{}, ErrNotFound
	}
	return g, nil
}

// seated is write, run once player's seat in game id is recorded, in the
// same query: the seat first, and write only if the seat was recorded. The
// query's answer is write's, or the seat's failure. The seat names the
// player's latest game before the write that puts the player in it: if
// that write is applied but its answer lost, Active and the player's next
// Join still find the game. A failed seat changes no game.
func (s *Rethink) seated(player, id string, write func() r.Term) r.Term {
	seat := s.db.Table(tablePlayers).Insert(map[string]any{"id": player, "game": id}, r.InsertOpts{Conflict: "replace"})
	return seat.Do(func(w r.Term) any {
		return r.Branch(w.Field("errors").Eq(0), write(), w)
	})
}

// Live returns up to limit games in progress, in no particular order.
func (s *Rethink) Live(ctx context.Context, limit int) ([]Game, error) {
	if limit <= 0 {
		return nil, nil
	}
	var out []Game
	err := s.playing(ctx, limit, func(g Game) bool {
		out = append(out, g)
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("live games: %w", err)
	}
	return out, nil
}

// Playing calls fn with every game in progress, in no particular order,
// until fn returns false.
func (s *Rethink) Playing(ctx context.Context, fn func(Game) bool) error {
	if err := s.playing(ctx, 0, fn); err != nil {
		return fmt.Errorf("games in progress: %w", err)
	}
	return nil
}

// playing is Playing for at most limit games, or all if limit is 0.
func (s *Rethink) playing(ctx context.Context, limit int, fn func(Game) bool) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.ops.Done()
	q := s.games().GetAllByIndex(indexStatus, game.InProgress.String())
	if limit > 0 {
		q = q.Limit(limit)
	}
	cur, err := q.Run(s.sess, r.RunOpts{Context: ctx})
	if err != nil {
		return err
	}
	defer cur.Close()
	var d doc
	for cur.Next(&d) {
		g, err := fromDoc(&d)
		if err != nil {
			return err
		}
		if !fn(g) {
			return nil
		}
		d = doc{}
	}
	return cur.Err()
}

// enterPlayers records after as the latest game of each of its players who
// was not in before (nil for a new game); the computer is not recorded. It
// runs once the game is written, so a failure is logged, not returned: the
// write stands, and Active may report the player's previous game meanwhile.
func (s *Rethink) enterPlayers(ctx context.Context, before, after *Game) {
	var was Game
	if before != nil {
		was = *before
	}
	var rows []any
	for _, p := range []string{after.PlayerX, after.PlayerO} {
		if p != "" && p != BotPlayer && p != was.PlayerX && p != was.PlayerO {
			rows = append(rows, map[string]any{"id": p, "game": after.ID})
		}
	}
	if len(rows) == 0 {
		return
	}
	if _, err := s.db.Table(tablePlayers).Insert(rows, r.InsertOpts{Conflict: "replace"}).RunWrite(s.sess, r.RunOpts{Context: ctx}); err != nil {
		s.log.Warn("record players' game", "game", after.ID, "err", err)
	}
}
