// Package hub runs the WebSocket side of tictac: sockets, matchmaking, game rooms and the bus between replicas.
package hub

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tictac/tictac/game"
	"github.com/tictac/tictac/store"
)

// Store is what the hub needs from the game store (see store.Bolt for the
// semantics of each method).
type Store interface {
	// Join pairs player with a waiting quick game or opens one with id newID.
	Join(ctx context.Context, player, newID string) (store.Game, error)
	// Create stores a new friend's, computer's or rematch game.
	Create(ctx context.Context, g store.Game) (store.Game, error)
	// JoinInvite takes the second seat of the friend's game waiting with code.
	JoinInvite(ctx context.Context, player, code string) (store.Game, error)
	// Leave cancels player's waiting game or resigns its game in progress.
	Leave(ctx context.Context, id, player string) (store.Game, error)
	// Expire cancels a friend's waiting game whose player is still away
	// with deadline.
	Expire(ctx context.Context, id, player string, deadline int64) (store.Game, error)
	// Move plays square (x, y) for player, atomically and at most once per moveID.
	Move(ctx context.Context, id, player string, x, y int, moveID string) (store.Game, error)
	// Update changes a game atomically through fn.
	Update(ctx context.Context, id string, fn func(*store.Game) error) (store.Game, error)
	// Game loads a game.
	Game(ctx context.Context, id string) (store.Game, error)
	// Active returns the game player waits for or plays.
	Active(ctx context.Context, player string) (store.Game, error)
	// Live lists games in progress.
	Live(ctx context.Context, limit int) ([]store.Game, error)
	// Playing calls fn with every game in progress until fn returns false.
	Playing(ctx context.Context, fn func(store.Game) bool) error
	// WatchStats streams the live statistics.
	WatchStats(ctx context.Context) (*store.Subscription, error)
	// SetOnline reports how many players this replica serves.
	SetOnline(ctx context.Context, n int64) error
}

// Learner is a Store that can use a game that another replica just stored:
// the RethinkDB store then plays the next move on it without reading it
// first. When the store is one, every bus message carries the game it is
// about (see busMessage), and the store is told of it: game id is stored at
// version, and decode returns it. The store calls decode only when it does
// not know the game at that version already (the replica that stored it
// does), so the hub decodes nothing it need not, and only during the call.
type Learner interface {
	Learn(id string, version int64, decode func() (store.Game, error))
}

// liveLimit bounds the games listed to spectators.
const liveLimit = 50

// Options tune a Hub. Zero fields take the defaults given.
type Options struct {
	Logger *slog.Logger // slog.Default()
	// ReadLimit is the largest frame a client may send; a larger one closes
	// the socket with 1009. Default 4096.
	ReadLimit int64
	// SendQueue is how many frames may wait for a slow socket before it is
	// dropped. Default 128.
	SendQueue int
	// WriteTimeout bounds each socket write. Default 5s.
	WriteTimeout time.Duration
	// StoreTimeout bounds each store call. Default 5s.
	StoreTimeout time.Duration
	// StatsInterval is the least time between two statsUpdate frames. Default 250ms.
	StatsInterval time.Duration
	// StatsBudget bounds the statsUpdate frames a replica sends a second, all
	// sockets together: with more sockets than StatsBudget × StatsInterval,
	// each socket's updates come further apart. Default 3000.
	StatsBudget int
	// PingInterval is how long a socket may stay silent before the server pings
	// it; one that does not answer within another PingInterval is closed. Default 30s.
	PingInterval time.Duration
	// Refusals and RefusalBurst bound, per socket, the rate of messages that
	// change nothing (refused moves, pings, repeated joins) or whose pace no
	// game sets (reads, watching, the stats and list switches, making a
	// friend's or computer game, resent moves, leaving a waiting or watched
	// game): beyond them the socket gets rate_limited and is closed.
	// Accepted moves and quick joins are never counted, so the fastest
	// legitimate client never reaches the limit.
	// Default 20 a second, burst 100.
	Refusals     float64
	RefusalBurst int
	// OriginPatterns are the extra origins allowed to open sockets, as in
	// websocket.AcceptOptions; the page's own origin is always allowed.
	OriginPatterns []string
	// NewID returns new game ids; store.NewID if nil.
	NewID func() string
	// Registerer gets the hub's Prometheus metrics; a private registry if nil.
	Registerer prometheus.Registerer
	// Grace is how long a player whose socket dropped mid-game has to come
	// back before the opponent wins by forfeit, and how long a friend's
	// game waits for its player to come back before its invite dies.
	// Default 30s.
	Grace time.Duration
	// Now is the clock; time.Now if nil.
	Now func() time.Time
	// BotDelay is how long the computer thinks before each move; a
	// human-like random time for its level if nil.
	BotDelay func(game.Level) time.Duration
	// Seed seeds the computer's choices; random if zero.
	Seed uint64
	// ListInterval is the least time between two gameList updates. Default 500ms.
	ListInterval time.Duration
	// MaxConnsPerIP bounds the sockets one client address may hold on this
	// replica; 0 means no bound. Beyond it an upgrade gets 429.
	MaxConnsPerIP int
	// TrustedProxies are the peers (a load balancer) whose X-Real-IP header
	// names the client; other peers are the client themselves.
	TrustedProxies []netip.Prefix
}

