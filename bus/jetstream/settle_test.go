package jetstream_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/wfeventbus/eventbus/bus"
	"github.com/wfeventbus/eventbus/bus/jetstream"
)

var sharedKey = []byte("0123456789abcdef0123456789abcdef")

func TestSettlerRejectsInvalidTokens(t *testing.T) {
	t.Parallel()
	e := newEnv(t, jetstream.WithTokenKey(sharedKey))
	stream := e.stream(t, "INVALID", bus.StreamConfig{})
	consumer := e.consumer(t, stream, "c", bus.ConsumerConfig{})
	e.publish(t, "INVALID.a", "x")
	m := e.fetchN(t, stream, consumer, 1)[0]

	sameKey, err := bus.NewTokenCodec(sharedKey)
	if err != nil {
		t.Fatal(err)
	}
	otherKey, err := bus.NewTokenCodec(nil)
	if err != nil {
		t.Fatal(err)
	}
	genuine := bus.Token{Backend: "jetstream", Stream: m.Stream, Consumer: m.Consumer, StreamSeq: m.StreamSequence, Delivery: m.DeliveryCount}
	foreign := genuine
	foreign.Backend = "postgres"
	tokens := map[string]string{
		"empty":           "",
		"garbage":         "not a token",
		"truncated":       m.AckToken[:len(m.AckToken)-3],
		"other key":       otherKey.Encode(genuine),
		"foreign backend": sameKey.Encode(foreign),
	}
	ctx := testContext(t)
	for name, token := range tokens {
		for op, settle := range settlers(e.bus) {
			if err := settle(ctx, token); !errors.Is(err, bus.ErrInvalidToken) {
				t.Errorf("%s of a %s token = %v, want bus.ErrInvalidToken", op, name, err)
			}
		}
	}
	if err := e.bus.Ack(ctx, m.AckToken); err != nil {
		t.Fatalf("the genuine token after the invalid ones: %v", err)
	}
}

// settlers are the Settler's calls on a token.
func settlers(b bus.Settler) map[string]func(context.Context, string) error {
	return map[string]func(context.Context, string) error{
		"Ack":        b.Ack,
		"Nak":        func(ctx context.Context, tok string) error { return b.Nak(ctx, tok, 0) },
		"Term":       func(ctx context.Context, tok string) error { return b.Term(ctx, tok, "test") },
		"InProgress": b.InProgress,
	}
}

// TestSettledTokensAreStale settles a delivery each way, by token or through
// its message, and checks that every later settlement is stale.
func TestSettledTokensAreStale(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	stream := e.stream(t, "STALE", bus.StreamConfig{})
	consumer := e.consumer(t, stream, "c", bus.ConsumerConfig{AckWait: time.Hour})
	first := map[string]func(ctx context.Context, m *bus.Message) error{
		"Settler.Ack":  func(ctx context.Context, m *bus.Message) error { return e.bus.Ack(ctx, m.AckToken) },
		"Settler.Nak":  func(ctx context.Context, m *bus.Message) error { return e.bus.Nak(ctx, m.AckToken, time.Hour) },
		"Settler.Term": func(ctx context.Context, m *bus.Message) error { return e.bus.Term(ctx, m.AckToken, "done") },
		"Message.Ack":  func(ctx context.Context, m *bus.Message) error { return m.Ack(ctx) },
		"Message.Nak":  func(ctx context.Context, m *bus.Message) error { return m.Nak(ctx, time.Hour) },
		"Message.Term": func(ctx context.Context, m *bus.Message) error { return m.Term(ctx, "") },
	}
	ctx := testContext(t)
	for name, settle := range first {
		e.publish(t, "STALE.a", name)
		m := e.fetchN(t, stream, consumer, 1)[0]
		if err := settle(ctx, m); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for op, again := range settlers(e.bus) {
			if err := again(ctx, m.AckToken); !errors.Is(err, bus.ErrStaleToken) {
				t.Errorf("after %s, %s by token = %v, want bus.ErrStaleToken", name, op, err)
			}
		}
		if err := m.Ack(ctx); !errors.Is(err, bus.ErrStaleToken) {
			t.Errorf("after %s, Message.Ack = %v, want bus.ErrStaleToken", name, err)
		}
	}
	// Only the two nak'd messages wait for their (hour-long) redelivery.
	// The server updates its counts after it confirms a settlement, so a
	// first look may come too early.
	waitFor(t, "the server to apply every settlement", func() bool {
		info, err := e.bus.ConsumerInfo(ctx, stream, consumer)
		if err != nil {
			t.Fatal(err)
		}
		return info.NumAckPending == 2 && info.NumPending == 0
	})
}

