package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tictac/tictac/hub"
)

func TestCheckTarget(t *testing.T) {
	t.Parallel()
	tests := []struct {
		url         string
		allowRemote bool
		wantErr     error // nil: accepted; errAny: any error
	}{
		{"ws://127.0.0.1:8080/live", false, nil},
		{"ws://127.9.8.7/live", false, nil},
		{"ws://localhost:8080/live", false, nil},
		{"ws://LOCALHOST/live", false, nil},
		{"ws://[::1]:8080/live", false, nil},
		{"wss://127.0.0.1/live", false, nil},
		{"ws://10.0.0.1:8080/live", false, ErrNotLoopback},
		{"ws://example.com/live", false, ErrNotLoopback},
		{"ws://localhost.example.com/live", false, ErrNotLoopback},
		{"ws://[::2]/live", false, ErrNotLoopback},
		{"ws://example.com/live", true, nil},
		{"http://127.0.0.1/live", false, errAny},
		{"ws:///live", false, errAny},
	}
	for _, tt := range tests {
		err := checkTarget(tt.url, tt.allowRemote)
		switch {
		case tt.wantErr == nil && err != nil:
			t.Errorf("checkTarget(%q, %v) = %v, want nil", tt.url, tt.allowRemote, err)
		case tt.wantErr == errAny && err == nil, tt.wantErr == ErrNotLoopback && !errors.Is(err, ErrNotLoopback):
			t.Errorf("checkTarget(%q, %v) = %v, want %v", tt.url, tt.allowRemote, err, tt.wantErr)
		}
	}
}

var errAny = errors.New("any error")

func TestMainRefusesRemote(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"play", "-url", "ws://192.0.2.1:8080/live", "-duration", "1s"},
		{"idle", "-url", "ws://127.0.0.1/live,ws://192.0.2.1/live", "-duration", "1s"},
		{"relay", "-addr", "0.0.0.0:0"},
		{"play", "-rethinkdb-probe", "192.0.2.1:28015", "-duration", "1s"},
	} {
		err := Main(t.Context(), args, io.Discard, io.Discard)
		if !errors.Is(err, ErrNotLoopback) {
			t.Errorf("Main(%q) = %v, want ErrNotLoopback", args, err)
		}
	}
}

func TestMainBadArgs(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		nil,
		{"fly"},
		{"play", "-players", "0"},
		{"play", "-players", "1000000"},
		{"play", "-duration", "2h"},
		{"idle", "-conns", "1000000"},
		{"play", "-bogus"},
		{"play", "-rethinkdb-probe", "127.0.0.1:1", "-probe-every", "0"},
		{"play", "-rethinkdb-probe", "127.0.0.1:1"}, // nothing listens there
		{"play", "-fsync-probe", "/nonexistent/dir"},
		{"play", "-fsync-probe", os.TempDir(), "-probe-every", "-1s"},
		{"play", "-fsync-probe", os.TempDir(), "-rethinkdb-probe", "127.0.0.1:1"},
	} {
		if err := Main(t.Context(), args, io.Discard, io.Discard); err == nil {
			t.Errorf("Main(%q) = nil, want an error", args)
		}
	}
	if err := Main(t.Context(), []string{"play", "-h"}, io.Discard, io.Discard); err != nil {
		t.Errorf("Main(play -h) = %v, want nil", err)
	}
}

// syncBuffer is a bytes.Buffer safe to write from one goroutine and read from another.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestMainEndToEnd runs `bench relay`, then `bench play -json -hist` and
// `bench idle` against it, the way the CLI is used.
func TestMainEndToEnd(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	var relayOut syncBuffer
	relayDone := make(chan error, 1)
	go func() { relayDone <- Main(ctx, []string{"relay", "-addr", "127.0.0.1:0"}, &relayOut, io.Discard) }()
	defer func() {
		cancel()
		if err := <-relayDone; err != nil {
			t.Errorf("relay: %v", err)
		}
	}()
	var url string
	re := regexp.MustCompile(`ws://\S+/live`)
	for deadline := time.Now().Add(5 * time.Second); url == "" && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		url = re.FindString(relayOut.String())
	}
	if url == "" {
		t.Fatalf("relay did not announce its url: %q", relayOut.String())
	}

	svg := filepath.Join(t.TempDir(), "hist.svg")
	var out, progress bytes.Buffer
	err := Main(ctx, []string{"play", "-url", url, "-players", "20", "-think", "5ms", "-duration", "1500ms",
		"-ramp", "100ms", "-json", "-hist", svg}, &out, &progress)
	if err != nil {
		t.Fatalf("play: %v", err)
	}
	var rep struct {
		Players int    `json:"players"`
		Games   int64  `json:"games"`
		Think   string `json:"think"`
		Moves   struct {
			Count uint64 `json:"count"`
		} `json:"mover"`
	}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("play -json: %v\n%s", err, out.String())
	}
	if rep.Players != 20 || rep.Games == 0 || rep.Think != "5ms" || rep.Moves.Count == 0 {
		t.Errorf("play -json: players %d games %d think %q mover count %d: want 20, some, 5ms, some\n%s",
			rep.Players, rep.Games, rep.Think, rep.Moves.Count, out.String())
	}
	if !strings.Contains(progress.String(), "moves/s") {
		t.Errorf("progress %q: want a progress line", progress.String())
	}
	checkSVG(t, svg)

	out.Reset()
	err = Main(ctx, []string{"idle", "-url", url, "-conns", "100", "-rate", "1000", "-duration", "200ms",
		"-pid", itoa(os.Getpid()), "-quiet"}, &out, io.Discard)
	if err != nil {
		t.Fatalf("idle: %v", err)
	}
	if !strings.Contains(out.String(), "open at end 100") || !strings.Contains(out.String(), "per socket") {
		t.Errorf("idle report %q: want 100 open and RSS per socket", out.String())
	}
}

