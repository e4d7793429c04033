package store

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	bolt "go.etcd.io/bbolt"

	"github.com/tictac/tictac/game"
)

// The buckets, numbered as the write-ahead log names them.
const (
	bGames   byte = iota
	bWaiting      // queue number -> game id, oldest first
	bStats        // stat id -> int64, big endian
	bInvites      // invite code -> id of the waiting friend game
	bPlayers      // player id -> id of the player's latest game
	bLive         // id of every game in progress -> nothing
	numBuckets
)

var bucketNames = [numBuckets][]byte{[]byte("games"), []byte("waiting"), []byte("stats"), []byte("invites"), []byte("players"), []byte("live")}

var (
	// bucketMeta holds keyWALSeq: the seq of the last log record the file includes.
	bucketMeta = []byte("meta")
	keyWALSeq  = []byte("walSeq")
)

const (
	// maxBatch bounds how many writes share one log record and one fsync.
	maxBatch = 256
	// checkpointEvery and checkpointBytes bound how much of the log there is
	// to replay on open (about 15,000 moves at 500 a second). A checkpoint
	// commits the Bolt file (10 to 150 ms: the pages of every game touched
	// since the last one, and two fsyncs) in the background, so checkpoints
	// are kept rare for the disk's sake, not for the moves': the cost hardly
	// grows with the interval, since the same games' pages are dirtied again
	// and again.
	checkpointEvery = 30 * time.Second
	checkpointBytes = 32 << 20
	// maxCached bounds the cache of games not over; past it the cache starts over.
	maxCached = 1 << 16
)

// BoltOptions configure OpenBolt.
type BoltOptions struct {
	// NoSync skips the fsyncs: writes survive a crash of the process but not
	// of the machine (like RethinkDB's soft durability).
	NoSync bool
	// Now returns the time stamped on games and moves; time.Now if nil.
	Now func() time.Time
	// Registerer, when set, gets the store's metrics: the log's fdatasync
	// latency, batch sizes and checkpoint times.
	Registerer prometheus.Registerer
	// Logger gets what the store has to tell the operator: a damaged log
	// at open. Nothing is logged if nil.
	Logger *slog.Logger
	// Grace is how long, after the store opens, a player has to come back
	// to a game the previous process left without a deadline for the
	// player (a crash), or with one that passed while no process ran: a
	// game in progress, or a friend's game waiting for the friend (see
	// restartGames). With 0 such friend games are cancelled and such
	// players of games in progress keep what they had.
	Grace time.Duration
}

// Bolt is the embedded store: every game and counter in one bbolt file, with
// a write-ahead log beside it in two files that take turns (the file's name
// with "-wal" and "-wal2" added).
//
// Writes go through one committer goroutine that runs every write waiting at
// that moment as one batch, appends the batch's changes to the log as one
// record and fdatasyncs it once, so concurrent moves share an fsync and a lone
// move never waits for company. The changes also go into a write transaction
// that stays open between checkpoints. A checkpoint hands the transaction to
// a goroutine that commits it to the file, and switches the log to its other
// file; the file it leaves is kept until the commit is durable. Meanwhile the
// committer goes on without a transaction: batches that only touch the games
// it holds decoded (every game in progress) run and are logged as before,
// their changes kept for the next transaction; an op that must read the file
// waits for the commit (see commit). Reads go through the committer too, so
// they see every acknowledged write. The committer keeps the games that are
// not over decoded, so a move does not decode and replay the game's history.
type Bolt struct {
	db      *bolt.DB
	wals    [2]*wal // the log's files; wals[cur] takes the appends
	cur     int
	now     func() time.Time
	grace   time.Duration // see BoltOptions.Grace
	log     *slog.Logger
	metrics *boltMetrics
	// ops queues writes for the committer. It holds a batch's worth so
	// that a write submitted while the committer syncs does not block: a
	// blocked sender is woken just to wait again, and on a busy machine
	// that wake-up lands where the writes the sync just acknowledged were
	// queued to run.
	ops  chan *op
	quit chan struct{}
	done chan struct{}
	once sync.Once
	// closeErr is what Close returns.
	closeErr error

	persisted Stats // written by the committer goroutine under feedMu
	online    atomic.Int64
	feed      feed
	feedMu    sync.Mutex // orders publishes from the committer and SetOnline

	// Owned by the committer goroutine (and by OpenBolt before it starts).
	tx       *bolt.Tx // open between checkpoints; nil while one commits
	buckets  buckets  // tx's buckets
	seq      uint64   // the last log record's seq
	ckptSeq  uint64   // the last seq the file includes
	ckptAt   time.Time
	cache    map[string]*cached // games not over, as of the last acknowledged batch
	over     map[string]bool    // games seen over lately, so that a join need not decode its player's last game
	staged   map[string]*cached // the batch's changes to cache; nil for deleted
	scratch  batch              // the batch being committed; its arrays serve the next one
	broken   error              // set when the log or the file failed; every write fails with it
	wantCkpt bool               // a checkpoint was asked for
	waiters  []*op              // Checkpoint calls, for the next checkpoint to start

	// The checkpoint in flight, if committing: its transaction is being
	// committed by a goroutine that sends the result on ckptDone.
	committing bool
	ckptDone   chan ckptResult
	ckptTo     uint64   // the seq it commits
	ckptOps    []*op    // Checkpoint calls it answers
	pending    [][]byte // payloads logged since it started, for the next transaction; appended under pendingMu
	pendingMu  sync.Mutex
	deferred   []*op  // ops that need the file, run once it is committed
	ready      []*op  // ops that needed the file and may now run, a few per batch
	commitHook func() // tests only: called by the goroutine before it commits
	caughtUp   int    // tests only: payloads the last checkpoint's goroutine applied
}

// cached is a decoded game and its place in the waiting queue. Its History is
// clipped, so an append to it by anyone makes a new array; it is never
// changed in place.
type cached struct {
	g     Game
	queue uint64
}

