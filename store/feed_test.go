package store

import (
	"testing"
	"time"
)

// TestFeedSubscribedAsItCloses: a subscription that comes in as the store
// closes (after WatchStats checked it was open, before it subscribed) ends
// as the others do, with the last value first, rather than staying open
// until its context ends.
func TestFeedSubscribedAsItCloses(t *testing.T) {
	var f feed
	f.publish(Stats{TotalGames: 3})
	before := f.subscribe()
	f.closeAll()
	after := f.subscribe()
	for name, sub := range map[string]*Subscription{"before": before, "after": after} {
		got := Stats{}
		timeout := time.After(time.Second)
	read:
		for {
			select {
			case st, ok := <-sub.C():
				if !ok {
					break read
				}
				got = st
			case <-timeout:
				t.Fatalf("subscription %s the close still open", name)
			}
		}
		if got[TotalGames] != 3 {
			t.Errorf("subscription %s the close got %v, want the last value", name, got)
		}
		sub.Close() // closing again is harmless
	}
}