func (o *Options) defaults() {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.ReadLimit == 0 {
		o.ReadLimit = 4096
	}
	if o.SendQueue == 0 {
		o.SendQueue = 128
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = 5 * time.Second
	}
	if o.StoreTimeout == 0 {
		o.StoreTimeout = 5 * time.Second
	}
	if o.StatsInterval == 0 {
		o.StatsInterval = 250 * time.Millisecond
	}
	if o.StatsBudget == 0 {
		o.StatsBudget = 3000
	}
	if o.PingInterval == 0 {
		o.PingInterval = 30 * time.Second
	}
	if o.Refusals == 0 {
		o.Refusals = 20
	}
	if o.RefusalBurst == 0 {
		o.RefusalBurst = 100
	}
	if o.NewID == nil {
		o.NewID = store.NewID
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
	if o.Grace == 0 {
		o.Grace = 30 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Seed == 0 {
		o.Seed = mrand.Uint64()
	}
	if o.ListInterval == 0 {
		o.ListInterval = 500 * time.Millisecond
	}
}

// Hub serves players over WebSockets. Create it with New, serve it at /live,
// and run Run for the live stats; Close drops every socket.
type Hub struct {
	store Store
	bus   Bus
	log   *slog.Logger
	opt   Options

	mu       sync.Mutex
	draining bool                           // refuse new sockets
	conns    [statsSlots]map[*conn]struct{} // sockets by stats slot
	online   int
	next     int // slot of the next socket
	rooms    map[string]*room
	perIP    map[netip.Addr]int // open sockets by client address
	closing  bool
	wg       sync.WaitGroup // one per socket handler

	stats     statsRelay
	metrics   *metrics
	bg        *background
	reporting sync.Mutex // one report of the sockets open at a time
}

// New returns a hub that keeps games in st and reaches other replicas through bus.
func New(st Store, bus Bus, opt Options) *Hub {
	opt.defaults()
	h := &Hub{
		store: st, bus: bus, log: opt.Logger, opt: opt,
		rooms: make(map[string]*room),
		perIP: make(map[netip.Addr]int),
		bg:    newBackground(opt.Seed),
	}
	for i := range h.conns {
		h.conns[i] = make(map[*conn]struct{})
	}
	h.metrics = newMetrics(h, opt.Registerer)
	return h
}

// ServeHTTP upgrades the request to a WebSocket and serves one player until
// the socket closes.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ip := h.clientIP(r)
	h.mu.Lock()
	draining := h.draining
	// The address's place is taken now, before the upgrade, so that
	// handshakes in flight at once cannot all slip under the limit.
	crowded := h.opt.MaxConnsPerIP > 0 && h.perIP[ip] >= h.opt.MaxConnsPerIP
	if !crowded && !draining {
		h.perIP[ip]++
	}
	h.mu.Unlock()
	if crowded {
		h.metrics.dropped.WithLabelValues("per_ip_limit").Inc()
		http.Error(w, "too many connections from your address", http.StatusTooManyRequests)
		return
	}
	if draining {
		// Before the upgrade, so that a load balancer can retry another replica.
		w.Header().Set("Retry-After", "1")
		http.Error(w, "draining: reconnect", http.StatusServiceUnavailable)
		return
	}
	sb := &smallBuffers{ResponseWriter: w}
	ws, err := websocket.Accept(sb, r, &websocket.AcceptOptions{
		OriginPatterns:  h.opt.OriginPatterns,
		CompressionMode: websocket.CompressionDisabled,
	})
	if err != nil {
		h.release(ip)
		h.log.Debug("websocket upgrade refused", "remote", r.RemoteAddr, "err", err)
		return
	}
	ws.SetReadLimit(h.opt.ReadLimit)
	c := newConn(h, ws, sb.conn, newPlayerID())
	if !h.register(c) {
		h.release(ip)
		ws.Close(websocket.StatusServiceRestart, "server is shutting down")
		return
	}
	// The socket gets a goroutine of its own and the handler returns, so that
	// the HTTP server's goroutine, its stack and the request go away: an idle
	// socket keeps one small goroutine.
	go c.serve(func() {
		h.unregister(c)
		h.release(ip)
		h.wg.Done()
	})
}

// release gives back an address's place taken in ServeHTTP.
func (h *Hub) release(ip netip.Addr) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.perIP[ip]--; h.perIP[ip] <= 0 {
		delete(h.perIP, ip)
	}
}

