package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/tictac/tictac/game"
)

// Limits every run is held to, whatever its flags say.
const (
	MaxPlayers  = 50_000
	MaxConns    = 100_000
	MaxDuration = time.Hour
)

// Defaults for the zero fields of PlayConfig and IdleConfig.
const (
	DefaultTimeout         = 5 * time.Second
	DefaultDialConcurrency = 64
	DefaultProbeEvery      = 20 * time.Millisecond
)

// PlayConfig describes a Play run. Zero fields take the defaults noted.
type PlayConfig struct {
	// URLs are the servers' WebSocket endpoints; players are spread over them
	// round-robin so that opponents often sit on different replicas. Required.
	URLs []string
	// Players is how many simulated players run at once, 1..MaxPlayers.
	Players int
	// Think is how long a player waits before each of its moves; 0 plays at once.
	Think time.Duration
	// Jitter spreads Think uniformly over ±Jitter×Think (0..1) so that players
	// fall out of step; 0 waits exactly Think.
	Jitter float64
	// Duration is the measured window, after Ramp. Required, at most MaxDuration.
	Duration time.Duration
	// Ramp spreads the players' first connections evenly over this time; it is
	// not measured.
	Ramp time.Duration
	// Timeout is how long a player waits for its move or join to be confirmed
	// before it counts a timeout and reconnects; it also bounds each dial.
	// A player also times out when its opponent's move does not arrive
	// within 2×Timeout plus the longest think time. Default DefaultTimeout.
	Timeout time.Duration
	// Sources is how many loopback source addresses (127.0.0.1 upward) the
	// players dial from. Default 1.
	Sources int
	// DialConcurrency bounds the handshakes in flight. Default DefaultDialConcurrency.
	DialConcurrency int
	// AllowRemote allows URLs that are not loopback.
	AllowRemote bool
	// Seed seeds the players' moves and think times.
	Seed uint64
	// Progress, when set, gets a progress line every second; Terminal
	// rewrites it in place with \r instead of printing one per line.
	Progress io.Writer
	Terminal bool

	// Resume makes players that survive restarts, as the browser client
	// does: each keeps its session token (hello) and, after its socket
	// closes (1012 from a replica draining, a dropped connection), comes
	// back and resumes its game; each move carries a move id and is sent
	// again until acknowledged (moveAck), and refusals that mean "try again"
	// (unavailable) are retried. Acknowledged moves are in Report.Acked.
	// When the run's time is up, players finish the games they are in
	// (waiting players leave) for up to Finish.
	Resume bool
	// Finish bounds the end of a Resume run; default 4×Timeout.
	Finish time.Duration

	// Probe, when set, is called every ProbeEvery (default
	// DefaultProbeEvery) through the measured window, one call at a time,
	// each bounded by Timeout; Report.Probe says how long the calls took.
	// It measures a dependency of the server (say, one query of its
	// database) under the very load the players make, to read their
	// latencies against. ProbeName names it in the report.
	Probe      func(context.Context) error
	ProbeName  string
	ProbeEvery time.Duration
}

func (c *PlayConfig) check() error {
	if err := checkTargets(c.URLs, c.AllowRemote); err != nil {
		return err
	}
	switch {
	case c.Players < 1 || c.Players > MaxPlayers:
		return fmt.Errorf("players %d: must be 1..%d", c.Players, MaxPlayers)
	case c.Duration <= 0 || c.Duration > MaxDuration:
		return fmt.Errorf("duration %v: must be above 0 and at most %v", c.Duration, MaxDuration)
	case c.ProbeEvery < 0:
		return fmt.Errorf("probe interval %v: must not be negative", c.ProbeEvery)
	case c.Ramp < 0 || c.Ramp > MaxDuration:
		return fmt.Errorf("ramp %v: must be 0..%v", c.Ramp, MaxDuration)
	case c.Think < 0 || c.Think > time.Minute:
		return fmt.Errorf("think %v: must be 0..1m", c.Think)
	case c.Jitter < 0 || c.Jitter > 1:
		return fmt.Errorf("jitter %v: must be 0..1", c.Jitter)
	}
	dialDefaults(&c.Timeout, &c.Sources, &c.DialConcurrency)
	if c.Finish <= 0 {
		c.Finish = 4 * c.Timeout
	}
	return nil
}

