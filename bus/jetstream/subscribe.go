package jetstream

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/wfeventbus/eventbus/bus"
)

const (
	// prefetchPerWorker is how many messages per worker one pull asks for:
	// enough to keep the workers busy while the next pull travels, few
	// enough that a held message does not sit out its ack wait.
	prefetchPerWorker = 2
	// pullWait is how long one pull waits for messages; an idle
	// subscription pulls again after it.
	pullWait = 30 * time.Second
	// pullHeartbeat is how often the server signals a waiting pull is
	// alive; two missed ones mean the pull was lost (with a connection, say)
	// and a new one is sent.
	pullHeartbeat = 5 * time.Second
	// resumeDelay is the first wait before a subscription whose pull failed
	// (its consumer deleted, say) pulls again; it doubles up to
	// maxResumeDelay while the failure lasts.
	resumeDelay    = 250 * time.Millisecond
	maxResumeDelay = 30 * time.Second
	// unsubscribeWait bounds each wait of a stopping subscription for the
	// server: to confirm that it no longer sends to the subscription, that
	// it has the messages handed back, and that it applied the last acks.
	// The server normally answers at once; a server slowed down by load
	// still gets its time, since what it has not applied when the broker
	// shuts down comes back only after an ack wait.
	unsubscribeWait = 10 * time.Second
	// A held delivery is told to be in progress once a third of its ack
	// wait has passed since it arrived or was last told so; the keeper
	// looks at the held deliveries five times per shortest ack wait, so
	// each is refreshed well before the server would give up on it.
	refreshAfter   = 3
	keeperRounds   = 5
	minKeeperRound = 10 * time.Millisecond
)

// Subscribe runs h for every message of the durable consumer, with at most
// opts.Concurrency handlers at once (default 1). Each pull asks for a couple
// of messages per handler and the next one is sent only once they are
// handed out, so the subscription never holds much more than it can run;
// the consumer's max_ack_pending bounds what the server hands out. With
// opts.OrderedBySubject each subject is served by one handler goroutine, so
// a subject's messages run one at a time in stream order.
//
// From the moment a message arrives until its handler returns, the
// subscription tells the server it is in progress before its ack wait
// runs out: neither the wait for a free handler nor a handler that runs
// longer than the ack wait makes the server deliver it again. A message the
// handler leaves unsettled is redelivered an ack wait after it returned.
//
// ctx bounds the setup only; the subscription runs until Stop or Close and
// resumes by itself after the connection comes back. Handlers get a context
// carrying ctx's values that is canceled when Stop's context ends. A handler
// that panics is logged and its message left unsettled, so it is
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
	// Ask the server rather than the cache: a subscription must not start
	// on a consumer that is gone.
	c, err := b.lookupConsumer(ctx, stream, consumer)
	if err != nil {
		return nil, fmt.Errorf("subscribe to %q on stream %q: %w", consumer, stream, mapError(err))
	}
	s := &subscription{
		b:               b,
		handle:          b.cacheConsumer(stream, c),
		handler:         h,
		stream:          stream,
		consumer:        consumer,
		prefetch:        min(prefetchPerWorker*workers, bus.MaxFetchBatch),
		unconfirmedAcks: opts.UnconfirmedAcks,
		seed:            maphash.MakeSeed(),
		held:            make(map[*delivery]time.Time),
		stopping:        make(chan struct{}),
		done:            make(chan struct{}),
	}
	s.ctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	s.pullSubject = "$JS.API.CONSUMER.MSG.NEXT." + stream + "." + consumer
	s.request = pullRequest(s.prefetch)
	// The channel holds a whole pull and the status messages around it, so
	// the client never drops what the server sends.
	s.inbox = make(chan *nats.Msg, 2*s.prefetch+16)
	s.sub, err = b.nc.ChanSubscribe(b.nc.NewInbox(), s.inbox)
	if err != nil {
		s.cancel()
		return nil, fmt.Errorf("subscribe to %q on stream %q: %w", consumer, stream, mapError(err))
	}
	s.status = b.nc.StatusChanged(nats.CONNECTED)

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
		s.unsubscribe(nil)
		s.cancel()
		return nil, bus.ErrClosed
	}
	b.subs[s] = struct{}{}
	b.subsMu.Unlock()

	var wg, keeper sync.WaitGroup
	for i := range workers {
		q := s.queues[i%n]
		wg.Go(func() { s.work(q) })
	}
	wg.Go(s.read)
	stopKeeper := make(chan struct{})
	if !s.handle.ackNone {
		keeper.Go(func() { s.keepAlive(stopKeeper) })
	}
	go func() {
		wg.Wait()
		close(stopKeeper)
		keeper.Wait()
		s.confirmAcks()
		s.cancel()
		b.subsMu.Lock()
		delete(b.subs, s)
		b.subsMu.Unlock()
		close(s.done)
	}()
	return s, nil
}

