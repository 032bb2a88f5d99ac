package jetstream

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
)

const (
	// firstAttemptTimeout bounds the first attempt of a JetStream API
	// request; each retry gets twice the time of the one before, up to
	// maxAttemptTimeout. A request sent as the connection drops can lose
	// its reply, and without a bound per attempt the caller would wait out
	// its whole context for an answer that never comes.
	firstAttemptTimeout = 2 * time.Second
	maxAttemptTimeout   = 16 * time.Second
	// defaultRequestTimeout bounds a request, retries included, whose
	// context has no deadline.
	defaultRequestTimeout = 30 * time.Second
	// noRespondersPause is the first pause before asking again when nothing
	// answers on the JetStream API, as while a restarted server brings
	// JetStream back up; it doubles up to firstAttemptTimeout. Past
	// noRespondersLimit of such answers in a row the request fails: the
	// server most likely has no JetStream at all.
	noRespondersPause = 50 * time.Millisecond
	noRespondersLimit = 8 * time.Second
)

// retried runs do, one idempotent JetStream API request, and repeats it
// while ctx allows when an attempt got no answer (its reply was lost, or
// nothing served the API yet) or a refusal that waiting cures (waitCures).
// Each attempt has its own deadline. A retry on a connection that is down
// fails at once with bus.ErrNotConnected, as a call made then would. do
// learns which attempt it runs (1 for the first), so that an operation can
// tell a retry from a first try.
func retried[T any](ctx context.Context, b *Bus, do func(ctx context.Context, attempt int) (T, error)) (T, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultRequestTimeout)
		defer cancel()
	}
	timeout, pause := firstAttemptTimeout, noRespondersPause
	var silentSince time.Time
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, timeout)
		v, err := do(actx, attempt)
		attemptExpired := actx.Err() != nil
		cancel()
		if err == nil || ctx.Err() != nil {
			return v, err
		}
		noResponders := errors.Is(err, nats.ErrNoResponders)
		if !noResponders {
			silentSince = time.Time{}
		} else if silentSince.IsZero() {
			silentSince = time.Now()
		}
		switch {
		case attemptExpired && errors.Is(err, context.DeadlineExceeded):
			timeout = min(2*timeout, maxAttemptTimeout)
		case noResponders && time.Since(silentSince) < noRespondersLimit, waitCures(err):
			select {
			case <-ctx.Done():
				return v, err
			case <-time.After(pause):
			}
			pause = min(2*pause, firstAttemptTimeout)
		default:
			return v, err
		}
		if cerr := b.connected(); cerr != nil {
			var zero T
			return zero, cerr
		}
	}
}
