package store

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	r "gopkg.in/rethinkdb/rethinkdb-go.v6"
)

// Presence: each replica keeps a document {id: "presence:<replica>", online,
// beat, at} in the stats table, rewritten every heartbeat; PlayersOnline is
// the sum over the replicas heard from lately. Liveness is judged by when a
// change was received (or, for documents read at a (re)connect, by the
// server's clock on both sides), so clocks of replicas need not agree.
const (
	presencePrefix = "presence:"
	heartbeat      = 2 * time.Second
	presenceTTL    = 10 * time.Second // a replica silent this long drops out
	presenceGC     = time.Minute      // and its document is deleted after this
)

// statDoc is any document of the stats table: a counter or a presence.
type statDoc struct {
	ID     string    `rethinkdb:"id"`
	Value  int64     `rethinkdb:"value"`
	Online int64     `rethinkdb:"online"`
	Beat   int64     `rethinkdb:"beat"`
	At     time.Time `rethinkdb:"at"`
	// Values are the counters, in the counters document.
	Values map[string]int64 `rethinkdb:"values"`
}

type statChange struct {
	Old *statDoc `rethinkdb:"old_val"`
	New *statDoc `rethinkdb:"new_val"`
}

// Stats returns the statistics as last received from the database, the same
// values WatchStats delivers. Increments reach the database in batches, so
// a move shows up within about FlushInterval.
func (s *Rethink) Stats(ctx context.Context) (Stats, error) {
	if err := s.enter(); err != nil {
		return Stats{}, fmt.Errorf("stats: %w", err)
	}
	defer s.ops.Done()
	return s.feed.current(), nil
}

// WatchStats subscribes to the statistics: the current value first, then each
// change. The subscription ends with ctx, with Close, or when the store closes.
// While the database is unreachable it stays open and silent.
func (s *Rethink) WatchStats(ctx context.Context) (*Subscription, error) {
	if err := s.enter(); err != nil {
		return nil, fmt.Errorf("watch stats: %w", err)
	}
	defer s.ops.Done()
	sub := s.feed.subscribe()
	context.AfterFunc(ctx, sub.Close)
	return sub, nil
}

// SetOnline sets this replica's share of PlayersOnline to n. It is written
// with the next batch of stats; PlayersOnline sums the shares of all replicas.
func (s *Rethink) SetOnline(ctx context.Context, n int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("set online: %w", ErrClosed)
	}
	if n != s.online {
		s.online, s.dirty = n, true
	}
	return nil
}

// Counting. A counter must end up equal to what the stored games say, even
// when a replica dies between writing a game and adding its increments, and
// even when two replicas count the same game. So the counters are not fed
// from memory: each game document carries its own bookkeeping, and counting
// moves a game's contribution into the counters exactly once.
//
//   - counted: the game's contribution (Expected) that the counters include,
//     one number per Stat; owed: true while counted lags the game, else
//     null or absent.
//     Every write that changes what a game counts for sets owed, in the same
//     atomic write as the change, so a change can never be forgotten.
//   - The counters are one document, {id: "counters", values, writers,
//     applied}, so that adding a batch and recording that it was added is one
//     atomic write.
//
// A replica counts a batch of owed games in four writes, each safe to repeat:
//
//  1. claim: on each game still owed, not claimed, and at the version the
//     replica saw, set claim {k: batch id, w: writer, ver, from: counted,
//     to: Expected}. Only one batch can hold a game.
//  2. add: on the counters, if writer w is registered and batch k is not in
//     applied, add the sum of (to - from) and record applied[k] = w.
//  3. settle: on each game still claimed by k, counted = to, drop the claim,
//     and drop owed unless the game changed since.
//  4. forget: remove k from applied.
//
// A process that dies (SIGKILL) loses nothing but time: its games stay owed,
// and any replica's periodic recovery counts them. A claim left by a dead
// writer is settled if its batch was added and dropped otherwise; that
// decision is final because recovery first revokes the writer (removes it
// from writers), after which step 2 refuses it, so a writer that was only
// cut off or paused cannot add a batch late. Writers are incarnations (one
// per process start), judged alive by their replica's presence document;
// a revoked writer that is alive after all registers again as a new one.

const (
	countersID = "counters"
	indexOwed  = "owed" // games whose counts are not all in the counters yet
)

