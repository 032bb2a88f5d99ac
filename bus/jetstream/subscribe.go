package jetstream

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wfeventbus/eventbus/bus"
)

const (
	// prefetchPerWorker is how many messages per worker a subscription
	// holds ahead of its handlers: enough to keep them busy between pulls,
	// few enough that a held message does not sit out its ack wait.
	prefetchPerWorker = 2
	// pullWait is how long one pull waits for messages; an idle
	// subscription pulls again after it. The server sends heartbeats
	// meanwhile, so a pull lost with a connection ends sooner.
	pullWait = 30 * time.Second
	// resumeDelay is the first wait before a subscription whose pull
	// failed (its consumer deleted, say) pulls again; it doubles up to
	// maxResumeDelay while the failure lasts.
	resumeDelay    = 250 * time.Millisecond
	maxResumeDelay = 30 * time.Second
)

// Subscribe runs h for every message of the durable consumer, with at most
// opts.Concurrency handlers at once (default 1). It pulls no more than a
// couple of messages per handler ahead, and the consumer's max_ack_pending
// bounds what the server hands out. With opts.OrderedBySubject each subject
// is served by one handler goroutine, so a subject's messages run one at a
// time in stream order.
//
// ctx bounds the setup only; the subscription runs until Stop or Close.
// Handlers get a context carrying ctx's values that is canceled when Stop's
// context ends. A handler that panics is logged and its message is left
// unsettled, so it is redelivered after the ack wait.
func (b *Bus) Subscribe(ctx context.Context, stream, consumer string, h bus.Handler, opts bus.SubscribeOptions) (bus.Subscription, error) {
	if err := checkName("stream_name", stream); err != nil {
		return nil, err
	}
	if err := checkName("consumer", consumer); err != nil {
		return nil, err
	}
	if h == nil {
		return nil, configError("handler", "nil")
	}
	workers := opts.Concurrency
	switch {
	case workers < 0:
		return nil, configError("concurrency", "%d is negative", workers)
	case workers == 0:
		workers = 1
	}
	if err := b.ready(); err != nil {
		return nil, err
	}
	// Ask the server rather than the cache: a subscription must not start
	// on a consumer that is gone.
	c, err := b.js.Consumer(ctx, stream, consumer)
	if err != nil {
		return nil, fmt.Errorf("subscribe to %q on stream %q: %w", consumer, stream, mapError(err))
	}
	s := &subscription{
		b:        b,
		handle:   b.cacheConsumer(stream, c),
		handler:  h,
		stream:   stream,
		consumer: consumer,
		prefetch: prefetchPerWorker * workers,
		seed:     maphash.MakeSeed(),
		stopping: make(chan struct{}),
		done:     make(chan struct{}),
	}
	s.ctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	s.pullCtx, s.cancelPull = context.WithCancel(context.Background())
	n := 1
	if opts.OrderedBySubject {
		n = workers
	}
	s.queues = make([]chan *delivery, n)
	for i := range s.queues {
		s.queues[i] = make(chan *delivery)
	}

	b.subsMu.Lock()
	if b.state.Load() != stateOpen {
		b.subsMu.Unlock()
		s.cancelPull()
		s.cancel()
		return nil, bus.ErrClosed
	}
	b.subs[s] = struct{}{}
	b.subsMu.Unlock()

	var wg sync.WaitGroup
	for i := range workers {
		q := s.queues[i%n]
		wg.Go(func() { s.work(q) })
	}
	wg.Go(s.read)
	go func() {
		wg.Wait()
		s.cancelPull()
		s.cancel()
		b.subsMu.Lock()
		delete(b.subs, s)
		b.subsMu.Unlock()
		close(s.done)
	}()
	return s, nil
}

// subscription is a running Subscribe: one reader pulling batches of
// messages and handing them to workers through queues (one shared queue, or
// one per worker when ordered by subject).
//
// Each pull is a separate request for at most prefetch messages, issued
// once the previous batch has been handed out: what the subscription holds
// is bounded by the request itself, with no client-side accounting that a
// lost status message could leave stuck.
type subscription struct {
	b        *Bus
	handle   *consumerHandle
	handler  bus.Handler
	stream   string
	consumer string
	prefetch int
	queues   []chan *delivery
	seed     maphash.Seed

	// ctx is the handlers' context.
	ctx    context.Context
	cancel context.CancelFunc
	// pullCtx ends the pull in progress when Stop is called.
	pullCtx    context.Context
	cancelPull context.CancelFunc

	stopOnce sync.Once
	// stopping is closed when Stop is called.
	stopping chan struct{}
	// done is closed once the reader and every worker have returned.
	done chan struct{}
}

