package hub

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"time"

	"github.com/coder/websocket"

	"github.com/tictac/tictac/game"
	"github.com/tictac/tictac/store"
)

// handle acts on one frame. Errors are refusals for the client.
func (c *conn) handle(data []byte) error {
	req, err := decode(data)
	if err != nil {
		return err
	}
	first := c.said == 0
	c.said++
	// What no game paces counts against the limit whether or not it changes
	// anything: reads of the store, watching, the stats and list switches,
	// making a game of one's own (a friend's or against the computer, which
	// one can resign at once), and leaving a game that waits or is watched
	// (a loop of joining and leaving). Moves and quick joins are paced by the
	// games they belong to, and so is leaving a game that ended or resigning
	// one.
	switch {
	case req.action == actionSync, req.action == actionList, req.action == actionUnlist,
		req.action == actionPauseStats, req.action == actionResumeStats, req.action == actionSpectate,
		req.action == actionJoin && (req.mode == "friend" || req.mode == "bot"):
		if !c.charge() {
			return nil
		}
	case req.action == actionLeave:
		if c.room != nil && (c.watching || c.room.status() == game.Waiting) && !c.charge() {
			return nil
		}
	}
	switch req.action {
	case actionPing:
		if c.charge() { // a ping changes nothing, so it counts against the limit
			c.enqueue(framePong)
		}
		return nil
	case actionHello:
		if !first {
			return refuse("bad_session", "hello must be the first message on a socket.")
		}
		return c.hello(req.token)
	case actionJoin:
		return c.join(req)
	case actionFill:
		start := time.Now()
		err := c.move(req)
		result := "applied"
		if err != nil {
			result = toClientError(err).Code
		} else {
			c.hub.metrics.move.Observe(time.Since(start).Seconds())
		}
		c.hub.metrics.moves.WithLabelValues(result).Inc()
		return err
	case actionRematch:
		return c.rematch(req.gameID)
	case actionSpectate:
		return c.spectate(req.gameID)
	case actionLeave:
		return c.leaveGame(req.gameID)
	case actionList:
		return c.listGames()
	case actionUnlist:
		c.listing.Store(false)
		return nil
	case actionPauseStats:
		c.statsOff.Store(true)
		return nil
	case actionResumeStats:
		if c.statsOff.Swap(false) {
			c.hub.resumeStats(c)
		}
		return nil
	case actionSync:
		return c.sync(req.gameID)
	}
	return refuse("unknown_action", "Unknown action.")
}

// storeCtx bounds one request's store calls, and what follows them: telling
// the game. It is not the socket's: a socket that closes mid-request (its
// writer failed, the replica is stopping) must not cancel telling the game of
// a change the store took, which would reach nobody on other replicas.
func (c *conn) storeCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), c.hub.opt.StoreTimeout)
}

// A session token is 128 random bits in hex. The player id stored in games is
// a digest of it, so neither the store nor the logs ever hold a token, and
// knowing a player id (it is no secret) does not let anyone act as the player.
func validToken(t string) bool {
	if len(t) != 32 {
		return false
	}
	_, err := hex.DecodeString(t)
	return err == nil && t == toLower(t)
}

func toLower(s string) string {
	b := []byte(s)
	for i, ch := range b {
		if 'A' <= ch && ch <= 'Z' {
			b[i] = ch + 'a' - 'A'
		}
	}
	return string(b)
}

func playerOf(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:16])
}

// hello adopts the client's session, or gives it a new one, and puts the
// player back into its game if it has one in progress.
func (c *conn) hello(token string) error {
	if !validToken(token) {
		token = newPlayerID()
	}
	c.player = playerOf(token)
	c.enqueue(frameSession(token, c.hub.opt.Grace))
	ctx, cancel := c.storeCtx()
	defer cancel()
	g, err := c.hub.store.Active(ctx, c.player)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil
	case err != nil:
		return err
	case g.Status == game.Waiting && g.Mode != store.ModeFriend:
		// A quick game belongs to the player's sockets that wait in it,
		// and the last of them to go cancels it (see leave). One of them
		// may be a tab still open: cancelled under it, it would be told
		// nothing and stay stuck. Only a replica that has the game's room
		// (it made the game) can tell that they are all gone (closed,
		// their leave on its way): then it is cancelled now, so that this
		// page's next join does not land in it. A room on another replica
		// is that replica's to cancel, as this one cannot see its
		// sockets. A game whose replica died stays queued until its
		// player asks for a quick game again (and gets it back) or
		// someone is paired with it.
		if c.hub.deserted(g.ID, g.Team(c.player)) {
			c.hub.cancelWaiting(ctx, g.ID, c.player, backoff{})
		}
		return nil
	}
	if d, ok := lapsed(&g, c.player, c.hub.opt.Now()); ok {
		if c.hub.expireInvite(ctx, g.ID, c.player, d) {
			return nil
		}
		// Back meanwhile (another tab): the game stays, and so do we.
		if g, err = c.hub.store.Game(ctx, g.ID); err != nil {
			return err
		}
	}
	// A game in progress, or a friend's game still waiting for the
	// friend, whose invite link is out: the player is back in it.
	return c.attach(ctx, g)
}

