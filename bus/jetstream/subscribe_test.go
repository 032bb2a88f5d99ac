package jetstream_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wfeventbus/eventbus/bus"
	"github.com/wfeventbus/eventbus/bus/embedded"
	"github.com/wfeventbus/eventbus/bus/jetstream"
)

func TestSubscribeRejectsInvalidArguments(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	stream := e.stream(t, "ARGS", bus.StreamConfig{})
	consumer := e.consumer(t, stream, "c", bus.ConsumerConfig{})
	h := func(context.Context, *bus.Message) {}
	cases := map[string]func(ctx context.Context) error{
		"nil handler": func(ctx context.Context) error {
			_, err := e.bus.Subscribe(ctx, stream, consumer, nil, bus.SubscribeOptions{})
			return err
		},
		"negative concurrency": func(ctx context.Context) error {
			_, err := e.bus.Subscribe(ctx, stream, consumer, h, bus.SubscribeOptions{Concurrency: -1})
			return err
		},
		"no consumer name": func(ctx context.Context) error {
			_, err := e.bus.Subscribe(ctx, stream, "", h, bus.SubscribeOptions{})
			return err
		},
	}
	for name, call := range cases {
		if err := call(testContext(t)); !errors.Is(err, bus.ErrInvalidConfig) {
			t.Errorf("%s: got %v, want bus.ErrInvalidConfig", name, err)
		}
	}
}

// TestSubscribeBoundsConcurrency checks that no more than Concurrency
// handlers run at once, and that as many do when messages wait.
func TestSubscribeBoundsConcurrency(t *testing.T) {
	t.Parallel()
	const workers, total = 3, 30
	e := newEnv(t)
	stream := e.stream(t, "CONC", bus.StreamConfig{})
	consumer := e.consumer(t, stream, "c", bus.ConsumerConfig{})
	for i := range total {
		e.publish(t, fmt.Sprintf("CONC.%d", i), "x")
	}

	var (
		running, peak, handled atomic.Int64
		full                   = make(chan struct{})
		fullOnce               sync.Once
		done                   = make(chan struct{})
	)
	sub, err := e.bus.Subscribe(testContext(t), stream, consumer, func(ctx context.Context, m *bus.Message) {
		n := running.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		if n == workers {
			fullOnce.Do(func() { close(full) })
		}
		// Hold every handler until all workers have been busy at once.
		<-full
		running.Add(-1)
		if err := m.Ack(ctx); err != nil {
			t.Errorf("Ack: %v", err)
		}
		if handled.Add(1) == total {
			close(done)
		}
	}, bus.SubscribeOptions{Concurrency: workers})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Stop(context.Background())
	wait(t, done, "every message to be handled")
	if p := peak.Load(); p != workers {
		t.Fatalf("at most %d handlers ran at once, want exactly %d", p, workers)
	}
}

// TestSubscribeOrderedBySubject checks that a subject's messages run one at
// a time, in stream order, while subjects run in parallel.
func TestSubscribeOrderedBySubject(t *testing.T) {
	t.Parallel()
	const subjects, perSubject = 4, 40
	e := newEnv(t)
	stream := e.stream(t, "ORD", bus.StreamConfig{})
	consumer := e.consumer(t, stream, "c", bus.ConsumerConfig{})
	for i := range perSubject {
		for s := range subjects {
			e.publish(t, fmt.Sprintf("ORD.s%d", s), fmt.Sprint(i))
		}
	}
	var (
		mu       sync.Mutex
		seen     = map[string][]string{}
		running  = map[string]bool{}
		overlaps int
		handled  int
		done     = make(chan struct{})
	)
	sub, err := e.bus.Subscribe(testContext(t), stream, consumer, func(ctx context.Context, m *bus.Message) {
		mu.Lock()
		if running[m.Subject] {
			overlaps++
		}
		running[m.Subject] = true
		seen[m.Subject] = append(seen[m.Subject], string(m.Payload))
		mu.Unlock()
		_ = m.Ack(ctx)
		mu.Lock()
		running[m.Subject] = false
		if handled++; handled == subjects*perSubject {
			close(done)
		}
		mu.Unlock()
	}, bus.SubscribeOptions{Concurrency: subjects, OrderedBySubject: true})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Stop(context.Background())
	wait(t, done, "every message to be handled")
	mu.Lock()
	defer mu.Unlock()
	if overlaps > 0 {
		t.Errorf("%d handlers started while another of their subject ran", overlaps)
	}
	for subject, got := range seen {
		for i, p := range got {
			if p != fmt.Sprint(i) {
				t.Fatalf("subject %s handled out of order: %q", subject, got)
			}
		}
	}
}

