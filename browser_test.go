package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/tictac/tictac/internal/testenv"
	"github.com/tictac/tictac/internal/wstest"
)

// The browser tests drive real pages in headless Chromium against NGINX in
// front of two replicas with Redis and the RethinkDB stand-in. Screenshots go
// to artifacts/screenshots/ (see README).

// chrome starts a headless Chromium with a fresh profile and returns its
// first tab. Each page is a browser of its own, so that each has its own
// localStorage: its own player.
func chrome(t *testing.T) context.Context {
	t.Helper()
	bin := testenv.Need(t, "chromium", "apt-get install -y chromium chromium-driver")
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
	}
	// Not t.TempDir: Chromium may still be writing its profile while the
	// test's own cleanup runs; this one is removed once it has exited.
	profile, err := os.MkdirTemp("", "tictac-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	opts = append(opts, chromedp.UserDataDir(profile))
	alloc, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	tab, stop := chromedp.NewContext(alloc)
	t.Cleanup(func() {
		chromedp.Cancel(tab)
		stop()
		cancel()
		os.RemoveAll(profile)
	})
	// The first Run starts the browser and ties it to the context it gets:
	// give it the tab's own, not a timeout's that ends after one action.
	if err := chromedp.Run(tab); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return tab
}

// page is one tab in a browser context of its own, so that each page has its
// own localStorage: its own player.
type page struct {
	t    *testing.T
	name string
	ctx  context.Context
}

type screen struct {
	w, h   int64
	scale  float64
	mobile bool
}

var (
	desktop = screen{1280, 800, 1, false}
	phone   = screen{375, 812, 2, true}
)

func openPage(t *testing.T, name, url string, s screen) *page {
	t.Helper()
	p := &page{t: t, name: name, ctx: chrome(t)}
	emulate := chromedp.EmulateViewport(s.w, s.h, chromedp.EmulateScale(s.scale))
	if s.mobile {
		emulate = chromedp.EmulateViewport(s.w, s.h, chromedp.EmulateScale(s.scale), chromedp.EmulateMobile, chromedp.EmulateTouch)
	}
	p.run(emulate, trackSockets, chromedp.Navigate(url), chromedp.WaitVisible("#mode-quick", chromedp.ByQuery))
	return p
}

// trackSockets makes the page keep every WebSocket it opens in
// window.__sockets, for dropSockets and setOffline; hold what it sends for
// window.__sendDelay ms when a test sets it, as a slow uplink would; and
// fail to connect while window.__offline is set.
var trackSockets = chromedp.ActionFunc(func(ctx context.Context) error {
	_, err := cdppage.AddScriptToEvaluateOnNewDocument(`(() => {
		const Native = window.WebSocket;
		window.__sockets = [];
		window.__sendDelay = 0;
		window.__offline = false;
		window.WebSocket = class extends Native {
			constructor(url, ...rest) {
				super(window.__offline ? 'ws://127.0.0.1:9/live' : url, ...rest);
				window.__sockets.push(this);
			}
			send(data) {
				if (!window.__sendDelay) return super.send(data);
				setTimeout(() => { if (this.readyState === Native.OPEN) super.send(data); }, window.__sendDelay);
			}
		};
	})();`).Do(ctx)
	return err
})

// dropSockets closes the page's WebSockets under it, as a network that
// drops the connection would (the page's own code did not ask), and waits
// until the page has connected again.
func (p *page) dropSockets() {
	p.t.Helper()
	var n int
	p.run(chromedp.Evaluate(`window.__sockets.forEach((s) => s.close(4001, 'dropped by the test')); window.__sockets.length`, &n))
	p.run(chromedp.Poll(fmt.Sprintf(`window.__sockets.length > %d && window.__sockets.at(-1).readyState === WebSocket.OPEN`, n), nil,
		chromedp.WithPollingTimeout(15*time.Second)))
	p.run(chromedp.WaitNotVisible("#banner", chromedp.ByQuery))
}

// setOffline cuts the page off the network (its sockets drop and no new one
// connects) or lets it connect again.
func (p *page) setOffline(off bool) {
	p.t.Helper()
	p.run(chromedp.Evaluate(fmt.Sprintf(`window.__offline = %t; if (%[1]t) window.__sockets.forEach((s) => s.close(4001, 'offline'))`, off), nil))
}

