package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	r "gopkg.in/rethinkdb/rethinkdb-go.v6"

	"github.com/tictac/tictac/game"
)

// Tables of the RethinkDB store.
const (
	tableGames   = "games"   // one document per game (type doc)
	tableQueue   = "queue"   // one document, queueID: the player waiting for a quick match
	tableStats   = "stats"   // the counters {id: "counters", values, ...} and presences {id: "presence:<replica>", online, ...}
	tablePlayers = "players" // {id: player, game: id of the player's latest game}
	queueID      = "quick"

	// Secondary indexes of the games table.
	indexInvite = "invite" // invite codes of waiting friend games
	indexStatus = "status" // for the games in progress
)

const (
	// maxAttempts bounds the rounds of Join and Leave. Every failed round
	// means another call succeeded on the queue or the waiting game, so
	// reaching it means something is badly wrong. Update has its own bound
	// (casAttempts).
	maxAttempts = 32
	// writeTimeout bounds a write once it is sent. Writes do not follow the
	// caller's context: a call that started writing sees its writes through,
	// so that an error always means "nothing changed" (as with Bolt) and the
	// quick-match queue never holds a half-done join.
	writeTimeout = 10 * time.Second
	// poolSize is the number of connections; queries are multiplexed over
	// them, so a few are plenty.
	poolSize = 8
)

// RethinkOptions configure OpenRethink.
type RethinkOptions struct {
	// Addrs are the servers (host:port) to connect to; several may be given.
	Addrs []string
	// DB is the database; "tictac" if empty. It and its tables are created if missing.
	DB string
	// User and Password authenticate; the driver uses admin with no password if User is empty.
	User, Password string
	// Replica names this process among the replicas sharing the database; its
	// players count in PlayersOnline under that name. A random id if empty.
	// Two live processes must not share one.
	Replica string
	// Now returns the time stamped on games and moves; time.Now if nil.
	Now func() time.Time
	// Logger receives connection losses and recoveries; nothing is logged if nil.
	Logger *slog.Logger
	// FlushInterval is how often the replica writes its presence (its
	// players online); 200ms if zero. Every 5 intervals it adds the counts of
	// the games it wrote to the counters (four writes at most, however many
	// games; a game's moves alone wait up to 25 intervals), and every 50 (at
	// least 1s) it counts the games that replicas gone left uncounted.
	FlushInterval time.Duration
	// Registerer, when set, gets the store's metrics: the games it read.
	Registerer prometheus.Registerer
}

// Rethink is the store kept in RethinkDB, shared by every replica of the
// server. RethinkDB makes single-document writes atomic and nothing more, so
// every change of a game is a compare-and-set on its document's version (see
// Update), and quick matching goes through a single queue document (see
// Join). Invite codes and games in progress are found through secondary
// indexes on the games, and each player's latest game through the players
// table (see Active).
//
// Stats are counters in the stats table that every replica increments in
// batches; each replica follows the table with one changefeed, which is what
// Stats and WatchStats report.
type Rethink struct {
	sess      *r.Session
	feedSess  *r.Session // the stats changefeed's own connections (see OpenRethink)
	countSess *r.Session // the stats counter's own connections
	db        r.Term
	now       func() time.Time
	log       *slog.Logger
	replica   string
	flush     time.Duration

	mu     sync.Mutex
	closed bool
	ops    sync.WaitGroup      // calls in progress; Close waits for them
	owed   map[string]owedGame // games written here and not counted yet, under mu
	writer string              // this process's name among the counters' writers, under mu
	online int64               // this replica's players, under mu
	dirty  bool                // online or writer changed since last written, under mu
	batch  *countBatch         // counts on their way, owned by the flusher

	// suspects are the owed games the last recovery saw unclaimed, with
	// their versions; owned by the flusher.
	suspects map[string]int64

	feed feed

	// known holds, for games in progress, the game as this replica last wrote
	// or read it, so that a move can go straight to its compare-and-set (one
	// query instead of a read and a write). It may be stale: the write's
	// version check catches that and answers with the stored game.
	known knownGames
	loads atomic.Int64 // games read (tictac_store_game_reads_total)

	stop     context.CancelFunc // ends the background goroutines
	flushed  chan struct{}      // closed when the flusher has written its last batch
	watching chan struct{}      // closed when the changefeed goroutine is gone
	once     sync.Once
	closeErr error
}

