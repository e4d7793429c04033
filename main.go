// Command tictac serves real-time multiplayer tic-tac-toe: the Canvas client,
// the WebSocket game server and the live stats, from one binary.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tictac/tictac/hub"
	"github.com/tictac/tictac/internal/gcfloor"
	"github.com/tictac/tictac/loadgen"
	"github.com/tictac/tictac/store"
)

// version is stamped at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	default:
		fmt.Fprintln(os.Stderr, "tictac:", err)
		os.Exit(1)
	}
}

// config is every setting, from flags whose defaults come from the environment.
type config struct {
	addr            string
	dataDir         string
	durability      string
	logFormat       string
	logLevel        string
	shutdownTimeout time.Duration
	drainDelay      time.Duration
	grace           time.Duration
	adminAddr       string
	pprof           bool
	allowedOrigins  string
	maxConnsPerIP   int
	statsBudget     int
	statsInterval   time.Duration
	gcFloor         int // MiB
	trustedProxies  []netip.Prefix

	// Scale-out mode: both set, or neither.
	redisURL        string
	rethinkAddrs    string
	rethinkDB       string
	rethinkUser     string
	rethinkPassword string // environment only: flags show in ps
	replica         string
}

// run is the whole program; main only adds the process around it.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "version":
			fmt.Fprintln(stdout, "tictac", version)
			return nil
		case "bench":
			return loadgen.Main(ctx, args[1:], stdout, stderr)
		case "check":
			return runCheck(ctx, args[1:], getenv, stdout, stderr)
		}
	}
	cfg, err := parseFlags(args, getenv, stderr)
	if err != nil {
		return err
	}
	log, err := newLogger(cfg, stderr)
	if err != nil {
		return err
	}
	if cfg.gcFloor > 0 {
		defer gcfloor.Start(uint64(cfg.gcFloor) << 20)()
	}
	return serve(ctx, cfg, log)
}

