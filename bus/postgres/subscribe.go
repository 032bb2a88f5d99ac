package postgres

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"time"

	"github.com/wfeventbus/eventbus/bus"
)

const (
	// prefetchPerWorker is how many messages per worker one fetch asks
	// for: enough to keep the workers busy while the next fetch runs, few
	// enough that a held message does not sit out its ack wait.
	prefetchPerWorker = 2
	// subscribeWait is how long one fetch of a subscription waits.
	subscribeWait = 30 * time.Second
	// resumeDelay is the first pause after a failed fetch (the database
	// away, the consumer deleted); it doubles up to maxResumeDelay.
	resumeDelay    = 100 * time.Millisecond
	maxResumeDelay = 5 * time.Second
	// minKeepAlive is the shortest interval between two resets of the
	// deadlines a subscription holds.
	minKeepAlive = 10 * time.Millisecond
)

// Subscribe runs h for every message of the durable consumer, with at most
// opts.Concurrency handlers at once (default 1). Each fetch asks for a
// couple of messages per handler and the next one runs only once they are
// handed out, so the subscription never holds much more than it can run.
// With opts.OrderedBySubject each subject is served by one handler
// goroutine, so a subject's messages run one at a time in stream order.
//
// ctx bounds the setup only; the subscription runs until Stop or Close and
// resumes by itself when the database comes back. Handlers get a context
// carrying ctx's values that is canceled when Stop's context ends. A
// handler that panics is logged and its message left unsettled, so it is
// redelivered after the ack wait.
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
	// Ask the database rather than the cache: a subscription must not
	// start on a consumer that is gone.
	handle, err := b.consumer(ctx, stream, consumer, true)
	if err != nil {
		return nil, fmt.Errorf("subscribe: %w", err)
	}
	info, err := b.ConsumerInfo(ctx, stream, consumer)
	if err != nil {
		return nil, fmt.Errorf("subscribe: %w", err)
	}
	s := &subscription{
		b:               b,
		handle:          handle,
		handler:         h,
		stream:          stream,
		consumer:        consumer,
		prefetch:        min(prefetchPerWorker*workers, bus.MaxFetchBatch),
		unconfirmedAcks: opts.UnconfirmedAcks,
		seed:            maphash.MakeSeed(),
		keepAliveEvery:  keepAliveInterval(info.Config),
		held:            map[*delivery]struct{}{},
		stopping:        make(chan struct{}),
		done:            make(chan struct{}),
	}
	s.ctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	s.readCtx, s.stopRead = context.WithCancel(context.WithoutCancel(ctx))
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
		s.cancel()
		s.stopRead()
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
	keepAliveDone := make(chan struct{})
	stopKeepAlive := make(chan struct{})
	if !handle.ackNone {
		go func() {
			defer close(keepAliveDone)
			s.keepAlive(stopKeepAlive)
		}()
	} else {
		close(keepAliveDone)
	}
	go func() {
		wg.Wait()
		close(stopKeepAlive)
		<-keepAliveDone
		// Every ack sent without confirmation is written before Stop
		// returns.
		s.acks.Wait()
		s.cancel()
		b.subsMu.Lock()
		delete(b.subs, s)
		b.subsMu.Unlock()
		close(s.done)
	}()
	return s, nil
}

// subscription is a running Subscribe: one reader fetching batches and
// handing them to workers through queues (one shared queue, or one per
// worker when ordered by subject).
type subscription struct {
	b        *Bus
	handle   *consumerHandle
	handler  bus.Handler
	stream   string
	consumer string
	prefetch int
	queues   []chan *delivery
	seed     maphash.Seed

	unconfirmedAcks bool
	// acks counts acks sent without confirmation and not yet written.
	acks sync.WaitGroup

	// held is every delivery the subscription has fetched whose handler
	// has not returned: queued for a worker or running. keepAlive resets
	// their ack deadlines every keepAliveEvery, so that waiting for a free
	// worker or a long handler never makes the database hand a message out
	// again.
	keepAliveEvery time.Duration
	heldMu         sync.Mutex
	held           map[*delivery]struct{}

	// ctx is the handlers' context; readCtx the reader's, ended by Stop.
	ctx      context.Context
	cancel   context.CancelFunc
	readCtx  context.Context
	stopRead context.CancelFunc

	stopOnce sync.Once
	stopping chan struct{}
	done     chan struct{}
}

