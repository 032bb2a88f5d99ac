package postgres

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wfeventbus/eventbus/bus"
)

// Stored enum values (the bus constants' values, kept fixed here because
// they are written to the database).
const (
	ackPolicyExplicit = 0
	ackPolicyNone     = 1
	ackPolicyAll      = 2
)

// settleOp is one way of settling a delivery, as the settle function
// numbers them.
type settleOp int16

const (
	opAck        settleOp = 0
	opNak        settleOp = 1
	opTerm       settleOp = 2
	opInProgress settleOp = 3
)

func (op settleOp) String() string {
	return [...]string{"ack", "nak", "term", "in progress"}[op]
}

// settleTimeout bounds a settlement when the caller's context has no
// deadline.
const settleTimeout = 30 * time.Second

// errStale is the reason every stale token gives.
var errStale = fmt.Errorf("%w: the delivery was already settled or redelivered, or its consumer is gone", bus.ErrStaleToken)

func isNoRows(err error) bool { return errors.Is(err, pgx.ErrNoRows) }

// deliveryRef names one delivery in the database.
type deliveryRef struct {
	consumer int64
	seq      int64
	count    int32
}

// delivery is one delivery handed out by the Bus and its Message's
// Acknowledger.
type delivery struct {
	msg   bus.Message
	b     *Bus
	h     *consumerHandle
	seq   int64
	count int32
	// sub is the subscription that handed the delivery out; nil for a
	// fetched one.
	sub *subscription
}

func (d *delivery) ref() deliveryRef { return deliveryRef{d.h.id, d.seq, d.count} }

func (d *delivery) acknowledge(ctx context.Context, op settleOp, delay time.Duration) error {
	if d.h.ackNone {
		if op == opNak {
			return fmt.Errorf("%w: the consumer acks nothing (ack_policy none), so a nak cannot redeliver", bus.ErrNoAcknowledger)
		}
		return nil
	}
	if op == opNak && delay < 0 {
		return configError("delay", "%s is negative", delay)
	}
	if err := d.b.settleReady(); err != nil {
		return err
	}
	if op == opAck && d.sub != nil && d.sub.unconfirmedAcks {
		d.b.acks.ackUnconfirmed(d.ref(), d.sub)
		return nil
	}
	return d.b.settle(ctx, op, d.ref(), delay)
}

// Ack marks the message processed once the database has it.
func (d *delivery) Ack(ctx context.Context) error { return d.acknowledge(ctx, opAck, 0) }

// Nak asks for redelivery no sooner than delay.
func (d *delivery) Nak(ctx context.Context, delay time.Duration) error {
	return d.acknowledge(ctx, opNak, delay)
}

// Term gives the message up. The reason is not stored.
func (d *delivery) Term(ctx context.Context, _ string) error {
	return d.acknowledge(ctx, opTerm, 0)
}

// InProgress resets the ack deadline; the delivery stays settleable.
func (d *delivery) InProgress(ctx context.Context) error {
	return d.acknowledge(ctx, opInProgress, 0)
}

// settle performs op on one delivery. Acks go through the batcher, which
// shares one statement among concurrent acks; the rarer operations run on
// their own.
func (b *Bus) settle(ctx context.Context, op settleOp, ref deliveryRef, delay time.Duration) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, settleTimeout)
		defer cancel()
	}
	if op == opAck {
		return b.acks.ack(ctx, ref)
	}
	applied, err := b.settleRefs(ctx, op, []deliveryRef{ref}, delay)
	if err != nil {
		return err
	}
	if len(applied) == 0 {
		return fmt.Errorf("%s: %w", op, errStale)
	}
	if op == opNak {
		b.redeliverable(ref.consumer)
	}
	return nil
}

// redeliverable wakes fetches of the stream of consumer id, which has a
// message to hand out again.
func (b *Bus) redeliverable(id int64) {
	b.consumers.mu.RLock()
	var stream string
	for _, h := range b.consumers.m {
		if h.id == id {
			stream = h.stream
			break
		}
	}
	b.consumers.mu.RUnlock()
	if stream != "" {
		b.published(stream)
	}
}

// settleRefs runs the settle function and returns the deliveries it
// applied to.
func (b *Bus) settleRefs(ctx context.Context, op settleOp, refs []deliveryRef, delay time.Duration) (map[deliveryRef]bool, error) {
	cids := make([]int64, len(refs))
	seqs := make([]int64, len(refs))
	counts := make([]int32, len(refs))
	for i, r := range refs {
		cids[i], seqs[i], counts[i] = r.consumer, r.seq, r.count
	}
	rows, err := b.pool.Query(ctx, b.sql.settle, int16(op), cids, seqs, counts, delay.Nanoseconds())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, mapError(err))
	}
	defer rows.Close()
	byKey := make(map[[2]int64]int32, len(refs))
	for _, r := range refs {
		byKey[[2]int64{r.consumer, r.seq}] = r.count
	}
	applied := make(map[deliveryRef]bool, len(refs))
	for rows.Next() {
		var cid, seq int64
		if err := rows.Scan(&cid, &seq); err != nil {
			return nil, fmt.Errorf("%s: %w", op, mapError(err))
		}
		if c, ok := byKey[[2]int64{cid, seq}]; ok {
			applied[deliveryRef{cid, seq, c}] = true
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", op, mapError(err))
	}
	return applied, nil
}

