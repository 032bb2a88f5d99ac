package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"
)

// subOptions are the flags of the sub command.
type subOptions struct {
	conn    connFlags
	count   int
	stream  string
	durable string
	deliver string
	// deliverSet is whether --deliver was given rather than defaulted.
	deliverSet bool
}

// jetStreamMode reports whether messages come from a stream rather than a
// plain subscription.
func (o *subOptions) jetStreamMode() bool { return o.stream != "" || o.durable != "" }

// newSubCmd builds `eventbus sub SUBJECT`.
func newSubCmd(d deps) *cobra.Command {
	o := &subOptions{}
	cmd := &cobra.Command{
		Use:   "sub SUBJECT",
		Short: "Print the messages published on SUBJECT",
		Long: "sub prints one line per message on SUBJECT (wildcards allowed): the subject,\n" +
			"the headers in brackets, then the payload (quoted when it is not one line of\n" +
			"text). It runs until interrupted or until --count messages have arrived.\n\n" +
			"By default it subscribes to the subject directly and sees only messages\n" +
			"published from now on. With --stream it reads the stream's stored messages\n" +
			"instead, from where --deliver says, each line starting with the stream\n" +
			"sequence. With --durable it reads through that durable consumer, creating it\n" +
			"when missing, and acks every message it prints, so the next run resumes\n" +
			"where this one stopped.\n\n" +
			"On PostgreSQL (a postgres:// --url or DSN, or DATABASE_URL without --url and\n" +
			"NATS_URL) there are no plain subscriptions: without --stream or --durable, sub\n" +
			"reads the stream that stores SUBJECT from its end, so it prints what is\n" +
			"published from now on, as it does on NATS. --schema names the broker's schema.",
		Example: "  eventbus sub 'orders.>'\n" +
			"  eventbus sub orders.created --stream ORDERS --count 10\n" +
			"  eventbus sub orders.created --durable audit",
		Args: withUsageErrors(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.count < 0 {
				return usageError(cmd, fmt.Errorf("--count must not be negative, not %d", o.count))
			}
			if cmd.Flags().Changed("deliver") && !o.jetStreamMode() {
				return usageError(cmd, errors.New("--deliver needs --stream or --durable"))
			}
			if _, err := deliverPolicy(o.deliver); err != nil {
				return usageError(cmd, err)
			}
			if err := o.conn.validate(d.lookupEnv); err != nil {
				return usageError(cmd, err)
			}
			o.deliverSet = cmd.Flags().Changed("deliver")
			return runSub(cmd.Context(), d, o, args[0])
		},
	}
	f := cmd.Flags()
	o.conn.register(f)
	f.IntVar(&o.count, "count", 0, "stop after this many messages (0: run until interrupted)")
	f.StringVar(&o.stream, "stream", "", "read the messages stored in this stream")
	f.StringVar(&o.durable, "durable", "", "read through this durable consumer and ack each message (stream found from SUBJECT unless --stream)")
	f.StringVar(&o.deliver, "deliver", "all", "with --stream or --durable, where to start: all, new or last")
	return cmd
}

// runSub prints messages on subject until ctx ends or o.count have arrived.
// An interrupt is the normal way to stop, so it is not an error.
func runSub(ctx context.Context, d deps, o *subOptions, subject string) error {
	if tgt := o.conn.resolve(d.lookupEnv); tgt.postgres {
		return runSubPostgres(ctx, d, o, tgt, subject)
	}
	nc, err := o.conn.connect(ctx, d.lookupEnv)
	if err != nil {
		return err
	}
	defer nc.Close()
	if o.jetStreamMode() {
		err = subStream(ctx, d, o, nc, subject)
	} else {
		err = subCore(ctx, d, o, nc, subject)
	}
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return nil
	}
	return err
}

