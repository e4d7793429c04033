package store

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tictac/tictac/game"
)

// The tests of the write-ahead log and the committer's cache. A crash is
// imitated by copying the files from inside the committer, between two
// batches: the copy is what a process killed at that moment leaves behind
// (and, with fsync, what a power cut leaves). TestBoltSIGKILL kills a real
// process.

func openTestBolt(tb testing.TB, path string, noSync bool) *Bolt {
	tb.Helper()
	s, err := OpenBolt(path, BoltOptions{NoSync: noSync})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// playedCrash plays a game of each ending on a new store with fsync, and
// returns the store, its test's directory, and a crash image of it taken
// then (see crashCopy).
func playedCrash(t *testing.T) (s *Bolt, dir, crash string) {
	t.Helper()
	dir = t.TempDir()
	s = openTestBolt(t, filepath.Join(dir, "t.db"), false)
	playAll(t, s, "a")
	return s, dir, crashCopy(t, s, filepath.Join(dir, "crash"))
}

// crashCopy copies s's files into dir as a crash would leave them now.
func crashCopy(tb testing.TB, s *Bolt, dir string) string {
	tb.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		tb.Fatal(err)
	}
	dst := filepath.Join(dir, "t.db")
	err := s.write(context.Background(), func(*batch, *Stats) error {
		for _, suffix := range []string{"", "-wal", "-wal2"} {
			if err := copyFile(s.db.Path()+suffix, dst+suffix); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return dst
}

// copyTo copies a crash image at src (a path to t.db) into dir.
func copyTo(tb testing.TB, src, dir string) string {
	tb.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		tb.Fatal(err)
	}
	dst := filepath.Join(dir, "t.db")
	for _, suffix := range []string{"", "-wal", "-wal2"} {
		if err := copyFile(src+suffix, dst+suffix); err != nil {
			tb.Fatal(err)
		}
	}
	return dst
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// dump describes everything a reopened store shows: every game that is not
// waiting (waiting games do not survive a restart), the stats, the games in
// progress and each player's active game.
func dump(tb testing.TB, s *Bolt) map[string]string {
	tb.Helper()
	ctx := context.Background()
	out := map[string]string{}
	players := map[string]bool{}
	err := s.Games(ctx, func(g Game) bool {
		if g.Status == game.Waiting {
			return true
		}
		v, err := json.Marshal(toDoc(&g, 0))
		if err != nil {
			tb.Fatal(err)
		}
		out["game "+g.ID] = string(v)
		players[g.PlayerX], players[g.PlayerO] = true, true
		return true
	})
	if err != nil {
		tb.Fatal(err)
	}
	st, _ := s.Stats(ctx)
	st[PlayersOnline] = 0
	out["stats"] = fmt.Sprint(st)
	live, err := s.Live(ctx, 1000)
	if err != nil {
		tb.Fatal(err)
	}
	var ids []string
	for _, g := range live {
		ids = append(ids, g.ID)
	}
	out["live"] = strings.Join(ids, " ")
	for p := range players {
		g, err := s.Active(ctx, p)
		if err != nil && !errors.Is(err, ErrNotFound) {
			tb.Fatal(err)
		}
		if g.Status != game.Waiting {
			out["active "+p] = g.ID
		}
	}
	return out
}

// dumpOf opens a crash image, dumps it, and opens it once more to check that
// a second replay finds the same.
func dumpOf(tb testing.TB, path string, noSync bool) map[string]string {
	tb.Helper()
	s, err := OpenBolt(path, BoltOptions{NoSync: noSync})
	if err != nil {
		tb.Fatal(err)
	}
	d := dump(tb, s)
	if err := s.Close(); err != nil {
		tb.Fatal(err)
	}
	s, err = OpenBolt(path, BoltOptions{NoSync: noSync})
	if err != nil {
		tb.Fatal(err)
	}
	defer s.Close()
	if again := dump(tb, s); !maps.Equal(again, d) {
		tb.Errorf("second open differs from the first:\n%s", diff(again, d))
	}
	return d
}

func diff(got, want map[string]string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(got)) {
		if want[k] != got[k] {
			fmt.Fprintf(&b, "%s\n  got  %s\n  want %s\n", k, got[k], want[k])
		}
	}
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if _, ok := got[k]; !ok {
			fmt.Fprintf(&b, "%s\n  got  nothing\n  want %s\n", k, want[k])
		}
	}
	return b.String()
}

// playAll puts s through every kind of write: games won, drawn, resigned,
// left while waiting, a friend's invite, a game against the computer, a
// rematch, a player away, and a friend's game left waiting. tag keeps ids apart.
func playAll(tb testing.TB, s *Bolt, tag string) {
	tb.Helper()
	ctx := context.Background()
	must := func(_ Game, err error) {
		tb.Helper()
		if err != nil {
			tb.Fatal(err)
		}
	}
	pair := func(n int) (Game, string, string) {
		tb.Helper()
		x, o := fmt.Sprintf("%s-x%d", tag, n), fmt.Sprintf("%s-o%d", tag, n)
		must(s.Join(ctx, x, fmt.Sprintf("%s-g%d", tag, n)))
		g, err := s.Join(ctx, o, fmt.Sprintf("%s-unused%d", tag, n))
		if err != nil || g.Status != game.InProgress {
			tb.Fatalf("Join = %+v, %v", g, err)
		}
		return g, x, o
	}
	moves := func(g Game, x, o string, squares [][2]int) {
		tb.Helper()
		for i, m := range squares {
			must(s.Move(ctx, g.ID, []string{x, o}[i%2], m[0], m[1], fmt.Sprintf("m%d", i)))
		}
	}
	win := [][2]int{{0, 0}, {0, 1}, {1, 0}, {1, 1}, {2, 0}}
	draw := [][2]int{{0, 0}, {1, 0}, {2, 0}, {1, 1}, {0, 1}, {2, 1}, {1, 2}, {0, 2}, {2, 2}}

	g, x, o := pair(1)
	moves(g, x, o, win)
	next := tag + "-rematch"
	must(s.Update(ctx, g.ID, func(g *Game) error { _, err := g.OfferRematch(x, next); return err }))
	two, err := s.Update(ctx, g.ID, func(g *Game) error { _, err := g.OfferRematch(o, next); return err })
	if err != nil {
		tb.Fatal(err)
	}
	must(s.Create(ctx, RematchOf(&two, s.now())))
	must(s.Move(ctx, next, o, 1, 1, ""))

	g, x, o = pair(2)
	moves(g, x, o, draw)

	g, x, o = pair(3)
	moves(g, x, o, win[:2])
	must(s.Update(ctx, g.ID, func(g *Game) error { return g.SetAway(o, 12345) }))
	must(s.Leave(ctx, g.ID, x))

	g, x, o = pair(4)
	moves(g, x, o, win[:3])
	must(s.Update(ctx, g.ID, func(g *Game) error { return g.SetAway(x, 777) }))
	must(s.Update(ctx, g.ID, func(g *Game) error { g.Watch(+2); return nil }))

	w, err := s.Join(ctx, tag+"-lonely", tag+"-left")
	if err != nil {
		tb.Fatal(err)
	}
	must(s.Leave(ctx, w.ID, tag+"-lonely"))

	inv := Game{ID: tag + "-friend", PlayerX: tag + "-host", Game: game.New(), Created: s.now(), Mode: ModeFriend, Invite: tag + "code"}
	must(s.Create(ctx, inv))
	must(s.JoinInvite(ctx, tag+"-guest", tag+"code"))
	must(s.Move(ctx, inv.ID, tag+"-host", 2, 2, ""))

	bot := Game{ID: tag + "-bot", PlayerX: tag + "-human", PlayerO: BotPlayer, Game: game.New(), Mode: ModeBot, Level: "easy", Created: s.now(), Started: s.now()}
	_ = bot.Start()
	must(s.Create(ctx, bot))
	must(s.Move(ctx, bot.ID, tag+"-human", 0, 0, "h1"))
	must(s.Move(ctx, bot.ID, BotPlayer, 1, 1, "bot-2"))

	must(s.Create(ctx, Game{ID: tag + "-waitingfriend", PlayerX: tag + "-host2", Game: game.New(), Created: s.now(), Mode: ModeFriend, Invite: tag + "code2"}))
}

// TestBoltReplay: a crash image, replayed, shows what the store showed when
// it was taken, with the log holding records after a checkpoint and stale
// records from before it.
func TestBoltReplay(t *testing.T) {
	t.Parallel()
	for _, noSync := range []bool{false, true} {
		t.Run(fmt.Sprintf("noSync=%v", noSync), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			s := openTestBolt(t, filepath.Join(dir, "t.db"), noSync)
			playAll(t, s, "a")
			if err := s.Checkpoint(context.Background()); err != nil {
				t.Fatal(err)
			}
			atCheckpoint := crashCopy(t, s, filepath.Join(dir, "ckpt"))
			wantCkpt := dump(t, s)
			playAll(t, s, "b")
			if _, err := s.Join(context.Background(), "waiter", "waiting"); err != nil {
				t.Fatal(err)
			}
			crash := crashCopy(t, s, filepath.Join(dir, "crash"))
			if s.seq == s.ckptSeq {
				t.Fatal("the crash image has no record to replay")
			}
			want := dump(t, s)
			if got := dumpOf(t, crash, noSync); !maps.Equal(got, want) {
				t.Errorf("replayed state differs:\n%s", diff(got, want))
			}
			if got := dumpOf(t, atCheckpoint, noSync); !maps.Equal(got, wantCkpt) {
				t.Errorf("state at the checkpoint differs:\n%s", diff(got, wantCkpt))
			}
		})
	}
}