func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	env := func(key, def string) string {
		if v := getenv(key); v != "" {
			return v
		}
		return def
	}
	addr := ":8080"
	if p := getenv("PORT"); p != "" {
		addr = ":" + p
	}
	var cfg config
	fs := flag.NewFlagSet("tictac", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.addr, "addr", env("ADDR", addr), "listen address (env ADDR, or PORT for \":PORT\")")
	fs.StringVar(&cfg.dataDir, "data", env("DATA_DIR", "./data"), "directory of the embedded store (env DATA_DIR)")
	fs.StringVar(&cfg.durability, "durability", env("DURABILITY", "hard"), "hard: fsync each commit; soft: survive a process crash, not a power cut (env DURABILITY)")
	fs.StringVar(&cfg.logFormat, "log-format", env("LOG_FORMAT", "auto"), "text, json, or auto: text on a terminal, json otherwise (env LOG_FORMAT)")
	fs.StringVar(&cfg.logLevel, "log-level", env("LOG_LEVEL", "info"), "debug, info, warn or error (env LOG_LEVEL)")
	fs.StringVar(&cfg.redisURL, "redis", env("REDIS_URL", ""), "Redis URL (redis://host:port, or a Redis Cluster node with ?addr=host:port for more seeds) to bridge replicas through; needs -rethinkdb (env REDIS_URL)")
	fs.StringVar(&cfg.rethinkAddrs, "rethinkdb", env("RETHINKDB_ADDR", ""), "RethinkDB host:port, comma-separated for several, to keep games and stats in instead of -data (env RETHINKDB_ADDR)")
	fs.StringVar(&cfg.rethinkDB, "rethinkdb-db", env("RETHINKDB_DB", "tictac"), "RethinkDB database (env RETHINKDB_DB)")
	fs.StringVar(&cfg.rethinkUser, "rethinkdb-user", env("RETHINKDB_USER", ""), "RethinkDB user, admin if empty; the password comes from env RETHINKDB_PASSWORD (env RETHINKDB_USER)")
	cfg.rethinkPassword = getenv("RETHINKDB_PASSWORD")
	fs.StringVar(&cfg.replica, "replica", env("REPLICA", ""), "this replica's name among those sharing RethinkDB; the host name and a random suffix if empty (env REPLICA)")
	grace, err := time.ParseDuration(env("GRACE", "30s"))
	if err != nil {
		return config{}, fmt.Errorf("GRACE: %w", err)
	}
	fs.DurationVar(&cfg.grace, "grace", grace, "how long a player whose connection dropped has to come back: mid-game before forfeiting, to a friend's game before its invite dies (env GRACE)")
	shutdown, err := time.ParseDuration(env("SHUTDOWN_TIMEOUT", "10s"))
	if err != nil {
		return config{}, fmt.Errorf("SHUTDOWN_TIMEOUT: %w", err)
	}
	fs.DurationVar(&cfg.shutdownTimeout, "shutdown-timeout", shutdown, "how long a shutdown may take (env SHUTDOWN_TIMEOUT)")
	delay, err := time.ParseDuration(env("DRAIN_DELAY", "0s"))
	if err != nil {
		return config{}, fmt.Errorf("DRAIN_DELAY: %w", err)
	}
	fs.DurationVar(&cfg.drainDelay, "drain-delay", delay, "on SIGTERM, how long to fail /readyz and refuse new sockets before closing the open ones, so that load balancers stop sending players here first (env DRAIN_DELAY)")
	fs.StringVar(&cfg.adminAddr, "admin-addr", env("ADMIN_ADDR", ""), "listen address for /metrics, /healthz, /readyz and (with -pprof) /debug/pprof; when set, /metrics leaves the public port (env ADMIN_ADDR)")
	fs.StringVar(&cfg.allowedOrigins, "allowed-origins", env("ALLOWED_ORIGINS", ""), "comma-separated host patterns (e.g. example.com,*.example.com) whose pages may open game sockets besides the page's own origin (env ALLOWED_ORIGINS)")
	perIP, err := strconv.Atoi(env("MAX_CONNS_PER_IP", "500"))
	if err != nil {
		return config{}, fmt.Errorf("MAX_CONNS_PER_IP: %w", err)
	}
	fs.IntVar(&cfg.maxConnsPerIP, "max-conns-per-ip", perIP, "sockets one client address may hold on this replica, 0 for no limit (env MAX_CONNS_PER_IP)")
	budget, err := strconv.Atoi(env("STATS_BUDGET", "3000"))
	if err != nil {
		return config{}, fmt.Errorf("STATS_BUDGET: %w", err)
	}
	fs.IntVar(&cfg.statsBudget, "stats-budget", budget, "live-stats frames this replica may send a second, all sockets together; each socket gets one every -stats-interval at most, less often when it has more company (env STATS_BUDGET)")
	interval, err := time.ParseDuration(env("STATS_INTERVAL", "250ms"))
	if err != nil {
		return config{}, fmt.Errorf("STATS_INTERVAL: %w", err)
	}
	fs.DurationVar(&cfg.statsInterval, "stats-interval", interval, "the least time between two live-stats frames to one socket, 50ms to 1m (env STATS_INTERVAL)")
	gcFloor, err := strconv.Atoi(env("GC_FLOOR", "64"))
	if err != nil {
		return config{}, fmt.Errorf("GC_FLOOR: %w", err)
	}
	fs.IntVar(&cfg.gcFloor, "gc-floor", gcFloor, "MiB the heap may reach before the garbage collector runs, 0 for Go's usual (a heap twice the live one); fewer collections at a few thousand moves a second, at most this much more memory; ignored when GOGC is set (env GC_FLOOR)")
	proxies := env("TRUSTED_PROXIES", "127.0.0.0/8,::1/128")
	fs.StringVar(&proxies, "trusted-proxies", proxies, "comma-separated CIDRs of load balancers whose X-Real-IP header names the client (env TRUSTED_PROXIES)")
	fs.BoolVar(&cfg.pprof, "pprof", env("PPROF", "") == "true", "serve net/http/pprof on -admin-addr (env PPROF=true)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: tictac [flags]\n       tictac bench play|idle|relay [flags]   (load generator; tictac bench -h)\n       tictac check [store flags]              (verify the stored games and stats)\n       tictac version\n\nServes real-time tic-tac-toe on -addr. Every flag has an environment twin.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unknown argument %q (see tictac -h)", fs.Arg(0))
	}
	if cfg.durability != "hard" && cfg.durability != "soft" {
		return config{}, fmt.Errorf("-durability must be hard or soft, not %q", cfg.durability)
	}
	if cfg.redisURL != "" && cfg.rethinkAddrs == "" {
		return config{}, errors.New("-redis needs -rethinkdb: replicas must share one store")
	}
	for _, p := range splitList(proxies) {
		prefix, err := netip.ParsePrefix(p)
		if err != nil {
			return config{}, fmt.Errorf("-trusted-proxies: %w", err)
		}
		cfg.trustedProxies = append(cfg.trustedProxies, prefix)
	}
	if cfg.statsInterval < 50*time.Millisecond || cfg.statsInterval > time.Minute {
		return config{}, fmt.Errorf("-stats-interval must be 50ms to 1m, not %v", cfg.statsInterval)
	}
	if cfg.gcFloor < 0 || cfg.gcFloor > 1<<20 {
		return config{}, fmt.Errorf("-gc-floor must be 0 to %d MiB, not %d", 1<<20, cfg.gcFloor)
	}
	if getenv("GOGC") != "" {
		cfg.gcFloor = 0 // the operator's own GOGC stands
	}
	if cfg.grace <= 0 {
		return config{}, fmt.Errorf("-grace must be positive, not %v", cfg.grace)
	}
	if cfg.shutdownTimeout <= 0 {
		return config{}, fmt.Errorf("-shutdown-timeout must be positive, not %v", cfg.shutdownTimeout)
	}
	if cfg.drainDelay < 0 || cfg.drainDelay >= cfg.shutdownTimeout {
		// The delay is spent out of the shutdown's time: closing the sockets
		// and the store needs some left.
		return config{}, fmt.Errorf("-drain-delay must be 0 or more and less than -shutdown-timeout (%v), not %v", cfg.shutdownTimeout, cfg.drainDelay)
	}
	if cfg.statsBudget < 1 {
		return config{}, fmt.Errorf("-stats-budget must be at least 1, not %d", cfg.statsBudget)
	}
	if cfg.pprof && cfg.adminAddr == "" {
		return config{}, errors.New("-pprof needs -admin-addr: profiles are never served on the public port")
	}
	return cfg, nil
}