// TestSubscriptionStopReleasesHeldMessages stops a subscription whose only
// handler is busy, and checks that the messages it held but never started
// go straight back to the consumer, without waiting out an ack wait.
func TestSubscriptionStopReleasesHeldMessages(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	stream := e.stream(t, "HELD", bus.StreamConfig{})
	// An ack wait longer than the test: only a release brings them back.
	consumer := e.consumer(t, stream, "c", bus.ConsumerConfig{AckWait: time.Hour})
	for i := range 5 {
		e.publish(t, fmt.Sprintf("HELD.%d", i), "x")
	}
	started := make(chan *bus.Message, 1)
	release := make(chan struct{})
	var calls atomic.Int64
	sub, err := e.bus.Subscribe(testContext(t), stream, consumer, func(ctx context.Context, m *bus.Message) {
		calls.Add(1)
		started <- m
		<-release
		_ = m.Ack(ctx)
	}, bus.SubscribeOptions{Concurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	first := <-started
	stopped := make(chan error, 1)
	go func() { stopped <- sub.Stop(testContext(t)) }()
	close(release)
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("the handler ran %d times, want once", n)
	}
	rest := e.fetchN(t, stream, consumer, 4)
	for _, m := range rest {
		if m.StreamSequence == first.StreamSequence {
			t.Fatalf("the handled message came back: %+v", m)
		}
	}
}

// TestSubscribeAgainAfterStop checks that a stopped subscription leaves no
// pull behind: messages published after Stop reach the next subscriber on
// their first delivery.
func TestSubscribeAgainAfterStop(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	stream := e.stream(t, "ROUNDS", bus.StreamConfig{})
	consumer := e.consumer(t, stream, "c", bus.ConsumerConfig{AckWait: time.Hour})
	ctx := testContext(t)
	for round := range 5 {
		const n = 50
		var (
			handled    atomic.Int64
			redelivery atomic.Int64
			done       = make(chan struct{})
		)
		sub, err := e.bus.Subscribe(ctx, stream, consumer, func(ctx context.Context, m *bus.Message) {
			if m.DeliveryCount != 1 {
				redelivery.Add(1)
			}
			_ = m.Ack(ctx)
			if handled.Add(1) == n {
				close(done)
			}
		}, bus.SubscribeOptions{Concurrency: 4})
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			e.publish(t, fmt.Sprintf("ROUNDS.%d", i), "x")
		}
		wait(t, done, fmt.Sprintf("round %d to be handled", round))
		if err := sub.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		if r := redelivery.Load(); r > 0 {
			t.Fatalf("round %d: %d messages came as redeliveries", round, r)
		}
	}
}

