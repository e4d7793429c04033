package hub

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/time/rate"

	"github.com/tictac/tictac/game"
	"github.com/tictac/tictac/store"
)

// conn is one player's socket. Its read goroutine owns the game fields; the
// write goroutine drains the send queue; anyone may enqueue or close.
type conn struct {
	hub    *Hub
	ws     *websocket.Conn
	player string
	send   chan []byte

	ctx         context.Context // ends when the socket is done
	cancel      context.CancelFunc
	closeOnce   sync.Once
	closeCode   websocket.StatusCode // set before the nil frame that asks the writer to close
	closeReason string

	lastSeen atomic.Int64 // unix nanoseconds of the last frame read
	pinging  atomic.Bool
	slow     atomic.Bool // its queue overflowed

	refusals *rate.Limiter
	slot     int // stats slot, set at register

	// While holding, frames from the room wait in held, so that the reply to
	// a join goes out before the game's first message.
	gate    sync.Mutex
	holding bool
	held    [][]byte

	// Owned by the read goroutine.
	room *room
	team game.Mark
}

func newConn(h *Hub, ws *websocket.Conn, player string) *conn {
	ctx, cancel := context.WithCancel(context.Background())
	c := &conn{
		hub: h, ws: ws, player: player,
		send:     make(chan []byte, h.opt.SendQueue),
		ctx:      ctx,
		cancel:   cancel,
		refusals: rate.NewLimiter(rate.Limit(h.opt.Refusals), h.opt.RefusalBurst),
	}
	c.lastSeen.Store(time.Now().UnixNano())
	return c
}

// serve reads and handles frames until the socket closes, then takes the
// player out of its game.
func (c *conn) serve(ctx context.Context) {
	var writer sync.WaitGroup
	writer.Add(1)
	go func() {
		defer writer.Done()
		c.writeLoop()
	}()
	defer func() {
		c.cancel()
		c.ws.CloseNow()
		writer.Wait()
		c.leave()
	}()
	for {
		typ, data, err := c.ws.Read(c.ctx)
		if err != nil {
			c.logClose(err)
			return
		}
		c.lastSeen.Store(time.Now().UnixNano())
		if typ != websocket.MessageText {
			c.refuse(refuse("bad_frame", "Send JSON text frames, not binary."))
			continue
		}
		if err := c.handle(data); err != nil {
			c.refuse(toClientError(err))
		}
	}
}

func (c *conn) logClose(err error) {
	switch websocket.CloseStatus(err) {
	case websocket.StatusNormalClosure, websocket.StatusGoingAway, websocket.StatusServiceRestart:
		return
	case websocket.StatusMessageTooBig:
		c.hub.log.Info("socket closed: frame too big", "player", c.player[:8])
		return
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
		return
	}
	c.hub.log.Debug("socket closed", "player", c.player[:8], "err", err)
}

// refuse tells the client why its message changed nothing, and closes a
// socket that keeps sending such messages.
func (c *conn) refuse(e *clientError) {
	if c.charge() {
		c.enqueue(frameError(e))
	}
}

// charge counts a message that changed nothing. It reports false, and closes
// the socket, when the socket has sent too many.
func (c *conn) charge() bool {
	if c.refusals.Allow() {
		return true
	}
	c.enqueue(frameError(refuse("rate_limited", "Too many messages; closing.")))
	c.close(websocket.StatusPolicyViolation, "rate limited")
	c.hub.metrics.dropped.WithLabelValues("rate_limited").Inc()
	return false
}

// handle acts on one frame. Errors are refusals for the client.
func (c *conn) handle(data []byte) error {
	req, err := decode(data)
	if err != nil {
		return err
	}
	switch req.action {
	case actionPing:
		if c.charge() { // a ping changes nothing, so it counts against the limit
			c.enqueue(framePong)
		}
		return nil
	case actionJoin:
		return c.join()
	}
	start := time.Now()
	err = c.move(req.gameID, req.x, req.y)
	result := "applied"
	if err != nil {
		result = toClientError(err).Code
	} else {
		c.hub.metrics.move.Observe(time.Since(start).Seconds())
	}
	c.hub.metrics.moves.WithLabelValues(result).Inc()
	return err
}

