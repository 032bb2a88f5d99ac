package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/nats-io/nats.go"

	"github.com/wfeventbus/eventbus/bus"
	"github.com/wfeventbus/eventbus/bus/postgres"
)

// The commands' side of a postgres broker: the same output as on NATS,
// read from and written to the database through bus/postgres.

// pgReadWait is how long one read of sub waits before it looks again;
// it only bounds how long an interrupt may go unnoticed by the database
// side, which ctx ends at once anyway.
const pgReadWait = 30 * time.Second

// connectPostgres opens the broker's schema in the database tgt names.
// The schema must exist: the commands look at what apps made and never
// create a broker's tables themselves. listen is whether the Bus should
// be woken by other processes' publishes (sub), or only poll.
func (c *connFlags) connectPostgres(ctx context.Context, tgt target, listen bool) (*postgres.Bus, string, error) {
	schema := cmp.Or(c.schema, postgres.DefaultSchema)
	cfg := postgres.Config{DSN: tgt.url, Schema: schema, MaxConns: 4, PollOnly: !listen, ApplicationName: "eventbus-cli"}
	if err := cfg.Validate(); err != nil {
		return nil, "", fmt.Errorf("%w: %v", errUsage, err)
	}
	cctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	conn, err := pgx.Connect(cctx, tgt.url)
	if err != nil {
		return nil, "", pgConnectError(tgt, err)
	}
	var exists bool
	err = conn.QueryRow(cctx, `SELECT to_regclass(quote_ident($1) || '.streams') IS NOT NULL`, schema).Scan(&exists)
	_ = conn.Close(context.WithoutCancel(ctx))
	if err != nil {
		return nil, "", pgConnectError(tgt, err)
	}
	if !exists {
		return nil, "", fmt.Errorf("%w %q in the database at %s: an app with a postgres broker makes it when it starts; pass --schema if its broker sets schema",
			errNoSchema, schema, tgt.shown())
	}
	b, err := postgres.Connect(cctx, cfg)
	if err != nil {
		return nil, "", pgConnectError(tgt, err)
	}
	return b, schema, nil
}

// pgConnectError words a failed connection to PostgreSQL for a person.
func pgConnectError(tgt target, err error) error {
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr) && strings.HasPrefix(pgErr.Code, "28"):
		// Class 28: invalid authorization specification.
		return fmt.Errorf("%w by the PostgreSQL server at %s (%s): check the user and password of the DSN", errAuth, tgt.shown(), pgErr.Message)
	case errors.As(err, &pgErr) && pgErr.Code == "3D000":
		return fmt.Errorf("%w at %s: %s: create it (createdb) or correct the DSN", errNoDatabase, tgt.shown(), pgErr.Message)
	case errors.Is(err, bus.ErrNotConnected) || isUnreachable(err):
		return fmt.Errorf("%w at %s (from %s): start it, or pass --url / set DATABASE_URL", errNoDatabase, tgt.shown(), tgt.from)
	}
	return fmt.Errorf("PostgreSQL at %s: %w", tgt.shown(), err)
}

// isUnreachable reports an error of pgx.Connect that means no server
// answered.
func isUnreachable(err error) bool {
	var connErr *pgconn.ConnectError
	var pgErr *pgconn.PgError
	return errors.As(err, &connErr) && !errors.As(err, &pgErr)
}

// runPubPostgres is pub on a postgres broker.
func runPubPostgres(ctx context.Context, d deps, o *pubOptions, tgt target, subject string, header nats.Header, data []byte) error {
	b, _, err := o.conn.connectPostgres(ctx, tgt, false)
	if err != nil {
		return err
	}
	defer b.Close()
	for range o.count {
		msg := bus.OutgoingMessage{Subject: subject, Payload: data, Headers: bus.Headers(cloneHeader(header)), MsgID: o.msgID}
		pubCtx, cancel := context.WithTimeout(ctx, o.timeout)
		ack, err := b.Publish(pubCtx, msg)
		cancel()
		switch {
		case errors.Is(err, bus.ErrNoStream):
			return fmt.Errorf("%w %q: declare a stream whose subjects match it before publishing", errNoStream, subject)
		case err != nil:
			return fmt.Errorf("publish to %s: %w", subject, err)
		}
		dup := ""
		if ack.Duplicate {
			dup = " (duplicate)"
		}
		fmt.Fprintf(d.stdout, "published to %s seq %d%s\n", ack.Stream, ack.Sequence, dup)
	}
	return nil
}

