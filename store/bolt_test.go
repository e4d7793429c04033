package store_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tictac/tictac/game"
	"github.com/tictac/tictac/store"
	"github.com/tictac/tictac/store/storetest"
)

func openBolt(tb testing.TB, path string, opt store.BoltOptions) *store.Bolt {
	tb.Helper()
	s, err := store.OpenBolt(path, opt)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func TestBoltConformance(t *testing.T) {
	for _, sync := range []bool{true, false} {
		name := "hard"
		if !sync {
			name = "soft"
		}
		t.Run(name, func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) storetest.Store {
				s := openBolt(t, filepath.Join(t.TempDir(), "t.db"), store.BoltOptions{NoSync: !sync})
				t.Cleanup(func() { s.Close() })
				return s
			})
		})
	}
}

// TestBoltRestart reopens the file and finds games and stats as they were,
// except the waiting game, which belonged to a socket of the old process.
func TestBoltRestart(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "t.db")
	ctx := context.Background()
	s := openBolt(t, path, store.BoltOptions{})
	if _, err := s.Join(ctx, "x", "g1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Join(ctx, "o", "unused"); err != nil {
		t.Fatal(err)
	}
	var g store.Game
	for i, m := range [][2]int{{0, 0}, {0, 1}, {1, 0}, {1, 1}, {2, 0}} {
		p := []string{"x", "o"}[i%2]
		var err error
		if g, err = s.Move(ctx, "g1", p, m[0], m[1], ""); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Join(ctx, "w", "waiting"); err != nil {
		t.Fatal(err)
	}
	before, _ := s.Stats(ctx)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Move(ctx, "g1", "o", 2, 2, ""); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Move on a closed store = %v, want ErrClosed", err)
	}
	// As RethinkDB answers.
	if _, err := s.Stats(ctx); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Stats on a closed store = %v, want ErrClosed", err)
	}
	if err := s.SetOnline(ctx, 1); !errors.Is(err, store.ErrClosed) {
		t.Errorf("SetOnline on a closed store = %v, want ErrClosed", err)
	}

	s = openBolt(t, path, store.BoltOptions{})
	defer s.Close()
	after, _ := s.Stats(ctx)
	if after != before || after[store.WonByX] != 1 || after[store.TotalMoves] != 5 {
		t.Errorf("stats after restart %v, before %v", after, before)
	}
	loaded, err := s.Game(ctx, "g1")
	if err != nil {
		t.Fatal(err)
	}
	if loaded.Game != g.Game || len(loaded.History) != 5 || !loaded.History[4].At.Equal(g.History[4].At) {
		t.Errorf("game after restart %+v, want %+v", loaded, g)
	}
	if _, err := s.Game(ctx, "waiting"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("waiting game survived the restart: %v", err)
	}
	if n, err := s.Join(ctx, "new", "fresh"); err != nil || n.ID != "fresh" || n.Status != game.Waiting {
		t.Errorf("Join after restart = %+v, %v; want a new waiting game", n, err)
	}
}