// maxCountBatch bounds the games counted in one batch (one query per step).
const maxCountBatch = 500

// countEvery is how often a replica counts the games it wrote.
func (s *Rethink) countEvery() time.Duration { return 5 * s.flush }

// recoverEvery is how often a replica looks for games owed by dead writers.
// Each pass reads the owed index, which reqlite serves by reading the whole
// games table: not too often.
func (s *Rethink) recoverEvery() time.Duration { return max(50*s.flush, time.Second) }

// countLag is how long a game may owe only moves before its writer counts
// it. TotalMoves is the one counter that changes with every move, and each
// count rewrites the game twice (claim, settle): counted at every
// countEvery, a game at human pace was rewritten twice for each of its
// moves. So a write that changes any other counter (a game starts, ends)
// is counted at the next countEvery, and moves alone wait up to countLag,
// to go with the next count of their game. It stays under recoverEvery, so
// that recovery never takes for dead a game whose writer only lets it wait.
func (s *Rethink) countLag() time.Duration { return s.recoverEvery() / 2 }

// owedGame is a game this replica wrote whose counts it has not added yet.
type owedGame struct {
	version int64
	want    Stats
	since   time.Time // when it began to owe, on s.now's clock
	// urgent is the version of the last write owed that changes more than
	// TotalMoves, or 0.
	urgent int64
}

// movesOnly reports whether the write from before to after changes no
// counter but TotalMoves.
func movesOnly(before, after *Game) bool {
	d := delta(before, after)
	d[TotalMoves] = 0
	return d == Stats{}
}

// claimDoc is a game's claim by a batch (step 1).
type claimDoc struct {
	K    string  `rethinkdb:"k"`
	W    string  `rethinkdb:"w"`
	Ver  int64   `rethinkdb:"ver"`
	From []int64 `rethinkdb:"from"`
	To   []int64 `rethinkdb:"to"`
}

// countDoc is the counting part of a game document.
type countDoc struct {
	ID      string    `rethinkdb:"id"`
	Version int64     `rethinkdb:"version"`
	Owed    bool      `rethinkdb:"owed"`
	Claim   *claimDoc `rethinkdb:"claim"`
}

// countersDoc is the counters document.
type countersDoc struct {
	ID      string               `rethinkdb:"id"`
	Values  map[string]int64     `rethinkdb:"values"`
	Writers map[string]time.Time `rethinkdb:"writers"`
	Applied map[string]string    `rethinkdb:"applied"`
}

// countBatch is a batch of counts on its way to the counters.
type countBatch struct {
	k     string
	w     string
	step  int // the next step: 1 claim, 2 add, 3 settle, 4 forget
	games map[string]owedGame
	from  map[string]Stats // the claimed games' counted before
}

func vec(st Stats) []int64 { return st[:] }

func unvec(v []int64) Stats {
	var st Stats
	copy(st[:], v)
	return st
}

// owe notes that g's counts are to be added; before is g as it was before
// this replica's write, or nil if unknown (a new game, a game recovered).
func (s *Rethink) owe(before, g *Game) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.owed[g.ID]
	if !ok {
		o.since = s.now()
	}
	if !ok || o.version < g.Version {
		o.version, o.want = g.Version, Expected(g)
		if before == nil || !movesOnly(before, g) {
			o.urgent = g.Version
		}
		s.owed[g.ID] = o
	}
}

// register makes this process a writer of the counters under a new name.
func (s *Rethink) register(ctx context.Context) error {
	w := s.replica + "/" + NewID()
	_, err := s.db.Table(tableStats).Get(countersID).Update(map[string]any{"writers": map[string]any{w: r.Now()}}).RunWrite(s.countSess, r.RunOpts{Context: ctx})
	if err != nil {
		return fmt.Errorf("register writer: %w", err)
	}
	s.mu.Lock()
	s.writer, s.dirty = w, true // the presence names the writer
	s.mu.Unlock()
	return nil
}

