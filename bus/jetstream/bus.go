package jetstream

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wfeventbus/eventbus/bus"
)

// backendName is the Backend of every token this package issues.
const backendName = "jetstream"

const (
	stateOpen int32 = iota
	stateClosing
	stateClosed
)

// Bus is bus.Bus on a NATS JetStream connection. It is safe for concurrent
// use.
type Bus struct {
	nc    *nats.Conn
	js    jetstream.JetStream
	codec *bus.TokenCodec
	// id is the Issuer of the Bus's tokens: a token of another Bus sharing
	// the key is settled differently from one of its own.
	id   string
	log  *slog.Logger
	opts options
	// failFast makes a publish that nothing answers fail at once, rather
	// than nats.go's default of asking twice more, 250 ms apart; see
	// Publish for how a stream between leaders is still waited for.
	failFast jetstream.PublishOpt

	tracker tracker

	// consumers caches consumer handles by stream and name, so that Fetch
	// and Subscribe do not ask the server for the consumer every time.
	consumersMu sync.RWMutex
	consumers   map[consumerKey]*consumerHandle

	subsMu sync.Mutex
	subs   map[*subscription]struct{}

	// state is stateOpen, stateClosing while Close lets handlers finish
	// (they may still settle), then stateClosed.
	state     atomic.Int32
	closeOnce sync.Once
	closeErr  error
}

var _ bus.Bus = (*Bus)(nil)

// New returns a Bus on nc. The Bus does not close nc unless WithOwnedConn is
// given. An option error wraps bus.ErrInvalidConfig.
func New(nc *nats.Conn, opts ...Option) (*Bus, error) {
	if nc == nil {
		return nil, fmt.Errorf("%w: connection: nil", bus.ErrInvalidConfig)
	}
	o := defaultOptions()
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	codec, err := bus.NewTokenCodec(o.tokenKey, o.previousTokenKeys...)
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(o.asyncMaxPending),
		jetstream.WithPublishAsyncTimeout(o.asyncTimeout),
	)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", bus.ErrInvalidConfig, err)
	}
	return &Bus{
		nc:        nc,
		js:        js,
		codec:     codec,
		id:        newID(),
		log:       o.logger,
		opts:      o,
		failFast:  jetstream.WithRetryAttempts(0),
		tracker:   newTracker(),
		consumers: make(map[consumerKey]*consumerHandle),
		subs:      make(map[*subscription]struct{}),
	}, nil
}

