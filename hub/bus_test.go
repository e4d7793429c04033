package hub_test

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tictac/tictac/hub"
	"github.com/tictac/tictac/internal/testenv"
)

// busImpl makes n buses that see each other: n replicas. A MemoryBus is a
// single replica, so it is the same bus n times. A Redis bus needs a
// server, which redis starts in the implementation's subtest and whose URL
// it returns.
type busImpl struct {
	name  string
	buses func(t *testing.T, n int) []hub.Bus
	redis func(t *testing.T) string
}

// TestBusConformance runs the same contract against every Bus.
//
// The bus tests (here and in redisbus_test.go) run in parallel with one
// another but not with the rest of the package: the load of a Redis server
// and of the churn below skews the hub's timing-sensitive tests (TestFlood).
func TestBusConformance(t *testing.T) {
	impls := []busImpl{
		{name: "memory", buses: func(t *testing.T, n int) []hub.Bus {
			b := hub.NewMemoryBus()
			out := make([]hub.Bus, n)
			for i := range out {
				out[i] = b
			}
			return out
		}},
		{name: "redis", redis: func(t *testing.T) string { url, _ := testenv.Redis(t); return url }},
		{name: "redis cluster", redis: func(t *testing.T) string { url, _ := testenv.RedisCluster(t, 3, 0); return url }},
	}
	cases := []struct {
		name string
		run  func(t *testing.T, buses func(t *testing.T, n int) []hub.Bus)
	}{
		{"delivers to every handler of the channel only", testBusDelivery},
		{"cancel stops delivery", testBusCancel},
		{"cancel then subscribe again delivers", testBusResubscribe},
		{"keeps each publisher's order", testBusOrder},
		{"messages are not reused", testBusNoReuse},
		{"delivers across replicas", testBusReplicas},
		{"concurrent publishers and subscribers", testBusConcurrent},
	}
	for _, impl := range impls {
		t.Run(impl.name, func(t *testing.T) {
			t.Parallel()
			if impl.redis != nil {
				url := impl.redis(t) // one server, one channel name per test
				impl.buses = func(t *testing.T, n int) []hub.Bus {
					out := make([]hub.Bus, n)
					for i := range out {
						out[i] = newRedisBus(t, url, hub.RedisBusOptions{})
					}
					return out
				}
			}
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					t.Parallel()
					c.run(t, impl.buses)
				})
			}
		})
	}
}

func testBusDelivery(t *testing.T, buses func(*testing.T, int) []hub.Bus) {
	bus := buses(t, 1)[0]
	a, b := testChannel(t, "a"), testChannel(t, "b")
	a1, a2, b1 := newInbox(t, 8), newInbox(t, 8), newInbox(t, 8)
	subscribe(t, bus, a, a1)
	subscribe(t, bus, a, a2)
	subscribe(t, bus, b, b1)

	publish(t, bus, a, "to a")
	publish(t, bus, b, "to b")
	// Markers last: once a handler has its channel's marker, everything
	// published before on that channel has arrived.
	publish(t, bus, a, "end")
	publish(t, bus, b, "end")
	for _, tc := range []struct {
		name string
		in   *inbox
		want []string
	}{
		{"first handler of a", a1, []string{"to a", "end"}},
		{"second handler of a", a2, []string{"to a", "end"}},
		{"handler of b", b1, []string{"to b", "end"}},
	} {
		if got := tc.in.take(t, len(tc.want)); fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%s got %q, want %q", tc.name, got, tc.want)
		}
		tc.in.none(t)
	}
}

