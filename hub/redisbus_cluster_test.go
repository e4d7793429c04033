package hub_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/rueidis"

	"github.com/tictac/tictac/hub"
	"github.com/tictac/tictac/internal/testenv"
)

// TestRedisBusClusterSpread subscribes many channels on a cluster of three
// masters and checks, on each node, which channels it holds: every channel
// is subscribed once, and the channels are spread over every node.
func TestRedisBusClusterSpread(t *testing.T) {
	t.Parallel()
	url, nodes := testenv.RedisCluster(t, 3, 0)
	bus := newRedisBus(t, url, hub.RedisBusOptions{})
	const n = 200
	for i := range n {
		subscribe(t, bus, fmt.Sprintf("tictac:game:spread-%d", i), newInbox(t, 1))
	}

	seen := map[string]string{}    // hub's channel name -> node
	tags := map[string]string{}    // hash tag of game channels -> node
	anchors := map[string]string{} // hash tag -> node of its partition's own subscription
	for _, nd := range nodes {
		admin := nodeClient(t, nd.Addr)
		names, err := admin.Do(context.Background(), admin.B().PubsubShardchannels().Build()).AsStrSlice()
		if err != nil {
			t.Fatalf("PUBSUB SHARDCHANNELS on %s: %v", nd.Addr, err)
		}
		if len(names) < n/6 {
			t.Errorf("node %s holds %d of %d channels, want at least %d", nd.Addr, len(names), n, n/6)
		}
		for _, name := range names {
			tag, channel, ok := strings.Cut(name, "}")
			if !ok || !strings.HasPrefix(tag, "{") {
				t.Fatalf("channel %q on %s has no hash tag in front", name, nd.Addr)
			}
			if channel == "tictac:anchor" { // each partition's own subscription
				anchors[tag] = nd.Addr
				continue
			}
			if other, ok := tags[tag]; ok && other != nd.Addr {
				t.Errorf("tag %s} on %s and %s", tag, other, nd.Addr)
			}
			tags[tag] = nd.Addr
			if other, dup := seen[channel]; dup {
				t.Errorf("channel %s subscribed on %s and %s", channel, other, nd.Addr)
			}
			seen[channel] = nd.Addr
		}
	}
	if len(seen) != n {
		t.Errorf("%d channels subscribed on the cluster, want %d", len(seen), n)
	}
	// The tags' slots are spread evenly over the slots, and so over the
	// masters: 16 tags over three masters with a third of the slots each.
	perNode := map[string]int{}
	for _, addr := range tags {
		perNode[addr]++
	}
	if len(tags) != 16 || len(anchors) != 16 {
		t.Errorf("channels under %d hash tags, %d anchors; want 16 and 16", len(tags), len(anchors))
	}
	for tag, addr := range tags {
		if anchors[tag] != addr {
			t.Errorf("tag %s}: channels on %s, its anchor on %q", tag, addr, anchors[tag])
		}
	}
	for _, nd := range nodes {
		if got := perNode[nd.Addr]; got < 4 || got > 6 {
			t.Errorf("node %s holds %d of the 16 tags, want 4-6 (all: %v)", nd.Addr, got, perNode)
		}
	}
}

