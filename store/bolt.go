package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tictac/tictac/game"
)

var (
	bucketGames   = []byte("games")
	bucketWaiting = []byte("waiting") // queue number -> game id, oldest first
	bucketStats   = []byte("stats")   // stat id -> int64, big endian
	bucketInvites = []byte("invites") // invite code -> id of the waiting friend game
	bucketPlayers = []byte("players") // player id -> id of the player's latest game
	bucketLive    = []byte("live")    // id of every game in progress -> nothing
)

// maxBatch bounds how many writes share one transaction and one fsync.
const maxBatch = 256

// BoltOptions configure OpenBolt.
type BoltOptions struct {
	// NoSync skips the fsync at each commit: writes survive a crash of the
	// process but not of the machine (like RethinkDB's soft durability).
	NoSync bool
	// Now returns the time stamped on games and moves; time.Now if nil.
	Now func() time.Time
}

// Bolt is the embedded store: every game and counter in one bbolt file.
// Writes go through one committer goroutine that puts every write waiting at
// that moment into a single transaction, so concurrent moves share an fsync and
// a lone move never waits for company.
type Bolt struct {
	db   *bolt.DB
	now  func() time.Time
	ops  chan *op
	quit chan struct{}
	done chan struct{}
	once sync.Once

	persisted Stats // written by the committer goroutine under feedMu
	online    atomic.Int64
	feed      feed
	feedMu    sync.Mutex // orders publishes from the committer and SetOnline
}

// op is one write: fn runs inside the batch's transaction and adds its effect
// on the stats to d. If fn returns a refusal it must not have written anything.
type op struct {
	ctx  context.Context
	fn   func(tx *bolt.Tx, d *Stats) error
	err  error
	done chan struct{}
}