// join puts the player in a game: the oldest waiting one, or a new one.
func (c *conn) join() error {
	if c.room != nil {
		switch c.room.status() {
		case game.Waiting:
			if c.charge() { // already waiting: nothing changed
				c.enqueue(frameJoinGame(c.room.id, c.team))
			}
			return nil
		case game.InProgress:
			return refuse("already_playing", "Finish or leave your current game first.")
		}
		c.hub.exit(c.room, c)
		c.room, c.team = nil, game.Empty
	}
	ctx, cancel := context.WithTimeout(c.ctx, c.hub.opt.StoreTimeout)
	defer cancel()
	// Listen to the game we may open before opening it, so that the
	// opponent's first message cannot arrive before we do.
	id := c.hub.opt.NewID()
	c.hold()
	defer c.release()
	r, err := c.hub.enter(ctx, id, c)
	if err != nil {
		return err
	}
	start := time.Now()
	g, err := c.hub.store.Join(ctx, c.player, id)
	c.hub.observeStore("join", start, err)
	if err != nil || g.ID != id {
		c.hub.exit(r, c)
		if err != nil {
			return err
		}
		if r, err = c.hub.enter(ctx, g.ID, c); err != nil {
			return err
		}
	}
	r.observe(g.Status, g.Moves)
	c.room, c.team = r, g.Team(c.player)
	c.hub.log.Debug("joined game", "game", g.ID, "team", c.team.String(), "player", c.player[:8])
	c.enqueue(frameJoinGame(g.ID, c.team))
	if g.Status == game.Waiting {
		c.enqueue(frameStatus(g.ID, g.Status))
		return nil
	}
	c.hub.log.Info("game started", "game", g.ID)
	return c.publish(ctx, &g, framePlayerJoin(g.ID, game.O), frameStatus(g.ID, g.Status))
}

// move plays a square in the player's game and tells both players.
func (c *conn) move(id string, x, y int) error {
	if c.room == nil || c.room.id != id {
		return refuse("not_in_game", "You do not play in that game.")
	}
	if x < 0 || x >= game.Size || y < 0 || y >= game.Size {
		return game.ErrOffBoard
	}
	ctx, cancel := context.WithTimeout(c.ctx, c.hub.opt.StoreTimeout)
	defer cancel()
	start := time.Now()
	g, err := c.hub.store.Move(ctx, id, c.player, x, y)
	c.hub.observeStore("move", start, err)
	if err != nil {
		return err
	}
	if !g.Status.Over() {
		return c.publish(ctx, &g, frameGrid(&g))
	}
	result := g.Winner.String()
	if g.Status == game.FinishedDraw {
		result = "draw"
	}
	c.hub.metrics.games.WithLabelValues(result).Inc()
	c.hub.log.Info("game over", "game", g.ID, "status", g.Status.String(), "winner", g.Winner.String(), "moves", g.Moves)
	return c.publish(ctx, &g, frameGrid(&g), frameStatus(g.ID, g.Status), frameWinner(&g))
}