// attach puts the socket back in a game it plays: the game's state first,
// then its messages, and the opponent learns the player is back.
func (c *conn) attach(ctx context.Context, g store.Game) error {
	team := g.Team(c.player)
	if team == game.Empty {
		return refuse("not_in_game", "You do not play in that game.")
	}
	c.hold()
	defer c.release()
	if err := c.switchRoom(ctx, g.ID, team, false); err != nil {
		return err
	}
	c.room.friend.Store(g.Mode == store.ModeFriend)
	c.room.bot.Store(g.Mode == store.ModeBot)
	// Read the game again now that the socket is in the room: a playerAway
	// published from here on finds the player present (see onAway), and one
	// published before is in what we read. Reading only before would let a
	// late away from the replica the player left go unanswered.
	g, err := c.hub.store.Game(ctx, g.ID)
	if err != nil {
		c.dropRoom()
		return err
	}
	c.room.observe(g.Status, g.Moves)
	if g.Away[team-1] != 0 {
		back, err := c.hub.store.Update(ctx, g.ID, func(g *store.Game) error { return g.SetBack(c.player) })
		switch {
		case err == nil:
			g = back
			if g.Status == game.InProgress { // a waiting game has nobody to tell
				c.hub.publish(ctx, &g, framePlayerBack(g.ID, team))
			}
		case storeFailed(err):
			id := g.ID
			c.hub.retryLater("back/"+id+"/"+team.String(), "mark player back", id, err, backoff{max: retryBackMax}, func(ctx context.Context, b backoff) {
				c.hub.markBack(ctx, id, team, b)
			})
		}
	}
	// The opponent away: its forfeit is armed here too, in case no replica
	// that heard of it is left to.
	if other := team.Other(); g.Away[other-1] != 0 && g.Status == game.InProgress {
		c.hub.armForfeit(g.ID, other, g.Away[other-1])
	}
	c.enqueue(frameJoinGame(&g, team))
	c.enqueue(frameState(&g, team))
	c.hub.scheduleBot(g)
	return nil
}

// switchRoom enters game id's room, as team or watching, and departs the
// socket's current room, if any: whatever the socket goes on to, its old game
// hears it left (see depart). A spectator that goes on to play the game it
// watches stops watching it.
func (c *conn) switchRoom(ctx context.Context, id string, team game.Mark, watching bool) error {
	if c.room != nil && c.room.id == id {
		if c.watching && !watching {
			c.unwatch(ctx, id)
		}
		c.setRoom(c.room, team, watching)
		return nil
	}
	r, err := c.hub.enter(ctx, id, c)
	if err != nil {
		return err
	}
	c.depart(ctx, id)
	c.setRoom(r, team, watching)
	c.listing.Store(false)
	return nil
}

// dropRoom takes the socket out of its room and tells nobody: for a room
// entered a moment ago whose game was never made or joined (a failed store
// call), or once the game knows (see depart).
func (c *conn) dropRoom() {
	if c.room != nil {
		r := c.room
		c.setRoom(nil, game.Empty, false)
		c.hub.exit(r, c)
	}
}

func (c *conn) setRoom(r *room, team game.Mark, watching bool) {
	c.room, c.team, c.watching = r, team, watching
	c.seat.Store(int32(team))
}

// join puts the player in a new game, by the mode asked.
func (c *conn) join(req request) error {
	if c.room != nil && !c.watching {
		switch c.room.status() {
		case game.Waiting:
			if req.mode == "quick" {
				if c.charge() { // already waiting: nothing changed
					c.enqueue(frameJoinGame(&store.Game{ID: c.room.id}, c.team))
				}
				return nil
			}
			return refuse("already_playing", "Cancel your waiting game first (leaveGame).")
		case game.InProgress:
			if req.mode != "attach" || req.gameID != c.room.id {
				return refuse("already_playing", "Finish or leave your current game first.")
			}
		}
	}
	ctx, cancel := c.storeCtx()
	defer cancel()
	switch req.mode {
	case "attach":
		g, err := c.hub.store.Game(ctx, req.gameID)
		if err != nil {
			return err
		}
		return c.attach(ctx, g)
	case "invite":
		return c.joinInvite(ctx, req.invite)
	case "friend", "bot":
		return c.create(ctx, req)
	}
	return c.quickMatch(ctx, 2)
}

