package hub

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/rueidis"
)

// RedisBusOptions tune a RedisBus. Zero fields take the defaults given.
type RedisBusOptions struct {
	Logger *slog.Logger // slog.Default()
	// OnResubscribe is called, from the bus's own goroutine, after the
	// connection to Redis was lost and restored, with the channels whose
	// subscriptions were restored. Messages published during the outage are
	// lost, so the hub may use it to push the full state of those games. It
	// is not called for the first connection. Optional.
	OnResubscribe func(channels []string)
	// Registerer gets tictac_bus_disconnects_total and
	// tictac_bus_reconnects_total; nothing is registered if nil.
	Registerer prometheus.Registerer
}

const (
	// The wait between two attempts to reconnect doubles from reconnectMin
	// up to reconnectMax, with jitter.
	reconnectMin = 100 * time.Millisecond
	reconnectMax = 5 * time.Second
	// opTimeout bounds the Redis round trips the bus makes on its own
	// (SUNSUBSCRIBE from cancel, the probe and SSUBSCRIBE on reconnect).
	opTimeout = 5 * time.Second
	// clusterPartitions is how many subscription connections a replica
	// keeps to a Redis Cluster: a channel's subscription lives on the node
	// that owns the channel's hash slot, so the channels are spread over
	// this many hash tags (one slot each, spread evenly over the slots),
	// each with a connection of its own. Enough for the slots of up to 16
	// masters to each hold a share.
	clusterPartitions = 16
)

var (
	errBusClosed    = errors.New("redis bus closed")
	errDisconnected = errors.New("redis bus disconnected, reconnecting")
)

// RedisBus is the Bus between replicas, over Redis sharded pub/sub: one
// channel per game, SPUBLISH to publish, and SSUBSCRIBE on a connection of
// its own while this replica has a handler for the channel. It needs Redis
// 7 or later, standalone or a cluster. On a standalone server a channel is
// named in Redis as given, and all subscriptions share one connection. On a
// cluster each channel's name is prefixed with one of clusterPartitions hash
// tags, chosen by a hash of the name, and each tag has a subscription
// connection to the node that owns its slot; a connection whose slot moves
// to another node is opened again there.
type RedisBus struct {
	client        rueidis.Client
	addr          string
	log           *slog.Logger
	onResubscribe func([]string)
	disconnects   prometheus.Counter
	reconnects    prometheus.Counter

	ctx    context.Context // ends on Close; stops the supervisors
	cancel context.CancelFunc
	wg     sync.WaitGroup // the supervisors, one per partition
	once   sync.Once

	parts []*partition
	gen   atomic.Uint64 // generation of the newest subscription connection, of any partition

	mu     sync.RWMutex
	closed bool
	topics map[string]*topic // by the channel's name in Redis
}

var _ Bus = (*RedisBus)(nil)

// partition is a set of channels that share a subscription connection.
type partition struct {
	// tag prefixes the Redis names of its channels: a hash tag on a
	// cluster, so that they all live in one slot; empty on a standalone
	// server.
	tag string
	// sub is the live subscription connection, nil while reconnecting.
	sub atomic.Pointer[subConn]
}

// subConn is one dedicated connection in subscriber mode.
type subConn struct {
	dc   rueidis.DedicatedClient
	errs <-chan error // gets the error that broke the connection
	// lost gets an error when the connection is no longer fit to hold
	// subscriptions although it works: Redis dropped one of them by itself
	// (its slot moved to another node), or refused one (MOVED).
	lost chan error
	gen  uint64

	mu      sync.Mutex
	leaving map[string]int // channels with a SUNSUBSCRIBE of ours on the way
}

// drop asks the partition's supervisor to replace the connection.
func (sc *subConn) drop(err error) {
	select {
	case sc.lost <- err:
	default: // already asked
	}
}

// onSubscription runs on rueidis' read loop. An sunsubscribe that the bus
// did not send means Redis dropped the subscription itself, which a
// cluster does to every channel of a slot that moves to another node.
func (sc *subConn) onSubscription(s rueidis.PubSubSubscription) {
	if s.Kind != "sunsubscribe" {
		return
	}
	sc.mu.Lock()
	ours := sc.leaving[s.Channel] > 0
	sc.mu.Unlock()
	if !ours {
		sc.drop(fmt.Errorf("redis dropped the subscription to %s", s.Channel))
	}
}

