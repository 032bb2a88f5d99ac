package jetstream

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wfeventbus/eventbus/bus"
)

const (
	// trackSlack is how long past its ack wait a delivery stays settleable:
	// the server's ack wait started before the message reached this
	// process, so this covers the trip and the server's redelivery timer,
	// without accepting tokens long after the message went elsewhere.
	trackSlack = 500 * time.Millisecond
	// pruneEvery is how often adding a delivery also drops expired ones, so
	// unsettled deliveries do not pile up.
	pruneEvery = time.Second
)

// deliveryKey identifies a message of a consumer; a redelivery has the same
// key and replaces the earlier delivery.
type deliveryKey struct {
	stream   string
	consumer string
	seq      uint64
}

// delivery is one delivery handed out by the Bus: the bus.Message given to
// the caller, the ack reply subject that settles it, and its place in the
// tracker. It is the Message's Acknowledger.
type delivery struct {
	msg     bus.Message
	b       *Bus
	key     deliveryKey
	reply   string
	ackWait time.Duration
	ackNone bool
	// delivered is the delivery count of this delivery.
	delivered uint64
	// sub is the subscription that handed the delivery out; nil for a
	// fetched one.
	sub *subscription
	// expires is when the delivery stops being settleable, as an offset
	// from the tracker's base time; guarded by tracker.mu.
	expires time.Duration
}

// tracker holds the deliveries that can still be settled: those the Bus
// handed out, and those of other Buses whose tokens it was given.
type tracker struct {
	mu sync.Mutex
	m  map[deliveryKey]*delivery
	// adopted holds the reply subjects of the other Buses' deliveries
	// that were ever tracked here, until they expire, so that a token
	// settled here once is stale here afterwards.
	adopted   map[string]time.Duration
	base      time.Time
	nextPrune time.Duration
}

func newTracker() tracker {
	return tracker{m: make(map[deliveryKey]*delivery), adopted: make(map[string]time.Duration), base: time.Now()}
}

// now is the monotonic time since base.
func (t *tracker) now() time.Duration { return time.Since(t.base) }

// add starts tracking d, replacing an earlier delivery of the same message.
func (t *tracker) add(d *delivery) {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.prune(now)
	d.expires = now + d.ackWait + trackSlack
	t.m[d.key] = d
}

// prune drops expired deliveries, at most every pruneEvery; t.mu must be
// held.
func (t *tracker) prune(now time.Duration) {
	if now < t.nextPrune {
		return
	}
	for k, old := range t.m {
		if now > old.expires {
			delete(t.m, k)
		}
	}
	for reply, expires := range t.adopted {
		if now > expires {
			delete(t.adopted, reply)
		}
	}
	t.nextPrune = now + pruneEvery
}

// adopt starts tracking d, a delivery another Bus handed out, until
// expires (an offset from base), unless it was tracked here before, its
// time is up, or a later delivery of its message is tracked here.
func (t *tracker) adopt(d *delivery, expires time.Duration) error {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.prune(now)
	if _, ok := t.adopted[d.reply]; ok || now > expires {
		return errStale
	}
	if cur := t.m[d.key]; cur != nil && cur.delivered >= d.delivered {
		return errStale
	}
	d.expires = expires
	t.m[d.key] = d
	t.adopted[d.reply] = expires
	return nil
}

// errStale is the reason every stale token gives.
var errStale = fmt.Errorf("%w: the delivery was already settled, redelivered, or its ack wait has passed", bus.ErrStaleToken)

// lookup returns the tracked delivery of key if it is the one with reply,
// dropping it when it has expired. With take it also stops tracking it (the
// caller settles it); otherwise it extends its expiry by an ack wait.
func (t *tracker) lookup(key deliveryKey, reply string, take bool) (*delivery, error) {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	d := t.m[key]
	if d == nil || d.reply != reply {
		return nil, errStale
	}
	if now > d.expires {
		delete(t.m, key)
		return nil, errStale
	}
	if take {
		delete(t.m, key)
	} else {
		d.expires = now + d.ackWait + trackSlack
	}
	return d, nil
}

// refresh runs send, which tells the server d is in progress, if d is still
// the tracked delivery of its message, and extends its expiry by an ack
// wait. It reports whether d is tracked. send runs under the tracker's
// lock: a settlement takes its delivery from the tracker before it sends
// anything, so it can never reach the server ahead of an in-progress that
// would then undo it (a nak's delay, say).
func (t *tracker) refresh(d *delivery, send func() error) (bool, error) {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if cur := t.m[d.key]; cur != d || now > d.expires {
		return false, nil
	}
	if err := send(); err != nil {
		return true, err
	}
	d.expires = now + d.ackWait + trackSlack
	return true, nil
}