// read fetches batches and queues their messages for the workers until
// Stop, then hands back what it holds and closes the queues.
func (s *subscription) read() {
	defer func() {
		for _, q := range s.queues {
			close(q)
		}
	}()
	delay := resumeDelay
	for {
		select {
		case <-s.stopping:
			return
		default:
		}
		msgs, err := s.b.fetchWait(s.readCtx, s.handle, s.prefetch, subscribeWait, s)
		if err != nil {
			if errors.Is(err, context.Canceled) || errors.Is(err, bus.ErrClosed) {
				return
			}
			if errors.Is(err, bus.ErrNotFound) {
				s.b.log.Warn("subscription's consumer is gone; retrying", "stream", s.stream, "consumer", s.consumer, "retry_in", delay)
			} else {
				s.b.log.Warn("subscription cannot fetch; retrying", "stream", s.stream, "consumer", s.consumer, "error", err, "retry_in", delay)
			}
			select {
			case <-time.After(delay):
			case <-s.stopping:
				return
			}
			delay = min(2*delay, maxResumeDelay)
			if h, herr := s.b.consumer(s.readCtx, s.stream, s.consumer, true); herr == nil {
				s.handle = h
			}
			continue
		}
		delay = resumeDelay
		s.hold(msgs)
		for i, m := range msgs {
			d := m.Acknowledger.(*delivery)
			if !s.dispatch(d) {
				for _, rest := range msgs[i:] {
					s.unhold(rest.Acknowledger.(*delivery))
				}
				s.b.release(msgs[i:])
				return
			}
		}
	}
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

func (s *subscription) work(q <-chan *delivery) {
	for d := range q {
		s.run(d)
		s.unhold(d)
	}
}

// hold notes fetched deliveries as held until their handlers return.
func (s *subscription) hold(msgs []*bus.Message) {
	s.heldMu.Lock()
	defer s.heldMu.Unlock()
	for _, m := range msgs {
		s.held[m.Acknowledger.(*delivery)] = struct{}{}
	}
}

// unhold notes that d's handler returned, or that d was handed back.
func (s *subscription) unhold(d *delivery) {
	s.heldMu.Lock()
	delete(s.held, d)
	s.heldMu.Unlock()
}

// keepAliveInterval is how often a subscription resets the deadlines of
// what it holds: well within the shortest time a delivery of the consumer
// stays invisible (its ack wait, or the shortest backoff step).
func keepAliveInterval(c bus.ConsumerConfig) time.Duration {
	wait := c.AckWait
	if wait <= 0 {
		wait = defaultAckWait
	}
	for _, b := range c.Backoff {
		if b > 0 && b < wait {
			wait = b
		}
	}
	return max(wait/3, minKeepAlive)
}

// keepAlive resets the ack deadline of every held delivery, in one
// statement, every keepAliveEvery until stop is closed. A delivery settled
// in the meantime is left alone by the statement.
func (s *subscription) keepAlive(stop <-chan struct{}) {
	t := time.NewTicker(s.keepAliveEvery)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		s.heldMu.Lock()
		refs := make([]deliveryRef, 0, len(s.held))
		for d := range s.held {
			refs = append(refs, d.ref())
		}
		s.heldMu.Unlock()
		if len(refs) == 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.keepAliveEvery)
		_, err := s.b.settleRefs(ctx, opInProgress, refs, 0)
		cancel()
		if err != nil {
			s.b.log.Debug("keeping held deliveries alive failed; they may be delivered again",
				"stream", s.stream, "consumer", s.consumer, "held", len(refs), "error", err)
		}
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

// Stop stops fetching, hands back messages no handler has started, and
// waits for running handlers and for the acks they sent without
// confirmation, until ctx is done; then it cancels the handlers' context
// and returns ctx's error. It is idempotent.
func (s *subscription) Stop(ctx context.Context) error {
	s.stopOnce.Do(func() {
		close(s.stopping)
		s.stopRead()
	})
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		s.cancel()
		return fmt.Errorf("stop subscription to %q on stream %q: handlers still running: %w", s.consumer, s.stream, ctx.Err())
	}
}