// OpenRethink connects to RethinkDB, creates the database and its tables if
// they are missing (safe when several replicas start at once), and starts
// following the stats. It fails with an error naming the addresses if none
// can be reached, or if ctx ends first.
func OpenRethink(ctx context.Context, opt RethinkOptions) (*Rethink, error) {
	if len(opt.Addrs) == 0 {
		return nil, errors.New("open rethinkdb: no address")
	}
	if opt.DB == "" {
		opt.DB = "tictac"
	}
	if opt.Replica == "" {
		opt.Replica = NewID()
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.FlushInterval <= 0 {
		opt.FlushInterval = 200 * time.Millisecond
	}
	where := strings.Join(opt.Addrs, ", ")
	dial := 5 * time.Second
	if d, ok := ctx.Deadline(); ok && time.Until(d) < dial {
		dial = max(time.Until(d), time.Millisecond)
	}
	connect := func(conns int) (*r.Session, error) {
		return r.Connect(r.ConnectOpts{
			Addresses: opt.Addrs,
			Username:  opt.User,
			Password:  opt.Password,
			Timeout:   dial,
			// A connection lost mid-write gives no answer on whether the write
			// was applied; the driver must not replay it (a replayed dequeue
			// would lose the waiting player), so the error goes to the caller.
			NumRetries: 1,
			// Every connection of the pool at once: rethinkdb-go v6.2.1
			// creates missing and broken ones with an unsynchronised check
			// (Pool.conn), a data race between queries that run at once.
			InitialCap: conns,
			MaxOpen:    conns,
		})
	}
	sess, err := connect(poolSize)
	if err != nil {
		return nil, fmt.Errorf("open rethinkdb at %s: %w", where, err)
	}
	// The changefeed and the stats counter, each one goroutine, reconnect on
	// pools of their own: after an outage they and the requests would
	// otherwise rebuild broken connections of one pool at once, which is
	// that race. (Requests among themselves still share one pool.)
	feed, err := connect(2)
	if err != nil {
		sess.Close()
		return nil, fmt.Errorf("open rethinkdb at %s: %w", where, err)
	}
	count, err := connect(2)
	if err != nil {
		sess.Close()
		feed.Close()
		return nil, fmt.Errorf("open rethinkdb at %s: %w", where, err)
	}
	bg, stop := context.WithCancel(context.Background())
	s := &Rethink{
		sess: sess, feedSess: feed, countSess: count, db: r.DB(opt.DB), now: opt.Now, log: opt.Logger.With("store", "rethinkdb", "db", opt.DB),
		replica: opt.Replica, flush: opt.FlushInterval, owed: map[string]owedGame{},
		stop: stop, flushed: make(chan struct{}), watching: make(chan struct{}),
	}
	if err := s.createSchema(ctx, opt.DB); err != nil {
		stop()
		sess.Close()
		feed.Close()
		count.Close()
		return nil, fmt.Errorf("open rethinkdb at %s: %w", where, err)
	}
	s.mu.Lock()
	s.dirty = true // announce this replica at once
	s.mu.Unlock()
	ready := make(chan error, 1)
	go s.flushLoop(bg)
	go s.watch(bg, ready)
	select {
	case err = <-ready:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("open rethinkdb at %s: follow stats: %w", where, err)
	}
	if opt.Registerer != nil {
		opt.Registerer.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "tictac_store_game_reads_total",
			Help: "Games the RethinkDB store read. A move on a game this replica holds at its stored version (it wrote it, or another replica handed it over on the bus) reads none; joins and resumes read theirs.",
		}, func() float64 { return float64(s.loads.Load()) }))
	}
	return s, nil
}

// createSchema creates the database, its tables and the documents that must
// exist (the queue and the counters). "Already exists" means another replica
// got there first, which is fine. On a cluster, a table answers only once its
// replicas are ready, hence the wait. (A cluster of several RethinkDB servers
// does not serialize db_create and table_create across servers, so replicas
// starting at once through different servers of an empty cluster can create
// duplicates, rethinkdb/rethinkdb#4898; through one server they cannot.)
func (s *Rethink) createSchema(ctx context.Context, db string) error {
	opts := r.RunOpts{Context: ctx}
	if _, err := r.DBCreate(db).RunWrite(s.sess, opts); err != nil && !alreadyExists(err) {
		return fmt.Errorf("create database %s: %w", db, err)
	}
	tables := []string{tableGames, tableQueue, tableStats, tablePlayers}
	for _, t := range tables {
		if _, err := s.db.TableCreate(t).RunWrite(s.sess, opts); err != nil && !alreadyExists(err) {
			return fmt.Errorf("create table %s: %w", t, err)
		}
	}
	if _, err := s.db.Wait(r.WaitOpts{Timeout: 30}).RunWrite(s.sess, opts); err != nil {
		// reqlite has no wait; a table that answers a read is ready enough.
		for _, t := range tables {
			if _, rerr := s.db.Table(t).Count().Run(s.sess, opts); rerr != nil {
				return fmt.Errorf("wait for tables: %w (and table %s: %v)", err, t, rerr)
			}
		}
	}
	for _, ix := range []string{indexInvite, indexStatus, indexOwed} {
		if _, err := s.games().IndexCreate(ix).RunWrite(s.sess, opts); err != nil && !alreadyExists(err) {
			return fmt.Errorf("create index %s: %w", ix, err)
		}
	}
	// An index another replica just created may still be building.
	if err := s.games().IndexWait(indexInvite, indexStatus, indexOwed).Exec(s.sess, r.ExecOpts{Context: ctx}); err != nil {
		return fmt.Errorf("wait for indexes: %w", err)
	}
	// The counters start from those of older versions (one document per
	// counter) when there are any. Conflicts (the document exists) are
	// reported per document, not as a query error: they are what makes this
	// safe to run from every replica.
	var ids []any
	for i := range PlayersOnline {
		ids = append(ids, Stat(i).String())
	}
	var old []statDoc
	cur, err := s.db.Table(tableStats).GetAll(ids...).Run(s.sess, opts)
	if err == nil {
		err = cur.All(&old)
		cur.Close()
	}
	if err != nil {
		return fmt.Errorf("read old counters: %w", err)
	}
	values := map[string]any{}
	for i := range PlayersOnline {
		values[Stat(i).String()] = 0
	}
	for _, d := range old {
		values[d.ID] = d.Value
	}
	counters := map[string]any{"id": countersID, "values": values, "writers": map[string]any{}, "applied": map[string]any{}}
	if err := s.db.Table(tableStats).Insert(counters).Exec(s.sess, r.ExecOpts{Context: ctx}); err != nil {
		return fmt.Errorf("create counters: %w", err)
	}
	if err := s.db.Table(tableQueue).Insert(emptyQueue).Exec(s.sess, r.ExecOpts{Context: ctx}); err != nil {
		return fmt.Errorf("create queue: %w", err)
	}
	return nil
}

