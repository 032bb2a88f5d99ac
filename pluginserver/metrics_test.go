package pluginserver_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wfeventbus/eventbus/eventbus"
	"github.com/wfeventbus/eventbus/pluginserver"
)

func TestMetricsCount(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := pluginserver.NewMetrics(reg)
	m.StreamDeclared("ORDERS")
	m.StreamDeclared("IDLE")
	m.ConsumerDeclared("ORDERS", "worker")
	m.ConsumerDeclared("IDLE", "reader")
	m.Published("ORDERS", 3)
	m.Settled("ORDERS", "worker", "ack")
	m.Settled("ORDERS", "worker", "ack")
	m.Settled("ORDERS", "worker", "term")
	m.DeadLettered("ORDERS", "worker")
	want := `
# HELP eventbus_messages_published_total Messages the publish step stored, by stream.
# TYPE eventbus_messages_published_total counter
eventbus_messages_published_total{stream="IDLE"} 0
eventbus_messages_published_total{stream="ORDERS"} 3
# HELP eventbus_messages_settled_total Deliveries settled by triggers and settle steps, by stream, consumer and settlement (ack, nak or term).
# TYPE eventbus_messages_settled_total counter
eventbus_messages_settled_total{consumer="reader",settlement="ack",stream="IDLE"} 0
eventbus_messages_settled_total{consumer="reader",settlement="nak",stream="IDLE"} 0
eventbus_messages_settled_total{consumer="reader",settlement="term",stream="IDLE"} 0
eventbus_messages_settled_total{consumer="worker",settlement="ack",stream="ORDERS"} 2
eventbus_messages_settled_total{consumer="worker",settlement="nak",stream="ORDERS"} 0
eventbus_messages_settled_total{consumer="worker",settlement="term",stream="ORDERS"} 1
# HELP eventbus_messages_dead_lettered_total Messages published to their consumer's dead-letter subject after their last allowed delivery, by stream and consumer.
# TYPE eventbus_messages_dead_lettered_total counter
eventbus_messages_dead_lettered_total{consumer="reader",stream="IDLE"} 0
eventbus_messages_dead_lettered_total{consumer="worker",stream="ORDERS"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"eventbus_messages_published_total", "eventbus_messages_settled_total",
		"eventbus_messages_dead_lettered_total"); err != nil {
		t.Fatal(err)
	}
}

func TestBacklogCollector(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	core := eventbus.New(eventbus.Options{})
	var mods []eventbus.Module
	for _, d := range []struct {
		typ, name string
		cfg       map[string]any
	}{
		{eventbus.TypeBroker, "bus", map[string]any{"embedded": map[string]any{"port": float64(-1), "store_dir": t.TempDir()}}},
		{eventbus.TypeStream, "s", map[string]any{"name": "BACKLOG", "subjects": []any{"backlog.>"}}},
		{eventbus.TypeConsumer, "c", map[string]any{"name": "reader", "stream_name": "BACKLOG"}},
	} {
		m, err := core.CreateModule(ctx, d.typ, d.name, d.cfg)
		if err != nil {
			t.Fatal(err)
		}
		mods = append(mods, m)
	}
	t.Cleanup(func() {
		for i := len(mods) - 1; i >= 0; i-- {
			_ = mods[i].Stop(context.Background())
		}
	})
	for _, m := range mods {
		if err := m.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	pub, err := core.CreateStep(ctx, eventbus.StepPublish, "p", map[string]any{"subject": "backlog.x", "payload": "p"})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := pub.Execute(ctx, eventbus.MapInput{}); err != nil {
			t.Fatal(err)
		}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(pluginserver.NewBacklogCollector(core))
	want := `
# HELP eventbus_consumer_pending_messages Messages of a consumer's stream not yet delivered to it.
# TYPE eventbus_consumer_pending_messages gauge
eventbus_consumer_pending_messages{broker="bus",consumer="reader",stream="BACKLOG"} 3
`
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := testutil.GatherAndCompare(reg, strings.NewReader(want), "eventbus_consumer_pending_messages")
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