// subCore prints messages from a plain subscription.
func subCore(ctx context.Context, d deps, o *subOptions, nc *nats.Conn, subject string) error {
	sub, err := nc.SubscribeSync(subject)
	if err != nil {
		return fmt.Errorf("subscribe to %s: %w", subject, err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	// Once the server has the subscription, every later publish reaches it.
	flushCtx, cancel := context.WithTimeout(ctx, connectTimeout)
	err = nc.FlushWithContext(flushCtx)
	cancel()
	if err != nil {
		return fmt.Errorf("subscribe to %s: %w", subject, err)
	}
	fmt.Fprintf(d.stderr, "listening on %s\n", subject)
	for n := 0; o.count == 0 || n < o.count; n++ {
		msg, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintln(d.stdout, formatMessage(msg.Subject, 0, msg.Header, msg.Data))
	}
	return nil
}

// subStream prints messages read from a stream, through an ordered consumer
// or, with --durable, a durable one whose deliveries are acked.
func subStream(ctx context.Context, d deps, o *subOptions, nc *nats.Conn, subject string) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	name := o.stream
	if name == "" {
		name, err = js.StreamNameBySubject(ctx, subject)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("%w %q: pass --stream or declare a stream whose subjects match it", errNoStream, subject)
		}
		if err != nil {
			return fmt.Errorf("find the stream of %s: %w", subject, jetStreamError(err))
		}
	}
	stream, err := js.Stream(ctx, name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("%w: %q", errStreamNotFound, name)
	}
	if err != nil {
		return fmt.Errorf("stream %s: %w", name, jetStreamError(err))
	}
	policy, err := deliverPolicy(o.deliver)
	if err != nil {
		return err
	}
	var cons jetstream.Consumer
	if o.durable == "" {
		cons, err = stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
			FilterSubjects: []string{subject},
			DeliverPolicy:  policy,
		})
	} else {
		if policy, err = durablePolicy(ctx, stream, name, o, policy); err != nil {
			return err
		}
		cons, err = stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
			Durable:       o.durable,
			FilterSubject: subject,
			DeliverPolicy: policy,
			AckPolicy:     jetstream.AckExplicitPolicy,
		})
	}
	if err != nil {
		return fmt.Errorf("consumer on stream %s: %w", name, serverError(err))
	}
	fmt.Fprintf(d.stderr, "reading %s from stream %s\n", subject, name)
	return printMessages(ctx, d, o, cons, name, o.durable != "")
}

// durablePolicy is where the durable o.durable starts: an existing durable
// keeps its own start, since the server cannot change it, and resumes where
// it stopped; --deliver asking for another start is an error that says so.
func durablePolicy(ctx context.Context, stream jetstream.Stream, name string, o *subOptions, want jetstream.DeliverPolicy) (jetstream.DeliverPolicy, error) {
	c, err := stream.Consumer(ctx, o.durable)
	switch {
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		return want, nil
	case err != nil:
		return want, fmt.Errorf("consumer %s on stream %s: %w", o.durable, name, serverError(err))
	}
	have := c.CachedInfo().Config.DeliverPolicy
	if have == want || !o.deliverSet {
		return have, nil
	}
	return want, fmt.Errorf("%w: durable %q on stream %s already exists and starts at %s, and a durable's start cannot change: leave out --deliver to resume it where it stopped, or pass a new --durable name to start at %s",
		errDurableStart, o.durable, name, deliverName(have), o.deliver)
}

// deliverName is the --deliver value of policy, or the server's name for
// a policy the flag does not offer.
func deliverName(p jetstream.DeliverPolicy) string {
	for _, name := range []string{"all", "new", "last"} {
		if q, _ := deliverPolicy(name); q == p {
			return name
		}
	}
	return p.String()
}

// serverError words a JetStream API error by the server's description and
// code instead of nats.go's "nats: API error: code=... err_code=...".
func serverError(err error) error {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.Description != "" {
		return fmt.Errorf("%s (server error %d)", apiErr.Description, apiErr.ErrorCode)
	}
	return err
}