// pullRequest is the body of a pull for batch messages, written by hand:
// it is sent for every batch.
func pullRequest(batch int) []byte {
	b := []byte(`{"batch":`)
	b = strconv.AppendInt(b, int64(batch), 10)
	b = append(b, `,"expires":`...)
	b = strconv.AppendInt(b, pullWait.Nanoseconds(), 10)
	b = append(b, `,"idle_heartbeat":`...)
	b = strconv.AppendInt(b, pullHeartbeat.Nanoseconds(), 10)
	return append(b, '}')
}

// subscription is a running Subscribe: one reader pulling batches of
// messages into its own inbox and handing them to workers through queues
// (one shared queue, or one per worker when ordered by subject).
//
// Each pull asks for prefetch messages and the next is sent once the
// previous one is over, so what the subscription holds is bounded by the
// request itself. Stop unsubscribes the inbox and waits for the server to
// confirm, so that no pull of a stopped subscription lingers on the server
// to swallow messages published after Stop.
type subscription struct {
	b        *Bus
	handle   *consumerHandle
	handler  bus.Handler
	stream   string
	consumer string
	prefetch int
	// pullSubject and request are the pull sent for every batch.
	pullSubject string
	request     []byte
	queues      []chan *delivery
	seed        maphash.Seed

	// unconfirmedAcks is SubscribeOptions.UnconfirmedAcks; lastUnconfirmed
	// is the reply subject of the latest ack sent without confirmation
	// since the server last confirmed one.
	unconfirmedAcks bool
	ackMu           sync.Mutex
	lastUnconfirmed string

	sub   *nats.Subscription
	inbox chan *nats.Msg
	// status reports reconnections, after which the server has forgotten
	// the pull in progress.
	status chan nats.Status

	// held maps each delivery received and not yet through its handler to
	// when the server last heard it is in progress (or when it arrived).
	heldMu sync.Mutex
	held   map[*delivery]time.Time

	// ctx is the handlers' context.
	ctx    context.Context
	cancel context.CancelFunc

	stopOnce sync.Once
	// stopping is closed when Stop is called.
	stopping chan struct{}
	// done is closed once the reader and every worker have returned.
	done chan struct{}
}

// read pulls batches and queues their messages for the workers until Stop,
// then stops listening, hands back what it holds and closes the queues.
func (s *subscription) read() {
	var left []*delivery
	defer func() {
		s.unsubscribe(left)
		for _, q := range s.queues {
			close(q)
		}
	}()
	delay := resumeDelay
	failing := false
	for {
		var err error
		left, err = s.pull()
		if errors.Is(err, errStopping) {
			return
		}
		if err == nil {
			if failing {
				s.b.log.Info("subscription pulls again", "stream", s.stream, "consumer", s.consumer)
			}
			delay, failing = resumeDelay, false
			continue
		}
		if s.b.nc.IsClosed() {
			s.b.log.Warn("subscription ended: the connection is closed", "stream", s.stream, "consumer", s.consumer)
			return
		}
		// The first failure of a run is a warning; the retries that follow
		// it, until a pull succeeds again, are not news.
		level := slog.LevelWarn
		if failing {
			level = slog.LevelDebug
		}
		failing = true
		s.b.log.Log(context.Background(), level, "subscription cannot pull; retrying until it can", "stream", s.stream, "consumer", s.consumer, "error", err, "retry_in", delay.String())
		select {
		case <-time.After(delay):
		case <-s.stopping:
			return
		}
		delay = min(2*delay, maxResumeDelay)
	}
}

