package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/tictac/tictac/internal/testenv"
	"github.com/tictac/tictac/internal/wstest"
	"github.com/tictac/tictac/loadgen"
)

// app is a running tictac started through run, as main does.
type app struct {
	base, ws string
	stop     func()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	return fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
}

type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// start runs the server on a free port with its data in dir, and waits until
// /healthz answers. stop shuts it down gracefully and checks run's result.
func start(t *testing.T, dir string, args ...string) *app {
	t.Helper()
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	args = append([]string{"-addr", addr, "-data", dir, "-log-format", "text", "-log-level", "warn", "-grace", "200ms"}, args...)
	go func() { done <- run(ctx, args, func(string) string { return "" }, io.Discard, logWriter{t}) }()
	a := &app{base: "http://" + addr, ws: "ws://" + addr + "/live"}
	var once bool
	a.stop = func() {
		if once {
			return
		}
		once = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run returned %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("run did not return within 15s of its context ending")
		}
	}
	t.Cleanup(a.stop)
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(a.base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return a
			}
		}
		select {
		case err := <-done:
			t.Fatalf("run exited early: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("server not healthy within 10s: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

func TestServesClient(t *testing.T) {
	t.Parallel()
	a := start(t, t.TempDir())
	tests := []struct {
		path, contentType, contains string
	}{
		{"/", "text/html", "<canvas"},
		{"/main.js", "text/javascript", "import"},
		{"/style.css", "text/css", "{"},
		{"/healthz", "text/plain", "ok"},
		{"/metrics", "text/plain", "tictac_sockets_open"},
		{"/metrics", "text/plain", "tictac_store_log_sync_seconds"}, // the embedded store's
		{"/metrics", "text/plain", "go_sched_latencies_seconds"},    // the scheduler's
	}
	for _, tt := range tests {
		resp, body := get(t, a.base+tt.path)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d", tt.path, resp.StatusCode)
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, tt.contentType) {
			t.Errorf("GET %s: Content-Type %q, want %s", tt.path, ct, tt.contentType)
		}
		if !strings.Contains(body, tt.contains) {
			t.Errorf("GET %s: body lacks %q", tt.path, tt.contains)
		}
	}
	// Anything under /g/ is an invite link, the page itself: the client
	// tells a bad link from a good one and says so. (A malformed escape,
	// /g/%zz, gets net/http's 400 before any handler runs.)
	for _, path := range []string{"/g/abcd2345", "/g/abcd2345/", "/g/", "/g/!!bad", "/g/abc", "/g/a/b", "/g/%E0%A4"} {
		resp, body := get(t, a.base+path)
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(body, "<canvas") {
			t.Errorf("GET %s: %d %s, want the page", path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if cc := resp.Header.Get("Cache-Control"); cc != "no-cache" {
			t.Errorf("GET %s: Cache-Control %q, want no-cache", path, cc)
		}
	}
	if resp, _ := get(t, a.base+"/nope.js"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /nope.js: %d, want 404", resp.StatusCode)
	}
	if resp, _ := get(t, a.base+"/"); !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'self'") {
		t.Errorf("no CSP on the page: %q", resp.Header.Get("Content-Security-Policy"))
	}
	// Every module the page loads is embedded and served as JavaScript.
	_, page := get(t, a.base+"/")
	_, main := get(t, a.base+"/main.js")
	for _, mod := range modules(page + main) {
		resp, _ := get(t, a.base+"/"+mod)
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/javascript") {
			t.Errorf("GET /%s: %d %s", mod, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	}
	// Both /live and /live/ are the game socket; a cross-origin page may not open one.
	for _, path := range []string{"/live", "/live/"} {
		c := wstest.Dial(t, "ws"+strings.TrimPrefix(a.base, "http")+path)
		c.Ping()
	}
	_, resp, err := websocket.Dial(context.Background(), a.ws, &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {"https://evil.example"}}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-origin upgrade: %v %v, want 403", err, resp)
	}
	// -allowed-origins widens the same-origin rule, and only by what it names.
	b := start(t, t.TempDir(), "-allowed-origins", "play.example, *.friends.example")
	for origin, ok := range map[string]bool{"https://play.example": true, "https://a.friends.example": true, "https://evil.example": false} {
		c, resp, err := websocket.Dial(context.Background(), b.ws, &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {origin}}})
		if ok && err != nil || !ok && (err == nil || resp == nil || resp.StatusCode != http.StatusForbidden) {
			t.Errorf("origin %s: %v, want allowed=%v", origin, err, ok)
		}
		if c != nil {
			c.CloseNow()
		}
	}
}

