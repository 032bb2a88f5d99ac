// Command watermill measures Watermill's SQL pub/sub (watermill-sql v4,
// default PostgreSQL schema and offsets adapters) on a PostgreSQL database,
// for eventbus bench to report next to the eventbus figures measured on the
// same database in the same run:
//
//	go build -o /tmp/watermill-bench ./internal/bench/watermill
//	eventbus bench --postgres "$DATABASE_URL" --watermill /tmp/watermill-bench
//
// It is a module of its own so that Watermill is no dependency of eventbus.
// It makes tables named watermill_* for topics of its own and drops them
// when it is done. It prints its figures as JSON on stdout:
//
//	{"results":[{"id":"watermill.publish","name":"...","messages":1234,"elapsed_seconds":4,"cpu_seconds":1.2}]}
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// result is one figure, in the shape eventbus bench reads.
type result struct {
	ID             string  `json:"id"`
	Name           string  `json:"name"`
	Messages       int64   `json:"messages"`
	ElapsedSeconds float64 `json:"elapsed_seconds"`
	CPUSeconds     float64 `json:"cpu_seconds"`
}

// options are the command's flags.
type options struct {
	dsn         string
	duration    time.Duration
	warmup      time.Duration
	payloadSize int
	batchSize   int
	messages    int
}