// walRecord is where a record of the log is.
type walRecord struct {
	off, n int64
	seq    uint64
}

// walRecords returns the records of the log file at path.
func walRecords(tb testing.TB, path string) []walRecord {
	tb.Helper()
	w, err := openWAL(path, false)
	if err != nil {
		tb.Fatal(err)
	}
	defer w.close()
	var recs []walRecord
	var pos int64
	err = w.records(func(seq uint64, payload []byte) error {
		n := int64(walHeader + len(payload))
		recs = append(recs, walRecord{pos, n, seq})
		pos += n
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return recs
}

// walTail returns the offset and length of the log's last record after the
// file's checkpoint.
func walTail(tb testing.TB, path string) (off, n int64) {
	tb.Helper()
	recs := walRecords(tb, path+"-wal")
	if len(recs) == 0 {
		tb.Fatal("the log has no records")
	}
	last := recs[len(recs)-1]
	return last.off, last.n
}

// flip changes one byte of file path at off.
func flip(tb testing.TB, path string, off int64) {
	tb.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		tb.Fatal(err)
	}
	b[0] ^= 0x40
	if _, err := f.WriteAt(b, off); err != nil {
		tb.Fatal(err)
	}
}

// TestBoltDamagedRecord: a record that fails its checksum before a whole
// one is damage, not the torn tail of a crash. The store opens with what
// comes before it, as databases do, and logs at Error what it lost; a torn
// tail (TestBoltTornTail) is logged as nothing.
func TestBoltDamagedRecord(t *testing.T) {
	t.Parallel()
	s, dir, p := playedCrash(t)
	recs := walRecords(t, p+"-wal")
	if len(recs) < 3 {
		t.Fatalf("%d records, want a few", len(recs))
	}
	bad := recs[len(recs)/2]
	flip(t, p+"-wal", bad.off+bad.n-2)
	var logged bytes.Buffer
	d, err := OpenBolt(p, BoltOptions{Logger: slog.New(slog.NewTextHandler(&logged, nil))})
	if err != nil {
		t.Fatalf("open with a damaged record: %v", err)
	}
	d.Close()
	if out := logged.String(); !strings.Contains(out, "level=ERROR") || !strings.Contains(out, "write-ahead log damaged") || !strings.Contains(out, fmt.Sprintf("record=%d", bad.seq)) {
		t.Errorf("opened a log damaged at record %d and logged %q", bad.seq, out)
	}

	// The last record torn instead: a crash's, logged as nothing.
	p = crashCopy(t, s, filepath.Join(dir, "torn"))
	last := recs[len(recs)-1]
	flip(t, p+"-wal", last.off+last.n-2)
	logged.Reset()
	d, err = OpenBolt(p, BoltOptions{Logger: slog.New(slog.NewTextHandler(&logged, nil))})
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	if logged.Len() != 0 {
		t.Errorf("a torn last record was logged: %q", logged.String())
	}
}

// TestBoltTornTail: a crash while the last record was being written leaves
// it torn, zeroed or cut short; the store opens without it, as it was before.
func TestBoltTornTail(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openTestBolt(t, filepath.Join(dir, "t.db"), false)
	playAll(t, s, "a")
	g, err := s.Join(context.Background(), "tx", "torn")
	if err == nil {
		g, err = s.Join(context.Background(), "to", "unused")
	}
	if err != nil {
		t.Fatal(err)
	}
	before := crashCopy(t, s, filepath.Join(dir, "before"))
	if _, err := s.Move(context.Background(), g.ID, "tx", 1, 1, "last"); err != nil {
		t.Fatal(err)
	}
	after := crashCopy(t, s, filepath.Join(dir, "after"))
	want := dumpOf(t, copyTo(t, before, filepath.Join(dir, "want")), false)
	if whole := dumpOf(t, copyTo(t, after, filepath.Join(dir, "whole")), false); maps.Equal(whole, want) {
		t.Fatal("the last move changed nothing")
	}
	off, n := walTail(t, after)
	tests := []struct {
		name string
		tear func(f *os.File) error
	}{
		{"cut in the header", func(f *os.File) error { return f.Truncate(off + 5) }},
		{"cut in the payload", func(f *os.File) error { return f.Truncate(off + n - 3) }},
		{"a flipped byte", func(f *os.File) error {
			b := make([]byte, 1)
			if _, err := f.ReadAt(b, off+n-2); err != nil {
				return err
			}
			b[0] ^= 0x40
			_, err := f.WriteAt(b, off+n-2)
			return err
		}},
		{"zeroed", func(f *os.File) error { _, err := f.WriteAt(make([]byte, n), off); return err }},
		{"a wrong length", func(f *os.File) error { _, err := f.WriteAt([]byte{0xff, 0xff, 0, 0}, off); return err }},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := copyTo(t, after, filepath.Join(dir, strconv.Itoa(i)))
			f, err := os.OpenFile(p+"-wal", os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			if err := tt.tear(f); err != nil {
				t.Fatal(err)
			}
			f.Close()
			if got := dumpOf(t, p, false); !maps.Equal(got, want) {
				t.Errorf("after a torn tail:\n%s", diff(got, want))
			}
		})
	}
}