// op is one read or write: fn runs inside the batch and adds its effect on the
// stats to d. If fn returns a refusal it must not have written anything. fn
// may run more than once: while a checkpoint commits, an op that needs the
// file is undone and run again after the commit. An op with checkpoint set
// has no fn: it waits for a checkpoint.
type op struct {
	ctx        context.Context
	fn         func(b *batch, d *Stats) error
	checkpoint bool
	held       bool      // answered later than its batch: deferred, or waiting for a checkpoint
	putOff     time.Time // when it was deferred
	err        error
	done       chan struct{}
	// state says whether the committer took the op (opTaken) or its caller
	// gave up on it while it was queued (opAbandoned), whichever came first.
	state atomic.Int32
}

// op states.
const (
	opQueued int32 = iota
	opTaken
	opAbandoned
)

// batch is what an op works with: the open transaction, through methods that
// also log each change and keep the cache in step. Without a transaction (a
// checkpoint commits), reads of the file fail with errNeedFile and set
// needFile, and journal records what the op changed in s.staged so that it
// can be undone.
type batch struct {
	s        *Bolt
	log      walWriter
	needFile bool
	journal  []stagedWas
}

// stagedWas is an entry of s.staged as it was before an op changed it.
type stagedWas struct {
	id  string
	c   *cached
	had bool
}

// maxSpareLog is the largest payload array a batch leaves to the next.
const maxSpareLog = 256 << 10

// errNeedFile is what a read of the file returns while a checkpoint commits;
// the op is then put off until the commit is done.
var errNeedFile = errors.New("the store file is being committed")

// OpenBolt opens or creates the store file at path and its log, and replays
// into the file what the log holds beyond the file's last checkpoint. Waiting
// games no player can come back to are removed, and the players of games
// the previous process did not mark away are given time to come back (see
// restartGames). A log left beside a file that no longer exists is
// discarded. It fails if another process holds the file, or if the log does
// not continue the file (records missing between them).
func OpenBolt(path string, opt BoltOptions) (*Bolt, error) {
	_, statErr := os.Stat(path)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	db.NoSync = opt.NoSync
	// The second file is new in a data dir of a version with one log file:
	// it is created empty.
	names := [2]string{path + "-wal", path + "-wal2"}
	if errors.Is(statErr, fs.ErrNotExist) {
		// A log beside a new file belonged to a file that was deleted.
		for _, name := range names {
			if err := os.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
				db.Close()
				return nil, fmt.Errorf("open %s: %w", path, err)
			}
		}
	}
	s := &Bolt{db: db, now: opt.Now, grace: opt.Grace, log: opt.Logger, ops: make(chan *op, maxBatch), quit: make(chan struct{}), done: make(chan struct{}),
		cache: make(map[string]*cached), over: make(map[string]bool), staged: make(map[string]*cached), metrics: newBoltMetrics(opt.Registerer),
		ckptDone: make(chan ckptResult, 1)}
	closeAll := func() {
		for _, w := range s.wals {
			if w != nil {
				w.close()
			}
		}
		db.Close()
	}
	for i, name := range names {
		w, err := openWAL(name, !opt.NoSync)
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("open %s: %w", path, err)
		}
		w.synced = func(d time.Duration) { s.metrics.sync.Observe(d.Seconds()) }
		s.wals[i] = w
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if err := s.recoverOpen(); err != nil {
		if s.tx != nil {
			s.tx.Rollback()
		}
		closeAll()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	s.feed.last = s.persisted
	go s.commitLoop()
	return s, nil
}

// recoverOpen replays the log, clears the waiting games, reads the stats and
// checkpoints, leaving a new transaction open.
func (s *Bolt) recoverOpen() error {
	if err := s.begin(); err != nil {
		return err
	}
	if v := s.tx.Bucket(bucketMeta).Get(keyWALSeq); len(v) == 8 {
		s.ckptSeq = binary.BigEndian.Uint64(v)
	}
	s.seq = s.ckptSeq
	if err := s.replay(); err != nil {
		return err
	}
	if err := s.restartGames(); err != nil {
		return err
	}
	stats := s.buckets[bStats]
	for i := range s.persisted {
		if v := stats.Get([]byte(Stat(i).String())); len(v) == 8 {
			s.persisted[i] = int64(binary.BigEndian.Uint64(v))
		}
	}
	// The checkpoint switches to the other file: appends start with the
	// first, the name a single-file log had.
	s.cur = 1
	return s.checkpointNow()
}

