package e2e_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// pollEvery is how often a test re-checks a condition it waits for.
const pollEvery = 50 * time.Millisecond

// connect opens a JetStream client on an app's broker, closed when the
// test ends.
func connect(t *testing.T, a *app) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(a.url, nats.Name(t.Name()), nats.MaxReconnects(0))
	if err != nil {
		t.Fatalf("connect to %s: %v", a.url, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// publish publishes data to subject and fails the test unless a stream
// stored it.
func publish(t *testing.T, ctx context.Context, js jetstream.JetStream, subject, data string) {
	t.Helper()
	if _, err := js.Publish(ctx, subject, []byte(data)); err != nil {
		t.Fatalf("publish %s %s: %v", subject, data, err)
	}
}

// readStream reads the messages of stream on subject from the start until
// it has n of them, and returns them in stream order. On a cluster a read
// can go unanswered while the stream's servers elect a leader or catch up:
// it is started again.
func readStream(t *testing.T, ctx context.Context, js jetstream.JetStream, stream, subject string, n int) []jetstream.Msg {
	t.Helper()
	for {
		out, err := readStreamOnce(ctx, js, stream, subject, n)
		if err == nil {
			return out
		}
		transient := errors.Is(err, nats.ErrNoResponders) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout)
		if ctx.Err() != nil || !transient {
			t.Fatalf("read %s on %s: %d of %d messages: %v", subject, stream, len(out), n, err)
		}
		time.Sleep(pollEvery)
	}
}

// readStreamOnce is one attempt of readStream: what it read, and the error
// that stopped it.
func readStreamOnce(ctx context.Context, js jetstream.JetStream, stream, subject string, n int) ([]jetstream.Msg, error) {
	c, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		return nil, err
	}
	var out []jetstream.Msg
	for len(out) < n {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		batch, err := c.Fetch(n-len(out), jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return out, err
		}
		for m := range batch.Messages() {
			out = append(out, m)
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return out, err
		}
	}
	return out, nil
}

// waitRecords waits until the app a has logged at least n records that
// match, and returns every one that does. A record can come after what it
// is about is visible on the broker: a plugin out of process sends its log
// records apart from its calls.
func waitRecords(t *testing.T, ctx context.Context, a *app, n int, match func(record) bool) []record {
	t.Helper()
	var matched []record
	eventually(t, ctx, fmt.Sprintf("%d matching log records", n), func() (bool, string) {
		matched = matched[:0]
		for _, r := range a.log.records() {
			if match(r) {
				matched = append(matched, r)
			}
		}
		return len(matched) >= n, fmt.Sprintf("%d logged", len(matched))
	})
	return matched
}

// eventually polls cond until it reports true; the test fails if ctx ends
// first, with what cond last said.
func eventually(t *testing.T, ctx context.Context, what string, cond func() (bool, string)) {
	t.Helper()
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		ok, state := cond()
		if ok {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v; last state: %s", what, ctx.Err(), state)
		case <-tick.C:
		}
	}
}

// settled reports whether a durable consumer has delivered everything it
// has and every delivery was acked or terminated.
func settled(ctx context.Context, js jetstream.JetStream, stream, consumer string) (bool, string) {
	c, err := js.Consumer(ctx, stream, consumer)
	if err != nil {
		return false, err.Error()
	}
	info, err := c.Info(ctx)
	if err != nil {
		return false, err.Error()
	}
	state := fmt.Sprintf("consumer %s: pending %d, ack pending %d, redelivered %d, delivered %d",
		consumer, info.NumPending, info.NumAckPending, info.NumRedelivered, info.Delivered.Stream)
	return info.NumPending == 0 && info.NumAckPending == 0, state
}

// subjectCount returns how many messages stream holds on subject.
func subjectCount(t *testing.T, ctx context.Context, js jetstream.JetStream, stream, subject string) uint64 {
	t.Helper()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatalf("stream %s: %v", stream, err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		t.Fatalf("stream %s: %v", stream, err)
	}
	return info.State.Subjects[subject]
}

// streamMsgs returns how many messages stream holds.
func streamMsgs(ctx context.Context, js jetstream.JetStream, stream string) (uint64, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return 0, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.State.Msgs, nil
}
