package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"
)

// pubOptions are the flags of the pub command.
type pubOptions struct {
	conn    connFlags
	headers []string
	msgID   string
	count   int
	timeout time.Duration
}

// newPubCmd builds `eventbus pub SUBJECT [DATA|-]`.
func newPubCmd(d deps) *cobra.Command {
	o := &pubOptions{}
	cmd := &cobra.Command{
		Use:   "pub SUBJECT [DATA|-]",
		Short: "Publish a message to the stream that captures SUBJECT",
		Long: "pub publishes one message (or --count copies) to SUBJECT and waits for the\n" +
			"stream that stores it to acknowledge. DATA is the payload; \"-\" reads it from\n" +
			"stdin; without DATA the payload is empty. A subject that no stream captures is\n" +
			"an error, because nothing would keep the message.\n\n" +
			"The broker is a NATS server, or the PostgreSQL database of a postgres broker\n" +
			"when --url is a postgres:// URL or DSN (or, with neither --url nor NATS_URL,\n" +
			"DATABASE_URL names one); --schema names the broker's schema there.",
		Example: "  eventbus pub orders.created '{\"id\":1}'\n" +
			"  eventbus pub orders.created --header trace=abc --msg-id order-1 '{\"id\":1}'\n" +
			"  cat order.json | eventbus pub orders.created -",
		Args: withUsageErrors(cobra.RangeArgs(1, 2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			header, err := parseHeaders(o.headers)
			if err != nil {
				return usageError(cmd, err)
			}
			if o.timeout <= 0 {
				return usageError(cmd, fmt.Errorf("--timeout must be positive, not %v", o.timeout))
			}
			if o.count < 1 {
				return usageError(cmd, fmt.Errorf("--count must be at least 1, not %d", o.count))
			}
			if err := o.conn.validate(d.lookupEnv); err != nil {
				return usageError(cmd, err)
			}
			var data []byte
			if len(args) == 2 {
				if args[1] == "-" {
					if data, err = io.ReadAll(d.stdin); err != nil {
						return fmt.Errorf("read payload from stdin: %w", err)
					}
				} else {
					data = []byte(args[1])
				}
			}
			return runPub(cmd.Context(), d, o, args[0], header, data)
		},
	}
	f := cmd.Flags()
	o.conn.register(f)
	f.StringArrayVarP(&o.headers, "header", "H", nil, "message header as key=value (repeatable)")
	f.StringVar(&o.msgID, "msg-id", "", "message ID; the stream drops a repeat within its duplicate window")
	f.IntVar(&o.count, "count", 1, "number of copies to publish")
	f.DurationVar(&o.timeout, "timeout", 5*time.Second, "how long to wait for each acknowledgement")
	return cmd
}

// runPub publishes data to subject o.count times and prints one line per
// acknowledgement.
func runPub(ctx context.Context, d deps, o *pubOptions, subject string, header nats.Header, data []byte) error {
	if tgt := o.conn.resolve(d.lookupEnv); tgt.postgres {
		return runPubPostgres(ctx, d, o, tgt, subject, header, data)
	}
	nc, err := o.conn.connect(ctx, d.lookupEnv)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	var opts []jetstream.PublishOpt
	if o.msgID != "" {
		opts = append(opts, jetstream.WithMsgID(o.msgID))
	}
	// A publish nothing answers fails at once; publishError then asks which
	// stream captures the subject, and only when one does is the publish
	// made again with nats.go's waits (its stream may be between leaders).
	failFast := append(slices.Clip(opts), jetstream.WithRetryAttempts(0))
	for range o.count {
		msg := &nats.Msg{Subject: subject, Data: data, Header: cloneHeader(header)}
		pubCtx, cancel := context.WithTimeout(ctx, o.timeout)
		ack, err := js.PublishMsg(pubCtx, msg, failFast...)
		if err != nil {
			err = publishError(ctx, js, subject, err)
			if errors.Is(err, errCaptured) {
				if ack, err = js.PublishMsg(pubCtx, msg, opts...); err != nil {
					err = publishError(ctx, js, subject, err)
				}
			}
		}
		cancel()
		if err != nil {
			return err
		}
		dup := ""
		if ack.Duplicate {
			dup = " (duplicate)"
		}
		fmt.Fprintf(d.stdout, "published to %s seq %d%s\n", ack.Stream, ack.Sequence, dup)
	}
	return nil
}

// publishError explains a failed publish. No answer at all means no stream
// captures the subject, or the server has no JetStream, or (when the wait
// timed out) a plain subscriber took the message without acknowledging it;
// asking the server which stream owns the subject tells these apart.
func publishError(ctx context.Context, js jetstream.JetStream, subject string, err error) error {
	noAnswer := errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout)
	if !noAnswer || ctx.Err() != nil {
		return fmt.Errorf("publish to %s: %w", subject, jetStreamError(err))
	}
	lookupCtx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	_, lookupErr := js.StreamNameBySubject(lookupCtx, subject)
	if errors.Is(lookupErr, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("%w %q: declare a stream whose subjects match it before publishing", errNoStream, subject)
	}
	if lookupErr != nil {
		return fmt.Errorf("publish to %s: %w", subject, jetStreamError(lookupErr))
	}
	return fmt.Errorf("publish to %s: %w: %w", subject, errCaptured, err)
}

// parseHeaders turns key=value pairs into a header; a key given twice gets
// both values.
func parseHeaders(pairs []string) (nats.Header, error) {
	if len(pairs) == 0 {
		return nil, nil
	}
	h := nats.Header{}
	for _, p := range pairs {
		k, v, ok := strings.Cut(p, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("--header %q: want key=value", p)
		}
		if strings.ContainsAny(k, " \t\r\n:") {
			return nil, fmt.Errorf("--header %q: key must not contain spaces or ':'", p)
		}
		h.Add(k, v)
	}
	return h, nil
}

// cloneHeader copies h so that each publish gets headers of its own.
func cloneHeader(h nats.Header) nats.Header {
	if h == nil {
		return nil
	}
	c := make(nats.Header, len(h))
	for k, vs := range h {
		c[k] = append([]string(nil), vs...)
	}
	return c
}
