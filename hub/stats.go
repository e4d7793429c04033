package hub

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/tictac/tictac/store"
)

// statsRelay turns the store's stats feed into statsUpdate frames: at most one
// every interval, only when something changed, and each encoded once for all.
type statsRelay struct {
	full atomic.Pointer[[]byte] // every stat as last broadcast, for new sockets
}

func (s *statsRelay) run(ctx context.Context, sub *store.Subscription, interval time.Duration, broadcast func([]byte)) error {
	var sent, latest store.Stats
	var last time.Time
	timer := time.NewTimer(0)
	if !timer.Stop() {
		<-timer.C
	}
	var due <-chan time.Time // non-nil while a send is scheduled
	send := func(full bool) {
		if f := frameStats(&sent, &latest, full); f != nil {
			broadcast(f)
		}
		sent, last = latest, time.Now()
		all := frameStats(nil, &sent, true)
		s.full.Store(&all)
	}
	first := true
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case st, ok := <-sub.C():
			if !ok {
				return errors.New("stats feed closed")
			}
			latest = st
			if first {
				first = false
				send(true)
				continue
			}
			if due != nil || latest == sent {
				continue
			}
			if wait := interval - time.Since(last); wait > 0 {
				timer.Reset(wait)
				due = timer.C
			} else {
				send(false)
			}
		case <-due:
			due = nil
			if latest != sent {
				send(false)
			}
		}
	}
}
