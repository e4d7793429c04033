package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/tictac/tictac/internal/testenv"
	"github.com/tictac/tictac/internal/wstest"
)

func statusOf(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// eventuallyStatus polls url until it answers code.
func eventuallyStatus(t *testing.T, url string, code int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for got := statusOf(t, url); got != code; got = statusOf(t, url) {
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %d, want %d within %v", url, got, code, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDrain: on shutdown the replica fails /readyz and refuses new sockets
// for the drain delay, then closes the open ones with 1012 and exits.
func TestDrain(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-addr", addr, "-data", t.TempDir(), "-drain-delay", "1s", "-log-level", "warn"},
			func(string) string { return "" }, io.Discard, logWriter{t})
	}()
	base, ws := "http://"+addr, "ws://"+addr+"/live"
	eventuallyStatus(t, base+"/readyz", http.StatusOK, 10*time.Second)
	player := wstest.Dial(t, ws)
	player.Ping()

	cancel()
	eventuallyStatus(t, base+"/readyz", http.StatusServiceUnavailable, 2*time.Second)
	if _, resp, err := websocket.Dial(context.Background(), ws, nil); err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("new socket while draining: %v %v, want 503", err, resp)
	}
	player.Ping() // the open socket still plays during the delay
	if code := player.ExpectClose(); code != websocket.StatusServiceRestart {
		t.Errorf("open socket closed with %v, want 1012", code)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("did not exit")
	}
}

// TestReadyzFollowsTheStore: with RethinkDB cut off, /readyz fails and moves
// are refused with a clear error; when it is back, both recover.
func TestReadyzFollowsTheStore(t *testing.T) {
	t.Parallel()
	db := testenv.StartProxy(t, testenv.RethinkDB(t))
	a := start(t, t.TempDir(), "-rethinkdb", db.Addr, "-rethinkdb-db", "r"+strings.ReplaceAll(t.Name(), "/", "_"))
	eventuallyStatus(t, a.base+"/readyz", http.StatusOK, 10*time.Second)
	x, o := wstest.Dial(t, a.ws), wstest.Dial(t, a.ws)
	wstest.Pair(t, x, o)

	db.Cut()
	eventuallyStatus(t, a.base+"/readyz", http.StatusServiceUnavailable, 10*time.Second)
	if code := statusOf(t, a.base+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz %d while the store is away: the process is alive", code)
	}
	x.Send(wstest.Fill(x.GameID, 1, 1))
	x.ExpectError("unavailable")

	db.Restore()
	eventuallyStatus(t, a.base+"/readyz", http.StatusOK, 15*time.Second)
	x.Move(o, 1, 1)
}

// TestAwayAndForfeitOutliveAStoreOutage: a player who leaves while the
// database is cut off is marked away once it is back, and a forfeit due
// during an outage lands after it, a new grace period later. Before, both
// writes were given up on their first failure, and the game stayed in
// progress for ever, its opponent waiting for a move.
func TestAwayAndForfeitOutliveAStoreOutage(t *testing.T) {
	t.Parallel()
	db := testenv.StartProxy(t, testenv.RethinkDB(t))
	a := start(t, t.TempDir(), "-rethinkdb", db.Addr, "-rethinkdb-db", "r"+strings.ReplaceAll(t.Name(), "/", "_"), "-grace", "3s")
	eventuallyStatus(t, a.base+"/readyz", http.StatusOK, 10*time.Second)

	// The player leaves during the outage: nobody hears of it until the
	// away mark is stored, then the forfeit follows the grace period.
	x, o := wstest.Dial(t, a.ws), wstest.Dial(t, a.ws)
	wstest.Pair(t, x, o)
	db.Cut()
	eventuallyStatus(t, a.base+"/readyz", http.StatusServiceUnavailable, 10*time.Second)
	x.WS.Close(websocket.StatusGoingAway, "")
	o.Quiet(time.Second)
	db.Restore()
	o.Await("playerAway", 40*time.Second)
	expectAbandoned(t, o)
	o.WS.Close(websocket.StatusNormalClosure, "")

	// The player leaves before the outage, and the deadline passes during
	// it: the grace period starts over when the database is back, then the
	// forfeit follows.
	x, o = wstest.Dial(t, a.ws), wstest.Dial(t, a.ws)
	wstest.Pair(t, x, o)
	x.WS.Close(websocket.StatusGoingAway, "")
	var away struct{ Deadline int64 }
	o.Expect("playerAway").Decode(t, &away)
	db.Cut()
	o.Quiet(time.Until(time.UnixMilli(away.Deadline)) + time.Second) // the outage fails the forfeit
	db.Restore()
	o.Await("playerAway", 40*time.Second) // a new grace period
	expectAbandoned(t, o)
}

// expectAbandoned waits for o's game to end by forfeit, its grace period
// and then some.
func expectAbandoned(t *testing.T, o *wstest.Client) {
	t.Helper()
	var d struct{ GameID, Status string }
	o.Await("updateGameStatus", 20*time.Second).Decode(t, &d)
	if d.GameID != o.GameID || d.Status != "abandoned" {
		t.Fatalf("got status %q for %s, want abandoned for %s", d.Status, d.GameID, o.GameID)
	}
}

// TestAdminListener: with -admin-addr, metrics and profiles are served there
// and not on the public port.
func TestAdminListener(t *testing.T) {
	t.Parallel()
	admin := freeAddr(t)
	a := start(t, t.TempDir(), "-admin-addr", admin, "-pprof")
	tests := []struct {
		url  string
		code int
	}{
		{a.base + "/metrics", http.StatusNotFound},
		{a.base + "/debug/pprof/", http.StatusNotFound},
		{"http://" + admin + "/metrics", http.StatusOK},
		{"http://" + admin + "/debug/pprof/", http.StatusOK},
		{"http://" + admin + "/readyz", http.StatusOK},
		{"http://" + admin + "/healthz", http.StatusOK},
	}
	for _, tt := range tests {
		if got := statusOf(t, tt.url); got != tt.code {
			t.Errorf("GET %s: %d, want %d", tt.url, got, tt.code)
		}
	}
	b := start(t, t.TempDir())
	if got := statusOf(t, b.base+"/debug/pprof/"); got != http.StatusNotFound {
		t.Errorf("pprof without -pprof: %d, want 404", got)
	}
	if _, err := parseFlags([]string{"-pprof"}, func(string) string { return "" }, io.Discard); err == nil {
		t.Error("-pprof without -admin-addr was accepted")
	}
}
