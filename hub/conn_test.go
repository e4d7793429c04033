package hub

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	dto "github.com/prometheus/client_model/go"

	"github.com/tictac/tictac/game"
	"github.com/tictac/tictac/store"
)

// startHub serves a hub on a real listener; the tests here reach into its
// sockets, so they live inside the package.
func startHub(t testing.TB, opt Options) (*Hub, string) {
	t.Helper()
	st, err := store.OpenBolt(filepath.Join(t.TempDir(), "t.db"), store.BoltOptions{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	opt.Logger = slog.New(slog.DiscardHandler)
	h := New(st, NewMemoryBus(), opt)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); h.Run(ctx) }()
	ts := httptest.NewServer(h)
	t.Cleanup(func() {
		closeCtx, c := context.WithTimeout(context.Background(), 5*time.Second)
		defer c()
		h.Close(closeCtx)
		ts.Close()
		cancel()
		<-done
		st.Close()
	})
	return h, "ws" + strings.TrimPrefix(ts.URL, "http")
}

// dialRaw opens a socket that reads only if read is true: one that does not
// read answers no ping and lets the server's frames pile up.
func dialRaw(t testing.TB, h *Hub, url string, read bool) (*websocket.Conn, *conn, chan []byte) {
	t.Helper()
	before := map[*conn]bool{}
	for _, c := range h.sockets(-1) {
		before[c] = true
	}
	ws, _, err := websocket.Dial(context.Background(), url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.CloseNow() })
	ws.SetReadLimit(1 << 20)
	frames := make(chan []byte, 4096)
	if read {
		go func() {
			defer close(frames)
			for {
				_, b, err := ws.Read(context.Background())
				if err != nil {
					return
				}
				frames <- b
			}
		}()
	}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		for _, c := range h.sockets(-1) {
			if !before[c] {
				return ws, c, frames
			}
		}
	}
	t.Fatal("the hub never registered the socket")
	return nil, nil, nil
}

// TestSlowReader: a socket that stops reading fills its queue and is dropped
// as too slow, while the player beside it in the same room gets every frame
// and the fan-out never waits for the slow one.
func TestSlowReader(t *testing.T) {
	t.Parallel()
	h, url := startHub(t, Options{SendQueue: 16, WriteTimeout: time.Second})
	_, slow, _ := dialRaw(t, h, url+"/live", false)
	_, fast, frames := dialRaw(t, h, url+"/live", true)
	r := &room{id: "g"}
	r.add(slow)
	r.add(fast)

	// Frames of 32 KiB, each delivered once the fast client has the one
	// before: the kernel's buffers between the server and the sleeping client
	// fill after a few dozen, then its queue does, and nothing waits for it.
	big := bytes.Repeat([]byte("x"), 32<<10)
	const sent = 300
	for i := range sent {
		r.deliver(append([]byte{byte(game.InProgress), 0}, big...))
		for got := false; !got; { // stats frames may come between
			select {
			case f, ok := <-frames:
				if !ok {
					t.Fatalf("the fast socket closed after %d frames", i)
				}
				got = len(f) == len(big)
			case <-time.After(10 * time.Second):
				t.Fatalf("frame %d never reached the fast socket", i)
			}
		}
	}
	waitDropped(t, slow, "the slow socket")
	if got := droppedTooSlow(t, h); got != 1 {
		t.Errorf("sockets dropped as too slow = %v, want 1", got)
	}
	if fast.ctx.Err() != nil {
		t.Error("the fast socket was closed")
	}
}

// waitDropped fails the test unless socket c is done within 10 s.
func waitDropped(t *testing.T, c *conn, what string) {
	t.Helper()
	select {
	case <-c.ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatalf("%s was never dropped", what)
	}
}