// release hands deliveries nobody will handle back for immediate
// redelivery.
func (b *Bus) release(msgs []*bus.Message) {
	var refs []deliveryRef
	for _, m := range msgs {
		if d, ok := m.Acknowledger.(*delivery); ok && !d.h.ackNone {
			refs = append(refs, d.ref())
		}
	}
	if len(refs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(b.ctx), settleTimeout)
	defer cancel()
	if _, err := b.settleRefs(ctx, opNak, refs, 0); err != nil {
		b.log.Warn("could not hand back deliveries; they are redelivered after their ack wait", "count", len(refs), "error", err)
		return
	}
	b.redeliverable(refs[0].consumer)
}

// settleToken settles the delivery token names by op.
func (b *Bus) settleToken(ctx context.Context, token string, op settleOp, delay time.Duration) error {
	t, err := b.codec.Decode(token)
	if err != nil {
		return err
	}
	if t.Backend != backendName {
		return fmt.Errorf("%w: issued by the %q backend", bus.ErrInvalidToken, t.Backend)
	}
	id, err := strconv.ParseInt(t.Reply, 10, 64)
	if err != nil || id <= 0 || t.StreamSeq == 0 || t.StreamSeq > 1<<62 || t.Delivery == 0 || t.Delivery > 1<<30 {
		return fmt.Errorf("%w: malformed", bus.ErrInvalidToken)
	}
	if op == opNak && delay < 0 {
		return configError("delay", "%s is negative", delay)
	}
	if err := b.settleReady(); err != nil {
		return err
	}
	return b.settle(ctx, op, deliveryRef{consumer: id, seq: int64(t.StreamSeq), count: int32(t.Delivery)}, delay)
}

// Ack marks the delivery of token processed, once the database has it.
// Any Bus on the same schema with the same token key settles any of their
// tokens.
func (b *Bus) Ack(ctx context.Context, token string) error {
	return b.settleToken(ctx, token, opAck, 0)
}

// Nak asks for redelivery of token's message no sooner than delay.
func (b *Bus) Nak(ctx context.Context, token string, delay time.Duration) error {
	return b.settleToken(ctx, token, opNak, delay)
}

// Term gives token's message up. The reason is not stored.
func (b *Bus) Term(ctx context.Context, token string, _ string) error {
	return b.settleToken(ctx, token, opTerm, 0)
}

// InProgress resets the ack deadline of token's delivery; the token stays
// valid.
func (b *Bus) InProgress(ctx context.Context, token string) error {
	return b.settleToken(ctx, token, opInProgress, 0)
}

// maxAckBatch bounds the acks of one statement.
const maxAckBatch = 2000

// settleBatcher shares one settle statement among concurrent acks: while
// one statement runs, acks pile up and go together in the next.
type settleBatcher struct {
	b        *Bus
	mu       sync.Mutex
	pending  []*pendingAck
	flushing bool
	wg       sync.WaitGroup
}

// pendingAck is one ack waiting for its statement: confirmed ones have
// done, unconfirmed ones their subscription.
type pendingAck struct {
	ref  deliveryRef
	done chan error
	sub  *subscription
}

func newSettleBatcher(b *Bus) *settleBatcher { return &settleBatcher{b: b} }

// ack settles ref and waits for the outcome.
func (s *settleBatcher) ack(ctx context.Context, ref deliveryRef) error {
	p := &pendingAck{ref: ref, done: make(chan error, 1)}
	s.add(p)
	select {
	case err := <-p.done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("ack: %w", ctx.Err())
	}
}

// ackUnconfirmed queues an ack of ref without waiting; sub's Stop waits
// for it.
func (s *settleBatcher) ackUnconfirmed(ref deliveryRef, sub *subscription) {
	sub.acks.Add(1)
	s.add(&pendingAck{ref: ref, sub: sub})
}

func (s *settleBatcher) add(p *pendingAck) {
	s.mu.Lock()
	s.pending = append(s.pending, p)
	start := !s.flushing
	s.flushing = true
	s.mu.Unlock()
	if start {
		s.wg.Go(s.drain)
	}
}

// close waits for queued acks to be written.
func (s *settleBatcher) close() { s.wg.Wait() }

func (s *settleBatcher) drain() {
	// Let acks made at the same moment (a batch settled by a worker pool)
	// join the first statement.
	runtime.Gosched()
	for {
		s.mu.Lock()
		n := min(len(s.pending), maxAckBatch)
		if n == 0 {
			s.flushing = false
			s.mu.Unlock()
			return
		}
		batch := s.pending[:n:n]
		s.pending = s.pending[n:]
		if len(s.pending) == 0 {
			s.pending = nil
		}
		s.mu.Unlock()
		s.flush(batch)
	}
}

func (s *settleBatcher) flush(batch []*pendingAck) {
	ctx, cancel := context.WithTimeout(context.Background(), settleTimeout)
	defer cancel()
	refs := make([]deliveryRef, len(batch))
	for i, p := range batch {
		refs[i] = p.ref
	}
	applied, err := s.b.settleRefs(ctx, opAck, refs, 0)
	for _, p := range batch {
		var perr error
		switch {
		case err != nil:
			perr = err
		case !applied[p.ref]:
			perr = fmt.Errorf("ack: %w", errStale)
		}
		if p.done != nil {
			p.done <- perr
			continue
		}
		if perr != nil && !errors.Is(perr, bus.ErrStaleToken) {
			s.b.log.Warn("an ack sent without confirmation failed; the message is delivered again",
				"stream", p.sub.stream, "consumer", p.sub.consumer, "seq", p.ref.seq, "error", perr)
		}
		p.sub.acks.Done()
	}
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