// checkSVG checks that file is well-formed XML that names both series.
func checkSVG(t *testing.T, file string) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(bytes.NewReader(b))
	for {
		_, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("svg is not well-formed: %v\n%s", err, b)
		}
	}
	for _, want := range []string{"<svg", "mover", "opponent", "20 players", "latency (log scale"} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("svg lacks %q", want)
		}
	}
}

func TestIdle(t *testing.T) {
	t.Parallel()
	url := startRelay(t)
	rep, err := Idle(t.Context(), IdleConfig{
		URLs: []string{url}, Conns: 300, Rate: 3000, Duration: 300 * time.Millisecond, Sources: 3, PID: os.Getpid(),
	})
	if err != nil {
		t.Fatalf("Idle: %v", err)
	}
	if rep.Opened != 300 || rep.Open != 300 || rep.Failed != 0 || rep.Dropped != 0 {
		t.Errorf("opened %d, open %d, failed %d, dropped %d (%s): want 300, 300, 0, 0",
			rep.Opened, rep.Open, rep.Failed, rep.Dropped, rep.FirstError)
	}
	if rep.RSSBefore <= 0 || rep.RSSAfter <= 0 {
		t.Errorf("RSS %d -> %d: want both read", rep.RSSBefore, rep.RSSAfter)
	}
}

func TestIdleServerGoesAway(t *testing.T) {
	t.Parallel()
	rl, url := startRelayHandle(t)
	time.AfterFunc(300*time.Millisecond, rl.Close)
	rep, err := Idle(t.Context(), IdleConfig{URLs: []string{url}, Conns: 20, Duration: time.Second})
	if err != nil {
		t.Fatalf("Idle: %v", err)
	}
	if rep.Dropped != 20 || rep.Open != 0 {
		t.Errorf("dropped %d, open %d: want 20 dropped by the closing server, 0 open", rep.Dropped, rep.Open)
	}
}

// TestIdleHidden: sockets that act like hidden tabs ask tictac for no live
// stats, so while games change the stats they hear the whole set on connect
// and next to nothing after; the same sockets shown hear the changes.
func TestIdleHidden(t *testing.T) {
	t.Parallel()
	const conns = 20
	frames := func(hidden bool) int64 {
		_, url := startHub(t, hub.Options{StatsInterval: 50 * time.Millisecond})
		ws := "ws" + strings.TrimPrefix(url, "http") + "/live"
		played := make(chan error, 1)
		go func() {
			_, err := Play(t.Context(), PlayConfig{URLs: []string{ws}, Players: 4, Think: 20 * time.Millisecond, Duration: 2 * time.Second})
			played <- err
		}()
		rep, err := Idle(t.Context(), IdleConfig{URLs: []string{ws}, Conns: conns, Rate: 1000, Duration: 1500 * time.Millisecond, Hidden: hidden})
		if err != nil {
			t.Fatalf("Idle: %v", err)
		}
		if err := <-played; err != nil {
			t.Fatalf("Play: %v", err)
		}
		if rep.Open != conns {
			t.Fatalf("hidden %v: %d sockets open at the end (%s), want %d", hidden, rep.Open, rep.FirstError, conns)
		}
		return rep.Frames
	}
	shown, hidden := frames(false), frames(true)
	// Shown, each socket hears a change every 50 ms or so for 1.5 s; hidden,
	// the set on connect and at most a change that beat its pause.
	if hidden > 2*conns {
		t.Errorf("hidden sockets received %d frames, want at most %d", hidden, 2*conns)
	}
	if shown < 5*conns {
		t.Errorf("shown sockets received %d frames, want at least %d: were the stats changing?", shown, 5*conns)
	}
	t.Logf("frames received: shown %d, hidden %d", shown, hidden)
}

// TestIdleHello: sockets that open like the page send hello and are each
// given a session; without Hello they send nothing and are given none.
func TestIdleHello(t *testing.T) {
	t.Parallel()
	const conns = 20
	_, url := startHub(t, hub.Options{})
	ws := "ws" + strings.TrimPrefix(url, "http") + "/live"
	for _, hello := range []bool{false, true} {
		rep, err := Idle(t.Context(), IdleConfig{URLs: []string{ws}, Conns: conns, Rate: 1000, Duration: 500 * time.Millisecond, Hello: hello})
		if err != nil {
			t.Fatalf("Idle: %v", err)
		}
		want := int64(0)
		if hello {
			want = conns
		}
		if rep.Open != conns || rep.Sessions != want {
			t.Errorf("hello %v: %d sockets open at the end (%s), %d given a session; want %d open, %d sessions", hello, rep.Open, rep.FirstError, rep.Sessions, conns, want)
		}
	}
}