// modules finds the "./x.js" names imported by JavaScript source.
func modules(src string) []string {
	var out []string
	for _, part := range strings.Split(src, "./")[1:] {
		if i := strings.Index(part, ".js"); i > 0 && !strings.ContainsAny(part[:i], " \"'`\n/") {
			out = append(out, part[:i+3])
		}
	}
	return out
}

func TestFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args    []string
		env     map[string]string
		wantErr string
		check   func(config) error
	}{
		{args: nil, check: func(c config) error {
			if c.addr != ":8080" || c.dataDir != "./data" || c.durability != "hard" || c.gcFloor != 64 || c.statsInterval != 250*time.Millisecond {
				return fmt.Errorf("defaults %+v", c)
			}
			return nil
		}},
		{env: map[string]string{"PORT": "9999"}, check: func(c config) error {
			if c.addr != ":9999" {
				return fmt.Errorf("PORT gave addr %q", c.addr)
			}
			return nil
		}},
		{args: []string{"-addr", "127.0.0.1:1"}, env: map[string]string{"PORT": "9999", "DURABILITY": "soft", "DATA_DIR": "/x"}, check: func(c config) error {
			if c.addr != "127.0.0.1:1" || c.durability != "soft" || c.dataDir != "/x" {
				return fmt.Errorf("flags over env: %+v", c)
			}
			return nil
		}},
		{args: []string{"-durability", "maybe"}, wantErr: "-durability must be hard or soft"},
		{env: map[string]string{"STATS_INTERVAL": "1s"}, check: func(c config) error {
			if c.statsInterval != time.Second || c.statsBudget != 3000 {
				return fmt.Errorf("STATS_INTERVAL=1s gave %v (budget %d)", c.statsInterval, c.statsBudget)
			}
			return nil
		}},
		{args: []string{"-stats-interval", "10ms"}, wantErr: "-stats-interval must be 50ms to 1m"},
		{env: map[string]string{"GC_FLOOR": "0"}, check: func(c config) error {
			if c.gcFloor != 0 {
				return fmt.Errorf("GC_FLOOR=0 gave %d", c.gcFloor)
			}
			return nil
		}},
		{args: []string{"-gc-floor", "32"}, env: map[string]string{"GOGC": "200"}, check: func(c config) error {
			if c.gcFloor != 0 {
				return fmt.Errorf("with GOGC set the floor is %d, want none", c.gcFloor)
			}
			return nil
		}},
		{args: []string{"-gc-floor", "-1"}, wantErr: "-gc-floor must be 0 to"},
		{env: map[string]string{"GC_FLOOR": "big"}, wantErr: "GC_FLOOR"},
		{env: map[string]string{"STATS_INTERVAL": "often"}, wantErr: "STATS_INTERVAL"},
		{env: map[string]string{"SHUTDOWN_TIMEOUT": "soon"}, wantErr: "SHUTDOWN_TIMEOUT"},
		{args: []string{"-grace", "0s"}, wantErr: "-grace must be positive"},
		{env: map[string]string{"GRACE": "-5s"}, wantErr: "-grace must be positive"},
		{args: []string{"-shutdown-timeout", "0s"}, wantErr: "-shutdown-timeout must be positive"},
		// The drain delay is spent out of the shutdown timeout.
		{args: []string{"-drain-delay", "10s"}, wantErr: "less than -shutdown-timeout (10s)"},
		{args: []string{"-drain-delay", "-1s"}, wantErr: "-drain-delay must be"},
		{env: map[string]string{"DRAIN_DELAY": "5s", "SHUTDOWN_TIMEOUT": "10s"}, check: func(c config) error {
			if c.drainDelay != 5*time.Second || c.shutdownTimeout != 10*time.Second {
				return fmt.Errorf("drain %v, shutdown %v", c.drainDelay, c.shutdownTimeout)
			}
			return nil
		}},
		{args: []string{"-nope"}, wantErr: "flag provided but not defined"},
		{args: []string{"extra"}, wantErr: "unknown argument"},
	}
	for _, tt := range tests {
		var stderr bytes.Buffer
		cfg, err := parseFlags(tt.args, func(k string) string { return tt.env[k] }, &stderr)
		switch {
		case tt.wantErr != "":
			if err == nil || !strings.Contains(err.Error()+stderr.String(), tt.wantErr) {
				t.Errorf("%v: got %v, want error containing %q", tt.args, err, tt.wantErr)
			}
		case err != nil:
			t.Errorf("%v: %v", tt.args, err)
		default:
			if err := tt.check(cfg); err != nil {
				t.Errorf("%v %v: %v", tt.args, tt.env, err)
			}
		}
	}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"version"}, func(string) string { return "" }, &out, io.Discard); err != nil || !strings.HasPrefix(out.String(), "tictac ") {
		t.Errorf("version: %q, %v", out.String(), err)
	}
	if err := run(context.Background(), []string{"-h"}, func(string) string { return "" }, io.Discard, &out); !errors.Is(err, flag.ErrHelp) || !strings.Contains(out.String(), "-durability") {
		t.Errorf("-h: %v, %q", err, out.String())
	}
}