// AnomalyKind names a protocol violation seen by the players.
type AnomalyKind string

// The anomalies Play detects.
const (
	// AnomalyThreePlayers: more than two players were told they joined one game.
	AnomalyThreePlayers AnomalyKind = "three-players"
	// AnomalySameTeam: both players of a game were given the same team.
	AnomalySameTeam AnomalyKind = "same-team"
	// AnomalyOutOfTurn: an updateGrid's last move was played by the team whose turn it was not.
	AnomalyOutOfTurn AnomalyKind = "out-of-turn"
	// AnomalyBoardsDiffer: the two players' final boards of a finished game differ.
	AnomalyBoardsDiffer AnomalyKind = "boards-differ"
	// AnomalyMoveSkipped: a move number jumped ahead of the next one.
	AnomalyMoveSkipped AnomalyKind = "move-skipped"
	// AnomalyMoveBackwards: a move number repeated or went back.
	AnomalyMoveBackwards AnomalyKind = "move-backwards"
	// AnomalyForeignGame: a player got a message about a game it is not in.
	AnomalyForeignGame AnomalyKind = "foreign-game"
	// AnomalyBadMessage: a server frame did not follow the protocol's schema.
	AnomalyBadMessage AnomalyKind = "bad-message"
)

// Anomaly is one protocol violation, with the game and player that saw it.
type Anomaly struct {
	Kind   AnomalyKind `json:"kind"`
	GameID string      `json:"gameId,omitempty"`
	Player int         `json:"player"`
	Detail string      `json:"detail"`
}

// String describes the anomaly in one line.
func (a Anomaly) String() string {
	return fmt.Sprintf("%s: game %q, player %d: %s", a.Kind, a.GameID, a.Player, a.Detail)
}

// maxAnomalies bounds how many anomalies a Report keeps in full; all are counted.
const maxAnomalies = 100

// Play runs cfg.Players simulated players against cfg.URLs for cfg.Ramp plus
// cfg.Duration, or until ctx is done, and reports what they saw. It returns an
// error only for a bad config; anomalies, errors and timeouts are in the Report.
func Play(ctx context.Context, cfg PlayConfig) (*Report, error) {
	if err := cfg.check(); err != nil {
		return nil, fmt.Errorf("play: %w", err)
	}
	r := &run{
		cfg:      cfg,
		start:    time.Now(),
		rampEnd:  cfg.Ramp,
		end:      cfg.Ramp + cfg.Duration,
		dialer:   newDialer(cfg.Sources, cfg.DialConcurrency, cfg.Timeout),
		games:    newRegistry(),
		mover:    NewHistogram(),
		opponent: NewHistogram(),
		sent:     newWindows(cfg.Ramp, cfg.Duration),
		probe:    NewHistogram(),
		codes:    make(map[string]int64),
		kinds:    make(map[AnomalyKind]int64),
	}
	defer r.dialer.close()

	r.machine0.Store(new(sampleMachine()))
	rampDone := time.AfterFunc(r.rampEnd, func() { r.machine0.Store(new(sampleMachine())) })
	defer rampDone.Stop()

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	hardCtx, stopHard := context.WithCancel(ctx) // ends a Resume run's finish
	defer stopHard()
	var wg sync.WaitGroup
	for i := range cfg.Players {
		delay := time.Duration(0)
		if cfg.Players > 1 {
			delay = cfg.Ramp * time.Duration(i) / time.Duration(cfg.Players)
		}
		if cfg.Resume {
			p := &resumer{id: i, r: r, url: cfg.URLs[i%len(cfg.URLs)], rng: rand.New(rand.NewPCG(cfg.Seed, uint64(i)))}
			wg.Go(func() { p.loop(runCtx, hardCtx, delay) })
			continue
		}
		p := &player{
			id:    i,
			r:     r,
			url:   cfg.URLs[i%len(cfg.URLs)],
			rng:   rand.New(rand.NewPCG(cfg.Seed, uint64(i))),
			think: time.NewTimer(time.Hour),
		}
		p.think.Stop()
		wg.Go(func() { p.loop(runCtx, delay) })
	}
	if cfg.Probe != nil {
		wg.Go(func() { r.probeLoop(runCtx) })
	}
	progressDone := make(chan struct{})
	if cfg.Progress != nil {
		go func() {
			defer close(progressDone)
			r.progress(runCtx)
		}()
	} else {
		close(progressDone)
	}

	deadline := time.NewTimer(r.end)
	select {
	case <-deadline.C:
	case <-ctx.Done():
	}
	deadline.Stop()
	ended := r.now()
	waiting, connected := r.waiting.Load(), r.connected.Load()
	machine := r.machine0.Load().since(sampleMachine())
	cancel()
	if cfg.Resume {
		all := make(chan struct{})
		go func() { wg.Wait(); close(all) }()
		finish := time.NewTimer(cfg.Finish)
		select {
		case <-all:
		case <-finish.C:
		case <-ctx.Done():
		}
		finish.Stop()
		stopHard()
	}
	wg.Wait()
	<-progressDone
	if cfg.Progress != nil && cfg.Terminal {
		fmt.Fprintln(cfg.Progress)
	}
	rep := r.report(ended, waiting, connected)
	rep.Machine = machine
	return rep, nil
}

