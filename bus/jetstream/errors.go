package jetstream

import (
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wfeventbus/eventbus/bus"
)

// This package adds no sentinel errors of its own: every failure a caller
// can react to is one of bus's (bus.ErrNotFound, bus.ErrInvalidConfig,
// bus.ErrInvalidToken, bus.ErrStaleToken, bus.ErrPayloadTooLarge,
// bus.ErrNotConnected, bus.ErrUnavailable, bus.ErrNoStream,
// bus.ErrWrongLastSequence, bus.ErrClosed), wrapped around the nats.go
// error that caused it.

// mapError translates a nats.go error into the bus sentinel it means,
// keeping the original in the chain. Errors with no bus meaning come back
// unchanged.
func mapError(err error) error {
	if err == nil {
		return nil
	}
	var sentinel error
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound),
		errors.Is(err, jetstream.ErrConsumerNotFound),
		errors.Is(err, jetstream.ErrConsumerDoesNotExist):
		sentinel = bus.ErrNotFound
	case errors.Is(err, jetstream.ErrStreamMessageExceedsMaximum),
		errors.Is(err, nats.ErrMaxPayload):
		sentinel = bus.ErrPayloadTooLarge
	case errors.Is(err, jetstream.ErrNoStreamResponse):
		sentinel = bus.ErrNoStream
	case hasErrorCode(err, jetstream.JSErrCodeStreamWrongLastSequence, jetstream.JSErrCodeStreamWrongLastSequenceConstant):
		sentinel = bus.ErrWrongLastSequence
	case waitCures(err):
		sentinel = bus.ErrUnavailable
	case errors.Is(err, nats.ErrConnectionClosed),
		errors.Is(err, nats.ErrConnectionReconnecting),
		errors.Is(err, nats.ErrDisconnected),
		errors.Is(err, nats.ErrConnectionDraining),
		errors.Is(err, nats.ErrNoServers),
		errors.Is(err, jetstream.ErrConnectionClosed):
		sentinel = bus.ErrNotConnected
	default:
		return err
	}
	if errors.Is(err, sentinel) {
		return err
	}
	return &brokerError{sentinel: sentinel, cause: err}
}

// brokerError is a nats.go error as a reader should see it: what it means
// to the bus first, then what the server or the client said, without
// nats.go's "nats: " prefixes (which its JetStream errors repeat) and with
// the server's error code last. detail, when set, says it instead.
type brokerError struct {
	sentinel error
	cause    error
	detail   string
}

func (e *brokerError) Error() string {
	if e.detail != "" {
		return e.sentinel.Error() + ": " + e.detail
	}
	return e.sentinel.Error() + ": " + describe(e.cause)
}

func (e *brokerError) Unwrap() []error { return []error{e.sentinel, e.cause} }

// withDetail returns e worded by detail instead of its cause.
func (e *brokerError) withDetail(detail string) *brokerError {
	d := *e
	d.detail = detail
	return &d
}

// describe words a nats.go error: a server API error by its description
// and code, anything else without the "nats: " prefixes.
func describe(err error) string {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.Description != "" {
		return fmt.Sprintf("%s (server error %d)", apiErr.Description, apiErr.ErrorCode)
	}
	msg := err.Error()
	for strings.HasPrefix(msg, "nats: ") {
		msg = strings.TrimPrefix(msg, "nats: ")
	}
	return msg
}

// hasErrorCode reports whether err carries a JetStream API error with one
// of codes.
func hasErrorCode(err error, codes ...jetstream.ErrorCode) bool {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	for _, c := range codes {
		if apiErr.ErrorCode == c {
			return true
		}
	}
	return false
}

// Server error codes that, answering a stream or consumer definition, mean
// the server refuses the configuration although they are not status 400:
// an invalid stream configuration or update, replicas on a single server,
// limits the server has no storage for, and consumer definitions it
// cannot create.
const (
	errCodeStreamInvalidConfig   jetstream.ErrorCode = 10052
	errCodeStreamUpdate          jetstream.ErrorCode = 10069
	errCodeReplicasNotSupported  jetstream.ErrorCode = 10074
	errCodeStorageExceeded       jetstream.ErrorCode = 10047
	errCodeInsufficientResources jetstream.ErrorCode = 10023
)

// isConfigRefusal reports whether the server refused a stream or consumer
// definition: any API status 400, or one of the codes above.
func isConfigRefusal(err error) bool {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	return apiErr.Code == 400 || hasErrorCode(err, errCodeStreamInvalidConfig, errCodeStreamUpdate,
		errCodeReplicasNotSupported, errCodeStorageExceeded, errCodeInsufficientResources, jetstream.JSErrCodeConsumerCreate)
}
