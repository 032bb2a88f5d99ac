package pluginserver_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/wfeventbus/eventbus/bus/embedded"
	"github.com/wfeventbus/eventbus/eventbus"
	"github.com/wfeventbus/eventbus/pluginserver"
)

// clusterGuard bounds the waits of a test on a cluster; no assertion
// depends on it.
const clusterGuard = 90 * time.Second

// TestMetricsOnACluster reads the backlog and connection metrics of an app
// on a 3-node cluster with an R3 stream: the consumer's pending and
// ack-pending counts are the cluster's, the connection gauge names the
// server the app is on and, once that server is stopped, another, with the
// reconnect counted.
func TestMetricsOnACluster(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), clusterGuard)
	defer cancel()
	c, err := embedded.StartCluster(ctx, embedded.ClusterConfig{StoreDir: t.TempDir(), Port: embedded.RandomPort, ClusterPort: embedded.RandomPort})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Shutdown(context.Background()) })

	core := eventbus.New(eventbus.Options{})
	urls := make([]any, 0, 3)
	for _, u := range c.ClientURLs() {
		urls = append(urls, u)
	}
	var mods []eventbus.Module
	t.Cleanup(func() {
		for i := len(mods) - 1; i >= 0; i-- {
			_ = mods[i].Stop(context.Background())
		}
	})
	for _, d := range []struct {
		typ, name string
		cfg       map[string]any
	}{
		{eventbus.TypeBroker, "bus", map[string]any{"urls": urls}},
		{eventbus.TypeStream, "s", map[string]any{"name": "BACKLOG", "subjects": []any{"backlog.>"}, "num_replicas": float64(3)}},
		{eventbus.TypeConsumer, "c", map[string]any{"name": "reader", "stream_name": "BACKLOG", "ack_wait": "1h"}},
	} {
		m, err := core.CreateModule(ctx, d.typ, d.name, d.cfg)
		if err != nil {
			t.Fatal(err)
		}
		mods = append(mods, m)
		if err := m.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.WaitStreamPublishable(ctx, "BACKLOG", "backlog.x"); err != nil {
		t.Fatal(err)
	}
	pub, err := core.CreateStep(ctx, eventbus.StepPublish, "p", map[string]any{"subject": "backlog.x", "payload": "p"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		cfg := map[string]any{"subject": "backlog.x", "payload": "p", "msg_id": fmt.Sprint(i)}
		if _, err := pub.Execute(ctx, eventbus.MapInput{Rendered: cfg}); err != nil {
			t.Fatal(err)
		}
	}
	consume, err := core.CreateStep(ctx, eventbus.StepConsume, "c", map[string]any{"consumer": "reader", "batch_size": float64(2)})
	if err != nil {
		t.Fatal(err)
	}
	if out, err := consume.Execute(ctx, eventbus.MapInput{Rendered: map[string]any{"consumer": "reader", "batch_size": float64(2)}}); err != nil || out["count"] != float64(2) {
		t.Fatalf("consume: %v, %v; want 2 messages", out, err)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(pluginserver.NewBacklogCollector(core), pluginserver.NewConnectionCollector(core))
	backlog := `
# HELP eventbus_consumer_ack_pending_messages Messages delivered to a consumer and not yet settled.
# TYPE eventbus_consumer_ack_pending_messages gauge
eventbus_consumer_ack_pending_messages{broker="bus",consumer="reader",stream="BACKLOG"} 2
# HELP eventbus_consumer_pending_messages Messages of a consumer's stream not yet delivered to it.
# TYPE eventbus_consumer_pending_messages gauge
eventbus_consumer_pending_messages{broker="bus",consumer="reader",stream="BACKLOG"} 3
`
	waitUntil(t, ctx, func() error {
		return testutil.GatherAndCompare(reg, strings.NewReader(backlog), "eventbus_consumer_pending_messages", "eventbus_consumer_ack_pending_messages")
	})

	first, reconnects := connection(t, reg)
	if !slices.Contains(c.Names(), first) || reconnects != 0 {
		t.Fatalf("connected to %q after %v reconnects; want a server of %v and none", first, reconnects, c.Names())
	}
	if err := c.Stop(ctx, first); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, ctx, func() error {
		server, reconnects := connection(t, reg)
		if server == "" || server == first || reconnects != 1 {
			return fmt.Errorf("connected to %q after %v reconnects; want another server than %s after 1", server, reconnects, first)
		}
		return nil
	})
	waitUntil(t, ctx, func() error {
		return testutil.GatherAndCompare(reg, strings.NewReader(backlog), "eventbus_consumer_pending_messages", "eventbus_consumer_ack_pending_messages")
	})
}

// connection returns the server the broker bus is connected to, as the
// gauge says ("" while it is down), and its reconnect count.
func connection(t *testing.T, reg *prometheus.Registry) (server string, reconnects float64) {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["broker"] != "bus" {
				continue
			}
			switch f.GetName() {
			case "eventbus_broker_connected":
				if value(m) == 1 {
					server = labels["server"]
				}
			case "eventbus_broker_reconnects_total":
				reconnects = value(m)
			}
		}
	}
	return server, reconnects
}

func value(m *dto.Metric) float64 {
	if g := m.GetGauge(); g != nil {
		return g.GetValue()
	}
	return m.GetCounter().GetValue()
}

// waitUntil calls check until it succeeds, failing the test with its last
// error when ctx ends first.
func waitUntil(t *testing.T, ctx context.Context, check func() error) {
	t.Helper()
	for {
		err := check()
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatal(err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
