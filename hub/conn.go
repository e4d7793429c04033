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
	hub *Hub
	ws  *websocket.Conn
	raw net.Conn // under ws: the writer sets its deadlines
	tag string   // a short name for logs, fixed at connect

	// The send queue. A writer goroutine runs only while it holds frames, so
	// that an idle socket costs no goroutine and no buffer.
	qmu     sync.Mutex
	queue   [][]byte
	writing bool
	closing bool // a nil frame asking the writer to close is queued

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

	listing  atomic.Bool  // wants gameList updates
	statsOff atomic.Bool  // asked for no statsUpdate frames (its page is hidden)
	seat     atomic.Int32 // team in its room, as other goroutines see it; 0 when watching or out

	// Owned by the read goroutine.
	player   string    // a one-off id until hello names the session
	said     int       // frames handled
	room     *room     // the game played or watched
	team     game.Mark // in room; game.Empty when watching
	watching bool
}

func newConn(h *Hub, ws *websocket.Conn, raw net.Conn, player string) *conn {
	ctx, cancel := context.WithCancel(context.Background())
	c := &conn{
		hub: h, ws: ws, raw: raw, player: player, tag: player[:8],
		ctx:      ctx,
		cancel:   cancel,
		refusals: rate.NewLimiter(rate.Limit(h.opt.Refusals), h.opt.RefusalBurst),
	}
	c.lastSeen.Store(time.Now().UnixNano())
	return c
}

// serve reads and handles one frame, then hands the socket on to a new
// goroutine, which does the same, until the socket closes; the last one
// takes the player out of its game and calls done.
//
// A goroutine's stack grows while it handles a frame (decoding JSON alone
// takes it from 4 to 8 KiB) and does not shrink back while the socket
// idles: a collection shrinks only a stack used below a quarter, and a
// goroutine parked in a read uses more than that of 8 KiB. So the goroutine
// that waits for the next frame is always a new one, with a small stack: a
// page that said hello and went idle costs what a silent socket costs.
// A new goroutine, and its stack grown again, cost about 2 µs a frame
// (BENCHMARKS.md, Session 6).
func (c *conn) serve(done func()) {
	if err := c.next(); err != nil {
		c.logClose(err)
		c.cancel()
		c.ws.CloseNow()
		c.leave()
		done()
		return
	}
	go c.serve(done)
}

// next reads one frame and handles it. An error means the socket is done.
func (c *conn) next() error {
	// Not c.ctx: every way a socket ends closes the connection, which ends
	// the read, and a context that can never be done spares each read a
	// registration on it (memory that an idle socket would keep).
	typ, r, err := c.ws.Reader(context.Background())
	if err != nil {
		return err
	}
	buf := frameBufs.Get().(*[]byte)
	data, err := readFrame(r, (*buf)[:0])
	if err != nil {
		return err
	}
	c.lastSeen.Store(time.Now().UnixNano())
	if typ != websocket.MessageText {
		c.refuse(refuse("bad_frame", "Send JSON text frames, not binary."))
	} else if err := c.handle(data); err != nil {
		ce := toClientError(err)
		if ce.Code == "unavailable" {
			// Not the client's fault: the operator needs to see it.
			c.hub.log.Warn("request failed", "player", c.tag, "err", err)
		}
		c.refuse(ce)
	}
	// handle keeps nothing of data (decoding copies), so its array can
	// serve the next frame, of this socket or another.
	if cap(data) <= maxPooledFrame {
		*buf = data[:0]
		frameBufs.Put(buf)
	}
	return nil
}

// frameBufs holds arrays for reading client frames: a frame is read whole
// into one, handled, and the array goes back. An idle socket holds none.
var frameBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// maxPooledFrame is the largest array frameBufs keeps; a rare large frame's
// array goes to the garbage collector.
const maxPooledFrame = 4 << 10

