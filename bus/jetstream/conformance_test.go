package jetstream_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/wfeventbus/eventbus/bus"
	"github.com/wfeventbus/eventbus/bus/bustest"
	"github.com/wfeventbus/eventbus/bus/embedded"
	"github.com/wfeventbus/eventbus/bus/jetstream"
)

// TestConformance runs the bus conformance suite three times: on a
// file-store server, which is restarted under load; on a memory-only
// server; and on a 3-node cluster with R3 file-store streams, whose
// servers are restarted one after the other under load, stream leaders
// included.
func TestConformance(t *testing.T) {
	t.Parallel()
	promises := bustest.Features{
		Dedup:           true,
		NakDelay:        true,
		InProgress:      true,
		MaxDeliver:      true,
		OrderPerSubject: true,
	}
	t.Run("file", func(t *testing.T) {
		t.Parallel()
		f := promises
		f.Restart = true
		bustest.Run(t, bustest.Harness{Features: f, Storage: bus.StorageFile, New: func(t *testing.T) bustest.Env {
			return conformanceEnv(t, embedded.Config{StoreDir: t.TempDir(), Port: restartablePort(t)})
		}})
	})
	t.Run("memory", func(t *testing.T) {
		t.Parallel()
		bustest.Run(t, bustest.Harness{Features: promises, Storage: bus.StorageMemory, New: func(t *testing.T) bustest.Env {
			return conformanceEnv(t, embedded.Config{Port: embedded.RandomPort, MemoryOnly: true})
		}})
	})
	t.Run("cluster", func(t *testing.T) {
		t.Parallel()
		// One 3-node cluster serves every case but the restart, each case
		// on a bus of its own; the restart case gets a cluster of its own.
		shared := startConformanceCluster(t)
		f := promises
		f.Restart = true
		bustest.Run(t, bustest.Harness{
			Features: f,
			Storage:  bus.StorageFile,
			Replicas: 3,
			New: func(t *testing.T) bustest.Env {
				b, _ := clusterBus(t, shared)
				return bustest.Env{Bus: b, ConnectKeyed: func(t *testing.T, key []byte, previous ...[]byte) bus.Bus {
					other, _ := clusterBus(t, shared, jetstream.WithTokenKey(key, previous...))
					return other
				}}
			},
			NewRestartable: func(t *testing.T) bustest.Env {
				c := startConformanceCluster(t)
				b, _ := clusterBus(t, c)
				_, nc := clusterBus(t, c)
				return bustest.Env{Bus: b, Restart: func(t *testing.T) { rollingRestart(t, c, nc) }}
			},
		})
	})
}

// startConformanceCluster starts a 3-node cluster on random ports, shut down
// when t ends.
func startConformanceCluster(t *testing.T) *embedded.Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	c, err := embedded.StartCluster(ctx, embedded.ClusterConfig{
		StoreDir: t.TempDir(), Port: embedded.RandomPort, ClusterPort: embedded.RandomPort,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Shutdown(context.Background()) })
	return c
}

// clusterBus returns a bus with opts on a connection that knows every
// server of c and reconnects forever, and that connection.
func clusterBus(t *testing.T, c *embedded.Cluster, opts ...jetstream.Option) (*jetstream.Bus, *nats.Conn) {
	t.Helper()
	return connectBus(t, jetstream.ConnectConfig{URLs: c.ClientURLs(), Name: t.Name()}, nil, opts...)
}

