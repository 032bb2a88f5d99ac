package bustest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/wfeventbus/eventbus/bus"
)

const (
	// hangGuard bounds every wait, so that a broken backend fails the case
	// instead of hanging the run. Passing cases never come near it.
	hangGuard = time.Minute
	// shortAckWait is the ack wait of consumers in cases that wait for a
	// redelivery that must not come.
	shortAckWait = time.Second
	// quietWait is how long a fetch that expects nothing waits: past a
	// short ack wait twice over, so a wrong redelivery has time to show.
	quietWait = 2*shortAckWait + 500*time.Millisecond
	// fetchWait is the MaxWait of one fetch while collecting messages.
	fetchWait = 5 * time.Second
	// collectBatch is the largest Batch of one fetch while collecting
	// messages; small enough to arrive well inside fetchWait on a loaded
	// machine.
	collectBatch = 100
	// consumerName is the durable consumer every fixture creates.
	consumerName = "worker"
)

// fixture is one stream with one durable pull consumer on a bus.
type fixture struct {
	suite    *suite
	env      Env
	bus      bus.Bus
	stream   string
	consumer string
}

// option tunes the stream and consumer a fixture creates.
type option func(*bus.StreamConfig, *bus.ConsumerConfig)

// withAckWait sets the consumer's ack wait.
func withAckWait(d time.Duration) option {
	return func(_ *bus.StreamConfig, c *bus.ConsumerConfig) { c.AckWait = d }
}

// withMaxDeliver sets the consumer's delivery bound.
func withMaxDeliver(n int) option {
	return func(_ *bus.StreamConfig, c *bus.ConsumerConfig) { c.MaxDeliver = n }
}

// withDuplicateWindow sets the stream's duplicate window.
func withDuplicateWindow(d time.Duration) option {
	return func(s *bus.StreamConfig, _ *bus.ConsumerConfig) { s.DuplicateWindow = d }
}

// withMaxMsgSize sets the stream's largest message.
func withMaxMsgSize(n int32) option {
	return func(s *bus.StreamConfig, _ *bus.ConsumerConfig) { s.MaxMsgSize = n }
}

// setup makes a fresh Env with one stream and its consumer.
func (s *suite) setup(t *testing.T, opts ...option) *fixture {
	t.Helper()
	env := s.h.New(t)
	if env.Bus == nil {
		t.Fatal("bustest: Harness.New returned an Env with a nil Bus")
	}
	return s.addStream(t, env, opts...)
}

// setupRestartable is setup for a case that may restart the broker.
func (s *suite) setupRestartable(t *testing.T, opts ...option) *fixture {
	t.Helper()
	if s.h.NewRestartable == nil || restartable(s.h) != "" {
		return s.setup(t, opts...)
	}
	env := s.h.NewRestartable(t)
	if env.Bus == nil {
		t.Fatal("bustest: Harness.NewRestartable returned an Env with a nil Bus")
	}
	return s.addStream(t, env, opts...)
}

// sibling makes another stream and consumer on the same Env as f.
func (f *fixture) sibling(t *testing.T, opts ...option) *fixture {
	t.Helper()
	return f.suite.addStream(t, f.env, opts...)
}

// addStream creates a uniquely named stream capturing "<name>.>" and a
// durable consumer on it, with explicit acks.
func (s *suite) addStream(t *testing.T, env Env, opts ...option) *fixture {
	t.Helper()
	name := s.uniqueName(t)
	sc := bus.StreamConfig{Name: name, Subjects: []string{name + ".>"}, Storage: s.h.Storage, Replicas: s.h.Replicas}
	cc := bus.ConsumerConfig{Durable: consumerName, Stream: name, AckPolicy: bus.AckExplicit}
	for _, o := range opts {
		o(&sc, &cc)
	}
	ctx, cancel := context.WithTimeout(t.Context(), hangGuard)
	defer cancel()
	if _, err := env.Bus.EnsureStream(ctx, sc); err != nil {
		t.Fatalf("EnsureStream(%s): %v", name, err)
	}
	if _, err := env.Bus.EnsureConsumer(ctx, cc); err != nil {
		t.Fatalf("EnsureConsumer(%s/%s): %v", name, cc.Durable, err)
	}
	return &fixture{suite: s, env: env, bus: env.Bus, stream: name, consumer: cc.Durable}
}

