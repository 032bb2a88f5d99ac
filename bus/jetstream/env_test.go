package jetstream_test

import (
	"context"
	"math/rand/v2"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/wfeventbus/eventbus/bus"
	"github.com/wfeventbus/eventbus/bus/embedded"
	"github.com/wfeventbus/eventbus/bus/jetstream"
)

// hangGuard bounds waits so that a broken bus fails a test instead of
// hanging it; no test asserts how long anything takes.
const hangGuard = 30 * time.Second

func testContext(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	t.Cleanup(cancel)
	return ctx
}

// connectBus returns a bus with opts that owns its own connection, made
// with cfg and extra and reconnecting quickly, and that connection; both
// are closed when t ends.
func connectBus(t testing.TB, cfg jetstream.ConnectConfig, extra []nats.Option, opts ...jetstream.Option) (*jetstream.Bus, *nats.Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	nc, err := jetstream.Connect(ctx, cfg, append([]nats.Option{nats.ReconnectWait(20 * time.Millisecond)}, extra...)...)
	if err != nil {
		t.Fatal(err)
	}
	b, err := jetstream.New(nc, append(opts, jetstream.WithOwnedConn())...)
	if err != nil {
		nc.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b, nc
}

// env is a bus on its own embedded server, connected over TCP.
type env struct {
	srv *embedded.Server
	nc  *nats.Conn
	bus *jetstream.Bus
	// raw reads what the server holds, independently of the bus.
	raw natsjs.JetStream
}

func newEnv(t testing.TB, opts ...jetstream.Option) *env {
	t.Helper()
	return newEnvWith(t, embedded.Config{StoreDir: t.TempDir(), Port: restartablePort(t)}, opts...)
}

func newEnvWith(t testing.TB, cfg embedded.Config, opts ...jetstream.Option) *env {
	t.Helper()
	ctx := testContext(t)
	srv, err := embedded.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	nc, err := jetstream.Connect(ctx, jetstream.ConnectConfig{URLs: []string{srv.ClientURL()}, Name: t.Name()},
		nats.ReconnectWait(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	b, err := jetstream.New(nc, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	raw, err := natsjs.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return &env{srv: srv, nc: nc, bus: b, raw: raw}
}

// stream creates a stream capturing name.> and returns name.
func (e *env) stream(t testing.TB, name string, cfg bus.StreamConfig) string {
	t.Helper()
	cfg.Name = name
	if cfg.Subjects == nil {
		cfg.Subjects = []string{name + ".>"}
	}
	if _, err := e.bus.EnsureStream(testContext(t), cfg); err != nil {
		t.Fatal(err)
	}
	return name
}

// consumer creates a durable consumer on stream.
func (e *env) consumer(t testing.TB, stream, name string, cfg bus.ConsumerConfig) string {
	t.Helper()
	cfg.Stream, cfg.Durable = stream, name
	if _, err := e.bus.EnsureConsumer(testContext(t), cfg); err != nil {
		t.Fatal(err)
	}
	return name
}

func (e *env) publish(t testing.TB, subject, payload string) bus.PublishAck {
	t.Helper()
	ack, err := e.bus.Publish(testContext(t), bus.OutgoingMessage{Subject: subject, Payload: []byte(payload)})
	if err != nil {
		t.Fatal(err)
	}
	return ack
}

// publishRetrying publishes like a client riding out a broker restart: an
// attempt that gets no answer in time (the request can be lost while the
// restarted server recovers its streams) is made again.
func (e *env) publishRetrying(t testing.TB, subject, payload string) {
	t.Helper()
	deadline := time.Now().Add(hangGuard)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := e.bus.Publish(ctx, bus.OutgoingMessage{Subject: subject, Payload: []byte(payload)})
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
	}
}

// fetchN fetches until n messages arrived.
func (e *env) fetchN(t testing.TB, stream, consumer string, n int) []*bus.Message {
	t.Helper()
	ctx := testContext(t)
	var out []*bus.Message
	for len(out) < n {
		msgs, err := e.bus.Fetch(ctx, stream, consumer, bus.FetchOptions{Batch: n - len(out), MaxWait: time.Second})
		if err != nil {
			t.Fatalf("Fetch after %d of %d messages: %v", len(out), n, err)
		}
		out = append(out, msgs...)
	}
	return out
}

// restartablePort returns a loopback port that was free a moment ago, taken
// below the range the kernel hands out for port 0. A server that a test
// stops and starts again on its port finds it free: while it was down, the
// port could not be handed to a server that another test started on port
// 0 (embedded.RandomPort).
func restartablePort(t testing.TB) int {
	t.Helper()
	for range 100 {
		port := 20000 + rand.IntN(12000)
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		l.Close()
		return port
	}
	t.Fatal("no free port between 20000 and 32000")
	return 0
}
