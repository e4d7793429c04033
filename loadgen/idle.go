package loadgen

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// DefaultIdleRate is IdleConfig.Rate when zero: sockets opened per second.
const DefaultIdleRate = 1000

// IdleConfig describes an Idle run. Zero fields take the defaults noted.
type IdleConfig struct {
	// URLs are the endpoints, used round-robin. Required.
	URLs []string
	// Conns is how many sockets to open, 1..MaxConns.
	Conns int
	// Rate is how many sockets are opened per second. Default DefaultIdleRate.
	Rate int
	// Duration is how long all sockets are held once the last was opened.
	// Required, at most MaxDuration.
	Duration time.Duration
	// Timeout bounds each handshake. Default DefaultTimeout.
	Timeout time.Duration
	// Sources is how many loopback source addresses to dial from. Default 1.
	Sources int
	// DialConcurrency bounds the handshakes in flight. Default DefaultDialConcurrency.
	DialConcurrency int
	// AllowRemote allows URLs that are not loopback.
	AllowRemote bool
	// PID, when set, is the server process whose resident memory is read
	// from /proc before opening and at the end of the hold.
	PID int
	// Hello makes each socket open like the page does: its first frame is
	// hello without a token, which starts a session (the server answers with
	// its token). Without it the sockets send nothing (unless Hidden).
	Hello bool
	// Hidden makes each socket act like a page in a hidden tab: once open,
	// it asks tictac for no live stats (pauseStats).
	Hidden bool
	// Progress and Terminal are as in PlayConfig.
	Progress io.Writer
	Terminal bool
}

// IdleReport is what an Idle run saw.
type IdleReport struct {
	Conns    int           `json:"conns"`
	Duration time.Duration `json:"-"`
	// Opened counts successful handshakes, Failed failed ones, Dropped
	// sockets the server closed before the end, Open those open at the end.
	Opened  int64 `json:"opened"`
	Failed  int64 `json:"failed"`
	Dropped int64 `json:"dropped"`
	Open    int64 `json:"open"`
	// Frames counts the frames the sockets received, all together.
	Frames int64 `json:"frames"`
	// Sessions counts the sockets that were given a session in answer to
	// their hello (with Hello).
	Sessions int64 `json:"sessions,omitempty"`
	// OpenTime is how long opening all sockets took.
	OpenTime   time.Duration `json:"-"`
	FirstError string        `json:"firstError,omitempty"`
	// RSSBefore and RSSAfter are the server's resident memory in bytes (0
	// without a PID); RSSPerConn is their difference divided by Open.
	RSSBefore  int64   `json:"rssBefore,omitempty"`
	RSSAfter   int64   `json:"rssAfter,omitempty"`
	RSSPerConn float64 `json:"rssPerConn,omitempty"`
}

// WriteText writes the report in a few lines.
func (r *IdleReport) WriteText(w io.Writer) error {
	fmt.Fprintf(w, "tictac bench idle: %d sockets held %v\n", r.Conns, r.Duration)
	fmt.Fprintf(w, "opened %d in %v  failed %d  dropped %d  open at end %d  frames received %d",
		r.Opened, r.OpenTime.Round(time.Millisecond), r.Failed, r.Dropped, r.Open, r.Frames)
	if r.Sessions > 0 {
		fmt.Fprintf(w, "  sessions %d", r.Sessions)
	}
	fmt.Fprintln(w)
	if r.FirstError != "" {
		fmt.Fprintf(w, "first error: %s\n", r.FirstError)
	}
	var err error
	if r.RSSAfter > 0 {
		_, err = fmt.Fprintf(w, "server RSS %.1f MiB -> %.1f MiB: %.1f KiB per socket\n",
			float64(r.RSSBefore)/(1<<20), float64(r.RSSAfter)/(1<<20), r.RSSPerConn/1024)
	}
	if err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

// Idle opens cfg.Conns sockets at cfg.Rate per second, holds them for
// cfg.Duration reading and discarding frames, and closes them. It returns an
// error for a bad config or an unreadable PID.
func Idle(ctx context.Context, cfg IdleConfig) (*IdleReport, error) {
	if err := cfg.check(); err != nil {
		return nil, fmt.Errorf("idle: %w", err)
	}
	rep := &IdleReport{Conns: cfg.Conns, Duration: cfg.Duration}
	if cfg.PID > 0 {
		rss, err := readRSS(cfg.PID)
		if err != nil {
			return nil, fmt.Errorf("idle: %w", err)
		}
		rep.RSSBefore = rss
	}
	d := newDialer(cfg.Sources, cfg.DialConcurrency, cfg.Timeout)
	defer d.close()
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()

	var (
		wg                                              sync.WaitGroup
		opened, failed, dropped, open, frames, sessions atomic.Int64
		errOnce                                         sync.Once
	)
	start := time.Now()
	progressCtx, stopProgress := context.WithCancel(runCtx)
	defer stopProgress()
	var pwg sync.WaitGroup
	if cfg.Progress != nil {
		pwg.Go(func() {
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-progressCtx.Done():
					return
				case <-t.C:
				}
				writeProgress(cfg.Progress, cfg.Terminal, fmt.Sprintf("%5.0fs  open %d  failed %d  dropped %d",
					time.Since(start).Seconds(), open.Load(), failed.Load(), dropped.Load()))
			}
		})
	}
	var dials sync.WaitGroup
	for i := 0; i < cfg.Conns && runCtx.Err() == nil; i++ {
		if wait := time.Until(start.Add(time.Second * time.Duration(i) / time.Duration(cfg.Rate))); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-runCtx.Done():
				t.Stop()
			}
		}
		dials.Add(1)
		wg.Go(func() {
			conn, err := d.dial(runCtx, cfg.URLs[i%len(cfg.URLs)], i, cfg.Timeout)
			dials.Done()
			if err != nil {
				if runCtx.Err() == nil {
					failed.Add(1)
					errOnce.Do(func() { rep.FirstError = err.Error() })
				}
				return
			}
			opened.Add(1)
			open.Add(1)
			if err := hold(runCtx, conn, &cfg, &frames, &sessions); err != nil {
				dropped.Add(1)
				open.Add(-1)
				errOnce.Do(func() { rep.FirstError = err.Error() })
			}
		})
	}
	dials.Wait()
	rep.OpenTime = time.Since(start)
	t := time.NewTimer(cfg.Duration)
	select {
	case <-t.C:
	case <-runCtx.Done():
		t.Stop()
	}
	rep.Open = open.Load()
	if cfg.PID > 0 {
		rss, err := readRSS(cfg.PID)
		if err != nil {
			cancel()
			wg.Wait()
			return nil, fmt.Errorf("idle: %w", err)
		}
		rep.RSSAfter = rss
		if rep.Open > 0 {
			rep.RSSPerConn = float64(rep.RSSAfter-rep.RSSBefore) / float64(rep.Open)
		}
	}
	stopProgress()
	pwg.Wait()
	if cfg.Progress != nil && cfg.Terminal {
		fmt.Fprintln(cfg.Progress)
	}
	cancel()
	wg.Wait()
	rep.Opened, rep.Failed, rep.Dropped, rep.Frames, rep.Sessions = opened.Load(), failed.Load(), dropped.Load(), frames.Load(), sessions.Load()
	return rep, nil
}

