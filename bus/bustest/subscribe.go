package bustest

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wfeventbus/eventbus/bus"
)

// stopPatience is how long a case gives a wrong Stop to return early while a
// handler is still running. A correct Stop never returns in it, so the
// value only decides how likely a wrong one is caught.
const stopPatience = 500 * time.Millisecond

// testSubscriptionStop checks Stop's two halves: it waits for running
// handlers, and once its ctx ends it cancels theirs.
func testSubscriptionStop(t *testing.T, s *suite) {
	f := s.setup(t)
	t.Run("WaitsForRunningHandlers", func(t *testing.T) { stopWaitsForHandlers(t, f) })
	t.Run("CancelsHandlersWhenCtxEnds", func(t *testing.T) { stopCancelsHandlers(t, f.sibling(t)) })
}

// stopWaitsForHandlers blocks a handler, stops the subscription, and checks
// Stop returns only after the handler is released, the message was handled
// exactly once, a second Stop is harmless and the stopped subscription takes
// no more messages.
func stopWaitsForHandlers(t *testing.T, f *fixture) {
	ctx := guard(t)
	var (
		calls    atomic.Int64
		finished atomic.Bool
	)
	started := make(chan struct{})
	release := make(chan struct{})
	acked := make(chan error, 1)
	handle := func(hctx context.Context, m *bus.Message) {
		if calls.Add(1) != 1 {
			return
		}
		close(started)
		select {
		case <-release:
		case <-hctx.Done():
		}
		acked <- m.Ack(hctx)
		finished.Store(true)
	}
	sub := f.subscribe(t, handle, bus.SubscribeOptions{Concurrency: 2})
	f.publish(t, "a", 1)
	wait(t, started, "the handler to start")

	type stopResult struct {
		err             error
		handlerFinished bool
	}
	stopped := make(chan stopResult, 1)
	go func() {
		err := sub.Stop(ctx)
		stopped <- stopResult{err, finished.Load()}
	}()
	select {
	case r := <-stopped:
		t.Fatalf("Stop returned (%v) while a handler was still running", r.err)
	case <-time.After(stopPatience):
	}
	close(release)
	var r stopResult
	select {
	case r = <-stopped:
	case <-time.After(hangGuard):
		t.Fatal("Stop did not return after the handler was released")
	}
	if r.err != nil {
		t.Errorf("Stop: %v", r.err)
	}
	if !r.handlerFinished {
		t.Error("Stop returned before the running handler finished")
	}
	if err := <-acked; err != nil {
		t.Errorf("Ack in handler: %v", err)
	}
	if err := sub.Stop(ctx); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	f.expectCounts(t, "after Stop", 0, 0)

	// A stopped subscription must not hold on to new messages.
	f.publish(t, "b", 1)
	m := f.receive(t, 1)[0]
	if string(m.Payload) != payloadID("b", 0) || m.DeliveryCount != 1 {
		t.Errorf("after Stop Fetch got %s, want the new message's first delivery", describe(m))
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("handler ran %d times, want 1", n)
	}
}

// stopCancelsHandlers stops a subscription whose handler waits for its ctx,
// with a Stop ctx that ends, and checks Stop returns and the handler's ctx
// is cancelled.
func stopCancelsHandlers(t *testing.T, f *fixture) {
	var once sync.Once
	started := make(chan struct{})
	cancelled := make(chan struct{})
	handle := func(hctx context.Context, _ *bus.Message) {
		once.Do(func() {
			close(started)
			<-hctx.Done()
			close(cancelled)
		})
	}
	sub := f.subscribe(t, handle, bus.SubscribeOptions{})
	f.publish(t, "a", 1)
	wait(t, started, "the handler to start")

	sctx, cancel := context.WithTimeout(t.Context(), stopPatience)
	defer cancel()
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		// Stop may report its ctx ending; the contract only says it returns.
		_ = sub.Stop(sctx)
	}()
	wait(t, stopped, "Stop to return once its ctx ended")
	wait(t, cancelled, "the running handler's ctx to be cancelled")
}

// testClose closes the bus with a subscription running and checks Close is
// idempotent and later calls fail with ErrClosed.
func testClose(t *testing.T, s *suite) {
	f := s.setup(t)
	ctx := guard(t)
	sub := f.subscribe(t, func(ctx context.Context, m *bus.Message) { _ = m.Ack(ctx) }, bus.SubscribeOptions{})
	if err := f.bus.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := f.bus.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	_, err := f.bus.Publish(ctx, bus.OutgoingMessage{Subject: f.subject("a"), Payload: []byte("late")})
	wantErr(t, "Publish after Close", err, bus.ErrClosed)
	_, err = f.bus.Fetch(ctx, f.stream, f.consumer, bus.FetchOptions{Batch: 1, MaxWait: time.Second})
	wantErr(t, "Fetch after Close", err, bus.ErrClosed)
	_, err = f.bus.StreamInfo(ctx, f.stream)
	wantErr(t, "StreamInfo after Close", err, bus.ErrClosed)
	_, err = f.bus.Subscribe(ctx, f.stream, f.consumer, func(context.Context, *bus.Message) {}, bus.SubscribeOptions{})
	wantErr(t, "Subscribe after Close", err, bus.ErrClosed)
	if err := sub.Stop(ctx); err != nil && !errors.Is(err, bus.ErrClosed) {
		t.Errorf("Stop after Close: %v, want nil or %v", err, bus.ErrClosed)
	}
}