func alreadyExists(err error) bool { return strings.Contains(err.Error(), "already exists") }

// Close writes the pending stats, takes this replica's players out of
// PlayersOnline, ends every stats subscription and disconnects. Calls in
// progress finish first; later calls return ErrClosed.
func (s *Rethink) Close() error {
	s.once.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.ops.Wait()
		s.stop()
		<-s.flushed
		<-s.watching
		s.feed.closeAll()
		s.closeErr = errors.Join(s.sess.Close(), s.feedSess.Close(), s.countSess.Close())
	})
	return s.closeErr
}

// enter registers a call, or returns ErrClosed.
func (s *Rethink) enter() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	s.ops.Add(1)
	return nil
}

// writeCtx returns the context of a write: see writeTimeout.
func writeCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
}

// stamp returns the current time at the precision RethinkDB keeps, so that a
// returned game equals its stored self.
func (s *Rethink) stamp() time.Time { return s.now().Round(0).Truncate(time.Millisecond) }

// queueDoc is the quick-match queue: the game waiting for an opponent and its
// player, or empty strings.
type queueDoc struct {
	ID     string `rethinkdb:"id"`
	Game   string `rethinkdb:"game"`
	Player string `rethinkdb:"player"`
}

var emptyQueue = map[string]any{"id": queueID, "game": "", "player": ""}

// writeResult is the answer to a write with return_changes.
type writeResult[T any] struct {
	Inserted   int    `rethinkdb:"inserted"`
	Replaced   int    `rethinkdb:"replaced"`
	Deleted    int    `rethinkdb:"deleted"`
	Unchanged  int    `rethinkdb:"unchanged"`
	Skipped    int    `rethinkdb:"skipped"`
	Errors     int    `rethinkdb:"errors"`
	FirstError string `rethinkdb:"first_error"`
	Changes    []struct {
		Old *T `rethinkdb:"old_val"`
		New *T `rethinkdb:"new_val"`
	} `rethinkdb:"changes"`
}

func (w *writeResult[T]) old() *T {
	if len(w.Changes) == 0 {
		return nil
	}
	return w.Changes[0].Old
}

func (w *writeResult[T]) new() *T {
	if len(w.Changes) == 0 {
		return nil
	}
	return w.Changes[0].New
}

func runWrite[T any](ctx context.Context, sess *r.Session, t r.Term) (writeResult[T], error) {
	var w writeResult[T]
	if err := t.ReadOne(&w, sess, r.RunOpts{Context: ctx}); err != nil {
		return w, err
	}
	if w.Errors > 0 {
		return w, errors.New(w.FirstError)
	}
	return w, nil
}

func (s *Rethink) games() r.Term { return s.db.Table(tableGames) }

// errGone means the waiting game a joiner took from the queue was left
// before it could be paired.
var errGone = errors.New("waiting game gone")

