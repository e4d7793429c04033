package loadgen

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/coder/websocket"

	"github.com/tictac/tictac/game"
)

// AckedMove is a move the server acknowledged (moveAck) to the player who
// made it: by then it was stored.
type AckedMove struct {
	// Move is the move's number in its game (1..9), as the ack says.
	Move int `json:"move"`
	// X and Y are the square (column, row), Team the mover's team.
	X    int    `json:"x"`
	Y    int    `json:"y"`
	Team string `json:"team"`
	// ID is the move id the player gave it.
	ID string `json:"id"`
}

// resendAfter is how long a move waits for its ack before it is sent again,
// as the browser client does.
const resendAfter = 3 * time.Second

// errFinished ends a resuming player whose run is over.
var errFinished = errors.New("finished")

// timerAction is what a resuming player does when its timer fires.
type timerAction int

const (
	actKick timerAction = iota // send whatever the state calls for
	actMove                    // think time is over: play
)

// pendingMove is a move sent and not acknowledged yet.
type pendingMove struct {
	id   string
	x, y int
	num  int           // the move number it should get
	sent time.Duration // first sent, since the run started
}

// resumer is a player with a session (PlayConfig.Resume): it says hello
// with its token on every socket, comes back to its game after a close,
// gives every move an id and sends it again until it is acknowledged. All
// its fields are owned by its goroutine.
type resumer struct {
	id    int
	r     *run
	url   string
	rng   *rand.Rand
	conn  *websocket.Conn
	token string
	seq   int

	timer  *time.Timer
	action timerAction

	// The current game; gameID is "" between games.
	gameID     string
	prevGame   string // the game before, whose late frames are no anomaly
	rec        *gameRec
	team       game.Mark
	board      game.Board
	move       int
	status     game.Status
	attached   bool // this socket is in the game (joinGame seen on it)
	pending    *pendingMove
	winnerSeen bool
	acked      map[string]bool // move ids acknowledged in this game
	leaving    bool            // leaveGame sent for a waiting game
	joining    bool            // joinGame (quick) sent and not answered
	barrier    bool            // ping sent after hello, to learn that hello is done
}

func (p *resumer) loop(play, hard context.Context, delay time.Duration) {
	if !sleepCtx(play, delay) {
		return
	}
	r := p.r
	defer p.release()
	defer func() {
		if hard.Err() != nil {
			r.cut.Add(1) // still at it when the run's Finish ran out
		}
	}()
	for hard.Err() == nil {
		if play.Err() != nil && p.gameID == "" {
			return
		}
		conn, err := r.dialer.dial(hard, p.url, p.id, r.cfg.Timeout)
		if err != nil {
			if hard.Err() != nil {
				return
			}
			r.dialErrors.Add(1)
			r.noteErr(err)
			sleepCtx(hard, 100*time.Millisecond+rand.N(300*time.Millisecond))
			continue
		}
		err = p.session(play, hard, conn)
		if hard.Err() != nil || errors.Is(err, errFinished) {
			return
		}
		r.disconnects.Add(1)
		r.noteErr(fmt.Errorf("player %d: %w", p.id, err))
		sleepCtx(hard, 50*time.Millisecond+rand.N(200*time.Millisecond))
	}
}