// printMessages prints messages from cons until ctx ends or o.count have
// been printed, acking each after printing when ack is set.
func printMessages(ctx context.Context, d deps, o *subOptions, cons jetstream.Consumer, name string, ack bool) error {
	var next func(context.Context) (jetstream.Msg, error)
	if ack {
		// One message per pull: a message fetched but never printed would
		// wait out the ack wait before another run could have it.
		next = func(ctx context.Context) (jetstream.Msg, error) { return fetchOne(ctx, cons) }
	} else {
		iter, err := cons.Messages()
		if err != nil {
			return fmt.Errorf("consume from stream %s: %w", name, err)
		}
		defer iter.Stop()
		next = func(ctx context.Context) (jetstream.Msg, error) { return iter.Next(jetstream.NextContext(ctx)) }
	}
	for n := 0; o.count == 0 || n < o.count; n++ {
		msg, err := next(ctx)
		if err != nil {
			return err
		}
		var seq uint64
		if meta, err := msg.Metadata(); err == nil {
			seq = meta.Sequence.Stream
		}
		fmt.Fprintln(d.stdout, formatMessage(msg.Subject(), seq, msg.Headers(), msg.Data()))
		if ack {
			// Wait for the server to record the ack, so that a run ending
			// right after the last message leaves nothing to redeliver.
			if err := msg.DoubleAck(ctx); err != nil {
				return fmt.Errorf("ack stream %s seq %d: %w", name, seq, err)
			}
		}
	}
	return nil
}

// fetchPoll is how long one pull of a durable sub waits before it asks
// again.
const fetchPoll = 5 * time.Second

// fetchOne pulls the next message of cons, one pull of one message at a
// time, until one arrives or ctx ends.
func fetchOne(ctx context.Context, cons jetstream.Consumer) (jetstream.Msg, error) {
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		pctx, cancel := context.WithTimeout(ctx, fetchPoll)
		msg, err := fetchWithin(pctx, cons)
		cancel()
		if msg != nil || err != nil {
			return msg, err
		}
	}
}

// fetchWithin makes one pull of one message that ends with ctx; no message
// and no error when none came in time.
func fetchWithin(ctx context.Context, cons jetstream.Consumer) (jetstream.Msg, error) {
	batch, err := cons.Fetch(1, jetstream.FetchContext(ctx))
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil
		}
		return nil, err
	}
	for msg := range batch.Messages() {
		return msg, nil
	}
	if err := batch.Error(); err != nil && ctx.Err() == nil && !errors.Is(err, nats.ErrTimeout) {
		return nil, err
	}
	return nil, nil
}

// deliverPolicy maps the --deliver flag to where a consumer starts.
func deliverPolicy(s string) (jetstream.DeliverPolicy, error) {
	switch s {
	case "all":
		return jetstream.DeliverAllPolicy, nil
	case "new":
		return jetstream.DeliverNewPolicy, nil
	case "last":
		return jetstream.DeliverLastPolicy, nil
	default:
		return 0, fmt.Errorf("--deliver must be all, new or last, not %q", s)
	}
}

// formatMessage renders a message as one line: "#SEQ " when seq is not 0,
// the subject, the headers as "[key: value; ...]" sorted by key when there
// are any, then the payload, quoted unless it is one line of printable text.
func formatMessage(subject string, seq uint64, header nats.Header, data []byte) string {
	var b strings.Builder
	if seq != 0 {
		b.WriteString("#")
		b.WriteString(strconv.FormatUint(seq, 10))
		b.WriteString(" ")
	}
	b.WriteString(subject)
	if len(header) > 0 {
		keys := make([]string, 0, len(header))
		for k := range header {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b.WriteString(" [")
		first := true
		for _, k := range keys {
			for _, v := range header[k] {
				if !first {
					b.WriteString("; ")
				}
				first = false
				b.WriteString(k)
				b.WriteString(": ")
				b.WriteString(v)
			}
		}
		b.WriteString("]")
	}
	b.WriteString(" ")
	b.WriteString(payloadText(data))
	return b.String()
}

// payloadText returns data as it is when it is non-empty, valid UTF-8 and
// made of graphic characters and tabs only (no newlines or other controls); otherwise as a Go-quoted
// string, so one message is always one line.
func payloadText(data []byte) string {
	if len(data) == 0 || !utf8.Valid(data) {
		return strconv.Quote(string(data))
	}
	for _, r := range string(data) {
		if r != '\t' && !unicode.IsGraphic(r) {
			return strconv.Quote(string(data))
		}
	}
	return string(data)
}