// restartGames readies the games a previous process left for the players,
// none of whom is connected yet. A waiting quick game belongs to the socket
// that made it, gone with the process: it is deleted. A friend's game waits
// for its player to come back to it and its link to be used: it stays until
// the deadline it was given when its player's socket closed, and goes if that
// has passed (its link is dead; see AcceptInvite). A player of a game in
// progress has until the deadline it was given to come back before
// forfeiting (the hub arms it; see hub.Hub.Run), or, if that passed while no
// process ran, BoltOptions.Grace from now: nobody could come back meanwhile.
// A crash gave no deadline: the player then gets BoltOptions.Grace from now
// too.
func (s *Bolt) restartGames() error {
	games, waiting, invites := s.buckets[bGames], s.buckets[bWaiting], s.buckets[bInvites]
	c := waiting.Cursor()
	for k, id := c.First(); k != nil; k, id = c.First() {
		if err := games.Delete(id); err != nil {
			return err
		}
		if err := c.Delete(); err != nil {
			return err
		}
	}
	// Collected first, and copied: a bucket changed under a cursor may skip
	// keys, and a key read may point into a page that the change rewrites.
	var drop, keep, kept [][]byte
	now := s.now().UnixMilli()
	err := invites.ForEach(func(code, id []byte) error {
		g, q, err := loadQueued(games, id)
		switch {
		case errors.Is(err, ErrNotFound):
			drop = append(drop, bytes.Clone(code))
			return nil
		case err != nil:
			return err
		}
		switch deadline := g.Away[0]; {
		case deadline == 0 && s.grace > 0:
			g.Away[0] = now + s.grace.Milliseconds()
			g.Version++
			v, err := encodeGame(&g, q)
			if err != nil {
				return err
			}
			keep, kept = append(keep, bytes.Clone(id)), append(kept, v)
		case deadline == 0, now >= deadline:
			drop = append(drop, bytes.Clone(code))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, code := range drop {
		if err := games.Delete(bytes.Clone(invites.Get(code))); err != nil {
			return err
		}
		if err := invites.Delete(code); err != nil {
			return err
		}
	}
	if s.grace > 0 {
		err = s.buckets[bLive].ForEach(func(id, _ []byte) error {
			g, q, err := loadQueued(games, id)
			if err != nil {
				return err
			}
			marked := false
			for i, p := range []string{g.PlayerX, g.PlayerO} {
				if p != BotPlayer && g.Away[i] <= now {
					g.Away[i] = now + s.grace.Milliseconds()
					marked = true
				}
			}
			if !marked {
				return nil
			}
			g.Version++
			v, err := encodeGame(&g, q)
			if err != nil {
				return err
			}
			keep, kept = append(keep, bytes.Clone(id)), append(kept, v)
			return nil
		})
		if err != nil {
			return err
		}
	}
	for i, id := range keep {
		if err := games.Put(id, kept[i]); err != nil {
			return err
		}
	}
	return nil
}

// begin opens the write transaction that lasts until the next checkpoint.
func (s *Bolt) begin() error {
	tx, bk, err := s.open()
	if err != nil {
		return err
	}
	s.tx, s.buckets = tx, bk
	return nil
}

// open begins a write transaction and returns it with its buckets.
func (s *Bolt) open() (*bolt.Tx, buckets, error) {
	var bk buckets
	tx, err := s.db.Begin(true)
	if err != nil {
		return nil, bk, err
	}
	for i, name := range bucketNames {
		if bk[i], err = tx.CreateBucketIfNotExists(name); err != nil {
			tx.Rollback()
			return nil, bk, err
		}
	}
	if _, err = tx.CreateBucketIfNotExists(bucketMeta); err != nil {
		tx.Rollback()
		return nil, bk, err
	}
	return tx, bk, nil
}

// replay applies to the open transaction the log's records after s.seq, from
// both files in seq order. Each file holds one run of records in a row (see
// wal.records); the records after s.seq must follow on from it without a gap.
// What a file holds from before its last reset is in the Bolt file already,
// so it is at most s.seq and skipped.
func (s *Bolt) replay() error {
	type record struct {
		seq     uint64
		payload []byte
	}
	var recs []record
	for _, w := range s.wals {
		err := w.records(func(seq uint64, payload []byte) error {
			if seq > s.seq {
				recs = append(recs, record{seq, payload})
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("replay log: %w", err)
		}
		if w.damaged != 0 {
			s.log.Error("write-ahead log damaged: replayed up to the record before, and the writes logged from there on are lost; unless the machine crashed while writes went unsynced (-durability soft), the disk may be failing",
				"file", w.f.Name(), "record", w.damaged)
		}
	}
	slices.SortFunc(recs, func(a, b record) int { return cmp.Compare(a.seq, b.seq) })
	for _, r := range recs {
		if r.seq != s.seq+1 {
			return fmt.Errorf("replay log: %w: record %d follows %d", errWALCorrupt, r.seq, s.seq)
		}
		if err := walEntries(r.payload, s.buckets.apply); err != nil {
			return fmt.Errorf("replay log: record %d: %w", r.seq, err)
		}
		s.seq = r.seq
	}
	return nil
}

// buckets are a write transaction's buckets, by index.
type buckets [numBuckets]*bolt.Bucket

// apply writes log entry e to its bucket.
func (bk *buckets) apply(e walEntry) error {
	if int(e.bucket) >= len(bk) {
		return errWALCorrupt
	}
	b := bk[e.bucket]
	switch e.kind {
	case walPut:
		return b.Put(e.key, e.value)
	case walDelete:
		return b.Delete(e.key)
	default:
		return b.SetSequence(e.seq)
	}
}

// startCheckpoint hands the open transaction, with everything logged so far,
// to a goroutine that commits it, and switches the log to its other file,
// which the previous checkpoint emptied. The committer goes on without a
// transaction until finishCheckpoint. The Checkpoint calls waiting so far are
// answered by this checkpoint.
func (s *Bolt) startCheckpoint() {
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], s.seq)
	if err := s.tx.Bucket(bucketMeta).Put(keyWALSeq, v[:]); err != nil {
		s.broken = fmt.Errorf("checkpoint: %w", err)
		return
	}
	tx, hook := s.tx, s.commitHook
	s.tx, s.buckets = nil, [numBuckets]*bolt.Bucket{}
	s.committing, s.ckptTo, s.wantCkpt = true, s.seq, false
	s.ckptOps, s.waiters = s.waiters, nil
	// The other file holds only records up to the last checkpoint, which
	// finishCheckpoint saw durable: it can be overwritten.
	s.cur ^= 1
	s.wals[s.cur].reset()
	go func() {
		if hook != nil {
			hook()
		}
		start := time.Now()
		r := ckptResult{commitErr: tx.Commit()}
		since(s.metrics.checkpoint, start)
		if r.commitErr == nil {
			r.tx, r.buckets, r.applied, r.err = s.catchUp()
		}
		s.ckptDone <- r
	}()
}

// ckptResult is what the checkpoint goroutine hands back: how the commit
// went and, if it went well, the next transaction with the first applied
// payloads of s.pending in it (or the error that stopped that).
type ckptResult struct {
	commitErr error
	tx        *bolt.Tx
	buckets   buckets
	applied   int
	err       error
}

// catchUpLeft is how many payloads logged during a checkpoint the checkpoint
// goroutine leaves to the committer (see catchUp).
const catchUpLeft = 8

// catchUp opens the transaction after a checkpoint and applies to it, in
// order, what the committer logged meanwhile, in rounds while more comes in,
// so that the committer, which stalls every move while it applies, is left
// only the last few payloads (applying a few hundred took it 10 ms at 2,500
// moves a second). Payloads are never changed once in s.pending, and the
// committer only appends to it, under pendingMu.
func (s *Bolt) catchUp() (*bolt.Tx, buckets, int, error) {
	tx, bk, err := s.open()
	if err != nil {
		return nil, bk, 0, err
	}
	applied := 0
	for range 8 {
		s.pendingMu.Lock()
		todo := s.pending[applied:]
		s.pendingMu.Unlock()
		if len(todo) <= catchUpLeft {
			break
		}
		for _, p := range todo {
			if err := walEntries(p, bk.apply); err != nil {
				tx.Rollback()
				return nil, bk, 0, err
			}
		}
		applied += len(todo)
	}
	return tx, bk, applied, nil
}

// finishCheckpoint takes the result of the checkpoint in flight: it takes
// the next transaction and applies to it the rest of the changes logged
// meanwhile, answers the Checkpoint calls, and runs the ops that waited for
// the file.
func (s *Bolt) finishCheckpoint(r ckptResult) {
	s.committing = false
	err := r.commitErr
	if err == nil {
		s.ckptSeq, s.ckptAt = s.ckptTo, time.Now()
		err = r.err
	}
	if err == nil {
		s.tx, s.buckets, s.caughtUp = r.tx, r.buckets, r.applied
		for _, p := range s.pending[r.applied:] {
			if err = walEntries(p, s.buckets.apply); err != nil {
				break
			}
		}
	}
	s.pendingMu.Lock()
	s.pending = nil
	s.pendingMu.Unlock()
	if err != nil && s.broken == nil {
		s.broken = fmt.Errorf("checkpoint: %w", err)
	}
	for _, o := range s.ckptOps {
		o.err = s.broken
		close(o.done)
	}
	s.ckptOps = nil
	for _, o := range s.deferred {
		o.held = false
		s.metrics.deferred.Observe(time.Since(o.putOff).Seconds())
	}
	s.ready = append(s.ready, s.deferred...)
	s.deferred = nil
}

// readyChunk is how many of the ops that waited for a checkpoint go into
// one batch. A checkpoint at 2,500 moves a second puts off a hundred joins
// or so, 8 ms of work; run at once they would hold up every move behind them.
const readyChunk = 16

// takeReady moves up to n ops that waited for a checkpoint into batch.
func (s *Bolt) takeReady(batch []*op, n int) []*op {
	n = min(n, len(s.ready))
	batch = append(batch, s.ready[:n]...)
	clear(s.ready[:n])
	s.ready = s.ready[n:]
	if len(s.ready) == 0 {
		s.ready = nil
	}
	return batch
}

// checkpointNow checkpoints and waits for the commit, for OpenBolt and Close.
func (s *Bolt) checkpointNow() error {
	if s.broken == nil {
		s.startCheckpoint()
	}
	if s.committing {
		s.finishCheckpoint(<-s.ckptDone)
	}
	return s.broken
}

// maybeCheckpoint starts a checkpoint when one is due and none is in flight.
func (s *Bolt) maybeCheckpoint() {
	if s.broken != nil {
		for _, o := range s.waiters {
			o.err = fmt.Errorf("store failed: %w", s.broken)
			close(o.done)
		}
		s.waiters = nil
		return
	}
	if !s.committing && (s.wantCkpt || len(s.waiters) > 0 || s.wals[s.cur].pos >= checkpointBytes) {
		s.startCheckpoint()
	}
}

// rollback drops the open transaction and rebuilds it from the file and the
// log, for a batch that failed half-way.
func (s *Bolt) rollback() error {
	clear(s.cache)
	if s.tx != nil {
		s.tx.Rollback()
		s.tx = nil
	}
	if err := s.begin(); err != nil {
		return err
	}
	want := s.seq
	s.seq = s.ckptSeq
	if err := s.replay(); err != nil {
		return err
	}
	if s.seq != want {
		return fmt.Errorf("%w: replayed up to record %d, want %d", errWALCorrupt, s.seq, want)
	}
	return nil
}

// Close finishes the writes already submitted, those still queued included,
// refuses new ones with ErrClosed (a write that races Close may get either),
// ends every stats subscription, waits for a checkpoint in flight,
// checkpoints and closes the files. It returns the error that stopped the
// store, if one did (what the log holds is then replayed by the next open).
// Closing again returns the same.
func (s *Bolt) Close() error {
	s.once.Do(func() {
		close(s.quit)
		<-s.done
		s.feed.closeAll()
		s.closeErr = errors.Join(s.broken, s.wals[0].close(), s.wals[1].close(), s.db.Close())
	})
	return s.closeErr
}

// Join pairs player with the oldest waiting game, or opens a waiting game with
// id newID when there is none. A player who already waits gets its own game
// back. The returned game is InProgress when paired and Waiting otherwise.
func (s *Bolt) Join(ctx context.Context, player, newID string) (Game, error) {
	var g Game
	err := s.write(ctx, func(b *batch, d *Stats) error {
		// As on RethinkDB: a player seated in a quick game in progress gets
		// it back rather than a second one.
		id, err := b.get(bPlayers, []byte(player))
		if err != nil {
			return err
		}
		if id != nil && !s.over[string(id)] {
			cur, _, err := b.load(string(id))
			if err != nil && !errors.Is(err, ErrNotFound) {
				return fatal(err)
			}
			if err == nil && cur.Status == game.InProgress && cur.Mode == ModeQuick && cur.Team(player) != game.Empty {
				g = cur
				return nil
			}
		}
		waiting, err := b.bucket(bWaiting)
		if err != nil {
			return err
		}
		if k, id := waiting.Cursor().First(); k != nil {
			k = slices.Clone(k)
			if g, _, err = b.load(string(id)); err != nil {
				return fatal(err)
			}
			if g.PlayerX == player {
				return nil
			}
			before := g
			g.PlayerO, g.Started = player, s.now()
			g.Version++
			if err := g.Start(); err != nil {
				return fatal(err)
			}
			if err := b.del(bWaiting, k); err != nil {
				return err
			}
			add(d, delta(&before, &g))
			return b.save(&before, &g, 0)
		}
		if _, _, err := b.load(newID); !errors.Is(err, ErrNotFound) {
			return fmt.Errorf("game id %q already exists", newID)
		}
		q, err := b.nextSequence(bWaiting)
		if err != nil {
			return err
		}
		g = Game{ID: newID, PlayerX: player, Game: game.New(), Created: s.now()}
		if err := b.put(bWaiting, queueKey(q), []byte(newID)); err != nil {
			return err
		}
		return b.save(nil, &g, q)
	})
	if err != nil {
		return Game{}, fmt.Errorf("join: %w", err)
	}
	return g, nil
}

// Leave takes player out of game id. A waiting game is deleted and returned as
// it was (Waiting); a game in progress is resigned: the opponent wins. It
// returns ErrNotFound, ErrNotPlayer, or game.ErrOver when the game had already
// ended.
func (s *Bolt) Leave(ctx context.Context, id, player string) (Game, error) {
	var g Game
	err := s.write(ctx, func(b *batch, d *Stats) error {
		var q uint64
		var err error
		if g, q, err = b.load(id); err != nil {
			return err
		}
		if g.Team(player) == game.Empty {
			return ErrNotPlayer
		}
		if g.Status == game.Waiting {
			return b.dropWaiting(&g, q)
		}
		before := g
		if err := g.Resign(player, s.now()); err != nil {
			return err
		}
		g.Version++
		add(d, delta(&before, &g))
		return b.save(&before, &g, 0)
	})
	if err != nil {
		return Game{}, fmt.Errorf("leave game %s: %w", id, err)
	}
	return g, nil
}

// Expire deletes friend's game id, waiting for the friend, if its player is
// still away with deadline (see SetAway): its invite dies with it. It
// returns the game as it was, or ErrNotAway if the player came back or the
// friend came, ErrNotFound or ErrNotPlayer.
func (s *Bolt) Expire(ctx context.Context, id, player string, deadline int64) (Game, error) {
	var g Game
	err := s.write(ctx, func(b *batch, d *Stats) error {
		var q uint64
		var err error
		if g, q, err = b.load(id); err != nil {
			return err
		}
		if err := g.expiring(player, deadline); err != nil {
			return err
		}
		return b.dropWaiting(&g, q)
	})
	if err != nil {
		return Game{}, fmt.Errorf("expire game %s: %w", id, err)
	}
	return g, nil
}

// dropWaiting deletes waiting game g, queued at q (0 if not), and its invite.
func (b *batch) dropWaiting(g *Game, q uint64) error {
	if q != 0 {
		if err := b.del(bWaiting, queueKey(q)); err != nil {
			return err
		}
	}
	if g.Invite != "" {
		if err := b.del(bInvites, []byte(g.Invite)); err != nil {
			return err
		}
	}
	return b.remove(g.ID)
}

// Move fills square (x, y) of game id for player, whose team the game knows.
// The move is durable when Move returns. Refusals change nothing: ErrNotFound,
// ErrNotPlayer, ErrDuplicateMove (with the game as it is), or one of the game
// package's errors.
func (s *Bolt) Move(ctx context.Context, id, player string, x, y int, moveID string) (Game, error) {
	return s.Update(ctx, id, func(g *Game) error { return g.PlayMove(player, x, y, moveID, s.now()) })
}

// Update applies fn to game id atomically and stores the result. If fn
// returns an error nothing is written and Update returns the game as it was
// with that error (wrapped). ErrNotFound if there is no such game.
func (s *Bolt) Update(ctx context.Context, id string, fn func(*Game) error) (Game, error) {
	var g Game
	err := s.write(ctx, func(b *batch, d *Stats) error { return b.update(id, fn, &g, d) })
	if err != nil {
		return g, fmt.Errorf("update game %s: %w", id, err)
	}
	return g, nil
}

// update is Update inside a batch; it leaves the game in *out.
func (b *batch) update(id string, fn func(*Game) error, out *Game, d *Stats) error {
	before, q, err := b.load(id)
	if err != nil {
		return err
	}
	g := before
	// A copy with room for the move most updates append: one array, not two.
	g.History = append(make([]Move, 0, len(before.History)+1), before.History...)
	if err := fn(&g); err != nil {
		*out = before
		return err
	}
	g.Version = before.Version + 1
	add(d, delta(&before, &g))
	*out = g
	return b.save(&before, &g, q)
}

// Create stores a new game: a friend's game waiting with its invite code, a
// game against the computer, a rematch. It fails if the id or invite is taken.
func (s *Bolt) Create(ctx context.Context, g Game) (Game, error) {
	err := s.write(ctx, func(b *batch, d *Stats) error {
		if _, _, err := b.load(g.ID); !errors.Is(err, ErrNotFound) {
			return fmt.Errorf("game id %q already exists", g.ID)
		}
		if g.Invite != "" {
			id, err := b.get(bInvites, []byte(g.Invite))
			if err != nil {
				return err
			}
			if id != nil {
				return fmt.Errorf("invite %q already exists", g.Invite)
			}
		}
		empty := Game{Game: game.New()}
		add(d, delta(&empty, &g))
		return b.save(nil, &g, 0)
	})
	if err != nil {
		return Game{}, fmt.Errorf("create game: %w", err)
	}
	return g, nil
}

// JoinInvite puts player in the friend game waiting with invite code. It
// returns ErrNotFound when no game waits with that code (wrong, used, or
// cancelled), and ErrNotPlayer when player is its creator.
func (s *Bolt) JoinInvite(ctx context.Context, player, code string) (Game, error) {
	var g Game
	now := s.now()
	err := s.write(ctx, func(b *batch, d *Stats) error {
		id, err := b.get(bInvites, []byte(code))
		if err != nil {
			return err
		}
		if id == nil {
			return fmt.Errorf("invite: %w", ErrNotFound)
		}
		err = b.update(string(id), func(g *Game) error { return g.AcceptInvite(player, code, now) }, &g, d)
		if err != nil {
			return fmt.Errorf("update game %s: %w", id, err)
		}
		return nil
	})
	if err != nil {
		return g, err
	}
	return g, nil
}

// Active returns player's latest game if it waits or is in progress, else ErrNotFound.
func (s *Bolt) Active(ctx context.Context, player string) (Game, error) {
	var g Game
	err := s.write(ctx, func(b *batch, d *Stats) error {
		id, err := b.get(bPlayers, []byte(player))
		if err != nil {
			return err
		}
		if id == nil || s.over[string(id)] {
			return ErrNotFound
		}
		if g, _, err = b.load(string(id)); err != nil {
			return err
		}
		if g.Status.Over() {
			return ErrNotFound
		}
		return nil
	})
	if err != nil {
		return Game{}, fmt.Errorf("active game: %w", err)
	}
	return g, nil
}

// Live returns up to limit games in progress.
func (s *Bolt) Live(ctx context.Context, limit int) ([]Game, error) {
	out, err := s.live(ctx, limit)
	if err != nil {
		return nil, fmt.Errorf("live games: %w", err)
	}
	return out, nil
}

// Playing calls fn with every game in progress, in no particular order,
// until fn returns false.
func (s *Bolt) Playing(ctx context.Context, fn func(Game) bool) error {
	// Listed first, then given to fn: fn may call the store, whose one
	// committer would be waiting for it.
	all, err := s.live(ctx, -1)
	if err != nil {
		return fmt.Errorf("games in progress: %w", err)
	}
	for _, g := range all {
		if !fn(g) {
			break
		}
	}
	return nil
}

// live returns up to limit games in progress, or all when limit is negative.
func (s *Bolt) live(ctx context.Context, limit int) ([]Game, error) {
	var out []Game
	err := s.write(ctx, func(b *batch, d *Stats) error {
		out = out[:0]
		live, err := b.bucket(bLive)
		if err != nil {
			return err
		}
		c := live.Cursor()
		for id, _ := c.First(); id != nil && (limit < 0 || len(out) < limit); id, _ = c.Next() {
			g, _, err := b.load(string(id))
			if err != nil {
				return err
			}
			out = append(out, g)
		}
		return nil
	})
	return out, err
}

// Game loads game id. It returns ErrNotFound if there is none.
func (s *Bolt) Game(ctx context.Context, id string) (Game, error) {
	var g Game
	err := s.write(ctx, func(b *batch, d *Stats) error {
		var err error
		g, _, err = b.load(id)
		return err
	})
	if err != nil {
		return Game{}, fmt.Errorf("load game %s: %w", id, err)
	}
	return g, nil
}

// Games calls fn with every stored game, in id order, until fn returns false.
// It sees the games as they were when it was called: it checkpoints, then
// reads the file.
func (s *Bolt) Games(ctx context.Context, fn func(Game) bool) error {
	if err := s.Checkpoint(ctx); err != nil {
		return err
	}
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketNames[bGames]).ForEach(func(k, v []byte) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			g, err := decode(v)
			if err != nil {
				return err
			}
			if !fn(g) {
				return errStop
			}
			return nil
		})
	})
	if errors.Is(err, errStop) {
		return nil
	}
	return err
}