// Join pairs player with the waiting game, or opens a waiting game with id
// newID when there is none. A player who already waits gets its own game
// back. The returned game is InProgress when paired and Waiting otherwise.
//
// The queue is one document, {id: "quick", game, player}, holding at most one
// waiting game; every change to it is one atomic replace, and the game
// documents are the arbiters of their own state:
//
//  1. Take: if the queue holds another player's game, empty it and keep that
//     game; the replace returns the old value, so exactly one joiner takes
//     each waiting game. Then pair: set the game InProgress with this player
//     as O, only if it is still Waiting. If it is not (its player left
//     meanwhile: Leave deletes the game first), go back to 1.
//  2. If the queue held this player's own game, return it.
//  3. If the queue was empty, insert the new Waiting game, then enqueue it
//     only if the queue is still empty. If another player enqueued first,
//     take their game in that same write and pair as in 1 (deleting the new
//     game), or go back to 1 if it is gone.
//
// First of all, a player seated in a quick game in progress gets that game
// back: its seat is recorded before the write that takes it (before 1's pair
// and 3's enqueue), so that a join whose write was applied but whose answer
// was lost leaves no game that one player is never told of.
//
// So no game gets a third player (only its taker writes O, once), no game has
// one player on both teams (take skips one's own game), and two players never
// wait at once (only one waiting game is ever enqueued; a joiner who finds it
// taken pairs with it). Leave deletes a waiting game with a replace that
// requires it to be Waiting, then clears the queue if it still names it.
//
// Once Join has written anything it runs to its end even if ctx ends, so the
// queue is never left naming a game whose player was told the join failed.
// A replica that dies between take and pair leaves that waiter waiting until
// its socket closes; between insert and enqueue, an orphan Waiting game.
func (s *Rethink) Join(ctx context.Context, player, newID string) (Game, error) {
	if err := s.enter(); err != nil {
		return Game{}, fmt.Errorf("join: %w", err)
	}
	defer s.ops.Done()
	if err := ctx.Err(); err != nil {
		return Game{}, fmt.Errorf("join: %w", err)
	}
	ctx, cancel := writeCtx(ctx)
	defer cancel()
	g, err := s.join(ctx, player, newID)
	if err != nil {
		return Game{}, fmt.Errorf("join: %w", err)
	}
	return g, nil
}

func (s *Rethink) join(ctx context.Context, player, newID string) (Game, error) {
	var mine *Game // our new Waiting game, once inserted and not enqueued
	drop := func() {
		if mine != nil {
			if _, err := s.games().Get(mine.ID).Delete().RunWrite(s.sess, r.RunOpts{Context: ctx}); err != nil {
				s.log.Warn("delete unused waiting game", "game", mine.ID, "err", err)
			}
		}
	}
	// A join whose pairing was applied but answered with an error (the
	// database went away mid-answer) left the player seated in a game it was
	// never told of, its opponent waiting for it: the player's next join
	// takes that game up again.
	if g, err := s.active(ctx, player); err == nil && g.Status == game.InProgress && g.Mode == ModeQuick {
		return g, nil
	} else if err != nil && !errors.Is(err, ErrNotFound) {
		return Game{}, fmt.Errorf("player's game: %w", err)
	}
	for range maxAttempts {
		q, err := s.swapQueue(ctx, func(q r.Term) r.Term {
			return r.Branch(q.Field("game").Ne("").And(q.Field("player").Ne(player)), emptyQueue, q)
		})
		if err != nil {
			drop()
			return Game{}, fmt.Errorf("take from queue: %w", err)
		}
		switch {
		case q.Game != "" && q.Player == player:
			drop()
			return s.load(ctx, q.Game)
		case q.Game != "":
			g, err := s.pair(ctx, q.Game, player)
			if errors.Is(err, errGone) {
				continue
			}
			drop()
			return g, err
		}
		if mine == nil {
			// The seat and the game in one query; the game is deleted
			// again if the answer is an error, as it may have landed.
			g := Game{ID: newID, PlayerX: player, Game: game.New(), Created: s.stamp()}
			w, err := runWrite[doc](ctx, s.sess, s.seated(player, newID, func() r.Term { return s.games().Insert(insertDoc(&g)) }))
			if err != nil && strings.Contains(err.Error(), "Duplicate primary key") || err == nil && w.Inserted != 1 {
				return Game{}, fmt.Errorf("game id %q already exists", newID) // someone else's: not ours to delete
			}
			if err != nil {
				mine = &g
				drop()
				return Game{}, fmt.Errorf("insert game %s: %w", newID, err)
			}
			mine = &g
		}
		// Enqueue ours; or, if another player enqueued meanwhile, take
		// theirs in the same write, as step 1 would.
		q, err = s.swapQueue(ctx, func(q r.Term) r.Term {
			return r.Branch(q.Field("game").Eq(""), map[string]any{"id": queueID, "game": newID, "player": player},
				r.Branch(q.Field("player").Ne(player), emptyQueue, q))
		})
		if err != nil {
			drop()
			return Game{}, fmt.Errorf("enqueue: %w", err)
		}
		switch {
		case q.Game == "":
			return *mine, nil
		case q.Player == player:
			drop()
			return s.load(ctx, q.Game)
		}
		g, err := s.pair(ctx, q.Game, player)
		if errors.Is(err, errGone) {
			continue
		}
		drop()
		return g, err
	}
	drop()
	return Game{}, ErrConflict
}

// swapQueue replaces the queue document with fn of it, atomically, and
// returns what it was. A missing queue counts as empty.
func (s *Rethink) swapQueue(ctx context.Context, fn func(q r.Term) r.Term) (queueDoc, error) {
	w, err := runWrite[queueDoc](ctx, s.sess, s.db.Table(tableQueue).Get(queueID).Replace(
		func(q r.Term) any { return fn(q.Default(emptyQueue)) },
		r.ReplaceOpts{ReturnChanges: "always"}))
	if err != nil {
		return queueDoc{}, err
	}
	if old := w.old(); old != nil {
		return *old, nil
	}
	return queueDoc{}, nil
}