// OpenBolt opens or creates the store file at path. Waiting games left by a
// previous process are removed: a waiting game belongs to a connected socket.
// It fails if another process holds the file.
func OpenBolt(path string, opt BoltOptions) (*Bolt, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	db.NoSync = opt.NoSync
	s := &Bolt{db: db, now: opt.Now, ops: make(chan *op), quit: make(chan struct{}), done: make(chan struct{})}
	if s.now == nil {
		s.now = time.Now
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketGames, bucketWaiting, bucketStats, bucketInvites, bucketPlayers, bucketLive} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		games, waiting := tx.Bucket(bucketGames), tx.Bucket(bucketWaiting)
		c := waiting.Cursor()
		for k, id := c.First(); k != nil; k, id = c.First() {
			if err := games.Delete(id); err != nil {
				return err
			}
			if err := c.Delete(); err != nil {
				return err
			}
		}
		invites := tx.Bucket(bucketInvites)
		ic := invites.Cursor()
		for k, id := ic.First(); k != nil; k, id = ic.First() {
			if err := games.Delete(id); err != nil {
				return err
			}
			if err := ic.Delete(); err != nil {
				return err
			}
		}
		stats := tx.Bucket(bucketStats)
		for i := range s.persisted {
			if v := stats.Get([]byte(Stat(i).String())); len(v) == 8 {
				s.persisted[i] = int64(binary.BigEndian.Uint64(v))
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	s.feed.last = s.persisted
	go s.commitLoop()
	return s, nil
}

// Close finishes the writes already submitted, refuses new ones with ErrClosed,
// ends every stats subscription and closes the file.
func (s *Bolt) Close() error {
	s.once.Do(func() { close(s.quit) })
	<-s.done
	s.feed.closeAll()
	return s.db.Close()
}

// Join pairs player with the oldest waiting game, or opens a waiting game with
// id newID when there is none. A player who already waits gets its own game
// back. The returned game is InProgress when paired and Waiting otherwise.
func (s *Bolt) Join(ctx context.Context, player, newID string) (Game, error) {
	var g Game
	err := s.write(ctx, func(tx *bolt.Tx, d *Stats) error {
		games, waiting := tx.Bucket(bucketGames), tx.Bucket(bucketWaiting)
		if k, id := waiting.Cursor().First(); k != nil {
			var err error
			if g, err = load(games, id); err != nil {
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
			if err := waiting.Delete(k); err != nil {
				return fatal(err)
			}
			add(d, delta(&before, &g))
			return save(tx, &before, &g, 0)
		}
		if games.Get([]byte(newID)) != nil {
			return fatal(fmt.Errorf("game id %q already exists", newID))
		}
		q, err := waiting.NextSequence()
		if err != nil {
			return fatal(err)
		}
		g = Game{ID: newID, PlayerX: player, Game: game.New(), Created: s.now()}
		if err := waiting.Put(queueKey(q), []byte(newID)); err != nil {
			return fatal(err)
		}
		return save(tx, nil, &g, q)
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
	err := s.write(ctx, func(tx *bolt.Tx, d *Stats) error {
		games := tx.Bucket(bucketGames)
		var q uint64
		var err error
		if g, q, err = loadQueued(games, []byte(id)); err != nil {
			return err
		}
		if g.Team(player) == game.Empty {
			return ErrNotPlayer
		}
		if g.Status == game.Waiting {
			if q != 0 {
				if err := tx.Bucket(bucketWaiting).Delete(queueKey(q)); err != nil {
					return fatal(err)
				}
			}
			if g.Invite != "" {
				if err := tx.Bucket(bucketInvites).Delete([]byte(g.Invite)); err != nil {
					return fatal(err)
				}
			}
			return fatalIf(games.Delete([]byte(id)))
		}
		before := g
		if err := g.Resign(player, s.now()); err != nil {
			return err
		}
		g.Version++
		add(d, delta(&before, &g))
		return save(tx, &before, &g, 0)
	})
	if err != nil {
		return Game{}, fmt.Errorf("leave game %s: %w", id, err)
	}
	return g, nil
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
	err := s.write(ctx, func(tx *bolt.Tx, d *Stats) error {
		before, q, err := loadQueued(tx.Bucket(bucketGames), []byte(id))
		if err != nil {
			return err
		}
		g = before
		g.History = slices.Clone(before.History)
		if err := fn(&g); err != nil {
			g = before
			return err
		}
		g.Version = before.Version + 1
		add(d, delta(&before, &g))
		return save(tx, &before, &g, q)
	})
	if err != nil {
		return g, fmt.Errorf("update game %s: %w", id, err)
	}
	return g, nil
}

// Create stores a new game: a friend's game waiting with its invite code, a
// game against the computer, a rematch. It fails if the id or invite is taken.
func (s *Bolt) Create(ctx context.Context, g Game) (Game, error) {
	err := s.write(ctx, func(tx *bolt.Tx, d *Stats) error {
		if tx.Bucket(bucketGames).Get([]byte(g.ID)) != nil {
			return fatal(fmt.Errorf("game id %q already exists", g.ID))
		}
		if g.Invite != "" && tx.Bucket(bucketInvites).Get([]byte(g.Invite)) != nil {
			return fatal(fmt.Errorf("invite %q already exists", g.Invite))
		}
		empty := Game{Game: game.New()}
		add(d, delta(&empty, &g))
		return save(tx, nil, &g, 0)
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
	var id []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		id = bytes.Clone(tx.Bucket(bucketInvites).Get([]byte(code)))
		return nil
	})
	if err != nil || id == nil {
		return Game{}, fmt.Errorf("invite: %w", ErrNotFound)
	}
	now := s.now()
	return s.Update(ctx, string(id), func(g *Game) error { return g.AcceptInvite(player, code, now) })
}

// Active returns player's latest game if it waits or is in progress, else ErrNotFound.
func (s *Bolt) Active(ctx context.Context, player string) (Game, error) {
	var g Game
	err := s.db.View(func(tx *bolt.Tx) error {
		id := tx.Bucket(bucketPlayers).Get([]byte(player))
		if id == nil {
			return ErrNotFound
		}
		var err error
		if g, err = load(tx.Bucket(bucketGames), id); err != nil {
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
	var out []Game
	err := s.db.View(func(tx *bolt.Tx) error {
		games := tx.Bucket(bucketGames)
		return tx.Bucket(bucketLive).ForEach(func(id, _ []byte) error {
			if len(out) >= limit {
				return errStop
			}
			g, err := load(games, id)
			if err != nil {
				return err
			}
			out = append(out, g)
			return nil
		})
	})
	if err != nil && !errors.Is(err, errStop) {
		return nil, fmt.Errorf("live games: %w", err)
	}
	return out, nil
}

// Game loads game id. It returns ErrNotFound if there is none.
func (s *Bolt) Game(ctx context.Context, id string) (Game, error) {
	var g Game
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		g, err = load(tx.Bucket(bucketGames), []byte(id))
		return err
	})
	if err != nil {
		return Game{}, fmt.Errorf("load game %s: %w", id, err)
	}
	return g, nil
}

// Games calls fn with every stored game, in id order, until fn returns false.
func (s *Bolt) Games(ctx context.Context, fn func(Game) bool) error {
	return s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketGames).ForEach(func(k, v []byte) error {
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
}

var errStop = errors.New("stop")

// Stats returns the current statistics.
func (s *Bolt) Stats(ctx context.Context) (Stats, error) { return s.feed.current(), nil }

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

// SetOnline sets the PlayersOnline gauge to n, the number of connected players.
func (s *Bolt) SetOnline(ctx context.Context, n int64) error {
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

// write hands fn to the committer and waits for its transaction to commit.
func (s *Bolt) write(ctx context.Context, fn func(*bolt.Tx, *Stats) error) error {
	o := &op{ctx: ctx, fn: fn, done: make(chan struct{})}
	select {
	case s.ops <- o:
	case <-s.quit:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	<-o.done
	return o.err
}

func (s *Bolt) commitLoop() {
	defer close(s.done)
	batch := make([]*op, 0, maxBatch)
	for {
		batch = batch[:0]
		select {
		case o := <-s.ops:
			batch = append(batch, o)
		case <-s.quit:
			return
		}
	collect:
		for len(batch) < maxBatch {
			select {
			case o := <-s.ops:
				batch = append(batch, o)
			default:
				break collect
			}
		}
		s.commit(batch)
	}
}

// commit runs a batch in one transaction. A refused op keeps its error and the
// others go on; any other error rolls the whole batch back and fails every op.
func (s *Bolt) commit(batch []*op) {
	var d Stats
	err := s.db.Update(func(tx *bolt.Tx) error {
		for _, o := range batch {
			if err := o.ctx.Err(); err != nil {
				o.err = err
				continue
			}
			o.err = o.fn(tx, &d)
			var f fatalError
			if errors.As(o.err, &f) {
				return f.err
			}
		}
		if d == (Stats{}) {
			return nil
		}
		b := tx.Bucket(bucketStats)
		for i, v := range d {
			if v == 0 {
				continue
			}
			var buf [8]byte
			binary.BigEndian.PutUint64(buf[:], uint64(s.persisted[i]+v))
			if err := b.Put([]byte(Stat(i).String()), buf[:]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		for _, o := range batch {
			o.err = fmt.Errorf("commit: %w", err)
		}
	} else if d != (Stats{}) {
		s.feedMu.Lock()
		add(&s.persisted, d)
		s.feedMu.Unlock()
		s.publish()
	}
	for _, o := range batch {
		close(o.done)
	}
}

// fatalError marks an error after which a transaction may hold partial writes.
type fatalError struct{ err error }

func (f fatalError) Error() string { return f.err.Error() }
func (f fatalError) Unwrap() error { return f.err }

func fatal(err error) error { return fatalError{err} }

func fatalIf(err error) error {
	if err != nil {
		return fatal(err)
	}
	return nil
}

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

func load(games *bolt.Bucket, id []byte) (Game, error) {
	g, _, err := loadQueued(games, id)
	return g, err
}

// loadQueued also returns the game's place in the waiting queue.
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

// save writes g, which was before (nil for a new game), and keeps the
// indexes in step: invite codes, each player's latest game, games in progress.
func save(tx *bolt.Tx, before, g *Game, queue uint64) error {
	v, err := json.Marshal(toDoc(g, queue))
	if err != nil {
		return fatal(err)
	}
	if err := tx.Bucket(bucketGames).Put([]byte(g.ID), v); err != nil {
		return fatal(err)
	}
	var was Game
	if before != nil {
		was = *before
	}
	if was.Invite != g.Invite {
		invites := tx.Bucket(bucketInvites)
		if was.Invite != "" {
			if err := invites.Delete([]byte(was.Invite)); err != nil {
				return fatal(err)
			}
		}
		if g.Invite != "" {
			if err := invites.Put([]byte(g.Invite), []byte(g.ID)); err != nil {
				return fatal(err)
			}
		}
	}
	players := tx.Bucket(bucketPlayers)
	for _, p := range []string{g.PlayerX, g.PlayerO} {
		if p != "" && p != BotPlayer && p != was.PlayerX && p != was.PlayerO {
			if err := players.Put([]byte(p), []byte(g.ID)); err != nil {
				return fatal(err)
			}
		}
	}
	live := tx.Bucket(bucketLive)
	switch {
	case g.Status == game.InProgress && was.Status != game.InProgress:
		return fatalIf(live.Put([]byte(g.ID), nil))
	case g.Status != game.InProgress && was.Status == game.InProgress:
		return fatalIf(live.Delete([]byte(g.ID)))
	}
	return nil
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
