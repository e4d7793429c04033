package main

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/tictac/tictac/internal/wstest"
)

// player is a client with a session, so that it can come back.
type player struct {
	*wstest.Client
	token string
}

func connect(t *testing.T, url, token string) *player {
	t.Helper()
	c, token := wstest.Hello(t, url, token)
	return &player{Client: c, token: token}
}

// resume reconnects p through url and checks it is back in its game with
// moves played so far.
func (p *player) resume(t *testing.T, url string, moves int) {
	t.Helper()
	gameID, team := p.GameID, p.Team
	n := connect(t, url, p.token)
	n.Expect("joinGame")
	var st struct {
		GameID, Team, Status string
		Move                 int
	}
	n.Expect("state").Decode(t, &st)
	if st.GameID != gameID || st.Team != team || st.Move != moves || st.Status != "in-progress" {
		t.Fatalf("resumed into %+v, want game %s as %s after %d moves", st, gameID, team, moves)
	}
	n.GameID, n.Team = gameID, team
	*p = *n
}

// settle reads whatever the failover still sends (playerAway, playerBack, a
// resync state, in any order and possibly twice) until the socket is quiet.
func (p *player) settle(t *testing.T) {
	t.Helper()
	for {
		select {
		case m, ok := <-p.Frames:
			if !ok {
				t.Fatal("socket closed while settling")
			}
			switch m.Action {
			case "playerAway", "playerBack", "state", "spectators":
			default:
				t.Fatalf("unexpected %s %s while settling", m.Action, m.Data)
			}
		case <-time.After(300 * time.Millisecond):
			return
		}
	}
}

// TestFailover: games survive a replica killed with SIGKILL, a rolling
// restart's drain (SIGTERM), and a Redis restart, with players reconnecting
// through NGINX and resuming with their sessions.
func TestFailover(t *testing.T) {
	c := newCluster(t, 3, 20*time.Second)
	front := "ws://" + c.nginx + "/live"
	// x on replica 0, o on replica 1: the game crosses replicas.
	x, o := connect(t, c.replicas[0].ws(), ""), connect(t, c.replicas[1].ws(), "")
	wstest.Pair(t, x.Client, o.Client)
	x.Move(o.Client, 1, 1)

	// Replica 0 dies: x comes back on replica 2.
	c.replicas[0].proc.Signal(syscall.SIGKILL)
	x.resume(t, c.replicas[2].ws(), 1)
	o.settle(t)
	o.Move(x.Client, 0, 0)

	// Replica 1 drains (SIGTERM): o is closed with 1012 and comes back
	// through NGINX, which skips the dead replica and retries past the
	// draining one's 503.
	c.replicas[1].proc.Signal(syscall.SIGTERM)
	if code := o.ExpectClose(); code != websocket.StatusServiceRestart {
		t.Errorf("drained socket closed with %v, want 1012", code)
	}
	o.resume(t, front, 2)
	x.settle(t)
	o.settle(t)
	x.Move(o.Client, 2, 2)

	// Redis restarts: the replicas reconnect, resubscribe and resend the
	// whole state; the game goes on.
	redisAddr := strings.TrimPrefix(c.redisURL, "redis://")
	c.redis = c.redis.Restart(t, redisAddr)
	// o's move goes through once the bus is back; its move id makes the
	// resends safe (a move that was stored is acknowledged, not replayed).
	fill := wstest.Fill(o.GameID, 0, 2)
	fill["data"].(map[string]any)["moveId"] = "o-after-redis"
	deadline := time.Now().Add(15 * time.Second)
	o.Send(fill)
acked:
	for {
		select {
		case m := <-o.Frames:
			switch m.Action {
			case "moveAck":
				break acked
			case "error":
				o.Send(fill)
			}
		case <-time.After(time.Second):
			if time.Now().After(deadline) {
				t.Fatal("no moveAck 15s after the Redis restart")
			}
			o.Send(fill)
		}
	}
	// Both end up with the move: as a grid, or in a resync's state.
	for _, p := range []*player{x, o} {
		for {
			m := p.Next()
			var g struct{ Move int }
			if m.Action == "updateGrid" || m.Action == "state" {
				m.Decode(t, &g)
				if g.Move == 4 {
					break
				}
			}
		}
	}
	x.settle(t)
	o.settle(t)
	x.Move(o.Client, 2, 0)
	// Every move is in the game as stored. (The stats counters too, once a
	// replica has counted what the killed one had not: TestChaos checks it.)
	g, err := c.store(t).Game(context.Background(), x.GameID)
	if err != nil || g.Moves != 5 {
		t.Fatalf("stored game has %d moves, %v; want the 5 played", g.Moves, err)
	}
}
