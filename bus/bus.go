package bus

import (
	"context"
	"time"
)

// Publisher stores messages in streams.
//
// Publish and PublishBatch ride out what a broker recovers from on its own
// — a lost connection, a stream electing a leader, a server starting — by
// trying again until the message is stored or ctx ends (ctx without a
// deadline: a backend's default bound, such as 30 seconds). A message that
// cannot have been stored (the broker was not reached, or nothing served
// its stream) is sent again whatever it carries. A message whose fate is
// unknown (the answer was lost, or did not come in time) is sent again only
// when it has a MsgID, which makes the broker store it once however often
// it arrives; without one the failure is returned, as a repeat could store
// it twice. Failures that waiting cannot cure come back at once:
// ErrNoStream (no stream captures the subject), ErrPayloadTooLarge,
// ErrWrongLastSequence, ErrInvalidConfig, ErrClosed. When ctx ends first
// the error wraps ctx's error and the last failure (ErrNotConnected,
// ErrUnavailable, or a timeout).
type Publisher interface {
	// Publish stores one message and waits for the broker's ack.
	Publish(ctx context.Context, msg OutgoingMessage) (PublishAck, error)
	// PublishBatch stores many messages with one wait for all acks. The
	// results are in the order of msgs; a failed message does not stop the
	// others. The error is for the call as a whole (for example ctx).
	PublishBatch(ctx context.Context, msgs []OutgoingMessage) ([]PublishResult, error)
}

// MaxFetchBatch is the largest batch a Fetch returns.
const MaxFetchBatch = 1000

// FetchOptions bound one Fetch.
type FetchOptions struct {
	// Batch is the most messages returned, 1 to MaxFetchBatch (default 1).
	Batch int
	// MaxWait is how long to wait for messages (default 5s).
	MaxWait time.Duration
}

// Fetcher pulls messages from a durable consumer.
type Fetcher interface {
	// Fetch returns up to opts.Batch messages, waiting at most
	// opts.MaxWait; an empty batch when nothing arrived in time.
	Fetch(ctx context.Context, stream, consumer string, opts FetchOptions) ([]*Message, error)
}

// Handler processes one delivery and settles it through msg's Acknowledger.
// While a delivery waits for a free handler and while its handler runs, the
// subscription keeps it from being redelivered, however long that takes; a
// delivery the handler leaves unsettled is redelivered the consumer's ack
// wait after the handler returned.
type Handler func(ctx context.Context, msg *Message)

// SubscribeOptions shape a continuous subscription.
type SubscribeOptions struct {
	// Concurrency is the most handlers running at once (default 1).
	Concurrency int
	// OrderedBySubject runs messages of one subject one at a time, in
	// stream order.
	OrderedBySubject bool
	// UnconfirmedAcks makes a handler's Message.Ack send the ack without
	// waiting for the broker to confirm it, so the handler returns at once.
	// Stop then waits until the broker has processed every such ack, so a
	// clean stop loses none; an ack lost with the connection means the
	// message is delivered again, as with any settlement the broker never
	// got. Settling by token (Settler) always waits for the broker.
	UnconfirmedAcks bool
}

// Subscription is a running subscription.
type Subscription interface {
	// Stop stops taking new messages and waits for running handlers until
	// ctx is done, then cancels their context. It is idempotent.
	Stop(ctx context.Context) error
}

// Subscriber runs a handler for every message of a durable consumer.
type Subscriber interface {
	Subscribe(ctx context.Context, stream, consumer string, h Handler, opts SubscribeOptions) (Subscription, error)
}

// Settler settles deliveries by their ack token. Ack, Nak and Term wait for
// the broker to confirm; while the consumer cannot answer (ErrUnavailable:
// its leader is being elected, its server is starting), they try again
// until ctx ends.
type Settler interface {
	Ack(ctx context.Context, token string) error
	Nak(ctx context.Context, token string, delay time.Duration) error
	Term(ctx context.Context, token string, reason string) error
	InProgress(ctx context.Context, token string) error
	// TokenSource returns the stream and consumer of the delivery token
	// names, or ok false when token is not one this Settler issued. It
	// does no I/O.
	TokenSource(token string) (stream, consumer string, ok bool)
}

// StreamManager creates, updates, inspects and deletes streams and consumers.
type StreamManager interface {
	// EnsureStream creates the stream or updates it to cfg.
	EnsureStream(ctx context.Context, cfg StreamConfig) (StreamInfo, error)
	StreamInfo(ctx context.Context, name string) (StreamInfo, error)
	Streams(ctx context.Context) ([]StreamInfo, error)
	DeleteStream(ctx context.Context, name string) error
	// EnsureConsumer creates the durable consumer or updates it to cfg.
	EnsureConsumer(ctx context.Context, cfg ConsumerConfig) (ConsumerInfo, error)
	ConsumerInfo(ctx context.Context, stream, name string) (ConsumerInfo, error)
	DeleteConsumer(ctx context.Context, stream, name string) error
}

// Bus is everything a backend offers.
type Bus interface {
	Publisher
	Fetcher
	Subscriber
	Settler
	StreamManager
	// Close stops subscriptions and releases the connection. Idempotent.
	Close() error
}