func TestInProgressKeepsTokenValid(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	stream := e.stream(t, "WIP", bus.StreamConfig{})
	consumer := e.consumer(t, stream, "c", bus.ConsumerConfig{})
	e.publish(t, "WIP.a", "x")
	m := e.fetchN(t, stream, consumer, 1)[0]
	ctx := testContext(t)
	for range 3 {
		if err := e.bus.InProgress(ctx, m.AckToken); err != nil {
			t.Fatal(err)
		}
		if err := m.InProgress(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.bus.Ack(ctx, m.AckToken); err != nil {
		t.Fatalf("Ack after InProgress: %v", err)
	}
}

// TestRedeliveryMakesTokenStale lets a delivery's ack wait pass until the
// message is delivered again, and checks the first token is stale while
// the new one settles.
func TestRedeliveryMakesTokenStale(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	stream := e.stream(t, "AGAIN", bus.StreamConfig{})
	consumer := e.consumer(t, stream, "c", bus.ConsumerConfig{AckWait: 200 * time.Millisecond})
	e.publish(t, "AGAIN.a", "x")
	first := e.fetchN(t, stream, consumer, 1)[0]
	second := e.fetchN(t, stream, consumer, 1)[0]
	if second.DeliveryCount != 2 {
		t.Fatalf("second delivery count %d, want 2", second.DeliveryCount)
	}
	ctx := testContext(t)
	if err := e.bus.Ack(ctx, first.AckToken); !errors.Is(err, bus.ErrStaleToken) {
		t.Fatalf("Ack of the first delivery = %v, want bus.ErrStaleToken", err)
	}
	if err := first.Ack(ctx); !errors.Is(err, bus.ErrStaleToken) {
		t.Fatalf("Message.Ack of the first delivery = %v, want bus.ErrStaleToken", err)
	}
	if err := e.bus.Ack(ctx, second.AckToken); err != nil {
		t.Fatalf("Ack of the redelivery: %v", err)
	}
}

// TestTokenSettlesOnAnotherBusSharingTheKey settles tokens one bus handed
// out on other buses, as the replicas of an app do: a bus with the same
// key, or with it as the previous key of a rotation, settles them once; a
// bus with another app's key rejects them; a token past its expiry is
// stale.
func TestTokenSettlesOnAnotherBusSharingTheKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t, jetstream.WithTokenKey(sharedKey))
	stream := e.stream(t, "SHARED", bus.StreamConfig{})
	consumer := e.consumer(t, stream, "c", bus.ConsumerConfig{AckWait: time.Hour})
	for range 4 {
		e.publish(t, "SHARED.a", "x")
	}
	msgs := e.fetchN(t, stream, consumer, 4)
	replica := newBusOn(t, e, jetstream.WithTokenKey(sharedKey))
	rotating := newBusOn(t, e, jetstream.WithTokenKey([]byte("the new key of the app, 32 bytes"), sharedKey))
	otherApp := newBusOn(t, e, jetstream.WithTokenKey([]byte("another app's key, also 32 bytes")))
	ctx := testContext(t)

	for op, settle := range settlers(otherApp) {
		if err := settle(ctx, msgs[0].AckToken); !errors.Is(err, bus.ErrInvalidToken) {
			t.Errorf("%s on a bus with another key = %v, want bus.ErrInvalidToken", op, err)
		}
	}
	if err := replica.Ack(ctx, msgs[0].AckToken); err != nil {
		t.Fatalf("Ack on a bus sharing the key: %v", err)
	}
	if err := replica.Ack(ctx, msgs[0].AckToken); !errors.Is(err, bus.ErrStaleToken) {
		t.Errorf("second Ack on that bus = %v, want bus.ErrStaleToken", err)
	}
	if err := rotating.InProgress(ctx, msgs[1].AckToken); err != nil {
		t.Fatalf("InProgress on a bus with the key as its previous key: %v", err)
	}
	if err := rotating.Term(ctx, msgs[1].AckToken, "test"); err != nil {
		t.Fatalf("Term after InProgress on that bus: %v", err)
	}
	if err := replica.Nak(ctx, msgs[2].AckToken, 0); err != nil {
		t.Fatalf("Nak on a bus sharing the key: %v", err)
	}
	again := e.fetchN(t, stream, consumer, 1)[0]
	if again.StreamSequence != msgs[2].StreamSequence || again.DeliveryCount != 2 {
		t.Fatalf("after the nak got sequence %d delivery %d, want sequence %d delivery 2", again.StreamSequence, again.DeliveryCount, msgs[2].StreamSequence)
	}
	if err := replica.Ack(ctx, again.AckToken); err != nil {
		t.Fatalf("Ack of the redelivery on the other bus: %v", err)
	}

	// A token its issuer says has expired is stale everywhere else.
	codec, err := bus.NewTokenCodec(sharedKey)
	if err != nil {
		t.Fatal(err)
	}
	expired := bus.Token{Backend: "jetstream", Stream: stream, Consumer: consumer, StreamSeq: msgs[3].StreamSequence,
		Delivery: 1, Reply: "$JS.ACK.SHARED.c.1.4.4.0.0", Issuer: "elsewhere", Expires: uint64(time.Now().Add(-time.Minute).UnixMilli())}
	if err := replica.Ack(ctx, codec.Encode(expired)); !errors.Is(err, bus.ErrStaleToken) {
		t.Errorf("Ack of an expired token = %v, want bus.ErrStaleToken", err)
	}
	if err := e.bus.Ack(ctx, msgs[3].AckToken); err != nil {
		t.Fatalf("Ack on the bus that received it: %v", err)
	}

	info, err := e.bus.ConsumerInfo(ctx, stream, consumer)
	if err != nil {
		t.Fatal(err)
	}
	if info.NumAckPending != 0 || info.NumPending != 0 {
		t.Fatalf("consumer has %d unsettled and %d undelivered messages, want none", info.NumAckPending, info.NumPending)
	}
}