// addConsumer creates another durable consumer on f's stream and returns a
// fixture that fetches from it.
func (f *fixture) addConsumer(t *testing.T, durable string) *fixture {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), hangGuard)
	defer cancel()
	cc := bus.ConsumerConfig{Durable: durable, Stream: f.stream, AckPolicy: bus.AckExplicit}
	if _, err := f.bus.EnsureConsumer(ctx, cc); err != nil {
		t.Fatalf("EnsureConsumer(%s/%s): %v", f.stream, durable, err)
	}
	g := *f
	g.consumer = durable
	return &g
}

// subject returns the subject token under f's stream.
func (f *fixture) subject(token string) string { return f.stream + "." + token }

// orphanSubject returns a subject that no stream captures.
func (s *suite) orphanSubject(t *testing.T) string { return s.uniqueName(t) + ".nowhere" }

// guard returns a context that ends with the test or after hangGuard.
func guard(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), hangGuard)
	t.Cleanup(cancel)
	return ctx
}

// payloadID is the payload publish gives the i-th message on token.
func payloadID(token string, i int) string { return fmt.Sprintf("%s-%d", token, i) }

// publish stores n messages on the subject token, one Publish each, with
// payloads payloadID(token, i), and returns their acks.
func (f *fixture) publish(t *testing.T, token string, n int) []bus.PublishAck {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), hangGuard)
	defer cancel()
	acks := make([]bus.PublishAck, n)
	for i := range n {
		ack, err := f.bus.Publish(ctx, bus.OutgoingMessage{Subject: f.subject(token), Payload: []byte(payloadID(token, i))})
		if err != nil {
			t.Fatalf("Publish %s: %v", payloadID(token, i), err)
		}
		if ack.Stream != f.stream || ack.Sequence == 0 || ack.Duplicate {
			t.Fatalf("Publish %s: ack %+v, want a new message in stream %s", payloadID(token, i), ack, f.stream)
		}
		acks[i] = ack
	}
	return acks
}

// drain fetches exactly n messages from f's consumer and acks each batch as
// it arrives, so that no delivery outlives its ack wait while the rest are
// collected.
func (f *fixture) drain(t *testing.T, n int) []*bus.Message {
	t.Helper()
	return f.collect(t, n, true)
}

// receive fetches exactly n messages from f's consumer without settling
// them.
func (f *fixture) receive(t *testing.T, n int) []*bus.Message {
	t.Helper()
	return f.collect(t, n, false)
}

// collect fetches until it has exactly n messages, acking them if ack is
// set, and fails the case if no message arrives for hangGuard. The guard
// bounds each fetch with its acks and each wait for the next message, not
// the whole collection, whose length depends on how busy the machine is.
func (f *fixture) collect(t *testing.T, n int, ack bool) []*bus.Message {
	t.Helper()
	got := make([]*bus.Message, 0, n)
	last := time.Now()
	for len(got) < n {
		if time.Since(last) > hangGuard {
			t.Fatalf("no message arrived for %v after %d of %d", hangGuard, len(got), n)
		}
		batch := f.fetchBatch(t, min(n-len(got), collectBatch), ack, len(got), n)
		if len(batch) > 0 {
			last = time.Now()
		}
		got = append(got, batch...)
	}
	return got
}

// fetchBatch is one fetch of collect, for up to want messages after it
// has had of n, acked if ack is set, bounded by hangGuard.
func (f *fixture) fetchBatch(t *testing.T, want int, ack bool, had, n int) []*bus.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), hangGuard)
	defer cancel()
	batch, err := f.bus.Fetch(ctx, f.stream, f.consumer, bus.FetchOptions{Batch: want, MaxWait: fetchWait})
	if err != nil {
		t.Fatalf("Fetch after %d of %d messages: %v", had, n, err)
	}
	if len(batch) > want {
		t.Fatalf("Fetch with Batch %d returned %d messages", want, len(batch))
	}
	if ack {
		for _, m := range batch {
			if err := m.Ack(ctx); err != nil {
				t.Fatalf("Ack %s: %v", describe(m), err)
			}
		}
	}
	return batch
}

// expectNone fetches once with MaxWait wait and fails the case if anything
// is delivered.
func (f *fixture) expectNone(t *testing.T, wait time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), wait+hangGuard)
	defer cancel()
	msgs, err := f.bus.Fetch(ctx, f.stream, f.consumer, bus.FetchOptions{Batch: 10, MaxWait: wait})
	if err != nil {
		t.Fatalf("Fetch expecting nothing: %v", err)
	}
	if len(msgs) > 0 {
		t.Fatalf("Fetch expecting nothing got %d deliveries: %s", len(msgs), describe(msgs...))
	}
}