// readFrame appends the rest of r to b, as io.ReadAll does.
func readFrame(r io.Reader, b []byte) ([]byte, error) {
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
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

// enqueue queues f for writing without blocking, and starts the writer if
// it is not running. A socket whose queue is full is too slow to play and is
// closed.
func (c *conn) enqueue(f []byte) {
	c.qmu.Lock()
	if c.closing {
		c.qmu.Unlock()
		return
	}
	if len(c.queue) >= c.hub.opt.SendQueue {
		c.qmu.Unlock()
		if c.slow.CompareAndSwap(false, true) {
			c.hub.log.Info("socket too slow, closing", "player", c.tag)
			c.hub.metrics.dropped.WithLabelValues("too_slow").Inc()
			c.close(websocket.StatusPolicyViolation, "too slow")
		}
		return
	}
	c.push(f)
	c.qmu.Unlock()
}

// push appends f, nil for the close, to the queue; c.qmu is held.
func (c *conn) push(f []byte) {
	c.queue = append(c.queue, f)
	if !c.writing {
		c.writing = true
		go c.write()
	}
}

// write sends the queued frames in order until the queue is empty, then
// exits. At most one runs per socket.
func (c *conn) write() {
	var batch [][]byte
	for {
		c.qmu.Lock()
		clear(batch)
		batch, c.queue = c.queue, batch[:0]
		if len(batch) == 0 || c.ctx.Err() != nil {
			c.writing = false
			if cap(c.queue) > 16 {
				c.queue = nil // a burst's array is not kept by an idle socket
			}
			c.qmu.Unlock()
			return
		}
		c.qmu.Unlock()
		// One deadline per batch: a socket that cannot take the frames queued
		// within WriteTimeout is too slow anyway. It is set on the connection
		// rather than passed as a context, which would cost a timer and a
		// context for every frame, and cleared after the batch, so that
		// the library's own writes (pongs, the close) are not cut short.
		c.raw.SetWriteDeadline(time.Now().Add(c.hub.opt.WriteTimeout))
		for _, f := range batch {
			if f == nil {
				c.raw.SetWriteDeadline(time.Time{})
				c.ws.Close(c.closeCode, c.closeReason)
				c.cancel()
				c.drop()
				return
			}
			start := time.Now()
			err := c.ws.Write(context.Background(), websocket.MessageText, f)
			c.hub.metrics.write.Observe(time.Since(start).Seconds())
			if err != nil {
				c.end()
				c.drop()
				return
			}
		}
		c.raw.SetWriteDeadline(time.Time{})
	}
}

// drop empties the queue of a socket that is done, and lets enqueue start
// no writer again.
func (c *conn) drop() {
	c.qmu.Lock()
	c.closing, c.writing, c.queue = true, false, nil
	c.qmu.Unlock()
}

// close closes the socket with code once the frames already queued are
// written, so that a client learns why (say, the rate_limited error) before
// the close. A socket whose queue is full is closed at once. It never blocks.
func (c *conn) close(code websocket.StatusCode, reason string) {
	c.closeOnce.Do(func() {
		c.qmu.Lock()
		defer c.qmu.Unlock()
		c.closeCode, c.closeReason = code, reason
		c.closing = true
		if len(c.queue) < c.hub.opt.SendQueue {
			c.push(nil) // the writer closes when it gets here
			return
		}
		go c.end()
	})
}

// end drops the connection at once; the read loop then finishes the socket.
func (c *conn) end() {
	c.cancel()
	c.ws.CloseNow()
}

// maybePing checks a socket that has been silent for a while: a live browser
// answers WebSocket pings by itself. It never blocks.
func (c *conn) maybePing(now time.Time) {
	if now.UnixNano()-c.lastSeen.Load() < int64(c.hub.opt.PingInterval) || !c.pinging.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer c.pinging.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), c.hub.opt.PingInterval)
		defer cancel()
		if err := c.ws.Ping(ctx); err != nil {
			c.end()
			return
		}
		c.lastSeen.Store(time.Now().UnixNano())
	}()
}
