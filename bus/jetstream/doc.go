// Package jetstream implements bus.Bus on NATS JetStream, through nats.go's
// jetstream package.
//
// New wraps a connection the caller made (Connect makes one from plain
// settings, reconnecting forever); the Bus does not own it unless
// WithOwnedConn says so.
//
// Streams and consumers: EnsureStream and EnsureConsumer create or update
// (idempotent) and map every field of bus.StreamConfig and
// bus.ConsumerConfig. Configurations are checked first; a rejected one wraps
// bus.ErrInvalidConfig and names the field as the protobuf configuration
// spells it (max_msgs, filter_subjects, ...), and so does a definition the
// server refuses (a change of storage, say).
//
// Settlement: every delivered message carries an AckToken, signed with the
// Bus's token key (WithTokenKey; a random key otherwise). The Bus remembers
// the deliveries it handed out until they are settled or their ack wait
// (plus a little slack) has passed, and settles a token through the
// delivery it remembers. A token that was already acked, nak'd or
// terminated, whose ack wait has passed, or whose message was redelivered
// since, is bus.ErrStaleToken. InProgress keeps a token valid for another
// ack wait.
//
// Buses sharing the token key, the replicas of an app, settle each other's
// tokens: a token carries its issuer and the end of its delivery's ack
// wait, and another Bus settles it until then, once, as one of its own
// from that moment (InProgress there extends it). A token from a Bus with
// another key is bus.ErrInvalidToken. The server confirms an ack whether
// or not the delivery is still pending, so what one Bus cannot know is
// what another did with the delivery: a token settled on one replica and
// then on another is settled a second time to no effect, and one that its
// issuer kept in progress past its first ack wait is stale elsewhere.
//
// Settling speaks JetStream's acknowledgement protocol on the delivery's
// reply subject: Ack, Nak and Term wait for the server's confirmation (a
// double ack), Nak with a delay holds the redelivery back, Term carries its
// reason to the server's advisory; InProgress is not confirmed by the
// server. Deliveries of a consumer with ack_policy none need no settlement:
// their AckToken is empty, and their Acknowledger accepts Ack, Term and
// InProgress as the no-ops they are and refuses Nak.
//
// Subscribe pulls batches of a couple of messages per handler into an inbox
// of its own, sending the next pull once the last is handed out, so it never
// holds much more than it can run, and keeps every message it holds or
// runs from being redelivered until its handler returns. Stop waits until
// the server has dropped the subscription's interest, so no pull of a
// stopped subscription lingers to swallow later messages, and hands the
// messages no handler started back for immediate redelivery, waiting until
// the server has them.
//
// Publishing rides out what a cluster recovers from on its own: Publish and
// PublishBatch wait for a lost connection to come back, send again a
// message that nothing served because its stream is electing a leader (a
// publish that no server answers on a subject a stream captures; on a
// subject no stream captures it is bus.ErrNoStream at once), and send again
// a message with a MsgID whose answer was lost, or that the stream's leader
// still holds from an earlier attempt it has no majority to store, until
// their context ends (30 seconds without a deadline; then
// bus.ErrUnavailable). Ack, Nak and Term likewise send again
// while the consumer's leader is being elected, and say
// bus.ErrUnavailable, not bus.ErrNotFound, when their context ends first.
//
// Errors map to the bus sentinels (bus.ErrNotFound, bus.ErrNoStream,
// bus.ErrPayloadTooLarge, bus.ErrWrongLastSequence, bus.ErrNotConnected,
// bus.ErrUnavailable, ...) with the nats.go error kept in the chain. While
// the connection is down, calls other than publishes fail at once with
// bus.ErrNotConnected rather than queueing work the caller cannot see;
// subscriptions resume by themselves once the client has reconnected.
package jetstream
