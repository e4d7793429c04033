package store

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/tictac/tictac/game"
)

// holdCommitter creates a bot game and runs, on the committer, an update of
// it that blocks until release is closed: writes submitted meanwhile queue.
func holdCommitter(t *testing.T, s *Bolt) (release chan struct{}, held chan error) {
	t.Helper()
	g := Game{ID: "hold", PlayerX: "h", PlayerO: BotPlayer, Game: game.New(), Mode: ModeBot, Level: "easy", Created: time.Now(), Started: time.Now()}
	if err := g.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(t.Context(), g); err != nil {
		t.Fatal(err)
	}
	entered, release, held := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		_, err := s.Update(context.Background(), "hold", func(*Game) error {
			close(entered)
			<-release
			return nil
		})
		held <- err
	}()
	<-entered
	return release, held
}

func botGame(id string) Game {
	g := Game{ID: id, PlayerX: "p-" + id, PlayerO: BotPlayer, Game: game.New(), Mode: ModeBot, Level: "easy", Created: time.Now(), Started: time.Now()}
	if err := g.Start(); err != nil {
		panic(err) // a new game always starts
	}
	return g
}

// TestBoltCloseCommitsQueued: writes still queued when Close starts are
// committed and acknowledged, not refused. The committer picks the queue or
// the close at random once released, so the case is run several times.
func TestBoltCloseCommitsQueued(t *testing.T) {
	t.Parallel()
	for round := range 8 {
		path := filepath.Join(t.TempDir(), "t.db")
		s, err := OpenBolt(path, BoltOptions{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		release, held := holdCommitter(t, s)
		const n = 32
		errs := make(chan error, n)
		for i := range n {
			go func() {
				_, err := s.Create(context.Background(), botGame("q"+string(rune('a'+i))))
				errs <- err
			}()
		}
		for deadline := time.Now().Add(10 * time.Second); len(s.ops) < n; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: %d writes queued, want %d", round, len(s.ops), n)
			}
		}
		closed := make(chan error, 1)
		go func() { closed <- s.Close() }()
		<-s.quit
		close(release)
		if err := <-held; err != nil {
			t.Fatal(err)
		}
		for range n {
			select {
			case err := <-errs:
				if err != nil {
					t.Errorf("round %d: a write queued before Close: %v, want it committed", round, err)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("round %d: a write queued before Close was never answered", round)
			}
		}
		if err := <-closed; err != nil {
			t.Fatal(err)
		}
		s, err = OpenBolt(path, BoltOptions{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		stored := 0
		if err := s.Games(context.Background(), func(Game) bool { stored++; return true }); err != nil {
			t.Fatal(err)
		}
		s.Close()
		if stored != n+1 {
			t.Fatalf("round %d: %d games stored, want %d", round, stored, n+1)
		}
	}
}

// TestBoltQueuedCallerGoes: a caller whose context ends while its write is
// queued gets the context's error at once, as it did while the queue had no
// room, and the write is never made.
func TestBoltQueuedCallerGoes(t *testing.T) {
	t.Parallel()
	s, err := OpenBolt(filepath.Join(t.TempDir(), "t.db"), BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	release, held := holdCommitter(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	returned := make(chan error, 1)
	go func() {
		_, err := s.Create(ctx, botGame("gone"))
		returned <- err
	}()
	select {
	case err := <-returned:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Create whose context ended in the queue = %v, want DeadlineExceeded", err)
		}
	case <-time.After(10 * time.Second):
		close(release)
		t.Fatal("Create did not return while the committer was held")
	}
	close(release)
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(context.Background(), botGame("after")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Game(context.Background(), "gone"); !errors.Is(err, ErrNotFound) {
		t.Errorf("the abandoned write: Game = %v, want ErrNotFound", err)
	}
}

// TestBoltTakenWriteAnswerStands: once the committer has taken a write, its
// caller waits for the answer even if its context ends meanwhile, so that
// the answer it gets says whether the write was made.
func TestBoltTakenWriteAnswerStands(t *testing.T) {
	t.Parallel()
	s, err := OpenBolt(filepath.Join(t.TempDir(), "t.db"), BoltOptions{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Create(t.Context(), botGame("g")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	_, err = s.Update(ctx, "g", func(g *Game) error {
		cancel() // the caller gives up while the committer runs its write
		time.Sleep(10 * time.Millisecond)
		g.Level = "changed"
		return nil
	})
	g, gerr := s.Game(t.Context(), "g")
	if gerr != nil {
		t.Fatal(gerr)
	}
	if made := g.Level == "changed"; made != (err == nil) {
		t.Errorf("Update = %v, but the write was made: %v", err, made)
	}
}