// session plays on one socket until it closes, the run is over, or the
// player is done.
func (p *resumer) session(play, hard context.Context, conn *websocket.Conn) error {
	r := p.r
	r.connected.Add(1)
	defer r.connected.Add(-1)
	defer conn.CloseNow()
	p.conn, p.attached, p.leaving, p.barrier = conn, false, false, false
	frames := make(chan []byte)
	readErr := make(chan error, 1)
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			// No read context: cancelling one kills the socket without a close frame.
			typ, b, err := conn.Read(context.Background())
			if err != nil {
				readErr <- err
				return
			}
			if typ != websocket.MessageText {
				b = nil
			}
			select {
			case frames <- b:
			case <-done:
				return
			}
		}
	}()
	p.timer = time.NewTimer(time.Hour)
	defer p.timer.Stop()
	hello := []byte(`{"action":"hello","data":{}}`)
	if p.token != "" {
		hello = []byte(`{"action":"hello","data":{"token":` + strconv.Quote(p.token) + `}}`)
	}
	if err := p.send(hello); err != nil {
		return err
	}
	playDone := play.Done()
	for {
		var err error
		select {
		case b := <-frames:
			if b == nil {
				p.bad("binary frame")
				continue
			}
			err = p.handle(play, b)
		case err = <-readErr:
			return fmt.Errorf("read: %w", err)
		case <-p.timer.C:
			switch {
			case p.action == actMove:
				err = p.play(play)
			case p.barrier || p.joining:
				p.barrier, p.joining = false, false // no answer: ask again
				err = p.kick(play)
			default:
				err = p.kick(play)
			}
		case <-playDone:
			playDone = nil
			err = p.kick(play)
		case <-hard.Done():
			conn.Close(websocket.StatusGoingAway, "bench over")
			return hard.Err()
		}
		if err != nil {
			if errors.Is(err, errFinished) {
				conn.Close(websocket.StatusNormalClosure, "")
			}
			return err
		}
	}
}

func (p *resumer) arm(d time.Duration, a timerAction) {
	p.timer.Reset(d)
	p.action = a
}

