package hub

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// Buffer sizes of a socket once upgraded. net/http hands a hijacked
// connection over with 4 KiB for reading and 4 KiB for writing; clients send
// frames of a hundred bytes and most server frames fit in one KiB, so that
// smaller buffers cost a rare extra system call and save most of an idle
// socket's memory. Larger frames still pass through whole.
const (
	readBuffer  = 256
	writeBuffer = 1024
)

// smallBuffers is a ResponseWriter whose Hijack returns a connection with
// small buffers, that can be corked.
type smallBuffers struct {
	http.ResponseWriter
	cork *corkConn // what Hijack returned
}

// Unwrap lets http.ResponseController reach the server's writer.
func (w *smallBuffers) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Hijack takes over the connection as the server's own Hijack does, keeping
// any bytes the client sent after the handshake.
func (w *smallBuffers) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	var r *bufio.Reader
	if n := brw.Reader.Buffered(); n > 0 {
		early, _ := brw.Reader.Peek(n)
		r = bufio.NewReaderSize(io.MultiReader(bytes.NewReader(bytes.Clone(early)), conn), max(n, readBuffer))
		if _, err := r.Peek(n); err != nil { // into the buffer, where the caller looks for them
			conn.Close()
			return nil, nil, err
		}
	} else {
		r = bufio.NewReaderSize(conn, readBuffer)
	}
	if err := brw.Writer.Flush(); err != nil {
		conn.Close()
		return nil, nil, err
	}
	w.cork = &corkConn{Conn: conn}
	return w.cork, bufio.NewReadWriter(r, bufio.NewWriterSize(w.cork, writeBuffer)), nil
}

// corkConn is a socket's connection whose writes can be held back and sent
// together. The WebSocket library flushes every frame with a system call of
// its own; a socket's writer that has several frames queued (a game's last
// move, its result and its winner) corks the connection around them, so that
// they leave in one write. A socket that is not corked writes through.
type corkConn struct {
	net.Conn
	mu     sync.Mutex // orders writes: the library's, and the flush of held
	corked bool
	held   *[]byte // from heldPool while corked
}

// heldPool keeps the buffers of corked writes between batches, so that a
// socket holds none while idle.
var heldPool = sync.Pool{New: func() any { b := make([]byte, 0, 2*writeBuffer); return &b }}

// Write holds p while corked, and writes it otherwise.
func (c *corkConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.corked {
		*c.held = append(*c.held, p...)
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// cork holds the writes that follow until uncork.
func (c *corkConn) cork() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.corked {
		c.corked, c.held = true, heldPool.Get().(*[]byte)
	}
}

// uncork writes what was held, in one write that fails if it cannot finish
// by deadline, and lets writes through again.
func (c *corkConn) uncork(deadline time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.corked {
		return nil
	}
	held := c.held
	c.corked, c.held = false, nil
	defer func() {
		if cap(*held) <= 64<<10 { // a rare huge batch is not kept
			*held = (*held)[:0]
			heldPool.Put(held)
		}
	}()
	if len(*held) == 0 {
		return nil
	}
	if err := c.Conn.SetWriteDeadline(deadline); err != nil {
		return err
	}
	_, err := c.Conn.Write(*held)
	if derr := c.Conn.SetWriteDeadline(time.Time{}); err == nil {
		err = derr
	}
	return err
}
