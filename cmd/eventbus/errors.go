package main

import "errors"

// Errors the commands return, wrapped with the details of the failure; the
// exit code and the message printed by execute depend on which one it is.
var (
	// errUsage: the command line is wrong (an unknown flag, a bad flag value,
	// a missing argument). Nothing was done; the exit code is 2.
	errUsage = errors.New("invalid usage")

	// errNoServer: nothing answers at the NATS URL. Start a server (eventbus
	// server) or point --url / NATS_URL at one.
	errNoServer = errors.New("no NATS server")

	// errNoDatabase: no PostgreSQL server answers at the DSN, or the
	// database it names does not exist. Start one or correct --url /
	// DATABASE_URL.
	errNoDatabase = errors.New("no PostgreSQL database")

	// errNoSchema: the database has no eventbus tables in the schema: no
	// app with a postgres broker has started on it, or the broker sets
	// another schema (pass --schema).
	errNoSchema = errors.New("no eventbus schema")

	// errAuth: the server refused the connection's credentials.
	errAuth = errors.New("authorization refused")

	// errNoJetStream: the server answers but has JetStream disabled, so
	// there are no streams to publish to or list.
	errNoJetStream = errors.New("JetStream is not enabled on the server")

	// errNoStream: no stream captures the subject, so a publish would be
	// lost. A stream whose subjects match must be declared first.
	errNoStream = errors.New("no stream captures the subject")

	// errStreamNotFound: the stream named with --stream does not exist.
	errStreamNotFound = errors.New("stream not found")

	// errDurableStart: --deliver asks a durable that exists to start
	// somewhere else than it does, which the server cannot change. Leave
	// out --deliver to resume the durable, or name a new one.
	errDurableStart = errors.New("the durable's start cannot change")

	// errCaptured: a stream captures the subject, yet the publish got no
	// answer (its stream may be between leaders); pub publishes again,
	// waiting for the stream this time.
	errCaptured = errors.New("a stream captures the subject but did not answer")
)