// leave marks key as being unsubscribed by the bus until the returned func
// is called.
func (sc *subConn) leave(key string) func() {
	sc.mu.Lock()
	sc.leaving[key]++
	sc.mu.Unlock()
	return func() {
		sc.mu.Lock()
		if sc.leaving[key]--; sc.leaving[key] == 0 {
			delete(sc.leaving, key)
		}
		sc.mu.Unlock()
	}
}

// topic is a channel this replica has handlers for.
type topic struct {
	name string     // as the hub names it
	key  string     // its name in Redis
	part *partition // whose connection it is subscribed on

	// mu serializes SSUBSCRIBE and SUNSUBSCRIBE of this channel, and is held
	// across their round trips, so that a cancel followed by a Subscribe
	// reaches Redis in that order.
	mu  sync.Mutex
	gen uint64 // generation of the connection the channel is subscribed on; 0 for none

	handlers []*handler // guarded by RedisBus.mu; replaced, never modified in place
}

type handler struct{ fn func([]byte) }

// NewRedisBus connects to the Redis server at url (redis://host:port, or
// any URL rueidis.ParseURL accepts) and starts the goroutine that keeps the
// subscription connections alive. A URL naming a node of a Redis Cluster
// (or several, with addr= parameters) connects to the cluster. It fails,
// with an error naming the address, when the URL is bad, the server cannot
// be reached or is older than Redis 7.
// Close releases the bus.
func NewRedisBus(ctx context.Context, rawURL string, opt RedisBusOptions) (*RedisBus, error) {
	copt, err := rueidis.ParseURL(rawURL)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // url.Error repeats the URL, password included
		}
		return nil, fmt.Errorf("parse redis url: %w", err)
	}
	copt.DisableCache = true // no client-side caching: pub/sub only
	addr := strings.Join(copt.InitAddress, ",")
	client, err := rueidis.NewClient(copt)
	if err != nil {
		return nil, fmt.Errorf("redis %s: %w", addr, err)
	}
	probe := client.B().PubsubShardnumsub().Build()
	if err := client.Do(ctx, probe).Error(); err != nil {
		client.Close()
		return nil, fmt.Errorf("redis %s: sharded pub/sub (Redis 7 or later): %w", addr, err)
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	b := &RedisBus{
		client:        client,
		addr:          addr,
		log:           opt.Logger,
		onResubscribe: opt.OnResubscribe,
		disconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tictac_bus_disconnects_total", Help: "Times the subscription connection to Redis was lost.",
		}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tictac_bus_reconnects_total", Help: "Times the bus reconnected to Redis and resubscribed.",
		}),
		topics: make(map[string]*topic),
	}
	if client.Mode() == rueidis.ClientModeCluster {
		for _, tag := range clusterTags(clusterPartitions) {
			b.parts = append(b.parts, &partition{tag: tag})
		}
	} else {
		b.parts = []*partition{{}}
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	conns := make([]*subConn, len(b.parts))
	for i, p := range b.parts {
		sc, err := b.connect(ctx, p)
		for attempt := 1; attempt < 5 && isMoved(err); attempt++ {
			// A slot moving as we start: the client's slot map catches up.
			select {
			case <-ctx.Done():
			case <-time.After(time.Duration(attempt) * reconnectMin):
				sc, err = b.connect(ctx, p)
			}
		}
		if err != nil {
			for _, sc := range conns[:i] {
				sc.dc.Close()
			}
			b.cancel()
			client.Close()
			return nil, fmt.Errorf("redis %s: %w", addr, err)
		}
		p.sub.Store(sc)
		conns[i] = sc
	}
	if opt.Registerer != nil {
		opt.Registerer.MustRegister(b.disconnects, b.reconnects)
	}
	for i, p := range b.parts {
		b.wg.Go(func() { b.supervise(p, conns[i]) })
	}
	return b, nil
}

// clusterTags returns n hash tags whose slots are spread evenly over a
// cluster's 16,384: the i-th lies in the i-th n-th of them, so that
// masters given equal ranges of slots (as redis-cli --cluster create and
// rebalance do) hold equal shares of the channels. Every replica computes
// the same tags.
func clusterTags(n int) []string {
	tags := make([]string, 0, n)
	for k := range n {
		lo, hi := uint16(k*16384/n), uint16((k+1)*16384/n-1)
		for i := 0; ; i++ {
			name := "tictac:" + strconv.Itoa(i)
			if s := keySlot(name); s >= lo && s <= hi {
				tags = append(tags, "{"+name+"}")
				break
			}
		}
	}
	return tags
}

