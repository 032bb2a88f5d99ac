package bus

import (
	"context"
	"time"
)

// Headers are message headers; a header may carry several values.
type Headers map[string][]string

// Get returns the first value of key, or "".
func (h Headers) Get(key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// Set replaces the values of key with value.
func (h Headers) Set(key, value string) { h[key] = []string{value} }

// CorrelationIDHeader carries OutgoingMessage.CorrelationID.
const CorrelationIDHeader = "Correlation-Id"

// OutgoingMessage is a message to publish.
type OutgoingMessage struct {
	Subject string
	Payload []byte
	Headers Headers
	// MsgID deduplicates: a second publish with the same id inside the
	// stream's duplicate window is acknowledged but not stored again.
	MsgID string
	// ExpectedLastSequence, when set, stores the message only if the stream's
	// last sequence is this one.
	ExpectedLastSequence uint64
	// ExpectedStream, when set, stores the message only in this stream.
	ExpectedStream string
	// CorrelationID is sent as the Correlation-Id header.
	CorrelationID string
}

// PublishAck is the broker's acknowledgement of a stored message.
type PublishAck struct {
	Stream   string
	Sequence uint64
	// Duplicate is true when MsgID had been seen and nothing new was stored.
	Duplicate bool
}

// PublishResult is one message's outcome in a batch publish.
type PublishResult struct {
	Ack PublishAck
	Err error
}

// Message is one delivery of a stored message.
type Message struct {
	Subject          string
	Payload          []byte
	Headers          Headers
	Stream           string
	Consumer         string
	StreamSequence   uint64
	ConsumerSequence uint64
	// DeliveryCount is 1 on the first delivery.
	DeliveryCount uint64
	PublishedAt   time.Time
	// AckToken settles this delivery through a Settler, from anywhere.
	AckToken string
	// Acknowledger settles this delivery directly; nil for messages that
	// were not received from a consumer.
	Acknowledger Acknowledger
}

// Acknowledger settles one delivery.
type Acknowledger interface {
	// Ack marks the message processed; it is not delivered again.
	Ack(ctx context.Context) error
	// Nak asks for redelivery, no sooner than delay (0: at once).
	Nak(ctx context.Context, delay time.Duration) error
	// Term gives the message up; it is never delivered again.
	Term(ctx context.Context, reason string) error
	// InProgress resets the ack deadline of the delivery.
	InProgress(ctx context.Context) error
}

func (m *Message) acknowledger() (Acknowledger, error) {
	if m.Acknowledger == nil {
		return nil, ErrNoAcknowledger
	}
	return m.Acknowledger, nil
}

// Ack marks the message processed.
func (m *Message) Ack(ctx context.Context) error {
	a, err := m.acknowledger()
	if err != nil {
		return err
	}
	return a.Ack(ctx)
}

// Nak asks for redelivery no sooner than delay.
func (m *Message) Nak(ctx context.Context, delay time.Duration) error {
	a, err := m.acknowledger()
	if err != nil {
		return err
	}
	return a.Nak(ctx, delay)
}

// Term gives the message up.
func (m *Message) Term(ctx context.Context, reason string) error {
	a, err := m.acknowledger()
	if err != nil {
		return err
	}
	return a.Term(ctx, reason)
}

// InProgress resets the ack deadline.
func (m *Message) InProgress(ctx context.Context) error {
	a, err := m.acknowledger()
	if err != nil {
		return err
	}
	return a.InProgress(ctx)
}
