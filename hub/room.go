package hub

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/tictac/tictac/game"
	"github.com/tictac/tictac/store"
)

var (
	awayPrefix    = []byte(`{"action":"playerAway"`)
	rematchPrefix = []byte(`{"action":"rematch",`)
)

// channel names a game's bus channel.
func channel(gameID string) string { return "tictac:game:" + gameID }

// room is a game as one replica sees it: its local sockets and its bus
// subscription, held while anyone here refers to the game.
type room struct {
	id    string
	hub   *Hub
	ready chan struct{} // closed once the bus subscription is settled
	err   error         // why subscribing failed; read after ready
	stop  func()        // ends the bus subscription

	refs int // guarded by Hub.mu

	mu      sync.Mutex
	members []*conn // replaced, never modified in place, so deliver can read it unlocked

	// order lets one deliver run at a time, so that every socket here gets a
	// game's messages in the order delivered. Without it, a deliver paused
	// between two sockets (preempted) could be overtaken: the first socket's
	// player answers the move, and its answer reaches the second socket
	// before the move it answers.
	order sync.Mutex

	// state is moves<<8 | status of the newest message seen. Within one move
	// count a game's status only moves forward, so the maximum is the latest.
	state atomic.Uint32
	// friend is set for a friend's game, whose wait outlives its player's
	// socket (see awaitReturn); bot for a game against the computer.
	friend, bot atomic.Bool
	// next is the id of the game's rematch once its players agreed to it (a
	// rematch frame came through), nil before: a player who goes on to it
	// has not left them (see depart).
	next atomic.Pointer[string]
}

func (r *room) observe(status game.Status, moves int) {
	next := uint32(moves)<<8 | uint32(status)
	for {
		cur := r.state.Load()
		if next <= cur || r.state.CompareAndSwap(cur, next) {
			return
		}
	}
}

// status returns the game's status as last seen on this replica.
func (r *room) status() game.Status { return game.Status(r.state.Load() & 0xff) }

// deliver fans a bus message out to the local sockets. It never blocks: a
// socket whose queue is full is dropped as too slow.
func (r *room) deliver(msg []byte) {
	if len(msg) < 2 {
		return
	}
	r.order.Lock()
	defer r.order.Unlock()
	r.observe(game.Status(msg[0]), int(msg[1]))
	r.mu.Lock()
	members := r.members
	r.mu.Unlock()
	for body := msg[2:]; len(body) > 0; {
		f := body
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			f, body = body[:i], body[i+1:]
		} else {
			body = nil
		}
		if bytes.HasPrefix(f, storedPrefix) {
			if r.hub != nil {
				r.hub.learn(r.id, f)
			}
			continue
		}
		if bytes.HasPrefix(f, awayPrefix) && r.hub != nil {
			r.hub.onAway(r, f)
		}
		if bytes.HasPrefix(f, rematchPrefix) {
			r.sawRematch(f)
		}
		for _, c := range members {
			c.deliver(f)
		}
	}
}

// sawRematch notes the rematch that frame f, a rematch frame, names.
func (r *room) sawRematch(f []byte) {
	var m struct {
		Data struct {
			NewGameID string `json:"newGameId"`
		} `json:"data"`
	}
	if json.Unmarshal(f, &m) == nil && m.Data.NewGameID != "" {
		r.next.Store(&m.Data.NewGameID)
	}
}

// rematch returns the id of the game's agreed rematch, or "".
func (r *room) rematch() string {
	if p := r.next.Load(); p != nil {
		return *p
	}
	return ""
}

// learn tells the store of game id as the line that ends a bus message
// carries it.
func (h *Hub) learn(id string, line []byte) {
	l, ok := h.store.(Learner)
	if !ok {
		return
	}
	rest := line[len(storedPrefix):]
	i := bytes.IndexByte(rest, ',')
	if i < 0 || !bytes.HasPrefix(rest[i:], storedData) || !bytes.HasSuffix(rest, []byte{'}'}) {
		h.log.Warn("bus message with a malformed game line", "game", id)
		return
	}
	version, err := strconv.ParseInt(string(rest[:i]), 10, 64)
	if err != nil {
		h.log.Warn("bus message with a malformed game version", "game", id, "err", err)
		return
	}
	doc := rest[i+len(storedData) : len(rest)-1]
	l.Learn(id, version, func() (store.Game, error) {
		g, err := store.DecodeGame(doc)
		if err == nil && (g.ID != id || g.Version != version) {
			err = fmt.Errorf("game %s version %d in the line of game %s version %d", g.ID, g.Version, id, version)
		}
		if err != nil {
			h.log.Warn("bus message with a game that does not decode", "game", id, "err", err)
		}
		return g, err
	})
}

// present reports whether a live socket of this replica plays team here.
func (r *room) present(team game.Mark) bool {
	r.mu.Lock()
	members := r.members
	r.mu.Unlock()
	for _, c := range members {
		if c.ctx.Err() == nil && c.seat.Load() == int32(team) {
			return true
		}
	}
	return false
}

// hasOther reports whether another live socket of c's player is here.
func (r *room) hasOther(c *conn) bool {
	r.mu.Lock()
	members := r.members
	r.mu.Unlock()
	for _, m := range members {
		if m != c && m.ctx.Err() == nil && m.seat.Load() == c.seat.Load() && m.seat.Load() != 0 {
			return true
		}
	}
	return false
}

func (r *room) add(c *conn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.members = append(r.members[:len(r.members):len(r.members)], c)
}

func (r *room) remove(c *conn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	next := make([]*conn, 0, len(r.members))
	for _, m := range r.members {
		if m != c {
			next = append(next, m)
		}
	}
	r.members = next
}

// enter takes a reference to game id's room, subscribing this replica to the
// game's channel if it is the first, and adds c to it unless c is nil.
// The subscription is in place when enter returns.
func (h *Hub) enter(ctx context.Context, id string, c *conn) (*room, error) {
	h.mu.Lock()
	r := h.rooms[id]
	first := r == nil
	if first {
		r = &room{id: id, hub: h, ready: make(chan struct{})}
		h.rooms[id] = r
	}
	r.refs++
	h.mu.Unlock()
	if first {
		r.stop, r.err = h.bus.Subscribe(ctx, channel(id), r.deliver)
		close(r.ready)
	} else {
		<-r.ready
	}
	if r.err != nil {
		h.exit(r, nil)
		return nil, fmt.Errorf("subscribe to game %s: %w", id, r.err)
	}
	if c != nil {
		r.add(c)
	}
	return r, nil
}

// exit drops a reference taken by enter, and c's membership unless c is nil.
// The last reference out ends the bus subscription.
func (h *Hub) exit(r *room, c *conn) {
	if c != nil {
		r.remove(c)
	}
	h.mu.Lock()
	r.refs--
	last := r.refs == 0
	if last {
		delete(h.rooms, r.id)
	}
	h.mu.Unlock()
	if last && r.stop != nil {
		r.stop()
	}
}