// Checkpoint commits to the file everything acknowledged so far and starts the
// log over; it waits for a checkpoint in flight, then for one of its own. The
// committer checkpoints by itself every 30 seconds, or sooner when the log
// holds 32 MiB, and goes on with moves meanwhile.
func (s *Bolt) Checkpoint(ctx context.Context) error {
	o := &op{ctx: ctx, checkpoint: true, done: make(chan struct{})}
	if err := s.submit(o); err != nil {
		return err
	}
	return o.err
}

var errStop = errors.New("stop")

// Stats returns the current statistics; ErrClosed once the store is closed.
func (s *Bolt) Stats(ctx context.Context) (Stats, error) {
	if err := s.Ping(ctx); err != nil {
		return Stats{}, fmt.Errorf("stats: %w", err)
	}
	return s.feed.current(), nil
}

// WatchStats subscribes to the statistics: the current value first, then each
// change. The subscription ends with ctx, with Close, or when the store closes.
func (s *Bolt) WatchStats(ctx context.Context) (*Subscription, error) {
	select {
	case <-s.quit:
		return nil, ErrClosed
	default:
	}
	sub := s.feed.subscribe()
	context.AfterFunc(ctx, sub.Close)
	return sub, nil
}

// SetOnline sets the PlayersOnline gauge to n, the number of connected
// players; ErrClosed once the store is closed.
func (s *Bolt) SetOnline(ctx context.Context, n int64) error {
	if err := s.Ping(ctx); err != nil {
		return fmt.Errorf("set online: %w", err)
	}
	s.online.Store(n)
	s.publish()
	return nil
}