func testBusCancel(t *testing.T, buses func(*testing.T, int) []hub.Bus) {
	bus := buses(t, 1)[0]
	ch := testChannel(t, "g")
	gone, stays := newInbox(t, 8), newInbox(t, 8)
	cancel := subscribe(t, bus, ch, gone)
	subscribe(t, bus, ch, stays)

	publish(t, bus, ch, "before")
	for _, in := range []*inbox{gone, stays} {
		if got, want := in.take(t, 1)[0], "before"; got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	cancel()
	cancel() // a second call does nothing
	publish(t, bus, ch, "after")

	if got, want := stays.take(t, 1)[0], "after"; got != want {
		t.Errorf("remaining handler got %q, want %q", got, want)
	}
	// Both handlers are called for one message, so "after" would have
	// reached the cancelled one by now.
	gone.none(t)
}

func testBusResubscribe(t *testing.T, buses func(*testing.T, int) []hub.Bus) {
	bs := buses(t, 2)
	sub, pub := bs[0], bs[1]
	ch := testChannel(t, "g")
	for i := range 20 {
		in := newInbox(t, 1)
		cancel := subscribe(t, sub, ch, newInbox(t, 1))
		cancel()
		cancel = subscribe(t, sub, ch, in)
		msg := strconv.Itoa(i)
		publish(t, pub, ch, msg)
		if got := in.take(t, 1)[0]; got != msg {
			t.Fatalf("round %d: got %q, want %q", i, got, msg)
		}
		cancel()
	}
}

func testBusOrder(t *testing.T, buses func(*testing.T, int) []hub.Bus) {
	const n = 1000
	bs := buses(t, 2)
	ch := testChannel(t, "g")
	in := newInbox(t, n)
	subscribe(t, bs[0], ch, in)
	for i := range n {
		publish(t, bs[1], ch, strconv.Itoa(i))
	}
	for i, got := range in.take(t, n) {
		if want := strconv.Itoa(i); got != want {
			t.Fatalf("message %d is %q, want %q", i, got, want)
		}
	}
}

func testBusNoReuse(t *testing.T, buses func(*testing.T, int) []hub.Bus) {
	bs := buses(t, 2)
	ch := testChannel(t, "g")
	var (
		mu   sync.Mutex
		kept [][]byte
		got  = make(chan struct{}, 2)
	)
	cancel, err := bs[0].Subscribe(t.Context(), ch, func(msg []byte) {
		mu.Lock()
		kept = append(kept, msg) // retained, as the hub's send queues do
		mu.Unlock()
		got <- struct{}{}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cancel()
	for _, m := range []string{"aaaa", "bbbb"} {
		publish(t, bs[1], ch, m)
		<-got
	}
	mu.Lock()
	defer mu.Unlock()
	if got, want := fmt.Sprintf("%s", kept), "[aaaa bbbb]"; got != want {
		t.Errorf("kept %s, want %s", got, want)
	}
}

func testBusReplicas(t *testing.T, buses func(*testing.T, int) []hub.Bus) {
	bs := buses(t, 2)
	ch := testChannel(t, "g")
	in0, in1 := newInbox(t, 4), newInbox(t, 4)
	subscribe(t, bs[0], ch, in0)
	subscribe(t, bs[1], ch, in1)
	publish(t, bs[0], ch, "from 0")
	publish(t, bs[1], ch, "from 1")
	for i, in := range []*inbox{in0, in1} {
		if got, want := fmt.Sprint(in.take(t, 2)), "[from 0 from 1]"; got != want {
			t.Errorf("replica %d got %s, want %s", i, got, want)
		}
	}
}

// testBusConcurrent publishes on several channels from several replicas
// while other handlers come and go, and checks that the handlers present
// throughout got every message, in each publisher's order.
func testBusConcurrent(t *testing.T, buses func(*testing.T, int) []hub.Bus) {
	const (
		channels   = 4
		publishers = 3 // per channel
		messages   = 100
	)
	bs := buses(t, 3)
	ctx := t.Context()
	var steady [channels][]*inbox
	for c := range channels {
		for _, bus := range bs {
			in := newInbox(t, publishers*messages)
			subscribe(t, bus, testChannel(t, strconv.Itoa(c)), in)
			steady[c] = append(steady[c], in)
		}
	}

	stop := make(chan struct{})
	var churn sync.WaitGroup
	var churned atomic.Int64
	for i := range 2 * len(bs) {
		churn.Go(func() {
			// Half on the steady channels, half on channels of their own,
			// which each Subscribe and cancel (un)subscribes.
			bus, ch := bs[i%len(bs)], testChannel(t, strconv.Itoa(i%channels))
			if i%2 == 1 {
				ch = testChannel(t, "churn"+strconv.Itoa(i))
			}
			for range 300 { // bounded: on the steady channels a cycle costs no I/O
				select {
				case <-stop:
					return
				default:
				}
				cancel, err := bus.Subscribe(ctx, ch, func([]byte) {})
				if err != nil {
					t.Error(err)
					return
				}
				cancel()
				churned.Add(1)
			}
		})
	}

	var pubs sync.WaitGroup
	for c := range channels {
		for p := range publishers {
			pubs.Go(func() {
				bus, ch := bs[p%len(bs)], testChannel(t, strconv.Itoa(c))
				for m := range messages {
					if err := bus.Publish(ctx, ch, fmt.Appendf(nil, "%d %d", p, m)); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
	}
	pubs.Wait()
	close(stop)
	churn.Wait()
	if t.Failed() {
		return
	}

	for c, ins := range steady {
		for i, in := range ins {
			next := make([]int, publishers)
			for _, msg := range in.take(t, publishers*messages) {
				var p, m int
				if _, err := fmt.Sscanf(msg, "%d %d", &p, &m); err != nil {
					t.Fatalf("channel %d handler %d: bad message %q", c, i, msg)
				}
				if m != next[p] {
					t.Fatalf("channel %d handler %d: publisher %d's message %d came after %d", c, i, p, m, next[p]-1)
				}
				next[p]++
			}
		}
	}
	t.Logf("%d subscribe/cancel cycles meanwhile", churned.Load())
}

// inbox records a handler's messages without blocking it.
type inbox struct {
	c        chan []byte
	overflow atomic.Bool
}

func newInbox(tb testing.TB, size int) *inbox {
	in := &inbox{c: make(chan []byte, size)}
	tb.Cleanup(func() {
		if in.overflow.Load() {
			tb.Error("inbox overflowed: more messages than expected")
		}
	})
	return in
}

func (in *inbox) fn(msg []byte) {
	select {
	case in.c <- msg:
	default:
		in.overflow.Store(true)
	}
}

// take waits for n messages.
func (in *inbox) take(tb testing.TB, n int) []string {
	tb.Helper()
	out := make([]string, 0, n)
	timeout := time.After(5 * time.Second)
	for len(out) < n {
		select {
		case m := <-in.c:
			out = append(out, string(m))
		case <-timeout:
			tb.Fatalf("got %d messages after 5s, want %d: %q", len(out), n, out)
		}
	}
	return out
}

// none checks that no message is waiting.
func (in *inbox) none(tb testing.TB) {
	tb.Helper()
	select {
	case m := <-in.c:
		tb.Errorf("unexpected message %q", m)
	default:
	}
}

// testChannel names a game channel of its own for the running test.
func testChannel(tb testing.TB, suffix string) string {
	return "tictac:game:" + tb.Name() + "/" + suffix
}

func subscribe(tb testing.TB, bus hub.Bus, ch string, in *inbox) func() {
	tb.Helper()
	cancel, err := bus.Subscribe(context.Background(), ch, in.fn)
	if err != nil {
		tb.Fatalf("subscribe %s: %v", ch, err)
	}
	tb.Cleanup(cancel)
	return cancel
}

func publish(tb testing.TB, bus hub.Bus, ch, msg string) {
	tb.Helper()
	if err := bus.Publish(context.Background(), ch, []byte(msg)); err != nil {
		tb.Fatalf("publish %s: %v", ch, err)
	}
}

// newRedisBus connects a RedisBus to url, logging to the test, closed when
// the test ends.
func newRedisBus(tb testing.TB, url string, opt hub.RedisBusOptions) *hub.RedisBus {
	tb.Helper()
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.NewTextHandler(tbWriter{tb}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	b, err := hub.NewRedisBus(context.Background(), url, opt)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(b.Close)
	return b
}