// run is the state all players of one Play share.
type run struct {
	cfg     PlayConfig
	start   time.Time
	rampEnd time.Duration // measuring starts, since start
	end     time.Duration // measuring stops, since start
	dialer  *dialer
	games   *registry

	mover, opponent *Histogram
	sent            *windows   // the opponent latencies again, by when the move was sent
	probe           *Histogram // Probe's calls in the window
	probeErrors     atomic.Int64
	machine0        atomic.Pointer[machineSample] // at the window's start

	connected, waiting                  atomic.Int64
	movesAll                            atomic.Int64 // unmeasured, for progress
	moves, finished, draws, abandoned   atomic.Int64
	errorsN, timeouts                   atomic.Int64
	dialErrors, disconnects, anomaliesN atomic.Int64
	resends, gaps, unfinished, cut      atomic.Int64 // Resume runs

	ackMu          sync.Mutex
	acked          map[string][]AckedMove // Resume runs
	unfinishedList []string
	joined         map[string]int

	mu        sync.Mutex // guards the rare events below
	codes     map[string]int64
	kinds     map[AnomalyKind]int64
	anomalies []Anomaly
	firstErr  string
}

// now is the time since the run started, on the monotonic clock.
func (r *run) now() time.Duration { return time.Since(r.start) }

func (r *run) measuring(t time.Duration) bool { return t >= r.rampEnd && t < r.end }

// opponentSaw records the opponent latency of a move sent at sent and seen
// by the opponent at now (both since the run's start).
func (r *run) opponentSaw(sent, now time.Duration) {
	r.opponent.Record(now - sent)
	r.sent.record(sent, now-sent)
}

func (r *run) anomaly(a Anomaly) {
	r.anomaliesN.Add(1)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.kinds[a.Kind]++
	if len(r.anomalies) < maxAnomalies {
		r.anomalies = append(r.anomalies, a)
	}
}

func (r *run) ack(gameID string, m AckedMove) {
	r.ackMu.Lock()
	defer r.ackMu.Unlock()
	if r.acked == nil {
		r.acked = make(map[string][]AckedMove)
	}
	r.acked[gameID] = append(r.acked[gameID], m)
}

func (r *run) noteJoined(gameID string) {
	r.ackMu.Lock()
	defer r.ackMu.Unlock()
	if r.joined == nil {
		r.joined = make(map[string]int)
	}
	r.joined[gameID]++
}

func (r *run) noteUnfinished(what string) {
	r.ackMu.Lock()
	defer r.ackMu.Unlock()
	if len(r.unfinishedList) < maxAnomalies {
		r.unfinishedList = append(r.unfinishedList, what)
	}
}