// runStreamsPostgres is streams on a postgres broker. The database keeps
// the messages: there is no leader, and no replica lags.
func runStreamsPostgres(ctx context.Context, d deps, conn *connFlags, tgt target) error {
	b, schema, err := conn.connectPostgres(ctx, tgt, false)
	if err != nil {
		return err
	}
	defer b.Close()
	infos, err := b.Streams(ctx)
	if err != nil {
		return fmt.Errorf("list streams: %w", err)
	}
	if len(infos) == 0 {
		fmt.Fprintf(d.stdout, "no streams on %s (schema %s)\n", tgt.shown(), schema)
		return nil
	}
	tw := tabwriter.NewWriter(d.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSUBJECTS\tMESSAGES\tBYTES\tCONSUMERS\tREPLICAS\tLEADER\tLAGGING")
	for _, info := range infos {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t-\t-\n",
			info.Config.Name, strings.Join(info.Config.Subjects, ","),
			info.Messages, info.Bytes, info.Consumers, max(info.Config.Replicas, 1))
	}
	return tw.Flush()
}

// runSubPostgres is sub on a postgres broker. PostgreSQL has no plain
// subscriptions: without --stream or --durable, sub reads the stream that
// stores SUBJECT from its end, so it prints what is published from now on
// as it does on NATS. With --stream it reads stored messages without a
// consumer; with --durable through that durable consumer, acking each
// message it prints.
func runSubPostgres(ctx context.Context, d deps, o *subOptions, tgt target, subject string) error {
	b, _, err := o.conn.connectPostgres(ctx, tgt, true)
	if err != nil {
		return err
	}
	defer b.Close()
	name := o.stream
	if name == "" {
		name, err = b.StreamNameBySubject(ctx, subject)
		switch {
		case errors.Is(err, bus.ErrNoStream) && !o.jetStreamMode():
			return fmt.Errorf("%w %q: on PostgreSQL, sub reads the stream that stores the messages; declare one whose subjects match it", errNoStream, subject)
		case errors.Is(err, bus.ErrNoStream):
			return fmt.Errorf("%w %q: pass --stream or declare a stream whose subjects match it", errNoStream, subject)
		case err != nil:
			return fmt.Errorf("find the stream of %s: %w", subject, err)
		}
	}
	if _, err := b.StreamInfo(ctx, name); errors.Is(err, bus.ErrNotFound) {
		return fmt.Errorf("%w: %q", errStreamNotFound, name)
	} else if err != nil {
		return fmt.Errorf("stream %s: %w", name, err)
	}
	if o.durable != "" {
		err = subDurablePostgres(ctx, d, o, b, name, subject)
	} else {
		err = subReadPostgres(ctx, d, o, b, name, subject)
	}
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return nil
	}
	return err
}