// flushCounts carries the current batch as far as it goes, or starts one
// with the owed games: all of them, or (unless all) those that cannot wait
// (see countLag). It stops at the first failure; the next call resumes.
func (s *Rethink) flushCounts(ctx context.Context, all bool) {
	if s.batch == nil {
		s.mu.Lock()
		if len(s.owed) == 0 || s.writer == "" {
			s.mu.Unlock()
			return
		}
		now := s.now()
		b := &countBatch{k: NewID(), w: s.writer, step: 1, games: map[string]owedGame{}, from: map[string]Stats{}}
		for id, g := range s.owed {
			if len(b.games) == maxCountBatch {
				break // the rest next time
			}
			if all || g.urgent > 0 || now.Sub(g.since) >= s.countLag() {
				b.games[id] = g
			}
		}
		s.mu.Unlock()
		if len(b.games) == 0 {
			return
		}
		s.batch = b
	}
	b := s.batch
	var err error
	for err == nil && s.batch != nil {
		switch b.step {
		case 1:
			err = s.claim(ctx, b)
		case 2:
			err = s.add(ctx, b)
		case 3:
			err = s.settle(ctx, b.k, slices.Collect(maps.Keys(b.from)))
		case 4:
			err = s.forget(ctx, []string{b.k})
		default:
			s.batch = nil
			s.counted(b)
			return
		}
		if err == nil {
			b.step++
		}
	}
	if err != nil && ctx.Err() == nil {
		s.log.Warn("write stats", "step", b.step, "err", err)
	}
}

// counted drops from the owed games those that batch b counted, unless
// written again meanwhile: what such a game owes began then, and is urgent
// only for an urgent write since.
func (s *Rethink) counted(b *countBatch) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for id, g := range b.games {
		o, ok := s.owed[id]
		switch {
		case ok && o.version <= g.version:
			delete(s.owed, id)
		case ok:
			if o.urgent <= g.version {
				o.urgent = 0
			}
			o.since = now
			s.owed[id] = o
		}
	}
}

// eachGame runs write on each of the games ids (given its id and its Get)
// in one query, and sums the results. It does not use GetAll: reqlite reads
// the whole table for it, where a Get is a lookup.
func (s *Rethink) eachGame(ctx context.Context, ids []string, write func(id string, g r.Term) r.Term) (writeResult[countDoc], error) {
	var sum writeResult[countDoc]
	terms := make([]any, len(ids))
	for i, id := range ids {
		terms[i] = write(id, s.games().Get(id))
	}
	cur, err := r.Expr(terms).Run(s.countSess, r.RunOpts{Context: ctx})
	if err != nil {
		return sum, err
	}
	var all []writeResult[countDoc]
	err = cur.All(&all)
	cur.Close()
	if err != nil {
		return sum, err
	}
	for _, w := range all {
		if w.Errors > 0 {
			return sum, errors.New(w.FirstError)
		}
		sum.Changes = append(sum.Changes, w.Changes...)
	}
	return sum, nil
}

// claim is step 1. Games it cannot claim are dropped from the batch: gone,
// counted by someone else, or changed since (whoever changed them counts
// them), or claimed by another batch (they stay owed here, for later).
func (s *Rethink) claim(ctx context.Context, b *countBatch) error {
	ids := slices.Collect(maps.Keys(b.games))
	zero := vec(Stats{})
	w, err := s.eachGame(ctx, ids, func(id string, g r.Term) r.Term {
		ver, to := b.games[id].version, vec(b.games[id].want)
		return g.Update(func(d r.Term) any {
			free := d.HasFields("claim").Not().And(d.HasFields("owed")).And(d.Field("version").Default(0).Eq(ver))
			// A claim already ours (an answer lost, asked again) is kept as
			// it was made, and comes back in the changes: its ver is the
			// version its to was computed for, whatever the game's is now.
			return r.Branch(free, map[string]any{"claim": map[string]any{
				"k": b.k, "w": b.w, "ver": ver, "from": d.Field("counted").Default(zero), "to": to}}, map[string]any{})
		}, r.UpdateOpts{ReturnChanges: "always"})
	})
	if err != nil {
		return fmt.Errorf("claim: %w", err)
	}
	seen := map[string]bool{}
	for _, c := range w.Changes {
		d := c.New
		if d == nil {
			continue
		}
		seen[d.ID] = true
		if d.Claim != nil && d.Claim.K == b.k {
			b.from[d.ID] = unvec(d.Claim.From)
			continue
		}
		if ours := b.games[d.ID].version; d.Owed && d.Version == ours && d.Claim != nil && d.Claim.Ver < ours {
			continue // an older batch holds it; what we wrote since is still ours to count
		}
		s.mu.Lock()
		if o, ok := s.owed[d.ID]; ok && o.version <= b.games[d.ID].version {
			delete(s.owed, d.ID)
		}
		s.mu.Unlock()
	}
	for id := range b.games {
		if !seen[id] {
			s.mu.Lock()
			delete(s.owed, id) // deleted: a waiting game that was cancelled
			s.mu.Unlock()
		}
	}
	for id := range b.games {
		if _, ok := b.from[id]; !ok {
			delete(b.games, id)
		}
	}
	if len(b.from) == 0 {
		b.step = 4 // nothing claimed, nothing added: forget is a no-op
	}
	return nil
}