func (p *page) run(actions ...chromedp.Action) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Run(ctx, actions...); err != nil {
		p.shot("failure")
		p.t.Fatalf("%s: %v", p.name, err)
	}
}

func (p *page) click(sel string) {
	p.t.Helper()
	p.run(chromedp.WaitVisible(sel, chromedp.ByQuery), chromedp.Click(sel, chromedp.ByQuery))
}

func (p *page) text(sel string) string {
	p.t.Helper()
	var s string
	p.run(chromedp.TextContent(sel, &s, chromedp.ByQuery))
	return s
}

// waitText waits until the element's text contains want.
func (p *page) waitText(sel, want string) {
	p.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var got string
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
		err := chromedp.Run(ctx, chromedp.TextContent(sel, &got, chromedp.ByQuery))
		cancel()
		if err == nil && strings.Contains(got, want) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.shot("failure")
	p.t.Fatalf("%s: %s says %q, want %q", p.name, sel, got, want)
}

// focused returns the id of the element that has keyboard focus ("" for none).
func (p *page) focused() string {
	p.t.Helper()
	var id string
	p.run(chromedp.Evaluate(`document.activeElement?.id ?? ''`, &id))
	return id
}

// scrollY returns how far down the page is scrolled, in CSS pixels.
func (p *page) scrollY() float64 {
	p.t.Helper()
	var y float64
	p.run(chromedp.Evaluate(`window.scrollY`, &y))
	return y
}

// board returns the board as the page describes it to screen readers.
func (p *page) board() string {
	p.t.Helper()
	var label string
	var ok bool
	p.run(chromedp.AttributeValue("#board", "aria-label", &label, &ok, chromedp.ByQuery))
	return label
}

// clickCell clicks square (x, y) of the canvas board once it is ours to play.
func (p *page) clickCell(x, y int) {
	p.t.Helper()
	p.run(chromedp.WaitVisible(`#board[data-playable="true"]`, chromedp.ByQuery))
	p.clickCellNow(x, y)
}

// clickCellNow clicks square (x, y) of the canvas board, playable or not: the
// grid starts 5% in from each edge and each square is 30% of the width.
func (p *page) clickCellNow(x, y int) {
	p.t.Helper()
	var rect struct{ X, Y, W float64 }
	p.run(chromedp.Evaluate(`(() => { const r = document.querySelector('#board').getBoundingClientRect(); return {X: r.left, Y: r.top, W: r.width}; })()`, &rect))
	cx := rect.X + rect.W*(0.05+0.3*(float64(x)+0.5))
	cy := rect.Y + rect.W*(0.05+0.3*(float64(y)+0.5))
	p.run(chromedp.MouseClickXY(cx, cy))
}

// shot saves a screenshot under artifacts/screenshots.
func (p *page) shot(what string) {
	dir := filepath.Join("artifacts", "screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		p.t.Log(err)
		return
	}
	var png []byte
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	if err := chromedp.Run(ctx, chromedp.CaptureScreenshot(&png)); err != nil {
		p.t.Logf("screenshot %s: %v", what, err)
		return
	}
	name := fmt.Sprintf("%s-%s-%s.png", strings.TrimPrefix(p.t.Name(), "TestBrowser/"), p.name, what)
	name = strings.NewReplacer("/", "-", " ", "_").Replace(name)
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		p.t.Log(err)
	}
}

