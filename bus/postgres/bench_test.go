package postgres_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wfeventbus/eventbus/bus"
	"github.com/wfeventbus/eventbus/bus/postgres"
)

// The benchmarks run against the test binary's own server (fsync on) with
// 128-byte payloads, each figure next to the raw pgx ceiling it is held to:
//
//	go test -run '^$' -bench . -benchtime 5s ./bus/postgres/
//
// BenchmarkFetchLatency's 1M backlog fills a million messages first (about
// a minute); it runs only with EVENTBUS_PG_BENCH_1M=1.

const benchPayload = 128

// benchEnv is a Bus and a raw pool on a fresh schema, with the raw tables.
type benchEnv struct {
	b      *postgres.Bus
	pool   *pgxpool.Pool
	schema string
	ctx    context.Context
}

func newBenchEnv(b *testing.B, cfg postgres.Config) *benchEnv {
	b.Helper()
	ctx := context.Background()
	cfg.DSN, cfg.Schema = pg.dsn, pg.schema()
	bus := newBusConfig(b, cfg)
	pool, err := pgxpool.New(ctx, pg.dsn+"&pool_max_conns=16")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	q := func(s string) string { return fmt.Sprintf(s, cfg.Schema) }
	for _, s := range []string{
		`CREATE TABLE %q.raw_msgs (id bigserial PRIMARY KEY, subject text NOT NULL, payload bytea NOT NULL, created_at timestamptz NOT NULL DEFAULT now())`,
		`CREATE TABLE %q.raw_queue (id bigserial PRIMARY KEY, payload bytea NOT NULL, visible_at timestamptz NOT NULL DEFAULT now())`,
		`CREATE INDEX ON %q.raw_queue (visible_at, id)`,
	} {
		if _, err := pool.Exec(ctx, q(s)); err != nil {
			b.Fatal(err)
		}
	}
	return &benchEnv{b: bus, pool: pool, schema: cfg.Schema, ctx: ctx}
}

func (e *benchEnv) q(s string) string { return fmt.Sprintf(s, e.schema) }

func (e *benchEnv) stream(b *testing.B, name string) {
	b.Helper()
	if _, err := e.b.EnsureStream(e.ctx, bus.StreamConfig{Name: name, Subjects: []string{name + ".>"}}); err != nil {
		b.Fatal(err)
	}
}

// side is one contender of a comparison: workers goroutines calling op,
// each call handling per messages.
type side struct {
	workers, per int
	op           func() error
}