// add is step 2.
func (s *Rethink) add(ctx context.Context, b *countBatch) error {
	var d Stats
	for id, g := range b.games {
		from := b.from[id]
		for i := range d {
			d[i] += g.want[i] - from[i]
		}
	}
	w, err := runWrite[countersDoc](ctx, s.countSess, s.db.Table(tableStats).Get(countersID).Update(func(c r.Term) any {
		values := map[string]any{}
		for i, v := range d {
			if v != 0 && Stat(i) != PlayersOnline {
				name := Stat(i).String()
				values[name] = c.Field("values").Field(name).Default(0).Add(v)
			}
		}
		ok := c.Field("writers").HasFields(b.w).And(c.Field("applied").HasFields(b.k).Not())
		return r.Branch(ok, map[string]any{"values": values, "applied": map[string]any{b.k: b.w}}, map[string]any{})
	}, r.UpdateOpts{ReturnChanges: "always"}))
	if err != nil {
		return fmt.Errorf("add counts: %w", err)
	}
	if n := w.new(); n == nil || n.Applied[b.k] != b.w {
		// Revoked: recovery drops this batch's claims. Count again as a new writer.
		s.batch = nil
		if err := s.register(ctx); err != nil {
			return err
		}
		return errors.New("add counts: writer revoked; registered again")
	}
	return nil
}

// settle is step 3 for games claimed by batch k.
func (s *Rethink) settle(ctx context.Context, k string, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	// An update, not a replace: r.literal() drops the claim, and the
	// stand-in (reqlite) takes half as long to write only what changes.
	// owed becomes null rather than absent: either way has_fields is false
	// and the owed index leaves the game out, but reqlite reads its index by
	// evaluating it on every game, and a missing field made each one an
	// error, 7 to 20 times as slow as a null (3,000 games: 133-200 ms).
	_, err := s.eachGame(ctx, ids, func(_ string, g r.Term) r.Term {
		return g.Update(func(d r.Term) any {
			claim := d.Field("claim")
			settled := map[string]any{"claim": r.Literal(), "counted": claim.Field("to"),
				"owed": r.Branch(d.Field("version").Default(0).Eq(claim.Field("ver")), nil, true)}
			return r.Branch(claim.Field("k").Default("").Eq(k), settled, map[string]any{})
		})
	})
	if err != nil {
		return fmt.Errorf("settle counts: %w", err)
	}
	return nil
}

// forget is step 4 for batches ks.
func (s *Rethink) forget(ctx context.Context, ks []string) error {
	if len(ks) == 0 {
		return nil
	}
	args := make([]any, len(ks))
	for i, k := range ks {
		args[i] = k
	}
	_, err := runWrite[countersDoc](ctx, s.countSess, s.db.Table(tableStats).Get(countersID).Replace(func(c r.Term) any {
		return c.Without("applied").Merge(map[string]any{"applied": c.Field("applied").Without(args...)})
	}))
	if err != nil {
		return fmt.Errorf("forget batch: %w", err)
	}
	return nil
}