func (h *Hub) register(c *conn) bool {
	h.mu.Lock()
	if h.closing {
		h.mu.Unlock()
		return false
	}
	c.slot = h.next
	h.next = (h.next + 1) % statsSlots
	h.conns[c.slot][c] = struct{}{}
	h.online++
	h.wg.Add(1)
	// The group's full stats, taken under the lock that the fan-out takes to
	// list the group: the socket gets either the values before an update and
	// then the update, or the values after it.
	if f := h.stats.full[c.slot].Load(); f != nil {
		c.enqueue(*f)
	}
	h.mu.Unlock()
	h.reportOnline()
	return true
}

// resumeStats sends a socket that paused its stats the values its group was
// last sent, as register does, and the group's updates reach it again.
func (h *Hub) resumeStats(c *conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if f := h.stats.full[c.slot].Load(); f != nil {
		c.enqueue(*f)
	}
}

func (h *Hub) unregister(c *conn) {
	h.mu.Lock()
	delete(h.conns[c.slot], c)
	h.online--
	h.mu.Unlock()
	h.reportOnline()
}

// reportOnline tells the store how many sockets are open here. One report at
// a time, each of the count when it starts: the last one is then of the last
// change. (A count taken with the change and reported after it could be
// overtaken by the next change's, and stay wrong until the one after.)
func (h *Hub) reportOnline() {
	h.reporting.Lock()
	defer h.reporting.Unlock()
	h.mu.Lock()
	n := h.online
	h.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), h.opt.StoreTimeout)
	defer cancel()
	if err := h.store.SetOnline(ctx, int64(n)); err != nil {
		h.log.Warn("report players online", "err", err)
	}
}

// Online returns how many sockets are open.
func (h *Hub) Online() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.online
}

// sockets returns the open sockets of one stats slot, or of all when slot < 0.
func (h *Hub) sockets(slot int) []*conn {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := h.online
	if slot >= 0 {
		n = len(h.conns[slot])
	}
	out := make([]*conn, 0, n)
	for i := range h.conns {
		if slot < 0 || slot == i {
			for c := range h.conns[i] {
				out = append(out, c)
			}
		}
	}
	return out
}

// clientIP is the address a request comes from: the peer, or the X-Real-IP
// it vouches for when the peer is a trusted proxy.
func (h *Hub) clientIP(r *http.Request) netip.Addr {
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	ip := peer.Addr().Unmap()
	for _, p := range h.opt.TrustedProxies {
		if p.Contains(ip) {
			if real, err := netip.ParseAddr(r.Header.Get("X-Real-IP")); err == nil {
				return real.Unmap()
			}
			break
		}
	}
	return ip
}

