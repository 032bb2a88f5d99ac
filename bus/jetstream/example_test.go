package jetstream_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/wfeventbus/eventbus/bus"
	"github.com/wfeventbus/eventbus/bus/embedded"
	"github.com/wfeventbus/eventbus/bus/jetstream"
)

func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "eventbus-example-*")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	srv, err := embedded.Start(ctx, embedded.Config{StoreDir: dir, Port: embedded.RandomPort})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Shutdown(ctx)

	nc, err := jetstream.Connect(ctx, jetstream.ConnectConfig{URLs: []string{srv.ClientURL()}, Name: "example"})
	if err != nil {
		fmt.Println(err)
		return
	}
	b, err := jetstream.New(nc, jetstream.WithOwnedConn())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer b.Close()

	if _, err := b.EnsureStream(ctx, bus.StreamConfig{Name: "ORDERS", Subjects: []string{"orders.>"}}); err != nil {
		fmt.Println(err)
		return
	}
	if _, err := b.EnsureConsumer(ctx, bus.ConsumerConfig{Durable: "billing", Stream: "ORDERS", AckWait: 30 * time.Second}); err != nil {
		fmt.Println(err)
		return
	}
	ack, err := b.Publish(ctx, bus.OutgoingMessage{Subject: "orders.created", Payload: []byte(`{"id":42}`), CorrelationID: "req-1"})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("stored as", ack.Stream, ack.Sequence)

	msgs, err := b.Fetch(ctx, "ORDERS", "billing", bus.FetchOptions{Batch: 10, MaxWait: time.Second})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, m := range msgs {
		fmt.Println(m.Subject, string(m.Payload), m.Headers.Get(bus.CorrelationIDHeader), "delivery", m.DeliveryCount)
		// The token can travel (to another pipeline step, say) and settle
		// the delivery through the bus later.
		if err := b.Ack(ctx, m.AckToken); err != nil {
			fmt.Println(err)
		}
	}
	// Output:
	// stored as ORDERS 1
	// orders.created {"id":42} req-1 delivery 1
}