func newLogger(cfg config, w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.logLevel)); err != nil {
		return nil, fmt.Errorf("-log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: level}
	format := cfg.logFormat
	if format == "auto" {
		format = "json"
		if f, ok := w.(*os.File); ok {
			if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
				format = "text"
			}
		}
	}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("-log-format must be auto, text or json, not %q", cfg.logFormat)
}

// gameStore is what main needs of a store: the hub's methods and Close.
type gameStore interface {
	hub.Store
	Close() error
}

// Replicas hand each other the games they store, so that a move on the
// RethinkDB store takes one query (see hub.Learner).
var _ hub.Learner = (*store.Rethink)(nil)

// openStore opens the embedded store, or RethinkDB when configured.
func openStore(ctx context.Context, cfg config, log *slog.Logger, reg prometheus.Registerer) (gameStore, error) {
	if cfg.rethinkAddrs == "" {
		if err := os.MkdirAll(cfg.dataDir, 0o700); err != nil {
			return nil, fmt.Errorf("data dir: %w", err)
		}
		return store.OpenBolt(filepath.Join(cfg.dataDir, "tictac.db"), store.BoltOptions{NoSync: cfg.durability == "soft", Registerer: reg, Grace: cfg.grace, Logger: log.With("component", "store")})
	}
	replica := cfg.replica
	if replica == "" {
		host, _ := os.Hostname()
		replica = host + "-" + store.NewID()[:6]
	}
	addrs := splitList(cfg.rethinkAddrs)
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	return store.OpenRethink(ctx, store.RethinkOptions{
		Addrs: addrs, DB: cfg.rethinkDB, User: cfg.rethinkUser, Password: cfg.rethinkPassword,
		Replica: replica, Logger: log.With("component", "rethinkdb"), Registerer: reg,
	})
}

