package jetstream

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wfeventbus/eventbus/bus"
)

const (
	// defaultPublishTimeout bounds a publish, its retries included, whose
	// context has no deadline.
	defaultPublishTimeout = 30 * time.Second
	// retryPause is the first pause before sending again a message that
	// nothing served (a stream electing a leader, a server starting); it
	// doubles up to maxRetryPause. A leader is elected within seconds, so
	// the pause stays short enough to notice it soon.
	retryPause    = 50 * time.Millisecond
	maxRetryPause = time.Second
	// statusPoll bounds each wait for the connection to come back, so that
	// a Bus closed meanwhile is noticed.
	statusPoll = 250 * time.Millisecond
)

// failure is what a failed attempt says about its message.
type failure int

const (
	// failFinal: the message failed for good, or the failure cannot tell
	// whether it was stored and the message has no id to repeat it safely.
	failFinal failure = iota
	// failNotStored: sending again, after a pause, is safe: nothing can
	// have been stored, or the message has an id and the server is still
	// storing an earlier attempt at it.
	failNotStored
	// failUnknown: the message may have been stored; only a message with an
	// id is sent again.
	failUnknown
)

// retrier paces and bounds the attempts of one Publish or PublishBatch:
// the attempt timeouts, the pauses between attempts, and what the server
// said about the subjects that nothing answered on.
type retrier struct {
	b *Bus
	// timeout bounds an attempt at a message with an id; each attempt
	// that runs out of time doubles it, up to maxAttemptTimeout.
	timeout time.Duration
	pause   time.Duration
	// streams holds, by subject, the stream known to capture it ("" for
	// none); unknown holds the subjects the server could not say about.
	// Each subject is asked about once: a server that cannot say (its
	// meta leader is being elected too) takes seconds to fail to, and
	// asking again on every attempt would keep the publish from noticing
	// the leader it waits for.
	streams map[string]string
	unknown map[string]bool
	// limits holds the size limits looked up for publishError.
	limits   map[string]string
	attempts int
}

// newRetrier returns the retrier of one call; its maps are made when a
// failure first needs them, so that a publish that succeeds at once pays
// for none.
func (b *Bus) newRetrier() *retrier {
	return &retrier{b: b, timeout: firstAttemptTimeout, pause: retryPause}
}

// newRound counts a round of attempts.
func (r *retrier) newRound() { r.attempts++ }

// expired notes that an attempt ran out of time: the next gets twice as
// long, up to maxAttemptTimeout.
func (r *retrier) expired() { r.timeout = min(2*r.timeout, maxAttemptTimeout) }

// withPublishDeadline gives ctx the default bound of a publish when it has
// none.
func withPublishDeadline(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, defaultPublishTimeout)
}

// attemptContext bounds one attempt: a message with an id gets the current
// attempt timeout, since a lost answer is worth asking again for; one
// without waits as long as ctx allows.
func (r *retrier) attemptContext(ctx context.Context, idempotent bool) (context.Context, context.CancelFunc) {
	if !idempotent {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, r.timeout)
}