// recoverCounts revokes the writers whose process is gone, settles or drops
// their claims, and takes every unclaimed owed game into this replica's
// counting: the games of a replica that died before counting them.
func (s *Rethink) recoverCounts(ctx context.Context) error {
	var snap struct {
		Now      time.Time   `rethinkdb:"now"`
		Counters countersDoc `rethinkdb:"counters"`
		Docs     []struct {
			ID     string    `rethinkdb:"id"`
			Writer string    `rethinkdb:"writer"`
			At     time.Time `rethinkdb:"at"`
		} `rethinkdb:"docs"`
	}
	stats := s.db.Table(tableStats)
	q := r.Expr(map[string]any{"now": r.Now(), "counters": stats.Get(countersID), "docs": stats.CoerceTo("array")})
	if err := q.ReadOne(&snap, s.countSess, r.RunOpts{Context: ctx}); err != nil {
		return fmt.Errorf("recover counts: read writers: %w", err)
	}
	s.mu.Lock()
	me := s.writer
	s.mu.Unlock()
	live := map[string]bool{me: true}
	for _, d := range snap.Docs {
		if strings.HasPrefix(d.ID, presencePrefix) && d.Writer != "" && snap.Now.Sub(d.At) < presenceTTL {
			live[d.Writer] = true
		}
	}
	var dead []any
	for w, at := range snap.Counters.Writers {
		if !live[w] && snap.Now.Sub(at) > presenceTTL {
			dead = append(dead, w)
		}
	}
	if len(dead) > 0 {
		// What the counters say after the revocation is final for the
		// revoked: read before it, a batch they added meanwhile would be
		// missed, and its claims dropped and counted again.
		w, err := runWrite[countersDoc](ctx, s.countSess, stats.Get(countersID).Replace(func(c r.Term) any {
			return c.Without("writers").Merge(map[string]any{"writers": c.Field("writers").Without(dead...)})
		}, r.ReplaceOpts{ReturnChanges: "always"}))
		if err != nil {
			return fmt.Errorf("recover counts: revoke writers: %w", err)
		}
		n := w.new()
		if n == nil {
			return errors.New("recover counts: revoke writers: no counters")
		}
		snap.Counters = *n
		s.log.Info("revoked the stats writers of replicas gone", "writers", dead)
	}
	if _, ok := snap.Counters.Writers[me]; !ok && me != "" && s.batch == nil {
		if err := s.register(ctx); err != nil {
			return err
		}
	}

	cur, err := s.games().GetAllByIndex(indexOwed, true).Pluck("id", "version", "owed", "claim").Run(s.countSess, r.RunOpts{Context: ctx})
	if err != nil {
		return fmt.Errorf("recover counts: owed games: %w", err)
	}
	var owed []countDoc
	err = cur.All(&owed)
	cur.Close()
	if err != nil {
		return fmt.Errorf("recover counts: owed games: %w", err)
	}
	settle := map[string][]string{}
	var take []string
	suspects := map[string]int64{}
	for _, d := range owed {
		switch {
		case d.Claim == nil:
			// Its writer counts it within a FlushInterval, unless it died:
			// take it when the last pass saw it owed as it is now.
			if v, ok := s.suspects[d.ID]; ok && v == d.Version {
				take = append(take, d.ID)
			} else {
				suspects[d.ID] = d.Version
			}
		case snap.Counters.Writers[d.Claim.W].IsZero():
			if snap.Counters.Applied[d.Claim.K] != "" {
				settle[d.Claim.K] = append(settle[d.Claim.K], d.ID)
				continue
			}
			// Never added, and now it never will be: free the game.
			k := d.Claim.K
			if _, err := s.games().Get(d.ID).Replace(func(d r.Term) any {
				return r.Branch(d.Field("claim").Field("k").Default("").Eq(k), d.Without("claim"), d)
			}).RunWrite(s.countSess, r.RunOpts{Context: ctx}); err != nil {
				return fmt.Errorf("recover counts: drop claim: %w", err)
			}
			take = append(take, d.ID)
		}
	}
	for k, ids := range settle {
		if err := s.settle(ctx, k, ids); err != nil {
			return fmt.Errorf("recover counts: %w", err)
		}
	}
	// Every claim of a revoked writer's added batch is settled now.
	var done []string
	for k, w := range snap.Counters.Applied {
		if snap.Counters.Writers[w].IsZero() {
			done = append(done, k)
		}
	}
	if err := s.forget(ctx, done); err != nil {
		return fmt.Errorf("recover counts: %w", err)
	}
	s.suspects = suspects
	for _, id := range take {
		g, err := s.load(ctx, id)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("recover counts: %w", err)
		}
		s.owe(nil, &g)
	}
	if len(take) > 0 || len(settle) > 0 {
		s.log.Info("recovering stats counts", "owed", len(take), "settled", len(settle))
	}
	return nil
}

