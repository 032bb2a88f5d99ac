package jetstream_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/wfeventbus/eventbus/bus"
	"github.com/wfeventbus/eventbus/bus/jetstream"
)

func TestPublishHeaders(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	stream := e.stream(t, "HDR", bus.StreamConfig{})
	consumer := e.consumer(t, stream, "c", bus.ConsumerConfig{})
	ctx := testContext(t)

	headers := bus.Headers{"X-Tenant": {"acme"}, "X-Tags": {"a", "b"}}
	before := maps.Clone(headers)
	out := bus.OutgoingMessage{
		Subject: "HDR.a", Payload: []byte("p"), Headers: headers,
		MsgID: "id-1", ExpectedStream: stream, CorrelationID: "corr-1",
	}
	ack, err := e.bus.Publish(ctx, out)
	if err != nil {
		t.Fatal(err)
	}
	if ack.Stream != stream || ack.Sequence != 1 || ack.Duplicate {
		t.Fatalf("ack %+v, want sequence 1 of %s", ack, stream)
	}
	if !maps.EqualFunc(headers, before, slices.Equal) {
		t.Fatalf("Publish changed the caller's headers to %v", headers)
	}

	dup, err := e.bus.Publish(ctx, out)
	if err != nil {
		t.Fatal(err)
	}
	if !dup.Duplicate || dup.Sequence != ack.Sequence {
		t.Fatalf("second publish with MsgID %q: %+v, want a duplicate of sequence %d", out.MsgID, dup, ack.Sequence)
	}

	m := e.fetchN(t, stream, consumer, 1)[0]
	for k, v := range headers {
		if !slices.Equal(m.Headers[k], v) {
			t.Errorf("header %s = %q, want %q", k, m.Headers[k], v)
		}
	}
	if got := m.Headers.Get(bus.CorrelationIDHeader); got != "corr-1" {
		t.Errorf("Correlation-Id = %q, want corr-1", got)
	}
	if got := m.Headers.Get("Nats-Msg-Id"); got != "id-1" {
		t.Errorf("Nats-Msg-Id = %q, want id-1", got)
	}

	if _, err := e.bus.Publish(ctx, bus.OutgoingMessage{Subject: "HDR.a", ExpectedStream: "OTHER"}); err == nil {
		t.Fatal("publish expecting another stream succeeded")
	}
}

func TestPublishBatch(t *testing.T) {
	t.Parallel()
	// A small window of unanswered publishes makes the batch wait for room.
	e := newEnv(t, jetstream.WithPublishAsyncMaxPending(4))
	stream := e.stream(t, "BATCH", bus.StreamConfig{DuplicateWindow: 0})
	ctx := testContext(t)

	msgs := make([]bus.OutgoingMessage, 50)
	for i := range msgs {
		msgs[i] = bus.OutgoingMessage{Subject: fmt.Sprintf("BATCH.%d", i), Payload: []byte{byte(i)}, MsgID: fmt.Sprintf("m%d", i)}
	}
	msgs[10].Subject = "nowhere.x"
	msgs[20].Subject = "bad subject"
	msgs[30].MsgID = "m29" // a duplicate of the message before it

	results, err := e.bus.PublishBatch(ctx, msgs)
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != len(msgs) {
		t.Fatalf("%d results for %d messages", len(results), len(msgs))
	}
	var seq uint64
	for i, r := range results {
		switch i {
		case 10:
			if !errors.Is(r.Err, bus.ErrNoStream) {
				t.Errorf("result %d = %v, want bus.ErrNoStream", i, r.Err)
			}
		case 20:
			if !errors.Is(r.Err, bus.ErrInvalidConfig) {
				t.Errorf("result %d = %v, want bus.ErrInvalidConfig", i, r.Err)
			}
		case 30:
			if r.Err != nil || !r.Ack.Duplicate || r.Ack.Sequence != seq {
				t.Errorf("result %d = %+v, want a duplicate of sequence %d", i, r, seq)
			}
		default:
			if r.Err != nil || r.Ack.Duplicate || r.Ack.Sequence != seq+1 {
				t.Errorf("result %d = %+v, want sequence %d", i, r, seq+1)
			}
			seq = r.Ack.Sequence
		}
	}
	if info, err := e.bus.StreamInfo(ctx, stream); err != nil || info.Messages != 47 {
		t.Fatalf("stream holds %+v, %v; want 47 messages", info, err)
	}
}

func TestPublishBatchCanceled(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.stream(t, "CANCEL", bus.StreamConfig{})
	ctx, cancel := context.WithCancel(testContext(t))
	cancel()
	if _, err := e.bus.PublishBatch(ctx, []bus.OutgoingMessage{{Subject: "CANCEL.a"}, {Subject: "CANCEL.b"}}); !errors.Is(err, context.Canceled) {
		t.Fatalf("PublishBatch with a canceled context = %v, want context.Canceled", err)
	}
	if info, err := e.bus.StreamInfo(testContext(t), "CANCEL"); err != nil || info.Messages != 0 {
		t.Fatalf("stream after a canceled batch: %+v, %v; want it empty", info, err)
	}
}

// TestPublishWithoutStreamFailsAtOnce publishes to a subject no stream
// captures: the publish is sent once, the server asked once which stream
// captures the subject, and the error is bus.ErrNoStream, with no second
// or third try in between (nats.go's default waits 250 ms twice).
func TestPublishWithoutStreamFailsAtOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.stream(t, "COVERED", bus.StreamConfig{})
	ctx := testContext(t)
	sent := func() uint64 { return e.nc.Stats().OutMsgs }

	before := sent()
	_, err := e.bus.Publish(ctx, bus.OutgoingMessage{Subject: "nowhere.a", Payload: []byte("x")})
	if !errors.Is(err, bus.ErrNoStream) {
		t.Fatalf("Publish to an uncovered subject = %v, want bus.ErrNoStream", err)
	}
	if n := sent() - before; n != 2 {
		t.Fatalf("Publish sent %d messages, want 2: the publish and the look-up of its stream", n)
	}

	before = sent()
	results, err := e.bus.PublishBatch(ctx, []bus.OutgoingMessage{
		{Subject: "nowhere.b", Payload: []byte("1")},
		{Subject: "COVERED.b", Payload: []byte("2")},
		{Subject: "nowhere.b", Payload: []byte("3")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(results[0].Err, bus.ErrNoStream) || results[1].Err != nil || !errors.Is(results[2].Err, bus.ErrNoStream) {
		t.Fatalf("batch results = %+v, want ErrNoStream, stored, ErrNoStream", results)
	}
	if n := sent() - before; n != 4 {
		t.Fatalf("PublishBatch sent %d messages, want 4: three publishes and one look-up", n)
	}
}
