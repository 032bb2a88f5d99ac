package bustest

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/wfeventbus/eventbus/bus"
)

// testDedup publishes the same MsgID twice inside the duplicate window and
// checks the second is reported as a duplicate and not stored, while a new
// MsgID is.
func testDedup(t *testing.T, s *suite) {
	f := s.setup(t, withDuplicateWindow(time.Minute))
	ctx := guard(t)
	sends := []struct {
		msgID, payload string
		duplicate      bool
	}{
		{"order-1", "first", false},
		{"order-1", "second", true},
		{"order-2", "third", false},
	}
	for _, snd := range sends {
		ack, err := f.bus.Publish(ctx, bus.OutgoingMessage{Subject: f.subject("a"), Payload: []byte(snd.payload), MsgID: snd.msgID})
		if err != nil {
			t.Fatalf("Publish %s (MsgID %s): %v", snd.payload, snd.msgID, err)
		}
		if ack.Duplicate != snd.duplicate {
			t.Errorf("Publish %s (MsgID %s): Duplicate = %v, want %v", snd.payload, snd.msgID, ack.Duplicate, snd.duplicate)
		}
	}
	if n := f.streamInfo(t).Messages; n != 2 {
		t.Errorf("stream holds %d messages, want 2", n)
	}
	got := payloads(f.drain(t, 2))
	if want := []string{"first", "third"}; !slices.Equal(got, want) {
		t.Errorf("delivered %q, want %q", got, want)
	}
}

// testPublishBatch publishes a batch with one message no stream captures and
// checks the results: in the order of the batch, the bad one failing with
// ErrNoStream, every other stored under the sequence its result reports.
func testPublishBatch(t *testing.T, s *suite) {
	const size, bad = 9, 4
	f := s.setup(t)
	ctx := guard(t)
	out := make([]bus.OutgoingMessage, size)
	for i := range out {
		out[i] = bus.OutgoingMessage{Subject: f.subject("a"), Payload: []byte(payloadID("a", i))}
	}
	out[bad].Subject = s.orphanSubject(t)

	results, err := f.bus.PublishBatch(ctx, out)
	if err != nil {
		t.Fatalf("PublishBatch: %v", err)
	}
	if len(results) != size {
		t.Fatalf("PublishBatch returned %d results for %d messages", len(results), size)
	}
	wantPayload := make(map[uint64]string, size-1)
	for i, r := range results {
		switch {
		case i == bad:
			wantErr(t, "result of the message no stream captures", r.Err, bus.ErrNoStream)
		case r.Err != nil:
			t.Errorf("result %d: %v", i, r.Err)
		case r.Ack.Stream != f.stream || r.Ack.Sequence == 0 || r.Ack.Duplicate:
			t.Errorf("result %d: ack %+v, want a new message in stream %s", i, r.Ack, f.stream)
		default:
			wantPayload[r.Ack.Sequence] = string(out[i].Payload)
		}
	}
	if len(wantPayload) != size-1 {
		t.Fatalf("%d distinct sequences acked, want %d", len(wantPayload), size-1)
	}
	if n := f.streamInfo(t).Messages; n != size-1 {
		t.Errorf("stream holds %d messages, want %d", n, size-1)
	}
	for _, m := range f.drain(t, size-1) {
		if want := wantPayload[m.StreamSequence]; string(m.Payload) != want {
			t.Errorf("message at sequence %d has payload %q, but its result said %q", m.StreamSequence, m.Payload, want)
		}
	}
}