func (r *run) errorFrame(code string) {
	r.errorsN.Add(1)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.codes[code]++
}

func (r *run) noteErr(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.firstErr == "" {
		r.firstErr = err.Error()
	}
}

// player is one simulated player. All its fields are owned by its goroutine,
// except that the watchdog timer may close conn.
type player struct {
	id    int
	r     *run
	url   string
	rng   *rand.Rand
	think *time.Timer

	conn     *websocket.Conn
	watchdog *time.Timer
	timedOut atomic.Bool
	in       bytes.Buffer
	out      []byte

	// The current game.
	gameID     string
	idJSON     []byte // gameID as a JSON string
	rec        *gameRec
	team       game.Mark
	board      game.Board
	move       int
	pending    int           // the move awaiting confirmation, or 0
	sentAt     time.Duration // when pending (or the join) was sent
	isWaiting  bool
	over       bool
	winnerSeen bool
}

// errRefused ends a session whose move was refused: the player no longer
// knows the game's state, so it starts over on a new socket.
var errRefused = errors.New("move refused")

// loop connects, plays until the socket fails, and reconnects, until ctx is done.
func (p *player) loop(ctx context.Context, delay time.Duration) {
	if !p.sleep(ctx, delay) {
		return
	}
	r := p.r
	for ctx.Err() == nil {
		conn, err := r.dialer.dial(ctx, p.url, p.id, r.cfg.Timeout)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			r.dialErrors.Add(1)
			r.noteErr(err)
			p.sleep(ctx, 250*time.Millisecond+rand.N(250*time.Millisecond))
			continue
		}
		err = p.session(ctx, conn)
		if ctx.Err() != nil {
			return
		}
		if !p.timedOut.Load() && !errors.Is(err, errRefused) {
			r.disconnects.Add(1)
			r.noteErr(fmt.Errorf("player %d: %w", p.id, err))
		}
	}
}

// session plays on one socket until it fails or ctx is done.
func (p *player) session(ctx context.Context, conn *websocket.Conn) error {
	r := p.r
	r.connected.Add(1)
	defer r.connected.Add(-1)
	p.conn = conn
	defer conn.CloseNow()
	defer closeAtEnd(ctx, conn)()
	p.timedOut.Store(false)
	p.watchdog = time.AfterFunc(time.Hour, func() {
		if ctx.Err() == nil && p.timedOut.CompareAndSwap(false, true) {
			r.timeouts.Add(1)
			conn.CloseNow()
		}
	})
	defer p.watchdog.Stop()
	defer p.leaveGame()

	if err := p.join(ctx); err != nil {
		return err
	}
	for {
		typ, rd, err := conn.Reader(context.Background())
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
		p.in.Reset()
		if _, err := p.in.ReadFrom(rd); err != nil {
			return fmt.Errorf("read: %w", err)
		}
		if typ != websocket.MessageText {
			p.bad("binary frame")
			continue
		}
		if err := p.handle(ctx, p.in.Bytes()); err != nil {
			return err
		}
	}
}

// inFrame is any server frame; data is decoded once the action is known.
type inFrame struct {
	Action string          `json:"action"`
	Data   json.RawMessage `json:"data"`
}

type inData struct {
	GameID string                      `json:"gameId"`
	Team   string                      `json:"team"`
	Status string                      `json:"status"`
	Move   int                         `json:"move"`
	Grid   *[game.Size][game.Size]cell `json:"grid"`
	Last   *struct {
		X    int    `json:"x"`
		Y    int    `json:"y"`
		Team string `json:"team"`
	} `json:"last"`
	Code string `json:"code"`
}

// cell decodes a grid square: "x", "o" or null.
type cell game.Mark

// UnmarshalJSON reads "x", "o" or null without allocating.
func (c *cell) UnmarshalJSON(b []byte) error {
	switch string(b) {
	case "null":
		*c = cell(game.Empty)
	case `"x"`:
		*c = cell(game.X)
	case `"o"`:
		*c = cell(game.O)
	default:
		return fmt.Errorf("bad square %s", b)
	}
	return nil
}