// droppedTooSlow is how many sockets the hub dropped for a full queue.
func droppedTooSlow(t *testing.T, h *Hub) float64 {
	t.Helper()
	var m dto.Metric
	if err := h.metrics.dropped.WithLabelValues("too_slow").Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// TestSilentSocketsPinged: the server pings sockets that have been silent
// for a PingInterval; one that answers stays, one that cannot is closed.
func TestSilentSocketsPinged(t *testing.T) {
	t.Parallel()
	h, url := startHub(t, Options{PingInterval: 100 * time.Millisecond})
	_, deaf, _ := dialRaw(t, h, url+"/live", false)
	_, live, _ := dialRaw(t, h, url+"/live", true)
	select {
	case <-deaf.ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("a socket that answers no ping was never closed")
	}
	time.Sleep(500 * time.Millisecond) // five more intervals
	if live.ctx.Err() != nil {
		t.Error("a socket that answers pings was closed")
	}
	if n := h.Online(); n != 1 {
		t.Errorf("online = %d, want 1", n)
	}
}

// TestEarlyFrame: a client that sends its first frame in the same packet as
// the handshake gets it read; the smaller buffers the socket is handed over
// with must keep the bytes the HTTP server had already read.
func TestEarlyFrame(t *testing.T) {
	t.Parallel()
	_, url := startHub(t, Options{})
	addr := strings.TrimPrefix(url, "ws://")
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	payload := []byte(`{"action":"ping"}`)
	mask := [4]byte{1, 2, 3, 4}
	frame := []byte{0x81, 0x80 | byte(len(payload))}
	frame = append(frame, mask[:]...)
	for i, b := range payload {
		frame = append(frame, b^mask[i%4])
	}
	req := "GET /live HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := nc.Write(append([]byte(req), frame...)); err != nil {
		t.Fatal(err)
	}
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %s", resp.Status)
	}
	// Server frames are unmasked, short ones with a one-byte length.
	for {
		var h [2]byte
		if _, err := io.ReadFull(br, h[:]); err != nil {
			t.Fatalf("no pong: %v", err)
		}
		n := int(h[1] & 0x7f)
		switch n {
		case 126:
			var l [2]byte
			io.ReadFull(br, l[:])
			n = int(l[0])<<8 | int(l[1])
		case 127:
			t.Fatal("unexpectedly long frame")
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(br, body); err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(body, []byte(`"pong"`)) {
			return
		}
	}
}

// TestDeliverTakesTurns: while one delivery to a room is unfinished (here
// stopped between its two sockets, as a preempted goroutine would be), the
// next one reaches no socket; then both sockets get both, in order. Were the
// second to overtake, the first socket's player could answer a move before
// the second socket heard of it, and that socket would see the answer first.
func TestDeliverTakesTurns(t *testing.T) {
	x, o := &conn{holding: true}, &conn{holding: true} // frames pile up in held
	r := &room{members: []*conn{x, o}}
	held := func(c *conn) string {
		c.gate.Lock()
		defer c.gate.Unlock()
		return string(bytes.Join(c.held, []byte(" ")))
	}
	msg := func(move byte) []byte {
		return append([]byte{byte(game.InProgress), move}, fmt.Sprint("move", move)...)
	}

	o.gate.Lock() // the first delivery stops at o
	first, second := make(chan struct{}), make(chan struct{})
	go func() { defer close(first); r.deliver(msg(4)) }()
	for deadline := time.Now().Add(5 * time.Second); held(x) == ""; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the first delivery did not reach x")
		}
	}
	go func() { defer close(second); r.deliver(msg(5)) }()
	time.Sleep(50 * time.Millisecond) // the second delivery's chance to overtake
	if got := held(x); got != "move4" {
		t.Errorf("x got %q while the first delivery was unfinished, want only move4", got)
	}
	o.gate.Unlock()
	<-first
	<-second
	for name, c := range map[string]*conn{"x": x, "o": o} {
		if got := held(c); got != "move4 move5" {
			t.Errorf("%s got %q, want move4 move5", name, got)
		}
	}
}

