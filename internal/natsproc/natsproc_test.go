package natsproc_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wfeventbus/eventbus/internal/natsproc"
)

// guard bounds the test's waits; no assertion depends on it.
const guard = 2 * time.Minute

// A cluster of three processes takes an R3 stream; the stream's leader is
// killed and another takes over, with every acknowledged message; started
// again, the killed server catches up and the cluster is ready again.
func TestClusterSurvivesAKill(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), guard)
	defer cancel()
	c := natsproc.StartCluster(t, natsproc.ClusterConfig{Bin: natsproc.Build(t), Name: "kill", SyncAlways: true})
	if got := c.Running(); !slices.Equal(got, []string{"kill-0", "kill-1", "kill-2"}) {
		t.Fatalf("running %v, want kill-0 to kill-2", got)
	}
	nc, err := nats.Connect(c.URLs(), nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	var stream jetstream.Stream
	retry(t, ctx, "create the stream", func(ctx context.Context) (err error) {
		stream, err = js.CreateStream(ctx, jetstream.StreamConfig{Name: "S", Subjects: []string{"s.>"}, Replicas: 3})
		return err
	})
	publish := func(from, to int) {
		for i := from; i < to; i++ {
			id := fmt.Sprintf("m-%d", i)
			retry(t, ctx, "publish "+id, func(ctx context.Context) error {
				_, err := js.Publish(ctx, "s.x", []byte(id), jetstream.WithMsgID(id))
				return err
			})
		}
	}
	publish(0, 100)
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	leader := info.Cluster.Leader
	c.Kill(leader)
	if slices.Contains(c.Running(), leader) {
		t.Fatalf("%s still runs after Kill", leader)
	}
	publish(100, 200)
	retry(t, ctx, "read the stream", func(ctx context.Context) (err error) {
		info, err = stream.Info(ctx)
		return err
	})
	if info.Cluster.Leader == leader || info.Cluster.Leader == "" || info.State.Msgs != 200 {
		t.Fatalf("after killing %s: leader %q, %d messages; want another leader and 200", leader, info.Cluster.Leader, info.State.Msgs)
	}
	c.Start(leader)
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	retry(t, ctx, "the restarted replica to catch up", func(ctx context.Context) error {
		info, err := stream.Info(ctx)
		if err != nil {
			return err
		}
		for _, p := range info.Cluster.Replicas {
			if p.Name == leader && p.Current && !p.Offline {
				return nil
			}
		}
		return fmt.Errorf("replicas %+v", info.Cluster.Replicas)
	})
	t.Logf("killed %s, new leader %s, %d messages", leader, info.Cluster.Leader, info.State.Msgs)
}

// retry calls f with a short deadline until it succeeds, failing the test
// when ctx ends first.
func retry(t *testing.T, ctx context.Context, what string, f func(context.Context) error) {
	t.Helper()
	for {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := f(actx)
		cancel()
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: %v", what, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