// TestBoltLogGap: a log whose records do not follow the file's checkpoint
// (records lost in between) is refused rather than replayed over a hole.
func TestBoltLogGap(t *testing.T) {
	t.Parallel()
	_, _, crash := playedCrash(t)
	w, err := openWAL(crash+"-wal", false)
	if err != nil {
		t.Fatal(err)
	}
	var first []byte
	w.records(func(seq uint64, payload []byte) error {
		if first == nil {
			first = slices.Clone(payload)
		}
		return nil
	})
	if err := w.append(100, first); err != nil { // seq 100 at offset 0: records 1 to 99 are missing
		t.Fatal(err)
	}
	w.close()
	if s, err := OpenBolt(crash, BoltOptions{}); !errors.Is(err, errWALCorrupt) {
		if err == nil {
			s.Close()
		}
		t.Fatalf("open with a gap in the log = %v, want errWALCorrupt", err)
	}
}

// TestBoltDeletedFile: deleting the store file starts an empty store, even
// with the old file's log beside it.
func TestBoltDeletedFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openTestBolt(t, filepath.Join(dir, "t.db"), false)
	playAll(t, s, "a")
	crash := crashCopy(t, s, filepath.Join(dir, "crash"))
	if err := os.Remove(crash); err != nil {
		t.Fatal(err)
	}
	empty := dumpOf(t, filepath.Join(dir, "empty.db"), false)
	if got := dumpOf(t, crash, false); !maps.Equal(got, empty) {
		t.Errorf("store after its file was deleted:\n%s", diff(got, empty))
	}
}

