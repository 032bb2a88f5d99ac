package jetstream

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wfeventbus/eventbus/bus"
)

// DefaultFetchMaxWait is how long Fetch waits when FetchOptions.MaxWait is 0.
const DefaultFetchMaxWait = 5 * time.Second

// minFetchWait is the shortest pull the server is asked for: a shorter
// MaxWait waits this long, and a context with less time left than that
// fails with its own error instead.
const minFetchWait = 10 * time.Millisecond

// fetchOptions checks opts and fills in the defaults.
func fetchOptions(opts bus.FetchOptions) (batch int, wait time.Duration, err error) {
	batch, wait = opts.Batch, opts.MaxWait
	switch {
	case batch == 0:
		batch = 1
	case batch < 0 || batch > bus.MaxFetchBatch:
		return 0, 0, configError("batch", "%d is not between 1 and %d", batch, bus.MaxFetchBatch)
	}
	switch {
	case wait == 0:
		wait = DefaultFetchMaxWait
	case wait < 0:
		return 0, 0, configError("max_wait", "%s is negative", wait)
	}
	return batch, wait, nil
}

// Fetch pulls up to opts.Batch messages from the durable consumer, waiting
// at most opts.MaxWait (and no longer than ctx allows). Nothing arriving in
// time is an empty slice, not an error. A consumer that does not exist is
// bus.ErrNotFound. A pull that nothing serves although the consumer exists
// (its leader is being elected, its server is starting) is sent again
// within the same wait; when the wait ends first, it is bus.ErrUnavailable.
func (b *Bus) Fetch(ctx context.Context, stream, consumer string, opts bus.FetchOptions) ([]*bus.Message, error) {
	if err := checkName("stream_name", stream); err != nil {
		return nil, err
	}
	if err := checkName("consumer", consumer); err != nil {
		return nil, err
	}
	batch, wait, err := fetchOptions(opts)
	if err != nil {
		return nil, err
	}
	if err := b.ready(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	h, err := b.consumer(ctx, stream, consumer)
	if err != nil {
		return nil, err
	}
	wait = max(wait, minFetchWait)
	// The server ends the pull a little before ctx does, so that messages
	// it sends are not lost to a canceled wait.
	if deadline, ok := ctx.Deadline(); ok {
		if left := time.Until(deadline) * 9 / 10; left < wait {
			wait = left
		}
	}
	if wait < minFetchWait {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		return nil, context.DeadlineExceeded
	}
	end := time.Now().Add(wait)
	pause := retryPause
	for attempt := 1; ; attempt++ {
		out, err := b.pull(ctx, h, batch, wait, stream, consumer)
		if !errors.Is(err, nats.ErrNoResponders) {
			return out, err
		}
		// The server is asked once whether the consumer exists: one that
		// cannot say takes seconds to fail to.
		if attempt == 1 && b.consumerGone(ctx, stream, consumer) {
			b.forgetConsumers(stream, consumer)
			return nil, fmt.Errorf("fetch from %q on stream %q: %w: the consumer is gone: %w", consumer, stream, bus.ErrNotFound, err)
		}
		wait = time.Until(end) - pause
		if wait < minFetchWait {
			return nil, fmt.Errorf("fetch from %q on stream %q: %w", consumer, stream, &brokerError{sentinel: bus.ErrUnavailable, cause: err, detail: fmt.Sprintf(
				"nothing served the pull within its wait: the consumer's servers are electing a leader, are starting, or too few of them run for a majority (%d attempts)", attempt)})
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(pause):
		}
		pause = min(2*pause, maxRetryPause)
	}
}

// pull is one pull of Fetch: the messages it brought, or its error, with
// nats.ErrNoResponders in the chain when nothing served it.
func (b *Bus) pull(ctx context.Context, h *consumerHandle, batch int, wait time.Duration, stream, consumer string) ([]*bus.Message, error) {
	res, err := h.c.Fetch(batch, jetstream.FetchMaxWait(wait))
	if err != nil {
		return nil, fmt.Errorf("fetch from %q on stream %q: %w", consumer, stream, mapError(err))
	}
	out := make([]*bus.Message, 0, min(batch, 64))
	msgs := res.Messages()
	for {
		select {
		case m, ok := <-msgs:
			if !ok {
				return b.fetchResult(out, res.Error(), stream, consumer)
			}
			d, err := b.newDelivery(m.Subject(), m.Data(), m.Headers(), m.Reply(), h)
			if err != nil {
				b.log.Warn("dropping a message without JetStream metadata", "stream", stream, "consumer", consumer, "error", err)
				continue
			}
			out = append(out, &d.msg)
		case <-ctx.Done():
			// The caller will not see what arrived: hand it back at once.
			for _, m := range out {
				b.release(m.Acknowledger.(*delivery))
			}
			return nil, ctx.Err()
		}
	}
}

// fetchResult returns what a finished pull produced. An error that came
// after some messages is left for the next pull to report. A pull nothing
// served comes back with nats.ErrNoResponders for Fetch to look into.
func (b *Bus) fetchResult(out []*bus.Message, err error, stream, consumer string) ([]*bus.Message, error) {
	if err == nil || len(out) > 0 {
		return out, nil
	}
	if errors.Is(err, nats.ErrNoResponders) {
		return nil, err
	}
	if errors.Is(err, jetstream.ErrConsumerDeleted) {
		b.forgetConsumers(stream, consumer)
		return nil, fmt.Errorf("fetch from %q on stream %q: %w: %w", consumer, stream, bus.ErrNotFound, err)
	}
	return nil, fmt.Errorf("fetch from %q on stream %q: %w", consumer, stream, mapError(err))
}