// openBus connects to Redis when configured, or returns the in-process bus.
// After Redis comes back from an outage, resync gets the games' channels.
func openBus(ctx context.Context, cfg config, log *slog.Logger, reg prometheus.Registerer, resync func([]string)) (hub.Bus, func(), error) {
	if cfg.redisURL == "" {
		return hub.NewMemoryBus(), func() {}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	b, err := hub.NewRedisBus(ctx, cfg.redisURL, hub.RedisBusOptions{Logger: log.With("component", "redis"), OnResubscribe: resync, Registerer: reg})
	if err != nil {
		return nil, nil, err
	}
	return b, b.Close, nil
}

// serve wires store, bus, hub and router, serves until ctx ends, then drains.
func serve(ctx context.Context, cfg config, log *slog.Logger) error {
	reg := prometheus.NewRegistry()
	// The scheduler's latencies (go_sched_latencies_seconds) tell how long
	// goroutines waited for a core: a replica short of CPU shows there first.
	reg.MustRegister(collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(collectors.MetricsScheduler)),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// The bus exists before the hub it resyncs.
	var hubRef atomic.Pointer[hub.Hub]
	bus, closeBus, err := openBus(ctx, cfg, log, reg, func(channels []string) {
		if h := hubRef.Load(); h != nil {
			h.Resync(channels)
		}
	})
	if err != nil {
		return err
	}
	defer closeBus()
	st, err := openStore(ctx, cfg, log, reg)
	if err != nil {
		return err
	}
	defer st.Close()
	if cfg.rethinkAddrs != "" && cfg.redisURL == "" {
		log.Warn("RethinkDB without Redis: run a single replica, or games across replicas will not see each other's moves")
	}
	h := hub.New(st, bus, hub.Options{Logger: log, Registerer: reg, Grace: cfg.grace,
		OriginPatterns: splitList(cfg.allowedOrigins), MaxConnsPerIP: cfg.maxConnsPerIP, TrustedProxies: cfg.trustedProxies,
		StatsBudget: cfg.statsBudget, StatsInterval: cfg.statsInterval})
	hubRef.Store(h)

	var draining atomic.Bool
	ready := func(ctx context.Context) error {
		if draining.Load() {
			return errors.New("draining")
		}
		for _, p := range []any{st, bus} {
			if p, ok := p.(interface{ Ping(context.Context) error }); ok {
				if err := p.Ping(ctx); err != nil {
					return err
				}
			}
		}
		return nil
	}
	metrics := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	public := metrics
	if cfg.adminAddr != "" {
		public = nil
	}

	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.addr, err)
	}
	srv := &http.Server{Handler: routes(h, staticFiles(), public, ready), ReadHeaderTimeout: 10 * time.Second}
	servers := []*http.Server{srv}
	done := make(chan error, 2)
	go func() { done <- srv.Serve(ln) }()
	if cfg.adminAddr != "" {
		aln, err := net.Listen("tcp", cfg.adminAddr)
		if err != nil {
			srv.Close()
			return fmt.Errorf("listen on %s: %w", cfg.adminAddr, err)
		}
		admin := &http.Server{Handler: adminRoutes(metrics, ready, cfg.pprof), ReadHeaderTimeout: 10 * time.Second}
		servers = append(servers, admin)
		go func() { done <- admin.Serve(aln) }()
		log.Info("admin listener", "addr", aln.Addr().String(), "pprof", cfg.pprof)
	}

	hubCtx, stopHub := context.WithCancel(context.WithoutCancel(ctx))
	defer stopHub()
	hubDone := make(chan error, 1)
	go func() { hubDone <- h.Run(hubCtx) }()
	if cfg.rethinkAddrs == "" {
		log.Info("tictac serving", "addr", ln.Addr().String(), "store", "embedded", "data", cfg.dataDir, "durability", cfg.durability, "version", version)
	} else {
		bus := "memory"
		if cfg.redisURL != "" {
			bus = "redis"
		}
		log.Info("tictac serving", "addr", ln.Addr().String(), "store", "rethinkdb", "rethinkdb", cfg.rethinkAddrs, "db", cfg.rethinkDB, "bus", bus, "version", version)
	}

	select {
	case <-ctx.Done():
	case err := <-done:
		closeAll(servers)
		return fmt.Errorf("serve: %w", err)
	case err := <-hubDone:
		closeAll(servers)
		return fmt.Errorf("stats relay: %w", err)
	}
	log.Info("draining", "delay", cfg.drainDelay, "timeout", cfg.shutdownTimeout)
	drain, cancel := context.WithTimeout(context.Background(), cfg.shutdownTimeout)
	defer cancel()
	draining.Store(true)
	h.Drain()
	select {
	case <-time.After(cfg.drainDelay):
	case <-drain.Done():
	}
	// Sockets are hijacked, so Shutdown does not wait for them: the hub
	// closes them (1012: reconnect elsewhere), then the servers stop.
	err = h.Close(drain)
	for _, s := range servers {
		err = errors.Join(err, s.Shutdown(drain))
	}
	stopHub()
	<-hubDone
	log.Info("stopped")
	return err
}

