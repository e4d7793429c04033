package hub

import (
	"context"
	"sync"
)

// Bus carries a game's messages between the replicas that have sockets in it,
// one channel per game. Delivery is at most once and ordered per publisher.
type Bus interface {
	// Subscribe calls fn with every message published on channel from the
	// moment Subscribe returns until cancel is called. fn must not block.
	Subscribe(ctx context.Context, channel string, fn func(msg []byte)) (cancel func(), err error)
	// Publish sends msg to every subscriber of channel, on every replica.
	Publish(ctx context.Context, channel string, msg []byte) error
}

// MemoryBus is the in-process Bus for a single replica.
type MemoryBus struct {
	mu   sync.RWMutex
	subs map[string]map[*func([]byte)]struct{}
}

var _ Bus = (*MemoryBus)(nil)

// NewMemoryBus returns an empty in-process bus.
func NewMemoryBus() *MemoryBus {
	return &MemoryBus{subs: make(map[string]map[*func([]byte)]struct{})}
}

// Subscribe registers fn on channel. It never fails.
func (b *MemoryBus) Subscribe(_ context.Context, channel string, fn func([]byte)) (func(), error) {
	key := &fn
	b.mu.Lock()
	set := b.subs[channel]
	if set == nil {
		set = make(map[*func([]byte)]struct{}, 1)
		b.subs[channel] = set
	}
	set[key] = struct{}{}
	b.mu.Unlock()
	return func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		if set := b.subs[channel]; set != nil {
			delete(set, key)
			if len(set) == 0 {
				delete(b.subs, channel)
			}
		}
	}, nil
}

// Publish calls every subscriber of channel in the caller's goroutine.
func (b *MemoryBus) Publish(_ context.Context, channel string, msg []byte) error {
	b.mu.RLock()
	var fns [4]func([]byte)
	list := fns[:0]
	for fn := range b.subs[channel] {
		list = append(list, *fn)
	}
	b.mu.RUnlock()
	for _, fn := range list {
		fn(msg)
	}
	return nil
}

// Channels returns how many channels have subscribers, for tests and metrics.
func (b *MemoryBus) Channels() int {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return len(b.subs)
}

// Ping always succeeds: the in-process bus cannot be unreachable.
func (b *MemoryBus) Ping(context.Context) error { return nil }