var endings = []struct {
	name   string
	moves  [][2]int
	status string
}{
	{"x wins", [][2]int{{0, 0}, {0, 1}, {1, 0}, {1, 1}, {2, 0}}, "finished"},
	{"o wins", [][2]int{{0, 0}, {2, 0}, {1, 0}, {1, 1}, {2, 2}, {0, 2}}, "finished"},
	{"draw", [][2]int{{0, 0}, {1, 0}, {2, 0}, {1, 1}, {0, 1}, {2, 1}, {1, 2}, {0, 2}, {2, 2}}, "finished-draw"},
}

// playAll plays one game of each ending and one abandoned game on a.
func playAll(t *testing.T, a *app) {
	t.Helper()
	for _, e := range endings {
		x, o := wstest.Dial(t, a.ws), wstest.Dial(t, a.ws)
		wstest.Pair(t, x, o)
		wstest.Play(x, o, e.moves)
		for _, p := range []*wstest.Client{x, o} {
			p.ExpectStatus(e.status)
			p.Expect("updateWinner")
		}
		x.WS.Close(websocket.StatusNormalClosure, "")
		o.WS.Close(websocket.StatusNormalClosure, "")
	}
	x, o := wstest.Dial(t, a.ws), wstest.Dial(t, a.ws)
	wstest.Pair(t, x, o)
	x.Move(o, 1, 1)
	x.WS.Close(websocket.StatusGoingAway, "")
	o.Expect("playerAway")
	o.ExpectStatus("abandoned")
	o.WS.Close(websocket.StatusNormalClosure, "")
}

// wantStats is what playAll leaves, with nobody online.
var wantStats = map[string]int64{
	"totalGames": 4, "totalMoves": 5 + 6 + 9 + 1, "wonByX": 1, "wonByO": 1, "tiedGames": 1,
	"abandonedGames": 1, "gamesInProgress": 0, "playersOnline": 1,
}

// awaitStats connects a watcher and waits until its merged stats equal want.
func awaitStats(t *testing.T, a *app, want map[string]int64) {
	t.Helper()
	w := wstest.Dial(t, a.ws)
	got := map[string]int64{}
	deadline := time.Now().Add(5 * time.Second)
	for !equal(got, want) {
		if time.Now().After(deadline) {
			t.Fatalf("stats %v, want %v", got, want)
		}
		time.Sleep(20 * time.Millisecond)
		w.LatestStats(got)
	}
	w.WS.Close(websocket.StatusNormalClosure, "")
}

