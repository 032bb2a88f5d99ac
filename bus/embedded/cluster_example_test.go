package embedded_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wfeventbus/eventbus/bus/embedded"
)

func ExampleStartCluster() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "eventbus-cluster-example-*")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)

	c, err := embedded.StartCluster(ctx, embedded.ClusterConfig{
		StoreDir: dir, Port: embedded.RandomPort, ClusterPort: embedded.RandomPort,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Shutdown(ctx)

	// A client given every server's URL moves to another server when the
	// one it is on goes away.
	nc, err := nats.Connect(c.URLs())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		fmt.Println(err)
		return
	}
	// A cluster that has just formed may lose a request's answer while it
	// settles: embedded.CreateStream asks again.
	if _, err := embedded.CreateStream(ctx, js, jetstream.StreamConfig{Name: "ORDERS", Subjects: []string{"orders.>"}, Replicas: 3}); err != nil {
		fmt.Println(err)
		return
	}
	// A replicated stream takes publishes once its replicas have elected
	// a leader and every server routes the subject to it.
	leader, err := c.WaitStreamPublishable(ctx, "ORDERS", "orders.created")
	if err != nil {
		fmt.Println(err)
		return
	}
	if _, err := js.Publish(ctx, "orders.created", []byte(`{"id":1}`)); err != nil {
		fmt.Println(err)
		return
	}

	// The stream's leader goes away; another server takes over with the
	// message.
	if err := c.Stop(ctx, leader); err != nil {
		fmt.Println(err)
		return
	}
	next, err := c.WaitStreamCurrent(ctx, "ORDERS")
	if err != nil {
		fmt.Println(err)
		return
	}
	st, err := c.ReplicaState(next, "ORDERS")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(len(c.Names()), "servers; new leader differs:", next != leader, "; messages:", st.Messages)
	// Output: 3 servers; new leader differs: true ; messages: 1
}