// rollingRestart restarts the servers of c one after the other, those
// leading a stream first, so that a stream elects a new leader while the
// case still publishes: the bus loses its connection when its server is
// among them, and every stream loses a replica, which catches up when it
// comes back.
// The next server goes only when the one before has rejoined: the cluster
// has a meta leader again, and every stream and consumer a leader and a
// caught-up replica on the restarted server. nc is a connection of the
// harness's own, to look at the streams.
func rollingRestart(t *testing.T, c *embedded.Cluster, nc *nats.Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	js, err := natsjs.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	leaders := map[string]bool{}
	for stream := range js.StreamNames(ctx).Name() {
		leader, err := c.WaitStreamLeader(ctx, stream)
		if err != nil {
			t.Fatalf("restart: %v", err)
		}
		leaders[leader] = true
	}
	names := c.Names()
	slices.SortStableFunc(names, func(a, b string) int {
		switch {
		case leaders[a] == leaders[b]:
			return 0
		case leaders[a]:
			return -1
		}
		return 1
	})
	t.Logf("restarting %s in turn (stream leaders first)", strings.Join(names, ", "))
	for _, name := range names {
		if err := c.Restart(ctx, name); err != nil {
			t.Fatalf("restart: %v", err)
		}
		if _, err := c.WaitReady(ctx); err != nil {
			t.Fatalf("restart: %v", err)
		}
		for why := replicasBehind(ctx, js, name); why != ""; why = replicasBehind(ctx, js, name) {
			select {
			case <-ctx.Done():
				t.Fatalf("restart: the replicas on %s did not catch up: %s", name, why)
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
}

// replicasBehind returns "" when every stream and every consumer has a
// leader and, unless the server called name leads it, a replica on that
// server its leader sees as caught up; otherwise what is not.
func replicasBehind(ctx context.Context, js natsjs.JetStream, name string) string {
	lister := js.ListStreams(ctx)
	n := 0
	for info := range lister.Info() {
		n++
		if why := behind(info.Cluster, name); why != "" {
			return "stream " + info.Config.Name + ": " + why
		}
		s, err := js.Stream(ctx, info.Config.Name)
		if err != nil {
			return "stream " + info.Config.Name + ": " + err.Error()
		}
		consumers := s.ListConsumers(ctx)
		for ci := range consumers.Info() {
			if why := behind(ci.Cluster, name); why != "" {
				return "consumer " + ci.Stream + "/" + ci.Name + ": " + why
			}
		}
		if err := consumers.Err(); err != nil {
			return "consumers of " + info.Config.Name + ": " + err.Error()
		}
	}
	if err := lister.Err(); err != nil {
		return "streams: " + err.Error()
	}
	if n == 0 {
		return "no streams listed"
	}
	return ""
}

// behind returns "" when cl has a leader and, unless name is the leader, a
// replica on name that the leader sees as caught up; otherwise what is not.
func behind(cl *natsjs.ClusterInfo, name string) string {
	if cl == nil || cl.Leader == "" {
		return "no leader"
	}
	if cl.Leader == name {
		return ""
	}
	i := slices.IndexFunc(cl.Replicas, func(p *natsjs.PeerInfo) bool { return p.Name == name })
	if i < 0 {
		return "no replica on " + name
	}
	if p := cl.Replicas[i]; !p.Current || p.Offline {
		return fmt.Sprintf("replica on %s: current %v, offline %v, lag %d, active %v", name, p.Current, p.Offline, p.Lag, p.Active)
	}
	return ""
}

// conformanceEnv starts a server for one case and a bus on a TCP connection
// to it that reconnects forever, so that the bus survives Restart.
func conformanceEnv(t *testing.T, cfg embedded.Config) bustest.Env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	srv, err := embedded.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	// The port is fixed from now on, so that a restart comes back where the
	// client reconnects to.
	cfg.Port = srv.Port()
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })

	b, _ := connectBus(t, jetstream.ConnectConfig{URLs: []string{srv.ClientURL()}, Name: t.Name()}, nil)

	connect := func(t *testing.T, opts ...jetstream.Option) bus.Bus {
		t.Helper()
		other, _ := connectBus(t, jetstream.ConnectConfig{URLs: []string{srv.ClientURL()}, Name: t.Name() + "-second"}, nil, opts...)
		return other
	}
	env := bustest.Env{
		Bus:     b,
		Connect: func(t *testing.T) bus.Bus { return connect(t) },
		ConnectKeyed: func(t *testing.T, key []byte, previous ...[]byte) bus.Bus {
			return connect(t, jetstream.WithTokenKey(key, previous...))
		},
	}
	if !cfg.MemoryOnly {
		env.Restart = func(t *testing.T) {
			t.Helper()
			ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
			defer cancel()
			if err := srv.Shutdown(ctx); err != nil {
				t.Fatalf("restart: shutdown: %v", err)
			}
			again, err := embedded.Start(ctx, cfg)
			if err != nil {
				t.Fatalf("restart: start: %v", err)
			}
			srv = again
		}
	}
	return env
}