// newBusOn returns another bus on e's connection.
func newBusOn(t *testing.T, e *env, opts ...jetstream.Option) *jetstream.Bus {
	t.Helper()
	b, err := jetstream.New(e.nc, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func TestNakRejectsNegativeDelay(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	stream := e.stream(t, "NEG", bus.StreamConfig{})
	consumer := e.consumer(t, stream, "c", bus.ConsumerConfig{})
	e.publish(t, "NEG.a", "x")
	m := e.fetchN(t, stream, consumer, 1)[0]
	ctx := testContext(t)
	if err := e.bus.Nak(ctx, m.AckToken, -time.Second); !errors.Is(err, bus.ErrInvalidConfig) {
		t.Fatalf("Nak with a negative delay = %v, want bus.ErrInvalidConfig", err)
	}
	if err := m.Nak(ctx, -time.Second); !errors.Is(err, bus.ErrInvalidConfig) {
		t.Fatalf("Message.Nak with a negative delay = %v, want bus.ErrInvalidConfig", err)
	}
	if err := m.Ack(ctx); err != nil {
		t.Fatalf("the refused naks left the delivery unsettleable: %v", err)
	}
}

func TestAckOfDeletedConsumer(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	stream := e.stream(t, "GONE", bus.StreamConfig{})
	consumer := e.consumer(t, stream, "c", bus.ConsumerConfig{})
	e.publish(t, "GONE.a", "x")
	m := e.fetchN(t, stream, consumer, 1)[0]
	ctx := testContext(t)
	if err := e.bus.DeleteConsumer(ctx, stream, consumer); err != nil {
		t.Fatal(err)
	}
	if err := m.Ack(ctx); !errors.Is(err, bus.ErrNotFound) {
		t.Fatalf("Ack after the consumer was deleted = %v, want bus.ErrNotFound", err)
	}
}

// TestSettleWithCanceledContext settles deliveries with a context that is
// already cancelled, as a handler does whose subscription's Stop ran out
// of time: the settlements still reach the server, and are confirmed.
func TestSettleWithCanceledContext(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	stream := e.stream(t, "LATE", bus.StreamConfig{})
	consumer := e.consumer(t, stream, "c", bus.ConsumerConfig{AckWait: time.Hour})
	e.publish(t, "LATE.a", "acked")
	e.publish(t, "LATE.b", "nakked")
	msgs := e.fetchN(t, stream, consumer, 2)
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, m := range msgs {
		var err error
		if string(m.Payload) == "acked" {
			err = m.Ack(canceled)
		} else {
			err = m.Nak(canceled, 0)
		}
		if err != nil {
			t.Fatalf("settling %s with a cancelled context: %v", m.Payload, err)
		}
	}
	again := e.fetchN(t, stream, consumer, 1)
	if string(again[0].Payload) != "nakked" || again[0].DeliveryCount != 2 {
		t.Fatalf("redelivered %q (delivery %d), want the nak'd message on its second delivery", again[0].Payload, again[0].DeliveryCount)
	}
}