// testExpectedLastSequence checks the optimistic-concurrency fields of a
// publish: a stale ExpectedLastSequence or a wrong ExpectedStream stores
// nothing.
func testExpectedLastSequence(t *testing.T, s *suite) {
	f := s.setup(t)
	ctx := guard(t)
	first := f.publish(t, "a", 1)[0]
	msg := func(payload string, lastSeq uint64, stream string) bus.OutgoingMessage {
		return bus.OutgoingMessage{Subject: f.subject("a"), Payload: []byte(payload), ExpectedLastSequence: lastSeq, ExpectedStream: stream}
	}

	ack, err := f.bus.Publish(ctx, msg("follows first", first.Sequence, ""))
	if err != nil {
		t.Fatalf("Publish expecting last sequence %d: %v", first.Sequence, err)
	}
	if ack.Sequence != first.Sequence+1 {
		t.Errorf("sequence %d, want %d", ack.Sequence, first.Sequence+1)
	}
	_, err = f.bus.Publish(ctx, msg("stale", first.Sequence, ""))
	wantErr(t, "Publish expecting a stale last sequence", err, bus.ErrWrongLastSequence)

	if _, err := f.bus.Publish(ctx, msg("right stream", 0, f.stream)); err != nil {
		t.Errorf("Publish expecting its own stream: %v", err)
	}
	if _, err := f.bus.Publish(ctx, msg("wrong stream", 0, f.stream+"_other")); err == nil {
		t.Error("Publish expecting another stream succeeded")
	}
	if n := f.streamInfo(t).Messages; n != 3 {
		t.Errorf("stream holds %d messages, want 3", n)
	}
}

// testOrderPerSubject interleaves 100 messages on each of three subjects and
// checks each subject's messages arrive in publish order, through Fetch and
// through a concurrent subscription with OrderedBySubject.
func testOrderPerSubject(t *testing.T, s *suite) {
	const perSubject = 100
	tokens := []string{"a", "b", "c"}
	total := perSubject * len(tokens)
	f := s.setup(t)
	ordered := f.addConsumer(t, "ordered")
	ctx := guard(t)
	for i := range perSubject {
		for _, tok := range tokens {
			if _, err := f.bus.Publish(ctx, bus.OutgoingMessage{Subject: f.subject(tok), Payload: []byte(payloadID(tok, i))}); err != nil {
				t.Fatalf("Publish %s: %v", payloadID(tok, i), err)
			}
		}
	}
	checkOrder := func(t *testing.T, msgs []*bus.Message) {
		t.Helper()
		bySubject := make(map[string][]string)
		for _, m := range msgs {
			bySubject[m.Subject] = append(bySubject[m.Subject], string(m.Payload))
		}
		for _, tok := range tokens {
			want := make([]string, perSubject)
			for i := range want {
				want[i] = payloadID(tok, i)
			}
			if got := bySubject[f.subject(tok)]; !slices.Equal(got, want) {
				t.Errorf("subject %s delivered out of order or incompletely:\n got %q\nwant %q", tok, got, want)
			}
		}
	}

	t.Run("Fetch", func(t *testing.T) {
		checkOrder(t, f.drain(t, total))
	})

	t.Run("SubscribeOrderedBySubject", func(t *testing.T) {
		var (
			mu       sync.Mutex
			started  []*bus.Message
			running  = make(map[string]int)
			overlaps int
			finished int
			ackErr   error
		)
		done := make(chan struct{})
		handle := func(ctx context.Context, m *bus.Message) {
			mu.Lock()
			started = append(started, m)
			running[m.Subject]++
			if running[m.Subject] > 1 {
				overlaps++
			}
			mu.Unlock()

			err := m.Ack(ctx)

			mu.Lock()
			defer mu.Unlock()
			running[m.Subject]--
			ackErr = errors.Join(ackErr, err)
			if finished++; finished == total {
				close(done)
			}
		}
		sub := ordered.subscribe(t, handle, bus.SubscribeOptions{Concurrency: 4, OrderedBySubject: true})
		wait(t, done, "every message to be handled")
		if err := sub.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
		mu.Lock()
		defer mu.Unlock()
		if overlaps > 0 {
			t.Errorf("%d handlers started while another of the same subject was running", overlaps)
		}
		if ackErr != nil {
			t.Errorf("Ack in handler: %v", ackErr)
		}
		checkOrder(t, started)
	})
}

// payloads returns the payloads of msgs as strings.
func payloads(msgs []*bus.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = string(m.Payload)
	}
	return out
}