// compare alternates short phases of a and c, each phase ops calls of
// one side, so that both see the same machine (the disk above all, on a
// shared one) and reports each side's msg/s and their ratio. A
// benchmark iteration is one phase of each.
func compare(b *testing.B, ops int, aName string, a side, cName string, c side) {
	b.Helper()
	var elapsed [2]time.Duration
	b.ResetTimer()
	for range b.N {
		for i, s := range []side{a, c} {
			var next atomic.Int64
			var wg sync.WaitGroup
			var failed atomic.Value
			start := time.Now()
			for range s.workers {
				wg.Go(func() {
					for next.Add(1) <= int64(ops) {
						if err := s.op(); err != nil {
							failed.Store(err)
							return
						}
					}
				})
			}
			wg.Wait()
			elapsed[i] += time.Since(start)
			if err, _ := failed.Load().(error); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	rate := func(i int, s side) float64 { return float64(b.N*ops*s.per) / elapsed[i].Seconds() }
	b.ReportMetric(rate(0, a), aName+"-msg/s")
	b.ReportMetric(rate(1, c), cName+"-msg/s")
	b.ReportMetric(rate(0, a)/rate(1, c), "ratio")
}

// BenchmarkPublish publishes one message per call, from 1 and 8
// goroutines, next to a raw pgx INSERT in a transaction of its own.
func BenchmarkPublish(b *testing.B) {
	payload := make([]byte, benchPayload)
	for _, workers := range []int{1, 8} {
		b.Run(fmt.Sprintf("conc=%d", workers), func(b *testing.B) {
			e := newBenchEnv(b, postgres.Config{})
			e.stream(b, "P")
			raw := e.q(`INSERT INTO %q.raw_msgs (subject, payload) VALUES ($1, $2)`)
			compare(b, 20*workers, "bus", side{workers, 1, func() error {
				_, err := e.b.Publish(e.ctx, bus.OutgoingMessage{Subject: "P.x", Payload: payload})
				return err
			}}, "raw", side{workers, 1, func() error {
				_, err := e.pool.Exec(e.ctx, raw, "P.x", payload)
				return err
			}})
		})
	}
}

// BenchmarkPublishNotify publishes one message per call, from 1 and 8
// goroutines, on a Bus with NOTIFY on next to one with NOTIFY off (poll
// only); and, for scale, a raw INSERT that also NOTIFYs in its own
// transaction next to a plain one: the cost the Bus's design avoids.
func BenchmarkPublishNotify(b *testing.B) {
	payload := make([]byte, benchPayload)
	for _, workers := range []int{1, 8} {
		b.Run(fmt.Sprintf("bus/conc=%d", workers), func(b *testing.B) {
			on := newBenchEnv(b, postgres.Config{})
			on.stream(b, "P")
			off := newBenchEnv(b, postgres.Config{PollOnly: true})
			off.stream(b, "P")
			publish := func(e *benchEnv) func() error {
				return func() error {
					_, err := e.b.Publish(e.ctx, bus.OutgoingMessage{Subject: "P.x", Payload: payload})
					return err
				}
			}
			compare(b, 20*workers, "notify", side{workers, 1, publish(on)}, "poll-only", side{workers, 1, publish(off)})
		})
		b.Run(fmt.Sprintf("raw/conc=%d", workers), func(b *testing.B) {
			e := newBenchEnv(b, postgres.Config{})
			notifying := e.q(`WITH i AS (INSERT INTO %q.raw_msgs (subject, payload) VALUES ($1, $2)) SELECT pg_notify('raw', 'P')`)
			plain := e.q(`INSERT INTO %q.raw_msgs (subject, payload) VALUES ($1, $2)`)
			exec := func(sql string) func() error {
				return func() error {
					_, err := e.pool.Exec(e.ctx, sql, "P.x", payload)
					return err
				}
			}
			compare(b, 20*workers, "insert+notify", side{workers, 1, exec(notifying)}, "insert", side{workers, 1, exec(plain)})
		})
	}
}

// BenchmarkPublishBatch publishes 100 messages per call next to a raw
// multi-row INSERT of 100 rows.
func BenchmarkPublishBatch(b *testing.B) {
	const size = 100
	payload := make([]byte, benchPayload)
	e := newBenchEnv(b, postgres.Config{})
	e.stream(b, "B")
	msgs := make([]bus.OutgoingMessage, size)
	subjects := make([]string, size)
	payloads := make([][]byte, size)
	for i := range msgs {
		msgs[i] = bus.OutgoingMessage{Subject: "B.x", Payload: payload}
		subjects[i], payloads[i] = "B.x", payload
	}
	raw := e.q(`INSERT INTO %q.raw_msgs (subject, payload) SELECT * FROM unnest($1::text[], $2::bytea[])`)
	compare(b, 10, "bus", side{1, size, func() error {
		res, err := e.b.PublishBatch(e.ctx, msgs)
		if err == nil && res[size-1].Err != nil {
			err = res[size-1].Err
		}
		return err
	}}, "raw", side{1, size, func() error {
		_, err := e.pool.Exec(e.ctx, raw, subjects, payloads)
		return err
	}})
}

// fill publishes n messages to stream's subject in batches of 1000.
func (e *benchEnv) fill(b *testing.B, stream string, n int) {
	b.Helper()
	payload := make([]byte, benchPayload)
	msgs := make([]bus.OutgoingMessage, 1000)
	for i := range msgs {
		msgs[i] = bus.OutgoingMessage{Subject: stream + ".x", Payload: payload}
	}
	var wg sync.WaitGroup
	var next atomic.Int64
	for range 4 {
		wg.Go(func() {
			for {
				left := int64(n) - next.Add(1000) + 1000
				if left <= 0 {
					return
				}
				if _, err := e.b.PublishBatch(e.ctx, msgs[:min(left, 1000)]); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// BenchmarkFetchAck fetches batches of 100 from a full stream and acks
// every message (the acks of a batch concurrently, as a worker pool
// settles it), next to the raw ceiling: a transaction that selects 100
// rows FOR UPDATE SKIP LOCKED and pushes their visibility out, then one
// DELETE of the 100, both committing without waiting for the WAL flush as
// the Bus's fetches and acks do.
func BenchmarkFetchAck(b *testing.B) {
	const (
		batch = 100
		ops   = 20
	)
	payload := make([]byte, benchPayload)
	e := newBenchEnv(b, postgres.Config{})
	e.stream(b, "F")
	e.fill(b, "F", b.N*ops*batch)
	if _, err := e.b.EnsureConsumer(e.ctx, bus.ConsumerConfig{Durable: "c", Stream: "F", MaxAckPending: -1}); err != nil {
		b.Fatal(err)
	}
	if _, err := e.pool.Exec(e.ctx, e.q(`INSERT INTO %q.raw_queue (payload) SELECT $1 FROM generate_series(1, $2)`), payload, b.N*ops*batch); err != nil {
		b.Fatal(err)
	}
	if _, err := e.pool.Exec(e.ctx, e.q(`VACUUM ANALYZE %q.raw_queue`)); err != nil {
		b.Fatal(err)
	}
	claim := e.q(`UPDATE %[1]q.raw_queue q SET visible_at = now() + interval '30 seconds'
		FROM (SELECT id FROM %[1]q.raw_queue WHERE visible_at <= now() ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED) s
		WHERE q.id = s.id RETURNING q.id, q.payload`)
	settle := e.q(`DELETE FROM %q.raw_queue WHERE id = ANY($1)`)
	compare(b, ops, "bus", side{1, batch, func() error {
		msgs, err := e.b.Fetch(e.ctx, "F", "c", bus.FetchOptions{Batch: batch, MaxWait: 5 * time.Second})
		if err != nil {
			return err
		}
		if len(msgs) != batch {
			return fmt.Errorf("fetched %d, want %d", len(msgs), batch)
		}
		var wg sync.WaitGroup
		var ackErr atomic.Value
		for _, m := range msgs {
			wg.Go(func() {
				if err := m.Ack(e.ctx); err != nil {
					ackErr.Store(err)
				}
			})
		}
		wg.Wait()
		if err, _ := ackErr.Load().(error); err != nil {
			return err
		}
		return nil
	}}, "raw", side{1, batch, func() error {
		ids := make([]int64, 0, batch)
		err := pgx.BeginFunc(e.ctx, e.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(e.ctx, "SET LOCAL synchronous_commit = off"); err != nil {
				return err
			}
			rows, err := tx.Query(e.ctx, claim, batch)
			if err != nil {
				return err
			}
			for rows.Next() {
				var id int64
				var p []byte
				if err := rows.Scan(&id, &p); err != nil {
					return err
				}
				ids = append(ids, id)
			}
			return rows.Err()
		})
		if err != nil {
			return err
		}
		if len(ids) != batch {
			return fmt.Errorf("raw claimed %d, want %d", len(ids), batch)
		}
		return pgx.BeginFunc(e.ctx, e.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(e.ctx, "SET LOCAL synchronous_commit = off"); err != nil {
				return err
			}
			_, err := tx.Exec(e.ctx, settle, ids)
			return err
		})
	}})
}

// latencyOps is the most fetches one BenchmarkFetchLatency run makes.
const latencyOps = 20000

// BenchmarkFetchLatency measures one Fetch of one message plus its Ack
// with a backlog of unconsumed messages behind it: on three streams taken
// in turn, one holding only what the run consumes, one 100k messages more,
// and (with EVENTBUS_PG_BENCH_1M=1, filling takes a while) one a million
// more. It reports each stream's mean time per fetch and ack, in µs.
func BenchmarkFetchLatency(b *testing.B) {
	backlogs := []int{0, 100_000}
	if os.Getenv("EVENTBUS_PG_BENCH_1M") == "1" {
		backlogs = append(backlogs, 1_000_000)
	}
	e := newBenchEnv(b, postgres.Config{})
	for _, n := range backlogs {
		name := fmt.Sprintf("L%d", n)
		e.stream(b, name)
		e.fill(b, name, n+latencyOps)
		if _, err := e.pool.Exec(e.ctx, e.q(`VACUUM ANALYZE %q.messages`)); err != nil {
			b.Fatal(err)
		}
	}
	runs := 0
	b.Run("backlogs", func(b *testing.B) {
		if b.N > latencyOps {
			b.Fatalf("b.N %d exceeds the %d messages filled per stream; use a shorter -benchtime", b.N, latencyOps)
		}
		runs++
		consumer := fmt.Sprintf("c%d", runs)
		for _, n := range backlogs {
			// A new consumer reads from the start: b.N messages, then the
			// backlog, wait behind its first fetch.
			stream := fmt.Sprintf("L%d", n)
			start := uint64(latencyOps - b.N + 1)
			if _, err := e.b.EnsureConsumer(e.ctx, bus.ConsumerConfig{Durable: consumer, Stream: stream, MaxAckPending: -1,
				DeliverPolicy: bus.DeliverByStartSequence, OptStartSeq: start}); err != nil {
				b.Fatal(err)
			}
		}
		spent := make([]time.Duration, len(backlogs))
		b.ResetTimer()
		for range b.N {
			for i, n := range backlogs {
				t0 := time.Now()
				msgs, err := e.b.Fetch(e.ctx, fmt.Sprintf("L%d", n), consumer, bus.FetchOptions{Batch: 1, MaxWait: 5 * time.Second})
				if err != nil || len(msgs) != 1 {
					b.Fatalf("fetch: %d messages, %v", len(msgs), err)
				}
				if err := msgs[0].Ack(e.ctx); err != nil {
					b.Fatal(err)
				}
				spent[i] += time.Since(t0)
			}
		}
		b.StopTimer()
		for i, n := range backlogs {
			b.ReportMetric(float64(spent[i].Microseconds())/float64(b.N), fmt.Sprintf("backlog=%d-µs", n))
		}
		b.ReportMetric(float64(spent[len(spent)-1])/float64(spent[0]), "ratio-largest/0")
	})
}