// quickMatch pairs the player with whoever waits, or makes it wait; tries
// bounds how often it starts over when the game it got is gone meanwhile.
func (c *conn) quickMatch(ctx context.Context, tries int) error {
	// Listen to the game we may open before opening it, so that the
	// opponent's first message cannot arrive before we do.
	id := c.hub.opt.NewID()
	c.hold()
	defer c.release()
	if err := c.switchRoom(ctx, id, game.X, false); err != nil {
		return err
	}
	start := time.Now()
	g, err := c.hub.store.Join(ctx, c.player, id)
	c.hub.observeStore("join", start, err)
	if err != nil {
		c.dropRoom()
		return err
	}
	if g.ID != id {
		// Paired, or given the player's own waiting game back: the game
		// that was to be opened as id never was, and nobody hears of it.
		c.dropRoom()
		if err := c.switchRoom(ctx, g.ID, g.Team(c.player), false); err != nil {
			if g.Status == game.Waiting {
				return err // the player's own, waiting already: nothing changed
			}
			c.unreachable(ctx, &g, err, framePlayerJoin(g.ID, game.O), frameStatus(&g))
			return nil
		}
		if g.Status == game.Waiting && tries > 1 {
			// The player's own waiting game, taken up again (a page that
			// reconnected here before its old socket's replica saw that one
			// close). Read again now that the socket hears the game: a
			// cancellation published before it did was missed.
			_, err := c.hub.store.Game(ctx, g.ID)
			switch {
			case errors.Is(err, store.ErrNotFound):
				c.dropRoom()
				return c.quickMatch(ctx, tries-1)
			case err != nil:
				c.dropRoom()
				return err
			}
		}
	}
	c.room.observe(g.Status, g.Moves)
	c.setRoom(c.room, g.Team(c.player), false)
	c.hub.log.Debug("joined game", "game", g.ID, "team", c.team.String(), "player", c.tag)
	c.enqueue(frameJoinGame(&g, c.team))
	if g.Status == game.Waiting {
		c.enqueue(frameStatus(&g))
		return nil
	}
	c.hub.log.Info("game started", "game", g.ID, "mode", g.Mode.String())
	if c.team == game.O && g.Moves == 0 {
		c.hub.watchOpener(g)
	}
	return c.hub.publish(ctx, &g, framePlayerJoin(g.ID, game.O), frameStatus(&g))
}

// create opens a friend's game (waiting, with an invite code) or a game
// against the computer (started at once, the player as X).
func (c *conn) create(ctx context.Context, req request) error {
	now := c.hub.opt.Now()
	g := store.Game{ID: c.hub.opt.NewID(), PlayerX: c.player, Game: game.New(), Created: now}
	if req.mode == "friend" {
		g.Mode, g.Invite = store.ModeFriend, store.NewInvite()
	} else {
		g.Mode, g.Level, g.PlayerO, g.Started = store.ModeBot, req.level.String(), store.BotPlayer, now
		if err := g.Start(); err != nil {
			return err
		}
	}
	c.hold()
	defer c.release()
	if err := c.switchRoom(ctx, g.ID, game.X, false); err != nil {
		return err
	}
	g, err := c.hub.store.Create(ctx, g)
	if err != nil {
		c.dropRoom()
		return err
	}
	c.room.friend.Store(g.Mode == store.ModeFriend)
	c.room.bot.Store(g.Mode == store.ModeBot)
	c.room.observe(g.Status, g.Moves)
	c.hub.log.Debug("joined game", "game", g.ID, "team", "x", "player", c.tag, "mode", g.Mode.String())
	c.enqueue(frameJoinGame(&g, game.X))
	if g.Status == game.Waiting {
		c.enqueue(frameStatus(&g))
		return nil
	}
	c.hub.log.Info("game started", "game", g.ID, "mode", g.Mode.String(), "level", g.Level)
	return c.hub.publish(ctx, &g, framePlayerJoin(g.ID, game.O), frameStatus(&g))
}