// classify tells what the failed attempt of m, whose attempt context ran
// out when expired is set, means: whether it can be sent again, and the
// error to report (now or when ctx ends). A publish nothing answered is
// looked into: when no stream captures the subject it failed for good
// (bus.ErrNoStream); when one does, its stream is between leaders or
// still starting, and the publish is sent again.
func (r *retrier) classify(ctx context.Context, m *nats.Msg, err error, expired bool) (failure, error) {
	if r.limits == nil {
		r.streams, r.unknown, r.limits = map[string]string{}, map[string]bool{}, map[string]string{}
	}
	switch {
	case errors.Is(err, jetstream.ErrNoStreamResponse), errors.Is(err, nats.ErrNoResponders):
		stream, covered, known := r.stream(ctx, m.Subject)
		if known && !covered {
			return failFinal, r.b.publishError(ctx, m, err, r.limits)
		}
		return failNotStored, fmt.Errorf("publish to %q: %w", m.Subject, unavailable(err, stream))
	case hasErrorCode(err, errCodeDuplicateInProcess):
		// The stream's leader holds an earlier attempt of this message
		// (same id) that its replicas have not yet agreed on: it has no
		// majority, or is still replicating. Sent again later, the
		// message is found stored (a duplicate) or is stored then; only a
		// message with an id gets this answer.
		return failNotStored, fmt.Errorf("publish to %q: %w", m.Subject, &brokerError{sentinel: bus.ErrUnavailable, cause: err, detail: fmt.Sprintf(
			"%s has not yet stored an earlier attempt of the message (id %q): too few of its servers run for a majority, or they are catching up (%s)",
			r.streamWords(m.Subject), m.Header.Get(jetstream.MsgIDHeader), describe(err))})
	case waitCures(err):
		return failNotStored, fmt.Errorf("publish to %q: %w", m.Subject, unavailable(err, ""))
	case expired && errors.Is(err, context.DeadlineExceeded):
		// Nothing answered in time: the answer was lost with a connection,
		// or the stream's leader cannot get a majority to store the
		// message. A message with an id is sent again.
		return failUnknown, fmt.Errorf("publish to %q: %w", m.Subject, &brokerError{sentinel: bus.ErrUnavailable, cause: err, detail: fmt.Sprintf(
			"%s did not answer within %s: the answer was lost, or its servers are electing a leader or too few of them run for a majority (%s)",
			r.streamWords(m.Subject), r.timeout, describe(err))})
	case errors.Is(err, jetstream.ErrAsyncPublishTimeout), errors.Is(err, nats.ErrTimeout):
		return failUnknown, fmt.Errorf("publish to %q: %w", m.Subject, err)
	case errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, jetstream.ErrConnectionClosed):
		return failFinal, r.b.publishError(ctx, m, err, r.limits)
	case errors.Is(err, nats.ErrDisconnected), errors.Is(err, nats.ErrConnectionReconnecting),
		errors.Is(err, nats.ErrNoServers), errors.Is(err, nats.ErrReconnectBufExceeded):
		return failUnknown, r.b.publishError(ctx, m, err, r.limits)
	}
	return failFinal, r.b.publishError(ctx, m, err, r.limits)
}

// streamWords names the stream known to capture subject, without asking
// the server.
func (r *retrier) streamWords(subject string) string {
	if s := r.streams[subject]; s != "" {
		return fmt.Sprintf("stream %q", s)
	}
	return "the stream capturing the subject"
}

// stream asks the server which stream captures subject, once: covered
// says whether one does, and stream names it, when the server could say
// (known). A server that cannot say leaves it unknown and covered: the
// publish is worth more attempts.
func (r *retrier) stream(ctx context.Context, subject string) (stream string, covered, known bool) {
	if s, ok := r.streams[subject]; ok {
		return s, s != "", true
	}
	if r.unknown[subject] {
		return "", true, false
	}
	lctx, cancel := context.WithTimeout(ctx, sizeLimitLookup)
	defer cancel()
	name, err := r.b.js.StreamNameBySubject(lctx, subject)
	switch {
	case err == nil:
		r.streams[subject] = name
		return name, true, true
	case errors.Is(err, jetstream.ErrStreamNotFound):
		r.streams[subject] = ""
		return "", false, true
	}
	r.unknown[subject] = true
	return "", true, false
}

// JetStream API error codes of refusals that waiting cures.
const (
	errCodeClusterNotAvailable jetstream.ErrorCode = 10008
	errCodeIncompleteResults   jetstream.ErrorCode = 10004
	errCodeNoPeers             jetstream.ErrorCode = 10005
	errCodeLastSeqNotReady     jetstream.ErrorCode = 10163
	// errCodeDuplicateInProcess answers a message whose id the stream's
	// leader holds from an earlier attempt not yet stored.
	errCodeDuplicateInProcess jetstream.ErrorCode = 10158
)