// Drain refuses new sockets (503 before the upgrade) and leaves the open
// ones alone, so that a load balancer sends newcomers elsewhere while the
// replica finishes; Close then ends the rest.
func (h *Hub) Drain() {
	h.mu.Lock()
	h.draining = true
	h.mu.Unlock()
}

// Close stops accepting sockets, closes every open one with 1012 (service
// restart) so that clients reconnect, and waits for their handlers to finish
// or for ctx to end.
func (h *Hub) Close(ctx context.Context) error {
	h.mu.Lock()
	h.closing = true
	h.mu.Unlock()
	for _, c := range h.sockets(-1) {
		c.close(websocket.StatusServiceRestart, "server restarting")
	}
	done := make(chan struct{})
	go func() { h.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	// Sockets first: closing them marks their players away, which arms
	// forfeits; the replicas that stay up carry those out, and any replica
	// that starts arms those it finds (see rearm). A friend's waiting game
	// is cancelled when its player next connects past the deadline, and its
	// link refused meanwhile (see lapsed). Out of time, the tasks are
	// stopped all the same: none outlives the hub.
	h.bg.stop()
	return err
}

// Run relays the live stats to every socket, and pings silent sockets, until
// ctx ends. It returns an error if the stats cannot be watched.
func (h *Hub) Run(ctx context.Context) error {
	sub, err := h.store.WatchStats(ctx)
	if err != nil {
		return err
	}
	defer sub.Close()
	go h.pingLoop(ctx)
	go h.listLoop(ctx)
	h.bg.after("rearm", 0, func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, h.opt.StoreTimeout)
		defer cancel()
		h.rearm(ctx, backoff{})
	})
	err = h.stats.run(ctx, sub, h.opt.StatsInterval, h.opt.StatsBudget, h.fanout)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// fanout queues f on every open socket of a stats slot that has not paused
// its stats, one socket at a time, at most StatsBudget a second, and returns
// how many. Each socket's
// frame starts a writer goroutine, and a move read meanwhile waits behind
// the writers already queued for a core: one at a time, a move waits behind
// at most one. Each frame is due at its place in the slot's schedule, not a
// gap after the one before, since a timer wakes late (by a few hundred µs
// here, as long as the gap itself at 3,000 frames a second): a frame that
// is late goes at once, and the slot keeps to the budget's rate.
func (h *Hub) fanout(ctx context.Context, slot int, f []byte) int {
	conns := h.sockets(slot)
	gap := time.Second / time.Duration(h.opt.StatsBudget)
	start := time.Now()
	var pace *time.Timer
	sent := 0
	for _, c := range conns {
		if c.statsOff.Load() {
			continue
		}
		if wait := time.Until(start.Add(time.Duration(sent) * gap)); wait > 0 {
			if pace == nil {
				pace = time.NewTimer(wait)
				defer pace.Stop()
			} else {
				pace.Reset(wait)
			}
			select {
			case <-ctx.Done():
				return sent
			case <-pace.C:
			}
		}
		c.enqueue(f)
		h.metrics.statsFrames.Inc()
		sent++
	}
	return sent
}

// observeStore records a store call; refusals are answers, not errors.
func (h *Hub) observeStore(op string, start time.Time, err error) {
	h.metrics.store.WithLabelValues(op).Observe(time.Since(start).Seconds())
	if err != nil && toClientError(err).Code == "unavailable" {
		h.metrics.storeErrors.WithLabelValues(op).Inc()
	}
}

// waiting counts the local players whose game waits for an opponent.
func (h *Hub) waiting() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, r := range h.rooms {
		if r.status() == game.Waiting {
			r.mu.Lock()
			n += len(r.members)
			r.mu.Unlock()
		}
	}
	return n
}