func (s *Bolt) publish() {
	s.feedMu.Lock()
	defer s.feedMu.Unlock()
	st := s.persisted
	st[PlayersOnline] = s.online.Load()
	s.feed.publish(st)
}

// write hands fn to the committer and waits for its batch to be durable.
func (s *Bolt) write(ctx context.Context, fn func(*batch, *Stats) error) error {
	o := &op{ctx: ctx, fn: fn, done: make(chan struct{})}
	if err := s.submit(o); err != nil {
		return err
	}
	return o.err
}

func (s *Bolt) submit(o *op) error {
	select {
	case <-s.quit:
		return ErrClosed
	default:
	}
	select {
	case s.ops <- o:
	case <-s.quit:
		return ErrClosed
	case <-o.ctx.Done():
		return o.ctx.Err()
	}
	ctxDone := o.ctx.Done()
	for {
		select {
		case <-o.done:
			return nil
		case <-ctxDone:
			// The caller may go while the op waits in the queue, as it
			// could while the queue had no room; once taken, the
			// committer's answer stands.
			if o.state.CompareAndSwap(opQueued, opAbandoned) {
				return o.ctx.Err()
			}
			ctxDone = nil
		case <-s.done:
			// Queued as the store closed, after the committer's last look.
			select {
			case <-o.done:
				return nil
			default:
				return ErrClosed
			}
		}
	}
}