// subReadPostgres prints the stream's messages on subject from where
// --deliver says (from its end without --stream), reading them without a
// consumer.
func subReadPostgres(ctx context.Context, d deps, o *subOptions, b *postgres.Bus, name, subject string) error {
	var after uint64
	switch {
	case !o.jetStreamMode(), o.deliver == "new":
		last, err := b.LastSequence(ctx, name, "")
		if err != nil {
			return fmt.Errorf("stream %s: %w", name, err)
		}
		after = last
	case o.deliver == "last":
		last, err := b.LastSequence(ctx, name, subject)
		if err != nil {
			return fmt.Errorf("stream %s: %w", name, err)
		}
		after = max(last, 1) - 1
	}
	if o.jetStreamMode() {
		fmt.Fprintf(d.stderr, "reading %s from stream %s\n", subject, name)
	} else {
		fmt.Fprintf(d.stderr, "listening on %s\n", subject)
	}
	for n := 0; o.count == 0 || n < o.count; {
		limit := postgres.DefaultReadLimit
		if o.count > 0 {
			limit = min(limit, o.count-n)
		}
		msgs, err := b.Read(ctx, name, postgres.ReadOptions{Subject: subject, After: after, Limit: limit, MaxWait: pgReadWait})
		if err != nil {
			return err
		}
		for _, m := range msgs {
			var seq uint64
			if o.jetStreamMode() {
				seq = m.StreamSequence
			}
			fmt.Fprintln(d.stdout, formatMessage(m.Subject, seq, nats.Header(m.Headers), m.Payload))
			after = m.StreamSequence
			n++
		}
	}
	return nil
}

// subDurablePostgres prints messages through the durable consumer
// o.durable, made when missing, acking each once printed.
func subDurablePostgres(ctx context.Context, d deps, o *subOptions, b *postgres.Bus, name, subject string) error {
	policy, err := pgDeliverPolicy(o.deliver)
	if err != nil {
		return err
	}
	info, err := b.ConsumerInfo(ctx, name, o.durable)
	switch {
	case errors.Is(err, bus.ErrNotFound):
	case err != nil:
		return fmt.Errorf("consumer %s on stream %s: %w", o.durable, name, err)
	case info.Config.DeliverPolicy == policy || !o.deliverSet:
		policy = info.Config.DeliverPolicy
	default:
		return fmt.Errorf("%w: durable %q on stream %s already exists and starts at %s, and a durable's start cannot change: leave out --deliver to resume it where it stopped, or pass a new --durable name to start at %s",
			errDurableStart, o.durable, name, pgDeliverName(info.Config.DeliverPolicy), o.deliver)
	}
	if _, err := b.EnsureConsumer(ctx, bus.ConsumerConfig{
		Durable: o.durable, Stream: name, FilterSubjects: []string{subject}, DeliverPolicy: policy, AckPolicy: bus.AckExplicit,
	}); err != nil {
		return fmt.Errorf("consumer on stream %s: %w", name, err)
	}
	fmt.Fprintf(d.stderr, "reading %s from stream %s\n", subject, name)
	for n := 0; o.count == 0 || n < o.count; {
		// One at a time: a message fetched and never printed would sit
		// out its ack wait before another run could have it.
		msgs, err := b.Fetch(ctx, name, o.durable, bus.FetchOptions{Batch: 1, MaxWait: pgReadWait})
		if err != nil {
			return err
		}
		for _, m := range msgs {
			fmt.Fprintln(d.stdout, formatMessage(m.Subject, m.StreamSequence, nats.Header(m.Headers), m.Payload))
			if err := m.Acknowledger.Ack(ctx); err != nil {
				return fmt.Errorf("ack stream %s seq %d: %w", name, m.StreamSequence, err)
			}
			n++
		}
	}
	return nil
}

// pgDeliverPolicy maps the --deliver flag to where a consumer starts.
func pgDeliverPolicy(s string) (bus.DeliverPolicy, error) {
	switch s {
	case "all":
		return bus.DeliverAll, nil
	case "new":
		return bus.DeliverNew, nil
	case "last":
		return bus.DeliverLast, nil
	}
	return 0, fmt.Errorf("--deliver must be all, new or last, not %q", s)
}

// pgDeliverName is the --deliver value of p, or its config spelling.
func pgDeliverName(p bus.DeliverPolicy) string {
	switch p {
	case bus.DeliverAll:
		return "all"
	case bus.DeliverNew:
		return "new"
	case bus.DeliverLast:
		return "last"
	case bus.DeliverByStartSequence:
		return "by_start_sequence"
	case bus.DeliverByStartTime:
		return "by_start_time"
	case bus.DeliverLastPerSubject:
		return "last_per_subject"
	}
	return fmt.Sprint(int(p))
}
