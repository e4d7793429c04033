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

// run relays the feed until ctx ends. fanout queues a frame on a group's
// sockets and returns how many it reached. A socket gets at most one frame per
// interval, and the replica sends at most budget frames a second in all: with
// many sockets each one hears less often, rather than the fan-out eating the
// cores that moves need (every frame is a system call).
func (s *statsRelay) run(ctx context.Context, sub *store.Subscription, interval time.Duration, budget int, fanout func(ctx context.Context, slot int, f []byte) int) error {
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
		fanout(ctx, i, *s.full[i].Load()) // sockets that came before the first value
	}
	tick := time.NewTimer(interval / statsSlots)
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
			wait := interval / statsSlots
			if f := frameStats(&sent[slot], &latest, false); f != nil {
				sent[slot] = latest
				s.setFull(slot, &latest) // before the fan-out: see Hub.register
				start := time.Now()
				n := fanout(ctx, slot, f)
				wait = max(wait, time.Duration(n)*time.Second/time.Duration(budget)) - time.Since(start)
			}
			tick.Reset(wait)
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