// statsPrefix starts every statsUpdate frame as the server encodes it.
var statsPrefix = []byte(`{"action":"statsUpdate",`)

// isStats reports whether b is a live-stats frame, which players ignore. It
// looks at the first bytes only: a server sends up to four a second to every
// socket, and decoding each whole would make the load generator, which
// shares the machine's cores with the server, spend its time on frames that
// measure nothing. A frame it does not recognise is decoded in full.
func isStats(b []byte) bool { return bytes.HasPrefix(b, statsPrefix) }

// handle reacts to one server frame.
func (p *player) handle(ctx context.Context, b []byte) error {
	if isStats(b) {
		return nil
	}
	var f inFrame
	if err := json.Unmarshal(b, &f); err != nil {
		p.bad("frame is not JSON: " + err.Error())
		return nil
	}
	var d inData
	switch f.Action {
	case "statsUpdate", "pong",
		// The players' protocol: an opponent who drops out is waited for
		// (playerAway, playerBack), and games may be watched.
		// An opponent who leaves an ended game is announced (playerLeft).
		"playerAway", "playerBack", "playerLeft", "spectators", "moveAck":
		return nil
	case "joinGame", "playerJoin", "updateGameStatus", "updateGrid", "updateWinner", "error":
		if err := json.Unmarshal(f.Data, &d); err != nil {
			p.bad(f.Action + ": " + err.Error())
			return nil
		}
	default:
		p.bad("unknown action " + strconv.Quote(f.Action))
		return nil
	}
	switch f.Action {
	case "joinGame":
		return p.onJoin(&d)
	case "updateGameStatus":
		return p.onStatus(ctx, &d)
	case "updateGrid":
		return p.onGrid(ctx, &d)
	case "updateWinner":
		if !p.mine(d.GameID, f.Action) {
			return nil
		}
		p.winnerSeen = true
		if p.over {
			return p.join(ctx)
		}
	case "error":
		p.r.errorFrame(d.Code)
		if p.pending != 0 {
			p.watchdog.Stop()
			return fmt.Errorf("move %d: %w with %s", p.pending, errRefused, d.Code)
		}
	}
	return nil
}

func (p *player) onJoin(d *inData) error {
	team, err := game.ParseMark(d.Team)
	if err != nil || d.GameID == "" {
		p.bad(fmt.Sprintf("joinGame with gameId %q team %q", d.GameID, d.Team))
		return nil
	}
	p.watchdog.Stop()
	p.leaveGame()
	rec, found := p.r.games.claim(d.GameID, p.id, team)
	for _, a := range found {
		p.r.anomaly(a)
	}
	p.gameID, p.rec, p.team = d.GameID, rec, team
	p.idJSON, _ = json.Marshal(d.GameID)
	p.board, p.move, p.pending = game.Board{}, 0, 0
	p.over, p.winnerSeen = false, false
	p.setWaiting(true)
	return nil
}

func (p *player) onStatus(ctx context.Context, d *inData) error {
	if !p.mine(d.GameID, "updateGameStatus") {
		return nil
	}
	st, err := game.ParseStatus(d.Status)
	if err != nil {
		p.bad("status " + strconv.Quote(d.Status))
		return nil
	}
	switch st {
	case game.Waiting:
		return nil
	case game.InProgress:
		p.setWaiting(false)
		if p.move == 0 && p.pending == 0 {
			if p.team == game.X {
				return p.play(ctx)
			}
			p.awaitOpponent()
		}
		return nil
	case game.Finished, game.FinishedDraw:
		first, differ := p.rec.finish(p.board, p.move)
		if differ {
			p.r.anomaly(Anomaly{Kind: AnomalyBoardsDiffer, GameID: p.gameID, Player: p.id,
				Detail: "final board " + boardString(&p.board) + " at move " + itoa(p.move) + " differs from the opponent's"})
		}
		if first && p.r.measuring(p.r.now()) {
			p.r.finished.Add(1)
			if st == game.FinishedDraw {
				p.r.draws.Add(1)
			}
		}
	case game.Abandoned:
		if p.rec.end() && p.r.measuring(p.r.now()) {
			p.r.abandoned.Add(1)
		}
	}
	p.setWaiting(false)
	p.over = true
	p.pending = 0
	p.watchdog.Stop()
	if p.winnerSeen {
		return p.join(ctx)
	}
	return nil
}