// TestWriteTimeout: a socket whose client stops reading, with room left in
// its queue, is dropped once a write has waited WriteTimeout for the
// kernel's buffers; and a socket that reads keeps working long after its
// last batch, whose deadline must not outlive it (the library's own pongs
// and the server's later frames would fail).
func TestWriteTimeout(t *testing.T) {
	t.Parallel()
	h, url := startHub(t, Options{SendQueue: 1 << 20, WriteTimeout: 200 * time.Millisecond, PingInterval: time.Hour})
	_, stuck, _ := dialRaw(t, h, url+"/live", false)
	live, fast, frames := dialRaw(t, h, url+"/live", true)

	// Enough to fill the loopback's buffers many times over; the queue holds
	// them all, so only the deadline can drop the socket.
	big := bytes.Repeat([]byte("x"), 64<<10)
	for range 2000 {
		stuck.enqueue(big)
	}
	waitDropped(t, stuck, "a socket stuck in a write")
	if got := droppedTooSlow(t, h); got != 0 {
		t.Errorf("dropped as too slow (queue full) = %v, want 0: the deadline should have done it", got)
	}

	fast.enqueue([]byte(`{"action":"first"}`))
	time.Sleep(600 * time.Millisecond) // three WriteTimeouts after that batch
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := live.Ping(ctx); err != nil { // the server's pong is the library's own write
		t.Fatalf("ping after the batch's deadline: %v", err)
	}
	fast.enqueue([]byte(`{"action":"second"}`))
	for _, want := range []string{"first", "second"} {
		for got := false; !got; { // stats frames may come between
			select {
			case f := <-frames:
				got = bytes.Contains(f, []byte(want))
			case <-time.After(5 * time.Second):
				t.Fatalf("frame %q never arrived", want)
			}
		}
	}
	if fast.ctx.Err() != nil {
		t.Error("the reading socket was closed")
	}
}

// TestIdleStackAfterHello: a socket that said hello and went idle keeps no
// more goroutine stack than one that never said anything. Decoding and
// handling a frame grows a goroutine's stack, which a parked reader would
// keep (see serve); this fails if the goroutine that waits for the next
// frame is the one that handled the last.
//
// It measures in a process of its own: stacks that earlier tests left in
// the runtime's pools would blur the figures. The race detector's
// instrumentation gives every goroutine a larger stack, in which handling
// hello fits: the test means nothing there, so test.sh runs it once more
// without -race.
func TestIdleStackAfterHello(t *testing.T) {
	if raceDetector {
		t.Skip("stack sizes under -race differ; test.sh runs this test without it")
	}
	if os.Getenv("TICTAC_TEST_STACK") == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestIdleStackAfterHello$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), "TICTAC_TEST_STACK=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("in a process of its own: %v\n%s", err, out)
		}
		t.Logf("in a process of its own:\n%s", out)
		return
	}
	_, url := startHub(t, Options{})
	const n = 400
	stackPerSocket := func(hello bool) float64 {
		settle()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for range n {
			ws, _, err := websocket.Dial(t.Context(), url, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ws.CloseNow() })
			if !hello {
				continue
			}
			if err := ws.Write(t.Context(), websocket.MessageText, []byte(`{"action":"hello","data":{}}`+"\n")); err != nil {
				t.Fatal(err)
			}
			for { // the session, perhaps statsUpdate frames, then the reply to a ping sent after hello
				if err := ws.Write(t.Context(), websocket.MessageText, []byte(`{"action":"ping"}`)); err != nil {
					t.Fatal(err)
				}
				if readUntil(t, ws, `"pong"`) {
					break
				}
			}
		}
		settle()
		runtime.ReadMemStats(&after)
		return float64(int64(after.StackInuse)-int64(before.StackInuse)) / n
	}
	silent := stackPerSocket(false)
	said := stackPerSocket(true)
	t.Logf("goroutine stack per idle socket: silent %.0f B, after hello %.0f B", silent, said)
	if said > silent+1024 {
		t.Errorf("a socket idle after hello keeps %.0f B of stack, a silent one %.0f B: the waiting goroutine kept the stack it grew handling frames", said, silent)
	}
}

// settle waits for goroutines that are ending to be gone (the count stops
// changing), then collects twice, which frees the stacks they left.
func settle() {
	last := -1
	for range 100 {
		time.Sleep(20 * time.Millisecond)
		n := runtime.NumGoroutine()
		if n == last {
			break
		}
		last = n
	}
	runtime.GC()
	runtime.GC()
}

// readUntil reads frames from ws until one contains want, and reports false
// if none did within a second.
func readUntil(t *testing.T, ws *websocket.Conn, want string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	for {
		_, b, err := ws.Read(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return false
			}
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(want)) {
			return true
		}
	}
}