func TestSubscribeSurvivesHandlerPanic(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	stream := e.stream(t, "PANIC", bus.StreamConfig{})
	consumer := e.consumer(t, stream, "c", bus.ConsumerConfig{})
	done := make(chan struct{})
	sub, err := e.bus.Subscribe(testContext(t), stream, consumer, func(ctx context.Context, m *bus.Message) {
		if string(m.Payload) == "boom" {
			panic("handler failure")
		}
		_ = m.Ack(ctx)
		close(done)
	}, bus.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Stop(context.Background())
	e.publish(t, "PANIC.a", "boom")
	e.publish(t, "PANIC.a", "fine")
	wait(t, done, "the message after the panic to be handled")
}

// TestSubscriptionResumesAfterRestart restarts the broker under a running
// subscription and checks it handles what is published afterwards.
func TestSubscriptionResumesAfterRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	e := newEnvWith(t, embedded.Config{StoreDir: dir, Port: restartablePort(t)})
	stream := e.stream(t, "RESUME", bus.StreamConfig{})
	consumer := e.consumer(t, stream, "c", bus.ConsumerConfig{})
	got := make(chan string, 10)
	sub, err := e.bus.Subscribe(testContext(t), stream, consumer, func(ctx context.Context, m *bus.Message) {
		if err := m.Ack(ctx); err == nil {
			got <- string(m.Payload)
		}
	}, bus.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Stop(context.Background())
	e.publish(t, "RESUME.a", "before")
	if p := receive(t, got); p != "before" {
		t.Fatalf("handled %q, want before", p)
	}

	ctx := testContext(t)
	if err := e.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	again, err := embedded.Start(ctx, embedded.Config{StoreDir: dir, Port: e.srv.Port()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = again.Shutdown(context.Background()) })
	waitFor(t, "the client to reconnect", e.nc.IsConnected)
	e.publishRetrying(t, "RESUME.a", "after")
	if p := receive(t, got); p != "after" {
		t.Fatalf("handled %q, want after", p)
	}
}

func TestCloseStopsSubscriptionsAndOwnedConn(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	stream := e.stream(t, "OWNED", bus.StreamConfig{})
	consumer := e.consumer(t, stream, "c", bus.ConsumerConfig{})
	b, err := jetstream.New(e.nc, jetstream.WithOwnedConn(), jetstream.WithCloseTimeout(hangGuard))
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	finished := make(chan error, 1)
	if _, err := b.Subscribe(testContext(t), stream, consumer, func(ctx context.Context, m *bus.Message) {
		once.Do(func() { close(started) })
		<-release
		// A handler may still settle while Close waits for it.
		finished <- m.Ack(ctx)
	}, bus.SubscribeOptions{}); err != nil {
		t.Fatal(err)
	}
	e.publish(t, "OWNED.a", "x")
	<-started
	closed := make(chan error, 1)
	go func() { closed <- b.Close() }()
	// Once Close has begun, the bus takes no new work.
	waitFor(t, "Close to begin", func() bool {
		_, err := b.StreamInfo(testContext(t), stream)
		return errors.Is(err, bus.ErrClosed)
	})
	close(release)
	if err := <-finished; err != nil {
		t.Fatalf("Ack by a handler Close waited for: %v", err)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if !e.nc.IsClosed() {
		t.Fatal("Close did not close the connection it owns")
	}
}

// wait blocks until ch is closed, failing the test after hangGuard.
func wait(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(hangGuard):
		t.Fatalf("gave up waiting for %s", what)
	}
}

func receive(t *testing.T, ch <-chan string) string {
	t.Helper()
	select {
	case s := <-ch:
		return s
	case <-time.After(hangGuard):
		t.Fatal("gave up waiting for a handled message")
		return ""
	}
}

// TestUnconfirmedAcksOnlyForMessageAck checks what UnconfirmedAcks changes:
// a handler's Message.Ack no longer waits for the server, so acking for a
// consumer that is gone succeeds, while settling by token still waits and
// reports the consumer gone.
func TestUnconfirmedAcksOnlyForMessageAck(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	stream := e.stream(t, "UNCONF", bus.StreamConfig{})
	for i, unconfirmed := range []bool{false, true} {
		t.Run(fmt.Sprintf("UnconfirmedAcks=%v", unconfirmed), func(t *testing.T) {
			consumer := e.consumer(t, stream, fmt.Sprintf("c%d", i), bus.ConsumerConfig{})
			type result struct{ tokenAck, msgAck error }
			got := make(chan result, 1)
			var once sync.Once
			sub, err := e.bus.Subscribe(testContext(t), stream, consumer, func(ctx context.Context, m *bus.Message) {
				once.Do(func() {
					if err := e.bus.DeleteConsumer(ctx, stream, consumer); err != nil {
						t.Errorf("DeleteConsumer: %v", err)
					}
					// A failed settlement leaves the delivery settleable,
					// so the message can still be acked after the token.
					var r result
					r.tokenAck = e.bus.Ack(ctx, m.AckToken)
					r.msgAck = m.Ack(ctx)
					got <- r
				})
			}, bus.SubscribeOptions{UnconfirmedAcks: unconfirmed})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = sub.Stop(context.Background()) })
			e.publish(t, "UNCONF.a", "x")
			var r result
			select {
			case r = <-got:
			case <-testContext(t).Done():
				t.Fatal("no delivery")
			}
			if !errors.Is(r.tokenAck, bus.ErrNotFound) {
				t.Errorf("Ack by token for a deleted consumer = %v, want bus.ErrNotFound: settling by token waits for the server", r.tokenAck)
			}
			switch {
			case unconfirmed && r.msgAck != nil:
				t.Errorf("Message.Ack = %v, want nil: with UnconfirmedAcks it does not wait for the server", r.msgAck)
			case !unconfirmed && !errors.Is(r.msgAck, bus.ErrNotFound):
				t.Errorf("Message.Ack for a deleted consumer = %v, want bus.ErrNotFound", r.msgAck)
			}
		})
	}
}