var errBoom = errors.New("boom")

// TestBoltFailedBatch: a batch that fails half-way is undone in the open
// transaction and in the cache, and the batches acknowledged before it (in
// the log, not yet checkpointed) stay.
func TestBoltFailedBatch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	s := openTestBolt(t, filepath.Join(dir, "t.db"), false)
	if _, err := s.Join(ctx, "x", "g"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Join(ctx, "o", "unused"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Move(ctx, "g", "x", 0, 0, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Move(ctx, "g", "o", 1, 1, ""); err != nil {
		t.Fatal(err)
	}
	wantStats, _ := s.Stats(ctx)
	// A move applied, then a failure after which the transaction holds it.
	err := s.write(ctx, func(b *batch, d *Stats) error {
		var g Game
		if err := b.update("g", func(g *Game) error { return g.PlayMove("x", 2, 2, "", s.now()) }, &g, d); err != nil {
			return err
		}
		return fatal(errBoom)
	})
	if !errors.Is(err, errBoom) {
		t.Fatalf("failing batch = %v, want errBoom", err)
	}
	g, err := s.Game(ctx, "g")
	if err != nil || g.Moves != 2 || g.Board.At(2, 2) != game.Empty {
		t.Fatalf("after the failed batch: %d moves, (2,2)=%v, %v; want the 2 moves before it", g.Moves, g.Board.At(2, 2), err)
	}
	if st, _ := s.Stats(ctx); st != wantStats {
		t.Errorf("stats after the failed batch %v, want %v", st, wantStats)
	}
	// The same move, for real; then a crash image shows it.
	if g, err = s.Move(ctx, "g", "x", 2, 2, ""); err != nil || g.Moves != 3 {
		t.Fatalf("move after the failed batch = %d moves, %v", g.Moves, err)
	}
	want := dump(t, s)
	if got := dumpOf(t, crashCopy(t, s, filepath.Join(dir, "crash")), false); !maps.Equal(got, want) {
		t.Errorf("crash image after a failed batch:\n%s", diff(got, want))
	}
}

// TestBoltFailedBatchNeighbours: ops sharing a batch with a failing op fail
// with it; whatever was acknowledged is stored and whatever failed is not.
func TestBoltFailedBatchNeighbours(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	s := openTestBolt(t, filepath.Join(dir, "t.db"), true)
	const n = 8
	for i := range n {
		if _, err := s.Join(ctx, fmt.Sprint("x", i), fmt.Sprint("g", i)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Join(ctx, fmt.Sprint("o", i), "unused"); err != nil {
			t.Fatal(err)
		}
	}
	// Hold the committer so that the next ops queue up into one batch.
	release, held := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { s.write(ctx, func(*batch, *Stats) error { close(held); <-release; return nil }) })
	<-held
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { _, errs[i] = s.Move(ctx, fmt.Sprint("g", i), fmt.Sprint("x", i), 0, 0, "") })
	}
	var failed error
	wg.Go(func() {
		failed = s.write(ctx, func(b *batch, d *Stats) error {
			var g Game
			if err := b.update("g0", func(g *Game) error { g.Watch(+1); return nil }, &g, d); err != nil {
				return err
			}
			return fatal(errBoom)
		})
	})
	time.Sleep(20 * time.Millisecond)
	close(release)
	wg.Wait()
	if !errors.Is(failed, errBoom) {
		t.Fatalf("failing op = %v, want errBoom", failed)
	}
	shared := 0
	for i := range n {
		g, err := s.Game(ctx, fmt.Sprint("g", i))
		if err != nil {
			t.Fatal(err)
		}
		if g.Spectators != 0 {
			t.Errorf("game %d has the failed op's spectator", i)
		}
		if placed := g.Board.At(0, 0) != game.Empty; placed != (errs[i] == nil) {
			t.Errorf("game %d: move error %v but square filled=%v", i, errs[i], placed)
		}
		if errs[i] != nil {
			shared++
		}
	}
	t.Logf("%d of %d moves shared the failing batch", shared, n)
	want := dump(t, s)
	if got := dumpOf(t, crashCopy(t, s, filepath.Join(dir, "crash")), true); !maps.Equal(got, want) {
		t.Errorf("crash image after a failed batch:\n%s", diff(got, want))
	}
}

