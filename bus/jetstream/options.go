package jetstream

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/wfeventbus/eventbus/bus"
)

// Defaults of the options.
const (
	DefaultPublishAsyncMaxPending = 4000
	DefaultPublishAsyncTimeout    = 30 * time.Second
	DefaultCloseTimeout           = 5 * time.Second
)

// Option configures a Bus. Options check their own argument; New reports
// the first bad one, wrapping bus.ErrInvalidConfig.
type Option func(*options) error

type options struct {
	tokenKey          []byte
	previousTokenKeys [][]byte
	logger            *slog.Logger
	asyncMaxPending   int
	asyncTimeout      time.Duration
	closeTimeout      time.Duration
	ownsConn          bool
}

func defaultOptions() options {
	return options{
		logger:          slog.New(slog.DiscardHandler),
		asyncMaxPending: DefaultPublishAsyncMaxPending,
		asyncTimeout:    DefaultPublishAsyncTimeout,
		closeTimeout:    DefaultCloseTimeout,
	}
}

// WithTokenKey signs ack tokens with key and accepts tokens signed with key
// or with any of previous, the keys being rotated out (each at least
// bus.MinTokenKeySize bytes). Buses sharing the key, the replicas of an
// app, settle each other's tokens; without it the Bus draws a random key,
// so its tokens mean nothing to any other Bus.
func WithTokenKey(key []byte, previous ...[]byte) Option {
	return func(o *options) error {
		if key == nil {
			key = []byte{}
		}
		// A codec built from the keys is the check of them.
		if _, err := bus.NewTokenCodec(key, previous...); err != nil {
			return err
		}
		o.tokenKey = append([]byte(nil), key...)
		o.previousTokenKeys = make([][]byte, len(previous))
		for i, p := range previous {
			o.previousTokenKeys[i] = append([]byte(nil), p...)
		}
		return nil
	}
}

// WithLogger receives what the Bus has to report outside a call's result,
// such as a subscription that lost its consumer. nil discards.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			l = slog.New(slog.DiscardHandler)
		}
		o.logger = l
		return nil
	}
}

// WithPublishAsyncMaxPending bounds the publishes of PublishBatch waiting for
// their ack at once (default 4000); a larger batch waits for room.
func WithPublishAsyncMaxPending(n int) Option {
	return func(o *options) error {
		if n < 1 {
			return fmt.Errorf("%w: publish async max pending: must be at least 1, got %d", bus.ErrInvalidConfig, n)
		}
		o.asyncMaxPending = n
		return nil
	}
}

// WithPublishAsyncTimeout bounds the wait for one message's ack in
// PublishBatch (default 30s), whatever the caller's context says.
func WithPublishAsyncTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("%w: publish async timeout: must be positive, got %s", bus.ErrInvalidConfig, d)
		}
		o.asyncTimeout = d
		return nil
	}
}

// WithCloseTimeout is how long Close lets running handlers finish before it
// cancels their context (default 5s).
func WithCloseTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d < 0 {
			return fmt.Errorf("%w: close timeout: must not be negative, got %s", bus.ErrInvalidConfig, d)
		}
		o.closeTimeout = d
		return nil
	}
}

// WithOwnedConn hands the connection to the Bus: Close closes it too.
func WithOwnedConn() Option {
	return func(o *options) error {
		o.ownsConn = true
		return nil
	}
}
