package hub

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
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
// small buffers, and keeps that connection in conn for the socket's write
// deadlines.
type smallBuffers struct {
	http.ResponseWriter
	conn net.Conn
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
	w.conn = conn
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
	return conn, bufio.NewReadWriter(r, bufio.NewWriterSize(conn, writeBuffer)), nil
}
