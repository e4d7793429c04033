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
	// full holds, per group, every stat as that group was last sent: what a
	// socket joining the group gets, so that the group's next update, a
	// difference from those values, is right for it too.
	full [statsSlots]atomic.Pointer[[]byte]
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
	s.setLatest(&latest)
	for i := range sent {
		sent[i] = latest
		s.setFull(i, &latest)
		fanout(i, *s.full[i].Load()) // sockets that came before the first value
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
				s.setLatest(&latest)
			}
		case <-tick.C:
			if f := frameStats(&sent[slot], &latest, false); f != nil {
				sent[slot] = latest
				s.setFull(slot, &latest) // before the fan-out: see Hub.register
				fanout(slot, f)
			}
			slot = (slot + 1) % statsSlots
		}
	}
}

func (s *statsRelay) setFull(slot int, st *store.Stats) {
	f := frameStats(nil, st, true)
	s.full[slot].Store(&f)
}

func (s *statsRelay) setLatest(st *store.Stats) {
	v := *st
	s.last.Store(&v)
}