// TestBoltRestartKeepsFriendGames: a friend's game waiting for the friend
// outlives a restart while its player has time to come back to it, and its
// link still works; once that time is up it is gone. A quick game waiting
// does not outlive one (TestBoltRestart).
func TestBoltRestartKeepsFriendGames(t *testing.T) {
	t.Parallel()
	now := time.UnixMilli(1_800_000_000_000)
	clock := func() time.Time { return now }
	const grace = 30 * time.Second
	for _, tc := range []struct {
		name  string
		away  time.Duration // the player's deadline from now when the process stopped; 0: not marked (a crash)
		grace time.Duration // BoltOptions.Grace of the new process
		kept  bool
		due   time.Time // the player's deadline after the restart
	}{
		{"stopped cleanly, within the deadline", 20 * time.Second, grace, true, now.Add(20 * time.Second)},
		{"stopped cleanly, past the deadline", -time.Second, grace, false, time.Time{}},
		{"crashed", 0, grace, true, now.Add(grace)},
		{"crashed, no grace", 0, 0, false, time.Time{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			path := filepath.Join(t.TempDir(), "t.db")
			s := openBolt(t, path, store.BoltOptions{Now: clock, Grace: grace})
			code := store.NewInvite()
			g, err := s.Create(ctx, store.Game{ID: "friend", PlayerX: "host", Game: game.New(), Mode: store.ModeFriend, Invite: code, Created: now})
			if err != nil {
				t.Fatal(err)
			}
			other, err := s.Create(ctx, store.Game{ID: "other", PlayerX: "other", Game: game.New(), Mode: store.ModeFriend, Invite: store.NewInvite(), Created: now})
			if err != nil {
				t.Fatal(err)
			}
			if tc.away != 0 {
				deadline := now.Add(tc.away).UnixMilli()
				if g, err = s.Update(ctx, g.ID, func(g *store.Game) error { return g.SetAway("host", deadline) }); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}

			s = openBolt(t, path, store.BoltOptions{Now: clock, Grace: tc.grace})
			defer s.Close()
			active, err := s.Active(ctx, "host")
			if !tc.kept {
				if !errors.Is(err, store.ErrNotFound) {
					t.Errorf("Active(host) = %v, %v; want ErrNotFound", active.ID, err)
				}
				if _, err := s.JoinInvite(ctx, "friend", code); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("JoinInvite of a game past its deadline = %v, want ErrNotFound", err)
				}
				if _, err := s.Game(ctx, g.ID); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("game past its deadline survived the restart: %v", err)
				}
				return
			}
			if err != nil || active.ID != g.ID || active.Invite != code {
				t.Fatalf("Active(host) = %+v, %v; want the friend's game waiting with its invite", active, err)
			}
			if got := time.UnixMilli(active.Away[0]); !got.Equal(tc.due) {
				t.Errorf("host's deadline after the restart %v, want %v", got, tc.due)
			}
			joined, err := s.JoinInvite(ctx, "friend", code)
			if err != nil || joined.Status != game.InProgress || joined.PlayerO != "friend" {
				t.Errorf("JoinInvite after the restart = %+v, %v; want the game in progress", joined, err)
			}
			// The other invite, whose player was never marked, is kept the same way.
			if got, err := s.Game(ctx, other.ID); err != nil || got.Invite != other.Invite {
				t.Errorf("other friend's game after the restart = %+v, %v", got, err)
			}
		})
	}
}

