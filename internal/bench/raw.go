package bench

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wfeventbus/eventbus/bus/embedded"
)

// Names the scenarios use on every broker.
const (
	streamName      = "BENCH"
	streamSubjects  = "bench.>"
	subjectPublish  = "bench.publish"
	subjectBatch    = "bench.batch"
	subjectTrigger  = "bench.trigger"
	subjectLatency  = "bench.latency"
	asyncMaxPending = 4000 // the plugin's default (jetstream.DefaultPublishAsyncMaxPending)
	// asyncStallWait is how long an async publish waits for room among the
	// unanswered ones before it fails. nats.go's 200 ms default fails a fill
	// when other work on a shared machine delays the broker's acks; waiting
	// longer only slows the run, which the figures then show.
	asyncStallWait   = 30 * time.Second
	fetchBatch       = 500
	fetchMaxWait     = 2 * time.Second
	rawFetchConsumer = "raw-fetch"
)

// rawBroker is an embedded nats-server in this process with a nats.go
// client on its in-process connection: what the plugin runs inside itself,
// without the plugin.
type rawBroker struct {
	srv *embedded.Server
	nc  *nats.Conn
	js  jetstream.JetStream
	// asyncErrs counts async publishes the server refused.
	asyncErrs atomic.Int64
}

// startRawBroker starts a file-backed server storing under dir and creates
// the bench stream on it.
func startRawBroker(ctx context.Context, dir string, syncAlways bool) (*rawBroker, error) {
	srv, err := embedded.Start(ctx, embedded.Config{StoreDir: dir, Port: embedded.RandomPort, SyncAlways: syncAlways})
	if err != nil {
		return nil, err
	}
	rb := &rawBroker{srv: srv}
	if rb.nc, err = srv.Connect(); err != nil {
		_ = srv.Shutdown(ctx)
		return nil, err
	}
	rb.js, err = jetstream.New(rb.nc,
		jetstream.WithPublishAsyncMaxPending(asyncMaxPending),
		jetstream.WithPublishAsyncErrHandler(func(jetstream.JetStream, *nats.Msg, error) { rb.asyncErrs.Add(1) }))
	if err != nil {
		rb.close(ctx)
		return nil, err
	}
	if _, err := rb.js.CreateStream(ctx, jetstream.StreamConfig{
		Name:     streamName,
		Subjects: []string{streamSubjects},
		Storage:  jetstream.FileStorage,
	}); err != nil {
		rb.close(ctx)
		return nil, fmt.Errorf("create stream: %w", err)
	}
	return rb, nil
}

func (rb *rawBroker) close(ctx context.Context) {
	rb.nc.Close()
	_ = rb.srv.Shutdown(ctx)
}

// cpu reads the CPU time of this process, where the raw broker runs.
func (rb *rawBroker) cpu() time.Duration { return cpuTime(nil) }

// syncPublish is one synchronous publish: it returns once the stream has
// stored the message.
func (rb *rawBroker) syncPublish(body []byte) op {
	return func(ctx context.Context) (int, error) {
		if _, err := rb.js.Publish(ctx, subjectPublish, body); err != nil {
			return 0, err
		}
		return 1, nil
	}
}

// streamAsync publishes asynchronously without pause for warmup and then
// for measure, with at most asyncMaxPending messages unanswered, and
// counts the measured messages once all of their acks are in.
func (rb *rawBroker) streamAsync(ctx context.Context, body []byte, warmup, measure time.Duration) (measurement, error) {
	run := func(d time.Duration) (int64, time.Duration, error) {
		start := time.Now()
		var n int64
		for time.Since(start) < d {
			for range 256 {
				if _, err := rb.js.PublishAsync(subjectPublish, body, jetstream.WithStallWait(asyncStallWait)); err != nil {
					return n, 0, err
				}
				n++
			}
			if err := ctx.Err(); err != nil {
				return n, 0, err
			}
		}
		select {
		case <-rb.js.PublishAsyncComplete():
		case <-ctx.Done():
			return n, 0, ctx.Err()
		}
		return n, time.Since(start), nil
	}
	if warmup > 0 {
		if _, _, err := run(warmup); err != nil {
			return measurement{}, err
		}
	}
	before := rb.asyncErrs.Load()
	cpu0 := cpuTime(nil)
	n, elapsed, err := run(measure)
	if err != nil {
		return measurement{}, err
	}
	if failed := rb.asyncErrs.Load() - before; failed > 0 {
		return measurement{}, fmt.Errorf("%d of %d async publishes failed", failed, n)
	}
	return measurement{Messages: n, Elapsed: elapsed, CPU: cpuTime(nil) - cpu0}, nil
}

// fill stores n messages on subject with async publishes.
func (rb *rawBroker) fill(ctx context.Context, subject string, body []byte, n int) error {
	before := rb.asyncErrs.Load()
	for i := range n {
		if _, err := rb.js.PublishAsync(subject, body, jetstream.WithStallWait(asyncStallWait)); err != nil {
			return fmt.Errorf("fill message %d: %w", i, err)
		}
	}
	select {
	case <-rb.js.PublishAsyncComplete():
	case <-ctx.Done():
		return ctx.Err()
	}
	if failed := rb.asyncErrs.Load() - before; failed > 0 {
		return fmt.Errorf("fill: %d of %d publishes failed", failed, n)
	}
	return nil
}

// fetchAck reads up to n messages of subject through a new durable pull
// consumer, fetching batches and acking every message, for at most limit.
// The clock starts when the first batch arrives.
func (rb *rawBroker) fetchAck(ctx context.Context, subject string, n int, limit time.Duration) (measurement, error) {
	cons, err := rb.js.CreateConsumer(ctx, streamName, jetstream.ConsumerConfig{
		Durable:       rawFetchConsumer,
		FilterSubject: subject,
		AckPolicy:     jetstream.AckExplicitPolicy,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return measurement{}, fmt.Errorf("create consumer: %w", err)
	}
	var (
		got   int64
		start time.Time
		cpu0  time.Duration
	)
	deadline := time.Now().Add(limit + fetchMaxWait)
	for got < int64(n) {
		if err := ctx.Err(); err != nil {
			return measurement{}, err
		}
		if !start.IsZero() && time.Since(start) >= limit {
			break
		}
		if time.Now().After(deadline) {
			return measurement{}, fmt.Errorf("fetched %d of %d messages before the time limit", got, n)
		}
		batch, err := cons.Fetch(min(fetchBatch, n-int(got)), jetstream.FetchMaxWait(fetchMaxWait))
		if err != nil {
			return measurement{}, fmt.Errorf("fetch: %w", err)
		}
		for m := range batch.Messages() {
			if start.IsZero() {
				start, cpu0 = time.Now(), cpuTime(nil)
			}
			if err := m.Ack(); err != nil {
				return measurement{}, fmt.Errorf("ack: %w", err)
			}
			got++
		}
		if err := batch.Error(); err != nil {
			return measurement{}, fmt.Errorf("fetch: %w", err)
		}
	}
	if got == 0 {
		return measurement{}, fmt.Errorf("no message arrived")
	}
	return measurement{Messages: got, Elapsed: time.Since(start), CPU: cpuTime(nil) - cpu0}, nil
}
