package jetstream_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/wfeventbus/eventbus/bus"
)

// BenchmarkSubscribeAck measures messages through a subscription that acks
// each one, with the stream filled beforehand.
func BenchmarkSubscribeAck(b *testing.B) {
	for _, workers := range []int{1, 8, 32} {
		b.Run(fmt.Sprintf("concurrency=%d", workers), func(b *testing.B) {
			e := newEnv(b)
			stream := e.stream(b, "BENCH", bus.StreamConfig{})
			consumer := e.consumer(b, stream, "c", bus.ConsumerConfig{MaxAckPending: -1})
			ctx := context.Background()
			msgs := make([]bus.OutgoingMessage, 1000)
			for i := range msgs {
				msgs[i] = bus.OutgoingMessage{Subject: "BENCH.x", Payload: make([]byte, 128)}
			}
			for left := b.N; left > 0; left -= len(msgs) {
				if _, err := e.bus.PublishBatch(ctx, msgs[:min(left, len(msgs))]); err != nil {
					b.Fatal(err)
				}
			}
			var handled atomic.Int64
			done := make(chan struct{})
			b.ResetTimer()
			sub, err := e.bus.Subscribe(ctx, stream, consumer, func(ctx context.Context, m *bus.Message) {
				_ = m.Ack(ctx)
				if handled.Add(1) == int64(b.N) {
					close(done)
				}
			}, bus.SubscribeOptions{Concurrency: workers})
			if err != nil {
				b.Fatal(err)
			}
			<-done
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msg/s")
			_ = sub.Stop(ctx)
		})
	}
}