// keySlot is the Redis Cluster hash slot of key: the CRC16 (XMODEM) of its
// hash tag (what is between its first '{' and the next '}', if not empty),
// or else of all of it, modulo 16,384.
func keySlot(key string) uint16 {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	var crc uint16
	for i := range len(key) {
		crc ^= uint16(key[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc % 16384
}

// locate returns the partition of channel and the channel's name in Redis.
func (b *RedisBus) locate(channel string) (*partition, string) {
	if len(b.parts) == 1 {
		p := b.parts[0]
		return p, p.tag + channel
	}
	h := fnv.New32a()
	h.Write([]byte(channel))
	p := b.parts[h.Sum32()%uint32(len(b.parts))]
	return p, p.tag + channel
}

// Close stops the bus and closes its connections. Subscribe and Publish fail
// afterwards; cancel functions may still be called.
func (b *RedisBus) Close() {
	b.once.Do(func() {
		b.mu.Lock()
		b.closed = true
		b.mu.Unlock()
		b.cancel()
		b.wg.Wait()
		b.client.Close()
	})
}

// Subscribe calls fn with every message published on channel, on any
// replica, from the moment it returns until cancel is called: it returns
// once Redis has confirmed the subscription. The []byte given to fn is
// shared by all handlers of the message and never reused, so fn may keep it
// but must not modify it. It fails while the connection to Redis is down,
// and after Close.
func (b *RedisBus) Subscribe(ctx context.Context, channel string, fn func(msg []byte)) (func(), error) {
	h := &handler{fn: fn}
	part, key := b.locate(channel)
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, fmt.Errorf("subscribe %s: %w", channel, errBusClosed)
	}
	t := b.topics[key]
	if t == nil {
		t = &topic{name: channel, key: key, part: part}
		b.topics[key] = t
	}
	t.handlers = append(t.handlers[:len(t.handlers):len(t.handlers)], h)
	b.mu.Unlock()

	if err := b.ensureSubscribed(ctx, t); err != nil {
		b.remove(t, h)
		return nil, fmt.Errorf("subscribe %s: %w", channel, err)
	}
	var once sync.Once
	return func() { once.Do(func() { b.remove(t, h) }) }, nil
}

// ensureSubscribed subscribes t on its partition's connection unless it
// already is. On a cluster whose slot moved under a connection that held no
// subscription to be dropped (so nothing told the bus), Redis answers MOVED:
// the connection is replaced, and t, which has a handler, is subscribed on
// the new one, which this waits for.
func (b *RedisBus) ensureSubscribed(ctx context.Context, t *topic) error {
	gen, moved, err := b.trySubscribe(ctx, t)
	if !moved {
		return err
	}
	for {
		if sc := t.part.sub.Load(); sc != nil && sc.gen != gen {
			break
		}
		select {
		case <-ctx.Done():
			return err
		case <-b.ctx.Done():
			return errBusClosed
		case <-time.After(10 * time.Millisecond):
		}
	}
	_, _, err = b.trySubscribe(ctx, t)
	return err
}

// isMoved reports whether err is, or wraps, Redis's MOVED redirection.
func isMoved(err error) bool {
	var re *rueidis.RedisError
	if !errors.As(err, &re) {
		return false
	}
	_, moved := re.IsMoved()
	return moved
}

// trySubscribe is one attempt of ensureSubscribed: it returns the
// generation of the connection it tried, and whether Redis answered MOVED.
func (b *RedisBus) trySubscribe(ctx context.Context, t *topic) (gen uint64, moved bool, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	sc := t.part.sub.Load()
	if sc == nil {
		return 0, false, errDisconnected
	}
	if t.gen == sc.gen {
		return sc.gen, false, nil
	}
	if err := sc.dc.Do(ctx, sc.dc.B().Ssubscribe().Channel(t.key).Build()).Error(); err != nil {
		if ctx.Err() != nil {
			// The SSUBSCRIBE may still reach Redis: count it as done, so
			// that the cancel that follows sends a SUNSUBSCRIBE after it.
			t.gen = sc.gen
		}
		if _, ok := rueidis.IsRedisErr(err); ok {
			// Refused, most likely MOVED: the slot is elsewhere now.
			sc.drop(fmt.Errorf("subscribe %s: %w", t.key, err))
			moved = isMoved(err)
		}
		return sc.gen, moved, err
	}
	t.gen = sc.gen
	return sc.gen, false, nil
}

// remove takes h off t, and unsubscribes t if h was its last handler.
func (b *RedisBus) remove(t *topic, h *handler) {
	b.mu.Lock()
	next := make([]*handler, 0, len(t.handlers))
	for _, o := range t.handlers {
		if o != h {
			next = append(next, o)
		}
	}
	t.handlers = next
	b.mu.Unlock()
	if len(next) > 0 {
		return
	}

	t.mu.Lock()
	defer t.mu.Unlock()
	b.mu.RLock()
	taken := len(t.handlers) > 0
	b.mu.RUnlock()
	if taken {
		return // a Subscribe came in meanwhile: the subscription is its now
	}
	if sc := t.part.sub.Load(); sc != nil && t.gen == sc.gen {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		left := sc.leave(t.key)
		err := sc.dc.Do(ctx, sc.dc.B().Sunsubscribe().Channel(t.key).Build()).Error()
		if err == nil {
			// Else its answer may still come: the channel stays marked
			// for as long as this connection lives.
			left()
		}
		cancel()
		if err != nil && !errors.Is(err, rueidis.ErrClosing) {
			// Most likely the connection broke, taking the subscription
			// with it; else a stray subscription stays until the next
			// reconnect, its messages dropped for want of handlers.
			b.log.Info("redis bus: unsubscribe", "channel", t.name, "err", err)
		}
	}
	t.gen = 0
	// Deleted only now, with the SUNSUBSCRIBE done, so that a new topic for
	// this channel cannot send its SSUBSCRIBE first.
	b.mu.Lock()
	if len(t.handlers) == 0 && b.topics[t.key] == t {
		delete(b.topics, t.key)
	}
	b.mu.Unlock()
}

// Publish sends msg to every subscriber of channel, on every replica, with
// SPUBLISH. It fails while Redis cannot be reached, and after Close.
func (b *RedisBus) Publish(ctx context.Context, channel string, msg []byte) error {
	_, key := b.locate(channel)
	cmd := b.client.B().Spublish().Channel(key).Message(rueidis.BinaryString(msg)).Build()
	if err := b.client.Do(ctx, cmd).Error(); err != nil {
		return fmt.Errorf("publish to %s: %w", channel, err)
	}
	return nil
}

// onMessage runs on rueidis' read loop: it only hands the message to the
// handlers, which do not block.
func (b *RedisBus) onMessage(m rueidis.PubSubMessage) {
	b.mu.RLock()
	var hs []*handler
	if t := b.topics[m.Channel]; t != nil {
		hs = t.handlers
	}
	b.mu.RUnlock()
	if len(hs) == 0 {
		return
	}
	msg := []byte(m.Message) // one copy, shared by the handlers
	for _, h := range hs {
		h.fn(msg)
	}
}

// anchorChannel, after a partition's hash tag, names the channel each of
// its connections to a cluster subscribes first and keeps (see connect).
const anchorChannel = "tictac:anchor"

// connect opens a dedicated connection for p's subscriptions and checks
// that it is alive. On a cluster the check is a subscription of p's own, in
// p's slot: it binds the connection to the slot's node (rueidis picks the
// node by the first command's slot), Redis redirects it (MOVED) unless that
// node owns the slot, and Redis drops it (an sunsubscribe the bus did not
// send) when the slot moves, so that the connection is then replaced even
// if it holds no game's channel.
func (b *RedisBus) connect(ctx context.Context, p *partition) (*subConn, error) {
	dc, _ := b.client.Dedicate() // released by dc.Close
	sc := &subConn{dc: dc, lost: make(chan error, 1), gen: b.gen.Add(1), leaving: make(map[string]int)}
	sc.errs = dc.SetPubSubHooks(rueidis.PubSubHooks{OnMessage: b.onMessage, OnSubscription: sc.onSubscription})
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	check := dc.B().Ping().Build()
	if p.tag != "" {
		check = dc.B().Ssubscribe().Channel(p.tag + anchorChannel).Build()
	}
	if err := dc.Do(ctx, check).Error(); err != nil {
		dc.Close()
		return nil, fmt.Errorf("connect: %w", err)
	}
	return sc, nil
}

// supervise owns p's subscription connection: when it breaks, it
// reconnects with backoff and restores the subscriptions, until Close.
func (b *RedisBus) supervise(p *partition, sc *subConn) {
	for {
		var err error
		select {
		case <-b.ctx.Done():
			p.sub.Store(nil)
			sc.dc.Close()
			return
		case err = <-sc.errs:
		case err = <-sc.lost:
		}
		p.sub.Store(nil)
		sc.dc.Close()
		if err == nil {
			err = errors.New("subscription connection closed")
		}
		down := time.Now()
		b.disconnects.Inc()
		b.log.Warn("redis bus: connection lost, reconnecting", "addr", b.addr, "partition", p.tag, "err", err)
		if sc = b.reconnect(p); sc == nil {
			return // closed
		}
		b.log.Info("redis bus: reconnected", "addr", b.addr, "partition", p.tag, "outage", time.Since(down).Round(time.Millisecond))
	}
}

// reconnect retries until p has a connection with every channel of p that
// has handlers subscribed on it, and tells OnResubscribe. It returns nil
// once the bus is closed.
func (b *RedisBus) reconnect(p *partition) *subConn {
	delay := reconnectMin
	for attempt := 1; ; attempt++ {
		// Full jitter over the upper half keeps replicas from reconnecting in step.
		wait := delay/2 + rand.N(delay/2+1)
		select {
		case <-b.ctx.Done():
			return nil
		case <-time.After(wait):
		}
		delay = min(2*delay, reconnectMax)

		sc, err := b.connect(b.ctx, p)
		if err != nil {
			b.log.Debug("redis bus: reconnect", "addr", b.addr, "attempt", attempt, "err", err)
			continue
		}
		p.sub.Store(sc)
		channels, err := b.resubscribe(p, sc)
		if err != nil {
			p.sub.Store(nil)
			sc.dc.Close()
			b.log.Debug("redis bus: resubscribe", "addr", b.addr, "attempt", attempt, "err", err)
			continue
		}
		// Counted before OnResubscribe hears of it, so that whoever it tells
		// finds the reconnect counted.
		b.reconnects.Inc()
		b.log.Info("redis bus: resubscribed", "addr", b.addr, "partition", p.tag, "channels", len(channels))
		if b.onResubscribe != nil {
			b.onResubscribe(channels)
		}
		return sc
	}
}

// resubscribe subscribes, on sc, every channel of p that has handlers, in
// pipelined batches, and returns them.
func (b *RedisBus) resubscribe(p *partition, sc *subConn) ([]string, error) {
	b.mu.RLock()
	all := make([]*topic, 0, len(b.topics))
	for _, t := range b.topics {
		if t.part == p {
			all = append(all, t)
		}
	}
	b.mu.RUnlock()

	var channels []string
	const batch = 256
	for len(all) > 0 {
		n := min(batch, len(all))
		done, err := b.resubscribeBatch(sc, all[:n])
		if err != nil {
			return nil, err
		}
		channels = append(channels, done...)
		all = all[n:]
	}
	return channels, nil
}

// resubscribeBatch holds the topics' locks, so that no Subscribe or cancel
// of them runs between the check and the SSUBSCRIBE. Nobody else holds two
// topic locks, so taking several cannot deadlock.
func (b *RedisBus) resubscribeBatch(sc *subConn, ts []*topic) ([]string, error) {
	for _, t := range ts {
		t.mu.Lock()
	}
	defer func() {
		for _, t := range ts {
			t.mu.Unlock()
		}
	}()
	var (
		channels []string
		pending  []*topic
		cmds     rueidis.Commands
	)
	b.mu.RLock()
	for _, t := range ts {
		if len(t.handlers) == 0 {
			continue
		}
		channels = append(channels, t.name)
		if t.gen != sc.gen { // else a Subscribe already did it
			pending = append(pending, t)
			cmds = append(cmds, sc.dc.B().Ssubscribe().Channel(t.key).Build())
		}
	}
	b.mu.RUnlock()
	if len(cmds) == 0 {
		return channels, nil
	}
	ctx, cancel := context.WithTimeout(b.ctx, opTimeout)
	defer cancel()
	for i, r := range sc.dc.DoMulti(ctx, cmds...) {
		if err := r.Error(); err != nil {
			return nil, fmt.Errorf("subscribe %s: %w", pending[i].key, err)
		}
		pending[i].gen = sc.gen
	}
	return channels, nil
}

// Ping checks that Redis answers.
func (b *RedisBus) Ping(ctx context.Context) error {
	if err := b.client.Do(ctx, b.client.B().Ping().Build()).Error(); err != nil {
		return fmt.Errorf("ping redis %s: %w", b.addr, err)
	}
	return nil
}