func (p *player) onGrid(ctx context.Context, d *inData) error {
	if !p.mine(d.GameID, "updateGrid") {
		return nil
	}
	now := p.r.now()
	if d.Grid == nil || d.Last == nil {
		p.bad("updateGrid without grid or last")
		return nil
	}
	m := d.Move
	switch {
	case m <= p.move:
		p.r.anomaly(Anomaly{Kind: AnomalyMoveBackwards, GameID: p.gameID, Player: p.id,
			Detail: "move " + itoa(m) + " after move " + itoa(p.move)})
		return nil // the protocol says to ignore it
	case m > p.move+1:
		p.r.anomaly(Anomaly{Kind: AnomalyMoveSkipped, GameID: p.gameID, Player: p.id,
			Detail: "move " + itoa(m) + " after move " + itoa(p.move)})
	}
	last, _ := game.ParseMark(d.Last.Team)
	if want := turnOf(m); last != want {
		p.r.anomaly(Anomaly{Kind: AnomalyOutOfTurn, GameID: p.gameID, Player: p.id,
			Detail: fmt.Sprintf("move %d played by %q on %s's turn", m, d.Last.Team, want)})
	}
	p.move = m
	for x := range game.Size {
		for y := range game.Size {
			p.board[game.Index(x, y)] = game.Mark(d.Grid[x][y])
		}
	}
	measured := p.r.measuring(now)
	if last == p.team {
		if p.pending == m {
			p.watchdog.Stop()
			p.pending = 0
			p.r.movesAll.Add(1)
			if measured {
				p.r.moves.Add(1)
				p.r.mover.Record(now - p.sentAt)
			}
		}
	} else if m < len(p.rec.sent) && measured {
		if sent := p.rec.sent[m].Load(); sent != 0 {
			p.r.opponentSaw(time.Duration(sent), now)
		}
	}
	if w, _ := p.board.Winner(); w != game.Empty || p.board.Full() || p.over {
		return nil // the status that ends the game follows
	}
	if turnOf(m+1) == p.team {
		p.watchdog.Stop()
		return p.play(ctx)
	}
	p.awaitOpponent()
	return nil
}

// awaitOpponent starts the watchdog for the opponent's next move, so that a
// move the server never delivered counts as a timeout instead of a silent
// stall. The opponent may think for up to Think×(1+Jitter) and then waits
// Timeout for its own confirmation before it gives up (which abandons the
// game and stops this watchdog); the second Timeout keeps one stall from
// counting twice.
func (p *player) awaitOpponent() {
	c := p.r.cfg
	p.watchdog.Reset(2*c.Timeout + time.Duration(float64(c.Think)*(1+c.Jitter)))
}

// turnOf returns the team that plays move number m (counting from 1).
func turnOf(m int) game.Mark {
	if m%2 == 1 {
		return game.X
	}
	return game.O
}

// mine reports whether a message is about the player's current game, and
// records an anomaly when it is not.
func (p *player) mine(id, action string) bool {
	if p.rec != nil && id == p.gameID {
		return true
	}
	p.r.anomaly(Anomaly{Kind: AnomalyForeignGame, GameID: id, Player: p.id,
		Detail: action + " while in game " + strconv.Quote(p.gameID)})
	return false
}

func (p *player) bad(detail string) {
	p.r.anomaly(Anomaly{Kind: AnomalyBadMessage, GameID: p.gameID, Player: p.id, Detail: detail})
}

// join asks for a quick match, after leaving the finished game.
func (p *player) join(ctx context.Context) error {
	p.leaveGame()
	p.sentAt = p.r.now()
	p.watchdog.Reset(p.r.cfg.Timeout)
	return p.send(ctx, []byte(`{"action":"joinGame"}`))
}

