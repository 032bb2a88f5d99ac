// Package postgres implements bus.Bus on PostgreSQL through pgx, for teams
// that run PostgreSQL and want durable messaging without a broker.
//
// Connect makes a connection pool from a Config (DSN, schema, poll
// interval, pool size, poll-only mode); New uses a pool the caller has.
// Both create and migrate the backend's tables in Config.Schema (default
// "eventbus") before they return: versioned migrations in one transaction
// under an advisory lock, so any number of processes may start at once.
//
// Streams and consumers mean what they mean on JetStream, and their
// configurations are checked the same way (errors wrap bus.ErrInvalidConfig
// and name the field): subjects with NATS wildcards, one stream at most per
// subject; limits, interest and workqueue retention; max_msgs, max_bytes
// and max_age enforced in the background (WithMaintenanceInterval), discard
// new refusing at once; a duplicate window for message ids (two minutes by
// default); expected last sequence and expected stream; durable consumers
// with filters, every deliver policy, ack policies, ack_wait as a
// visibility timeout, max_deliver, backoff and max_ack_pending. Storage and
// replicas are kept as configured; durability is the database's.
//
// Sequences: a stream's sequence numbers are assigned under its row lock,
// which the publishing transaction holds until it commits, so they become
// visible in order and without gaps, and a consumer's cursor can never pass
// over a message whose transaction commits late. Concurrent publishes of
// one process share transactions (up to 1000 messages), so publishers
// share the commit and its WAL flush instead of queueing for the lock.
// PublishTx publishes inside the caller's own transaction.
//
// Consuming: fetching locks the consumer's row for its short transaction,
// so pullers of one consumer in any number of processes share its messages
// and never hold the same one at once. A delivery is invisible until its
// ack wait (or nak delay, or backoff step) passes; a process that dies
// with messages in flight has them redelivered then. Acks of one process
// share statements, and fetches and settlements commit without waiting for
// the WAL flush: a crash of the database may only cause redeliveries.
//
// Waking: a fetch that finds nothing waits. Publishes of the same process
// wake it at once; other processes' wake it through LISTEN/NOTIFY on one
// connection per Bus. Publishing transactions do not NOTIFY (PostgreSQL
// serialises notifying commits): each stream that got messages is
// notified once, after the commit, from a transaction of the Bus's own,
// however many messages it got meanwhile. Polling every PollInterval, and
// when a redelivery falls due, covers lost notifications, and is all there
// is with PollOnly (for PgBouncer in transaction pooling mode).
//
// Settlement: every delivered message carries an AckToken signed with the
// Bus's token key (WithTokenKey; a random key otherwise). It names the
// delivery in the database, so any Bus on the same schema with the same key
// settles it. A token whose delivery was settled, nak'd or redelivered
// since is bus.ErrStaleToken; an altered or foreign one bus.ErrInvalidToken.
// A delivery whose ack wait passed but that has not been redelivered yet is
// still settled by its token. Deliveries of a consumer with ack_policy none
// need no settlement: their AckToken is empty, and their Acknowledger
// accepts Ack, Term and InProgress as the no-ops they are and refuses Nak.
//
// Errors map to the bus sentinels; a database that cannot be reached (down,
// restarting, refusing connections) is bus.ErrNotConnected, and the pool
// and subscriptions reconnect by themselves.
package postgres