// pair makes player the O of waiting game id, or returns errGone. The
// player's seat is recorded first, in the same query.
func (s *Rethink) pair(ctx context.Context, id, player string) (Game, error) {
	started := s.stamp()
	w, err := runWrite[doc](ctx, s.sess, s.seated(player, id, func() r.Term {
		return s.games().Get(id).Replace(func(d r.Term) any {
			return r.Branch(d.Eq(nil), nil,
				r.Branch(d.Field("status").Eq(game.Waiting.String()).And(d.Field("playerX").Ne(player)),
					d.Merge(map[string]any{"status": game.InProgress.String(), "playerO": player, "started": started,
						"version": d.Field("version").Default(0).Add(1), "owed": true}),
					d))
		}, r.ReplaceOpts{ReturnChanges: "always"})
	}))
	if err != nil {
		return Game{}, fmt.Errorf("pair with game %s: %w", id, err)
	}
	if w.Replaced != 1 || w.old() == nil || w.new() == nil {
		return Game{}, errGone
	}
	g, err := fromDoc(w.new())
	if err != nil {
		return Game{}, err
	}
	s.owe(nil, &g)
	return g, nil
}

// Leave takes player out of game id. A waiting game is deleted and returned as
// it was (Waiting), and out of the queue if it was in it; a game in progress
// is resigned: the opponent wins (Reason "resign"). It returns ErrNotFound,
// ErrNotPlayer, or game.ErrOver when the game had already ended.
func (s *Rethink) Leave(ctx context.Context, id, player string) (Game, error) {
	if err := s.enter(); err != nil {
		return Game{}, fmt.Errorf("leave game %s: %w", id, err)
	}
	defer s.ops.Done()
	g, err := s.leave(ctx, id, player)
	if err != nil {
		return Game{}, fmt.Errorf("leave game %s: %w", id, err)
	}
	return g, nil
}

func (s *Rethink) leave(ctx context.Context, id, player string) (Game, error) {
	for range maxAttempts {
		g, err := s.load(ctx, id)
		if err != nil {
			return Game{}, err
		}
		if g.Team(player) == game.Empty {
			return Game{}, ErrNotPlayer
		}
		if g.Status != game.Waiting {
			// A game never goes back to waiting, so resigning is all that is left.
			now := s.stamp()
			g, err, _ := s.apply(ctx, g, func(g *Game) error { return g.Resign(player, now) })
			if s.updated(id, g, err) != nil {
				return Game{}, err
			}
			return g, nil
		}
		wctx, cancel := writeCtx(ctx)
		g, err = s.leaveWaiting(wctx, g, nil)
		cancel()
		if errors.Is(err, ErrConflict) {
			continue // paired meanwhile: resign instead
		}
		return g, err
	}
	return Game{}, ErrConflict
}

// leaveWaiting deletes waiting game g if it is still waiting (and, if cond
// is given, cond of the stored document holds), then takes it out of the
// queue. Deleting first is what makes a concurrent pair fail. ErrConflict
// if it was not deleted.
func (s *Rethink) leaveWaiting(ctx context.Context, g Game, cond func(d r.Term) r.Term) (Game, error) {
	w, err := runWrite[doc](ctx, s.sess, s.games().Get(g.ID).Replace(func(d r.Term) any {
		drop := d.Field("status").Eq(game.Waiting.String())
		if cond != nil {
			drop = drop.And(cond(d))
		}
		return r.Branch(d.Eq(nil), nil, r.Branch(drop, nil, d))
	}))
	if err != nil {
		return Game{}, err
	}
	if w.Deleted != 1 {
		return Game{}, ErrConflict
	}
	if g.Mode == ModeFriend {
		return g, nil // never queued
	}
	if _, err := s.swapQueue(ctx, func(q r.Term) r.Term {
		return r.Branch(q.Field("game").Eq(g.ID), emptyQueue, q)
	}); err != nil {
		// The game is gone, so a joiner who takes it goes on to the next.
		s.log.Warn("clear queue", "game", g.ID, "err", err)
	}
	return g, nil
}

// Expire deletes friend's game id, waiting for the friend, if its player is
// still away with deadline (see SetAway): its invite dies with it. It
// returns the game as it was, or ErrNotAway if the player came back or the
// friend came, ErrNotFound or ErrNotPlayer.
func (s *Rethink) Expire(ctx context.Context, id, player string, deadline int64) (Game, error) {
	if err := s.enter(); err != nil {
		return Game{}, fmt.Errorf("expire game %s: %w", id, err)
	}
	defer s.ops.Done()
	g, err := s.load(ctx, id)
	if err == nil {
		err = g.expiring(player, deadline)
	}
	if err != nil {
		return Game{}, fmt.Errorf("expire game %s: %w", id, err)
	}
	i := int(g.Team(player)) - 1
	wctx, cancel := writeCtx(ctx)
	defer cancel()
	g, err = s.leaveWaiting(wctx, g, func(d r.Term) r.Term { return d.Field("away").Nth(i).Eq(deadline) })
	if errors.Is(err, ErrConflict) {
		err = ErrNotAway // the player came back, or the friend came, meanwhile
	}
	if err != nil {
		return Game{}, fmt.Errorf("expire game %s: %w", id, err)
	}
	s.known.drop(id)
	return g, nil
}

