//go:build linux

package store_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// BenchmarkDiskFsync is the yardstick for the durable figures: what this
// machine's disk takes to make one 4 KiB write durable (write, then
// fdatasync), where the store keeps its data.
//
//	go test -run '^$' -bench DiskFsync -benchtime 500x ./store
func BenchmarkDiskFsync(b *testing.B) {
	for _, writers := range []int{1, 2, 4} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) { diskFsync(b, writers) })
	}
}

// diskFsync makes b.N 4 KiB writes durable from writers goroutines at once,
// each at its own offsets of one file, as a log whose next record were
// written and synced while the previous sync is in flight would. On this
// VM's disk overlapping syncs mostly queue behind each other: from 1 to 4
// writers the syncs a second grow by half while each sync takes twice as
// long (BENCHMARKS.md), so overlapping a log's fdatasyncs would not shorten
// a move's wait here.
func diskFsync(b *testing.B, writers int) {
	f, err := os.Create(filepath.Join(b.TempDir(), "fsync"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(make([]byte, 256*4096), 0); err != nil {
		b.Fatal(err)
	}
	if err := syscall.Fdatasync(int(f.Fd())); err != nil {
		b.Fatal(err)
	}
	var (
		mu  sync.Mutex
		lat []time.Duration
		n   atomic.Int64
		wg  sync.WaitGroup
	)
	b.ResetTimer()
	for w := range writers {
		wg.Go(func() {
			page := make([]byte, 4096)
			for i := n.Add(1); i <= int64(b.N); i = n.Add(1) {
				start := time.Now()
				if _, err := f.WriteAt(page, (int64(w)*64+i%64)*4096); err != nil {
					b.Error(err)
					return
				}
				if err := syscall.Fdatasync(int(f.Fd())); err != nil {
					b.Error(err)
					return
				}
				d := time.Since(start)
				mu.Lock()
				lat = append(lat, d)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	slices.Sort(lat)
	reportLatency(b, lat)
	b.ReportMetric(float64(len(lat))/b.Elapsed().Seconds(), "syncs/s")
}