func (s *Bolt) commitLoop() {
	defer close(s.done)
	tick := time.NewTicker(checkpointEvery / 4)
	defer tick.Stop()
	batch := make([]*op, 0, maxBatch)
	for {
		batch = batch[:0]
		if len(s.ready) > 0 {
			// Ops that waited for the last checkpoint go a few at a time,
			// with whatever comes meanwhile.
			batch = s.takeReady(batch, readyChunk)
		} else {
			select {
			case o := <-s.ops:
				batch = append(batch, o)
			case r := <-s.ckptDone:
				s.finishCheckpoint(r)
				s.maybeCheckpoint()
				continue
			case <-tick.C:
				if !s.committing && s.seq != s.ckptSeq && time.Since(s.ckptAt) >= checkpointEvery {
					s.wantCkpt = true
					s.maybeCheckpoint()
				}
				continue
			case <-s.quit:
				s.shutdown()
				return
			}
		}
		s.commit(s.collect(batch))
		s.maybeCheckpoint()
	}
}

// collect adds to batch, up to maxBatch, the ops queued.
func (s *Bolt) collect(batch []*op) []*op {
	for len(batch) < maxBatch {
		select {
		case o := <-s.ops:
			batch = append(batch, o)
		default:
			return batch
		}
	}
	return batch
}