// restore tracks d again after a settlement that did not go through, unless
// the message has been redelivered meanwhile.
func (t *tracker) restore(d *delivery) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.m[d.key]; !ok {
		t.m[d.key] = d
	}
}

// size is the number of tracked deliveries.
func (t *tracker) size() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}

// newDelivery turns a received message into a delivery, tracked unless its
// consumer acks nothing.
func (b *Bus) newDelivery(subject string, data []byte, hdr nats.Header, reply string, h *consumerHandle) (*delivery, error) {
	meta, err := parseAckReply(reply)
	if err != nil {
		return nil, err
	}
	d := &delivery{
		b:         b,
		key:       deliveryKey{stream: meta.stream, consumer: meta.consumer, seq: meta.streamSeq},
		reply:     reply,
		ackWait:   h.ackWaitOf(meta.delivered),
		ackNone:   h.ackNone,
		delivered: meta.delivered,
	}
	d.msg = bus.Message{
		Subject:          subject,
		Payload:          data,
		Headers:          bus.Headers(hdr),
		Stream:           meta.stream,
		Consumer:         meta.consumer,
		StreamSequence:   meta.streamSeq,
		ConsumerSequence: meta.consumerSeq,
		DeliveryCount:    meta.delivered,
		PublishedAt:      meta.timestamp,
		Acknowledger:     d,
	}
	if !h.ackNone {
		d.msg.AckToken = b.codec.Encode(bus.Token{
			Backend:   backendName,
			Stream:    meta.stream,
			Consumer:  meta.consumer,
			StreamSeq: meta.streamSeq,
			Delivery:  meta.delivered,
			Reply:     reply,
			Issuer:    b.id,
			Expires:   uint64(time.Now().Add(d.ackWait).UnixMilli()),
		})
		b.tracker.add(d)
	}
	return d, nil
}

// release hands back a delivery nobody will handle, for immediate
// redelivery to this consumer's other pullers.
func (b *Bus) release(d *delivery) {
	if d.ackNone {
		return
	}
	if _, err := b.tracker.lookup(d.key, d.reply, true); err == nil {
		_ = b.nc.Publish(d.reply, []byte(nakBody))
	}
}

// settleOp is one way of settling a delivery.
type settleOp int

const (
	opAck settleOp = iota
	opNak
	opTerm
	opInProgress
)

func (op settleOp) String() string {
	return [...]string{"ack", "nak", "term", "in progress"}[op]
}

// Bodies of the JetStream acknowledgement protocol, sent to a delivery's
// ack reply subject.
const (
	ackBody        = "+ACK"
	nakBody        = "-NAK"
	termBody       = "+TERM"
	inProgressBody = "+WPI"
)

// defaultAckTimeout bounds waiting for the server to confirm an ack when the
// caller's context has no deadline.
const defaultAckTimeout = 5 * time.Second

// settle performs op on d, which the caller has taken from the tracker (or,
// for opInProgress, found in it). Ack, nak and term wait for the server to
// confirm them (see confirm), so that none is lost to a connection or a
// server that goes away right after; an ack sent with confirm unset is only
// sent, and noted on d's subscription, which has the server confirm it on
// Stop (only a subscription's deliveries are acked so). A nak with a delay
// holds the redelivery back; a term carries its reason to the server's
// advisory; an in-progress is not confirmed. A settlement that fails is
// tracked again so that it can be retried.
func (d *delivery) settle(ctx context.Context, op settleOp, delay time.Duration, reason string, confirm bool) error {
	nc := d.b.nc
	var err error
	switch {
	case op == opAck && !confirm:
		if err = nc.Publish(d.reply, []byte(ackBody)); err == nil {
			d.sub.sentUnconfirmed(d.reply)
		}
	case op == opAck:
		err = d.confirm(ctx, []byte(ackBody))
	case op == opNak:
		body := []byte(nakBody)
		if delay > 0 {
			body = fmt.Appendf(body, ` {"delay": %d}`, delay.Nanoseconds())
		}
		err = d.confirm(ctx, body)
	case op == opTerm:
		body := []byte(termBody)
		if reason != "" {
			body = append(append(body, ' '), reason...)
		}
		err = d.confirm(ctx, body)
	case op == opInProgress:
		err = nc.Publish(d.reply, []byte(inProgressBody))
	}
	if err == nil {
		return nil
	}
	if op != opInProgress {
		d.b.tracker.restore(d)
	}
	return fmt.Errorf("%s: %w", op, mapError(err))
}