// listLoop sends the games in progress to the sockets that asked for them,
// when the list changed, at most once per ListInterval.
func (h *Hub) listLoop(ctx context.Context) {
	t := time.NewTicker(h.opt.ListInterval)
	defer t.Stop()
	var last []byte
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var listing []*conn
		for _, c := range h.sockets(-1) {
			if c.listing.Load() {
				listing = append(listing, c)
			}
		}
		if len(listing) == 0 {
			last = nil
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, h.opt.StoreTimeout)
		live, err := h.store.Live(sctx, liveLimit)
		cancel()
		if err != nil {
			h.log.Warn("list live games", "err", err)
			continue
		}
		f := frameGameList(live)
		if bytes.Equal(f, last) {
			continue
		}
		last = f
		for _, c := range listing {
			c.enqueue(f)
		}
	}
}

// pingChunk is how many sockets pingLoop checks at once.
const pingChunk = 8

// pingLoop pings silent sockets. Each round is spread over half a
// PingInterval, a chunk of sockets at a time, so that thousands of idle
// sockets do not all get their ping in the same millisecond.
func (h *Hub) pingLoop(ctx context.Context) {
	round := h.opt.PingInterval / 2
	for {
		conns := h.sockets(-1)
		chunks := (len(conns) + pingChunk - 1) / pingChunk
		pause := round
		if chunks > 0 {
			pause = round / time.Duration(chunks)
		}
		for i := 0; i < len(conns) || i == 0; i += pingChunk {
			select {
			case <-ctx.Done():
				return
			case <-time.After(pause):
			}
			now := time.Now()
			for _, c := range conns[i:min(i+pingChunk, len(conns))] {
				c.maybePing(now)
			}
		}
	}
}

func newPlayerID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return hex.EncodeToString(b[:])
}

// Resync sends every local socket of the games on channels the game's whole
// state, read from the store. The Redis bus calls it after it reconnected and
// resubscribed: messages published while it was away are lost, and this is
// how no client stays behind. A playerAway lost so is made up for too: a
// player marked away but here is marked back, and the forfeit of one who is
// not here is armed.
func (h *Hub) Resync(channels []string) {
	h.bg.after("resync/"+strings.Join(channels, ","), 0, func(ctx context.Context) {
		for _, ch := range channels {
			id := strings.TrimPrefix(ch, "tictac:game:")
			h.mu.Lock()
			r := h.rooms[id]
			h.mu.Unlock()
			if r == nil {
				continue
			}
			sctx, cancel := context.WithTimeout(ctx, h.opt.StoreTimeout)
			g, err := h.store.Game(sctx, id)
			cancel()
			if err != nil {
				h.log.Warn("resync game", "game", id, "err", err)
				continue
			}
			r.observe(g.Status, g.Moves)
			r.mu.Lock()
			members := r.members
			r.mu.Unlock()
			for _, c := range members {
				c.deliver(frameState(&g, game.Mark(c.seat.Load())))
			}
			for _, team := range []game.Mark{game.X, game.O} {
				switch deadline := g.Away[team-1]; {
				case deadline == 0 || g.Status != game.InProgress && g.Status != game.Waiting:
				case r.present(team):
					h.markBackSoon(id, team)
				default:
					h.armForfeit(id, team, deadline)
				}
			}
		}
	})
}

// rearm arms the forfeit of every player marked away from a game in
// progress. The replica that marked the player armed it, but that timer goes
// with its process (a restart, a deploy, a crash): without this, a game whose
// players both went away then would stay in progress for ever. A replica
// that still holds its own timer loses nothing: a forfeit lands once, and
// not at all for a player who came back. b is the backoff of the attempts
// so far, when the store failed the listing.
func (h *Hub) rearm(ctx context.Context, b backoff) {
	n := 0
	err := h.store.Playing(ctx, func(g store.Game) bool {
		for _, team := range []game.Mark{game.X, game.O} {
			if deadline := g.Away[team-1]; deadline != 0 {
				h.armForfeit(g.ID, team, deadline)
				n++
			}
		}
		return ctx.Err() == nil
	})
	switch {
	case err == nil:
		if n > 0 {
			h.log.Info("forfeits armed for players away", "players", n)
		}
	case storeFailed(err):
		h.retryLater("rearm", "arm the forfeits of players away", "", err, b, h.rearm)
	default:
		h.log.Warn("arm the forfeits of players away", "err", err)
	}
}
