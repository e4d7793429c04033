package hub_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/rueidis"

	"github.com/tictac/tictac/hub"
	"github.com/tictac/tictac/internal/testenv"
)

func TestRedisBusSubscriptionsFollowHandlers(t *testing.T) {
	url, _ := testenv.Redis(t)
	bus := newRedisBus(t, url, hub.RedisBusOptions{})
	admin := newRedisClient(t, url)
	ch := "tictac:game:follow"

	if got := shardNumSub(t, admin, ch); got != 0 {
		t.Fatalf("subscribers before Subscribe: got %d, want 0", got)
	}
	cancel1 := subscribe(t, bus, ch, newInbox(t, 1))
	if got := shardNumSub(t, admin, ch); got != 1 {
		t.Errorf("after one Subscribe: got %d subscribers, want 1", got)
	}
	cancel2 := subscribe(t, bus, ch, newInbox(t, 1))
	if got := shardNumSub(t, admin, ch); got != 1 {
		t.Errorf("with two handlers: got %d subscribers, want 1", got)
	}
	cancel1()
	if got := shardNumSub(t, admin, ch); got != 1 {
		t.Errorf("after one of two cancels: got %d subscribers, want 1", got)
	}
	cancel2()
	if got := shardNumSub(t, admin, ch); got != 0 {
		t.Errorf("after both cancels: got %d subscribers, want 0", got)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := bus.Subscribe(ctx, ch, func([]byte) {}); err == nil {
		t.Error("Subscribe with a cancelled context: got no error")
	}
	if got := shardNumSub(t, admin, ch); got != 0 {
		t.Errorf("after a failed Subscribe: got %d subscribers, want 0", got)
	}
}

// TestRedisBusCancelRacesSubscribe cancels the last handler of a channel
// while another Subscribe of it runs: the channel must end subscribed. The
// bus's own unsubscribes must never pass for Redis dropping a subscription
// (which makes the bus reconnect).
func TestRedisBusCancelRacesSubscribe(t *testing.T) {
	url, _ := testenv.Redis(t)
	reg := prometheus.NewRegistry()
	bus := newRedisBus(t, url, hub.RedisBusOptions{Registerer: reg})
	admin := newRedisClient(t, url)
	for i := range 50 {
		ch := fmt.Sprintf("tictac:game:race-%d", i)
		cancel := subscribe(t, bus, ch, newInbox(t, 1))
		var (
			wg    sync.WaitGroup
			again func()
		)
		wg.Go(cancel)
		wg.Go(func() { again = subscribe(t, bus, ch, newInbox(t, 1)) })
		wg.Wait()
		if got := shardNumSub(t, admin, ch); got != 1 {
			t.Fatalf("round %d: got %d subscribers, want 1", i, got)
		}
		again()
		if got := shardNumSub(t, admin, ch); got != 0 {
			t.Fatalf("round %d after cancel: got %d subscribers, want 0", i, got)
		}
	}
	if got := counterValue(t, reg, "tictac_bus_disconnects_total"); got != 0 {
		t.Errorf("tictac_bus_disconnects_total = %v after 50 rounds, want 0", got)
	}
}

func TestRedisBusBadAddress(t *testing.T) {
	closed := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	for _, tc := range []struct {
		name, url string
		want      []string // in the error
	}{
		{"bad scheme", "http://127.0.0.1:6379", []string{"parse redis url", "scheme"}},
		{"bad url", "redis://:secret@[::1", []string{"parse redis url"}},
		{"nothing listening", "redis://" + closed, []string{"redis " + closed, "connection refused"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			b, err := hub.NewRedisBus(context.Background(), tc.url, hub.RedisBusOptions{})
			if err == nil {
				b.Close()
				t.Fatal("got no error")
			}
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("took %v to fail, want under 2s", took)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error %q shows the password", err)
			}
		})
	}
}

func TestRedisBusClose(t *testing.T) {
	url, _ := testenv.Redis(t)
	bus := newRedisBus(t, url, hub.RedisBusOptions{})
	cancel := subscribe(t, bus, "tictac:game:close", newInbox(t, 1))
	bus.Close()
	bus.Close()
	cancel() // after Close: must neither block nor panic
	if _, err := bus.Subscribe(context.Background(), "tictac:game:close", func([]byte) {}); err == nil {
		t.Error("Subscribe after Close: got no error")
	}
	if err := bus.Publish(context.Background(), "tictac:game:close", []byte("x")); err == nil {
		t.Error("Publish after Close: got no error")
	}
}