// TestStopHandsBackBeforeTheBrokerStops stops a subscription that holds a
// message no handler started and shuts the server down right away, as an
// app's shutdown does: the message was handed back for good, so after a
// restart it comes at once, although its ack wait is an hour.
func TestStopHandsBackBeforeTheBrokerStops(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	cfg := embedded.Config{StoreDir: t.TempDir(), Port: restartablePort(t)}
	e := newEnvWith(t, cfg)
	stream := e.stream(t, "BACK", bus.StreamConfig{})
	consumer := e.consumer(t, stream, "c", bus.ConsumerConfig{AckWait: time.Hour})
	const total = 10
	for i := range total {
		e.publish(t, fmt.Sprintf("BACK.%d", i), "x")
	}
	started := make(chan struct{})
	release := make(chan struct{})
	var calls atomic.Int64
	sub, err := e.bus.Subscribe(ctx, stream, consumer, func(ctx context.Context, m *bus.Message) {
		if calls.Add(1) == 1 {
			close(started)
		}
		<-release
		_ = m.Ack(ctx)
	}, bus.SubscribeOptions{Concurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	<-started
	// A Stop whose context is over has begun the stop, as far as what the
	// subscription holds is concerned, before it returns: the handler is
	// released only then, so no other message can start.
	over, cancel := context.WithCancel(ctx)
	cancel()
	if err := sub.Stop(over); !errors.Is(err, context.Canceled) {
		t.Fatalf("Stop with a context already over = %v, want context.Canceled", err)
	}
	close(release)
	if err := sub.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("the handler ran %d times, want once", n)
	}
	if err := e.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	cfg.Port = e.srv.Port()
	again, err := embedded.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = again.Shutdown(context.Background()) })
	waitFor(t, "the bus to reconnect", e.nc.IsConnected)
	rest := e.fetchN(t, stream, consumer, total-1)
	if len(rest) != total-1 {
		t.Fatalf("fetched %d messages after the restart, want %d", len(rest), total-1)
	}
}

// levelCounter counts the records of one message by level.
type levelCounter struct {
	msg string
	mu  sync.Mutex
	n   map[slog.Level]int
}

func (h *levelCounter) Enabled(context.Context, slog.Level) bool { return true }
func (h *levelCounter) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.mu.Lock()
		h.n[r.Level]++
		h.mu.Unlock()
	}
	return nil
}
func (h *levelCounter) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *levelCounter) WithGroup(string) slog.Handler      { return h }