// Move fills square (x, y) of game id for player, whose team the game knows.
// The move is stored when Move returns. Refusals change nothing: ErrNotFound,
// ErrNotPlayer, ErrDuplicateMove (with the game as it is), or one of the game
// package's errors. Concurrent moves in one game are applied one at a time
// (see Update).
func (s *Rethink) Move(ctx context.Context, id, player string, x, y int, moveID string) (Game, error) {
	return s.Update(ctx, id, func(g *Game) error { return g.PlayMove(player, x, y, moveID, s.stamp()) })
}

// Update applies fn to game id and stores the result. If fn returns an error
// nothing is written and Update returns the game as it was with that error
// (wrapped). ErrNotFound if there is no such game.
//
// The write is a compare-and-set on the game's version: when another call
// wrote the game in between, fn runs again on what that call stored, so fn
// may run more than once and must depend only on the game it is given. A
// game in progress that this replica wrote or read last is not read again:
// fn runs on it as known, and the compare-and-set (which answers a stale
// version with the stored game) or a refusal (checked against the stored
// game) costs the read that was skipped, so a move takes one query when
// nobody else wrote the game meanwhile and two otherwise, as before.
func (s *Rethink) Update(ctx context.Context, id string, fn func(*Game) error) (Game, error) {
	if err := s.enter(); err != nil {
		return Game{}, fmt.Errorf("update game %s: %w", id, err)
	}
	defer s.ops.Done()
	if g, ok := s.known.get(id); ok {
		g, err, refused := s.apply(ctx, g, fn)
		if !refused {
			return g, s.updated(id, g, err)
		}
		// Refused by the game as this replica last knew it, which may be
		// stale (the opponent moved through another replica): the stored
		// game decides.
	}
	g, err := s.load(ctx, id)
	if err != nil {
		return Game{}, fmt.Errorf("update game %s: %w", id, err)
	}
	g, err, _ = s.apply(ctx, g, fn)
	return g, s.updated(id, g, err)
}

// Learn tells the store of game g as another replica just stored it (the
// hub passes it on with the move's bus message). A game in progress that the
// store knows at its stored version takes the next move in one query, the
// compare-and-set, instead of two: without it, each player's replica would
// know the game as of its own player's last move, and every move in a game
// whose players sit on different replicas would first be refused by the
// stale game and then read. decode returns the game as stored at version,
// and is called, during the call only, unless the store knows the game at
// that version or a later one. A game learnt late never replaces a newer
// one, and is at worst stale, like a game this replica wrote before another
// replica did: the compare-and-set catches that.
func (s *Rethink) Learn(id string, version int64, decode func() (Game, error)) {
	if s.known.knows(id, version) {
		return
	}
	if g, err := decode(); err == nil {
		s.known.put(g)
	}
}

// updated keeps what Update learnt of game id and wraps its error.
func (s *Rethink) updated(id string, g Game, err error) error {
	switch {
	case err == nil:
		s.known.put(g)
	case g.ID != "": // refused: g is the game as stored
		s.known.put(g)
	default:
		s.known.drop(id)
	}
	if err != nil {
		return fmt.Errorf("update game %s: %w", id, err)
	}
	return nil
}

// knownGames is a bounded map of games in progress by id, safe for
// concurrent use. Its games are ones that were stored at their version:
// never newer than the stored game, at worst older.
type knownGames struct {
	mu    sync.Mutex
	games map[string]Game
}

// maxKnown bounds knownGames; past it the map starts over.
const maxKnown = 1 << 16

func (k *knownGames) get(id string) (Game, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	g, ok := k.games[id]
	return g, ok
}

// put remembers g while it is in progress, and forgets it once it is over.
func (k *knownGames) put(g Game) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if g.Status != game.InProgress {
		delete(k.games, g.ID)
		return
	}
	if k.games == nil || len(k.games) >= maxKnown {
		k.games = make(map[string]Game)
	}
	if cur, ok := k.games[g.ID]; !ok || cur.Version <= g.Version {
		g.History = slices.Clip(g.History) // an append by a caller makes a new array
		k.games[g.ID] = g
	}
}

// knows reports whether k holds game id at version or a later one.
func (k *knownGames) knows(id string, version int64) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	g, ok := k.games[id]
	return ok && g.Version >= version
}

func (k *knownGames) drop(id string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.games, id)
}

