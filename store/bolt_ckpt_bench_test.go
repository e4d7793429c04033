package store_test

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tictac/tictac/game"
	"github.com/tictac/tictac/store"
)

// BenchmarkMoveCheckpoint plays b.N moves at the pace of 1,000 players
// thinking 200 ms (1,000 games, each moving every 200 to 600 ms: about 2,500
// moves a second) on a store that already holds 100,000 games, while a
// checkpoint runs every 3 seconds, and reports the latency of Move: max-µs is
// the longest stall; ckpt-ms is the mean time a checkpoint's commit took. ns/op
// is the pacing; -benchtime 30000x is about 12 s.
func BenchmarkMoveCheckpoint(b *testing.B) {
	// The games a server holds after a while: new games' ids fall all over
	// the file, so a checkpoint writes a page for about each of them.
	seed := filepath.Join(b.TempDir(), "seed.db")
	{
		s := openBolt(b, seed, store.BoltOptions{NoSync: true})
		ctx := context.Background()
		var wg sync.WaitGroup
		for w := range 64 {
			wg.Go(func() {
				for i := w; i < 100_000; i += 64 {
					n := store.Game{ID: store.NewID(), PlayerX: store.NewID(), PlayerO: store.NewID(), Game: game.New(), Created: time.Now()}
					if _, err := s.Create(ctx, n); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
	for _, mode := range []struct {
		name   string
		noSync bool
	}{{"fsync", false}, {"soft", true}} {
		b.Run(mode.name, func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "t.db")
			copyFile(b, seed, path)
			reg := prometheus.NewRegistry()
			s := openBolt(b, path, store.BoltOptions{NoSync: mode.noSync, Registerer: reg})
			defer s.Close()
			ctx := context.Background()
			var ckpts atomic.Int64
			stop := make(chan struct{})
			var ckptWG sync.WaitGroup
			ckptWG.Go(func() {
				tick := time.NewTicker(3 * time.Second)
				defer tick.Stop()
				for {
					select {
					case <-stop:
						return
					case <-tick.C:
						if err := s.Checkpoint(ctx); err != nil {
							b.Error(err)
							return
						}
						ckpts.Add(1)
					}
				}
			})
			b.ResetTimer()
			lat := playPaced(b, s, 1000, 200*time.Millisecond, 400*time.Millisecond, 2)
			b.StopTimer()
			close(stop)
			ckptWG.Wait()
			reportLatency(b, lat)
			b.ReportMetric(float64(ckpts.Load()), "checkpoints")
			mfs, err := reg.Gather()
			if err != nil {
				b.Fatal(err)
			}
			for _, mf := range mfs {
				if mf.GetName() == "tictac_store_checkpoint_seconds" {
					h := mf.GetMetric()[0].GetHistogram()
					b.ReportMetric(h.GetSampleSum()/float64(h.GetSampleCount())*1000, "ckpt-ms")
				}
			}
		})
	}
}

func copyFile(tb testing.TB, src, dst string) {
	tb.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		tb.Fatal(err)
	}
	// Synced, so that the copy's writeback does not slow the moves timed.
	f, err := os.Create(dst)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		tb.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		tb.Fatal(err)
	}
}