// joinInvite takes the O seat of a friend's waiting game.
func (c *conn) joinInvite(ctx context.Context, code string) error {
	g, err := c.hub.store.JoinInvite(ctx, c.player, code)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return refuse("invite_not_found", "That invite link is not valid any more: ask your friend for a new one.")
	case errors.Is(err, store.ErrNotPlayer):
		return refuse("invite_not_found", "That is your own invite link: send it to a friend.")
	case err != nil:
		return err
	}
	frames := [][]byte{framePlayerJoin(g.ID, game.O), frameStatus(&g)}
	if d := g.Away[0]; d != 0 {
		// The friend who sent the link is away: the countdown it had
		// runs on, and every replica in the game arms its forfeit.
		frames = append(frames, framePlayerAway(g.ID, game.X, d, c.hub.opt.Now().UnixMilli()))
	}
	c.hold()
	defer c.release()
	if err := c.switchRoom(ctx, g.ID, game.O, false); err != nil {
		c.unreachable(ctx, &g, err, frames...)
		return nil
	}
	c.room.friend.Store(true)
	c.room.observe(g.Status, g.Moves)
	c.hub.log.Debug("joined game", "game", g.ID, "team", "o", "player", c.tag, "mode", "friend")
	c.hub.log.Info("game started", "game", g.ID, "mode", "friend")
	c.enqueue(frameJoinGame(&g, game.O))
	if g.Away[0] == 0 {
		c.hub.watchOpener(g)
	}
	return c.hub.publish(ctx, &g, frames...)
}

// unreachable deals with a player whom the store has just seated in game g,
// started by it (paired, or by an invite), when the socket cannot enter the
// game's room: the bus failed to subscribe (Redis down, or a blip). The
// change stands, so "unavailable, nothing changed" would be a lie, and a
// player seated but deaf would keep the opponent waiting for ever. It goes
// instead as if the socket had dropped the moment the player was seated: the
// game hears that it started (frames) and that the player is away, whose
// forfeit is armed (markAway tries the mark again if the store fails it),
// and the socket is closed with 1013, try again later. The page reconnects,
// to this replica or another, and its hello puts the player back in the
// game as after any drop; a player who does not come back forfeits. The
// reconnect is the subscribe tried again: at once, here, it would most
// likely fail again (the Redis bus refuses subscribes until it reconnected).
func (c *conn) unreachable(ctx context.Context, g *store.Game, err error, frames ...[]byte) {
	team := g.Team(c.player)
	c.hub.log.Warn("seated in a game this replica cannot subscribe to: player marked away, socket closed to reconnect",
		"game", g.ID, "team", team.String(), "player", c.tag, "err", err)
	c.hub.publish(ctx, g, frames...)
	c.hub.markAway(ctx, g.ID, team, c.player, backoff{})
	c.close(websocket.StatusTryAgainLater, "could not enter the game: reconnect")
}

// move plays a square in the player's game and tells everyone in it.
func (c *conn) move(req request) error {
	if c.room == nil || c.room.id != req.gameID || c.watching {
		return refuse("not_in_game", "You do not play in that game.")
	}
	if req.x < 0 || req.x >= game.Size || req.y < 0 || req.y >= game.Size {
		return game.ErrOffBoard
	}
	ctx, cancel := c.storeCtx()
	defer cancel()
	start := time.Now()
	g, err := c.hub.store.Move(ctx, req.gameID, c.player, req.x, req.y, req.moveID)
	c.hub.observeStore("move", start, err)
	if errors.Is(err, store.ErrDuplicateMove) {
		// A resend of a move stored already. The first attempt's answer
		// may have been lost after the store applied it (a timeout): then
		// nobody was told of the move, the opponent would wait for it for
		// ever, and the computer would never answer it. So the game is
		// told again, as it is now (g); it is not counted as ended again,
		// which the first attempt may have done. A resend changes nothing,
		// so it counts against the rate limit: resent in a loop, it would
		// flood the game's sockets.
		if !c.charge() {
			return nil
		}
		c.enqueue(frameMoveAck(g.ID, req.moveID, g.MoveNumber(c.team, req.moveID)))
		return c.hub.tell(ctx, g)
	}
	if err != nil {
		return err
	}
	if req.moveID != "" {
		c.enqueue(frameMoveAck(g.ID, req.moveID, g.Moves))
	}
	return c.hub.published(ctx, g)
}

// published tells everyone in g's game about the move just played, which
// may have ended it.
func (h *Hub) published(ctx context.Context, g store.Game) error {
	if g.Status.Over() {
		h.ended(&g)
	}
	return h.tell(ctx, g)
}