// TestRedisBusClusterSlotMoves moves the slot of a subscribed channel to
// another master: Redis drops the subscription, and the bus must subscribe
// again on the slot's new owner by itself, tell OnResubscribe, and deliver
// what is published afterwards.
func TestRedisBusClusterSlotMoves(t *testing.T) {
	t.Parallel()
	url, nodes := testenv.RedisCluster(t, 3, 0)
	resubscribed := make(chan []string, 4)
	reg := prometheus.NewRegistry()
	bus := newRedisBus(t, url, hub.RedisBusOptions{
		OnResubscribe: func(chs []string) { resubscribed <- chs },
		Registerer:    reg,
	})
	other := newRedisBus(t, url, hub.RedisBusOptions{})
	ch := "tictac:game:moving"
	in := newInbox(t, 64)
	first := subscribe(t, bus, ch, in)
	publish(t, other, ch, "before")
	if got := in.take(t, 1); got[0] != "before" {
		t.Fatalf("got %q, want before", got)
	}

	// Where the channel lives, and its slot.
	var (
		from, to int
		name     string
	)
	for i, nd := range nodes {
		admin := nodeClient(t, nd.Addr)
		names, err := admin.Do(context.Background(), admin.B().PubsubShardchannels().Build()).AsStrSlice()
		if err != nil {
			t.Fatal(err)
		}
		if j := slices.IndexFunc(names, func(s string) bool { return strings.HasSuffix(s, "}"+ch) }); j >= 0 {
			from, name = i, names[j]
		}
	}
	if name == "" {
		t.Fatalf("%s is subscribed on no node", ch)
	}
	to = (from + 1) % len(nodes)
	src := nodeClient(t, nodes[from].Addr)
	slot, err := src.Do(context.Background(), src.B().ClusterKeyslot().Key(name).Build()).AsInt64()
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(nodes))
	for i, nd := range nodes {
		c := nodeClient(t, nd.Addr)
		if ids[i], err = c.Do(context.Background(), c.B().ClusterMyid().Build()).ToString(); err != nil {
			t.Fatal(err)
		}
	}
	// The slot holds no keys, so it can be given away directly: the new
	// owner first, then the old one (which drops its subscribers), then
	// the third node.
	moveSlot := func(from, to int) {
		t.Helper()
		for _, i := range []int{to, from, 3 - to - from} {
			c := nodeClient(t, nodes[i].Addr)
			cmd := c.B().Arbitrary("CLUSTER", "SETSLOT").Args(strconv.FormatInt(slot, 10), "NODE", ids[to]).Build()
			if err := c.Do(context.Background(), cmd).Error(); err != nil {
				t.Fatalf("CLUSTER SETSLOT %d NODE on %s: %v", slot, nodes[i].Addr, err)
			}
		}
	}
	moveSlot(from, to)

	select {
	case chs := <-resubscribed:
		if got, want := fmt.Sprint(chs), fmt.Sprint([]string{ch}); got != want {
			t.Errorf("OnResubscribe got %s, want %s", got, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("OnResubscribe not called 10s after the slot moved")
	}
	dst := nodeClient(t, nodes[to].Addr)
	if got := shardNumSub(t, dst, name); got != 1 {
		t.Errorf("subscribers of %s on the slot's new owner: got %d, want 1", name, got)
	}
	// Publishers may need a redirect to learn where the slot went.
	deliversAgain(t, other, ch, in, "after", 10*time.Second)
	for name, want := range map[string]float64{"tictac_bus_disconnects_total": 1, "tictac_bus_reconnects_total": 1} {
		if got := counterValue(t, reg, name); got != want {
			t.Errorf("%s = %v, want %v (one partition moved)", name, got, want)
		}
	}

	// The slot moves back while its partition holds no game's channel:
	// the partition's own subscription still tells the bus, which is on
	// the right node again when the channel is subscribed anew.
	first()
	if got := shardNumSub(t, dst, name); got != 0 {
		t.Fatalf("subscribers of %s after cancel: got %d, want 0", name, got)
	}
	moveSlot(to, from)
	waitFor(t, "the partition to reconnect", func() bool { return counterValue(t, reg, "tictac_bus_reconnects_total") == 2 })
	again := newInbox(t, 64)
	subscribe(t, bus, ch, again)
	if got := shardNumSub(t, src, name); got != 1 {
		t.Errorf("subscribers of %s on its first owner again: got %d, want 1", name, got)
	}
	deliversAgain(t, other, ch, again, "back", 10*time.Second)
}

// nodeClient connects to one node of a cluster alone.
func nodeClient(tb testing.TB, addr string) rueidis.Client {
	tb.Helper()
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{addr}, ForceSingleClient: true, DisableCache: true})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(c.Close)
	return c
}

// TestRedisBusClusterFailover kills the master that holds a subscription:
// its replica takes over the slots, and the bus subscribes there by itself
// and delivers again.
func TestRedisBusClusterFailover(t *testing.T) {
	t.Parallel()
	url, nodes := testenv.RedisCluster(t, 3, 1)
	resubscribed := make(chan []string, 16)
	bus := newRedisBus(t, url, hub.RedisBusOptions{OnResubscribe: func(chs []string) {
		select {
		case resubscribed <- chs:
		default: // never block the bus
		}
	}})
	other := newRedisBus(t, url, hub.RedisBusOptions{})
	ch := "tictac:game:failover"
	in := newInbox(t, 256)
	subscribe(t, bus, ch, in)
	publish(t, other, ch, "before")
	if got := in.take(t, 1); string(got[0]) != "before" {
		t.Fatalf("got %q, want before", got)
	}
	var master *testenv.RedisNode
	for i, nd := range nodes {
		admin := nodeClient(t, nd.Addr)
		names, err := admin.Do(context.Background(), admin.B().PubsubShardchannels().Build()).AsStrSlice()
		if err != nil {
			t.Fatal(err)
		}
		if slices.ContainsFunc(names, func(s string) bool { return strings.HasSuffix(s, "}"+ch) }) {
			master = &nodes[i]
		}
	}
	if master == nil {
		t.Fatalf("%s is subscribed on no node", ch)
	}
	master.Proc.Stop() // SIGKILL

	// Every partition of the dead master reconnects; ch's tells of ch.
	for wait := time.After(30 * time.Second); ; {
		select {
		case chs := <-resubscribed:
			if !slices.Contains(chs, ch) {
				continue
			}
		case <-wait:
			t.Fatalf("OnResubscribe not told of %s 30s after its master died", ch)
		}
		break
	}
	deliversAgain(t, other, ch, in, "after", 20*time.Second)
}

// deliversAgain publishes msg on ch from bus until in gets it, for up to
// within: a cluster's publishers and subscribers may each need a moment to
// learn where a slot went, and publishing may fail meanwhile.
func deliversAgain(t *testing.T, bus hub.Bus, ch string, in *inbox, msg string, within time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(within); ; {
		if bus.Publish(context.Background(), ch, []byte(msg)) == nil {
			select {
			case m := <-in.c:
				if string(m) == msg {
					return
				}
			case <-time.After(100 * time.Millisecond):
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%q on %s not delivered within %v", msg, ch, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