// TestBoltRestartGivesPlayersTime: after a restart every human player of a
// game in progress has a deadline to come back by (the hub arms the
// forfeits): the one it was given if that is still ahead, else the grace
// period from the open. A crash marked nobody away.
func TestBoltRestartGivesPlayersTime(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	now := time.UnixMilli(1_800_000_000_000)
	clock := func() time.Time { return now }
	const grace = 30 * time.Second
	path := filepath.Join(t.TempDir(), "t.db")
	s := openBolt(t, path, store.BoltOptions{Now: clock, Grace: grace})
	create := func(x, o string) string {
		g := store.Game{ID: store.NewID(), PlayerX: x, PlayerO: o, Game: game.New(), Created: now, Started: now}
		if o == store.BotPlayer {
			g.Mode, g.Level = store.ModeBot, "easy"
		}
		if err := g.Start(); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Create(ctx, g); err != nil {
			t.Fatal(err)
		}
		return g.ID
	}
	ahead, past := now.Add(10*time.Second).UnixMilli(), now.Add(-time.Second).UnixMilli()
	marks := [][2]int64{{0, 0}, {ahead, 0}, {past, ahead}}
	var ids []string
	for _, m := range marks {
		id := create(store.NewID(), store.NewID())
		if _, err := s.Update(ctx, id, func(g *store.Game) error { g.Away = m; return nil }); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	botGame := create(store.NewID(), store.BotPlayer)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openBolt(t, path, store.BoltOptions{Now: clock, Grace: grace})
	defer s.Close()
	full := now.Add(grace).UnixMilli()
	want := map[string][2]int64{ids[0]: {full, full}, ids[1]: {ahead, full}, ids[2]: {full, ahead}, botGame: {full, 0}}
	for id, w := range want {
		g, err := s.Game(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if g.Status != game.InProgress || g.Away != w {
			t.Errorf("game %s after the restart: %s, away %v; want in progress, away %v", id, g.Status, g.Away, w)
		}
	}
}

// TestBoltSecondOpener: the file is locked by its first opener.
func TestBoltSecondOpener(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "t.db")
	s := openBolt(t, path, store.BoltOptions{})
	defer s.Close()
	start := time.Now()
	if _, err := store.OpenBolt(path, store.BoltOptions{}); err == nil {
		t.Fatal("second open of a locked file succeeded")
	}
	if time.Since(start) > 10*time.Second {
		t.Error("second open waited too long")
	}
}

// BenchmarkMove measures the move path through the store: games played one
// move at a time (lone moves, one fsync pair each), and many games at once
// (group commit: concurrent moves share a transaction and its fsyncs).
func BenchmarkMove(b *testing.B) {
	for _, mode := range []struct {
		name   string
		noSync bool
	}{{"fsync", false}, {"soft", true}} {
		for _, par := range []int{1, 64} {
			b.Run(mode.name+"/games="+strconv.Itoa(par), func(b *testing.B) {
				s := openBolt(b, filepath.Join(b.TempDir(), "t.db"), store.BoltOptions{NoSync: mode.noSync})
				defer s.Close()
				perWorker := b.N/par + 1
				games := startGames(b, s, par*((perWorker+8)/9))
				b.ReportAllocs()
				b.ResetTimer()
				var wg sync.WaitGroup
				for w := range par {
					wg.Add(1)
					go func() {
						defer wg.Done()
						playMoves(b, s, games[w*len(games)/par:(w+1)*len(games)/par], perWorker)
					}()
				}
				wg.Wait()
			})
		}
	}
}

// startGames pairs 2n fresh players, 64 joins at a time, and returns the games.
func startGames(b *testing.B, s *store.Bolt, n int) []store.Game {
	ctx := context.Background()
	ids := make([]string, 2*n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for i := range ids {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			g, err := s.Join(ctx, store.NewID(), store.NewID())
			if err != nil {
				b.Error(err)
			}
			ids[i] = g.ID
		}()
	}
	wg.Wait()
	seen := map[string]bool{}
	var games []store.Game
	for _, id := range ids {
		if seen[id] {
			continue
		}
		seen[id] = true
		if g, err := s.Game(ctx, id); err == nil && g.Status == game.InProgress {
			games = append(games, g)
		}
	}
	return games
}

// playMoves plays n moves over games, each game to its end in turn.
func playMoves(b *testing.B, s *store.Bolt, games []store.Game, n int) {
	squares := [][2]int{{0, 0}, {1, 0}, {2, 0}, {1, 1}, {0, 1}, {2, 1}, {1, 2}, {0, 2}, {2, 2}}
	ctx := context.Background()
	for done := 0; done < n; {
		g := games[0]
		games = games[1:]
		for i := 0; i < len(squares) && done < n; i++ {
			p := g.PlayerX
			if i%2 == 1 {
				p = g.PlayerO
			}
			if _, err := s.Move(ctx, g.ID, p, squares[i][0], squares[i][1], ""); err != nil {
				b.Fatal(err)
			}
			done++
		}
	}
}

// BenchmarkMovePaced plays b.N moves at human pace: 500 games, each moving
// about once a second (think 1 s ±50%), so about 500 moves a second as with
// 1,000 players, and reports the latency of Move: what an opponent waits for
// in the store. ns/op is the pacing, not a cost; -benchtime 5000x is 10 s.
func BenchmarkMovePaced(b *testing.B) {
	for _, mode := range []struct {
		name   string
		noSync bool
	}{{"fsync", false}, {"soft", true}} {
		b.Run(mode.name, func(b *testing.B) {
			s := openBolt(b, filepath.Join(b.TempDir(), "t.db"), store.BoltOptions{NoSync: mode.noSync})
			defer s.Close()
			b.ResetTimer()
			lat := playPaced(b, s, 500, 500*time.Millisecond, time.Second, 1)
			reportLatency(b, lat)
		})
	}
}

// TestBoltMetrics: the store reports each batch, each fdatasync of the log
// (none without sync) and each checkpoint on the registry it is given.
func TestBoltMetrics(t *testing.T) {
	t.Parallel()
	for _, noSync := range []bool{false, true} {
		reg := prometheus.NewRegistry()
		s := openBolt(t, filepath.Join(t.TempDir(), "t.db"), store.BoltOptions{NoSync: noSync, Registerer: reg})
		ctx := context.Background()
		if _, err := s.Join(ctx, "x", "g1"); err != nil {
			t.Fatal(err)
		}
		g, err := s.Join(ctx, "o", "unused")
		if err != nil {
			t.Fatal(err)
		}
		for i, m := range [][2]int{{0, 0}, {0, 1}, {1, 0}} {
			if _, err := s.Move(ctx, g.ID, []string{"x", "o"}[i%2], m[0], m[1], ""); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		counts := map[string]uint64{}
		sums := map[string]float64{}
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			h := mf.GetMetric()[0].GetHistogram()
			counts[mf.GetName()], sums[mf.GetName()] = h.GetSampleCount(), h.GetSampleSum()
		}
		// Five writes, each its own batch here, and at least the checkpoint
		// of Close.
		if n, ops := counts["tictac_store_batch_ops"], sums["tictac_store_batch_ops"]; n < 5 || ops < 5 {
			t.Errorf("noSync %v: %d batches of %v ops, want at least 5 of 5", noSync, n, ops)
		}
		want := counts["tictac_store_batch_ops"] // every batch here writes
		if noSync {
			want = 0
		}
		if got := counts["tictac_store_log_sync_seconds"]; got != want {
			t.Errorf("noSync %v: %d log syncs, want %d", noSync, got, want)
		}
		if counts["tictac_store_checkpoint_seconds"] < 1 {
			t.Errorf("noSync %v: no checkpoint counted", noSync)
		}
	}
}

// playPaced plays b.N moves over games games at once, each new game moving
// every wait to wait+spread (uniformly), and returns the latency of each Move,
// sorted. seed makes the waits.
func playPaced(b *testing.B, s *store.Bolt, games int, wait, spread time.Duration, seed uint64) []time.Duration {
	ctx := context.Background()
	var (
		mu    sync.Mutex
		lat   []time.Duration
		moves atomic.Int64
		wg    sync.WaitGroup
	)
	squares := [][2]int{{0, 0}, {1, 0}, {2, 0}, {1, 1}, {0, 1}, {2, 1}, {1, 2}, {0, 2}, {2, 2}}
	for w := range games {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), seed))
			for moves.Load() < int64(b.N) {
				n := store.Game{ID: store.NewID(), PlayerX: store.NewID(), PlayerO: store.NewID(), Game: game.New(), Created: time.Now(), Started: time.Now()}
				_ = n.Start()
				g, err := s.Create(ctx, n)
				if err != nil {
					b.Error(err)
					return
				}
				for i := 0; i < len(squares) && moves.Add(1) <= int64(b.N); i++ {
					time.Sleep(wait + time.Duration(rng.Int64N(int64(spread))))
					p := g.PlayerX
					if i%2 == 1 {
						p = g.PlayerO
					}
					start := time.Now()
					if _, err := s.Move(ctx, g.ID, p, squares[i][0], squares[i][1], ""); err != nil {
						b.Error(err)
						return
					}
					d := time.Since(start)
					mu.Lock()
					lat = append(lat, d)
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	slices.Sort(lat)
	return lat
}

// reportLatency reports the quantiles of sorted latencies, in µs.
func reportLatency(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) }
	b.ReportMetric(q(0.5), "p50-µs")
	b.ReportMetric(q(0.99), "p99-µs")
	b.ReportMetric(q(0.999), "p99.9-µs")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds()), "max-µs")
}

