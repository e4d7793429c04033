package store

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tictac/tictac/game"
)

// The tests of checkpoints in the background: a test hook holds the commit
// of a checkpoint so that the store can be watched while it is in flight.

// holdCommits makes the next checkpoint's commit wait: entered is closed
// when the commit is about to start, and it starts once release is closed.
// Later checkpoints commit at once.
func holdCommits(tb testing.TB, s *Bolt) (entered, release chan struct{}) {
	tb.Helper()
	entered, release = make(chan struct{}), make(chan struct{})
	var calls atomic.Int32
	hook := func() {
		if calls.Add(1) == 1 {
			close(entered)
			<-release
		}
	}
	err := s.write(context.Background(), func(b *batch, _ *Stats) error {
		b.s.commitHook = hook
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return entered, release
}

// startGame pairs x and o in a game with id id, in progress.
func startGame(tb testing.TB, s *Bolt, id, x, o string) {
	tb.Helper()
	ctx := context.Background()
	if _, err := s.Join(ctx, x, id); err != nil {
		tb.Fatal(err)
	}
	if g, err := s.Join(ctx, o, id+"-unused"); err != nil || g.ID != id || g.Status != game.InProgress {
		tb.Fatalf("Join = %+v, %v; want game %s in progress", g, err, id)
	}
}

// deferredOps returns how many ops wait for the checkpoint in flight.
func deferredOps(tb testing.TB, s *Bolt) int {
	tb.Helper()
	var n int
	if err := s.write(context.Background(), func(b *batch, _ *Stats) error { n = len(b.s.deferred); return nil }); err != nil {
		tb.Fatal(err)
	}
	return n
}

var draw = [][2]int{{0, 0}, {1, 0}, {2, 0}, {1, 1}, {0, 1}, {2, 1}, {1, 2}, {0, 2}, {2, 2}}

// TestBoltMovesDuringCheckpoint: while a checkpoint's commit is in flight,
// moves on a game in progress are acknowledged and read back; a join, which
// needs the file, waits for the commit and then completes, and the time it
// waited is counted.
func TestBoltMovesDuringCheckpoint(t *testing.T) {
	t.Parallel()
	for _, noSync := range []bool{false, true} {
		t.Run(fmt.Sprintf("noSync=%v", noSync), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			reg := prometheus.NewRegistry()
			s, err := OpenBolt(filepath.Join(t.TempDir(), "t.db"), BoltOptions{NoSync: noSync, Registerer: reg})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			startGame(t, s, "g", "x", "o")
			entered, release := holdCommits(t, s)
			ckpt := make(chan error, 1)
			go func() { ckpt <- s.Checkpoint(ctx) }()
			<-entered

			// With a timeout: if the committer were stuck in the commit, the
			// move would never be taken and Move returns the context's error.
			tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			for i, m := range draw[:4] {
				if _, err := s.Move(tctx, "g", []string{"x", "o"}[i%2], m[0], m[1], ""); err != nil {
					t.Fatalf("move %d during the commit: %v", i, err)
				}
			}
			if g, err := s.Game(tctx, "g"); err != nil || g.Moves != 4 {
				t.Fatalf("game during the commit: %d moves, %v; want 4", g.Moves, err)
			}
			joined := make(chan error, 1)
			go func() { _, err := s.Join(ctx, "late", "g2"); joined <- err }()
			for deferredOps(t, s) == 0 {
				time.Sleep(time.Millisecond)
			}
			select {
			case err := <-joined:
				t.Fatalf("join during the commit returned %v before the commit", err)
			case err := <-ckpt:
				t.Fatalf("Checkpoint returned %v before its commit", err)
			default:
			}
			// A move after the join was put off goes ahead of it.
			if _, err := s.Move(tctx, "g", "x", draw[4][0], draw[4][1], ""); err != nil {
				t.Fatalf("move during the commit: %v", err)
			}
			close(release)
			if err := <-joined; err != nil {
				t.Fatalf("join after the commit: %v", err)
			}
			if err := <-ckpt; err != nil {
				t.Fatal(err)
			}
			if g, err := s.Game(ctx, "g2"); err != nil || g.Status != game.Waiting {
				t.Fatalf("game of the join = %+v, %v", g, err)
			}
			if g, err := s.Game(ctx, "g"); err != nil || g.Moves != 5 {
				t.Fatalf("game after the commit: %d moves, %v; want 5", g.Moves, err)
			}
			mfs, err := reg.Gather()
			if err != nil {
				t.Fatal(err)
			}
			var waited uint64
			for _, mf := range mfs {
				if mf.GetName() == "tictac_store_checkpoint_wait_seconds" {
					waited = mf.GetMetric()[0].GetHistogram().GetSampleCount()
				}
			}
			if waited != 1 {
				t.Errorf("%d ops counted as waiting for the checkpoint, want 1", waited)
			}
		})
	}
}

// TestBoltCrashDuringCheckpoint: crash images taken while a checkpoint's
// commit is in flight (the records it commits in one log file, the moves
// made meanwhile in the other) and after it landed reopen with every
// acknowledged write.
func TestBoltCrashDuringCheckpoint(t *testing.T) {
	t.Parallel()
	for _, noSync := range []bool{false, true} {
		t.Run(fmt.Sprintf("noSync=%v", noSync), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			dir := t.TempDir()
			s := openTestBolt(t, filepath.Join(dir, "t.db"), noSync)
			playAll(t, s, "a")
			startGame(t, s, "g1", "x1", "o1")
			startGame(t, s, "g2", "x2", "o2")
			if _, err := s.Move(ctx, "g1", "x1", 0, 0, ""); err != nil {
				t.Fatal(err)
			}
			entered, release := holdCommits(t, s)
			ckpt := make(chan error, 1)
			go func() { ckpt <- s.Checkpoint(ctx) }()
			<-entered
			for i, m := range draw[1:5] {
				if _, err := s.Move(ctx, "g1", []string{"o1", "x1"}[i%2], m[0], m[1], ""); err != nil {
					t.Fatal(err)
				}
				if _, err := s.Move(ctx, "g2", []string{"x2", "o2"}[i%2], m[0], m[1], ""); err != nil {
					t.Fatal(err)
				}
			}
			during := crashCopy(t, s, filepath.Join(dir, "during"))
			for _, suffix := range []string{"-wal", "-wal2"} {
				if len(walRecords(t, during+suffix)) == 0 {
					t.Errorf("the image during the commit has no record in %s", suffix)
				}
			}
			lost := copyTo(t, during, filepath.Join(dir, "lost")) // dumpOf changes during
			close(release)
			if err := <-ckpt; err != nil {
				t.Fatal(err)
			}
			wantDuring := dump(t, s) // nothing was written since the image
			// Moves after the commit landed: in the same file as those made
			// during it, after the file's checkpoint.
			for i, m := range draw[5:] {
				if _, err := s.Move(ctx, "g1", []string{"o1", "x1"}[i%2], m[0], m[1], ""); err != nil {
					t.Fatal(err)
				}
			}
			after := crashCopy(t, s, filepath.Join(dir, "after"))
			wantAfter := dump(t, s)
			if got := dumpOf(t, during, noSync); !maps.Equal(got, wantDuring) {
				t.Errorf("image during the commit:\n%s", diff(got, wantDuring))
			}
			if got := dumpOf(t, after, noSync); !maps.Equal(got, wantAfter) {
				t.Errorf("image after the commit:\n%s", diff(got, wantAfter))
			}
			// Without the file the commit covers, the other file's records
			// do not follow the Bolt file's: a gap, refused.
			if err := os.Truncate(lost+"-wal", 0); err != nil {
				t.Fatal(err)
			}
			if s, err := OpenBolt(lost, BoltOptions{NoSync: noSync}); !errors.Is(err, errWALCorrupt) {
				if err == nil {
					s.Close()
				}
				t.Errorf("open without the committing log file = %v, want errWALCorrupt", err)
			}
		})
	}
}