var errStopping = errors.New("subscription stopping")

// pull sends one pull request and hands out its messages until the request
// is over (all messages arrived, it expired, the server ended it, or it was
// lost with the connection) and every message it brought has gone to a
// worker. Messages are read as they arrive, and held (kept alive) until a
// worker takes them. It returns an error worth a pause before the next pull
// (the consumer is gone, say), or errStopping together with what it held,
// for the caller to hand back.
func (s *subscription) pull() (waiting []*delivery, err error) {
	if !s.b.nc.IsConnected() {
		select {
		case <-s.status:
		case <-s.stopping:
			return nil, errStopping
		}
	}
	if err := s.b.nc.PublishRequest(s.pullSubject, s.sub.Subject, s.request); err != nil {
		return nil, err
	}
	heartbeat := time.NewTimer(2 * pullHeartbeat)
	defer heartbeat.Stop()
	// waiting holds, in arrival order, what the pull brought and no worker
	// has taken yet.
	open := true // the pull may still bring messages
	for got := 0; open || len(waiting) > 0; {
		select {
		case <-s.stopping:
			return waiting, errStopping
		default:
		}
		var (
			next   *delivery
			queue  chan<- *delivery
			inbox  <-chan *nats.Msg
			silent <-chan time.Time
			status <-chan nats.Status
		)
		if len(waiting) > 0 {
			next = waiting[0]
			queue = s.queueOf(next)
		}
		if open {
			inbox, silent, status = s.inbox, heartbeat.C, s.status
		}
		select {
		case queue <- next:
			waiting[0] = nil
			waiting = waiting[1:]
		case m := <-inbox:
			heartbeat.Reset(2 * pullHeartbeat)
			if isStatus(m) {
				if over, perr := s.pullStatus(m); over {
					open, err = false, perr
				}
				continue
			}
			got++
			open = got < s.prefetch
			d, derr := s.b.newDelivery(m.Subject, m.Data, m.Header, m.Reply, s.handle)
			if derr != nil {
				s.b.log.Warn("dropping a message that is not a JetStream delivery", "stream", s.stream, "consumer", s.consumer, "subject", m.Subject, "error", derr)
				continue
			}
			d.sub = s
			s.hold(d)
			waiting = append(waiting, d)
		case <-silent:
			open = false
		case <-status:
			open = false
		case <-s.stopping:
			return waiting, errStopping
		}
	}
	return nil, err
}

// isStatus reports whether m is the server's word on the pull (heartbeat,
// timeout, ...) rather than a delivery, which always has an ack reply.
func isStatus(m *nats.Msg) bool {
	return m.Reply == "" && len(m.Data) == 0 && m.Header.Get("Status") != ""
}

// pullStatus reads a status message of the pull: whether the pull is over,
// and the error that ended it if it is one worth a pause.
func (s *subscription) pullStatus(m *nats.Msg) (over bool, err error) {
	switch code := m.Header.Get("Status"); code {
	case "100":
		// Idle heartbeat: the pull is alive.
		return false, nil
	case "404", "408":
		// No messages, or the pull expired.
		return true, nil
	case "503":
		return true, fmt.Errorf("%w: nothing serves consumer %q of stream %q", bus.ErrNotFound, s.consumer, s.stream)
	case "409":
		switch d := m.Header.Get("Description"); {
		case strings.EqualFold(d, "Server Shutdown"), strings.EqualFold(d, "Leadership Change"):
			// The pull went with its server or its leader; the next one
			// goes to whoever serves the consumer now (after the
			// connection is back, which is reported where it is lost).
			return true, nil
		}
		return true, fmt.Errorf("pull ended by the server: 409 %s", m.Header.Get("Description"))
	default:
		return true, fmt.Errorf("pull ended by the server: %s %s", code, m.Header.Get("Description"))
	}
}

