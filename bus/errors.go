package bus

import "errors"

// Errors every backend returns, wrapped with context; match them with errors.Is.
var (
	// ErrNotFound: the stream or consumer does not exist. Create it (an
	// eventbus.stream or eventbus.consumer module) or fix the name.
	ErrNotFound = errors.New("not found")

	// ErrInvalidConfig: a stream, consumer or client configuration is
	// rejected; the wrapped message names the field.
	ErrInvalidConfig = errors.New("invalid configuration")

	// ErrInvalidToken: an ack token is malformed, was issued by another bus
	// or backend, or was altered. It can never be settled; drop it.
	ErrInvalidToken = errors.New("invalid ack token")

	// ErrStaleToken: an ack token was valid but its delivery is already
	// settled (acked or terminated) or has expired. The message is either
	// done or will be redelivered with a new token.
	ErrStaleToken = errors.New("stale ack token")

	// ErrPayloadTooLarge: the message is larger than the stream or server
	// accepts. Nothing was stored.
	ErrPayloadTooLarge = errors.New("payload too large")

	// ErrNotConnected: the broker cannot be reached. Nothing was done; retry
	// once it is back (the client reconnects on its own).
	ErrNotConnected = errors.New("not connected to the broker")

	// ErrUnavailable: the broker is reachable, but the stream or consumer
	// the call needs cannot serve it now: its servers are electing a
	// leader, are still starting, or too few of them run for a majority.
	// Nothing was done, unless the broker took the call and its answer did
	// not come: then a publish with a MsgID may be stored, and a
	// settlement applied, and repeating either is safe. Retry (Publish and
	// the settlements do so themselves until their context ends). Unlike
	// ErrNotFound, the stream or consumer exists.
	ErrUnavailable = errors.New("unavailable")

	// ErrNoStream: no stream captures the subject, so a publish would be
	// lost. Declare a stream whose subjects match.
	ErrNoStream = errors.New("no stream for subject")

	// ErrWrongLastSequence: a publish with an expected last sequence found
	// another one; nothing was stored.
	ErrWrongLastSequence = errors.New("wrong last sequence")

	// ErrClosed: the bus or subscription was closed.
	ErrClosed = errors.New("closed")

	// ErrNoAcknowledger: the message was not received from a consumer, so it
	// cannot be settled.
	ErrNoAcknowledger = errors.New("message cannot be settled")
)