// TestBoltSingleLogFile: a data dir of the version with one log file (no
// "-wal2") opens with what its log holds.
func TestBoltSingleLogFile(t *testing.T) {
	t.Parallel()
	s, _, crash := playedCrash(t)
	if len(walRecords(t, crash+"-wal")) == 0 {
		t.Fatal("the image has no record in -wal")
	}
	if err := os.Remove(crash + "-wal2"); err != nil {
		t.Fatal(err)
	}
	want := dump(t, s)
	if got := dumpOf(t, crash, false); !maps.Equal(got, want) {
		t.Errorf("single log file:\n%s", diff(got, want))
	}
}

// TestBoltLogFilesAlternate: each checkpoint switches the log to its other
// file, which starts over, so neither grows past what one interval logs.
func TestBoltLogFilesAlternate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "t.db")
	s := openTestBolt(t, path, true)
	cur := func() int {
		var c int
		if err := s.write(ctx, func(b *batch, _ *Stats) error { c = b.s.cur; return nil }); err != nil {
			t.Fatal(err)
		}
		return c
	}
	for i := range 20 {
		before := cur()
		// About 200 KiB logged per round: 4 MiB over both files in all.
		for j := range 20 {
			g := Game{ID: fmt.Sprintf("g%d-%d", i, j), PlayerX: "x", PlayerO: "o", Game: game.New(), Created: s.now(), Next: strings.Repeat("n", 10000)}
			if _, err := s.Create(ctx, g); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Checkpoint(ctx); err != nil {
			t.Fatal(err)
		}
		if after := cur(); after == before {
			t.Fatalf("round %d: the log stayed in file %d across a checkpoint", i, after)
		}
	}
	for _, suffix := range []string{"-wal", "-wal2"} {
		fi, err := os.Stat(path + suffix)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() > walInitial {
			t.Errorf("%s is %d bytes after 20 checkpoints of 200 KiB, want %d", suffix, fi.Size(), walInitial)
		}
	}
	want := dump(t, s)
	if got := dumpOf(t, crashCopy(t, s, filepath.Join(dir, "crash")), true); !maps.Equal(got, want) {
		t.Errorf("after 20 checkpoints:\n%s", diff(got, want))
	}
}