// play thinks, then sends a random legal move and starts its watchdog.
func (p *player) play(ctx context.Context) error {
	if !p.sleep(ctx, p.thinkTime()) {
		return nil
	}
	i, ok := randomFree(&p.board, p.rng)
	if !ok {
		return nil
	}
	p.pending = p.move + 1
	p.sentAt = p.r.now()
	if p.pending < len(p.rec.sent) {
		p.rec.sent[p.pending].Store(int64(p.sentAt))
	}
	p.out = append(p.out[:0], `{"action":"fillSquare","data":{"gameId":`...)
	p.out = append(p.out, p.idJSON...)
	p.out = fmt.Appendf(p.out, `,"coords":{"x":%d,"y":%d}}}`, i%game.Size, i/game.Size)
	p.watchdog.Reset(p.r.cfg.Timeout)
	return p.send(ctx, p.out)
}

func (p *player) thinkTime() time.Duration { return thinkTime(&p.r.cfg, p.rng) }

// thinkTime is a player's pause before a move: Think, varied by ±Jitter.
func thinkTime(cfg *PlayConfig, rng *rand.Rand) time.Duration {
	t, j := cfg.Think, cfg.Jitter
	if t <= 0 || j <= 0 {
		return t
	}
	return time.Duration(float64(t) * (1 - j + 2*j*rng.Float64()))
}

// randomFree picks an empty square of b at random, as a board index.
func randomFree(b *game.Board, rng *rand.Rand) (int, bool) {
	var free [game.Size * game.Size]int
	n := 0
	for i, m := range b {
		if m == game.Empty {
			free[n] = i
			n++
		}
	}
	if n == 0 {
		return 0, false
	}
	return free[rng.IntN(n)], true
}

// send writes a frame with the run's timeout.
func (p *player) send(ctx context.Context, b []byte) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	wctx, cancel := context.WithTimeout(context.Background(), p.r.cfg.Timeout)
	defer cancel()
	if err := p.conn.Write(wctx, websocket.MessageText, b); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

// sleep waits d or until ctx is done, and reports whether d passed.
func (p *player) sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	p.think.Reset(d)
	select {
	case <-p.think.C:
		return true
	case <-ctx.Done():
		p.think.Stop()
		return false
	}
}

func (p *player) setWaiting(w bool) {
	if w != p.isWaiting {
		p.isWaiting = w
		if w {
			p.r.waiting.Add(1)
		} else {
			p.r.waiting.Add(-1)
		}
	}
}

// leaveGame forgets the current game.
func (p *player) leaveGame() {
	p.setWaiting(false)
	if p.rec != nil {
		p.r.games.release(p.rec)
		p.rec = nil
	}
	p.gameID, p.pending = "", 0
}

func itoa(n int) string { return strconv.Itoa(n) }

// boardString draws a board row by row, "." for an empty square.
func boardString(b *game.Board) string {
	s := make([]byte, 0, game.Size*(game.Size+1))
	for y := range game.Size {
		if y > 0 {
			s = append(s, '/')
		}
		for x := range game.Size {
			switch b.At(x, y) {
			case game.X:
				s = append(s, 'x')
			case game.O:
				s = append(s, 'o')
			default:
				s = append(s, '.')
			}
		}
	}
	return string(s)
}

// probeLoop calls cfg.Probe every cfg.ProbeEvery through the measured
// window, and records how long each call took.
func (r *run) probeLoop(ctx context.Context) {
	every := r.cfg.ProbeEvery
	if every == 0 {
		every = DefaultProbeEvery
	}
	select {
	case <-time.After(r.rampEnd - r.now()):
	case <-ctx.Done():
		return
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for r.measuring(r.now()) {
		callCtx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
		start := time.Now()
		err := r.cfg.Probe(callCtx)
		took := time.Since(start)
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			r.probeErrors.Add(1)
		default:
			r.probe.Record(took)
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
	}
}
