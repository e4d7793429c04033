package hub

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tictac/tictac/store"
)

// metrics are the hub's Prometheus collectors, registered on Options.Registerer.
type metrics struct {
	move        prometheus.Histogram
	store       *prometheus.HistogramVec
	storeErrors *prometheus.CounterVec
	publish     prometheus.Histogram
	busErrors   prometheus.Counter
	write       prometheus.Histogram
	moves       *prometheus.CounterVec
	games       *prometheus.CounterVec
	statsFrames prometheus.Counter
	dropped     *prometheus.CounterVec
}

// Latency buckets from 50µs to 5s: moves on loopback take well under a
// millisecond, and the store's timeout is 5s.
var latencyBuckets = prometheus.ExponentialBucketsRange(50e-6, 5, 18)

func newMetrics(h *Hub, reg prometheus.Registerer) *metrics {
	m := &metrics{
		move: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "tictac_move_seconds", Buckets: latencyBuckets,
			Help: "Time from reading an accepted fillSquare to publishing its result to the game's channel.",
		}),
		store: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "tictac_store_seconds", Buckets: latencyBuckets,
			Help: "Latency of store calls by operation (join, move, leave), refusals included.",
		}, []string{"op"}),
		storeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tictac_store_errors_total",
			Help: "Store calls that failed for another reason than a refusal (unreachable, timeout).",
		}, []string{"op"}),
		publish: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "tictac_bus_publish_seconds", Buckets: latencyBuckets,
			Help: "Latency of publishing a game's frames on the bus.",
		}),
		busErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tictac_bus_errors_total",
			Help: "Bus publishes and subscribes that failed.",
		}),
		write: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "tictac_socket_write_seconds", Buckets: latencyBuckets,
			Help: "Latency of one WebSocket frame write.",
		}),
		moves: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tictac_moves_total",
			Help: "fillSquare messages by result: applied, or the error code they were refused with.",
		}, []string{"result"}),
		games: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tictac_games_finished_total",
			Help: "Games ended on this replica by result: x, o, draw, abandoned.",
		}, []string{"result"}),
		statsFrames: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tictac_stats_frames_total",
			Help: "statsUpdate frames queued to sockets.",
		}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tictac_sockets_dropped_total",
			Help: "Sockets closed by the server, by reason: too_slow, rate_limited.",
		}, []string{"reason"}),
	}
	reg.MustRegister(m.move, m.store, m.storeErrors, m.publish, m.busErrors, m.write, m.moves, m.games, m.statsFrames, m.dropped,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "tictac_sockets_open", Help: "Open WebSockets on this replica.",
		}, func() float64 { return float64(h.Online()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "tictac_players_waiting", Help: "Players on this replica waiting for an opponent.",
		}, func() float64 { return float64(h.waiting()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "tictac_games_in_progress", Help: "Games in progress, across all replicas, as the live stats say.",
		}, func() float64 { return float64(h.stats.latest()[store.GamesInProgress]) }),
	)
	return m
}
