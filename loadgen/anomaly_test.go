package loadgen

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// edit rewrites one server frame, in place, on its way to client number conn,
// and reports whether to deliver it.
type edit func(conn int, action string, data map[string]any) (keep bool)

// startBroken serves a deliberately broken server: a proxy in front of a
// floor relay that rewrites the relay's frames with down before the players
// see them. It returns the proxy's ws:// URL.
func startBroken(tb testing.TB, down edit) string {
	tb.Helper()
	upstream := startRelay(tb)
	ctx, cancel := context.WithCancel(context.Background())
	var (
		n  atomic.Int64
		wg sync.WaitGroup
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		wg.Add(1)
		defer wg.Done()
		id := int(n.Add(1))
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		dctx, dcancel := context.WithTimeout(ctx, 5*time.Second)
		u, _, err := websocket.Dial(dctx, upstream, nil)
		dcancel()
		if err != nil {
			return
		}
		defer u.CloseNow()
		pctx, pcancel := context.WithCancel(ctx)
		defer pcancel()
		var pumps sync.WaitGroup
		pumps.Go(func() {
			defer pcancel()
			pump(pctx, c, u, nil)
		})
		pump(pctx, u, c, func(action string, data map[string]any) bool { return down(id, action, data) })
		pcancel()
		pumps.Wait()
	}))
	tb.Cleanup(func() {
		cancel()
		srv.Close()
		wg.Wait()
	})
	return wsURL(srv)
}

// pump copies frames from one socket to the other until either fails,
// passing each through e when it is set and dropping those e refuses.
func pump(ctx context.Context, from, to *websocket.Conn, e func(string, map[string]any) bool) {
	for {
		typ, b, err := from.Read(ctx)
		if err != nil {
			return
		}
		if e != nil {
			var f struct {
				Action string `json:"action"`
				Data   any    `json:"data,omitempty"`
			}
			if json.Unmarshal(b, &f) == nil {
				if m, ok := f.Data.(map[string]any); ok && !e(f.Action, m) {
					continue
				}
				b, _ = json.Marshal(f)
			}
		}
		if err := to.Write(ctx, typ, b); err != nil {
			return
		}
	}
}

func TestAnomalyDetection(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		down edit
		want AnomalyKind // "" for the honest proxy: no anomaly at all
	}{
		{"honest proxy", func(int, string, map[string]any) bool { return true }, ""},
		{"out-of-turn move accepted", func(_ int, action string, d map[string]any) bool {
			if action == "updateGrid" && d["move"] == 2.0 {
				d["last"].(map[string]any)["team"] = "x"
			}
			return true
		}, AnomalyOutOfTurn},
		{"both players get x", func(_ int, action string, d map[string]any) bool {
			if action == "joinGame" {
				d["team"] = "x"
			}
			return true
		}, AnomalySameTeam},
		{"three players in a game", func(_ int, action string, d map[string]any) bool {
			if action == "joinGame" {
				d["gameId"] = "shared"
			}
			return true
		}, AnomalyThreePlayers},
		{"move number skips", func(_ int, action string, d map[string]any) bool {
			if action == "updateGrid" && d["move"] == 3.0 {
				d["move"] = 4.0
			}
			return true
		}, AnomalyMoveSkipped},
		{"move number repeats", func(_ int, action string, d map[string]any) bool {
			if action == "updateGrid" && d["move"] == 3.0 {
				d["move"] = 2.0
			}
			return true
		}, AnomalyMoveBackwards},
		{"one side's board differs", func(conn int, action string, d map[string]any) bool {
			if action != "updateGrid" || conn%2 == 0 {
				return true
			}
			// Flip the mark just played: same squares filled, different board.
			last := d["last"].(map[string]any)
			col := d["grid"].([]any)[int(last["x"].(float64))].([]any)
			if col[int(last["y"].(float64))] == "x" {
				col[int(last["y"].(float64))] = "o"
			} else {
				col[int(last["y"].(float64))] = "x"
			}
			return true
		}, AnomalyBoardsDiffer},
		{"message about another game", func(_ int, action string, d map[string]any) bool {
			if action == "updateGrid" && d["move"] == 5.0 {
				d["gameId"] = "elsewhere"
			}
			return true
		}, AnomalyForeignGame},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			url := startBroken(t, tt.down)
			rep, err := Play(t.Context(), PlayConfig{
				URLs: []string{url}, Players: 20, Duration: 2 * time.Second, Seed: 3,
			})
			if err != nil {
				t.Fatalf("Play: %v", err)
			}
			t.Logf("games %d, moves %d, errors %d, timeouts %d, disconnects %d, anomalies %v",
				rep.Games, rep.Moves, rep.Errors, rep.Timeouts, rep.Disconnects, rep.AnomalyKinds)
			if tt.want == "" {
				if err := rep.Err(); err != nil {
					t.Fatalf("honest proxy: %v", err)
				}
				if rep.Games == 0 {
					t.Fatalf("honest proxy: no games finished")
				}
				return
			}
			if got := rep.AnomalyKinds[tt.want]; got == 0 {
				t.Errorf("anomalies %v (%d in all): want some %s", rep.AnomalyKinds, rep.AnomalyCount, tt.want)
			}
			if rep.Err() == nil {
				t.Errorf("Report.Err() = nil, want ErrAnomalies")
			}
		})
	}
}

// TestLostMoveTimesOut checks that a move the server confirms to its mover
// but never delivers to the opponent counts as a timeout rather than
// stalling the opponent silently.
func TestLostMoveTimesOut(t *testing.T) {
	t.Parallel()
	var (
		mu    sync.Mutex
		teams = map[int]any{}
	)
	url := startBroken(t, func(conn int, action string, d map[string]any) bool {
		mu.Lock()
		defer mu.Unlock()
		if action == "joinGame" {
			teams[conn] = d["team"]
		}
		// Move 2 is O's: X never sees it.
		return !(action == "updateGrid" && d["move"] == 2.0 && teams[conn] == "x")
	})
	rep, err := Play(t.Context(), PlayConfig{
		URLs: []string{url}, Players: 10, Duration: 1500 * time.Millisecond, Timeout: 300 * time.Millisecond, Seed: 4,
	})
	if err != nil {
		t.Fatalf("Play: %v", err)
	}
	if rep.Timeouts == 0 {
		t.Errorf("timeouts %d, want some: X waits for a move it never gets", rep.Timeouts)
	}
	if rep.Games != 0 {
		t.Errorf("games %d, want none to finish", rep.Games)
	}
	if err := rep.Err(); err != nil {
		t.Errorf("a lost message is not an anomaly: %v", err)
	}
}