// tell tells everyone in g's game its grid after its last move, and how it
// ended if it did, and lets the computer answer if it plays there. Telling
// again does no harm: clients ignore a grid whose move is older than the one
// they show, and the rest says the same again.
func (h *Hub) tell(ctx context.Context, g store.Game) error {
	if g.Status.Over() {
		return h.publish(ctx, &g, frameGrid(&g), frameStatus(&g), frameWinner(&g))
	}
	if err := h.publish(ctx, &g, frameGrid(&g)); err != nil {
		return err
	}
	h.scheduleBot(g)
	return nil
}

// ended counts and logs a game that just ended on this replica.
func (h *Hub) ended(g *store.Game) {
	result := g.Winner.String()
	switch {
	case g.Status == game.FinishedDraw:
		result = "draw"
	case g.Status == game.Abandoned:
		result = "abandoned"
	}
	h.metrics.games.WithLabelValues(result).Inc()
	h.log.Info("game over", "game", g.ID, "status", g.Status.String(), "winner", g.Winner.String(), "reason", g.Reason, "moves", g.Moves)
}

// rematch offers a rematch of the finished game; the second offer starts it.
func (c *conn) rematch(id string) error {
	if c.room == nil || c.room.id != id || c.watching {
		return refuse("not_in_game", "You do not play in that game.")
	}
	ctx, cancel := c.storeCtx()
	defer cancel()
	next := c.hub.opt.NewID()
	var both bool
	g, err := c.hub.store.Update(ctx, id, func(g *store.Game) (err error) {
		both, err = g.OfferRematch(c.player, next)
		return err
	})
	if errors.Is(err, store.ErrNoRematch) {
		return refuse("rematch_unavailable", "A rematch needs a game that ended on the board.")
	}
	if err != nil {
		return err
	}
	frames := [][]byte{frameRematchOffer(id, c.team)}
	if g.Next != "" { // both offered
		n, err := c.hub.startRematch(ctx, &g, both)
		switch {
		case err == nil:
			frames = append(frames, frameRematch(id, n.ID))
			defer c.hub.scheduleBot(n)
		case storeFailed(err):
			// The offer is stored, and the rematch's id with it, so it
			// is not refused: unavailable would say nothing changed.
			// The rematch is created once the store takes it, and its
			// players told then.
			c.hub.rematchLater(g, err, backoff{})
		default:
			return err
		}
	}
	return c.hub.publish(ctx, &g, frames...)
}

// startRematch returns the rematch of game g, whose players both offered
// one (g.Next names it), and creates it unless it exists; fresh says that
// this very offer set g.Next, so that its game cannot exist yet. Create
// refuses an id that exists, so creating is safe to repeat: a later offer
// in g does it, should the offer that set Next have failed to (or lost the
// answer), and so does rematchLater.
func (h *Hub) startRematch(ctx context.Context, g *store.Game, fresh bool) (store.Game, error) {
	if !fresh {
		n, err := h.store.Game(ctx, g.Next)
		if !errors.Is(err, store.ErrNotFound) {
			return n, err
		}
	}
	n, err := h.store.Create(ctx, store.RematchOf(g, h.opt.Now()))
	if err != nil {
		// Refused as taken, if an attempt whose answer was lost or the
		// other player's offer a moment ago created it.
		if made, gerr := h.store.Game(ctx, g.Next); gerr == nil {
			return made, nil
		}
		return store.Game{}, err
	}
	h.log.Info("game started", "game", n.ID, "mode", n.Mode.String(), "rematch_of", g.ID)
	return n, nil
}

// rematchLater creates game g's rematch in the background, after the store
// failed it with err, and tells its players (see retryLater). Else the
// rematch that both players asked for would never start, unless one of them
// offered it again.
func (h *Hub) rematchLater(g store.Game, err error, b backoff) {
	h.retryLater("rematch/"+g.ID, "create rematch", g.ID, err, b, func(ctx context.Context, b backoff) {
		n, err := h.startRematch(ctx, &g, false)
		switch {
		case err == nil:
			h.publish(ctx, &g, frameRematch(g.ID, n.ID))
			h.scheduleBot(n)
		case storeFailed(err):
			h.rematchLater(g, err, b)
		default:
			h.log.Warn("create rematch", "game", g.ID, "err", err)
		}
	})
}

