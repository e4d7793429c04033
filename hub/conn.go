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
)

// conn is one player's socket. Its read goroutine owns the game fields; the
// write goroutine drains the send queue; anyone may enqueue or close.
type conn struct {
	hub  *Hub
	ws   *websocket.Conn
	tag  string // a short name for logs, fixed at connect
	send chan []byte

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

	listing atomic.Bool  // wants gameList updates
	seat    atomic.Int32 // team in its room, as other goroutines see it; 0 when watching or out

	// Owned by the read goroutine.
	player   string    // a one-off id until hello names the session
	said     int       // frames handled
	room     *room     // the game played or watched
	team     game.Mark // in room; game.Empty when watching
	watching bool
}

func newConn(h *Hub, ws *websocket.Conn, player string) *conn {
	ctx, cancel := context.WithCancel(context.Background())
	c := &conn{
		hub: h, ws: ws, player: player, tag: player[:8],
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
func (c *conn) serve() {
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
			ce := toClientError(err)
			if ce.Code == "unavailable" {
				// Not the client's fault: the operator needs to see it.
				c.hub.log.Warn("request failed", "player", c.tag, "err", err)
			}
			c.refuse(ce)
		}
	}
}

func (c *conn) logClose(err error) {
	switch websocket.CloseStatus(err) {
	case websocket.StatusNormalClosure, websocket.StatusGoingAway, websocket.StatusServiceRestart:
		return
	case websocket.StatusMessageTooBig:
		c.hub.log.Info("socket closed: frame too big", "player", c.tag)
		return
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
		return
	}
	c.hub.log.Debug("socket closed", "player", c.tag, "err", err)
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
			c.hub.log.Info("socket too slow, closing", "player", c.tag)
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
