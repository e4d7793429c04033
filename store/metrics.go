package store

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// boltMetrics are the embedded store's Prometheus collectors, registered on
// BoltOptions.Registerer when it is set.
type boltMetrics struct {
	sync       prometheus.Histogram
	batch      prometheus.Histogram
	checkpoint prometheus.Histogram
	deferred   prometheus.Histogram
}

func newBoltMetrics(reg prometheus.Registerer) *boltMetrics {
	m := &boltMetrics{
		sync: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "tictac_store_log_sync_seconds",
			Help:    "Time the embedded store's write-ahead log takes to fdatasync one batch of writes: the disk's own latency, which every durable write waits for.",
			Buckets: prometheus.ExponentialBucketsRange(20e-6, 2, 26),
		}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "tictac_store_batch_ops",
			Help:    "Reads and writes the embedded store ran together as one batch (one log record, one fdatasync).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 9),
		}),
		checkpoint: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "tictac_store_checkpoint_seconds",
			Help:    "Time the embedded store's checkpoints take to commit the log into the file, in the background: moves on games in progress go on meanwhile.",
			Buckets: prometheus.ExponentialBucketsRange(1e-3, 10, 14),
		}),
		deferred: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "tictac_store_checkpoint_wait_seconds",
			Help:    "Time the embedded store's ops that had to read the file (joins, new games, games not in memory) waited for a checkpoint's commit in flight; one per op put off.",
			Buckets: prometheus.ExponentialBucketsRange(1e-4, 10, 16),
		}),
	}
	if reg != nil {
		reg.MustRegister(m.sync, m.batch, m.checkpoint, m.deferred)
	}
	return m
}

func since(h prometheus.Histogram, start time.Time) { h.Observe(time.Since(start).Seconds()) }