// confirm sends body to d's reply subject as a request and waits for the
// server's answer, for defaultAckTimeout unless ctx has a deadline. A ctx
// that is already done does not stop the settlement: a handler whose
// context a stopping subscription cancelled still settles its message, as
// it would with a plain publish, rather than leave it to its ack wait.
//
// When nothing answers, confirm asks the server whether the consumer
// exists: when it does not, the settlement fails with bus.ErrNotFound;
// when it does or the server cannot say, the consumer is between leaders
// or its server is still starting, nothing was settled, and confirm sends
// again after a pause, and after the connection is back, until ctx ends
// (bus.ErrUnavailable).
//
// Each attempt waits for its answer at most firstAttemptTimeout, twice as
// long after each attempt that got none, up to maxAttemptTimeout: a
// request sent as the connection drops or the consumer's leader moves can
// lose its answer, and one the consumer's servers cannot store for lack
// of a majority gets none. Sending the settlement again is safe: the
// server settles a delivery once and answers a repeated settlement as it
// did the first. When ctx ends without an answer, it is bus.ErrUnavailable
// too.
func (d *delivery) confirm(ctx context.Context, body []byte) error {
	if ctx.Err() != nil {
		ctx = context.WithoutCancel(ctx)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultAckTimeout)
		defer cancel()
	}
	b := d.b
	pause, timeout := retryPause, firstAttemptTimeout
	var last error
	for attempts := 1; ; attempts++ {
		actx, cancel := context.WithTimeout(ctx, timeout)
		sent := time.Now()
		_, err := b.nc.RequestWithContext(actx, d.reply, body)
		expired := actx.Err() != nil
		cancel()
		switch {
		case err == nil:
			return nil
		case expired && errors.Is(err, context.DeadlineExceeded):
			last = &brokerError{sentinel: bus.ErrUnavailable, cause: err, detail: fmt.Sprintf(
				"the consumer %q of stream %q did not answer within %s: its leader moved or stopped, its servers are starting, or too few of them run for a majority",
				d.key.consumer, d.key.stream, time.Since(sent).Round(time.Millisecond))}
			if ctx.Err() != nil {
				return &retryError{last: last, end: ctx.Err(), attempts: attempts}
			}
			timeout = min(2*timeout, maxAttemptTimeout)
			if err := b.awaitConnected(ctx, true); err != nil {
				return &retryError{last: last, end: err, attempts: attempts}
			}
			continue
		case !errors.Is(err, nats.ErrNoResponders):
			if last != nil {
				return &retryError{last: last, end: err, attempts: attempts}
			}
			return err
		// The server is asked once: one that cannot say takes seconds to
		// fail to.
		case last == nil && b.consumerGone(ctx, d.key.stream, d.key.consumer):
			return fmt.Errorf("%w: the consumer %q of stream %q is gone: %w", bus.ErrNotFound, d.key.consumer, d.key.stream, err)
		}
		last = &brokerError{sentinel: bus.ErrUnavailable, cause: err, detail: fmt.Sprintf(
			"the consumer %q of stream %q did not answer: its servers are electing a leader, are starting, or too few of them run for a majority (%s)",
			d.key.consumer, d.key.stream, describe(err))}
		select {
		case <-ctx.Done():
			return &retryError{last: last, end: ctx.Err(), attempts: attempts}
		case <-time.After(pause):
		}
		pause = min(2*pause, maxRetryPause)
		if err := b.awaitConnected(ctx, true); err != nil {
			return &retryError{last: last, end: err, attempts: attempts}
		}
	}
}

// consumerGone reports whether the server says that stream has no consumer
// called name (or that the stream itself is gone). A server that cannot say
// is not taken for a no.
func (b *Bus) consumerGone(ctx context.Context, stream, name string) bool {
	ctx, cancel := context.WithTimeout(ctx, sizeLimitLookup)
	defer cancel()
	_, err := b.js.Consumer(ctx, stream, name)
	return errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrStreamNotFound)
}

// acknowledge settles d by op through its Acknowledger.
func (d *delivery) acknowledge(ctx context.Context, op settleOp, delay time.Duration, reason string) error {
	if d.ackNone {
		if op == opNak {
			return fmt.Errorf("%w: the consumer acks nothing (ack_policy none), so a nak cannot redeliver", bus.ErrNoAcknowledger)
		}
		return nil
	}
	if err := checkNakDelay(op, delay); err != nil {
		return err
	}
	if err := d.b.settleReady(); err != nil {
		return err
	}
	if _, err := d.b.tracker.lookup(d.key, d.reply, op != opInProgress); err != nil {
		return err
	}
	// Only a subscription's own handlers skip the broker's confirmation.
	confirm := d.sub == nil || !d.sub.unconfirmedAcks
	return d.settle(ctx, op, delay, reason, confirm)
}