const (
	// countPoll is the pause between two looks at a consumer's counts.
	countPoll = 50 * time.Millisecond
	// countGuard is how long counts may take to settle; like hangGuard it
	// only bounds a failing case.
	countGuard = 15 * time.Second
)

// expectCounts waits until f's consumer reports pending undelivered and
// ackPending unacked messages, failing the case if it still does not after
// countGuard. Brokers may update these counts asynchronously (JetStream
// does), so a single look could see a state that is about to change.
func (f *fixture) expectCounts(t *testing.T, when string, pending uint64, ackPending int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), countGuard)
	defer cancel()
	for {
		info, err := f.bus.ConsumerInfo(ctx, f.stream, f.consumer)
		if err != nil {
			t.Fatalf("ConsumerInfo(%s/%s) %s: %v", f.stream, f.consumer, when, err)
		}
		if info.NumPending == pending && info.NumAckPending == ackPending {
			return
		}
		select {
		case <-ctx.Done():
			t.Errorf("%s NumPending, NumAckPending = %d, %d, want %d, %d", when, info.NumPending, info.NumAckPending, pending, ackPending)
			return
		case <-time.After(countPoll):
		}
	}
}

// streamInfo returns the state of f's stream.
func (f *fixture) streamInfo(t *testing.T) bus.StreamInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), hangGuard)
	defer cancel()
	info, err := f.bus.StreamInfo(ctx, f.stream)
	if err != nil {
		t.Fatalf("StreamInfo(%s): %v", f.stream, err)
	}
	return info
}

// subscribe starts a subscription on f's consumer and stops it when the
// case ends.
func (f *fixture) subscribe(t *testing.T, h bus.Handler, opts bus.SubscribeOptions) bus.Subscription {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), hangGuard)
	defer cancel()
	sub, err := f.bus.Subscribe(ctx, f.stream, f.consumer, h, opts)
	if err != nil {
		t.Fatalf("Subscribe(%s/%s): %v", f.stream, f.consumer, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
		defer cancel()
		if err := sub.Stop(ctx); err != nil && !errors.Is(err, bus.ErrClosed) {
			t.Errorf("Stop at cleanup: %v", err)
		}
	})
	return sub
}

// wait blocks until ch is closed or hangGuard passes, failing the case with
// what it was waiting for in the latter.
func wait(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(hangGuard):
		t.Fatalf("gave up waiting for %s after %v", what, hangGuard)
	}
}

// wantErr fails the case unless err matches target.
func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: got error %v, want %v", what, err, target)
	}
}

// describe renders deliveries for failure messages.
func describe(msgs ...*bus.Message) string {
	parts := make([]string, len(msgs))
	for i, m := range msgs {
		parts[i] = fmt.Sprintf("{%s seq=%d delivery=%d payload=%q}", m.Subject, m.StreamSequence, m.DeliveryCount, m.Payload)
	}
	return strings.Join(parts, " ")
}

// route is one of the two ways to settle a delivery: through the message's
// Acknowledger, or through the Settler with the message's token.
type route struct {
	name       string
	ack        func(ctx context.Context, b bus.Settler, m *bus.Message) error
	nak        func(ctx context.Context, b bus.Settler, m *bus.Message, delay time.Duration) error
	term       func(ctx context.Context, b bus.Settler, m *bus.Message, reason string) error
	inProgress func(ctx context.Context, b bus.Settler, m *bus.Message) error
}

// routes returns both settlement routes, the message's first.
func routes() []route {
	return []route{
		{
			name:       "Message",
			ack:        func(ctx context.Context, _ bus.Settler, m *bus.Message) error { return m.Ack(ctx) },
			nak:        func(ctx context.Context, _ bus.Settler, m *bus.Message, d time.Duration) error { return m.Nak(ctx, d) },
			term:       func(ctx context.Context, _ bus.Settler, m *bus.Message, r string) error { return m.Term(ctx, r) },
			inProgress: func(ctx context.Context, _ bus.Settler, m *bus.Message) error { return m.InProgress(ctx) },
		},
		{
			name: "Settler",
			ack:  func(ctx context.Context, b bus.Settler, m *bus.Message) error { return b.Ack(ctx, m.AckToken) },
			nak: func(ctx context.Context, b bus.Settler, m *bus.Message, d time.Duration) error {
				return b.Nak(ctx, m.AckToken, d)
			},
			term: func(ctx context.Context, b bus.Settler, m *bus.Message, r string) error {
				return b.Term(ctx, m.AckToken, r)
			},
			inProgress: func(ctx context.Context, b bus.Settler, m *bus.Message) error { return b.InProgress(ctx, m.AckToken) },
		},
	}
}
