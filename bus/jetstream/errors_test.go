package jetstream_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/wfeventbus/eventbus/bus"
	"github.com/wfeventbus/eventbus/bus/embedded"
)

// TestErrorMapping checks that every failure the server reports comes back
// as the bus sentinel a caller reacts to.
func TestErrorMapping(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, embedded.Config{StoreDir: t.TempDir(), Port: embedded.RandomPort, MaxPayload: 64 << 10})
	stream := e.stream(t, "MAP", bus.StreamConfig{MaxMsgSize: 1024})
	consumer := e.consumer(t, stream, "c", bus.ConsumerConfig{})
	first := e.publish(t, "MAP.a", "first")

	cases := []struct {
		name string
		call func(ctx context.Context) error
		want error
	}{
		{"StreamInfo of a missing stream", func(ctx context.Context) error {
			_, err := e.bus.StreamInfo(ctx, "MISSING")
			return err
		}, bus.ErrNotFound},
		{"ConsumerInfo of a missing consumer", func(ctx context.Context) error {
			_, err := e.bus.ConsumerInfo(ctx, stream, "missing")
			return err
		}, bus.ErrNotFound},
		{"ConsumerInfo on a missing stream", func(ctx context.Context) error {
			_, err := e.bus.ConsumerInfo(ctx, "MISSING", "c")
			return err
		}, bus.ErrNotFound},
		{"EnsureConsumer on a missing stream", func(ctx context.Context) error {
			_, err := e.bus.EnsureConsumer(ctx, bus.ConsumerConfig{Durable: "c", Stream: "MISSING"})
			return err
		}, bus.ErrNotFound},
		{"Fetch from a missing consumer", func(ctx context.Context) error {
			_, err := e.bus.Fetch(ctx, stream, "missing", bus.FetchOptions{MaxWait: time.Second})
			return err
		}, bus.ErrNotFound},
		{"Subscribe to a missing consumer", func(ctx context.Context) error {
			_, err := e.bus.Subscribe(ctx, stream, "missing", func(context.Context, *bus.Message) {}, bus.SubscribeOptions{})
			return err
		}, bus.ErrNotFound},
		{"DeleteConsumer of a missing consumer", func(ctx context.Context) error {
			return e.bus.DeleteConsumer(ctx, stream, "missing")
		}, bus.ErrNotFound},
		{"Publish where no stream listens", func(ctx context.Context) error {
			_, err := e.bus.Publish(ctx, bus.OutgoingMessage{Subject: "nowhere.x", Payload: []byte("lost")})
			return err
		}, bus.ErrNoStream},
		{"Publish beyond the stream's max_msg_size", func(ctx context.Context) error {
			_, err := e.bus.Publish(ctx, bus.OutgoingMessage{Subject: "MAP.big", Payload: bytes.Repeat([]byte("x"), 2048)})
			return err
		}, bus.ErrPayloadTooLarge},
		{"PublishBatch beyond the stream's max_msg_size", func(ctx context.Context) error {
			big := bus.OutgoingMessage{Subject: "MAP.big", Payload: bytes.Repeat([]byte("x"), 2048)}
			res, err := e.bus.PublishBatch(ctx, []bus.OutgoingMessage{big, big})
			if err != nil {
				return err
			}
			return errors.Join(res[0].Err, res[1].Err)
		}, bus.ErrPayloadTooLarge},
		{"Publish beyond the server's max_payload", func(ctx context.Context) error {
			_, err := e.bus.Publish(ctx, bus.OutgoingMessage{Subject: "MAP.huge", Payload: bytes.Repeat([]byte("x"), 128<<10)})
			return err
		}, bus.ErrPayloadTooLarge},
		{"Publish with a stale expected last sequence", func(ctx context.Context) error {
			_, err := e.bus.Publish(ctx, bus.OutgoingMessage{Subject: "MAP.a", Payload: []byte("x"), ExpectedLastSequence: first.Sequence + 5})
			return err
		}, bus.ErrWrongLastSequence},
		{"Publish to an invalid subject", func(ctx context.Context) error {
			_, err := e.bus.Publish(ctx, bus.OutgoingMessage{Subject: "MAP.*", Payload: []byte("x")})
			return err
		}, bus.ErrInvalidConfig},
	}
	// What some errors must say besides their sentinel: the numbers a
	// reader needs to fix the call.
	says := map[string]string{
		"Publish beyond the stream's max_msg_size":      `publish to "MAP.big": payload too large: 2048 bytes; stream "MAP" takes at most 1024 (max_msg_size, headers included)`,
		"PublishBatch beyond the stream's max_msg_size": `publish to "MAP.big": payload too large: 2048 bytes; stream "MAP" takes at most 1024 (max_msg_size, headers included)`,
		"Publish beyond the server's max_payload":       `publish to "MAP.huge": payload too large: 131072 bytes; the server takes at most 65536 (max_payload, headers included)`,
		"Publish with a stale expected last sequence":   `publish to "MAP.a": wrong last sequence: expected 6, the stream's last is 1`,
		"StreamInfo of a missing stream":                `stream not found (server error 10059)`,
		"Publish where no stream listens":               `publish to "nowhere.x": no stream for subject: no response from stream`,
	}
	// The group returns once its parallel cases are done, so the stream is
	// checked after every failed publish.
	t.Run("group", func(t *testing.T) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				err := tc.call(testContext(t))
				if !errors.Is(err, tc.want) {
					t.Fatalf("got %v, want %v", err, tc.want)
				}
				if msg := err.Error(); strings.Contains(msg, "nats: ") || !strings.Contains(msg, says[tc.name]) {
					t.Fatalf("the error reads %q; want it to contain %q and no nats.go prefix", msg, says[tc.name])
				}
			})
		}
	})
	if info, err := e.bus.StreamInfo(testContext(t), stream); err != nil || info.Messages != 1 {
		t.Fatalf("after the failed publishes the stream reports %+v, %v; want only the first message", info, err)
	}
	_ = consumer
}

