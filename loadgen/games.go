package loadgen

import (
	"hash/maphash"
	"sync"
	"sync/atomic"

	"github.com/tictac/tictac/game"
)

// gameRec is what the two players of one game share, found by gameId: the
// send time of each move, who claimed a seat, and each side's final board.
type gameRec struct {
	id string
	// sent holds each move's send time in nanoseconds since the run started,
	// indexed by move number, so the opponent can time its receipt.
	sent [game.Size*game.Size + 1]atomic.Int64

	// claims and refs are guarded by the shard lock.
	claims []claim
	refs   int
	warned bool // three-player anomaly already reported

	mu        sync.Mutex
	final     game.Board
	finalMove int
	haveFinal bool
	ended     bool // counted as finished or abandoned
}

type claim struct {
	player int
	team   game.Mark
}

// registry maps gameIds to gameRecs, sharded so that two players joining
// different games rarely wait on each other. A record lives while a player
// holds it.
type registry struct {
	seed   maphash.Seed
	shards [64]struct {
		mu sync.Mutex
		m  map[string]*gameRec
	}
}

func newRegistry() *registry {
	g := &registry{seed: maphash.MakeSeed()}
	for i := range g.shards {
		g.shards[i].m = make(map[string]*gameRec)
	}
	return g
}

func (g *registry) shard(id string) int {
	return int(maphash.String(g.seed, id) % uint64(len(g.shards)))
}

// claim records that player sits as team in game id and returns the game's
// record with the anomalies the claim reveals.
func (g *registry) claim(id string, player int, team game.Mark) (*gameRec, []Anomaly) {
	s := &g.shards[g.shard(id)]
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := s.m[id]
	if rec == nil {
		rec = &gameRec{id: id}
		s.m[id] = rec
	}
	rec.refs++
	var found []Anomaly
	for _, c := range rec.claims {
		if c.team == team && c.player != player {
			found = append(found, Anomaly{Kind: AnomalySameTeam, GameID: id, Player: player,
				Detail: "players " + itoa(c.player) + " and " + itoa(player) + " both got team " + team.String()})
		}
	}
	rec.claims = append(rec.claims, claim{player, team})
	if len(rec.claims) > 2 && !rec.warned {
		rec.warned = true
		found = append(found, Anomaly{Kind: AnomalyThreePlayers, GameID: id, Player: player,
			Detail: itoa(len(rec.claims)) + " players joined one game"})
	}
	return rec, found
}

// release drops player's hold on rec, forgetting the game when nobody holds it.
func (g *registry) release(rec *gameRec) {
	s := &g.shards[g.shard(rec.id)]
	s.mu.Lock()
	defer s.mu.Unlock()
	rec.refs--
	if rec.refs <= 0 && s.m[rec.id] == rec {
		delete(s.m, rec.id)
	}
}

// finish stores one side's final board. It reports whether this was the
// first side to finish (the one that counts the game) and whether the two
// sides' boards disagree.
func (rec *gameRec) finish(b game.Board, move int) (first, differ bool) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if !rec.haveFinal {
		rec.final, rec.finalMove, rec.haveFinal = b, move, true
	} else if rec.final != b || rec.finalMove != move {
		differ = true
	}
	first = !rec.ended
	rec.ended = true
	return first, differ
}

// end marks the game over without a board to compare (abandoned) and reports
// whether this side is the first to see it end.
func (rec *gameRec) end() (first bool) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	first = !rec.ended
	rec.ended = true
	return first
}