// hold reads and discards frames until ctx is done, then closes the socket
// properly, counting the frames and the session given in answer to hello.
// It returns an error if the socket closed before that.
func hold(ctx context.Context, conn *websocket.Conn, cfg *IdleConfig, frames, sessions *atomic.Int64) error {
	defer conn.CloseNow()
	defer closeAtEnd(ctx, conn)()
	send := func(what, frame string) error {
		wctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
		defer cancel()
		if err := conn.Write(wctx, websocket.MessageText, []byte(frame)); err != nil && ctx.Err() == nil {
			return fmt.Errorf("hold: %s: %w", what, err)
		}
		return nil
	}
	if cfg.Hello {
		if err := send("hello", `{"action":"hello","data":{}}`); err != nil {
			return err
		}
	}
	if cfg.Hidden {
		if err := send("pause stats", `{"action":"pauseStats"}`); err != nil {
			return err
		}
	}
	for {
		_, r, err := conn.Reader(context.Background())
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("hold: %w", err)
		}
		var head [len(sessionPrefix)]byte
		n, err := io.ReadFull(r, head[:])
		if err == nil {
			_, err = io.Copy(io.Discard, r)
		} else if err == io.ErrUnexpectedEOF || err == io.EOF { // a frame shorter than the prefix
			err = nil
		}
		if err != nil && ctx.Err() == nil {
			return fmt.Errorf("hold: %w", err)
		}
		if cfg.Hello && string(head[:n]) == sessionPrefix {
			sessions.Add(1)
		}
		frames.Add(1)
	}
}

// closeAtEnd closes conn properly (going away) once ctx is done, so that
// reads need no context: a cancelled read context kills a socket without a
// close frame. The func it returns, deferred, waits for that close if it
// began, and stops it from beginning otherwise.
func closeAtEnd(ctx context.Context, conn *websocket.Conn) func() {
	closed := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(closed)
		conn.Close(websocket.StatusGoingAway, "bench over")
	})
	return func() {
		if !stop() {
			<-closed
		}
	}
}

// sessionPrefix opens tictac's answer to hello.
const sessionPrefix = `{"action":"session"`

func (c *IdleConfig) check() error {
	if err := checkTargets(c.URLs, c.AllowRemote); err != nil {
		return err
	}
	switch {
	case c.Conns < 1 || c.Conns > MaxConns:
		return fmt.Errorf("conns %d: must be 1..%d", c.Conns, MaxConns)
	case c.Duration <= 0 || c.Duration > MaxDuration:
		return fmt.Errorf("duration %v: must be above 0 and at most %v", c.Duration, MaxDuration)
	case c.Rate < 0:
		return fmt.Errorf("rate %d: must be positive", c.Rate)
	}
	if c.Rate == 0 {
		c.Rate = DefaultIdleRate
	}
	dialDefaults(&c.Timeout, &c.Sources, &c.DialConcurrency)
	return nil
}

// readRSS returns the resident memory of process pid, from /proc (Linux only).
func readRSS(pid int) (int64, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, fmt.Errorf("read rss: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("read rss of %d: %w", pid, err)
			}
			return kb * 1024, nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("read rss of %d: %w", pid, err)
	}
	return 0, fmt.Errorf("read rss of %d: no VmRSS line", pid)
}
