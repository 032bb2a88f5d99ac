package bustest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/wfeventbus/eventbus/bus"
)

// testSharedConsumer runs one subscription on each of two buses (two
// processes of one application) against one durable consumer, publishes
// 1,000 messages, and checks that every one is handled exactly once: never
// by both buses, never by two handlers at the same time, and that both
// buses took part.
func testSharedConsumer(t *testing.T, s *suite) {
	const total = 1000
	f := s.setup(t)
	other := f.bus
	if f.env.Connect != nil {
		other = f.env.Connect(t)
		if other == nil {
			t.Fatal("bustest: Env.Connect returned a nil Bus")
		}
	}
	ctx := guard(t)

	var (
		mu        sync.Mutex
		inFlight  = make(map[uint64]int)
		handled   = make(map[uint64]int)
		byBus     [2]int
		overlaps  []string
		ackErr    error
		delivered int
	)
	done := make(chan struct{})
	handler := func(which int) bus.Handler {
		return func(hctx context.Context, m *bus.Message) {
			mu.Lock()
			seq := m.StreamSequence
			inFlight[seq]++
			if inFlight[seq] > 1 {
				overlaps = append(overlaps, fmt.Sprintf("seq %d on bus %d while in flight elsewhere", seq, which))
			}
			mu.Unlock()

			err := m.Ack(hctx)

			mu.Lock()
			defer mu.Unlock()
			inFlight[seq]--
			ackErr = errors.Join(ackErr, err)
			delivered++
			byBus[which]++
			if handled[seq]++; handled[seq] == 1 && len(handled) == total {
				close(done)
			}
		}
	}
	subs := []bus.Subscription{
		f.subscribe(t, handler(0), bus.SubscribeOptions{Concurrency: 4}),
		subscribeOn(t, other, f, handler(1), bus.SubscribeOptions{Concurrency: 4}),
	}
	f.publish(t, "a", total)
	wait(t, done, "every message to be handled")
	for i, sub := range subs {
		if err := sub.Stop(ctx); err != nil {
			t.Errorf("Stop subscription %d: %v", i, err)
		}
	}

	mu.Lock()
	defer mu.Unlock()
	t.Logf("handled=%d unique=%d bus0=%d bus1=%d", delivered, len(handled), byBus[0], byBus[1])
	if ackErr != nil {
		t.Errorf("Ack in handler: %v", ackErr)
	}
	if len(overlaps) > 0 {
		t.Errorf("%d messages were handed to a second handler while in flight: %q", len(overlaps), overlaps[:min(len(overlaps), 10)])
	}
	if delivered != total {
		t.Errorf("%d deliveries of %d messages: each should be handled once", delivered, total)
	}
	if byBus[0] == 0 || byBus[1] == 0 {
		t.Errorf("bus 0 handled %d and bus 1 handled %d messages: both should share the consumer", byBus[0], byBus[1])
	}
}

// subscribeOn is fixture.subscribe on bus b instead of f's.
func subscribeOn(t *testing.T, b bus.Bus, f *fixture, h bus.Handler, opts bus.SubscribeOptions) bus.Subscription {
	t.Helper()
	g := *f
	g.bus = b
	return g.subscribe(t, h, opts)
}