// spectate lets the socket watch a game.
func (c *conn) spectate(id string) error {
	if c.room != nil && !c.watching && !c.room.status().Over() {
		return refuse("already_playing", "Finish or leave your current game first.")
	}
	ctx, cancel := c.storeCtx()
	defer cancel()
	if c.watching && c.room.id == id {
		g, err := c.hub.store.Game(ctx, id)
		if err != nil {
			return err
		}
		c.enqueue(frameState(&g, game.Empty))
		return nil
	}
	g, err := c.hub.store.Game(ctx, id)
	if err != nil {
		return err
	}
	if g.Status == game.Waiting {
		return refuse("not_in_game", "That game has not started.")
	}
	c.hold()
	defer c.release()
	if err := c.switchRoom(ctx, id, game.Empty, true); err != nil {
		return err
	}
	if g, err = c.hub.store.Update(ctx, id, func(g *store.Game) error { g.Watch(+1); return nil }); err != nil {
		c.dropRoom()
		return err
	}
	c.room.observe(g.Status, g.Moves)
	c.enqueue(frameState(&g, game.Empty))
	return c.hub.publish(ctx, &g, frameSpectators(&g))
}

// stopWatching ends the socket's watching, if it watches.
func (c *conn) stopWatching(ctx context.Context) {
	if !c.watching || c.room == nil {
		return
	}
	id := c.room.id
	c.dropRoom()
	c.unwatch(ctx, id)
}

// unwatch takes one spectator off game id's count, and tells the game.
func (c *conn) unwatch(ctx context.Context, id string) {
	g, err := c.hub.store.Update(ctx, id, func(g *store.Game) error { g.Watch(-1); return nil })
	if err == nil {
		c.hub.publish(ctx, &g, frameSpectators(&g))
	}
}

// leaveGame stops watching, cancels a waiting game, or resigns one in progress.
func (c *conn) leaveGame(id string) error {
	if c.room == nil || c.room.id != id {
		return refuse("not_in_game", "You are not in that game.")
	}
	ctx, cancel := c.storeCtx()
	defer cancel()
	switch st := c.room.status(); {
	case c.watching, st.Over():
		// As when it goes anywhere else: a spectator stops watching, and
		// the others in an ended game hear that the player left.
		c.depart(ctx, "")
	case st == game.Waiting && c.room.hasOther(c):
		// The player's other tab waits in it too: the game stays, its.
		c.dropRoom()
	default:
		g, err := c.hub.store.Leave(ctx, id, c.player)
		switch {
		case errors.Is(err, store.ErrNotFound), errors.Is(err, game.ErrOver):
			// Cancelled or ended meanwhile (a waiting game cancelled through
			// another socket or replica): the player is out of it all the
			// same, and a refusal would leave the socket stuck in a room
			// that no game stands behind.
		case err != nil:
			return err
		case g.Status == game.Abandoned:
			c.hub.ended(&g)
			c.hub.publish(ctx, &g, frameStatus(&g), frameWinner(&g))
		}
		c.dropRoom()
		if err == nil && g.Status == game.Waiting {
			c.hub.cancelled(ctx, id) // out of the room first: not to this socket
		}
	}
	c.enqueue(frameLeft(id))
	return nil
}

// sync sends the whole state of a game the socket plays or watches. A player
// who is not attached to its game any more (say it ended while the player was
// away) gets its final state all the same.
func (c *conn) sync(id string) error {
	ctx, cancel := c.storeCtx()
	defer cancel()
	g, err := c.hub.store.Game(ctx, id)
	if err != nil {
		return err
	}
	team := g.Team(c.player)
	switch {
	case team == game.Empty && c.watching && c.room != nil && c.room.id == id:
		c.enqueue(frameState(&g, game.Empty))
	case team == game.Empty:
		return refuse("not_in_game", "You are not in that game.")
	case (g.Status == game.InProgress || g.Status == game.Waiting && g.Mode == store.ModeFriend) && (c.room == nil || c.room.id != id):
		if d, ok := lapsed(&g, c.player, c.hub.opt.Now()); ok {
			if c.hub.expireInvite(ctx, g.ID, c.player, d) {
				return store.ErrNotFound
			}
			if g, err = c.hub.store.Game(ctx, g.ID); err != nil {
				return err
			}
		}
		return c.attach(ctx, g)
	default:
		c.enqueue(frameState(&g, team))
	}
	return nil
}

// listGames sends the games in progress now, and later changes.
func (c *conn) listGames() error {
	ctx, cancel := c.storeCtx()
	defer cancel()
	live, err := c.hub.store.Live(ctx, liveLimit)
	if err != nil {
		return err
	}
	c.enqueue(frameGameList(live))
	c.listing.Store(true)
	return nil
}

