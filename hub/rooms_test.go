package hub_test

import (
	"testing"

	"github.com/coder/websocket"

	"github.com/tictac/tictac/hub"
	"github.com/tictac/tictac/internal/wstest"
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
	a := wstest.Dial(t, s.url)
	a.Join()
	a.ExpectStatus("waiting")
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