// TestRedisBusRestart stops the Redis server under a bus, checks that the
// bus reports the outage, then starts Redis again on the same port and
// checks that the bus resubscribes by itself and messages flow again.
func TestRedisBusRestart(t *testing.T) {
	url, proc := testenv.Redis(t)
	resubscribed := make(chan []string, 4)
	reg := prometheus.NewRegistry()
	bus := newRedisBus(t, url, hub.RedisBusOptions{
		OnResubscribe: func(chs []string) { resubscribed <- chs },
		Registerer:    reg,
	})
	kept, dropped := "tictac:game:kept", "tictac:game:dropped"
	in := newInbox(t, 16)
	subscribe(t, bus, kept, in)
	cancelDropped := subscribe(t, bus, dropped, newInbox(t, 1))

	proc.Stop()
	cancelDropped() // during the outage: not to be restored
	waitFor(t, "Publish to fail", func() bool {
		return bus.Publish(context.Background(), kept, []byte("lost")) != nil
	})
	waitFor(t, "Subscribe to fail", func() bool {
		cancel, err := bus.Subscribe(context.Background(), "tictac:game:during", func([]byte) {})
		if err == nil {
			cancel()
		}
		return err != nil
	})

	restartRedis(t, proc, strings.TrimPrefix(url, "redis://"))
	select {
	case chs := <-resubscribed:
		if got, want := fmt.Sprint(chs), fmt.Sprint([]string{kept}); got != want {
			t.Errorf("OnResubscribe got %s, want %s", got, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("OnResubscribe not called 10s after the restart")
	}
	for name, want := range map[string]float64{"tictac_bus_disconnects_total": 1, "tictac_bus_reconnects_total": 1} {
		if got := counterValue(t, reg, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	admin := newRedisClient(t, url)
	if got := shardNumSub(t, admin, kept); got != 1 {
		t.Errorf("subscribers of %s after the restart: got %d, want 1", kept, got)
	}
	if got := shardNumSub(t, admin, dropped); got != 0 {
		t.Errorf("subscribers of %s after the restart: got %d, want 0", dropped, got)
	}

	// The publishing connection may need one failed attempt to notice.
	other := newRedisBus(t, url, hub.RedisBusOptions{})
	publish(t, other, kept, "from another replica")
	waitFor(t, "Publish to work", func() bool {
		return bus.Publish(context.Background(), kept, []byte("from this replica")) == nil
	})
	if got, want := fmt.Sprint(in.take(t, 2)), "[from another replica from this replica]"; got != want {
		t.Errorf("after the restart got %s, want %s", got, want)
	}
	cancel := subscribe(t, bus, "tictac:game:after", newInbox(t, 1))
	cancel()
}

// restartRedis starts a redis-server like the stopped p, on the same port.
func restartRedis(tb testing.TB, p *testenv.Process, addr string) *testenv.Process {
	tb.Helper()
	p.Stop()
	np := testenv.Start(tb, p.Cmd.Path, p.Cmd.Args[1:]...)
	np.WaitTCP(tb, addr)
	return np
}

// waitFor polls cond for up to 10s.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("waited 10s for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func newRedisClient(tb testing.TB, url string) rueidis.Client {
	tb.Helper()
	opt, err := rueidis.ParseURL(url)
	if err != nil {
		tb.Fatal(err)
	}
	opt.DisableCache = true
	c, err := rueidis.NewClient(opt)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(c.Close)
	return c
}

// shardNumSub returns how many connections are subscribed to ch (PUBSUB SHARDNUMSUB).
func shardNumSub(tb testing.TB, c rueidis.Client, ch string) int64 {
	tb.Helper()
	reply, err := c.Do(context.Background(), c.B().PubsubShardnumsub().Channel(ch).Build()).ToArray()
	if err != nil {
		tb.Fatalf("PUBSUB SHARDNUMSUB %s: %v", ch, err)
	}
	if len(reply) != 2 {
		tb.Fatalf("PUBSUB SHARDNUMSUB %s: got %d values, want 2", ch, len(reply))
	}
	n, err := reply[1].AsInt64()
	if err != nil {
		tb.Fatalf("PUBSUB SHARDNUMSUB %s: %v", ch, err)
	}
	return n
}

func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name && len(f.GetMetric()) == 1 {
			return f.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no counter %s", name)
	return 0
}
