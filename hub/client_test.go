package hub_test

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tictac/tictac/game"
	"github.com/tictac/tictac/hub"
	"github.com/tictac/tictac/internal/wstest"
	"github.com/tictac/tictac/store"
)

// server is a hub over a real embedded store behind a real HTTP server.
type server struct {
	url   string
	store *store.Bolt
	hs    hub.Store // the hub's: store, or what wraps it
	hub   *hub.Hub
	bus   *hub.MemoryBus
}

func newServer(tb testing.TB, opt hub.Options) *server {
	tb.Helper()
	return newServerOn(tb, opt, nil)
}

// newServerOn is newServer with the hub's store wrapped by wrap, if not nil.
func newServerOn(tb testing.TB, opt hub.Options, wrap func(*store.Bolt) hub.Store) *server {
	tb.Helper()
	st, err := store.OpenBolt(filepath.Join(tb.TempDir(), "t.db"), store.BoltOptions{NoSync: true})
	if err != nil {
		tb.Fatal(err)
	}
	if opt.Grace == 0 {
		opt.Grace = 300 * time.Millisecond
	}
	if opt.BotDelay == nil {
		opt.BotDelay = func(game.Level) time.Duration { return 5 * time.Millisecond }
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.NewTextHandler(tbWriter{tb}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	bus := hub.NewMemoryBus()
	var hs hub.Store = st
	if wrap != nil {
		hs = wrap(st)
	}
	tb.Cleanup(func() { st.Close() }) // after the hub's cleanup, registered below
	h := hub.New(hs, bus, opt)
	return &server{url: serve(tb, h), store: st, hs: hs, hub: h, bus: bus}
}

// waiting dials url and joins a quick game, which waits for an opponent.
func waiting(t *testing.T, url string) *wstest.Client {
	t.Helper()
	c := wstest.Dial(t, url)
	c.Join()
	c.ExpectStatus("waiting")
	return c
}

// newReplicaOf starts a second hub on s's store (as wrapped for s's hub) and
// bus, as another replica of the same deployment, and returns its WebSocket
// URL.
func newReplicaOf(tb testing.TB, s *server, opt hub.Options) string {
	tb.Helper()
	return newReplicaOn(tb, s, s.hs, opt)
}

// newReplicaOn is newReplicaOf with its own view of s's store, hs.
func newReplicaOn(tb testing.TB, s *server, hs hub.Store, opt hub.Options) string {
	tb.Helper()
	url, _ := newReplicaBy(tb, hs, s.bus, opt)
	return url
}

// newReplicaBy starts a hub on store hs and bus, as a replica of the
// deployment that shares them, and returns its WebSocket URL and the hub.
func newReplicaBy(tb testing.TB, hs hub.Store, bus hub.Bus, opt hub.Options) (string, *hub.Hub) {
	tb.Helper()
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.NewTextHandler(tbWriter{tb}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	h := hub.New(hs, bus, opt)
	return serve(tb, h), h
}

// serve runs h and serves it over HTTP until the test ends, then closes
// both, and returns its WebSocket URL.
func serve(tb testing.TB, h *hub.Hub) string {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); h.Run(ctx) }()
	ts := httptest.NewServer(h)
	tb.Cleanup(func() {
		closeCtx, c := context.WithTimeout(context.Background(), 5*time.Second)
		defer c()
		h.Close(closeCtx)
		ts.Close()
		cancel()
		<-done
	})
	return "ws" + strings.TrimPrefix(ts.URL, "http") + "/live"
}

type tbWriter struct{ tb testing.TB }

func (w tbWriter) Write(p []byte) (int, error) {
	w.tb.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
