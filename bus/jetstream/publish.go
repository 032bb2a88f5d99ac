package jetstream

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wfeventbus/eventbus/bus"
)

// Publish stores msg and waits for the stream's ack. It tries again as
// bus.Publisher says, until ctx ends (30 seconds when ctx has no
// deadline): while the connection is down, while nothing serves the stream
// capturing the subject (bus.ErrUnavailable: it is electing a leader, or
// its server is starting), and, when msg has a MsgID, after an attempt
// whose answer was lost (each attempt waits 2 seconds, then 4, up to 16).
// A subject no stream captures is bus.ErrNoStream, reported at once; a
// message larger than the stream or server allows is bus.ErrPayloadTooLarge;
// a failed ExpectedLastSequence is bus.ErrWrongLastSequence.
func (b *Bus) Publish(ctx context.Context, msg bus.OutgoingMessage) (bus.PublishAck, error) {
	m, err := natsMsg(&msg)
	if err != nil {
		return bus.PublishAck{}, err
	}
	if b.state.Load() != stateOpen {
		return bus.PublishAck{}, bus.ErrClosed
	}
	ctx, cancel := withPublishDeadline(ctx)
	defer cancel()
	r := b.newRetrier()
	idempotent := msg.MsgID != ""
	var last error
	for {
		if err := b.awaitConnected(ctx, false); err != nil {
			return bus.PublishAck{}, r.gaveUp(m.Subject, last, err)
		}
		r.newRound()
		actx, acancel := r.attemptContext(ctx, idempotent)
		ack, err := b.js.PublishMsg(actx, m, b.failFast)
		expired := actx.Err() != nil && ctx.Err() == nil
		acancel()
		if err == nil {
			return bus.PublishAck{Stream: ack.Stream, Sequence: ack.Sequence, Duplicate: ack.Duplicate}, nil
		}
		if ctx.Err() != nil {
			if last == nil {
				return bus.PublishAck{}, b.publishError(ctx, m, err, nil)
			}
			return bus.PublishAck{}, r.gaveUp(m.Subject, last, ctx.Err())
		}
		f, ferr := r.classify(ctx, m, err, expired)
		if f == failFinal || (f == failUnknown && !idempotent) {
			return bus.PublishAck{}, ferr
		}
		if expired {
			r.expired()
		}
		last = ferr
		if err := r.pauseAfter(ctx, f); err != nil {
			return bus.PublishAck{}, r.gaveUp(m.Subject, last, err)
		}
	}
}