// queueOf is the queue of the worker (or workers) that d goes to.
func (s *subscription) queueOf(d *delivery) chan *delivery {
	if len(s.queues) == 1 {
		return s.queues[0]
	}
	return s.queues[maphash.String(s.seed, d.msg.Subject)%uint64(len(s.queues))]
}

// unsubscribe stops listening for pulls and hands back left, what the last
// pull held, and every message that arrived for the pulls since. It drains
// the inbox subscription: the server stops sending to it, and what it sent
// before it knew still reaches the inbox (an unsubscribe would drop it,
// leaving those messages to wait out their ack wait). The wait for the
// server is bounded by unsubscribeWait.
func (s *subscription) unsubscribe(left []*delivery) {
	s.b.nc.RemoveStatusListener(s.status)
	removed := make(chan struct{})
	s.sub.SetClosedHandler(func(string) { close(removed) })
	if err := s.sub.Drain(); err == nil {
		select {
		case <-removed:
		case <-time.After(unsubscribeWait):
			_ = s.sub.Unsubscribe()
		}
	} else {
		_ = s.sub.Unsubscribe()
	}
	if s.handle.ackNone {
		return
	}
	replies := make([]string, 0, len(left)+len(s.inbox))
	for _, d := range left {
		s.unhold(d)
		if _, err := s.b.tracker.lookup(d.key, d.reply, true); err == nil {
			replies = append(replies, d.reply)
		}
	}
	for drained := false; !drained; {
		select {
		case m := <-s.inbox:
			if !isStatus(m) {
				replies = append(replies, m.Reply)
			}
		default:
			drained = true
		}
	}
	s.handBack(replies...)
}

// handBackBody returns a delivery to its consumer for redelivery at once.
// It is a nak with a delay of a nanosecond rather than a plain nak: the
// server keeps a plain nak's redelivery in memory only, so a server that
// restarts right after the stop would hold the message back for a whole ack
// wait, while a delayed nak is stored as due.
const handBackBody = `-NAK {"delay":1}`

// handBack returns deliveries no handler started to the consumer, waiting
// (up to unsubscribeWait) until the server has them all: a stop is often
// followed by the broker's shutdown, which would drop what it had not yet
// processed. The server handles a consumer's acknowledgements in the order
// they arrive, so the answer to the last one covers the others.
func (s *subscription) handBack(replies ...string) {
	if len(replies) == 0 {
		return
	}
	last := len(replies) - 1
	for _, r := range replies[:last] {
		_ = s.b.nc.Publish(r, []byte(handBackBody))
	}
	if !s.b.nc.IsConnected() {
		_ = s.b.nc.Publish(replies[last], []byte(handBackBody))
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), unsubscribeWait)
	defer cancel()
	if _, err := s.b.nc.RequestWithContext(ctx, replies[last], []byte(handBackBody)); err != nil && !errors.Is(err, nats.ErrNoResponders) {
		s.b.log.Debug("the server did not confirm messages handed back by a stopping subscription; they may come back only after their ack wait",
			"stream", s.stream, "consumer", s.consumer, "messages", len(replies), "error", err)
	}
}

// work runs the handler for each delivery of q.
func (s *subscription) work(q <-chan *delivery) {
	for d := range q {
		s.run(d)
	}
}