func (p *resumer) send(b []byte) error {
	wctx, cancel := context.WithTimeout(context.Background(), p.r.cfg.Timeout)
	defer cancel()
	if err := p.conn.Write(wctx, websocket.MessageText, b); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

func (p *resumer) gameFrame(action string) []byte {
	return []byte(`{"action":"` + action + `","data":{"gameId":` + strconv.Quote(p.gameID) + `}}`)
}

// kick sends what the player's state calls for: its game back, its move
// again, a move, a fresh state, or a new game.
func (p *resumer) kick(play context.Context) error {
	c := p.r.cfg
	switch {
	case p.gameID == "":
		if p.token == "" || p.barrier {
			return nil // the session first, then what hello put us back into
		}
		if p.joining {
			// A join may have put us in a game: wait for its answer, or
			// for the game hello brings back on the next socket.
			p.arm(c.Timeout, actKick)
			return nil
		}
		if play.Err() != nil {
			return errFinished
		}
		p.joining = true
		p.arm(4*c.Timeout, actKick)
		return p.send([]byte(`{"action":"joinGame"}`))
	case !p.attached:
		p.arm(c.Timeout, actKick)
		return p.send([]byte(`{"action":"joinGame","data":{"gameId":` + strconv.Quote(p.gameID) + `}}`))
	case p.pending != nil:
		p.r.resends.Add(1)
		p.arm(resendAfter, actKick)
		return p.sendMove()
	case p.status == game.Waiting:
		if play.Err() != nil && !p.leaving {
			p.leaving = true
			p.arm(c.Timeout, actKick)
			return p.send(p.gameFrame("leaveGame"))
		}
		p.leaving = false
		p.arm(4*c.Timeout, actKick)
		return nil
	case p.status.Over():
		return p.end(play)
	case turnOf(p.move+1) == p.team:
		return p.play(play)
	}
	// The opponent's turn, for long: ask for the state again.
	p.attached = false
	return p.kick(play)
}

// play sends a random legal move, after the think time.
func (p *resumer) play(play context.Context) error {
	if p.action != actMove {
		p.arm(p.thinkTime(), actMove)
		return nil
	}
	p.action = actKick
	if p.status != game.InProgress || p.pending != nil || turnOf(p.move+1) != p.team {
		return p.kick(play)
	}
	i, ok := randomFree(&p.board, p.rng)
	if !ok {
		return nil
	}
	p.seq++
	p.pending = &pendingMove{id: "p" + itoa(p.id) + "-" + itoa(p.seq), x: i % game.Size, y: i / game.Size,
		num: p.move + 1, sent: p.r.now()}
	if p.pending.num < len(p.rec.sent) {
		p.rec.sent[p.pending.num].Store(int64(p.pending.sent))
	}
	p.arm(resendAfter, actKick)
	return p.sendMove()
}

func (p *resumer) sendMove() error {
	m := p.pending
	return p.send(fmt.Appendf(nil, `{"action":"fillSquare","data":{"gameId":%q,"coords":{"x":%d,"y":%d},"moveId":%q}}`,
		p.gameID, m.x, m.y, m.id))
}

func (p *resumer) thinkTime() time.Duration {
	return max(thinkTime(&p.r.cfg, p.rng), time.Millisecond) // its timer needs a wait
}

// resumeData is the data of the frames a resuming player reads.
type resumeData struct {
	inData
	Token  string `json:"token"`
	MoveID string `json:"moveId"`
}

func (p *resumer) handle(play context.Context, b []byte) error {
	if isStats(b) {
		return nil
	}
	var f inFrame
	if err := json.Unmarshal(b, &f); err != nil {
		p.bad("frame is not JSON: " + err.Error())
		return nil
	}
	switch f.Action {
	case "pong":
		if p.barrier {
			p.barrier = false
			return p.kick(play)
		}
		return nil
	case "statsUpdate", "playerAway", "playerBack", "playerLeft", "spectators", "playerJoin", "rematchOffer", "gameList":
		return nil
	case "session", "joinGame", "state", "updateGameStatus", "updateGrid", "updateWinner", "moveAck", "error", "left":
	default:
		p.bad("unknown action " + strconv.Quote(f.Action))
		return nil
	}
	var d resumeData
	if err := json.Unmarshal(f.Data, &d); err != nil {
		p.bad(f.Action + ": " + err.Error())
		return nil
	}
	switch f.Action {
	case "session":
		if len(d.Token) != 32 {
			p.bad("session token " + strconv.Quote(d.Token))
			return nil
		}
		p.token = d.Token
		if p.gameID == "" {
			// Replies come in order: the pong follows whatever hello sends
			// (the game a join on the last socket put us in).
			p.barrier = true
			p.arm(p.r.cfg.Timeout, actKick)
			return p.send([]byte(`{"action":"ping"}`))
		}
		return p.kick(play)
	case "joinGame":
		return p.onJoin(play, &d)
	case "state":
		return p.onState(play, &d)
	case "updateGameStatus":
		if !p.mine(d.GameID, f.Action) {
			return nil
		}
		st, err := game.ParseStatus(d.Status)
		if err != nil {
			p.bad("status " + strconv.Quote(d.Status))
			return nil
		}
		return p.onStatus(play, st)
	case "updateGrid":
		return p.onGrid(play, &d)
	case "updateWinner":
		if !p.mine(d.GameID, f.Action) {
			return nil
		}
		p.winnerSeen = true
		if p.status.Over() {
			return p.end(play)
		}
	case "moveAck":
		return p.onAck(play, &d)
	case "left":
		if d.GameID == p.gameID && p.status == game.Waiting {
			p.forget()
			return p.kick(play)
		}
	case "error":
		p.r.errorFrame(d.Code)
		return p.onError(play, d.Code)
	}
	return nil
}

// mine reports whether a frame is about the current game; frames about the
// game before are late, not foreign.
func (p *resumer) mine(id, action string) bool {
	if p.gameID != "" && id == p.gameID {
		return true
	}
	if id != "" && id == p.prevGame {
		return false
	}
	p.r.anomaly(Anomaly{Kind: AnomalyForeignGame, GameID: id, Player: p.id,
		Detail: action + " while in game " + strconv.Quote(p.gameID)})
	return false
}

func (p *resumer) bad(detail string) {
	p.r.anomaly(Anomaly{Kind: AnomalyBadMessage, GameID: p.gameID, Player: p.id, Detail: detail})
}

func (p *resumer) onJoin(play context.Context, d *resumeData) error {
	team, err := game.ParseMark(d.Team)
	if err != nil || d.GameID == "" {
		p.bad(fmt.Sprintf("joinGame with gameId %q team %q", d.GameID, d.Team))
		return nil
	}
	switch d.GameID {
	case p.gameID:
		if team != p.team {
			p.r.anomaly(Anomaly{Kind: AnomalySameTeam, GameID: d.GameID, Player: p.id,
				Detail: "came back as " + team.String() + ", joined as " + p.team.String()})
		}
		p.attached = true
		return nil
	case p.prevGame:
		return nil // the reply to an attach sent before the game ended
	}
	if p.gameID != "" && p.status != game.Waiting {
		p.r.anomaly(Anomaly{Kind: AnomalyForeignGame, GameID: d.GameID, Player: p.id,
			Detail: "put in a new game while in game " + strconv.Quote(p.gameID)})
	}
	p.release()
	p.r.noteJoined(d.GameID)
	rec, found := p.r.games.claim(d.GameID, p.id, team)
	for _, a := range found {
		p.r.anomaly(a)
	}
	p.gameID, p.rec, p.team, p.attached, p.joining = d.GameID, rec, team, true, false
	// X waits for an opponent; O's joining is what starts the game.
	p.board, p.move, p.status, p.pending, p.winnerSeen = game.Board{}, 0, game.Waiting, nil, false
	if team == game.O {
		p.status = game.InProgress
	}
	p.acked = map[string]bool{}
	if play.Err() != nil && p.status == game.Waiting {
		// The answer to a join sent before the run ended: leave at once,
		// rather than wait for an opponent until the timer.
		return p.kick(play)
	}
	p.arm(4*p.r.cfg.Timeout, actKick)
	return nil
}

// onState takes a game's whole state: after a resume, or when asked.
func (p *resumer) onState(play context.Context, d *resumeData) error {
	if !p.mine(d.GameID, "state") {
		return nil
	}
	st, err := game.ParseStatus(d.Status)
	if err != nil || d.Grid == nil {
		p.bad("state with status " + strconv.Quote(d.Status) + " or no grid")
		return nil
	}
	if d.Move < p.move {
		return nil // older than what we have
	}
	if st.Over() {
		p.winnerSeen = true // a state carries the winner
	}
	p.move = d.Move
	p.setGrid(d.Grid)
	if p.pending != nil && !p.pendingLost() {
		p.status = st
		return p.kick(play) // after a resume: send it again, for its ack
	}
	if st != p.status {
		return p.onStatus(play, st)
	}
	return p.next(play)
}

func (p *resumer) setGrid(g *[game.Size][game.Size]cell) {
	for x := range game.Size {
		for y := range game.Size {
			p.board[game.Index(x, y)] = game.Mark(g[x][y])
		}
	}
}

func (p *resumer) onStatus(play context.Context, st game.Status) error {
	p.status = st
	switch st {
	case game.Waiting:
		return nil
	case game.InProgress:
		return p.next(play)
	}
	if st.Over() && !p.winnerSeen && p.pending == nil {
		// The winner follows the status; a state carries both.
		p.arm(p.r.cfg.Timeout, actKick)
		return nil
	}
	return p.end(play)
}

// next plays if it is the player's turn, or waits for the opponent.
func (p *resumer) next(play context.Context) error {
	switch {
	case p.status.Over():
		return p.end(play)
	case p.status != game.InProgress:
		return nil
	case p.pending != nil && p.board[game.Index(p.pending.x, p.pending.y)] == p.team:
		return p.kick(play) // played, and its ack is owed: send it again
	case p.pending != nil && !p.pendingLost():
		return nil // on its way: the resend timer runs
	case p.pending != nil:
		p.pending = nil
		fallthrough
	case turnOf(p.move+1) == p.team:
		p.action = actKick
		return p.play(play)
	}
	c := p.r.cfg
	p.arm(2*c.Timeout+time.Duration(float64(c.Think)*(1+c.Jitter)), actKick)
	return nil
}

func (p *resumer) onGrid(play context.Context, d *resumeData) error {
	if !p.mine(d.GameID, "updateGrid") {
		return nil
	}
	if d.Grid == nil || d.Last == nil {
		p.bad("updateGrid without grid or last")
		return nil
	}
	m := d.Move
	if m <= p.move {
		return nil // a resumed socket may get a move its state had: the protocol says to ignore it
	}
	if m > p.move+1 {
		p.r.gaps.Add(1) // missed while away; the grid is whole
	}
	last, _ := game.ParseMark(d.Last.Team)
	if want := turnOf(m); last != want {
		p.r.anomaly(Anomaly{Kind: AnomalyOutOfTurn, GameID: p.gameID, Player: p.id,
			Detail: fmt.Sprintf("move %d played by %q on %s's turn", m, d.Last.Team, want)})
	}
	now := p.r.now()
	if last != p.team && m < len(p.rec.sent) && p.r.measuring(now) {
		if sent := p.rec.sent[m].Load(); sent != 0 {
			p.r.opponentSaw(time.Duration(sent), now)
		}
	}
	p.move = m
	p.setGrid(d.Grid)
	if w, _ := p.board.Winner(); w != game.Empty || p.board.Full() {
		return nil // the status that ends the game follows
	}
	if p.status == game.Waiting {
		p.status = game.InProgress
	}
	return p.next(play)
}

func (p *resumer) onAck(play context.Context, d *resumeData) error {
	if !p.mine(d.GameID, "moveAck") {
		return nil
	}
	if p.acked[d.MoveID] {
		return nil // the ack of a move sent twice
	}
	m := p.pending
	if m == nil || m.id != d.MoveID {
		p.bad("moveAck for move " + strconv.Quote(d.MoveID) + " never sent")
		return nil
	}
	p.acked[d.MoveID] = true
	p.r.ack(p.gameID, AckedMove{Move: d.Move, X: m.x, Y: m.y, Team: p.team.String(), ID: m.id})
	p.pending = nil
	// The ack comes before the move's updateGrid: take the move now, so that
	// the turn is the opponent's (the updateGrid is then one we have).
	if d.Move == p.move+1 {
		p.move = d.Move
		p.board[game.Index(m.x, m.y)] = p.team
		now := p.r.now()
		p.r.movesAll.Add(1)
		if p.r.measuring(now) {
			p.r.moves.Add(1)
			p.r.mover.Record(now - m.sent)
		}
		if w, _ := p.board.Winner(); w != game.Empty || p.board.Full() {
			return nil // the status that ends the game follows
		}
	}
	if p.status.Over() && !p.winnerSeen {
		return nil
	}
	return p.next(play)
}

func (p *resumer) onError(play context.Context, code string) error {
	c := p.r.cfg
	retry := c.Timeout/10 + rand.N(c.Timeout/10+1)
	switch code {
	case "unavailable", "rate_limited":
		// The store or the replica is away: try again shortly. Nothing changed.
		if p.barrier {
			// hello could not look for our game; only hello can, on a new socket.
			return errors.New("hello failed: " + code)
		}
		if p.gameID == "" {
			p.joining = false
		}
	case "not_in_game", "not_your_turn", "occupied", "game_over", "not_started":
		// The socket or the view is behind the game: attach again for its state.
		if code == "not_in_game" && p.status == game.Waiting && p.team == game.X && p.pending == nil {
			// A waiting game ends with its socket: it was cancelled.
			p.forget()
		} else if p.gameID != "" {
			p.attached = false
		}
		// A refused move is dropped once the state shows it was not played
		// (see pendingLost): errors do not say which request they answer.
	case "already_playing":
		if p.joining {
			// The server has us in a game we do not know of: the session brings it back.
			return errors.New("already playing a game this player does not know")
		}
	default:
		p.bad("error " + code)
	}
	p.arm(retry, actKick)
	return nil
}

// pendingLost reports whether the pending move cannot have been stored, as
// the game is seen: its square is not the player's, and it is taken, or the
// game is over, or it is the opponent's turn (with one move in flight at a
// time, that turn came after a move of ours on another square).
func (p *resumer) pendingLost() bool {
	sq := p.board[game.Index(p.pending.x, p.pending.y)]
	return sq != p.team && (sq != game.Empty || p.status.Over() || turnOf(p.move+1) != p.team)
}

// end closes the current game once it is over and its last move acked, and
// joins the next one unless the run is over.
func (p *resumer) end(play context.Context) error {
	if p.gameID == "" {
		return p.kick(play)
	}
	if p.pending != nil && !p.pendingLost() {
		return p.kick(play) // make sure of the last move first
	}
	p.pending = nil
	if p.rec != nil {
		now := p.r.now()
		switch p.status {
		case game.Finished, game.FinishedDraw:
			first, differ := p.rec.finish(p.board, p.move)
			if differ {
				p.r.anomaly(Anomaly{Kind: AnomalyBoardsDiffer, GameID: p.gameID, Player: p.id,
					Detail: "final board " + boardString(&p.board) + " at move " + itoa(p.move) + " differs from the opponent's"})
			}
			if first && p.r.measuring(now) {
				p.r.finished.Add(1)
				if p.status == game.FinishedDraw {
					p.r.draws.Add(1)
				}
			}
		case game.Abandoned:
			if p.rec.end() && p.r.measuring(now) {
				p.r.abandoned.Add(1)
			}
		}
	}
	p.forget()
	return p.kick(play)
}

// forget leaves the current game behind.
func (p *resumer) forget() {
	p.release()
	p.prevGame, p.gameID, p.pending, p.attached = p.gameID, "", nil, false
}

func (p *resumer) release() {
	if p.rec != nil {
		if p.gameID != "" && p.status == game.InProgress {
			p.r.unfinished.Add(1)
			p.r.noteUnfinished(fmt.Sprintf("player %d in game %s as %s at move %d: attached %v, move pending %v",
				p.id, p.gameID, p.team, p.move, p.attached, p.pending != nil))
		}
		p.r.games.release(p.rec)
		p.rec = nil
	}
}

// sleepCtx waits d or until ctx is done, and reports whether d passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// CompareAcked reports how the moves acknowledged in one game differ from
// the moves stored for it (each an AckedMove with its number in the game,
// in order): nil when they are the same moves, numbered the same, with the
// same ids. Acked may be in any order.
func CompareAcked(acked, stored []AckedMove) error {
	byNum := make(map[int]AckedMove, len(acked))
	for _, m := range acked {
		if prev, dup := byNum[m.Move]; dup && prev != m {
			return fmt.Errorf("move %d acknowledged as both %+v and %+v", m.Move, prev, m)
		}
		byNum[m.Move] = m
	}
	for i, s := range stored {
		a, ok := byNum[i+1]
		switch {
		case s.Move != i+1:
			return fmt.Errorf("stored move %d is numbered %d", i+1, s.Move)
		case !ok:
			return fmt.Errorf("stored move %d %+v was never acknowledged", i+1, s)
		case a != s:
			return fmt.Errorf("move %d acknowledged as %+v, stored as %+v", i+1, a, s)
		}
		delete(byNum, i+1)
	}
	for n, m := range byNum {
		return fmt.Errorf("move %d %+v was acknowledged and is not stored (%d stored)", n, m, len(stored))
	}
	return nil
}