func checkNakDelay(op settleOp, delay time.Duration) error {
	if op == opNak && delay < 0 {
		return configError("delay", "%s is negative", delay)
	}
	return nil
}

// Ack marks the message processed, waiting for the server to confirm.
func (d *delivery) Ack(ctx context.Context) error { return d.acknowledge(ctx, opAck, 0, "") }

// Nak asks for redelivery no sooner than delay.
func (d *delivery) Nak(ctx context.Context, delay time.Duration) error {
	return d.acknowledge(ctx, opNak, delay, "")
}

// Term gives the message up, telling the server why.
func (d *delivery) Term(ctx context.Context, reason string) error {
	return d.acknowledge(ctx, opTerm, 0, reason)
}

// InProgress resets the ack deadline; the delivery stays settleable.
func (d *delivery) InProgress(ctx context.Context) error {
	return d.acknowledge(ctx, opInProgress, 0, "")
}

// settleToken settles the delivery token names by op.
func (b *Bus) settleToken(ctx context.Context, token string, op settleOp, delay time.Duration, reason string) error {
	t, err := b.codec.Decode(token)
	if err != nil {
		return err
	}
	if t.Backend != backendName {
		return fmt.Errorf("%w: issued by the %q backend", bus.ErrInvalidToken, t.Backend)
	}
	if err := checkNakDelay(op, delay); err != nil {
		return err
	}
	if err := b.settleReady(); err != nil {
		return err
	}
	key := deliveryKey{stream: t.Stream, consumer: t.Consumer, seq: t.StreamSeq}
	d, err := b.tracker.lookup(key, t.Reply, op != opInProgress)
	if err != nil && t.Issuer != "" && t.Issuer != b.id {
		if err = b.adopt(ctx, t, key); err == nil {
			d, err = b.tracker.lookup(key, t.Reply, op != opInProgress)
		}
	}
	if err != nil {
		return err
	}
	return d.settle(ctx, op, delay, reason, true)
}

// adopt tracks the delivery of t, which another Bus sharing the token key
// handed out (another replica of the app), until the expiry the token
// carries, so that this Bus settles it as one of its own: once, and
// in-progress extending it by the consumer's ack wait. A token whose
// expiry has passed is stale, as it is on the Bus that issued it.
//
// What the other Bus did with the delivery is not known here, and the
// server confirms an ack whether or not the delivery is still pending: a
// token settled on one Bus and then on another is settled twice, the
// second time to no effect, and a token another Bus kept in progress past
// its expiry is stale here.
func (b *Bus) adopt(ctx context.Context, t bus.Token, key deliveryKey) error {
	if t.Expires == 0 || t.Expires > math.MaxInt64 {
		return errStale
	}
	left := time.Until(time.UnixMilli(int64(t.Expires)))
	if left+trackSlack < 0 {
		return errStale
	}
	h, err := b.consumer(ctx, t.Stream, t.Consumer)
	if err != nil {
		return err
	}
	d := &delivery{b: b, key: key, reply: t.Reply, ackWait: h.ackWaitOf(t.Delivery), delivered: t.Delivery}
	return b.tracker.adopt(d, b.tracker.now()+left+trackSlack)
}

// TokenSource returns the stream and consumer of the delivery token names,
// or ok false when token is not one this Bus issued.
func (b *Bus) TokenSource(token string) (stream, consumer string, ok bool) {
	t, err := b.codec.Decode(token)
	if err != nil || t.Backend != backendName {
		return "", "", false
	}
	return t.Stream, t.Consumer, true
}

// Ack marks the delivery of token processed, once the server confirms it.
func (b *Bus) Ack(ctx context.Context, token string) error {
	return b.settleToken(ctx, token, opAck, 0, "")
}

// Nak asks for redelivery of token's message no sooner than delay.
func (b *Bus) Nak(ctx context.Context, token string, delay time.Duration) error {
	return b.settleToken(ctx, token, opNak, delay, "")
}

// Term gives token's message up; reason reaches the server's advisory.
func (b *Bus) Term(ctx context.Context, token string, reason string) error {
	return b.settleToken(ctx, token, opTerm, 0, reason)
}

// InProgress resets the ack deadline of token's delivery; the token stays
// valid for another ack wait.
func (b *Bus) InProgress(ctx context.Context, token string) error {
	return b.settleToken(ctx, token, opInProgress, 0, "")
}
