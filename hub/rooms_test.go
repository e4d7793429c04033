package hub_test

import (
	"context"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/tictac/tictac/game"
	"github.com/tictac/tictac/hub"
	"github.com/tictac/tictac/internal/wstest"
	"github.com/tictac/tictac/store"
)

func leaveGame(id string) map[string]any {
	return map[string]any{"action": "leaveGame", "data": map[string]any{"gameId": id}}
}

// TestLeaveGameTheStoreLost: leaveGame on a game that the store no longer
// has (cancelled behind this socket's back, by another socket or replica)
// counts as left, so that the socket is never stuck in it: the reply is
// left, and the socket can start a new game.
func TestLeaveGameTheStoreLost(t *testing.T) {
	t.Parallel()
	s := newServer(t, hub.Options{})
	a := waiting(t, s.url)
	g, err := s.store.Game(t.Context(), a.GameID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.store.Leave(t.Context(), g.ID, g.PlayerX); err != nil {
		t.Fatal(err)
	}
	a.Send(leaveGame(a.GameID))
	var left struct{ GameID string }
	a.Expect("left").Decode(t, &left)
	if got, want := left.GameID, a.GameID; got != want {
		t.Fatalf("left %q, want %q", got, want)
	}
	a.Send(map[string]any{"action": "joinGame", "data": map[string]any{"mode": "bot", "level": "easy"}})
	var j struct{ GameID, Opponent string }
	a.Expect("joinGame").Decode(t, &j)
	if j.GameID == g.ID || j.Opponent != "bot" {
		t.Fatalf("joined %+v, want a new game against the computer", j)
	}
}

// TestSecondTabKeepsWaitingQuickGame: a waiting quick game belongs to the
// sockets of its player that wait in it. Another tab of the same session
// that opens, or that asks for a quick game too (and so waits in the same
// one) and then closes or leaves it, does not cancel it under the first
// tab: the first still waits, and the next player is paired with it.
func TestSecondTabKeepsWaitingQuickGame(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// tab is what the second tab, b, does after its hello.
		tab func(t *testing.T, s *server, a, b *wstest.Client)
	}{
		{"opens", func(t *testing.T, s *server, a, b *wstest.Client) {
			b.Ping() // its hello is handled
		}},
		{"waits too, then closes", func(t *testing.T, s *server, a, b *wstest.Client) {
			waitsToo(t, a, b)
			b.WS.Close(websocket.StatusGoingAway, "tab closed")
			waitFor(t, "the second tab's close to be handled", func() bool { return s.hub.Online() == 1 })
		}},
		{"waits too, then leaves", func(t *testing.T, s *server, a, b *wstest.Client) {
			waitsToo(t, a, b)
			b.Send(leaveGame(b.GameID))
			b.Expect("left")
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newServer(t, hub.Options{})
			a, tok := wstest.Hello(t, s.url, "")
			a.Join()
			a.ExpectStatus("waiting")
			b, _ := wstest.Hello(t, s.url, tok)
			tc.tab(t, s, a, b)
			next := wstest.Dial(t, s.url)
			next.Join()
			if got, want := next.GameID+"/"+next.Team, a.GameID+"/o"; got != want {
				t.Fatalf("next player joined %s, want %s: the first tab's waiting game is gone", got, want)
			}
			a.Expect("playerJoin")
			a.ExpectStatus("in-progress")
		})
	}
}

// waitsToo has b, a's second tab, ask for a quick game: it waits in a's.
func waitsToo(t *testing.T, a, b *wstest.Client) {
	t.Helper()
	b.Join()
	if got, want := b.GameID+"/"+b.Team, a.GameID+"/x"; got != want {
		t.Fatalf("second tab joined %s, want its first tab's waiting game %s", got, want)
	}
	b.ExpectStatus("waiting")
}