// newID returns a random identifier of 72 bits in 12 characters.
func newID() string {
	var b [9]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Close stops every subscription, giving running handlers the close timeout
// (WithCloseTimeout) to finish before their context is canceled, and closes
// the connection if the Bus owns it. Calls after Close fail with
// bus.ErrClosed. Close is idempotent.
func (b *Bus) Close() error {
	b.closeOnce.Do(func() {
		b.state.Store(stateClosing)
		defer b.state.Store(stateClosed)
		b.subsMu.Lock()
		subs := make([]*subscription, 0, len(b.subs))
		for s := range b.subs {
			subs = append(subs, s)
		}
		b.subsMu.Unlock()

		ctx, cancel := context.WithTimeout(context.Background(), b.opts.closeTimeout)
		defer cancel()
		var errs []error
		for _, s := range subs {
			if err := s.Stop(ctx); err != nil {
				errs = append(errs, err)
			}
		}
		if b.opts.ownsConn {
			b.nc.Close()
		} else {
			b.js.CleanupPublisher()
		}
		b.closeErr = errors.Join(errs...)
	})
	return b.closeErr
}

// ConnectionState reports the Bus's connection: the server it is on and how
// often it has reconnected.
func (b *Bus) ConnectionState() bus.ConnectionState {
	st := bus.ConnectionState{Reconnects: b.nc.Stats().Reconnects}
	if b.nc.IsConnected() {
		st.Server, st.URL = b.nc.ConnectedServerName(), b.nc.ConnectedUrlRedacted()
		// The connection may have dropped since IsConnected.
		st.Connected = st.URL != ""
	}
	return st
}

// ready fails fast when the Bus is closed or the connection is not up, so
// no call queues work on a connection that cannot carry it.
func (b *Bus) ready() error {
	if b.state.Load() != stateOpen {
		return bus.ErrClosed
	}
	return b.connected()
}

// settleReady is ready for settlements, which handlers may still make while
// Close waits for them.
func (b *Bus) settleReady() error {
	if b.state.Load() == stateClosed {
		return bus.ErrClosed
	}
	return b.connected()
}

// connected fails with bus.ErrNotConnected unless the connection is up.
func (b *Bus) connected() error {
	switch status := b.nc.Status(); status {
	case nats.CONNECTED:
		return nil
	case nats.CLOSED:
		return fmt.Errorf("%w: %w", bus.ErrNotConnected, nats.ErrConnectionClosed)
	default:
		return fmt.Errorf("%w: connection is %s", bus.ErrNotConnected, status)
	}
}

type consumerKey struct{ stream, name string }

// consumerHandle is a cached consumer with what deliveries need to know of
// its configuration.
type consumerHandle struct {
	c       jetstream.Consumer
	ackWait time.Duration
	// backoff, when set, replaces ackWait: the server waits backoff[n-1]
	// for the ack of delivery n, and the last entry for any later one.
	backoff []time.Duration
	ackNone bool
}

func newConsumerHandle(c jetstream.Consumer) *consumerHandle {
	h := &consumerHandle{c: c, ackWait: defaultAckWait}
	if info := c.CachedInfo(); info != nil {
		if info.Config.AckWait > 0 {
			h.ackWait = info.Config.AckWait
		}
		h.backoff = info.Config.BackOff
		h.ackNone = info.Config.AckPolicy == jetstream.AckNonePolicy
	}
	return h
}

// ackWaitOf is how long the server waits for the ack of a message's
// delivery number delivered (1 for the first) before it redelivers it.
func (h *consumerHandle) ackWaitOf(delivered uint64) time.Duration {
	n := uint64(len(h.backoff))
	if n == 0 {
		return h.ackWait
	}
	return h.backoff[min(max(delivered, 1), n)-1]
}

// shortestAckWait is the shortest wait of any delivery of the consumer.
func (h *consumerHandle) shortestAckWait() time.Duration {
	d := h.ackWait
	if len(h.backoff) > 0 {
		d = slices.Min(h.backoff)
	}
	return d
}

// consumer returns the handle of stream's consumer name, asking the server
// only when it is not cached.
func (b *Bus) consumer(ctx context.Context, stream, name string) (*consumerHandle, error) {
	key := consumerKey{stream, name}
	b.consumersMu.RLock()
	h := b.consumers[key]
	b.consumersMu.RUnlock()
	if h != nil {
		return h, nil
	}
	c, err := b.lookupConsumer(ctx, stream, name)
	if err != nil {
		return nil, fmt.Errorf("consumer %q on stream %q: %w", name, stream, mapError(err))
	}
	return b.cacheConsumer(stream, c), nil
}

func (b *Bus) cacheConsumer(stream string, c jetstream.Consumer) *consumerHandle {
	h := newConsumerHandle(c)
	b.consumersMu.Lock()
	b.consumers[consumerKey{stream, h.name()}] = h
	b.consumersMu.Unlock()
	return h
}

func (h *consumerHandle) name() string {
	if info := h.c.CachedInfo(); info != nil {
		return info.Name
	}
	return ""
}

// forgetConsumers drops cached handles of stream: of consumer name, or of
// every consumer when name is empty.
func (b *Bus) forgetConsumers(stream, name string) {
	b.consumersMu.Lock()
	defer b.consumersMu.Unlock()
	for k := range b.consumers {
		if k.stream == stream && (name == "" || k.name == name) {
			delete(b.consumers, k)
		}
	}
}
