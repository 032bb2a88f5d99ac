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

// Publish stores msg and waits for the stream's ack. A subject no stream
// captures is bus.ErrNoStream, reported at once; a message larger than the
// stream or server allows is bus.ErrPayloadTooLarge; a failed
// ExpectedLastSequence is bus.ErrWrongLastSequence.
func (b *Bus) Publish(ctx context.Context, msg bus.OutgoingMessage) (bus.PublishAck, error) {
	m, err := natsMsg(&msg)
	if err != nil {
		return bus.PublishAck{}, err
	}
	if err := b.ready(); err != nil {
		return bus.PublishAck{}, err
	}
	ack, err := b.js.PublishMsg(ctx, m, b.failFast)
	if errors.Is(err, jetstream.ErrNoStreamResponse) && b.streamCovers(ctx, m.Subject, nil) {
		ack, err = b.js.PublishMsg(ctx, m)
	}
	if err != nil {
		return bus.PublishAck{}, b.publishError(ctx, m, err, nil)
	}
	return bus.PublishAck{Stream: ack.Stream, Sequence: ack.Sequence, Duplicate: ack.Duplicate}, nil
}

// PublishBatch sends every message without waiting, then waits once for all
// acks. Each message's outcome is in its result; the returned error is for
// the call as a whole: the Bus not being ready, ctx done before anything was
// sent (no results), or ctx ending before every ack arrived (the results of
// the messages still unanswered then carry ctx's error; they may still be
// stored).
func (b *Bus) PublishBatch(ctx context.Context, msgs []bus.OutgoingMessage) ([]bus.PublishResult, error) {
	if err := b.ready(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	results := make([]bus.PublishResult, len(msgs))
	futures := make([]jetstream.PubAckFuture, len(msgs))
	sent := make([]*nats.Msg, len(msgs))
	limits := map[string]string{}
	for i := range msgs {
		m, err := natsMsg(&msgs[i])
		if err != nil {
			results[i].Err = err
			continue
		}
		f, err := b.publishAsync(ctx, m)
		if err != nil {
			if ctxErr := ctx.Err(); ctxErr != nil {
				for j := i; j < len(msgs); j++ {
					results[j].Err = ctxErr
				}
				break
			}
			results[i].Err = b.publishError(ctx, m, err, limits)
			continue
		}
		futures[i], sent[i] = f, m
	}
	covered := map[string]bool{}
	for i, f := range futures {
		if f == nil {
			continue
		}
		select {
		case ack := <-f.Ok():
			results[i].Ack = bus.PublishAck{Stream: ack.Stream, Sequence: ack.Sequence, Duplicate: ack.Duplicate}
		case err := <-f.Err():
			if errors.Is(err, jetstream.ErrNoStreamResponse) && b.streamCovers(ctx, sent[i].Subject, covered) {
				var ack *jetstream.PubAck
				if ack, err = b.js.PublishMsg(ctx, sent[i]); err == nil {
					results[i].Ack = bus.PublishAck{Stream: ack.Stream, Sequence: ack.Sequence, Duplicate: ack.Duplicate}
					continue
				}
			}
			results[i].Err = b.publishError(ctx, sent[i], err, limits)
		case <-ctx.Done():
			settleRemaining(ctx.Err(), futures[i:], results[i:], msgs[i:])
			return results, ctx.Err()
		}
	}
	return results, nil
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

// settleRemaining fills in the results of futures that ctx cut short,
// keeping the outcome of those already answered.
func settleRemaining(ctxErr error, futures []jetstream.PubAckFuture, results []bus.PublishResult, msgs []bus.OutgoingMessage) {
	for i, f := range futures {
		if f == nil {
			continue
		}
		select {
		case ack := <-f.Ok():
			results[i].Ack = bus.PublishAck{Stream: ack.Stream, Sequence: ack.Sequence, Duplicate: ack.Duplicate}
		case err := <-f.Err():
			results[i].Err = fmt.Errorf("publish to %q: %w", msgs[i].Subject, mapError(err))
		default:
			results[i].Err = ctxErr
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

// streamCovers reports whether a stream captures subject, after a publish
// to it that nothing answered: when none does, the publish has failed for
// good; when one does, it was between leaders or still starting, and the
// publish is worth the waits nats.go makes for that. It errs towards
// waiting when the server cannot say. known, when not nil, remembers the
// answers by subject.
func (b *Bus) streamCovers(ctx context.Context, subject string, known map[string]bool) bool {
	if covers, ok := known[subject]; ok {
		return covers
	}
	ctx, cancel := context.WithTimeout(ctx, sizeLimitLookup)
	defer cancel()
	_, err := b.js.StreamNameBySubject(ctx, subject)
	covers := !errors.Is(err, jetstream.ErrStreamNotFound)
	if known != nil {
		known[subject] = covers
	}
	return covers
}

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
