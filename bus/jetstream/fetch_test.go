package jetstream_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/wfeventbus/eventbus/bus"
)

func TestFetchRejectsInvalidOptions(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	stream := e.stream(t, "OPTS", bus.StreamConfig{})
	consumer := e.consumer(t, stream, "c", bus.ConsumerConfig{})
	cases := map[string]bus.FetchOptions{
		"batch above the maximum": {Batch: bus.MaxFetchBatch + 1},
		"negative batch":          {Batch: -1},
		"negative max wait":       {MaxWait: -time.Second},
	}
	for name, opts := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if _, err := e.bus.Fetch(testContext(t), stream, consumer, opts); !errors.Is(err, bus.ErrInvalidConfig) {
				t.Fatalf("Fetch(%+v) = %v, want bus.ErrInvalidConfig", opts, err)
			}
		})
	}
}

func TestFetchBatchLimits(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	stream := e.stream(t, "LIMITS", bus.StreamConfig{})
	consumer := e.consumer(t, stream, "c", bus.ConsumerConfig{})
	ctx := testContext(t)

	// Nothing stored: an empty batch, not an error.
	msgs, err := e.bus.Fetch(ctx, stream, consumer, bus.FetchOptions{MaxWait: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if msgs == nil || len(msgs) != 0 {
		t.Fatalf("Fetch with nothing stored = %v, want an empty slice", msgs)
	}

	for range 3 {
		e.publish(t, "LIMITS.a", "x")
	}
	// Batch 0 means one message.
	msgs, err = e.bus.Fetch(ctx, stream, consumer, bus.FetchOptions{MaxWait: hangGuard})
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 {
		t.Fatalf("Fetch with Batch 0 returned %d messages, want 1", len(msgs))
	}
	// A batch larger than what is stored returns what there is.
	rest := e.fetchN(t, stream, consumer, 2)
	if rest[0].StreamSequence != 2 || rest[1].StreamSequence != 3 {
		t.Fatalf("got sequences %d and %d, want 2 and 3", rest[0].StreamSequence, rest[1].StreamSequence)
	}
}

func TestFetchMessageFields(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	stream := e.stream(t, "FIELDS", bus.StreamConfig{})
	consumer := e.consumer(t, stream, "c", bus.ConsumerConfig{})
	ctx := testContext(t)
	e.publish(t, "FIELDS.skip", "skip")
	before := time.Now().Add(-time.Minute)
	ack, err := e.bus.Publish(ctx, bus.OutgoingMessage{Subject: "FIELDS.x", Payload: []byte("payload"), Headers: bus.Headers{"K": {"v"}}})
	if err != nil {
		t.Fatal(err)
	}
	first := e.fetchN(t, stream, consumer, 1)[0]
	if err := first.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	m := e.fetchN(t, stream, consumer, 1)[0]
	if m.Subject != "FIELDS.x" || string(m.Payload) != "payload" || m.Headers.Get("K") != "v" ||
		m.Stream != stream || m.Consumer != consumer || m.StreamSequence != ack.Sequence ||
		m.ConsumerSequence != 2 || m.DeliveryCount != 1 || m.PublishedAt.Before(before) ||
		m.AckToken == "" || m.Acknowledger == nil {
		t.Fatalf("delivery %+v does not describe the published message", m)
	}
	if err := m.Nak(ctx, 0); err != nil {
		t.Fatal(err)
	}
	again := e.fetchN(t, stream, consumer, 1)[0]
	if again.StreamSequence != m.StreamSequence || again.DeliveryCount != 2 || again.ConsumerSequence != 3 {
		t.Fatalf("redelivery %+v, want stream sequence %d, delivery 2, consumer sequence 3", again, m.StreamSequence)
	}
}

func TestFetchAckNoneConsumer(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	stream := e.stream(t, "NOACK", bus.StreamConfig{})
	consumer := e.consumer(t, stream, "c", bus.ConsumerConfig{AckPolicy: bus.AckNone})
	e.publish(t, "NOACK.a", "x")
	m := e.fetchN(t, stream, consumer, 1)[0]
	ctx := testContext(t)
	if m.AckToken != "" {
		t.Errorf("a delivery that needs no ack has token %q", m.AckToken)
	}
	if err := m.Ack(ctx); err != nil {
		t.Errorf("Ack: %v", err)
	}
	if err := m.InProgress(ctx); err != nil {
		t.Errorf("InProgress: %v", err)
	}
	if err := m.Nak(ctx, 0); !errors.Is(err, bus.ErrNoAcknowledger) {
		t.Errorf("Nak = %v, want bus.ErrNoAcknowledger", err)
	}
}

func TestFetchHonoursContext(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	stream := e.stream(t, "CTX", bus.StreamConfig{})
	consumer := e.consumer(t, stream, "c", bus.ConsumerConfig{})
	ctx, cancel := context.WithCancel(testContext(t))
	cancel()
	if _, err := e.bus.Fetch(ctx, stream, consumer, bus.FetchOptions{MaxWait: hangGuard}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Fetch with a canceled context = %v, want context.Canceled", err)
	}
}