func (s *subscription) isStopping() bool {
	select {
	case <-s.stopping:
		return true
	default:
		return false
	}
}

// read pulls batches and queues their messages for the workers until Stop,
// then releases what it holds and closes the queues.
func (s *subscription) read() {
	defer func() {
		for _, q := range s.queues {
			close(q)
		}
	}()
	delay := resumeDelay
	for !s.isStopping() {
		err := s.pull()
		switch {
		case err == nil:
			delay = resumeDelay
			continue
		case s.isStopping():
			return
		case s.b.nc.IsClosed():
			s.b.log.Warn("subscription ended: the connection is closed", "stream", s.stream, "consumer", s.consumer)
			return
		}
		s.b.log.Warn("subscription cannot pull; retrying", "stream", s.stream, "consumer", s.consumer, "error", err, "retry_in", delay)
		select {
		case <-time.After(delay):
		case <-s.stopping:
			return
		}
		delay = min(2*delay, maxResumeDelay)
	}
}

// pull requests one batch and hands its messages out as they arrive. An
// error is one worth a pause before the next pull (the consumer is gone,
// say); a pull that simply expired is not one.
func (s *subscription) pull() error {
	ctx, cancel := context.WithTimeout(s.pullCtx, pullWait)
	defer cancel()
	batch, err := s.handle.c.Fetch(s.prefetch, jetstream.FetchContext(ctx))
	if err != nil {
		return err
	}
	msgs := batch.Messages()
	for m := range msgs {
		d, err := s.b.newDelivery(m, s.handle)
		if err != nil {
			s.b.log.Warn("dropping a message without JetStream metadata", "stream", s.stream, "consumer", s.consumer, "error", err)
			continue
		}
		if !s.dispatch(d) {
			s.release(d)
			cancel()
			for m := range msgs {
				if !s.handle.ackNone {
					_ = m.Nak()
				}
			}
			return nil
		}
	}
	err = batch.Error()
	if err == nil || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, jetstream.ErrNoHeartbeat) {
		return nil
	}
	return err
}

// dispatch queues d for a worker, or reports false once Stop is called.
func (s *subscription) dispatch(d *delivery) bool {
	q := s.queues[0]
	if len(s.queues) > 1 {
		q = s.queues[maphash.String(s.seed, d.msg.Subject)%uint64(len(s.queues))]
	}
	select {
	case <-s.stopping:
		return false
	default:
	}
	select {
	case q <- d:
		return true
	case <-s.stopping:
		return false
	}
}

// release hands a message no handler will run back to the server for
// immediate redelivery, to this consumer's other subscribers.
func (s *subscription) release(d *delivery) {
	if d.ackNone {
		return
	}
	if _, err := s.b.tracker.lookup(d.key, d.reply, true); err == nil {
		_ = d.js.Nak()
	}
}

// work runs the handler for each delivery of q.
func (s *subscription) work(q <-chan *delivery) {
	for d := range q {
		s.run(d)
	}
}

func (s *subscription) run(d *delivery) {
	defer func() {
		if r := recover(); r != nil {
			s.b.log.Error("handler panicked; the message is redelivered after its ack wait",
				"stream", s.stream, "consumer", s.consumer, "subject", d.msg.Subject,
				"stream_seq", d.msg.StreamSequence, "panic", r)
		}
	}()
	s.handler(s.ctx, &d.msg)
}

// Stop stops pulling, hands back messages no handler has started, and waits
// for running handlers until they return or ctx is done; then it cancels
// their context and returns ctx's error. It is idempotent.
func (s *subscription) Stop(ctx context.Context) error {
	s.stopOnce.Do(func() {
		close(s.stopping)
		s.cancelPull()
	})
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		s.cancel()
		return fmt.Errorf("stop subscription to %q on stream %q: handlers still running: %w", s.consumer, s.stream, ctx.Err())
	}
}