// apply is Update from game before, as read or known. On a refusal by fn it
// returns the game fn refused with, that error, and refused set; on any
// other error, a zero Game.
func (s *Rethink) apply(ctx context.Context, before Game, fn func(*Game) error) (_ Game, _ error, refused bool) {
	for attempt := range casAttempts {
		if attempt > 0 {
			if err := backoff(ctx, attempt); err != nil {
				return Game{}, err, false
			}
		}
		g := before
		g.History = slices.Clone(before.History)
		if err := fn(&g); err != nil {
			return before, err, true
		}
		g.Version = before.Version + 1
		truncate(&g)
		wctx, cancel := writeCtx(ctx)
		ok, cur, err := s.cas(wctx, &before, &g)
		if err == nil && ok {
			s.owe(&before, &g)
			s.enterPlayers(wctx, &before, &g)
		}
		cancel()
		switch {
		case err != nil:
			return Game{}, err, false
		case ok:
			return g, nil, false
		}
		before = cur
	}
	return Game{}, ErrConflict, false
}

// casAttempts bounds the compare-and-set attempts of one Update. Every failed
// attempt means another call wrote the game, and a game may have many
// writers at once (its spectators come and go), hence a generous bound.
const casAttempts = 128

// backoff waits a little, at random, before attempt (1, 2, ...) of a
// compare-and-set, so that writers who keep colliding spread out. It returns
// ctx's error if ctx ends first: nothing was written yet.
func backoff(ctx context.Context, attempt int) error {
	if attempt < 3 {
		return nil // the first retries are the cheap ones: go again at once
	}
	d := time.Duration(rand.Int64N(int64(min(attempt, 20)) * int64(time.Millisecond)))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// cas replaces game before with after if the stored game still has before's
// version (a document written before versions existed has version 0). It
// reports whether it did and, when it did not, the game as it is now. It
// returns ErrNotFound if the game is gone.
//
// The write sends only what changed (a move: its board's new entry appended
// to moves, the version, the status when it ends), not the whole document,
// and asks for no changes back: a refused write, rare since the replica of
// the player who moves next holds the game as stored, reads the game
// afterwards. On the RethinkDB stand-in, returning nothing took a move's
// write from 1.03 to 0.78 ms (p50), and sending only the change to 0.51 ms
// (BenchmarkRethinkMove/Move).
func (s *Rethink) cas(ctx context.Context, before, after *Game) (bool, Game, error) {
	// The counting fields (see flushCounts) are the store's, not the game's:
	// they are kept, with owed set if the change counts for anything. A
	// document from before they existed was counted as it was.
	prev, next := encodeDoc(before), encodeDoc(after)
	counted, owed := vec(Expected(before)), delta(before, after) != (Stats{})
	var q r.Term
	if patch, ok := patchDoc(prev, next); ok {
		q = s.games().Get(before.ID).Update(func(d r.Term) any {
			if n := len(before.History); len(after.History) == n+1 && movesEqual(prev["moves"], next["moves"], n) {
				patch["moves"] = d.Field("moves").Append(next["moves"].([]moveDoc)[n])
			}
			patch["counted"] = d.Field("counted").Default(counted)
			if owed {
				patch["owed"] = true
			}
			return r.Branch(d.Field("version").Default(0).Eq(before.Version), patch, map[string]any{})
		})
	} else {
		next["counted"] = counted
		q = s.games().Get(before.ID).Replace(func(d r.Term) any {
			// owed is true, null or absent: the stored one stays unless
			// this change sets it.
			keep := d.Pluck("counted", "claim")
			if owed {
				keep = keep.Merge(map[string]any{"owed": true})
			} else {
				keep = keep.Merge(map[string]any{"owed": d.Field("owed").Default(nil)})
			}
			return r.Branch(d.Eq(nil), nil,
				r.Branch(d.Field("version").Default(0).Eq(before.Version), r.Expr(next).Merge(keep), d))
		})
	}
	w, err := runWrite[doc](ctx, s.sess, q)
	if err != nil {
		return false, Game{}, err
	}
	if w.Replaced == 1 {
		return true, Game{}, nil
	}
	g, err := s.load(ctx, before.ID)
	return false, g, err
}

// patchDoc returns the fields of document next that differ from prev's, for
// an update, or false if next lacks one of prev's (only a replace drops one).
func patchDoc(prev, next map[string]any) (map[string]any, bool) {
	patch := map[string]any{}
	for k, v := range prev {
		w, ok := next[k]
		if !ok {
			return nil, false
		}
		if !reflect.DeepEqual(v, w) {
			patch[k] = w
		}
	}
	for k, w := range next {
		if _, ok := prev[k]; !ok {
			patch[k] = w
		}
	}
	return patch, true
}

// movesEqual reports whether the first n moves of a and b are the same.
func movesEqual(a, b any, n int) bool {
	x, y := a.([]moveDoc), b.([]moveDoc)
	return len(x) >= n && len(y) >= n && slices.Equal(x[:n], y[:n])
}

// Create stores a new game: a friend's game waiting with its invite code, a
// game against the computer, a rematch. Its times are kept to the
// millisecond, as stored. It fails if the id or the invite is taken (the
// invite is checked before the insert, not atomically with it: codes are
// random, 50 bits).
func (s *Rethink) Create(ctx context.Context, g Game) (Game, error) {
	if err := s.enter(); err != nil {
		return Game{}, fmt.Errorf("create game: %w", err)
	}
	defer s.ops.Done()
	g.History = slices.Clone(g.History)
	truncate(&g)
	if g.Invite != "" {
		var n int
		if err := s.games().GetAllByIndex(indexInvite, g.Invite).Count().ReadOne(&n, s.sess, r.RunOpts{Context: ctx}); err != nil {
			return Game{}, fmt.Errorf("create game: look up invite: %w", err)
		}
		if n > 0 {
			return Game{}, fmt.Errorf("create game: invite %q already exists", g.Invite)
		}
	}
	if err := ctx.Err(); err != nil {
		return Game{}, fmt.Errorf("create game: %w", err)
	}
	wctx, cancel := writeCtx(ctx)
	defer cancel()
	if _, err := runWrite[doc](wctx, s.sess, s.games().Insert(insertDoc(&g))); err != nil {
		return Game{}, fmt.Errorf("create game %s: %w", g.ID, err)
	}
	s.owe(nil, &g)
	s.enterPlayers(wctx, nil, &g)
	return g, nil
}

// Game loads game id. It returns ErrNotFound if there is none.
func (s *Rethink) Game(ctx context.Context, id string) (Game, error) {
	if err := s.enter(); err != nil {
		return Game{}, fmt.Errorf("load game %s: %w", id, err)
	}
	defer s.ops.Done()
	g, err := s.load(ctx, id)
	if err != nil {
		return Game{}, fmt.Errorf("load game %s: %w", id, err)
	}
	return g, nil
}

func (s *Rethink) load(ctx context.Context, id string) (Game, error) {
	s.loads.Add(1)
	cur, err := s.games().Get(id).Run(s.sess, r.RunOpts{Context: ctx})
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
	return fromDoc(&d)
}

// Games calls fn with every stored game, in id order, until fn returns false.
func (s *Rethink) Games(ctx context.Context, fn func(Game) bool) error {
	if err := s.enter(); err != nil {
		return fmt.Errorf("list games: %w", err)
	}
	defer s.ops.Done()
	cur, err := s.games().OrderBy(r.OrderByOpts{Index: "id"}).Run(s.sess, r.RunOpts{Context: ctx})
	if err != nil {
		return fmt.Errorf("list games: %w", err)
	}
	defer cur.Close()
	var d doc
	for cur.Next(&d) {
		g, err := fromDoc(&d)
		if err != nil {
			return fmt.Errorf("list games: %w", err)
		}
		if !fn(g) {
			return nil
		}
		d = doc{}
	}
	if err := cur.Err(); err != nil {
		return fmt.Errorf("list games: %w", err)
	}
	return nil
}

// encodeDoc returns g as stored, leaving out the times not reached yet and
// the empty optional fields (so that the invite index holds waiting games only).
func encodeDoc(g *Game) map[string]any {
	d := toDoc(g, 0)
	m := map[string]any{"id": d.ID, "status": d.Status, "playerX": d.PlayerX, "moves": d.Moves, "created": d.Created,
		"mode": d.Mode, "away": d.Away[:], "rematch": d.Rematch[:], "spectators": d.Spectators, "version": d.Version}
	for k, v := range map[string]string{"playerO": d.PlayerO, "winner": d.Winner, "level": d.Level,
		"invite": d.Invite, "reason": d.Reason, "next": d.Next} {
		if v != "" {
			m[k] = v
		}
	}
	if !d.Started.IsZero() {
		m["started"] = d.Started
	}
	if !d.Ended.IsZero() {
		m["ended"] = d.Ended
	}
	return m
}

// insertDoc is encodeDoc for a new game, which nothing has counted yet.
func insertDoc(g *Game) map[string]any {
	m := encodeDoc(g)
	m["counted"] = vec(Stats{})
	if Expected(g) != (Stats{}) {
		m["owed"] = true
	}
	return m
}

// truncate keeps g's times to the millisecond, as RethinkDB stores them, so
// that a returned game equals its stored self.
func truncate(g *Game) {
	ms := func(t time.Time) time.Time { return t.Round(0).Truncate(time.Millisecond) }
	g.Created, g.Started, g.Ended = ms(g.Created), ms(g.Started), ms(g.Ended)
	for i := range g.History {
		g.History[i].At = ms(g.History[i].At)
	}
}

// Ping checks that the database answers a query.
func (s *Rethink) Ping(ctx context.Context) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.ops.Done()
	var one int
	if err := r.Expr(1).ReadOne(&one, s.sess, r.RunOpts{Context: ctx}); err != nil {
		return fmt.Errorf("ping rethinkdb: %w", err)
	}
	return nil
}