// flushLoop counts the owed games and writes this replica's presence every
// FlushInterval (the presence at least every heartbeat), and recovers the
// counts of replicas gone every recoverEvery. When ctx ends it counts what
// is left and deletes the presence.
func (s *Rethink) flushLoop(ctx context.Context) {
	defer close(s.flushed)
	t := time.NewTicker(s.flush)
	defer t.Stop()
	var beat int64
	var lastBeat time.Time
	// Replicas started together would count, and read the owed index, at
	// the same moments: a burst of long queries every moment, which moves
	// queue behind (on the stand-in, 3 recoveries back to back held up moves
	// for 300 ms). A random phase each spreads them.
	lastRecover := time.Now().Add(-rand.N(s.recoverEvery()))
	lastCount := time.Now().Add(-rand.N(s.countEvery()))
	for {
		select {
		case <-t.C:
		case <-ctx.Done():
			wctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			s.flushCounts(wctx, true)
			if s.batch == nil {
				s.flushCounts(wctx, true) // games the last batch had to leave
			}
			if _, err := s.db.Table(tableStats).Get(presencePrefix+s.replica).Delete().RunWrite(s.countSess, r.RunOpts{Context: wctx}); err != nil {
				s.log.Warn("remove presence", "replica", s.replica, "err", err)
			}
			return
		}
		wctx, cancel := context.WithTimeout(ctx, writeTimeout)
		s.mu.Lock()
		registered := s.writer != ""
		s.mu.Unlock()
		if !registered {
			if err := s.register(wctx); err != nil && ctx.Err() == nil {
				s.log.Warn("write stats", "err", err)
			}
		}
		// Counting rewrites each counted game twice (claim, settle), so it
		// goes at a slower pace than the presence: a game's moves of the
		// last interval are counted at once. A batch under way goes on.
		if s.batch != nil || time.Since(lastCount) >= s.countEvery() {
			lastCount = time.Now()
			s.flushCounts(wctx, false)
		}
		s.mu.Lock()
		online, dirty, writer := s.online, s.dirty, s.writer
		s.dirty = false
		s.mu.Unlock()
		if dirty || time.Since(lastBeat) >= heartbeat {
			beat++
			p := map[string]any{"id": presencePrefix + s.replica, "online": online, "beat": beat, "at": r.Now(), "writer": writer}
			if _, err := s.db.Table(tableStats).Insert(p, r.InsertOpts{Conflict: "replace"}).RunWrite(s.countSess, r.RunOpts{Context: wctx}); err != nil {
				s.mu.Lock()
				s.dirty = s.dirty || dirty
				s.mu.Unlock()
				if ctx.Err() == nil {
					s.log.Warn("write presence", "err", err)
				}
			} else {
				lastBeat = time.Now()
			}
		}
		if time.Since(lastRecover) >= s.recoverEvery() {
			lastRecover = time.Now()
			if err := s.recoverCounts(wctx); err != nil && ctx.Err() == nil {
				s.log.Warn("recover stats counts", "err", err)
			}
		}
		cancel()
	}
}

// statsView is what the changefeed goroutine knows of the stats table.
type statsView struct {
	counters Stats // PlayersOnline unused
	presence map[string]presence
}

type presence struct {
	online int64
	beat   int64
	seen   time.Time // local clock
}

func (v *statsView) stats(now time.Time) Stats {
	st := v.counters
	st[PlayersOnline] = 0
	for _, p := range v.presence {
		if now.Sub(p.seen) < presenceTTL {
			st[PlayersOnline] += p.online
		}
	}
	return st
}

// apply takes a document into the view. Counters only grow, so taking the
// maximum makes it safe to apply a change older than what was read;
// GamesInProgress, which may shrink, takes the value as is.
func (v *statsView) apply(d *statDoc, seen time.Time) {
	if name, ok := strings.CutPrefix(d.ID, presencePrefix); ok {
		v.presence[name] = presence{online: d.Online, beat: d.Beat, seen: seen}
		return
	}
	if d.ID != countersID {
		return // the counters of old versions, one document each, are no longer kept
	}
	for name, value := range d.Values {
		i, ok := ParseStat(name)
		switch {
		case !ok || i == PlayersOnline:
		case i == GamesInProgress:
			v.counters[i] = value
		default:
			v.counters[i] = max(v.counters[i], value)
		}
	}
}