// testUnconfirmedAcks acks every message of a subscription without waiting
// for the broker, stops it and checks that the broker has every ack the
// moment Stop returns; where the broker can restart, it restarts it at once
// and checks that no acked message comes back.
func testUnconfirmedAcks(t *testing.T, s *suite) {
	const total = 500
	f := s.setupRestartable(t, withAckWait(shortAckWait))
	ctx := guard(t)
	f.publish(t, "a", total)

	var handled atomic.Int64
	all := make(chan struct{})
	sub := f.subscribe(t, func(hctx context.Context, m *bus.Message) {
		if err := m.Ack(hctx); err != nil {
			t.Errorf("Ack of %s: %v", m.Payload, err)
		}
		if handled.Add(1) == total {
			close(all)
		}
	}, bus.SubscribeOptions{Concurrency: 8, UnconfirmedAcks: true})
	wait(t, all, "every message to be handled")
	if err := sub.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	info, err := f.bus.ConsumerInfo(ctx, f.stream, f.consumer)
	if err != nil {
		t.Fatalf("ConsumerInfo: %v", err)
	}
	if info.NumAckPending != 0 || info.NumPending != 0 {
		t.Fatalf("when Stop returned, NumPending, NumAckPending = %d, %d, want 0, 0: the broker did not have every ack", info.NumPending, info.NumAckPending)
	}
	if n := handled.Load(); n != total {
		t.Fatalf("handled %d deliveries, want %d: an acked message came back before Stop", n, total)
	}
	if restartable(s.h) == "" {
		f.env.Restart(t)
		f.awaitReconnect(t)
	}
	f.expectNone(t, quietWait)
	f.expectCounts(t, "after the acks", 0, 0)
}

// awaitReconnect waits until the bus answers again after a restart.
func (f *fixture) awaitReconnect(t *testing.T) {
	t.Helper()
	ctx := guard(t)
	for {
		_, err := f.bus.ConsumerInfo(ctx, f.stream, f.consumer)
		if err == nil {
			return
		}
		if !errors.Is(err, bus.ErrNotConnected) {
			t.Fatalf("ConsumerInfo after the restart: %v", err)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the bus did not reconnect after the restart: %v", err)
		case <-time.After(countPoll):
		}
	}
}

// testLongHandlersRunOnce gives a subscription more messages than handlers,
// and handlers that run three ack waits each: the messages waiting for a
// handler wait up to six ack waits. Every message must be handled exactly
// once, on its first delivery, and the broker must have redelivered none.
func testLongHandlersRunOnce(t *testing.T, s *suite) {
	const (
		total       = 6
		concurrency = 2
		handlerRun  = 3 * shortAckWait
	)
	f := s.setup(t, withAckWait(shortAckWait))
	ctx := guard(t)
	f.publish(t, "a", total)

	var (
		mu       sync.Mutex
		runs     = map[string]int{}
		late     []string
		finished atomic.Int64
	)
	all := make(chan struct{})
	sub := f.subscribe(t, func(hctx context.Context, m *bus.Message) {
		mu.Lock()
		runs[string(m.Payload)]++
		if m.DeliveryCount != 1 {
			late = append(late, describe(m))
		}
		mu.Unlock()
		select {
		case <-time.After(handlerRun):
		case <-hctx.Done():
			return
		}
		if err := m.Ack(hctx); err != nil {
			t.Errorf("Ack of %s: %v", describe(m), err)
		}
		if finished.Add(1) == total {
			close(all)
		}
	}, bus.SubscribeOptions{Concurrency: concurrency})
	wait(t, all, "every message to be handled")
	if err := sub.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	for i := range total {
		if p := payloadID("a", i); runs[p] != 1 {
			t.Errorf("message %s was handled %d times, want once", p, runs[p])
		}
	}
	if len(late) > 0 {
		t.Errorf("redeliveries reached the handler: %v", late)
	}
	info, err := f.bus.ConsumerInfo(ctx, f.stream, f.consumer)
	if err != nil {
		t.Fatalf("ConsumerInfo: %v", err)
	}
	if info.NumRedelivered != 0 || info.NumAckPending != 0 || info.NumPending != 0 {
		t.Fatalf("after Stop: NumRedelivered %d, NumAckPending %d, NumPending %d, want 0, 0, 0",
			info.NumRedelivered, info.NumAckPending, info.NumPending)
	}
}