func main() {
	var o options
	flag.StringVar(&o.dsn, "dsn", "", "the database (postgres://...); required")
	flag.DurationVar(&o.duration, "duration", 4*time.Second, "measured time of each scenario")
	flag.DurationVar(&o.warmup, "warmup", 300*time.Millisecond, "unmeasured run before each publish scenario")
	flag.IntVar(&o.payloadSize, "payload-size", 128, "message body size in bytes (a JSON object)")
	flag.IntVar(&o.batchSize, "batch-size", 100, "messages per Publish call of the batch scenario")
	flag.IntVar(&o.messages, "messages", 120000, "messages the subscribe scenario stores and reads")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	results, err := run(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "watermill bench:", err)
		os.Exit(1)
	}
	if err := json.NewEncoder(os.Stdout).Encode(map[string]any{"results": results}); err != nil {
		fmt.Fprintln(os.Stderr, "watermill bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) ([]result, error) {
	if o.dsn == "" {
		return nil, errors.New("--dsn is required")
	}
	if o.payloadSize < 32 || o.batchSize < 1 || o.messages < 1 || o.duration <= 0 {
		return nil, errors.New("--payload-size must be at least 32, --batch-size, --messages and --duration positive")
	}
	pool, err := pgxpool.New(ctx, o.dsn)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	db := wsql.BeginnerFromPgx(pool)
	stamp := strconv.Itoa(os.Getpid()) + "_" + strconv.FormatInt(time.Now().UnixNano()%1e12, 10)
	topics := []string{"bench_pub_" + stamp, "bench_batch_" + stamp, "bench_sub_" + stamp}
	defer dropTopics(pool, topics)

	pub, err := wsql.NewPublisher(db, wsql.PublisherConfig{SchemaAdapter: wsql.DefaultPostgreSQLSchema{}, AutoInitializeSchema: true}, watermill.NopLogger{})
	if err != nil {
		return nil, err
	}
	defer pub.Close()
	body := payload(o.payloadSize)
	var out []result

	one := func() (int, error) { return 1, pub.Publish(topics[0], message.NewMessage(watermill.NewUUID(), body)) }
	r, err := timed(ctx, o.warmup, o.duration, one)
	if err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	r.ID, r.Name = "watermill.publish", "Watermill SQL Publish of one message, 1 caller"
	out = append(out, r)

	batch := func() (int, error) {
		msgs := make([]*message.Message, o.batchSize)
		for i := range msgs {
			msgs[i] = message.NewMessage(watermill.NewUUID(), body)
		}
		return o.batchSize, pub.Publish(topics[1], msgs...)
	}
	r, err = timed(ctx, o.warmup, o.duration, batch)
	if err != nil {
		return nil, fmt.Errorf("publish batch: %w", err)
	}
	r.ID, r.Name = "watermill.publish-batch", fmt.Sprintf("Watermill SQL Publish of %d messages, 1 caller", o.batchSize)
	out = append(out, r)

	r, err = subscribeAck(ctx, o, db, pub, topics[2], body)
	if err != nil {
		return nil, fmt.Errorf("subscribe: %w", err)
	}
	return append(out, r), nil
}

// timed calls do for warmup unmeasured, then for measure.
func timed(ctx context.Context, warmup, measure time.Duration, do func() (int, error)) (result, error) {
	for end := time.Now().Add(warmup); time.Now().Before(end); {
		if _, err := do(); err != nil {
			return result{}, err
		}
	}
	cpu0 := cpuTime()
	start := time.Now()
	var n int64
	for time.Since(start) < measure {
		if err := ctx.Err(); err != nil {
			return result{}, err
		}
		moved, err := do()
		if err != nil {
			return result{}, err
		}
		n += int64(moved)
	}
	return result{Messages: n, ElapsedSeconds: time.Since(start).Seconds(), CPUSeconds: (cpuTime() - cpu0).Seconds()}, nil
}

// subscribeAck stores o.messages on topic, then reads them through a
// subscriber with the default settings (batches of 100) and acks each,
// for at most o.duration from the first message.
func subscribeAck(ctx context.Context, o options, db wsql.Beginner, pub *wsql.Publisher, topic string, body []byte) (result, error) {
	for left := o.messages; left > 0; left -= 1000 {
		msgs := make([]*message.Message, min(left, 1000))
		for i := range msgs {
			msgs[i] = message.NewMessage(watermill.NewUUID(), body)
		}
		if err := pub.Publish(topic, msgs...); err != nil {
			return result{}, err
		}
	}
	sub, err := wsql.NewSubscriber(db, wsql.SubscriberConfig{
		ConsumerGroup:    "bench",
		SchemaAdapter:    wsql.DefaultPostgreSQLSchema{},
		OffsetsAdapter:   wsql.DefaultPostgreSQLOffsetsAdapter{},
		InitializeSchema: true,
	}, watermill.NopLogger{})
	if err != nil {
		return result{}, err
	}
	defer sub.Close()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch, err := sub.Subscribe(sctx, topic)
	if err != nil {
		return result{}, err
	}
	var (
		n     int64
		start time.Time
		cpu0  time.Duration
	)
	guard := time.NewTimer(time.Minute)
	defer guard.Stop()
	for n < int64(o.messages) {
		if !start.IsZero() && time.Since(start) >= o.duration {
			break
		}
		select {
		case m, ok := <-ch:
			if !ok {
				return result{}, fmt.Errorf("the subscription ended after %d messages", n)
			}
			if start.IsZero() {
				start, cpu0 = time.Now(), cpuTime()
			}
			m.Ack()
			n++
		case <-guard.C:
			return result{}, fmt.Errorf("%d of %d messages in a minute", n, o.messages)
		case <-ctx.Done():
			return result{}, ctx.Err()
		}
	}
	return result{
		ID: "watermill.subscribe-ack", Name: "Watermill SQL Subscribe (default batch of 100) and Ack of each",
		Messages: n, ElapsedSeconds: time.Since(start).Seconds(), CPUSeconds: (cpuTime() - cpu0).Seconds(),
	}, nil
}

// dropTopics removes the tables Watermill made for topics.
func dropTopics(pool *pgxpool.Pool, topics []string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, t := range topics {
		for _, table := range []string{"watermill_" + t, "watermill_offsets_" + t} {
			_, _ = pool.Exec(ctx, "DROP TABLE IF EXISTS "+pgx.Identifier{table}.Sanitize())
		}
	}
}

// payload is a JSON object of exactly size bytes, as eventbus bench sends.
func payload(size int) []byte {
	head := `{"ts":"0000000000000000000","pad":"`
	return []byte(head + strings.Repeat("x", size-len(head)-2) + `"}`)
}

// cpuTime is the user and system time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