// splitList splits a comma-separated setting, dropping blanks.
func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

func closeAll(servers []*http.Server) {
	for _, s := range servers {
		s.Close()
	}
}

// readyz answers 200 while the replica should get traffic: its store and bus
// answer and it is not draining; 503 with the reason otherwise.
func readyz(ready func(context.Context) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), time.Second)
		defer cancel()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := ready(ctx); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "not ready: %v\n", err)
			return
		}
		io.WriteString(w, "ready\n")
	}
}

func healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, "ok\n")
}

// adminRoutes is the operators' listener: metrics, health, and profiles if asked.
func adminRoutes(metrics http.Handler, ready func(context.Context) error, profiles bool) http.Handler {
	r := chi.NewRouter()
	r.Handle("/metrics", metrics)
	r.Get("/healthz", healthz)
	r.Get("/readyz", readyz(ready))
	if profiles {
		r.Mount("/debug", middleware.Profiler())
	}
	return r
}

// routes is the public HTTP surface: the client, the game socket, health,
// readiness, and metrics unless they have an admin listener.
func routes(h http.Handler, static fs.FS, metrics http.Handler, ready func(context.Context) error) http.Handler {
	r := chi.NewRouter()
	r.Use(middleware.Recoverer)
	if metrics != nil {
		r.Handle("/metrics", metrics)
	}
	r.Get("/healthz", healthz)
	r.Get("/readyz", readyz(ready))
	r.Handle("/live", h)
	r.Handle("/live/", h)
	files := http.FileServerFS(static)
	// An invite link is the page itself; the client reads the code from the
	// path. Anything under /g/ is one (/g/, /g/<code>/, a mangled code): the
	// page says when a link is bad, which a bare 404 would not.
	r.Get("/g/*", func(w http.ResponseWriter, r *http.Request) {
		setPageHeaders(w.Header())
		w.Header().Set("Cache-Control", "no-cache")
		http.ServeFileFS(w, r, static, "index.html")
	})
	r.Get("/*", func(w http.ResponseWriter, r *http.Request) {
		setPageHeaders(w.Header())
		if !strings.Contains(r.URL.Path, ".") {
			w.Header().Set("Cache-Control", "no-cache")
		}
		files.ServeHTTP(w, r)
	})
	return r
}

func setPageHeaders(hdr http.Header) {
	hdr.Set("X-Content-Type-Options", "nosniff")
	// The invite code is in the path: never send it to another site.
	hdr.Set("Referrer-Policy", "same-origin")
	hdr.Set("Content-Security-Policy", "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; style-src 'self'; frame-ancestors 'none'")
}