func (h *levelCounter) count(level slog.Level) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n[level]
}

// TestPullFailuresDoNotFloodTheLog deletes the consumer of a running
// subscription: its pulls fail again and again until the consumer is back,
// and only the first failure is a warning.
func TestPullFailuresDoNotFloodTheLog(t *testing.T) {
	t.Parallel()
	const failing = "subscription cannot pull; retrying until it can"
	fails := &levelCounter{msg: failing, n: map[slog.Level]int{}}
	e := newEnv(t, jetstream.WithLogger(slog.New(fails)))
	stream := e.stream(t, "GONE", bus.StreamConfig{})
	consumer := e.consumer(t, stream, "c", bus.ConsumerConfig{})
	ctx := testContext(t)
	got := make(chan string, 1)
	sub, err := e.bus.Subscribe(ctx, stream, consumer, func(ctx context.Context, m *bus.Message) {
		_ = m.Ack(ctx)
		got <- string(m.Payload)
	}, bus.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Stop(context.Background()) })
	if err := e.bus.DeleteConsumer(ctx, stream, consumer); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "four failed pulls", func() bool { return fails.count(slog.LevelWarn)+fails.count(slog.LevelDebug) >= 4 })
	if n := fails.count(slog.LevelWarn); n != 1 {
		t.Fatalf("%d failed pulls logged as warnings, want the first one only", n)
	}
	e.consumer(t, stream, consumer, bus.ConsumerConfig{})
	e.publish(t, "GONE.a", "back")
	select {
	case p := <-got:
		if p != "back" {
			t.Fatalf("handled %q, want back", p)
		}
	case <-ctx.Done():
		t.Fatal("the subscription did not resume once its consumer was back")
	}
}

// TestStopInABurst stops and starts subscriptions again and again while
// messages are published as fast as they can be. Each stop hands back what
// the server sent that no handler started, so with an ack wait of an hour
// every message is handled in the end, and exactly once: a handled
// message is never handed back.
func TestStopInABurst(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	stream := e.stream(t, "BURST", bus.StreamConfig{})
	consumer := e.consumer(t, stream, "c", bus.ConsumerConfig{AckWait: time.Hour})
	ctx := testContext(t)

	var (
		mu      sync.Mutex
		handled = map[uint64]int{}
	)
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(handled)
	}
	h := func(ctx context.Context, m *bus.Message) {
		mu.Lock()
		handled[m.StreamSequence]++
		mu.Unlock()
		_ = m.Ack(ctx)
	}

	stopPublishing := make(chan struct{})
	published := make(chan int)
	go func() {
		n := 0
		defer func() { published <- n }()
		for {
			select {
			case <-stopPublishing:
				return
			default:
			}
			if _, err := e.bus.Publish(ctx, bus.OutgoingMessage{Subject: fmt.Sprintf("BURST.%d", n%8), Payload: []byte("x")}); err != nil {
				t.Errorf("publish %d: %v", n, err)
				return
			}
			n++
		}
	}()

	const rounds = 10
	for round := range rounds {
		before := count()
		sub, err := e.bus.Subscribe(ctx, stream, consumer, h, bus.SubscribeOptions{Concurrency: 8})
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, fmt.Sprintf("round %d to handle 100 messages", round), func() bool { return count() >= before+100 })
		if err := sub.Stop(ctx); err != nil {
			t.Fatal(err)
		}
	}
	close(stopPublishing)
	total := <-published

	sub, err := e.bus.Subscribe(ctx, stream, consumer, h, bus.SubscribeOptions{Concurrency: 8})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, fmt.Sprintf("all %d messages to be handled", total), func() bool { return count() == total })
	if err := sub.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d messages published in %d stops, %d handled", total, rounds, len(handled))
	for seq, n := range handled {
		if n != 1 || seq < 1 || seq > uint64(total) {
			t.Errorf("message %d handled %d times, want once", seq, n)
		}
	}
}
