package bustest

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"github.com/wfeventbus/eventbus/bus"
)

// testRoundTrip publishes one message with binary payload, multi-valued
// headers and a correlation id, and checks every field of its delivery.
func testRoundTrip(t *testing.T, s *suite) {
	f := s.setup(t)
	ctx := guard(t)
	out := bus.OutgoingMessage{
		Subject: f.subject("order.created"),
		Payload: []byte{0, 1, 2, 0xfe, 0xff, 'o', 'k'},
		Headers: bus.Headers{
			"X-Tags":   {"red", "green", "blue"},
			"X-Tenant": {"acme"},
		},
		CorrelationID: "corr-42",
	}
	before := time.Now()
	ack, err := f.bus.Publish(ctx, out)
	if err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if ack.Stream != f.stream || ack.Sequence != 1 || ack.Duplicate {
		t.Errorf("PublishAck = %+v, want stream %s, sequence 1, not duplicate", ack, f.stream)
	}

	m := f.receive(t, 1)[0]
	if m.Subject != out.Subject {
		t.Errorf("Subject = %q, want %q", m.Subject, out.Subject)
	}
	if !bytes.Equal(m.Payload, out.Payload) {
		t.Errorf("Payload = %v, want %v", m.Payload, out.Payload)
	}
	for key, want := range out.Headers {
		if got := m.Headers[key]; !slices.Equal(got, want) {
			t.Errorf("Headers[%q] = %q, want %q", key, got, want)
		}
	}
	if got := m.Headers.Get(bus.CorrelationIDHeader); got != out.CorrelationID {
		t.Errorf("Headers[%q] = %q, want %q", bus.CorrelationIDHeader, got, out.CorrelationID)
	}
	if m.Stream != f.stream || m.Consumer != f.consumer {
		t.Errorf("Stream, Consumer = %q, %q, want %q, %q", m.Stream, m.Consumer, f.stream, f.consumer)
	}
	if m.StreamSequence != ack.Sequence {
		t.Errorf("StreamSequence = %d, want the published sequence %d", m.StreamSequence, ack.Sequence)
	}
	if m.ConsumerSequence == 0 {
		t.Error("ConsumerSequence is 0")
	}
	if m.DeliveryCount != 1 {
		t.Errorf("DeliveryCount = %d, want 1", m.DeliveryCount)
	}
	// A sanity window, not a latency bound: it catches a zero or
	// wrongly-scaled timestamp.
	if m.PublishedAt.Before(before.Add(-time.Hour)) || m.PublishedAt.After(time.Now().Add(time.Hour)) {
		t.Errorf("PublishedAt = %v, want about %v", m.PublishedAt, before)
	}
	if m.AckToken == "" {
		t.Error("AckToken is empty")
	}
	if m.Acknowledger == nil {
		t.Fatal("Acknowledger is nil")
	}
	if err := m.Ack(ctx); err != nil {
		t.Errorf("Ack: %v", err)
	}
}

// testShortWaits fetches with waits shorter than a broker can wait: an
// empty consumer gives nothing and no error, and fetches as short bring a
// message that waits.
func testShortWaits(t *testing.T, s *suite) {
	f := s.setup(t)
	ctx := guard(t)
	// A first message fetched with the usual wait shows the consumer is
	// served: a wait of a few milliseconds is too short to ride out the
	// election of its first leader on a cluster.
	f.publish(t, "first", 1)
	if err := f.receive(t, 1)[0].Ack(ctx); err != nil {
		t.Fatalf("Ack: %v", err)
	}
	for _, wait := range []time.Duration{time.Nanosecond, time.Millisecond} {
		f.expectNone(t, wait)
		f.publish(t, "short", 1)
		var msgs []*bus.Message
		for fetches := 1; len(msgs) == 0; fetches++ {
			var err error
			msgs, err = f.bus.Fetch(ctx, f.stream, f.consumer, bus.FetchOptions{Batch: 1, MaxWait: wait})
			if err != nil {
				t.Fatalf("fetch %d with MaxWait %s: %v", fetches, wait, err)
			}
		}
		if err := msgs[0].Ack(ctx); err != nil {
			t.Fatalf("Ack: %v", err)
		}
	}
}

// testAckStopsRedelivery acks one message by each route and checks that
// neither comes back after the ack wait.
func testAckStopsRedelivery(t *testing.T, s *suite) {
	f := s.setup(t, withAckWait(shortAckWait))
	ctx := guard(t)
	rs := routes()
	f.publish(t, "a", len(rs))
	msgs := f.receive(t, len(rs))
	for i, r := range rs {
		if err := r.ack(ctx, f.bus, msgs[i]); err != nil {
			t.Fatalf("Ack by %s: %v", r.name, err)
		}
	}
	f.expectNone(t, quietWait)
	f.expectCounts(t, "after acking everything", 0, 0)
}

