package bus

import "time"

// Retention says when a stream removes messages.
type Retention int

const (
	// RetentionLimits keeps messages until a limit (count, bytes, age) is hit.
	RetentionLimits Retention = iota
	// RetentionInterest keeps messages while a consumer has not acked them.
	RetentionInterest
	// RetentionWorkQueue removes a message once any consumer acks it.
	RetentionWorkQueue
)

// Storage is where a stream keeps its messages.
type Storage int

const (
	// StorageFile keeps messages on disk; they survive a restart.
	StorageFile Storage = iota
	// StorageMemory keeps messages in memory only.
	StorageMemory
)

// Discard says what a full stream does with a new message.
type Discard int

const (
	// DiscardOld removes the oldest messages to make room.
	DiscardOld Discard = iota
	// DiscardNew refuses the new message.
	DiscardNew
)

// DeliverPolicy says where a new consumer starts.
type DeliverPolicy int

const (
	DeliverAll DeliverPolicy = iota
	DeliverLast
	DeliverNew
	DeliverByStartSequence
	DeliverByStartTime
	DeliverLastPerSubject
)

// AckPolicy says which messages need an ack.
type AckPolicy int

const (
	// AckExplicit: every message is acked on its own.
	AckExplicit AckPolicy = iota
	// AckNone: nothing is acked; delivery is at most once.
	AckNone
	// AckAll: an ack covers every earlier message too.
	AckAll
)

// StreamConfig describes a stream. Zero values mean the backend's default.
type StreamConfig struct {
	Name            string
	Description     string
	Subjects        []string
	Retention       Retention
	Storage         Storage
	Replicas        int
	MaxMsgs         int64
	MaxBytes        int64
	MaxAge          time.Duration
	MaxMsgSize      int32
	Discard         Discard
	DuplicateWindow time.Duration
}

// StreamInfo is a stream's configuration and state.
type StreamInfo struct {
	Config    StreamConfig
	Messages  uint64
	Bytes     uint64
	FirstSeq  uint64
	LastSeq   uint64
	Consumers int
}

// ConsumerConfig describes a durable pull consumer. Zero values mean the
// backend's default.
type ConsumerConfig struct {
	// Durable is the consumer's name.
	Durable        string
	Stream         string
	Description    string
	FilterSubjects []string
	DeliverPolicy  DeliverPolicy
	OptStartSeq    uint64
	OptStartTime   time.Time
	AckPolicy      AckPolicy
	AckWait        time.Duration
	// MaxDeliver bounds deliveries of one message; 0 or -1 is unlimited.
	MaxDeliver int
	// Backoff gives the redelivery delay after each delivery that timed out.
	Backoff       []time.Duration
	MaxAckPending int
}

// ConsumerInfo is a consumer's configuration and state.
type ConsumerInfo struct {
	Config ConsumerConfig
	// NumPending counts messages not yet delivered.
	NumPending uint64
	// NumAckPending counts delivered messages not yet acked.
	NumAckPending  int
	NumRedelivered int
}
