// Package loadgen is the load generator behind `tictac bench`: simulated players, idle sockets and the floor relay they are compared with.
package loadgen

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/tictac/tictac/loadgen/relay"
)

const usage = `usage: tictac bench <mode> [flags]

modes:
  play    simulated players join, play random legal moves and rejoin; reports latencies
  idle    holds many open sockets; reports how many stayed open and the server's RSS
  relay   serves the floor relay, the minimal server every figure is read against
  plot    draws the latency tails of several play runs, from their JSON reports, in one SVG

Run "tictac bench <mode> -h" for a mode's flags.
`

// Main runs `tictac bench`: args are what follows "bench" (the mode, then its
// flags). Reports go to stdout and progress and usage to stderr. It returns nil
// after -h, ErrAnomalies (wrapped) when a play run saw protocol anomalies, and
// other errors for bad flags or a run that could not start.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("bench: no mode given")
	}
	mode, args := args[0], args[1:]
	var err error
	switch mode {
	case "play":
		err = mainPlay(ctx, args, stdout, stderr)
	case "idle":
		err = mainIdle(ctx, args, stdout, stderr)
	case "relay":
		err = mainRelay(ctx, args, stdout, stderr)
	case "plot":
		err = mainPlot(args, stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stderr, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("bench: unknown mode %q", mode)
	}
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("bench %s: %w", mode, err)
	}
	return nil
}

// urlList is a repeatable, comma-separated -url flag.
type urlList []string

func (u *urlList) String() string { return strings.Join(*u, ",") }

func (u *urlList) Set(s string) error {
	for part := range strings.SplitSeq(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			*u = append(*u, part)
		}
	}
	return nil
}

const defaultURL = "ws://127.0.0.1:8080/live"

// commonFlags are the flags of the modes that dial a server.
type commonFlags struct {
	urls          urlList
	asJSON, quiet *bool
}

func addCommonFlags(fs *flag.FlagSet, timeout *time.Duration, sources, concurrency *int, allowRemote *bool) *commonFlags {
	c := &commonFlags{
		asJSON: fs.Bool("json", false, "print the report as JSON"),
		quiet:  fs.Bool("quiet", false, "no progress line"),
	}
	fs.Var(&c.urls, "url", "server WebSocket `url`, repeatable or comma-separated (default "+defaultURL+")")
	fs.DurationVar(timeout, "timeout", DefaultTimeout, "dial timeout, and how long a move or join may wait for its confirmation")
	fs.IntVar(sources, "sources", 4, "loopback source addresses 127.0.0.1..127.0.0.N to dial from")
	fs.IntVar(concurrency, "dial-concurrency", DefaultDialConcurrency, "handshakes in flight")
	fs.BoolVar(allowRemote, "allow-remote", false, "allow targets that are not loopback")
	return c
}

// parse parses args and returns the URLs to dial and where progress goes.
func (c *commonFlags) parse(fs *flag.FlagSet, args []string, stderr io.Writer) ([]string, io.Writer, bool, error) {
	if err := fs.Parse(args); err != nil {
		return nil, nil, false, err
	}
	if fs.NArg() > 0 {
		return nil, nil, false, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if len(c.urls) == 0 {
		c.urls = urlList{defaultURL}
	}
	if *c.quiet {
		return c.urls, nil, false, nil
	}
	return c.urls, stderr, isTerminal(stderr), nil
}

func mainPlay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tictac bench play", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg PlayConfig
	common := addCommonFlags(fs, &cfg.Timeout, &cfg.Sources, &cfg.DialConcurrency, &cfg.AllowRemote)
	hist := fs.String("hist", "", "write a latency histogram plot to this SVG `file`")
	report := fs.String("report", "", "also write the report as JSON, histograms and all, to this `file` (for tictac bench plot)")
	fs.IntVar(&cfg.Players, "players", 1000, fmt.Sprintf("simulated players (at most %d)", MaxPlayers))
	fs.DurationVar(&cfg.Think, "think", time.Second, "think time before each move")
	fs.Float64Var(&cfg.Jitter, "jitter", 0.5, "think time varies by ±this fraction")
	fs.DurationVar(&cfg.Duration, "duration", 30*time.Second, "measured time, after the ramp")
	fs.DurationVar(&cfg.Ramp, "ramp", 2*time.Second, "time over which players connect (not measured)")
	fs.Uint64Var(&cfg.Seed, "seed", 1, "random seed for moves and think times")
	fs.BoolVar(&cfg.Resume, "resume", false, "players keep sessions, resume their games after a close, and resend unacknowledged moves")
	fs.DurationVar(&cfg.Finish, "finish", 0, "with -resume, how long players may take to finish their games at the end (default 4×timeout)")
	probeAddr := fs.String("rethinkdb-probe", "", "also time one guarded update, the query a move makes, on this RethinkDB `host:port` every -probe-every through the window, and report it beside the players' latencies")
	fsyncDir := fs.String("fsync-probe", "", "also time one 4 KiB write and fsync, in a file of its own in this `dir` (say the server's -data), every -probe-every through the window, and report it beside the players' latencies")
	fs.DurationVar(&cfg.ProbeEvery, "probe-every", DefaultProbeEvery, "how often a probe (-rethinkdb-probe, -fsync-probe) runs")
	var err error
	if cfg.URLs, cfg.Progress, cfg.Terminal, err = common.parse(fs, args, stderr); err != nil {
		return err
	}
	if *probeAddr != "" || *fsyncDir != "" {
		if *probeAddr != "" && *fsyncDir != "" {
			return errors.New("-rethinkdb-probe and -fsync-probe: one probe a run")
		}
		if cfg.ProbeEvery <= 0 {
			return fmt.Errorf("-probe-every %v: must be positive", cfg.ProbeEvery)
		}
		var (
			probe func(context.Context) error
			done  func()
			err   error
		)
		if *probeAddr != "" {
			probe, done, err = RethinkProbe(ctx, *probeAddr, cfg.AllowRemote)
			cfg.ProbeName = "db probe"
		} else {
			probe, done, err = FsyncProbe(*fsyncDir)
			cfg.ProbeName = "disk probe"
		}
		if err != nil {
			return err
		}
		defer done()
		cfg.Probe = probe
	}
	rep, err := Play(ctx, cfg)
	if err != nil {
		return err
	}
	if *common.asJSON {
		err = rep.WriteJSON(stdout)
	} else {
		err = rep.WriteText(stdout)
	}
	if err != nil {
		return err
	}
	if *hist != "" {
		if err := writeFile(*hist, rep.WriteSVG); err != nil {
			return err
		}
	}
	if *report != "" {
		if err := writeFile(*report, rep.WriteJSON); err != nil {
			return err
		}
	}
	return rep.Err()
}

