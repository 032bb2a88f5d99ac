package jetstream_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wfeventbus/eventbus/bus"
	"github.com/wfeventbus/eventbus/bus/embedded"
)

func TestStressTmp(t *testing.T) {
	for i := range 24 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			e := newEnvWith(t, embedded.Config{Port: embedded.RandomPort, MemoryOnly: true})
			s := e.stream(t, "S", bus.StreamConfig{Storage: bus.StorageMemory})
			c := e.consumer(t, s, "c", bus.ConsumerConfig{})
			for round := range 5 {
				for j := range 300 {
					e.publish(t, fmt.Sprintf("S.%d", j%3), "x")
				}
				var n atomic.Int64
				done := make(chan struct{})
				start := time.Now()
				sub, err := e.bus.Subscribe(context.Background(), s, c, func(ctx context.Context, m *bus.Message) {
					_ = m.Ack(ctx)
					if n.Add(1) == 300 {
						close(done)
					}
				}, bus.SubscribeOptions{Concurrency: 4, OrderedBySubject: true})
				if err != nil {
					t.Fatal(err)
				}
				select {
				case <-done:
				case <-time.After(5 * time.Second):
					ci, _ := e.raw.Consumer(context.Background(), s, c)
					info := ci.CachedInfo()
					t.Logf("stalled round %d: handled=%d pending=%d ackpending=%d waiting=%d redelivered=%d delivered=%+v ackfloor=%+v", round, n.Load(), info.NumPending, info.NumAckPending, info.NumWaiting, info.NumRedelivered, info.Delivered, info.AckFloor)
					<-done
				}
				if d := time.Since(start); d > 5*time.Second {
					t.Errorf("round %d took %v", round, d)
				}
				sub.Stop(context.Background())
			}
		})
	}
}