func TestErrorMappingFileStreamOnMemoryServer(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, embedded.Config{Port: embedded.RandomPort, MemoryOnly: true})
	_, err := e.bus.EnsureStream(testContext(t), bus.StreamConfig{Name: "DISK", Subjects: []string{"disk.>"}, Storage: bus.StorageFile})
	if !errors.Is(err, bus.ErrInvalidConfig) {
		t.Fatalf("a file stream on a memory-only server = %v, want bus.ErrInvalidConfig", err)
	}
}

// TestNotConnected checks that calls fail at once with ErrNotConnected
// while the broker is away, and work again once it is back; publishes wait
// for the broker until their context ends, and then fail with
// ErrNotConnected and the context's error.
func TestNotConnected(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	e := newEnvWith(t, embedded.Config{StoreDir: dir, Port: restartablePort(t)})
	stream := e.stream(t, "AWAY", bus.StreamConfig{})
	consumer := e.consumer(t, stream, "c", bus.ConsumerConfig{})
	e.publish(t, "AWAY.a", "before")
	msg := e.fetchN(t, stream, consumer, 1)[0]

	ctx := testContext(t)
	if err := e.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the client to notice the broker is gone", func() bool { return !e.nc.IsConnected() })

	publishes := map[string]func(ctx context.Context) error{
		"Publish": func(ctx context.Context) error {
			_, err := e.bus.Publish(ctx, bus.OutgoingMessage{Subject: "AWAY.a", Payload: []byte("x")})
			return err
		},
		"PublishBatch": func(ctx context.Context) error {
			_, err := e.bus.PublishBatch(ctx, []bus.OutgoingMessage{{Subject: "AWAY.a", Payload: []byte("x")}})
			return err
		},
	}
	for name, publish := range publishes {
		pctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		err := publish(pctx)
		cancel()
		if !errors.Is(err, bus.ErrNotConnected) || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s while the broker is away = %v, want bus.ErrNotConnected and context.DeadlineExceeded", name, err)
		}
	}
	calls := map[string]func() error{
		"Fetch": func() error {
			_, err := e.bus.Fetch(ctx, stream, consumer, bus.FetchOptions{MaxWait: time.Second})
			return err
		},
		"Ack":         func() error { return e.bus.Ack(ctx, msg.AckToken) },
		"Message.Ack": func() error { return msg.Ack(ctx) },
		"StreamInfo": func() error {
			_, err := e.bus.StreamInfo(ctx, stream)
			return err
		},
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, bus.ErrNotConnected) {
			t.Errorf("%s while the broker is away = %v, want bus.ErrNotConnected", name, err)
		}
	}

	// Nothing was done: the delivery can still be settled once the broker
	// is back.
	again, err := embedded.Start(ctx, embedded.Config{StoreDir: dir, Port: e.srv.Port()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = again.Shutdown(context.Background()) })
	waitFor(t, "the client to reconnect", e.nc.IsConnected)
	if err := e.bus.Ack(ctx, msg.AckToken); err != nil {
		t.Fatalf("Ack after the broker came back: %v", err)
	}
}

func TestClosedBus(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	stream := e.stream(t, "CLOSED", bus.StreamConfig{})
	consumer := e.consumer(t, stream, "c", bus.ConsumerConfig{})
	e.publish(t, "CLOSED.a", "x")
	msg := e.fetchN(t, stream, consumer, 1)[0]
	if err := e.bus.Close(); err != nil {
		t.Fatal(err)
	}
	ctx := testContext(t)
	if err := e.bus.Ack(ctx, msg.AckToken); !errors.Is(err, bus.ErrClosed) {
		t.Errorf("Ack after Close = %v, want bus.ErrClosed", err)
	}
	if _, err := e.bus.EnsureStream(ctx, bus.StreamConfig{Name: "LATE"}); !errors.Is(err, bus.ErrClosed) {
		t.Errorf("EnsureStream after Close = %v, want bus.ErrClosed", err)
	}
	if !e.nc.IsConnected() {
		t.Error("Close closed a connection the bus does not own")
	}
}

// waitFor polls cond until it holds, failing the test after hangGuard.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(hangGuard)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
