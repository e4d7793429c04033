package hub

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/tictac/tictac/game"
	"github.com/tictac/tictac/store"
)

func benchGame() store.Game {
	g := store.Game{ID: "abcdefghijkl", Game: game.New()}
	_ = g.Start()
	for _, m := range [][2]int{{0, 0}, {1, 1}, {2, 2}, {0, 2}} {
		mv := game.Move{X: m[0], Y: m[1], Team: g.Turn()}
		_ = g.Play(mv)
		g.History = append(g.History, store.Move{X: mv.X, Y: mv.Y, Team: mv.Team})
	}
	return g
}

// BenchmarkEncodeGrid is the state message sent after every move; with the
// RethinkDB store, the bus message also carries the game as stored.
func BenchmarkEncodeGrid(b *testing.B) {
	g := benchGame()
	b.Run("alone", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = busMessage(&g, nil, frameGrid(&g))
		}
	})
	b.Run("stored", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = busMessage(&g, store.EncodeGame(&g), frameGrid(&g))
		}
	})
}

// BenchmarkLearn is what a replica does with the game a bus message carries
// when its store does not know that version yet: decode it.
func BenchmarkLearn(b *testing.B) {
	g := benchGame()
	msg := busMessage(&g, store.EncodeGame(&g), frameGrid(&g))
	line := msg[bytes.LastIndexByte(msg, '\n')+1:]
	l := &decoding{}
	h := New(l, NewMemoryBus(), Options{Logger: slog.New(slog.DiscardHandler)})
	b.ReportAllocs()
	for b.Loop() {
		h.learn(g.ID, line)
		if l.err != nil {
			b.Fatal(l.err)
		}
	}
}

// decoding is a Learner that always decodes, as a replica that did not
// store the game does.
type decoding struct {
	Store
	calls int
	err   error
}

func (d *decoding) Learn(id string, version int64, decode func() (store.Game, error)) {
	d.calls++
	_, d.err = decode()
}

// BenchmarkFanOut delivers one bus message to a room's sockets.
func BenchmarkFanOut(b *testing.B) {
	for _, n := range []int{2, 10} {
		b.Run("sockets="+strconv.Itoa(n), func(b *testing.B) {
			h := New(nil, NewMemoryBus(), Options{Logger: slog.New(slog.DiscardHandler)})
			r := &room{id: "g"}
			conns := make([]*conn, n)
			for i := range conns {
				// writing: as if the writer ran, so that frames stay queued.
				conns[i] = &conn{hub: h, player: "p0000000", writing: true}
				r.add(conns[i])
			}
			g := benchGame()
			msg := busMessage(&g, nil, frameGrid(&g))
			b.ReportAllocs()
			for b.Loop() {
				r.deliver(msg)
				for _, c := range conns {
					c.qmu.Lock()
					c.queue = c.queue[:0]
					c.qmu.Unlock()
				}
			}
		})
	}
}

// BenchmarkStatsFrame encodes a coalesced stats update with two changes.
func BenchmarkStatsFrame(b *testing.B) {
	var prev, next store.Stats
	next[store.TotalMoves], next[store.PlayersOnline] = 10, 3
	b.ReportAllocs()
	for b.Loop() {
		if frameStats(&prev, &next, false) == nil {
			b.Fatal("no frame")
		}
	}
}

// BenchmarkSocketWrite is one frame from a socket's queue to a real client
// over loopback, one at a time, so that each is a batch of its own: the
// writer goroutine, the write deadline set and cleared, the system call.
// allocs/op counts the client's reading too.
func BenchmarkSocketWrite(b *testing.B) {
	h, url := startHub(b, Options{PingInterval: time.Hour, StatsInterval: time.Hour})
	ws, c, _ := dialRaw(b, h, url+"/live", false)
	got := make(chan struct{})
	go func() {
		for {
			_, r, err := ws.Reader(context.Background())
			if err != nil {
				close(got)
				return
			}
			if _, err := io.Copy(io.Discard, r); err != nil {
				close(got)
				return
			}
			got <- struct{}{}
		}
	}()
	<-got // the stats on connect
	f := []byte(`{"action":"updateGrid","data":{"gameId":"abcdefghijkl","x":1,"y":2,"team":"x","move":5,"status":"in-progress"}}`)
	b.ReportAllocs()
	for b.Loop() {
		c.enqueue(f)
		if _, ok := <-got; !ok {
			b.Fatal("the socket closed")
		}
	}
}
