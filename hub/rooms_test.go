package hub_test

import (
	"testing"

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