// shutdown waits for the checkpoint in flight (and runs the ops that waited
// for it), runs the ops still queued, then checkpoints what the log holds,
// or drops the transaction when the store is broken (the next open replays
// the log).
func (s *Bolt) shutdown() {
	if s.committing {
		s.finishCheckpoint(<-s.ckptDone)
	}
	for len(s.ready) > 0 {
		s.commit(s.takeReady(nil, maxBatch))
	}
	for {
		batch := s.collect(nil)
		if len(batch) == 0 {
			break
		}
		s.commit(batch)
	}
	s.checkpointNow()
	s.maybeCheckpoint() // fails the Checkpoint calls left, if broken
	if s.tx != nil {
		s.tx.Rollback()
		s.tx = nil
	}
}

// commit runs a batch, logs its changes as one record and acknowledges it. A
// refused op keeps its error and the others go on; any other error undoes the
// whole batch and fails every op. Ops are acknowledged only once the record
// is durable, reads included, so nobody sees a write that a crash could undo.
//
// While a checkpoint commits there is no transaction: an op that reads the
// file (b.needFile) is undone, whatever it returned (its log entries, its
// changes to the staged games and to the stats), and put off until the
// commit is done; the others' changes are kept in s.pending for the next
// transaction. Checkpoint calls wait for the next checkpoint to start.
func (s *Bolt) commit(ops []*op) {
	defer func() {
		for _, o := range ops {
			if !o.held {
				close(o.done)
			}
		}
	}()
	if s.broken != nil {
		for _, o := range ops {
			o.err = fmt.Errorf("store failed: %w", s.broken)
		}
		return
	}
	s.metrics.batch.Observe(float64(len(ops)))
	var d Stats
	b := &s.scratch
	clear(b.journal)
	spare := b.log.b[:0]
	if cap(spare) > maxSpareLog {
		spare = nil // a rare large batch's array is not kept
	}
	*b = batch{s: s, log: walWriter{b: spare}, journal: b.journal[:0]}
	clear(s.staged)
	err := func() error {
		for _, o := range ops {
			if !o.state.CompareAndSwap(opQueued, opTaken) && o.state.Load() == opAbandoned {
				continue // its caller went while it was queued
			}
			if o.checkpoint {
				o.held = true
				s.waiters = append(s.waiters, o)
				continue
			}
			if err := o.ctx.Err(); err != nil {
				o.err = err
				continue
			}
			if s.tx == nil {
				logged, journaled, was := len(b.log.b), len(b.journal), d
				o.err = o.fn(b, &d)
				if b.needFile {
					b.undo(logged, journaled)
					d, b.needFile = was, false
					o.err, o.held, o.putOff = nil, true, time.Now()
					s.deferred = append(s.deferred, o)
					continue
				}
			} else {
				o.err = o.fn(b, &d)
			}
			var f fatalError
			if errors.As(o.err, &f) {
				return f.err
			}
		}
		if d == (Stats{}) {
			return nil
		}
		for i, v := range d {
			if v == 0 {
				continue
			}
			var buf [8]byte
			binary.BigEndian.PutUint64(buf[:], uint64(s.persisted[i]+v))
			if err := b.put(bStats, []byte(Stat(i).String()), buf[:]); err != nil {
				return err
			}
		}
		return nil
	}()
	if err == nil && len(b.log.b) > 0 {
		if err = s.wals[s.cur].append(s.seq+1, b.log.b); err != nil {
			// The record may be half on disk: nothing can be acknowledged
			// any more, the next open decides from the log.
			s.broken = err
		} else {
			s.seq++
			if s.tx == nil {
				s.pendingMu.Lock()
				s.pending = append(s.pending, b.log.b)
				s.pendingMu.Unlock()
				b.log.b = nil // the payload is s.pending's now
			}
		}
	}
	if err != nil {
		// Without a transaction the failed batch is only in the cache.
		if s.broken == nil && s.tx != nil {
			s.broken = s.rollback()
		}
		clear(s.cache)
		for _, o := range ops {
			if !o.held {
				o.err = fmt.Errorf("commit: %w", err)
			}
		}
		return
	}
	for id, c := range s.staged {
		if c == nil || c.g.Status.Over() {
			delete(s.cache, id)
			if c != nil {
				if len(s.over) >= maxCached {
					clear(s.over)
				}
				s.over[id] = true // for good: a game that is over stays over
			}
			continue
		}
		if len(s.cache) >= maxCached {
			clear(s.cache)
		}
		s.cache[id] = c
	}
	if d != (Stats{}) {
		s.feedMu.Lock()
		add(&s.persisted, d)
		s.feedMu.Unlock()
		s.publish()
	}
}

// bucket returns bucket i of the open transaction to read, or errNeedFile
// while a checkpoint commits (see commit). Every read of the file goes
// through it.
func (b *batch) bucket(i byte) (*bolt.Bucket, error) {
	if b.s.tx == nil {
		b.needFile = true
		return nil, errNeedFile
	}
	return b.s.buckets[i], nil
}

