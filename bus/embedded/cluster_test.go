package embedded_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wfeventbus/eventbus/bus"
	"github.com/wfeventbus/eventbus/bus/embedded"
)

// startCluster starts a cluster on random ports in a temporary directory and
// shuts it down when the test ends.
func startCluster(t *testing.T, size int) *embedded.Cluster {
	t.Helper()
	c, err := embedded.StartCluster(testContext(t), embedded.ClusterConfig{
		Size: size, StoreDir: t.TempDir(), Port: embedded.RandomPort, ClusterPort: embedded.RandomPort,
	})
	if err != nil {
		t.Fatalf("StartCluster: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Shutdown(context.Background()); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return c
}

// clusterClient connects to every server of c and reconnects forever.
func clusterClient(t *testing.T, urls string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(urls, nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// replicaMessages returns how many messages the replica of stream on the
// server called name holds.
func replicaMessages(t *testing.T, c *embedded.Cluster, name, stream string) uint64 {
	t.Helper()
	st, err := c.ReplicaState(name, stream)
	if err != nil {
		t.Fatal(err)
	}
	return st.Messages
}

// publishAll publishes n messages with ids from first, retrying each until
// it is acknowledged: while a leader changes, a publish may find no stream
// leader or time out. Every publish carries a message id, so a retry of a
// publish that was stored after all is not stored twice.
func publishAll(t *testing.T, ctx context.Context, js jetstream.JetStream, subject string, first, n int) {
	t.Helper()
	for i := first; i < first+n; i++ {
		id := fmt.Sprintf("m-%d", i)
		for {
			actx, cancel := context.WithTimeout(ctx, hangGuard/10)
			_, err := js.Publish(actx, subject, []byte(id), jetstream.WithMsgID(id))
			cancel()
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("publish %s: %v", id, err)
			}
		}
	}
}

// createStream creates a stream with embedded.CreateStream and fails the
// test when that does not succeed while ctx allows.
func createStream(t *testing.T, ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) jetstream.Stream {
	t.Helper()
	s, err := embedded.CreateStream(ctx, js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A cluster elects a meta leader before StartCluster returns, takes an R3
// stream at once, and names its servers, URLs and store directories.
func TestClusterStart(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	c := startCluster(t, 3)

	names := c.Names()
	if want := []string{"eventbus-0", "eventbus-1", "eventbus-2"}; !slices.Equal(names, want) {
		t.Fatalf("Names() = %q, want %q", names, want)
	}
	if running := c.Running(); !slices.Equal(running, names) {
		t.Fatalf("Running() = %q, want %q", running, names)
	}
	urls := c.ClientURLs()
	if len(urls) != 3 || len(slices.Compact(slices.Sorted(slices.Values(urls)))) != 3 {
		t.Fatalf("ClientURLs() = %q, want 3 distinct URLs", urls)
	}
	if c.URLs() != strings.Join(urls, ",") {
		t.Fatalf("URLs() = %q, want %q joined", c.URLs(), urls)
	}
	dirs := map[string]bool{}
	for i, name := range names {
		srv, err := c.Server(name)
		if err != nil {
			t.Fatal(err)
		}
		if srv.ClientURL() != urls[i] {
			t.Errorf("server %s listens on %s, ClientURLs()[%d] = %s", name, srv.ClientURL(), i, urls[i])
		}
		dir, err := c.StoreDir(name)
		if err != nil {
			t.Fatal(err)
		}
		dirs[dir] = true
	}
	if len(dirs) != 3 {
		t.Errorf("servers share store directories: %v", dirs)
	}
	leader, err := c.MetaLeader()
	if err != nil || !slices.Contains(names, leader) {
		t.Fatalf("MetaLeader() = %q, %v; want one of %q", leader, err, names)
	}

	// A client on one server's URL learns the route to the others, and a
	// replicated stream is placed on all three.
	nc := clusterClient(t, urls[1])
	if on, err := c.ServerOf(nc); err != nil || on != names[1] {
		t.Fatalf("ServerOf(client of %s) = %q, %v; want %s", urls[1], on, err, names[1])
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	s := createStream(t, ctx, js, jetstream.StreamConfig{Name: "R3", Subjects: []string{"r3.>"}, Replicas: 3, Storage: jetstream.FileStorage})
	// Once every server routes its subjects to the new stream's leader, a
	// publish from any of them is stored at the first try.
	if _, err := c.WaitStreamPublishable(ctx, "R3", "r3.a"); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "r3.a", []byte("first"), jetstream.WithMsgID("m-first")); err != nil {
		t.Fatalf("publish to a publishable stream: %v", err)
	}
	publishAll(t, ctx, js, "r3.a", 0, 99)
	sl, err := c.WaitStreamCurrent(ctx, "R3")
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Cluster == nil || info.Cluster.Leader != sl || len(info.Cluster.Replicas) != 2 {
		t.Fatalf("stream cluster info %+v, want leader %s and 2 replicas", info.Cluster, sl)
	}
	for _, name := range names {
		if n := replicaMessages(t, c, name, "R3"); n != 100 {
			t.Errorf("replica on %s holds %d messages, want 100", name, n)
		}
	}
}

// Stopping the stream leader, the consumer leader and the server a client
// is on moves each role to another server; a stopped server comes back on
// its ports and store and catches up with what it missed.
func TestClusterStopAndStart(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	c := startCluster(t, 3)
	nc := clusterClient(t, c.URLs())
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	createStream(t, ctx, js, jetstream.StreamConfig{Name: "WORK", Subjects: []string{"work.>"}, Replicas: 3})
	cons, err := js.CreateOrUpdateConsumer(ctx, "WORK", jetstream.ConsumerConfig{Durable: "worker", AckPolicy: jetstream.AckExplicitPolicy, AckWait: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	publishAll(t, ctx, js, "work.a", 0, 50)

	// The stream leader goes; another server leads and takes publishes
	// while it is away.
	oldLeader, err := c.WaitStreamLeader(ctx, "WORK")
	if err != nil {
		t.Fatal(err)
	}
	urlsBefore := c.ClientURLs()
	dirBefore, _ := c.StoreDir(oldLeader)
	if err := c.Stop(ctx, oldLeader); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(ctx, oldLeader); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if _, err := c.Server(oldLeader); !errors.Is(err, embedded.ErrShutdown) {
		t.Fatalf("Server(stopped) = %v, want ErrShutdown", err)
	}
	if slices.Contains(c.Running(), oldLeader) {
		t.Fatalf("Running() = %q still lists stopped %s", c.Running(), oldLeader)
	}
	newLeader, err := c.WaitStreamLeader(ctx, "WORK")
	if err != nil {
		t.Fatal(err)
	}
	if newLeader == oldLeader {
		t.Fatalf("stream leader is still the stopped server %s", oldLeader)
	}
	publishAll(t, ctx, js, "work.a", 50, 50)

	// It comes back where it was and catches up.
	if err := c.Start(ctx, oldLeader); err != nil {
		t.Fatal(err)
	}
	if got := c.ClientURLs(); !slices.Equal(got, urlsBefore) {
		t.Fatalf("after Start ClientURLs() = %q, want %q", got, urlsBefore)
	}
	if dir, _ := c.StoreDir(oldLeader); dir != dirBefore {
		t.Fatalf("after Start store dir %s, want %s", dir, dirBefore)
	}
	if _, err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitStreamCurrent(ctx, "WORK"); err != nil {
		t.Fatal(err)
	}
	if n := replicaMessages(t, c, oldLeader, "WORK"); n != 100 {
		t.Fatalf("restarted %s holds %d messages, want 100", oldLeader, n)
	}

	// The consumer leader goes; another server delivers.
	cl, err := c.WaitConsumerLeader(ctx, "WORK", "worker")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Restart(ctx, cl); err != nil {
		t.Fatal(err)
	}
	delivered := map[string]bool{}
	for len(delivered) < 100 {
		batch, err := cons.Fetch(50, jetstream.FetchMaxWait(hangGuard/10))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			delivered[string(m.Data())] = true
			if err := m.DoubleAck(ctx); err != nil {
				t.Logf("ack of %s: %v (it is redelivered)", m.Data(), err)
				delete(delivered, string(m.Data()))
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("%d of 100 messages delivered: %v", len(delivered), batch.Error())
		}
	}
	// The server the client is on goes; the client moves to another.
	on, err := c.ServerOf(nc)
	if err != nil {
		t.Fatal(err)
	}
	reconnected := make(chan struct{}, 1)
	nc.SetReconnectHandler(func(*nats.Conn) {
		select {
		case reconnected <- struct{}{}:
		default:
		}
	})
	if err := c.Stop(ctx, on); err != nil {
		t.Fatal(err)
	}
	select {
	case <-reconnected:
	case <-ctx.Done():
		t.Fatal("client did not reconnect")
	}
	moved, err := c.ServerOf(nc)
	if err != nil || moved == on {
		t.Fatalf("after stopping %s the client is on %q (%v)", on, moved, err)
	}
}

func TestClusterErrors(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	c := startCluster(t, 2)

	if _, err := c.Server("nope"); !errors.Is(err, embedded.ErrUnknownServer) {
		t.Errorf("Server(unknown) = %v, want ErrUnknownServer", err)
	}
	if err := c.Stop(ctx, "nope"); !errors.Is(err, embedded.ErrUnknownServer) {
		t.Errorf("Stop(unknown) = %v, want ErrUnknownServer", err)
	}
	if _, err := c.StreamLeader("MISSING"); !errors.Is(err, embedded.ErrNoLeader) {
		t.Errorf("StreamLeader(missing) = %v, want ErrNoLeader", err)
	}
	short, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := c.WaitStreamLeader(short, "MISSING"); !errors.Is(err, embedded.ErrNoLeader) || !errors.Is(err, context.Canceled) {
		t.Errorf("WaitStreamLeader(missing) = %v, want ErrNoLeader and context.Canceled", err)
	}

	nc := clusterClient(t, c.ClientURLs()[0])
	nc.Close()
	if _, err := c.ServerOf(nc); !errors.Is(err, bus.ErrNotConnected) {
		t.Errorf("ServerOf(closed connection) = %v, want bus.ErrNotConnected", err)
	}

	if err := c.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Shutdown(ctx); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
	if err := c.Start(ctx, c.Names()[0]); !errors.Is(err, embedded.ErrShutdown) {
		t.Errorf("Start after Shutdown = %v, want ErrShutdown", err)
	}
	for _, u := range c.ClientURLs() {
		if _, err := net.Dial("tcp", strings.TrimPrefix(u, "nats://")); err == nil {
			t.Errorf("%s still accepts connections after Shutdown", u)
		}
	}
}

func TestStartClusterPortInUse(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	for _, cfg := range []embedded.ClusterConfig{
		{Port: port, ClusterPort: embedded.RandomPort},
		{Port: embedded.RandomPort, ClusterPort: port},
	} {
		cfg.StoreDir = t.TempDir()
		_, err := embedded.StartCluster(testContext(t), cfg)
		if !errors.Is(err, embedded.ErrPortInUse) || !strings.Contains(err.Error(), fmt.Sprint(port)) {
			t.Errorf("StartCluster(port %d, cluster port %d) = %v, want ErrPortInUse naming %d", cfg.Port, cfg.ClusterPort, err, port)
		}
	}
}

func TestStartClusterInvalidConfig(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		cfg   embedded.ClusterConfig
		field string
	}{
		{name: "one server", cfg: embedded.ClusterConfig{Size: 1}, field: "size"},
		{name: "negative size", cfg: embedded.ClusterConfig{Size: -3}, field: "size"},
		{name: "name with a dot", cfg: embedded.ClusterConfig{Name: "a.b"}, field: "name"},
		{name: "not loopback", cfg: embedded.ClusterConfig{Host: "0.0.0.0"}, field: "host"},
		{name: "ports past 65535", cfg: embedded.ClusterConfig{Port: 65534}, field: "port"},
		{name: "bad cluster port", cfg: embedded.ClusterConfig{ClusterPort: -7}, field: "cluster_port"},
		{name: "overlapping ports", cfg: embedded.ClusterConfig{Port: 5000, ClusterPort: 5002}, field: "cluster_port"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.cfg.StoreDir = t.TempDir()
			_, err := embedded.StartCluster(testContext(t), tc.cfg)
			if !errors.Is(err, bus.ErrInvalidConfig) || !strings.Contains(err.Error(), tc.field+":") {
				t.Fatalf("StartCluster = %v, want bus.ErrInvalidConfig naming %s", err, tc.field)
			}
		})
	}
}