// TestBoltCheckpointSeesAcknowledged: Games called while a checkpoint is in
// flight sees the moves acknowledged before the call, made after that
// checkpoint started: it waits for it and checkpoints again.
func TestBoltCheckpointSeesAcknowledged(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTestBolt(t, filepath.Join(t.TempDir(), "t.db"), false)
	startGame(t, s, "g", "x", "o")
	entered, release := holdCommits(t, s)
	ckpt := make(chan error, 1)
	go func() { ckpt <- s.Checkpoint(ctx) }()
	<-entered
	for i, m := range draw[:3] {
		if _, err := s.Move(ctx, "g", []string{"x", "o"}[i%2], m[0], m[1], ""); err != nil {
			t.Fatal(err)
		}
	}
	moves := make(chan int, 1)
	go func() {
		n := -1
		err := s.Games(ctx, func(g Game) bool {
			if g.ID == "g" {
				n = g.Moves
			}
			return true
		})
		if err != nil {
			t.Error(err)
		}
		moves <- n
	}()
	// Games's checkpoint is asked for while the first is in flight.
	for {
		var n int
		if err := s.write(ctx, func(b *batch, _ *Stats) error { n = len(b.s.waiters); return nil }); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	if err := <-ckpt; err != nil {
		t.Fatal(err)
	}
	if n := <-moves; n != 3 {
		t.Errorf("Games saw %d moves, want the 3 acknowledged before it", n)
	}
}

// TestBoltFailedBatchDuringCheckpoint: a batch that fails while a checkpoint
// commits is undone (without a transaction, only the cache holds it); the
// moves acknowledged around it are kept, in the next transaction and in a
// crash image.
func TestBoltFailedBatchDuringCheckpoint(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	s := openTestBolt(t, filepath.Join(dir, "t.db"), false)
	startGame(t, s, "g", "x", "o")
	entered, release := holdCommits(t, s)
	ckpt := make(chan error, 1)
	go func() { ckpt <- s.Checkpoint(ctx) }()
	<-entered
	if _, err := s.Move(ctx, "g", "x", 0, 0, ""); err != nil {
		t.Fatal(err)
	}
	err := s.write(ctx, func(b *batch, d *Stats) error {
		var g Game
		if err := b.update("g", func(g *Game) error { return g.PlayMove("o", 2, 2, "", s.now()) }, &g, d); err != nil {
			return err
		}
		return fatal(errBoom)
	})
	if !errors.Is(err, errBoom) {
		t.Fatalf("failing batch = %v, want errBoom", err)
	}
	// The cache was dropped with the failed batch: the next move needs the
	// file, so it waits for the commit.
	moved := make(chan error, 1)
	go func() { _, err := s.Move(ctx, "g", "o", 1, 1, ""); moved <- err }()
	close(release)
	if err := <-moved; err != nil {
		t.Fatal(err)
	}
	if err := <-ckpt; err != nil {
		t.Fatal(err)
	}
	g, err := s.Game(ctx, "g")
	if err != nil || g.Moves != 2 || g.Board.At(2, 2) != game.Empty || g.Board.At(1, 1) == game.Empty {
		t.Fatalf("after the failed batch: %d moves, (2,2)=%v (1,1)=%v, %v; want (0,0) and (1,1) only", g.Moves, g.Board.At(2, 2), g.Board.At(1, 1), err)
	}
	want := dump(t, s)
	if got := dumpOf(t, crashCopy(t, s, filepath.Join(dir, "crash")), false); !maps.Equal(got, want) {
		t.Errorf("crash image after a failed batch during a checkpoint:\n%s", diff(got, want))
	}
}

// TestBoltCatchUpAfterCheckpoint: what is logged while a checkpoint commits
// goes into the next transaction, most of it applied by the checkpoint's
// goroutine rather than by the committer, and the next checkpoint writes it
// all to the file: an image of the file alone, without its log, has it.
func TestBoltCatchUpAfterCheckpoint(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	s := openTestBolt(t, filepath.Join(dir, "t.db"), true)
	const games = 10
	for i := range games {
		startGame(t, s, fmt.Sprint("g", i), fmt.Sprint("x", i), fmt.Sprint("o", i))
	}
	entered, release := holdCommits(t, s)
	ckpt := make(chan error, 1)
	go func() { ckpt <- s.Checkpoint(ctx) }()
	<-entered
	for i := range games {
		for j, m := range draw[:4] { // one batch each: the calls come one at a time
			if _, err := s.Move(ctx, fmt.Sprint("g", i), fmt.Sprint([]string{"x", "o"}[j%2], i), m[0], m[1], ""); err != nil {
				t.Fatal(err)
			}
		}
	}
	close(release)
	if err := <-ckpt; err != nil {
		t.Fatal(err)
	}
	var caught int
	if err := s.write(ctx, func(b *batch, _ *Stats) error { caught = b.s.caughtUp; return nil }); err != nil {
		t.Fatal(err)
	}
	if caught < games*4-catchUpLeft {
		t.Errorf("the checkpoint's goroutine applied %d of the %d batches logged during the commit, want all but %d at most", caught, games*4, catchUpLeft)
	}

	if err := s.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	want := dump(t, s)
	img := filepath.Join(dir, "image", "t.db")
	if err := s.write(ctx, func(*batch, *Stats) error {
		if err := os.MkdirAll(filepath.Dir(img), 0o700); err != nil {
			return err
		}
		return copyFile(s.db.Path(), img)
	}); err != nil {
		t.Fatal(err)
	}
	got := dumpOf(t, img, true)
	if !maps.Equal(got, want) {
		t.Errorf("the file alone after the next checkpoint:\n%s", diff(got, want))
	}
	for i := range games {
		if !strings.Contains(got[fmt.Sprint("game g", i)], `"moves":[{`) {
			t.Fatalf("game g%d in the file: %s", i, got[fmt.Sprint("game g", i)])
		}
	}
}