// get returns the value of k in bucket i, nil if there is none.
func (b *batch) get(i byte, k []byte) ([]byte, error) {
	bk, err := b.bucket(i)
	if err != nil {
		return nil, err
	}
	return bk.Get(k), nil
}

// stage sets the batch's change to the cache for game id, journaled while
// there is no transaction so that undo can take it back.
func (b *batch) stage(id string, c *cached) {
	if b.s.tx == nil {
		was, had := b.s.staged[id]
		b.journal = append(b.journal, stagedWas{id, was, had})
	}
	b.s.staged[id] = c
}

// undo takes back an op's log entries and changes to the staged games: what
// was logged after the first logged bytes and journaled after the first
// journaled entries.
func (b *batch) undo(logged, journaled int) {
	b.log.b = b.log.b[:logged]
	for i := len(b.journal) - 1; i >= journaled; i-- {
		if w := b.journal[i]; w.had {
			b.s.staged[w.id] = w.c
		} else {
			delete(b.s.staged, w.id)
		}
	}
	b.journal = b.journal[:journaled]
}

// load returns game id as the batch sees it, with its place in the waiting
// queue. ErrNotFound if there is none.
func (b *batch) load(id string) (Game, uint64, error) {
	s := b.s
	if c, ok := s.staged[id]; ok {
		if c == nil {
			return Game{}, 0, ErrNotFound
		}
		return c.g, c.queue, nil
	}
	if c, ok := s.cache[id]; ok {
		return c.g, c.queue, nil
	}
	games, err := b.bucket(bGames)
	if err != nil {
		return Game{}, 0, err
	}
	g, q, err := loadQueued(games, []byte(id))
	if err != nil {
		return Game{}, 0, err
	}
	b.stage(id, newCached(&g, q))
	return g, q, nil
}

func newCached(g *Game, queue uint64) *cached {
	c := &cached{g: *g, queue: queue}
	c.g.History = slices.Clip(c.g.History)
	return c
}

// put and del write to the log, and to the open transaction if there is one
// (else finishCheckpoint applies the log's entries to the next one).
func (b *batch) put(bucket byte, k, v []byte) error {
	if b.s.tx != nil {
		if err := b.s.buckets[bucket].Put(k, v); err != nil {
			return fatal(err)
		}
	}
	b.log.put(bucket, k, v)
	return nil
}

func (b *batch) del(bucket byte, k []byte) error {
	if b.s.tx != nil {
		if err := b.s.buckets[bucket].Delete(k); err != nil {
			return fatal(err)
		}
	}
	b.log.del(bucket, k)
	return nil
}

// nextSequence reads the bucket's sequence: it needs the file.
func (b *batch) nextSequence(bucket byte) (uint64, error) {
	bk, err := b.bucket(bucket)
	if err != nil {
		return 0, err
	}
	n, err := bk.NextSequence()
	if err != nil {
		return 0, fatal(err)
	}
	b.log.sequence(bucket, n)
	return n, nil
}

// remove deletes game id (not its indexes).
func (b *batch) remove(id string) error {
	if err := b.del(bGames, []byte(id)); err != nil {
		return err
	}
	b.stage(id, nil)
	return nil
}

// save writes g, which was before (nil for a new game), and keeps the
// indexes in step: invite codes, each player's latest game, games in progress.
func (b *batch) save(before, g *Game, queue uint64) error {
	v, err := encodeGame(g, queue)
	if err != nil {
		return fatal(err)
	}
	if err := b.put(bGames, []byte(g.ID), v); err != nil {
		return err
	}
	b.stage(g.ID, newCached(g, queue))
	var was Game
	if before != nil {
		was = *before
	}
	if was.Invite != g.Invite {
		if was.Invite != "" {
			if err := b.del(bInvites, []byte(was.Invite)); err != nil {
				return err
			}
		}
		if g.Invite != "" {
			if err := b.put(bInvites, []byte(g.Invite), []byte(g.ID)); err != nil {
				return err
			}
		}
	}
	for _, p := range []string{g.PlayerX, g.PlayerO} {
		if p != "" && p != BotPlayer && p != was.PlayerX && p != was.PlayerO {
			if err := b.put(bPlayers, []byte(p), []byte(g.ID)); err != nil {
				return err
			}
		}
	}
	switch {
	case g.Status == game.InProgress && was.Status != game.InProgress:
		return b.put(bLive, []byte(g.ID), nil)
	case g.Status != game.InProgress && was.Status == game.InProgress:
		return b.del(bLive, []byte(g.ID))
	}
	return nil
}

// fatalError marks an error after which a transaction may hold partial writes.
type fatalError struct{ err error }

func (f fatalError) Error() string { return f.err.Error() }
func (f fatalError) Unwrap() error { return f.err }

func fatal(err error) error { return fatalError{err} }

func add(s *Stats, d Stats) {
	for i, v := range d {
		s[i] += v
	}
}

func queueKey(q uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], q)
	return k[:]
}

// loadQueued decodes game id and returns its place in the waiting queue.
func loadQueued(games *bolt.Bucket, id []byte) (Game, uint64, error) {
	v := games.Get(id)
	if v == nil {
		return Game{}, 0, ErrNotFound
	}
	var d doc
	if err := json.Unmarshal(v, &d); err != nil {
		return Game{}, 0, fatal(fmt.Errorf("decode game %s: %w", id, err))
	}
	g, err := fromDoc(&d)
	if err != nil {
		return Game{}, 0, fatal(err)
	}
	return g, d.Queue, nil
}

func decode(v []byte) (Game, error) {
	var d doc
	if err := json.Unmarshal(v, &d); err != nil {
		return Game{}, fmt.Errorf("decode game: %w", err)
	}
	return fromDoc(&d)
}

// Ping reports whether the store is open; a file on a local disk does not go away.
func (s *Bolt) Ping(ctx context.Context) error {
	select {
	case <-s.quit:
		return ErrClosed
	default:
		return nil
	}
}