// testNakRedelivers naks a message by each route and checks it comes back
// at once as the second delivery of the same stream message.
func testNakRedelivers(t *testing.T, s *suite) {
	f := s.setup(t)
	for _, r := range routes() {
		t.Run(r.name, func(t *testing.T) {
			ctx := guard(t)
			f.publish(t, r.name, 1)
			first := f.receive(t, 1)[0]
			if err := r.nak(ctx, f.bus, first, 0); err != nil {
				t.Fatalf("Nak: %v", err)
			}
			again := f.receive(t, 1)[0]
			if again.StreamSequence != first.StreamSequence || again.DeliveryCount != 2 {
				t.Errorf("after Nak got %s, want seq=%d delivery=2", describe(again), first.StreamSequence)
			}
			if err := again.Ack(ctx); err != nil {
				t.Errorf("Ack of the redelivery: %v", err)
			}
		})
	}
}

// testNakDelay naks two messages with a delay, one by each route, and checks
// that a fetch right after gets nothing and a later one gets both again.
func testNakDelay(t *testing.T, s *suite) {
	// The quiet fetch right after the naks lasts a sixth of delay, leaving
	// the rest as margin for a loaded machine.
	const delay = 3 * time.Second
	f := s.setup(t)
	ctx := guard(t)
	rs := routes()
	acks := f.publish(t, "a", len(rs))
	msgs := f.receive(t, len(rs))
	for i, r := range rs {
		if err := r.nak(ctx, f.bus, msgs[i], delay); err != nil {
			t.Fatalf("Nak(%v) by %s: %v", delay, r.name, err)
		}
	}
	f.expectNone(t, delay/6)
	again := f.drain(t, len(rs))
	seqs := make([]uint64, 0, len(again))
	for _, m := range again {
		if m.DeliveryCount != 2 {
			t.Errorf("redelivery %s, want delivery=2", describe(m))
		}
		seqs = append(seqs, m.StreamSequence)
	}
	slices.Sort(seqs)
	if want := []uint64{acks[0].Sequence, acks[1].Sequence}; !slices.Equal(seqs, want) {
		t.Errorf("redelivered sequences %v, want %v", seqs, want)
	}
}

// testTermStopsRedelivery terminates one message by each route and checks
// that neither comes back after the ack wait nor stays pending.
func testTermStopsRedelivery(t *testing.T, s *suite) {
	f := s.setup(t, withAckWait(shortAckWait))
	ctx := guard(t)
	rs := routes()
	f.publish(t, "a", len(rs))
	msgs := f.receive(t, len(rs))
	for i, r := range rs {
		if err := r.term(ctx, f.bus, msgs[i], "bustest: poison message"); err != nil {
			t.Fatalf("Term by %s: %v", r.name, err)
		}
	}
	f.expectNone(t, quietWait)
	f.expectCounts(t, "after terminating everything", 0, 0)
}

// testInProgress holds one delivery for more than twice its ack wait by
// calling InProgress, alternating routes, while a concurrent fetch on the
// same consumer must get nothing; the held delivery is then acked.
func testInProgress(t *testing.T, s *suite) {
	const (
		// ackWait leaves InProgress calls a wide margin on a loaded machine.
		ackWait = 2 * time.Second
		// hold is well past ackWait, so a deadline that is not extended
		// shows as a redelivery.
		hold  = 5 * time.Second
		every = 250 * time.Millisecond
	)
	f := s.setup(t, withAckWait(ackWait))
	ctx := guard(t)
	f.publish(t, "a", 1)
	m := f.receive(t, 1)[0]

	type result struct {
		msgs []*bus.Message
		err  error
	}
	other := make(chan result, 1)
	go func() {
		msgs, err := f.bus.Fetch(ctx, f.stream, f.consumer, bus.FetchOptions{Batch: 1, MaxWait: hold})
		other <- result{msgs, err}
	}()

	rs := routes()
	tick := time.NewTicker(every)
	defer tick.Stop()
	var got result
	calls := 0
held:
	for {
		select {
		case got = <-other:
			break held
		case <-tick.C:
			r := rs[calls%len(rs)]
			if err := r.inProgress(ctx, f.bus, m); err != nil {
				t.Fatalf("InProgress by %s: %v", r.name, err)
			}
			calls++
		case <-ctx.Done():
			t.Fatalf("concurrent Fetch did not return: %v", ctx.Err())
		}
	}
	if got.err != nil {
		t.Fatalf("concurrent Fetch: %v", got.err)
	}
	if len(got.msgs) > 0 {
		t.Fatalf("a delivery kept in progress was redelivered: %s", describe(got.msgs...))
	}
	if err := m.Ack(ctx); err != nil {
		t.Errorf("Ack after InProgress: %v", err)
	}
}

// testMaxDeliver naks a message on a consumer with MaxDeliver 2 until the
// bound and checks there is no third delivery.
func testMaxDeliver(t *testing.T, s *suite) {
	const maxDeliver = 2
	f := s.setup(t, withAckWait(shortAckWait), withMaxDeliver(maxDeliver))
	ctx := guard(t)
	f.publish(t, "a", 1)
	for delivery := uint64(1); delivery <= maxDeliver; delivery++ {
		m := f.receive(t, 1)[0]
		if m.DeliveryCount != delivery {
			t.Fatalf("got %s, want delivery=%d", describe(m), delivery)
		}
		if err := m.Nak(ctx, 0); err != nil {
			t.Fatalf("Nak of delivery %d: %v", delivery, err)
		}
	}
	f.expectNone(t, quietWait)
}
