// Package jetstream implements bus.Bus on NATS JetStream, through nats.go's
// jetstream package.
//
// New wraps a connection the caller made (Connect makes one from plain
// settings, reconnecting forever); the Bus does not own it unless
// WithOwnedConn says so.
//
// Streams and consumers: EnsureStream and EnsureConsumer create or update
// (idempotent) and map every field of bus.StreamConfig and
// bus.ConsumerConfig; configurations are checked first and a rejected one
// wraps bus.ErrInvalidConfig and names the field as the protobuf
// configuration spells it (max_msgs, filter_subjects, ...).
//
// Settlement: every delivered message carries an AckToken, signed with the
// Bus's token key (WithTokenKey; a random key otherwise). The Bus remembers
// the deliveries it handed out until they are settled or their ack wait has
// passed, and settles a token through the delivery it remembers: a token
// that was already acked, nak'd or terminated, whose ack wait has passed, or
// whose message was redelivered since, is bus.ErrStaleToken. Only the Bus
// that received a delivery settles its token; another Bus, even one sharing
// the key, reports it stale. The server cannot tell a live delivery from a
// settled one, so settling a token it does not remember would act blindly.
// Ack waits for the server's confirmation; Nak, Term and InProgress are sent
// without one, as JetStream defines them.
//
// Deliveries of a consumer with ack_policy none need no settlement: their
// AckToken is empty, and their Acknowledger accepts Ack, Term and
// InProgress as the no-ops they are and refuses Nak.
//
// Errors map to the bus sentinels (bus.ErrNotFound, bus.ErrNoStream,
// bus.ErrPayloadTooLarge, bus.ErrWrongLastSequence, bus.ErrNotConnected,
// ...) with the nats.go error kept in the chain. While the connection is
// down, calls fail at once with bus.ErrNotConnected rather than queueing
// work the caller cannot see; subscriptions resume by themselves once the
// client has reconnected.
package jetstream
