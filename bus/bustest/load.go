package bustest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/wfeventbus/eventbus/bus"
)

// testConcurrent runs four publishers (half publishing one by one, half in
// batches) against two subscriptions on one durable consumer, and checks
// every one of 10,000 messages is delivered at least once. Duplicates are
// allowed by at-least-once delivery; their count is logged. The hang guard
// bounds each call and each wait for the next new message, not the whole
// run, whose length depends on how busy the machine is.
func testConcurrent(t *testing.T, s *suite) {
	const (
		publishers   = 4
		perPublisher = 2500
		total        = publishers * perPublisher
		batchSize    = 250
	)
	f := s.setup(t)

	var (
		mu        sync.Mutex
		seen      = make(map[string]int, total)
		delivered int
		ackErr    error
	)
	done := make(chan struct{})
	progress := make(chan struct{}, 1)
	handle := func(ctx context.Context, m *bus.Message) {
		err := m.Ack(ctx)
		mu.Lock()
		defer mu.Unlock()
		ackErr = errors.Join(ackErr, err)
		delivered++
		id := string(m.Payload)
		if seen[id]++; seen[id] > 1 {
			return
		}
		if len(seen) == total {
			close(done)
		}
		select {
		case progress <- struct{}{}:
		default:
		}
	}
	subs := []bus.Subscription{
		f.subscribe(t, handle, bus.SubscribeOptions{Concurrency: 8}),
		f.subscribe(t, handle, bus.SubscribeOptions{Concurrency: 2}),
	}

	want := make(map[string]bool, total)
	var wg sync.WaitGroup
	for p := range publishers {
		token := fmt.Sprintf("p%d", p)
		out := make([]bus.OutgoingMessage, perPublisher)
		for i := range out {
			out[i] = bus.OutgoingMessage{Subject: f.subject(token), Payload: []byte(payloadID(token, i))}
			want[payloadID(token, i)] = true
		}
		if p%2 == 0 {
			wg.Go(func() { publishEach(t, f.bus, out) })
		} else {
			wg.Go(func() { publishBatches(t, f.bus, out, batchSize) })
		}
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	stalled := time.NewTimer(hangGuard)
	defer stalled.Stop()
	for waiting := true; waiting; {
		select {
		case <-done:
			waiting = false
		case <-progress:
			stalled.Reset(hangGuard)
		case <-stalled.C:
			mu.Lock()
			defer mu.Unlock()
			t.Fatalf("no new message was delivered for %v: %d of %d were", hangGuard, len(seen), total)
		}
	}
	ctx := guard(t)
	for i, sub := range subs {
		if err := sub.Stop(ctx); err != nil {
			t.Errorf("Stop subscription %d: %v", i, err)
		}
	}

	mu.Lock()
	defer mu.Unlock()
	t.Logf("delivered=%d unique=%d duplicates=%d", delivered, len(seen), delivered-len(seen))
	if ackErr != nil {
		t.Errorf("Ack in handler: %v", ackErr)
	}
	for id := range seen {
		if !want[id] {
			t.Errorf("delivered %q, which was never published", id)
		}
	}
}

// publishEach publishes msgs one Publish at a time, each call bounded by
// the hang guard, reporting the first failure.
func publishEach(t *testing.T, b bus.Publisher, msgs []bus.OutgoingMessage) {
	for _, m := range msgs {
		ctx, cancel := context.WithTimeout(t.Context(), hangGuard)
		_, err := b.Publish(ctx, m)
		cancel()
		if err != nil {
			t.Errorf("Publish %s: %v", m.Payload, err)
			return
		}
	}
}

// publishBatches publishes msgs with PublishBatch, size at a time, each
// call bounded by the hang guard, reporting the first failure.
func publishBatches(t *testing.T, b bus.Publisher, msgs []bus.OutgoingMessage, size int) {
	for chunk := range slices.Chunk(msgs, size) {
		ctx, cancel := context.WithTimeout(t.Context(), hangGuard)
		results, err := b.PublishBatch(ctx, chunk)
		cancel()
		if err != nil {
			t.Errorf("PublishBatch: %v", err)
			return
		}
		for i, r := range results {
			if r.Err != nil {
				t.Errorf("PublishBatch result for %s: %v", chunk[i].Payload, r.Err)
				return
			}
		}
	}
}

// testRestart publishes 2,000 messages from a goroutine and restarts the
// broker part-way. Publishes that fail because the broker is away are
// retried; every publish that was acked must be delivered afterwards. The
// hang guard bounds the attempts at each message and each wait for the
// next ack, not the whole run, whose length depends on how busy the
// machine is.
func testRestart(t *testing.T, s *suite) {
	const (
		total     = 2000
		restartAt = 700
		// attemptWait bounds one publish attempt, so a publish stuck on a
		// dead connection becomes a retry.
		attemptWait = 2 * time.Second
		retryPause  = 50 * time.Millisecond
	)
	f := s.setupRestartable(t)
	if f.env.Restart == nil {
		t.Fatal("Features.Restart is promised but Env.Restart is nil")
	}

	var (
		mu                     sync.Mutex
		acked                  = make(map[string]bool, total)
		notConnected, timedOut int
	)
	halfway := make(chan struct{})
	published := make(chan struct{})
	go func() {
		defer close(published)
		// publish tries the i-th message until it is acked, and reports
		// whether it was.
		publish := func(i int) bool {
			id := payloadID("r", i)
			ctx, cancel := context.WithTimeout(t.Context(), hangGuard)
			defer cancel()
			for {
				actx, cancel := context.WithTimeout(ctx, attemptWait)
				_, err := f.bus.Publish(actx, bus.OutgoingMessage{Subject: f.subject("r"), Payload: []byte(id), MsgID: id})
				cancel()
				mu.Lock()
				switch {
				case err == nil:
					acked[id] = true
					if len(acked) == restartAt {
						close(halfway)
					}
				case errors.Is(err, bus.ErrNotConnected):
					notConnected++
				case isTimeout(err) && ctx.Err() == nil:
					timedOut++
				}
				mu.Unlock()
				if err == nil {
					return true
				}
				if ctx.Err() != nil || !(errors.Is(err, bus.ErrNotConnected) || isTimeout(err)) {
					t.Errorf("Publish %s: %v; while the broker restarts a publish must fail with ErrNotConnected or a timeout", id, err)
					return false
				}
				select {
				case <-ctx.Done():
				case <-time.After(retryPause):
				}
			}
		}
		for i := range total {
			if !publish(i) {
				return
			}
		}
	}()

	select {
	case <-halfway:
	case <-published:
		t.Fatal("publishing stopped before the restart")
	}
	f.env.Restart(t)
	mu.Lock()
	ackedAtRestart := len(acked)
	mu.Unlock()
	for waiting, last := true, ackedAtRestart; waiting; {
		select {
		case <-published:
			waiting = false
		case <-time.After(hangGuard):
			mu.Lock()
			n := len(acked)
			mu.Unlock()
			if n == last {
				t.Fatalf("no publish was acked for %v after the restart: %d of %d acked", hangGuard, n, total)
			}
			last = n
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	stored := f.streamInfo(t).Messages
	got := make(map[string]bool, stored)
	for _, m := range f.drain(t, int(stored)) {
		got[string(m.Payload)] = true
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("published=%d acked=%d acked-when-restart-returned=%d stored=%d retried-not-connected=%d retried-timeout=%d",
		total, len(acked), ackedAtRestart, stored, notConnected, timedOut)
	var missing []string
	for id := range acked {
		if !got[id] {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		t.Errorf("%d acked publishes were lost across the restart: %q", len(missing), missing[:min(len(missing), 20)])
	}
	if len(acked) != total {
		t.Errorf("%d of %d publishes acked", len(acked), total)
	}
}

// isTimeout reports whether err is a timeout: a context deadline or an
// error that says it timed out.
func isTimeout(err error) bool {
	var timeout interface{ Timeout() bool }
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &timeout) && timeout.Timeout())
}
