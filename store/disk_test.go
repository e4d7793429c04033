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
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) { diskFsync(b, writers, false, 0) })
	}
	// Two writers, each on a file of its own: two logs synced at once.
	b.Run("writers=2/files=2", func(b *testing.B) { diskFsync(b, 2, true, 0) })
	// One writer whose file is opened O_DSYNC: the write is durable when it
	// returns, with no fdatasync after it.
	b.Run("odsync", func(b *testing.B) { diskFsync(b, 1, false, syscall.O_DSYNC) })
}

// diskFsync makes b.N 4 KiB writes durable from writers goroutines at once,
// each at its own offsets of one file (of a file each if ownFile), as a log
// whose next record were written and synced while the previous sync is in
// flight would. On this VM's disk overlapping syncs mostly queue behind each
// other, on one file or two: from 1 to 4 writers the syncs a second grow by
// half while each sync takes twice as long (BENCHMARKS.md), so overlapping a
// log's fdatasyncs would not shorten a move's wait here. With flag O_DSYNC
// the write alone makes it durable.
func diskFsync(b *testing.B, writers int, ownFile bool, flag int) {
	open := func(name string) *os.File {
		f, err := os.OpenFile(filepath.Join(b.TempDir(), name), os.O_RDWR|os.O_CREATE|flag, 0o600)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { f.Close() })
		if _, err := f.WriteAt(make([]byte, 256*4096), 0); err != nil {
			b.Fatal(err)
		}
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			b.Fatal(err)
		}
		return f
	}
	files := []*os.File{open("fsync")}
	if ownFile {
		for w := 1; w < writers; w++ {
			files = append(files, open(fmt.Sprint("fsync", w)))
		}
	}
	var (
		mu  sync.Mutex
		lat []time.Duration
		n   atomic.Int64
		wg  sync.WaitGroup
	)
	b.ResetTimer()
	for w := range writers {
		f := files[w%len(files)]
		wg.Go(func() {
			page := make([]byte, 4096)
			for i := n.Add(1); i <= int64(b.N); i = n.Add(1) {
				start := time.Now()
				if _, err := f.WriteAt(page, (int64(w)*64+i%64)*4096); err != nil {
					b.Error(err)
					return
				}
				if flag&syscall.O_DSYNC == 0 {
					if err := syscall.Fdatasync(int(f.Fd())); err != nil {
						b.Error(err)
						return
					}
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
