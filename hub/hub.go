// Package hub runs the WebSocket side of tictac: sockets, matchmaking, game rooms and the bus between replicas.
package hub

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/tictac/tictac/store"
)

// Store is what the hub needs from the game store.
type Store interface {
	// Join pairs player with a waiting game or opens one with id newID.
	Join(ctx context.Context, player, newID string) (store.Game, error)
	// Leave takes player out of a waiting game, or abandons its game in progress.
	Leave(ctx context.Context, id, player string) (store.Game, error)
	// Move plays square (x, y) for player, atomically.
	Move(ctx context.Context, id, player string, x, y int) (store.Game, error)
	// WatchStats streams the live statistics.
	WatchStats(ctx context.Context) (*store.Subscription, error)
	// SetOnline reports how many players this replica serves.
	SetOnline(ctx context.Context, n int64) error
}

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
	// PingInterval is how long a socket may stay silent before the server pings
	// it; one that does not answer within another PingInterval is closed. Default 30s.
	PingInterval time.Duration
	// Refusals and RefusalBurst bound, per socket, the rate of messages that
	// change nothing (refused moves, pings, repeated joins): beyond them the
	// socket gets rate_limited and is closed. Accepted moves and joins are
	// never counted, so the fastest legitimate client never reaches the limit.
	// Default 20 a second, burst 100.
	Refusals     float64
	RefusalBurst int
	// OriginPatterns are the extra origins allowed to open sockets, as in
	// websocket.AcceptOptions; the page's own origin is always allowed.
	OriginPatterns []string
	// NewID returns new game ids; store.NewID if nil.
	NewID func() string
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
}

// Hub serves players over WebSockets. Create it with New, serve it at /live,
// and run Run for the live stats; Close drops every socket.
type Hub struct {
	store Store
	bus   Bus
	log   *slog.Logger
	opt   Options

	mu      sync.Mutex
	conns   map[*conn]struct{}
	rooms   map[string]*room
	closing bool
	wg      sync.WaitGroup // one per socket handler

	stats statsRelay
}

// New returns a hub that keeps games in st and reaches other replicas through bus.
func New(st Store, bus Bus, opt Options) *Hub {
	opt.defaults()
	return &Hub{
		store: st, bus: bus, log: opt.Logger, opt: opt,
		conns: make(map[*conn]struct{}),
		rooms: make(map[string]*room),
	}
}

// ServeHTTP upgrades the request to a WebSocket and serves one player until
// the socket closes.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		OriginPatterns:  h.opt.OriginPatterns,
		CompressionMode: websocket.CompressionDisabled,
	})
	if err != nil {
		h.log.Debug("websocket upgrade refused", "remote", r.RemoteAddr, "err", err)
		return
	}
	ws.SetReadLimit(h.opt.ReadLimit)
	c := newConn(h, ws, newPlayerID())
	if !h.register(c) {
		ws.Close(websocket.StatusServiceRestart, "server is shutting down")
		return
	}
	defer h.wg.Done()
	c.serve(r.Context())
	h.unregister(c)
}

func (h *Hub) register(c *conn) bool {
	h.mu.Lock()
	if h.closing {
		h.mu.Unlock()
		return false
	}
	h.conns[c] = struct{}{}
	n := len(h.conns)
	h.wg.Add(1)
	h.mu.Unlock()
	h.reportOnline(n)
	if f := h.stats.full.Load(); f != nil {
		c.enqueue(*f)
	}
	return true
}

func (h *Hub) unregister(c *conn) {
	h.mu.Lock()
	delete(h.conns, c)
	n := len(h.conns)
	h.mu.Unlock()
	h.reportOnline(n)
}

func (h *Hub) reportOnline(n int) {
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
	return len(h.conns)
}

// Close stops accepting sockets, closes every open one with 1012 (service
// restart) so that clients reconnect, and waits for their handlers to finish
// or for ctx to end.
func (h *Hub) Close(ctx context.Context) error {
	h.mu.Lock()
	h.closing = true
	conns := make([]*conn, 0, len(h.conns))
	for c := range h.conns {
		conns = append(conns, c)
	}
	h.mu.Unlock()
	for _, c := range conns {
		c.close(websocket.StatusServiceRestart, "server restarting")
	}
	done := make(chan struct{})
	go func() { h.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
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
	err = h.stats.run(ctx, sub, h.opt.StatsInterval, h.broadcast)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// broadcast queues f on every open socket.
func (h *Hub) broadcast(f []byte) {
	h.mu.Lock()
	conns := make([]*conn, 0, len(h.conns))
	for c := range h.conns {
		conns = append(conns, c)
	}
	h.mu.Unlock()
	for _, c := range conns {
		c.enqueue(f)
	}
}

func (h *Hub) pingLoop(ctx context.Context) {
	t := time.NewTicker(h.opt.PingInterval / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			h.mu.Lock()
			for c := range h.conns {
				c.maybePing(now)
			}
			h.mu.Unlock()
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