// leave abandons the player's game if it is still in progress, and drops
// the room. It runs after the socket closed, so it has a context of its own.
func (c *conn) leave() {
	r := c.room
	if r == nil {
		return
	}
	c.room = nil
	defer c.hub.exit(r, c)
	if r.status().Over() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.hub.opt.StoreTimeout)
	defer cancel()
	start := time.Now()
	g, err := c.hub.store.Leave(ctx, r.id, c.player)
	c.hub.observeStore("leave", start, err)
	switch {
	case errors.Is(err, game.ErrOver):
		return
	case err != nil:
		c.hub.log.Warn("leave game", "game", r.id, "err", err)
		return
	case g.Status != game.Abandoned:
		return // was still waiting: it is gone from the queue
	}
	c.hub.metrics.games.WithLabelValues("abandoned").Inc()
	c.hub.log.Info("game abandoned", "game", g.ID, "moves", g.Moves)
	if err := c.publish(ctx, &g, frameStatus(g.ID, g.Status), frameWinner(&g)); err != nil {
		c.hub.log.Warn("tell opponent of abandon", "game", g.ID, "err", err)
	}
}

// publish sends frames to everyone in g's game, on every replica.
func (c *conn) publish(ctx context.Context, g *store.Game, frames ...[]byte) error {
	start := time.Now()
	err := c.hub.bus.Publish(ctx, channel(g.ID), busMessage(g, frames...))
	c.hub.metrics.publish.Observe(time.Since(start).Seconds())
	if err != nil {
		c.hub.metrics.busErrors.Inc()
	}
	return err
}

// deliver queues a frame that comes from the game's room.
func (c *conn) deliver(f []byte) {
	c.gate.Lock()
	defer c.gate.Unlock()
	if c.holding {
		c.held = append(c.held, f)
		return
	}
	c.enqueue(f)
}

func (c *conn) hold() {
	c.gate.Lock()
	c.holding = true
	c.gate.Unlock()
}

// release sends what was held, in order, and lets frames through again.
func (c *conn) release() {
	c.gate.Lock()
	defer c.gate.Unlock()
	for _, f := range c.held {
		c.enqueue(f)
	}
	c.holding, c.held = false, nil
}

// enqueue queues f for the write goroutine without blocking. A socket whose
// queue is full is too slow to play and is closed.
func (c *conn) enqueue(f []byte) {
	select {
	case c.send <- f:
	default:
		if c.slow.CompareAndSwap(false, true) {
			c.hub.log.Info("socket too slow, closing", "player", c.player[:8])
			c.hub.metrics.dropped.WithLabelValues("too_slow").Inc()
			c.close(websocket.StatusPolicyViolation, "too slow")
		}
	}
}

func (c *conn) writeLoop() {
	for {
		select {
		case <-c.ctx.Done():
			return
		case f := <-c.send:
			if f == nil {
				c.ws.Close(c.closeCode, c.closeReason)
				c.cancel()
				return
			}
			ctx, cancel := context.WithTimeout(c.ctx, c.hub.opt.WriteTimeout)
			start := time.Now()
			err := c.ws.Write(ctx, websocket.MessageText, f)
			cancel()
			c.hub.metrics.write.Observe(time.Since(start).Seconds())
			if err != nil {
				c.cancel()
				return
			}
		}
	}
}

// close closes the socket with code once the frames already queued are
// written, so that a client learns why (say, the rate_limited error) before
// the close. A socket whose queue is full is closed at once. It never blocks.
func (c *conn) close(code websocket.StatusCode, reason string) {
	c.closeOnce.Do(func() {
		c.closeCode, c.closeReason = code, reason
		select {
		case c.send <- nil: // the writer closes when it gets here
		default:
			go func() {
				c.ws.CloseNow()
				c.cancel()
			}()
		}
	})
}

// maybePing checks a socket that has been silent for a while: a live browser
// answers WebSocket pings by itself. Called with Hub.mu held: must not block.
func (c *conn) maybePing(now time.Time) {
	if now.UnixNano()-c.lastSeen.Load() < int64(c.hub.opt.PingInterval) || !c.pinging.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer c.pinging.Store(false)
		ctx, cancel := context.WithTimeout(c.ctx, c.hub.opt.PingInterval)
		defer cancel()
		if err := c.ws.Ping(ctx); err != nil {
			c.cancel()
			return
		}
		c.lastSeen.Store(time.Now().UnixNano())
	}()
}