// leave runs when the socket closed: the socket departs its room for good.
// It has a context of its own.
func (c *conn) leave() {
	ctx, cancel := context.WithTimeout(context.Background(), c.hub.opt.StoreTimeout)
	defer cancel()
	c.depart(ctx, "")
}

// depart takes the socket out of its room, if any, when it closed (next is
// "") or goes on to game next: the game makes the same of both. A spectator
// stops watching. The others in an ended game hear that the player left,
// unless it left for the rematch they agreed on. A waiting game is
// cancelled (a friend's waits a while, see awaitReturn), and a player of a
// game in progress is marked away for the grace period, unless another
// socket of the player is still in the game here. A tab of the player in
// it on another replica is not seen from here: a waiting game is cancelled
// under it.
func (c *conn) depart(ctx context.Context, next string) {
	r, team := c.room, c.team
	switch {
	case r == nil:
		return
	case c.watching:
		c.stopWatching(ctx)
		return
	}
	if c.ctx.Err() == nil {
		// Live, on its way to another game: out of the room first, so that
		// it hears nothing more of this one and does not count as present
		// in it (see onAway and announceLeft).
		c.dropRoom()
	} else {
		// Closed, so it counts for nothing already. It stays in the room
		// until the game knows, so that a hello of the player's meanwhile
		// finds the room without a live socket, and the game abandoned
		// (see deserted).
		defer c.dropRoom()
	}
	switch {
	case r.status().Over():
		if next == "" || r.rematch() != next {
			c.announceLeft(ctx, r, team)
		}
	case r.present(team):
		// The same player is still here on another socket (in a waiting
		// game, a tab that asked for a quick game too got this one): the
		// game is its.
	case r.status() == game.InProgress:
		c.hub.markAway(ctx, r.id, team, c.player, backoff{})
	case !c.awaitReturn(ctx, r, team):
		c.hub.cancelWaiting(ctx, r.id, c.player, backoff{})
	}
}

// awaitReturn keeps the player's waiting game for the grace period if it is
// a friend's, whose invite link is out and may be opened while the page is
// away (a phone that switched to a chat app to send it): the player finds
// it again on coming back, and a friend who comes meanwhile starts the game
// with the player away. It reports false for other games, which the caller
// cancels. The caller has checked that no other socket of the player, of
// team, is in the game here.
//
// The player is marked away as from a game in progress, and everyone in the
// game hears it: a page that came back on another replica before this one
// saw its old socket close is marked back there (onAway). This replica arms
// the expiry itself, as a waiting game may have nobody else to arm it.
func (c *conn) awaitReturn(ctx context.Context, r *room, team game.Mark) bool {
	if !r.friend.Load() {
		return false
	}
	id := r.id
	now := c.hub.opt.Now()
	deadline := now.Add(c.hub.opt.Grace).UnixMilli()
	g, err := c.hub.store.Update(ctx, id, func(g *store.Game) error { return g.SetAway(c.player, deadline) })
	switch {
	case errors.Is(err, store.ErrNotFound), errors.Is(err, game.ErrOver), errors.Is(err, game.ErrNotStarted):
		return false // gone or over: the caller's cancel has nothing to do
	case storeFailed(err):
		// The invite stays out: its mark, and with it its expiry, is
		// tried again (see markAway).
		c.hub.markAwayLater(id, team, c.player, err, backoff{})
		return true
	case err != nil:
		c.hub.log.Warn("mark player away", "game", id, "err", err)
		return false
	}
	if g.Status == game.Waiting {
		c.hub.log.Info("invite waits for its player", "game", id, "deadline", time.UnixMilli(deadline))
		c.hub.armForfeit(id, team, deadline)
	}
	// Waiting, or the friend came just now: the game is in progress.
	c.hub.publish(ctx, &g, framePlayerAway(g.ID, team, deadline, now.UnixMilli()))
	return true
}

// announceLeft tells the others in r's ended game that its player of team,
// this socket's, left it, so that a rematch they offer or offered is known
// to wait in vain. The socket is out of the room, or closed (see depart).
func (c *conn) announceLeft(ctx context.Context, r *room, team game.Mark) {
	if team == game.Empty || r.present(team) || r.bot.Load() {
		return // a spectator, the player still here on another socket, or nobody to tell
	}
	// It changes no game: the room's state heads it, and no stored game
	// travels with it, so the store is not read.
	start := time.Now()
	st := r.state.Load()
	c.hub.send(ctx, r.id, busMessage(&store.Game{Game: game.Game{Status: game.Status(st & 0xff), Moves: int(st >> 8)}}, nil,
		framePlayerLeft(r.id, team)), start)
}