// TestBoltCloseUnderWrites closes the store while writers keep submitting:
// every call returns, and a write is stored exactly when it was
// acknowledged. (The narrow case of a write queued after the committer's
// last look, which gets ErrClosed, is seldom hit here.)
func TestBoltCloseUnderWrites(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "t.db")
	ctx := context.Background()
	s := openBolt(t, path, store.BoltOptions{})
	var (
		mu      sync.Mutex
		acked   = map[string]bool{}
		refused []string
		wg      sync.WaitGroup
		started = make(chan struct{}, 64)
	)
	for w := range 64 {
		wg.Go(func() {
			signaled := false
			defer func() {
				if !signaled {
					started <- struct{}{}
				}
			}()
			for i := 0; ; i++ {
				p := "p" + strconv.Itoa(w) + "-" + strconv.Itoa(i)
				g := store.Game{ID: "g-" + p, PlayerX: p, PlayerO: store.BotPlayer, Game: game.New(), Mode: store.ModeBot, Level: "easy", Created: time.Now(), Started: time.Now()}
				if err := g.Start(); err != nil {
					t.Error(err)
					return
				}
				_, err := s.Create(ctx, g)
				if i == 10 {
					started <- struct{}{}
					signaled = true
				}
				mu.Lock()
				switch {
				case err == nil:
					acked[g.ID] = true
				case errors.Is(err, store.ErrClosed):
					refused = append(refused, g.ID)
				default:
					t.Errorf("Create %s: %v", g.ID, err)
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
		})
	}
	for range 64 {
		<-started
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(20 * time.Second):
		t.Fatal("writers still waiting 20s after Close")
	}

	s = openBolt(t, path, store.BoltOptions{})
	defer s.Close()
	stored := 0
	if err := s.Games(ctx, func(g store.Game) bool {
		stored++
		if !acked[g.ID] {
			t.Errorf("game %s stored but its write was not acknowledged", g.ID)
		}
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if stored != len(acked) {
		t.Errorf("%d games stored, %d acknowledged", stored, len(acked))
	}
	t.Logf("%d acknowledged, %d refused as the store closed", len(acked), len(refused))
}