// TestBoltSIGKILL kills a process that is playing moves with fsync and finds
// every move it acknowledged in the reopened store.
func TestBoltSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process")
	}
	t.Parallel()
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestBoltCrashHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), "TICTAC_BOLT_CRASH_DIR="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := map[string]int{}
	count := 0
	sc := bufio.NewScanner(out)
	for count < 400 && sc.Scan() {
		id, n, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		m, err := strconv.Atoi(n)
		if err != nil {
			t.Fatalf("helper said %q", sc.Text())
		}
		acked[id] = max(acked[id], m)
		count++
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if count < 400 {
		t.Fatalf("helper acknowledged only %d moves", count)
	}
	s := openTestBolt(t, filepath.Join(dir, "t.db"), false)
	ctx := context.Background()
	for id, n := range acked {
		g, err := s.Game(ctx, id)
		if err != nil || g.Moves < n {
			t.Errorf("game %s after SIGKILL: %d moves, %v; %d were acknowledged", id, g.Moves, err, n)
		}
	}
	var want Stats
	err = s.Games(ctx, func(g Game) bool {
		add(&want, Expected(&g))
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Stats(ctx); got != want {
		t.Errorf("stats after SIGKILL %v, the games add up to %v", got, want)
	}
}

// TestBoltCrashHelper is the process TestBoltSIGKILL kills: it plays drawn
// games one move at a time, printing "game-id move-number" once each move is
// acknowledged, and checkpoints now and then.
func TestBoltCrashHelper(t *testing.T) {
	dir := os.Getenv("TICTAC_BOLT_CRASH_DIR")
	if dir == "" {
		t.Skip("run by TestBoltSIGKILL")
	}
	s, err := OpenBolt(filepath.Join(dir, "t.db"), BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	draw := [][2]int{{0, 0}, {1, 0}, {2, 0}, {1, 1}, {0, 1}, {2, 1}, {1, 2}, {0, 2}, {2, 2}}
	stop := time.Now().Add(30 * time.Second)
	for i := 0; time.Now().Before(stop); i++ {
		x, o, id := fmt.Sprint("x", i), fmt.Sprint("o", i), fmt.Sprint("g", i)
		if _, err := s.Join(ctx, x, id); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Join(ctx, o, "unused"); err != nil {
			t.Fatal(err)
		}
		for j, m := range draw {
			g, err := s.Move(ctx, id, []string{x, o}[j%2], m[0], m[1], "")
			if err != nil {
				t.Fatal(err)
			}
			fmt.Printf("%s %d\n", id, g.Moves)
		}
		if i%5 == 4 {
			if err := s.Checkpoint(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
}