func mainIdle(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tictac bench idle", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg IdleConfig
	common := addCommonFlags(fs, &cfg.Timeout, &cfg.Sources, &cfg.DialConcurrency, &cfg.AllowRemote)
	fs.IntVar(&cfg.Conns, "conns", 15000, fmt.Sprintf("sockets to hold (at most %d)", MaxConns))
	fs.IntVar(&cfg.Rate, "rate", DefaultIdleRate, "sockets opened per second")
	fs.DurationVar(&cfg.Duration, "duration", 30*time.Second, "how long to hold them once all are open")
	fs.IntVar(&cfg.PID, "pid", 0, "server process `pid` whose RSS to read from /proc")
	fs.BoolVar(&cfg.Hello, "hello", false, "open like the page does: each socket first sends hello, which starts a session")
	fs.BoolVar(&cfg.Hidden, "hidden", false, "act like pages in hidden tabs: each socket asks tictac for no live stats (pauseStats)")
	var err error
	if cfg.URLs, cfg.Progress, cfg.Terminal, err = common.parse(fs, args, stderr); err != nil {
		return err
	}
	rep, err := Idle(ctx, cfg)
	if err != nil {
		return err
	}
	if *common.asJSON {
		return writeJSON(stdout, struct {
			*IdleReport
			Duration string `json:"duration"`
			OpenTime string `json:"openTime"`
		}{rep, rep.Duration.String(), rep.OpenTime.Round(time.Millisecond).String()})
	}
	return rep.WriteText(stdout)
}

func mainRelay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tictac bench relay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8090", "listen `address`")
	allowRemote := fs.Bool("allow-remote", false, "allow listening away from loopback")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := checkListen(*addr, *allowRemote); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	return ServeRelay(ctx, ln, stdout)
}

// ServeRelay serves the floor relay at /live on ln until ctx is done, then
// closes its sockets. It announces the URL on out and returns nil on a clean stop.
func ServeRelay(ctx context.Context, ln net.Listener, out io.Writer) error {
	rl := relay.New()
	mux := http.NewServeMux()
	mux.Handle("/live", rl)
	mux.Handle("/live/", rl)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	fmt.Fprintf(out, "relay listening on ws://%s/live\n", ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		rl.Close()
		return fmt.Errorf("serve relay: %w", err)
	case <-ctx.Done():
	}
	// Shutdown does not close hijacked sockets: the relay closes its own.
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	rl.Close()
	<-errc
	if err != nil {
		return fmt.Errorf("shut down relay: %w", err)
	}
	return nil
}

func writeFile(name string, write func(io.Writer) error) error {
	f, err := os.Create(name)
	if err != nil {
		return fmt.Errorf("create %s: %w", name, err)
	}
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", name, err)
	}
	return nil
}

func writeJSON(w io.Writer, v any) error {
	enc := jsonEncoder(w)
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

// isTerminal reports whether w is a character device, where a progress line
// can be rewritten in place.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
