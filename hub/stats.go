package hub

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/tictac/tictac/store"
)

// statsSlots is how many groups the sockets are split into for stats fan-out.
// Each interval is cut into this many ticks and each tick serves one group, so
// the writes of a fan-out are spread over the interval instead of arriving in
// one burst that would delay the moves queued behind them.
const statsSlots = 8

// statsRelay turns the store's stats feed into statsUpdate frames: each socket
// gets at most one frame per interval, only when something changed since its
// last one, and each frame is encoded once for its whole group.
type statsRelay struct {
	full atomic.Pointer[[]byte]      // every stat at its latest value, for new sockets
	last atomic.Pointer[store.Stats] // the latest value, for metrics
}

// latest returns the newest stats the relay has seen (zero before the first).
func (s *statsRelay) latest() store.Stats {
	if p := s.last.Load(); p != nil {
		return *p
	}
	return store.Stats{}
}

func (s *statsRelay) run(ctx context.Context, sub *store.Subscription, interval time.Duration, fanout func(slot int, f []byte)) error {
	var latest store.Stats
	var sent [statsSlots]store.Stats // what each group was last sent
	select {
	case <-ctx.Done():
		return ctx.Err()
	case st, ok := <-sub.C():
		if !ok {
			return errors.New("stats feed closed")
		}
		latest = st
	}
	s.setFull(&latest)
	for i := range sent {
		fanout(i, *s.full.Load()) // sockets that came before the first value
		sent[i] = latest
	}
	tick := time.NewTicker(interval / statsSlots)
	defer tick.Stop()
	slot := 0
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case st, ok := <-sub.C():
			if !ok {
				return errors.New("stats feed closed")
			}
			if st != latest {
				latest = st
				s.setFull(&latest)
			}
		case <-tick.C:
			if f := frameStats(&sent[slot], &latest, false); f != nil {
				fanout(slot, f)
				sent[slot] = latest
			}
			slot = (slot + 1) % statsSlots
		}
	}
}

func (s *statsRelay) setFull(st *store.Stats) {
	f := frameStats(nil, st, true)
	s.full.Store(&f)
	v := *st
	s.last.Store(&v)
}