// watch follows the stats table for as long as ctx lasts, reconnecting with
// backoff when the database drops. The outcome of the first attempt goes to
// ready: nil once the table is read, or the error that ends watch.
func (s *Rethink) watch(ctx context.Context, ready chan<- error) {
	defer close(s.watching)
	v := statsView{presence: map[string]presence{}}
	backoff := 50 * time.Millisecond
	for {
		ok, err := s.follow(ctx, &v, &ready)
		if ready != nil {
			ready <- err
			return
		}
		if ctx.Err() != nil {
			return
		}
		if ok {
			backoff = 50 * time.Millisecond
		}
		s.log.Warn("stats changefeed lost; reconnecting", "err", err, "in", backoff)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// follow opens a changefeed on the stats table, then reads the table (the
// feed cannot include it: reqlite lacks include_initial), publishes, and
// applies changes until the feed fails or ctx ends. Whatever changed between
// the two is both read and in the feed, which apply tolerates. It reports
// whether it got as far as the read.
func (s *Rethink) follow(ctx context.Context, v *statsView, ready *chan<- error) (bool, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cur, err := s.db.Table(tableStats).Changes().Run(s.feedSess, r.RunOpts{Context: ctx})
	if err != nil {
		return false, fmt.Errorf("open changefeed: %w", err)
	}
	defer cur.Close()
	var snap struct {
		Now  time.Time `rethinkdb:"now"`
		Docs []statDoc `rethinkdb:"docs"`
	}
	q := r.Expr(map[string]any{"now": r.Now(), "docs": s.db.Table(tableStats).CoerceTo("array")})
	if err := q.ReadOne(&snap, s.feedSess, r.RunOpts{Context: ctx}); err != nil {
		return false, fmt.Errorf("read stats: %w", err)
	}
	local := time.Now()
	v.presence = map[string]presence{}
	for i := range snap.Docs {
		// A presence's age is measured on the server's clock at both ends.
		age := max(snap.Now.Sub(snap.Docs[i].At), 0)
		v.apply(&snap.Docs[i], local.Add(-age))
	}
	s.feed.publish(v.stats(local))
	if *ready != nil {
		*ready <- nil
		*ready = nil
	} else {
		s.log.Info("stats changefeed back")
	}

	changes := make(chan statChange)
	failed := make(chan error, 1)
	go func() {
		defer close(changes)
		for {
			var c statChange
			if !cur.Next(&c) {
				failed <- cur.Err()
				return
			}
			select {
			case changes <- c:
			case <-ctx.Done():
				return
			}
		}
	}()
	// The reader ends with the cursor: wait for it before the cursor is closed.
	defer func() {
		cancel()
		for range changes {
		}
	}()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case c, ok := <-changes:
			if !ok {
				err := <-failed
				if err == nil {
					err = errors.New("changefeed ended")
				}
				return true, err
			}
			now := time.Now()
			switch {
			case c.New != nil:
				v.apply(c.New, now)
			case c.Old != nil:
				delete(v.presence, strings.TrimPrefix(c.Old.ID, presencePrefix))
			}
			s.feed.publish(v.stats(now))
		case <-tick.C:
			now := time.Now()
			s.feed.publish(v.stats(now))
			s.collect(ctx, v, now)
		case <-ctx.Done():
			return true, ctx.Err()
		}
	}
}

// collect deletes the presence documents of replicas gone for presenceGC,
// unless they came back meanwhile (their beat changed).
func (s *Rethink) collect(ctx context.Context, v *statsView, now time.Time) {
	for name, p := range v.presence {
		if now.Sub(p.seen) < presenceGC || name == s.replica {
			continue
		}
		beat := p.beat
		_, err := s.db.Table(tableStats).Get(presencePrefix+name).Replace(func(d r.Term) any {
			return r.Branch(d.Eq(nil), nil, r.Branch(d.Field("beat").Eq(beat), nil, d))
		}).RunWrite(s.feedSess, r.RunOpts{Context: ctx})
		if err != nil {
			s.log.Warn("remove stale presence", "replica", name, "err", err)
			return
		}
		delete(v.presence, name)
	}
}