// lapsed reports whether g is a friend's game still waiting for the friend
// whose player has been away past the deadline: its expiry was lost with
// the replica that armed it (a restart), and it is cancelled when seen.
func lapsed(g *store.Game, player string, now time.Time) (int64, bool) {
	team := g.Team(player)
	if g.Status != game.Waiting || team == game.Empty {
		return 0, false
	}
	d := g.Away[team-1]
	return d, d != 0 && now.UnixMilli() >= d
}

// expireInvite cancels a friend's game whose player did not come back to it
// by deadline, unless the player came back or the friend came meanwhile. It
// reports whether the game is gone.
func (h *Hub) expireInvite(ctx context.Context, id, player string, deadline int64) bool {
	ctx, cancel := context.WithTimeout(ctx, h.opt.StoreTimeout)
	defer cancel()
	_, err := h.store.Expire(ctx, id, player, deadline)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return true
	case errors.Is(err, store.ErrNotAway):
		return false
	case err != nil:
		h.log.Warn("expire invite", "game", id, "err", err)
		return false
	}
	h.log.Info("invite expired: its player did not come back", "game", id)
	return true
}

// cancelWaiting takes player's waiting game off the queue. If it started
// in the meantime (paired on another replica a moment ago), the store
// resigns it instead, and the opponent is told. If the store fails it, it is
// tried again (see retryLater): else the next player to join would be paired
// with nobody.
func (h *Hub) cancelWaiting(ctx context.Context, id, player string, b backoff) {
	if !b.first.IsZero() {
		// Tried again after a failure, a while after the socket closed: the
		// player may have taken the game up again since, and been paired
		// in it. Leave would then resign a game being played.
		if g, err := h.store.Game(ctx, id); err == nil && g.Status != game.Waiting {
			return
		}
	}
	start := time.Now()
	g, err := h.store.Leave(ctx, id, player)
	h.observeStore("leave", start, err)
	switch {
	case errors.Is(err, store.ErrNotFound), errors.Is(err, game.ErrOver):
	case storeFailed(err):
		h.retryLater("leave/"+id, "cancel waiting game", id, err, b, func(ctx context.Context, b backoff) {
			h.cancelWaiting(ctx, id, player, b)
		})
	case err != nil:
		h.log.Warn("cancel waiting game", "game", id, "err", err)
	case g.Status == game.Abandoned:
		h.ended(&g)
		h.publish(ctx, &g, frameStatus(&g), frameWinner(&g))
	case g.Status == game.Waiting:
		h.cancelled(ctx, id)
	}
}

// cancelled tells the sockets in waiting game id, deleted, that it is gone:
// a socket of the player on another replica that took the game up as its
// own queues again; its room sees the game over, so that its next join goes
// to the store. No stored game goes with it: there is none to learn.
func (h *Hub) cancelled(ctx context.Context, id string) {
	gone := store.Game{ID: id, Game: game.Game{Status: game.Abandoned}}
	h.send(ctx, id, busMessage(&gone, nil, frameCancelled(id)), time.Now())
}

// publish sends frames to everyone in g's game, on every replica. It is
// called once the store has the change, so a bus that cannot be reached does
// not undo it: the frames go to this replica's sockets in the game, and the
// other replicas resend the whole state when their bus reconnects (Resync).
func (h *Hub) publish(ctx context.Context, g *store.Game, frames ...[]byte) error {
	start := time.Now()
	var stored []byte
	if _, ok := h.store.(Learner); ok {
		stored = store.EncodeGame(g)
	}
	h.send(ctx, g.ID, busMessage(g, stored, frames...), start)
	return nil
}

// send publishes bus message msg about game id (see publish).
func (h *Hub) send(ctx context.Context, id string, msg []byte, start time.Time) {
	err := h.bus.Publish(ctx, channel(id), msg)
	h.metrics.publish.Observe(time.Since(start).Seconds())
	if err == nil {
		return
	}
	h.metrics.busErrors.Inc()
	h.log.Warn("publish failed; telling this replica's sockets only", "game", id, "err", err)
	h.mu.Lock()
	r := h.rooms[id]
	h.mu.Unlock()
	if r != nil {
		r.deliver(msg)
	}
}