// TestSpectatorWhoMovesOn: a spectator who goes on to a game of its own, by
// any way there is, or to watch another game, is no longer counted as
// watching the game it left: its players see the count go back to 0.
func TestSpectatorWhoMovesOn(t *testing.T) {
	t.Parallel()
	joinBot := map[string]any{"action": "joinGame", "data": map[string]any{"mode": "bot", "level": "easy"}}
	// botGameOf starts a game against the computer on another tab of
	// session tok, and returns its id.
	botGameOf := func(t *testing.T, s *server, tok string) string {
		t.Helper()
		tab, _ := wstest.Hello(t, s.url, tok)
		tab.Send(joinBot)
		var j struct{ GameID string }
		tab.Expect("joinGame").Decode(t, &j)
		return j.GameID
	}
	tests := []struct {
		name string
		// own: the spectator's session plays X in the game it watches.
		own  bool
		move func(t *testing.T, s *server, w *wstest.Client, tok, watched string)
	}{
		{"quick game", false, func(t *testing.T, s *server, w *wstest.Client, tok, watched string) {
			w.Join()
		}},
		{"friend's game", false, func(t *testing.T, s *server, w *wstest.Client, tok, watched string) {
			w.Send(map[string]any{"action": "joinGame", "data": map[string]any{"mode": "friend"}})
			w.Expect("joinGame")
		}},
		{"game against the computer", false, func(t *testing.T, s *server, w *wstest.Client, tok, watched string) {
			w.Send(joinBot)
			w.Expect("joinGame")
		}},
		{"invite", false, func(t *testing.T, s *server, w *wstest.Client, tok, watched string) {
			host := wstest.Dial(t, s.url)
			host.Send(map[string]any{"action": "joinGame", "data": map[string]any{"mode": "friend"}})
			var j struct{ Invite string }
			host.Expect("joinGame").Decode(t, &j)
			w.Send(map[string]any{"action": "joinGame", "data": map[string]any{"invite": j.Invite}})
			w.Expect("joinGame")
		}},
		{"attach to its game", false, func(t *testing.T, s *server, w *wstest.Client, tok, watched string) {
			w.Send(map[string]any{"action": "joinGame", "data": map[string]any{"gameId": botGameOf(t, s, tok)}})
			w.Expect("joinGame")
		}},
		{"sync its game", false, func(t *testing.T, s *server, w *wstest.Client, tok, watched string) {
			w.Send(map[string]any{"action": "sync", "data": map[string]any{"gameId": botGameOf(t, s, tok)}})
			w.Expect("joinGame")
		}},
		{"attach to the game it watches", true, func(t *testing.T, s *server, w *wstest.Client, tok, watched string) {
			w.Send(map[string]any{"action": "joinGame", "data": map[string]any{"gameId": watched}})
			w.Expect("joinGame")
		}},
		{"watch another game", false, func(t *testing.T, s *server, w *wstest.Client, tok, watched string) {
			watchNew(t, s.url, w)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newServer(t, hub.Options{})
			w, tok := wstest.Hello(t, s.url, "")
			xtok := ""
			if tc.own {
				xtok = tok
			}
			x, _ := wstest.Hello(t, s.url, xtok)
			o := wstest.Dial(t, s.url)
			wstest.Pair(t, x, o)
			w.Send(map[string]any{"action": "spectate", "data": map[string]any{"gameId": x.GameID}})
			if st := expectState(t, w); st.Team != "spectator" || st.Spectators != 1 {
				t.Fatalf("spectator's state %+v", st)
			}
			for _, c := range []*wstest.Client{x, o, w} {
				c.Expect("spectators")
			}
			tc.move(t, s, w, tok, x.GameID)
			for _, c := range []*wstest.Client{x, o} {
				var sp struct{ Count int }
				c.Expect("spectators").Decode(t, &sp)
				if got, want := sp.Count, 0; got != want {
					t.Fatalf("spectators after the only one moved on: got %d, want %d", got, want)
				}
			}
			g, err := s.store.Game(t.Context(), x.GameID)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := g.Spectators, 0; got != want {
				t.Errorf("stored spectators: got %d, want %d", got, want)
			}
		})
	}
}

// TestWaitingGameTakenUpOnAnotherReplica: a page that reconnects to another
// replica before the first saw its old socket close takes its waiting quick
// game up again there (the store gives the player its own waiting game).
// When the first replica then cancels the game, for the socket that closed
// or for one that left it, the page is told, and queues again, rather than
// wait in a game that is gone.
func TestWaitingGameTakenUpOnAnotherReplica(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		leave func(a *wstest.Client)
	}{
		{"the first socket closes", func(a *wstest.Client) { a.WS.Close(websocket.StatusGoingAway, "") }},
		{"the first socket leaves it", func(a *wstest.Client) { a.Send(leaveGame(a.GameID)); a.Expect("left") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newServer(t, hub.Options{})
			r2 := newReplicaOf(t, s, hub.Options{})
			a, token := wstest.Hello(t, s.url, "")
			a.Join()
			a.ExpectStatus("waiting")
			b, _ := wstest.Hello(t, r2, token)
			b.Join()
			if b.GameID != a.GameID {
				t.Fatalf("the reconnected page joined %s, want its own waiting game %s", b.GameID, a.GameID)
			}
			tc.leave(a)
			var c struct{ GameID string }
			b.Await("gameCancelled", 3*time.Second).Decode(t, &c)
			if c.GameID != a.GameID {
				t.Fatalf("gameCancelled for %s, want %s", c.GameID, a.GameID)
			}
			// It queues again, and the next player is paired with it.
			b.Join()
			if b.GameID == a.GameID {
				t.Fatalf("queued again in the cancelled game %s", b.GameID)
			}
			b.ExpectStatus("waiting")
			o := wstest.Dial(t, s.url)
			o.Join()
			if o.GameID != b.GameID {
				t.Errorf("the next player joined %s, want the page's new game %s", o.GameID, b.GameID)
			}
		})
	}
}

// cancelledOnTakeUp is the embedded store on which the player's own waiting
// game, given back by Join, is cancelled the moment after (by the replica
// whose socket closed), before the socket that took it up hears the game.
type cancelledOnTakeUp struct{ *store.Bolt }

func (s cancelledOnTakeUp) Join(ctx context.Context, player, newID string) (store.Game, error) {
	g, err := s.Bolt.Join(ctx, player, newID)
	if err == nil && g.ID != newID && g.Status == game.Waiting {
		_, err = s.Bolt.Leave(ctx, g.ID, player)
	}
	return g, err
}

// TestWaitingGameCancelledAsItIsTakenUp: a page taking its waiting game up
// on another replica reads it again once it hears the game, and queues anew
// if the game went meanwhile (its gameCancelled was published before the
// socket listened).
func TestWaitingGameCancelledAsItIsTakenUp(t *testing.T) {
	t.Parallel()
	s := newServer(t, hub.Options{})
	r2 := newReplicaOn(t, s, cancelledOnTakeUp{s.store}, hub.Options{})
	a, token := wstest.Hello(t, s.url, "")
	a.Join()
	a.ExpectStatus("waiting")
	b, _ := wstest.Hello(t, r2, token)
	b.Join()
	if b.GameID == a.GameID {
		t.Fatalf("the page waits in %s, cancelled as it took it up", b.GameID)
	}
	b.ExpectStatus("waiting")
}