func (s *subscription) run(d *delivery) {
	defer s.unhold(d)
	select {
	case <-s.stopping:
		// Taken from the queue as Stop began: not started, so handed back.
		if !d.ackNone {
			if _, err := s.b.tracker.lookup(d.key, d.reply, true); err == nil {
				s.handBack(d.reply)
			}
		}
		return
	default:
	}
	defer func() {
		if r := recover(); r != nil {
			s.b.log.Error("handler panicked; the message is redelivered after its ack wait",
				"stream", s.stream, "consumer", s.consumer, "subject", d.msg.Subject,
				"stream_seq", d.msg.StreamSequence, "panic", r)
		}
	}()
	s.handler(s.ctx, &d.msg)
}

// hold starts keeping d alive until unhold.
func (s *subscription) hold(d *delivery) {
	if d.ackNone {
		return
	}
	s.heldMu.Lock()
	s.held[d] = time.Now()
	s.heldMu.Unlock()
}

func (s *subscription) unhold(d *delivery) {
	s.heldMu.Lock()
	delete(s.held, d)
	s.heldMu.Unlock()
}

// keepAlive tells the server that the held deliveries are in progress,
// each before its ack wait runs out, until stop is closed.
func (s *subscription) keepAlive(stop <-chan struct{}) {
	round := max(s.handle.shortestAckWait()/keeperRounds, minKeeperRound)
	tick := time.NewTicker(round)
	defer tick.Stop()
	var due []*delivery
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		now := time.Now()
		due = due[:0]
		s.heldMu.Lock()
		for d, last := range s.held {
			if now.Sub(last) >= d.ackWait/refreshAfter {
				due = append(due, d)
			}
		}
		s.heldMu.Unlock()
		for _, d := range due {
			tracked, err := s.b.tracker.refresh(d, func() error {
				return s.b.nc.Publish(d.reply, []byte(inProgressBody))
			})
			s.heldMu.Lock()
			switch _, ok := s.held[d]; {
			case !ok:
			case !tracked:
				// Settled: nothing to keep alive any more.
				delete(s.held, d)
			case err == nil:
				s.held[d] = now
			}
			s.heldMu.Unlock()
		}
	}
}

// sentUnconfirmed notes an ack sent without waiting for the server.
func (s *subscription) sentUnconfirmed(reply string) {
	s.ackMu.Lock()
	s.lastUnconfirmed = reply
	s.ackMu.Unlock()
}

// confirmAcks waits until the server has processed the acks sent without
// confirmation. The server handles a consumer's acks one after another, in
// the order they arrive, and answers any of them that carries a reply
// subject; so an in-progress with a reply on the latest of them is answered
// only after every earlier ack was applied. On a message already acked the
// in-progress changes nothing.
func (s *subscription) confirmAcks() {
	s.ackMu.Lock()
	reply := s.lastUnconfirmed
	s.lastUnconfirmed = ""
	s.ackMu.Unlock()
	if reply == "" || !s.b.nc.IsConnected() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), unsubscribeWait)
	defer cancel()
	_, err := s.b.nc.RequestWithContext(ctx, reply, []byte(inProgressBody))
	switch {
	case err == nil:
	case errors.Is(err, nats.ErrNoResponders):
		// The consumer is gone, and with it what it had to deliver.
		s.b.log.Debug("the consumer of a stopped subscription is gone; its last acks need no confirmation",
			"stream", s.stream, "consumer", s.consumer)
	default:
		s.b.log.Warn("the server did not confirm the last acks of a stopped subscription; their messages may be delivered again",
			"stream", s.stream, "consumer", s.consumer, "error", err)
	}
}

// Stop stops pulling, hands back messages no handler has started, and waits
// for running handlers until they return or ctx is done; then it cancels
// their context and returns ctx's error. It is idempotent.
func (s *subscription) Stop(ctx context.Context) error {
	s.stopOnce.Do(func() { close(s.stopping) })
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		s.cancel()
		return fmt.Errorf("stop subscription to %q on stream %q: handlers still running: %w", s.consumer, s.stream, ctx.Err())
	}
}