// PublishBatch sends every message without waiting, then waits once for all
// acks, and sends again, in rounds, the messages Publish would try again,
// until ctx ends (30 seconds when ctx has no deadline). Each message's
// outcome is in its result; the returned error is for the call as a whole:
// the Bus closed, ctx done or the connection down until ctx ended before
// anything was sent (no results), or ctx ending before every message was
// settled (the results of the messages still unanswered then carry ctx's
// error and their last failure; they may still be stored).
func (b *Bus) PublishBatch(ctx context.Context, msgs []bus.OutgoingMessage) ([]bus.PublishResult, error) {
	if b.state.Load() != stateOpen {
		return nil, bus.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ctx, cancel := withPublishDeadline(ctx)
	defer cancel()
	p := &batch{b: b, r: b.newRetrier(), msgs: msgs,
		results: make([]bus.PublishResult, len(msgs)),
		sent:    make([]*nats.Msg, len(msgs)),
		last:    make([]error, len(msgs)),
	}
	todo := make([]int, 0, len(msgs))
	for i := range msgs {
		m, err := natsMsg(&msgs[i])
		if err != nil {
			p.results[i].Err = err
			continue
		}
		p.sent[i] = m
		todo = append(todo, i)
	}
	for round := 0; len(todo) > 0; round++ {
		if err := b.awaitConnected(ctx, false); err != nil {
			if round == 0 {
				return nil, err
			}
			p.giveUp(todo, err)
			return p.results, err
		}
		var err error
		if todo, err = p.round(ctx, todo); err != nil {
			return p.results, err
		}
	}
	return p.results, nil
}

// batch is one PublishBatch: its messages, their results, and the last
// failure of each message still being tried.
type batch struct {
	b       *Bus
	r       *retrier
	msgs    []bus.OutgoingMessage
	sent    []*nats.Msg
	results []bus.PublishResult
	last    []error
}

// round sends the messages of todo, waits for their acks, and returns the
// messages to send again after the pause their failures call for. An
// attempt at a message with a MsgID ends with the round's attempt timeout;
// one without waits for its answer (the publisher's async timeout bounds
// it). When ctx ends first, every message not yet settled gets its error
// and round returns ctx's error.
func (p *batch) round(ctx context.Context, todo []int) (next []int, err error) {
	p.r.newRound()
	deadline := make(chan struct{})
	timer := time.AfterFunc(p.r.timeout, func() { close(deadline) })
	defer timer.Stop()
	futures := make([]jetstream.PubAckFuture, len(todo))
	pause := failFinal
	expired := false
	fail := func(i int, err error, timedOut bool) {
		f, ferr := p.r.classify(ctx, p.sent[i], err, timedOut)
		if f == failFinal || (f == failUnknown && p.msgs[i].MsgID == "") {
			p.results[i].Err = ferr
			return
		}
		p.last[i] = ferr
		next = append(next, i)
		pause = max(pause, f)
	}
	for k, i := range todo {
		f, err := p.b.publishAsync(ctx, p.sent[i])
		if err != nil {
			if ctx.Err() != nil {
				p.giveUp(todo[k:], ctx.Err())
				p.settle(todo[:k], futures[:k], ctx.Err())
				return nil, ctx.Err()
			}
			fail(i, err, false)
			continue
		}
		futures[k] = f
	}
	for k, i := range todo {
		f := futures[k]
		if f == nil {
			continue
		}
		var timeout <-chan struct{}
		if p.msgs[i].MsgID != "" {
			timeout = deadline
		}
		// An answer that is there wins over a deadline that has passed.
		select {
		case ack := <-f.Ok():
			p.results[i] = bus.PublishResult{Ack: bus.PublishAck{Stream: ack.Stream, Sequence: ack.Sequence, Duplicate: ack.Duplicate}}
			continue
		case err := <-f.Err():
			fail(i, err, false)
			continue
		default:
		}
		select {
		case ack := <-f.Ok():
			p.results[i] = bus.PublishResult{Ack: bus.PublishAck{Stream: ack.Stream, Sequence: ack.Sequence, Duplicate: ack.Duplicate}}
		case err := <-f.Err():
			fail(i, err, false)
		case <-timeout:
			expired = true
			fail(i, context.DeadlineExceeded, true)
		case <-ctx.Done():
			p.settle(todo[k:], futures[k:], ctx.Err())
			p.giveUp(next, ctx.Err())
			return nil, ctx.Err()
		}
	}
	if expired {
		p.r.expired()
	}
	if err := p.r.pauseAfter(ctx, pause); err != nil {
		p.giveUp(next, err)
		return nil, err
	}
	return next, nil
}

// settle fills in the results of the messages of todo whose futures ctx
// cut short, keeping the outcome of those already answered.
func (p *batch) settle(todo []int, futures []jetstream.PubAckFuture, end error) {
	for k, i := range todo {
		f := futures[k]
		if f == nil {
			continue
		}
		select {
		case ack := <-f.Ok():
			p.results[i] = bus.PublishResult{Ack: bus.PublishAck{Stream: ack.Stream, Sequence: ack.Sequence, Duplicate: ack.Duplicate}}
		case err := <-f.Err():
			if errors.Is(err, jetstream.ErrNoStreamResponse) {
				err = unavailable(err, "")
			}
			p.results[i].Err = p.r.gaveUp(p.sent[i].Subject, fmt.Errorf("publish to %q: %w", p.sent[i].Subject, mapError(err)), end)
		default:
			p.results[i].Err = p.r.gaveUp(p.sent[i].Subject, p.last[i], end)
		}
	}
}

// giveUp sets the results of the messages of todo, whose next attempt end
// prevented.
func (p *batch) giveUp(todo []int, end error) {
	for _, i := range todo {
		p.results[i].Err = p.r.gaveUp(p.sent[i].Subject, p.last[i], end)
	}
}

// publishAsync sends m, waiting for room while the publisher has its
// maximum of unanswered messages.
func (b *Bus) publishAsync(ctx context.Context, m *nats.Msg) (jetstream.PubAckFuture, error) {
	for {
		f, err := b.js.PublishMsgAsync(m, b.failFast)
		if !errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
			return f, err
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
}

// publishError explains a failed publish of m. A message too large says
// its size and the limit it broke: the stream's max_msg_size or the
// server's max_payload. limits, when not nil, remembers the stream limits
// already looked up, by subject.
func (b *Bus) publishError(ctx context.Context, m *nats.Msg, err error, limits map[string]string) error {
	err = mapError(err)
	var be *brokerError
	if !errors.As(err, &be) {
		return fmt.Errorf("publish to %q: %w", m.Subject, err)
	}
	var apiErr *jetstream.APIError
	if errors.Is(err, bus.ErrWrongLastSequence) && errors.As(err, &apiErr) {
		// The server says "wrong last sequence: N", N being the stream's.
		if _, last, ok := strings.Cut(apiErr.Description, ": "); ok {
			err = be.withDetail(fmt.Sprintf("expected %s, the stream's last is %s", m.Header.Get(jetstream.ExpectedLastSeqHeader), last))
		}
	}
	if errors.Is(err, bus.ErrPayloadTooLarge) {
		limit, ok := limits[m.Subject]
		if !ok {
			limit = b.sizeLimit(ctx, m.Subject, be.cause)
			if limits != nil {
				limits[m.Subject] = limit
			}
		}
		if limit != "" {
			size := fmt.Sprintf("%d bytes", len(m.Data))
			if len(m.Header) > 0 {
				size += " and headers"
			}
			err = be.withDetail(size + "; " + limit)
		}
	}
	return fmt.Errorf("publish to %q: %w", m.Subject, err)
}

// sizeLimitLookup bounds the look-up of a stream's max_msg_size after a
// message was refused for its size, and of the stream of a subject after a
// publish nothing answered.
const sizeLimitLookup = 2 * time.Second

// sizeLimit words the limit a message to subject broke, or "" when it
// cannot be found out.
func (b *Bus) sizeLimit(ctx context.Context, subject string, cause error) string {
	if errors.Is(cause, nats.ErrMaxPayload) {
		return fmt.Sprintf("the server takes at most %d (max_payload, headers included)", b.nc.MaxPayload())
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sizeLimitLookup)
	defer cancel()
	name, err := b.js.StreamNameBySubject(ctx, subject)
	if err != nil {
		return ""
	}
	s, err := b.js.Stream(ctx, name)
	if err != nil || s.CachedInfo().Config.MaxMsgSize <= 0 {
		return ""
	}
	return fmt.Sprintf("stream %q takes at most %d (max_msg_size, headers included)", name, s.CachedInfo().Config.MaxMsgSize)
}

// natsMsg builds the NATS message for msg. The caller's headers are shared,
// not copied, unless the message needs headers of its own.
func natsMsg(msg *bus.OutgoingMessage) (*nats.Msg, error) {
	if problem := subjectProblem(msg.Subject, false); problem != "" {
		return nil, configError("subject", "%q %s", msg.Subject, problem)
	}
	m := &nats.Msg{Subject: msg.Subject, Data: msg.Payload}
	extra := 0
	for _, set := range [...]bool{msg.MsgID != "", msg.ExpectedLastSequence != 0, msg.ExpectedStream != "", msg.CorrelationID != ""} {
		if set {
			extra++
		}
	}
	if extra == 0 {
		m.Header = nats.Header(msg.Headers)
		return m, nil
	}
	h := make(nats.Header, len(msg.Headers)+extra)
	for k, v := range msg.Headers {
		h[k] = v
	}
	if msg.MsgID != "" {
		h[jetstream.MsgIDHeader] = []string{msg.MsgID}
	}
	if msg.ExpectedLastSequence != 0 {
		h[jetstream.ExpectedLastSeqHeader] = []string{strconv.FormatUint(msg.ExpectedLastSequence, 10)}
	}
	if msg.ExpectedStream != "" {
		h[jetstream.ExpectedStreamHeader] = []string{msg.ExpectedStream}
	}
	if msg.CorrelationID != "" {
		h[bus.CorrelationIDHeader] = []string{msg.CorrelationID}
	}
	m.Header = h
	return m, nil
}