func equal(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestStatsEndToEnd plays to every ending through the real program and checks
// the stats a newcomer sees.
func TestStatsEndToEnd(t *testing.T) {
	t.Parallel()
	a := start(t, t.TempDir(), "-durability", "soft")
	playAll(t, a)
	awaitStats(t, a, wantStats)
}

// playedStore plays one game of each ending through the program, with fsync
// on as by default, stops it gracefully and returns its data directory.
func playedStore(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	a := start(t, dir)
	playAll(t, a)
	awaitStats(t, a, wantStats)
	a.stop()
	return dir
}

// TestRestartKeepsGamesAndStats stops the server gracefully and starts it on
// the same data directory, with fsync on as by default.
func TestRestartKeepsGamesAndStats(t *testing.T) {
	t.Parallel()
	dir := playedStore(t)
	b := start(t, dir)
	awaitStats(t, b, wantStats)
	// And play goes on where it left off.
	x, o := wstest.Dial(t, b.ws), wstest.Dial(t, b.ws)
	wstest.Pair(t, x, o)
	x.Move(o, 0, 0)
	want := map[string]int64{}
	for k, v := range wantStats {
		want[k] = v
	}
	want["totalGames"]++
	want["totalMoves"]++
	want["gamesInProgress"]++
	want["playersOnline"] = 3
	awaitStats(t, b, want)
}

// TestRestartWaitsForPlayers stops the server gracefully while a game is in
// progress and a friend's game waits, and starts it again on the same data:
// the friend's link still works, and the players who never come back lose by
// forfeit once their grace period is over (the timers of the process that
// marked them away went with it).
func TestRestartWaitsForPlayers(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	grace := []string{"-grace", "5s", "-durability", "soft"}
	a := start(t, dir, grace...)
	x, o := wstest.Dial(t, a.ws), wstest.Dial(t, a.ws)
	wstest.Pair(t, x, o)
	x.Move(o, 1, 1)
	host := wstest.Dial(t, a.ws)
	host.Send(map[string]any{"action": "joinGame", "data": map[string]any{"mode": "friend"}})
	var invite struct{ GameID, Invite string }
	host.Expect("joinGame").Decode(t, &invite)
	a.stop() // closes the sockets: all three players are marked away

	b := start(t, dir, grace...)
	friend := wstest.Dial(t, b.ws)
	friend.Send(map[string]any{"action": "joinGame", "data": map[string]any{"invite": invite.Invite}})
	var joined struct{ GameID, Team string }
	friend.Expect("joinGame").Decode(t, &joined)
	if joined.GameID != invite.GameID || joined.Team != "o" {
		t.Fatalf("the friend joined %+v by the link, want game %s as o", joined, invite.GameID)
	}
	friend.Await("playerAway", 2*time.Second)
	// Nobody else comes back: both games end by forfeit, the friend's won.
	var w struct {
		GameID, Winner, Reason string
	}
	friend.Await("updateWinner", 10*time.Second).Decode(t, &w)
	if w.GameID != invite.GameID || w.Winner != "o" || w.Reason != "forfeit" {
		t.Errorf("the friend's game ended %+v, want o winning by forfeit", w)
	}
	deadline := time.Now().Add(10 * time.Second)
	got := map[string]int64{}
	for {
		friend.LatestStats(got)
		if got["gamesInProgress"] == 0 && got["totalGames"] == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stats %v 10s after the grace periods: a game nobody returned to is still in progress", got)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestLoadNoAnomalies is the short load run of the test command: simulated
// players with no think time against the real program, failing on any
// protocol anomaly (never on timing).
func TestLoadNoAnomalies(t *testing.T) {
	t.Parallel()
	a := start(t, t.TempDir(), "-durability", "soft")
	rep, err := loadgen.Play(context.Background(), loadgen.PlayConfig{URLs: []string{a.ws}, Players: 100, Duration: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := rep.Err(); err != nil {
		t.Fatal(err)
	}
	if rep.Moves == 0 || rep.Games == 0 || rep.Errors != 0 || rep.Timeouts != 0 {
		t.Fatalf("%d games, %d moves, %d error frames %v, %d timeouts; want games and no errors", rep.Games, rep.Moves, rep.Errors, rep.ErrorCodes, rep.Timeouts)
	}
	t.Logf("%d games, %d moves, %d errors, %d timeouts", rep.Games, rep.Moves, rep.Errors, rep.Timeouts)
}

// TestStartupErrors: a misconfigured or unreachable service stops the
// program at once with one line naming it.
func TestStartupErrors(t *testing.T) {
	t.Parallel()
	closed := freeAddr(t) // nothing listens there
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"-redis", "http://127.0.0.1:1", "-rethinkdb", closed}, "redis url"},
		{[]string{"-redis", "redis://" + closed, "-rethinkdb", closed}, "redis " + closed},
		{[]string{"-redis", "redis://" + closed}, "-redis needs -rethinkdb"},
		{[]string{"-rethinkdb", closed}, closed},
	}
	for _, tt := range tests {
		args := append([]string{"-addr", "127.0.0.1:0", "-data", t.TempDir(), "-log-level", "error"}, tt.args...)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := run(ctx, args, func(string) string { return "" }, io.Discard, io.Discard)
		cancel()
		if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: got %v, want one line mentioning %q", tt.args, err, tt.want)
		}
	}
}