// waitCures reports a server's refusal that waiting cures: JetStream
// "temporarily unavailable" (a cluster without a meta leader, a server
// still starting), incomplete results from a cluster that lost a server,
// a placement that failed only because a server is offline (as during
// a rolling restart), and a message id whose earlier publish a clustered
// stream is still storing (asked again once it is stored, the server
// answers that the message is a duplicate).
func waitCures(err error) bool {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	switch apiErr.ErrorCode {
	case errCodeClusterNotAvailable, errCodeIncompleteResults, errCodeLastSeqNotReady, errCodeDuplicateInProcess:
		return true
	case errCodeNoPeers:
		return strings.Contains(apiErr.Description, "peer offline")
	}
	return false
}

// unavailable words err, a publish nothing served on a subject that stream
// (when known) captures, as bus.ErrUnavailable.
func unavailable(err error, stream string) error {
	what := "the stream capturing the subject"
	if stream != "" {
		what = fmt.Sprintf("stream %q", stream)
	}
	return &brokerError{sentinel: bus.ErrUnavailable, cause: err,
		detail: what + " did not answer: its servers are electing a leader, are starting, or too few of them run for a majority (" + describe(err) + ")"}
}

// pauseAfter pauses before sending again after a failure f, when nothing
// served the message: the longer the more often that happened. It returns
// ctx's error when ctx ends first.
func (r *retrier) pauseAfter(ctx context.Context, f failure) error {
	if f != failNotStored {
		return nil
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(r.pause):
	}
	r.pause = min(2*r.pause, maxRetryPause)
	return nil
}

// awaitConnected returns once the connection is up: at once when it is,
// else when it comes back. It fails with bus.ErrClosed when the Bus is
// closed (or, unless settling, closing: handlers may still settle while
// Close waits for them), with bus.ErrNotConnected when the connection is
// closed for good or ctx ends first (then wrapping ctx's error too).
func (b *Bus) awaitConnected(ctx context.Context, settling bool) error {
	for {
		if st := b.state.Load(); st == stateClosed || (st == stateClosing && !settling) {
			return bus.ErrClosed
		}
		err := b.connected()
		if err == nil {
			return nil
		}
		if b.nc.IsClosed() {
			return err
		}
		ch := b.nc.StatusChanged(nats.CONNECTED, nats.CLOSED)
		if b.nc.IsConnected() {
			b.nc.RemoveStatusListener(ch)
			continue
		}
		select {
		case <-ch:
		case <-time.After(statusPoll):
		case <-ctx.Done():
			b.nc.RemoveStatusListener(ch)
			return fmt.Errorf("%w (waited for the connection until: %w)", err, ctx.Err())
		}
		b.nc.RemoveStatusListener(ch)
	}
}

// retryError is a publish that ctx ended while it was being tried again:
// the last failure, and what ended it.
type retryError struct {
	last     error
	end      error
	attempts int
}

func (e *retryError) Error() string {
	attempts := "attempts"
	if e.attempts == 1 {
		attempts = "attempt"
	}
	return fmt.Sprintf("%v (gave up after %d %s: %v)", e.last, e.attempts, attempts, e.end)
}

func (e *retryError) Unwrap() []error { return []error{e.last, e.end} }

// gaveUp is the error of a publish stopped by end (ctx's error, the
// connection's, or the Bus closing) after last, the failure of its
// previous attempt; without a previous failure, end words it alone.
func (r *retrier) gaveUp(subject string, last, end error) error {
	if last != nil {
		return &retryError{last: last, end: end, attempts: r.attempts}
	}
	if errors.Is(end, bus.ErrNotConnected) || errors.Is(end, bus.ErrClosed) {
		return end
	}
	return fmt.Errorf("publish to %q: %w", subject, end)
}