// TestBrowser plays through every mode in real pages.
func TestBrowser(t *testing.T) {
	c := newCluster(t, 2, 30*time.Second) // a reload must come back in time
	base := "http://" + c.nginx

	t.Run("two pages play with the mouse", func(t *testing.T) {
		a, b := quickPair(t, base, "desktop", desktop, "phone", phone)
		b.waitText("#status", "Opponent")
		a.shot("first-turn")
		for i, sq := range [][2]int{{0, 0}, {0, 1}, {1, 0}, {1, 1}, {2, 0}} {
			p := []*page{a, b}[i%2]
			p.clickCell(sq[0], sq[1])
		}
		a.waitText("#status", "You won")
		b.waitText("#status", "You lost")
		// The first game of the cluster: the page's live stats count it (on
		// RethinkDB about a second after it ends).
		for stat, want := range map[string]string{"totalGames": "1", "totalMoves": "5", "wonByX": "1", "gamesInProgress": "0"} {
			a.waitText(`#stats [data-id="`+stat+`"] dd`, want)
		}
		a.shot("won")
		b.shot("lost")
		// The loser goes back home instead of taking a rematch: the winner
		// is told, and offered no rematch that would never come.
		b.click("#new-game")
		a.waitText("#rematch-status", "Your opponent left")
		a.run(chromedp.WaitNotVisible("#rematch", chromedp.ByQuery))
		a.shot("opponent-left")
	})

	t.Run("keyboard", func(t *testing.T) {
		a, b := quickPair(t, base, "keys", desktop, "mouse", desktop)
		// Arrow keys move the highlighted square, Enter plays it.
		a.run(chromedp.SendKeys("#board", kb.Enter, chromedp.ByQuery))
		b.waitText("#status", "Your turn")
		before := b.board()
		b.clickCell(0, 0)
		a.waitText("#status", "Your turn")
		a.run(chromedp.SendKeys("#board", kb.ArrowRight+kb.ArrowUp+" ", chromedp.ByQuery))
		b.waitText("#status", "Your turn")
		a.shot("after-keys")
		if after := b.board(); after == before {
			t.Errorf("board description did not change: %q", after)
		}
	})

	t.Run("reload resumes the game", func(t *testing.T) {
		a, b := quickPair(t, base, "reloader", phone, "stayer", desktop)
		a.clickCell(1, 1)
		b.waitText("#status", "Your turn")
		a.run(chromedp.Reload())
		a.waitText("#status", "Opponent")
		if label := a.board(); !strings.Contains(strings.ToLower(label), "x") {
			t.Errorf("resumed board %q lacks the x played before the reload", label)
		}
		// Screen readers hear the game is back, and whose seat it is once.
		a.waitText("#announcer", "Back in your game")
		if said := a.text("#announcer"); strings.Count(said, "You are X") != 1 {
			t.Errorf("after the reload the page announced %q, want \"You are X\" once", said)
		}
		a.shot("resumed")
		b.clickCell(0, 0)
		a.waitText("#status", "Your turn")
	})

	t.Run("a reload while waiting waits again", func(t *testing.T) {
		a := openPage(t, "requeuer", base, phone)
		a.click("#mode-quick")
		a.waitText("#status", "Waiting")
		a.run(chromedp.Reload())
		// The tab noted that it waits: it queues again rather than land at
		// home, and the next player is paired with it.
		a.waitText("#status", "Waiting")
		a.shot("waiting-after-reload")
		b := openPage(t, "joiner", base, desktop)
		b.click("#mode-quick")
		a.waitText("#status", "Your turn")
		b.waitText("#status", "Opponent")
		// Back home, the note is gone: a reload stays home.
		b.click("#resign")
		b.click("#resign-yes")
		a.waitText("#status", "resigned")
		a.click("#new-game")
		a.run(chromedp.WaitVisible("#mode-quick", chromedp.ByQuery), chromedp.Reload(), chromedp.WaitVisible("#mode-quick", chromedp.ByQuery))
		time.Sleep(time.Second)
		var home bool
		a.run(chromedp.Evaluate(`!document.querySelector('#home').hidden && document.querySelector('#game').hidden`, &home))
		if !home {
			t.Errorf("a reload after going home left home: status %q", a.text("#status"))
		}
	})

	t.Run("a friend joins by the invite link after a reload", func(t *testing.T) {
		a := openPage(t, "host", base, desktop)
		a.click("#mode-friend")
		a.run(chromedp.WaitVisible("#invite-link", chromedp.ByQuery))
		link := strings.TrimSpace(a.text("#invite-link"))
		if !strings.Contains(link, "/g/") {
			t.Fatalf("invite link %q", link)
		}
		a.shot("invite")
		// The page goes away while the link is out (a phone switching to a
		// chat app to send it, here a reload) and comes back to the same
		// link, which still works.
		a.run(chromedp.Reload())
		a.run(chromedp.WaitVisible("#invite-link", chromedp.ByQuery))
		if again := strings.TrimSpace(a.text("#invite-link")); again != link {
			t.Fatalf("after a reload the invite link is %q, want %q", again, link)
		}
		a.shot("invite-after-reload")
		// The host copies the link with the keyboard; when the friend comes,
		// the Copy button goes and focus goes to the board, where the first
		// move is played (not to Resign, where one Enter would offer to give up).
		a.run(chromedp.SendKeys("#copy-invite", kb.Enter, chromedp.ByQuery))
		a.waitText("#copy-status", "Link")
		b := openPageAt(t, "friend", link, phone)
		a.waitText("#status", "Your turn")
		b.waitText("#status", "Opponent")
		if got := a.focused(); got != "board" {
			a.shot("focus")
			t.Errorf("when the friend joined, focus is on %q, want the board", got)
		}
		a.clickCell(2, 2)
		b.waitText("#status", "Your turn")
		b.shot("joined")
	})

	t.Run("an invite survives a dropped connection", func(t *testing.T) {
		a := openPage(t, "dropped", base, phone)
		a.click("#mode-friend")
		a.run(chromedp.WaitVisible("#invite-link", chromedp.ByQuery))
		link := strings.TrimSpace(a.text("#invite-link"))
		a.dropSockets()
		// The page asked for its game back, and got it: same link, and no
		// word of a new one.
		time.Sleep(500 * time.Millisecond)
		if again := strings.TrimSpace(a.text("#invite-link")); again != link {
			t.Fatalf("after the connection dropped the invite link is %q, want %q", again, link)
		}
		if note := a.text("#copy-status"); strings.Contains(note, "new link") {
			t.Errorf("copy status %q after the drop, want no new link", note)
		}
		a.shot("invite-after-drop")
		b := openPageAt(t, "friend", link, desktop)
		a.waitText("#status", "Your turn")
		b.waitText("#status", "Opponent")
	})

	t.Run("play the computer", func(t *testing.T) {
		a := openPage(t, "human", base, phone)
		a.click("#mode-bot-hard")
		a.waitText("#game-mode", "Computer")
		ends := []string{"won", "lost", "draw", "Draw"}
		status := ""
		for range 12 {
			status = a.waitStatus(append([]string{"Your turn"}, ends...)...)
			if status != "Your turn" {
				break
			}
			before := a.board()
			if !a.playFirstEmpty() {
				t.Fatalf("could not play a square: %q", before)
			}
			// The move shows at once (before the server confirms it).
			deadline := time.Now().Add(5 * time.Second)
			for a.board() == before {
				if time.Now().After(deadline) {
					a.shot("failure")
					t.Fatalf("a click on an empty square of our turn was not played: %q", before)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
		status = a.waitStatus(ends...)
		a.shot("vs-computer")
		if strings.Contains(status, "You won") {
			t.Errorf("the hard computer lost: %q", status)
		}
	})

	t.Run("a dropped player is told how long the game is kept", func(t *testing.T) {
		a, b := quickPair(t, base, "dropped", desktop, "waiting", phone)
		a.clickCell(1, 1)
		b.waitText("#status", "Your turn")
		boardTop := func(p *page) float64 {
			var y float64
			p.run(chromedp.Evaluate(`document.querySelector('#board').getBoundingClientRect().top + window.scrollY`, &y))
			return y
		}
		aTop, bTop := boardTop(a), boardTop(b)
		a.setOffline(true)
		a.waitText("#status", "Connection lost")
		a.waitText("#announcer", "your game is kept for 30 seconds")
		// The session said how long: 30 s, counted down.
		a.waitText("#away", " s more — after that, you forfeit")
		var left int
		a.run(chromedp.Evaluate(`parseInt(document.querySelector('#away').textContent.match(/kept for (\d+) s/)[1])`, &left))
		if left < 1 || left > 30 {
			t.Errorf("the dropped page counts %d s down, want at most the grace of 30 s", left)
		}
		b.waitText("#away", "forfeit in")
		a.shot("offline")
		b.shot("opponent-offline")
		// The notes appear under the board: it does not move under the pointer.
		if got := boardTop(a); got != aTop {
			t.Errorf("the dropped page's board moved from y=%v to %v", aTop, got)
		}
		if got := boardTop(b); got != bTop {
			t.Errorf("the opponent's board moved from y=%v to %v when the away notice came", bTop, got)
		}
		a.setOffline(false)
		a.run(chromedp.WaitNotVisible("#away", chromedp.ByQuery))
		b.run(chromedp.WaitNotVisible("#away", chromedp.ByQuery))
		b.clickCell(0, 0)
		a.waitText("#status", "Your turn")
	})

	t.Run("a bad invite link says so", func(t *testing.T) {
		// A code mangled by a chat app, or cut short: through NGINX the
		// server serves the page, which says (and announces) the link is bad.
		for _, path := range []string{"/g/!!bad", "/g/abc/", "/g/"} {
			p := openPage(t, "bad", base+path, phone)
			p.waitText("#home-notice", "isn't valid")
			p.waitText("#announcer", "isn't valid")
			var at string
			p.run(chromedp.Evaluate(`location.pathname`, &at))
			if at != "/" {
				t.Errorf("%s: the page stays at %s, want / (a reload should not try the link again)", path, at)
			}
		}
	})

	t.Run("a move on its way says so", func(t *testing.T) {
		a := openPage(t, "slow", base, desktop)
		a.click("#mode-bot-easy")
		a.waitText("#status", "Your turn")
		a.run(chromedp.Evaluate(`window.__sendDelay = 2000`, nil))
		a.clickCell(1, 1)
		// Sent, not on the server's board yet: not our turn any more, and
		// not the computer's yet.
		a.waitText("#status", "Sending your move")
		var tone string
		var ok bool
		a.run(chromedp.AttributeValue("#status", "data-tone", &tone, &ok, chromedp.ByQuery))
		if tone != "" {
			t.Errorf("status tone %q while the move is on its way, want none (the turn colour is for our turn)", tone)
		}
		a.shot("pending")
		// A second square meanwhile is not played, and the page says why.
		a.clickCellNow(0, 0)
		a.waitText("#toast", "on its way")
		a.run(chromedp.Evaluate(`window.__sendDelay = 0`, nil))
		a.waitStatus("Computer", "Your turn")
		// The computer may take that square; an X there is the second click.
		if label := a.board(); strings.Contains(label, "Top row: X") {
			t.Errorf("the click made while the first move was on its way was played: %q", label)
		}
	})

	t.Run("a hidden page pauses the live stats", func(t *testing.T) {
		p := openPage(t, "hidden", base, desktop)
		moves := `#stats [data-id="totalMoves"] dd`
		deadline := time.Now().Add(10 * time.Second)
		for p.text(moves) == "–" && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		setHidden := func(hidden bool) {
			p.run(chromedp.Evaluate(fmt.Sprintf(`Object.defineProperty(document, 'hidden', {value: %t, configurable: true});
				document.dispatchEvent(new Event('visibilitychange'))`, hidden), nil))
		}
		setHidden(true)
		time.Sleep(300 * time.Millisecond) // the pause reaches the server
		before := p.text(moves)
		x, o := wstest.Dial(t, "ws://"+c.nginx+"/live"), wstest.Dial(t, "ws://"+c.nginx+"/live")
		wstest.Pair(t, x, o)
		x.Move(o, 1, 1)
		// Wait until a socket that did not pause hears of the move, and then
		// some: by then the page would have too.
		seen := map[string]int64{}
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if x.LatestStats(seen); fmt.Sprint(seen["totalMoves"]) != strings.ReplaceAll(before, ",", "") {
				break
			}
		}
		if fmt.Sprint(seen["totalMoves"]) == strings.ReplaceAll(before, ",", "") {
			t.Fatalf("no socket heard of the move: totalMoves still %s", before)
		}
		time.Sleep(600 * time.Millisecond)
		if got := p.text(moves); got != before {
			t.Errorf("a hidden page's move count went from %s to %s", before, got)
		}
		setHidden(false)
		deadline = time.Now().Add(5 * time.Second)
		for p.text(moves) == before && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if got := p.text(moves); got == before {
			t.Errorf("shown again, the page still says %s moves", got)
		}
	})

	t.Run("a third page spectates", func(t *testing.T) {
		a, b := quickPair(t, base, "x", desktop, "o", desktop)
		a.clickCell(1, 1)
		w := openPage(t, "watcher", base, phone)
		w.run(chromedp.WaitVisible("#live-games button.watch", chromedp.ByQuery))
		id := ""
		var ok bool
		w.run(chromedp.AttributeValue("#live-games li.live-game:last-child", "data-game-id", &id, &ok, chromedp.ByQuery))
		// On a phone the list is far down the home screen: the game opens at
		// its top, not at the scroll position the list was at.
		var scrolled float64
		w.run(chromedp.Evaluate(`window.scrollTo(0, document.documentElement.scrollHeight); window.scrollY`, &scrolled))
		if scrolled == 0 {
			t.Errorf("the phone's home screen does not scroll: the test checks nothing")
		}
		w.click(fmt.Sprintf(`#live-games button.watch[data-game-id=%q]`, id))
		w.run(chromedp.WaitVisible("#watching", chromedp.ByQuery))
		if y := w.scrollY(); y != 0 {
			w.shot("scrolled")
			t.Errorf("the game screen opened scrolled by %vpx, want its top", y)
		}
		a.waitText("#spectators", "1 watching")
		b.clickCell(0, 0)
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(strings.ToLower(w.board()), "o") && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if label := strings.ToLower(w.board()); !strings.Contains(label, "o") {
			t.Errorf("spectator's board %q lacks o's move", label)
		}
		w.shot("watching")
		a.shot("watched")
	})
}

// quickPair opens two pages that start a quick match together: the first
// plays x and has the move.
func quickPair(t *testing.T, base, nameX string, sx screen, nameO string, so screen) (*page, *page) {
	t.Helper()
	x := openPage(t, nameX, base, sx)
	o := openPage(t, nameO, base, so)
	x.click("#mode-quick")
	x.waitText("#status", "Waiting")
	o.click("#mode-quick")
	x.waitText("#status", "Your turn")
	return x, o
}

// openPageAt opens a page at a path other than the home screen (an invite link).
func openPageAt(t *testing.T, name, url string, s screen) *page {
	t.Helper()
	p := &page{t: t, name: name, ctx: chrome(t)}
	p.run(chromedp.EmulateViewport(s.w, s.h, chromedp.EmulateScale(s.scale), chromedp.EmulateMobile, chromedp.EmulateTouch),
		chromedp.Navigate(url), chromedp.WaitVisible("#board", chromedp.ByQuery))
	return p
}

// playFirstEmpty plays the first square that the board's description for
// screen readers calls empty, e.g. "Top row: X, empty, O. Middle row: ...".
func (p *page) playFirstEmpty() bool {
	// Read the board once it is ours to play: read before, it can still lack
	// the opponent's last move, and its "first empty" square be taken.
	p.run(chromedp.WaitVisible(`#board[data-playable="true"]`, chromedp.ByQuery))
	label := p.board()
	for y, row := range []string{"Top row: ", "Middle row: ", "Bottom row: "} {
		i := strings.Index(label, row)
		if i < 0 {
			p.t.Fatalf("%s: board description %q lacks %q", p.name, label, row)
		}
		cells, _, _ := strings.Cut(label[i+len(row):], ".")
		for x, cell := range strings.Split(cells, ", ") {
			if strings.TrimSpace(cell) == "empty" {
				p.clickCell(x, y)
				return true
			}
		}
	}
	return false
}

// waitStatus waits until the status line contains one of want, and returns it.
func (p *page) waitStatus(want ...string) string {
	p.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var got string
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
		err := chromedp.Run(ctx, chromedp.TextContent("#status", &got, chromedp.ByQuery))
		cancel()
		for _, w := range want {
			if err == nil && strings.Contains(got, w) {
				return got
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.shot("failure")
	p.t.Fatalf("%s: status %q, want one of %q", p.name, got, want)
	return ""
}
