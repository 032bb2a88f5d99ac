package postgres_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/wfeventbus/eventbus/bus"
	"github.com/wfeventbus/eventbus/bus/postgres"
)

// A work queue on an application's own database: the Bus keeps its tables
// in the schema "eventbus" and creates them on first start.
func Example() {
	ctx := context.Background()
	b, err := postgres.Connect(ctx, postgres.Config{DSN: os.Getenv("DATABASE_URL")},
		postgres.WithTokenKey([]byte(os.Getenv("EVENTBUS_TOKEN_KEY"))))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer b.Close()

	if _, err := b.EnsureStream(ctx, bus.StreamConfig{Name: "JOBS", Subjects: []string{"jobs.>"}, Retention: bus.RetentionWorkQueue}); err != nil {
		fmt.Println(err)
		return
	}
	if _, err := b.EnsureConsumer(ctx, bus.ConsumerConfig{Durable: "workers", Stream: "JOBS", AckWait: time.Minute, MaxDeliver: 5}); err != nil {
		fmt.Println(err)
		return
	}
	if _, err := b.Publish(ctx, bus.OutgoingMessage{Subject: "jobs.resize", Payload: []byte(`{"image":42}`), MsgID: "resize-42"}); err != nil {
		fmt.Println(err)
		return
	}
	sub, err := b.Subscribe(ctx, "JOBS", "workers", func(ctx context.Context, m *bus.Message) {
		fmt.Println(m.Subject, string(m.Payload))
		_ = m.Ack(ctx)
	}, bus.SubscribeOptions{Concurrency: 8})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer sub.Stop(ctx)
}
