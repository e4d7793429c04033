package store

import (
	"context"
	"errors"
	"fmt"
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

// count adds d to the increments waiting for the next flush.
func (s *Rethink) count(d Stats) {
	s.mu.Lock()
	add(&s.pending, d)
	s.mu.Unlock()
}

// flushLoop writes the increments and this replica's presence every
// FlushInterval, and the presence at least every heartbeat. When ctx ends it
// writes what is left and deletes the presence.
func (s *Rethink) flushLoop(ctx context.Context) {
	defer close(s.flushed)
	t := time.NewTicker(s.flush)
	defer t.Stop()
	var beat int64
	var lastBeat time.Time
	for {
		select {
		case <-t.C:
		case <-ctx.Done():
			wctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			s.flushCounters(wctx)
			if _, err := s.db.Table(tableStats).Get(presencePrefix+s.replica).Delete().RunWrite(s.sess, r.RunOpts{Context: wctx}); err != nil {
				s.log.Warn("remove presence", "replica", s.replica, "err", err)
			}
			return
		}
		wctx, cancel := context.WithTimeout(ctx, writeTimeout)
		s.flushCounters(wctx)
		s.mu.Lock()
		online, dirty := s.online, s.dirty
		s.dirty = false
		s.mu.Unlock()
		if dirty || time.Since(lastBeat) >= heartbeat {
			beat++
			p := map[string]any{"id": presencePrefix + s.replica, "online": online, "beat": beat, "at": r.Now()}
			if _, err := s.db.Table(tableStats).Insert(p, r.InsertOpts{Conflict: "replace"}).RunWrite(s.sess, r.RunOpts{Context: wctx}); err != nil {
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
		cancel()
	}
}

// flushCounters adds the pending increments to the counters, all in one
// query (each document's update is atomic). On failure they are kept for the
// next try; if the write was applied but its answer lost, they count twice:
// counters may run ahead, never backwards.
func (s *Rethink) flushCounters(ctx context.Context) {
	s.mu.Lock()
	d := s.pending
	s.pending = Stats{}
	s.mu.Unlock()
	if d == (Stats{}) {
		return
	}
	incs := map[string]any{}
	var ids []any
	for i, v := range d {
		if v != 0 {
			incs[Stat(i).String()] = v
			ids = append(ids, Stat(i).String())
		}
	}
	_, err := s.db.Table(tableStats).GetAll(ids...).Update(func(c r.Term) any {
		return map[string]any{"value": c.Field("value").Default(0).Add(r.Expr(incs).Field(c.Field("id")))}
	}).RunWrite(s.sess, r.RunOpts{Context: ctx})
	if err != nil {
		s.count(d)
		s.log.Warn("write stats", "err", err)
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
	i, ok := ParseStat(d.ID)
	if !ok || i == PlayersOnline {
		return
	}
	if i == GamesInProgress {
		v.counters[i] = d.Value
	} else {
		v.counters[i] = max(v.counters[i], d.Value)
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
	cur, err := s.db.Table(tableStats).Changes().Run(s.sess, r.RunOpts{Context: ctx})
	if err != nil {
		return false, fmt.Errorf("open changefeed: %w", err)
	}
	defer cur.Close()
	var snap struct {
		Now  time.Time `rethinkdb:"now"`
		Docs []statDoc `rethinkdb:"docs"`
	}
	q := r.Expr(map[string]any{"now": r.Now(), "docs": s.db.Table(tableStats).CoerceTo("array")})
	if err := q.ReadOne(&snap, s.sess, r.RunOpts{Context: ctx}); err != nil {
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
		}).RunWrite(s.sess, r.RunOpts{Context: ctx})
		if err != nil {
			s.log.Warn("remove stale presence", "replica", name, "err", err)
			return
		}
		delete(v.presence, name)
	}
}
