package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wfeventbus/eventbus/bus"
	"github.com/wfeventbus/eventbus/bus/postgres"
)

// IDs of the PostgreSQL figures.
const (
	IDPgRawInsert      = "pg.raw-insert"
	IDPgRawInsertBatch = "pg.raw-insert-multirow"
	IDPgRawFetchAck    = "pg.raw-fetch-ack"
	IDPgStep           = "pg.publish.step"
	IDPgStepBatch      = "pg.publish.step-batch"
	IDPgFetchAck       = "pg.fetch-ack"
	IDPgLatency        = "pg.latency.publish-to-pipeline"
)

// IDPgTrigger is the ID of the subscribe trigger on PostgreSQL at
// concurrency n.
func IDPgTrigger(n int) string { return "pg.trigger.step-c" + strconv.Itoa(n) }

// IDPgFetchLatency is the ID of one fetch and ack with backlog messages
// waiting behind it.
func IDPgFetchLatency(backlog int) string { return pgFetchLatencyPrefix + countName(backlog) }

// pgFetchLatencyPrefix begins the IDs of the fetch latency figures.
const pgFetchLatencyPrefix = "pg.fetch-latency.backlog-"

// countName writes 100000 as 100k and 1000000 as 1m.
func countName(n int) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return strconv.Itoa(n/1_000_000) + "m"
	case n >= 1000 && n%1000 == 0:
		return strconv.Itoa(n/1000) + "k"
	}
	return strconv.Itoa(n)
}

// Targets of the PostgreSQL figures.
const (
	targetPgPublish      = 0.85 // of a raw INSERT in a transaction of its own
	targetPgBatch        = 0.8  // of a raw multi-row INSERT
	targetPgFetchAck     = 0.5  // of raw SELECT ... FOR UPDATE SKIP LOCKED and settle
	targetPgFetchAckRate = 77000
	targetPgTrigger      = 0.8 // of the in-process trigger on JetStream
	targetPgP50          = 5 * time.Millisecond
	targetPgFlat         = 0.5 // fetch rate at the largest backlog against none
)

// pgFetchBatch is the batch of the fetch+ack scenarios.
const pgFetchBatch = 100

// pgNote is the report's note when no database was given.
const pgNote = "PostgreSQL not measured: no database given (--postgres DSN or DATABASE_URL); nothing is reported for it"

// pgRun is the PostgreSQL phase of a run: a schema of its own for the
// plugin's broker and one for the raw tables, both dropped at the end.
type pgRun struct {
	*run
	dsn    string
	schema string // the broker's
	raw    string // the raw tables'
	pool   *pgxpool.Pool
	// own is a Bus of the bench's own on the broker's schema, for filling
	// streams and the bus-level scenarios.
	own *postgres.Bus
}

// pgSteps is how many figures the PostgreSQL phase adds.
func (c Config) pgSteps() int {
	if c.PostgresDSN == "" {
		return 0
	}
	return 7 + len(c.TriggerConcurrency) + len(c.postgresBacklogs())
}

// postgresBacklogs are the backlogs of the fetch latency scenario.
func (c Config) postgresBacklogs() []int {
	b := []int{0, 100_000}
	if c.PostgresMillion {
		b = append(b, 1_000_000)
	}
	return b
}

// postgres measures raw pgx and the plugin on a postgres broker.
func (r *run) postgres(ctx context.Context) error {
	cfg := r.cfg
	if cfg.PostgresDSN == "" {
		r.report.Notes = append(r.report.Notes, pgNote)
		fmt.Fprintln(cfg.Progress, "bench: "+pgNote)
		return nil
	}
	stamp := strconv.Itoa(os.Getpid()) + "_" + strconv.FormatInt(time.Now().UnixNano()%1e12, 10)
	p := &pgRun{run: r, dsn: cfg.PostgresDSN, schema: "eventbus_bench_" + stamp, raw: "eventbus_bench_raw_" + stamp}
	pcfg, err := pgxpool.ParseConfig(p.dsn)
	if err != nil {
		return fail("postgres", fmt.Errorf("dsn: %w", err))
	}
	pcfg.MaxConns = 16
	if p.pool, err = pgxpool.NewWithConfig(ctx, pcfg); err != nil {
		return fail("postgres", err)
	}
	defer p.pool.Close()
	if err := p.pool.Ping(ctx); err != nil {
		return fail("postgres", fmt.Errorf("connect to %s: %w", postgres.RedactDSN(p.dsn), err))
	}
	defer p.dropSchemas()
	if p.own, err = postgres.Connect(ctx, postgres.Config{DSN: p.dsn, Schema: p.schema, PollOnly: true}); err != nil {
		return fail("postgres", err)
	}
	defer p.own.Close()
	if err := p.rawTables(ctx); err != nil {
		return fail("postgres raw tables", err)
	}
	for _, phase := range []func(context.Context) error{p.plugin, p.fetchAck, p.fetchLatency, p.watermill} {
		if err := phase(ctx); err != nil {
			return err
		}
	}
	return nil
}

func (p *pgRun) q(sql string) string {
	return fmt.Sprintf(sql, pgx.Identifier{p.raw}.Sanitize())
}

// rawTables makes the raw scenarios' tables: the least a durable message
// table and a queue table with a visibility time need.
func (p *pgRun) rawTables(ctx context.Context) error {
	for _, s := range []string{
		`CREATE SCHEMA %s`,
		`CREATE TABLE %s.msgs (id bigserial PRIMARY KEY, subject text NOT NULL, payload bytea NOT NULL, created_at timestamptz NOT NULL DEFAULT now())`,
		`CREATE TABLE %s.queue (id bigserial PRIMARY KEY, payload bytea NOT NULL, visible_at timestamptz NOT NULL DEFAULT now())`,
		`CREATE INDEX ON %s.queue (visible_at, id)`,
	} {
		if _, err := p.pool.Exec(ctx, p.q(s)); err != nil {
			return err
		}
	}
	return nil
}

// dropSchemas removes what the phase made, whatever happened.
func (p *pgRun) dropSchemas() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, s := range []string{p.schema, p.raw} {
		_, _ = p.pool.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{s}.Sanitize()+" CASCADE")
	}
}

// cpu reads the CPU time of this process; the database's is not counted.
func (p *pgRun) cpu() time.Duration { return cpuTime(nil) }

// plugin measures the plugin in this process on a postgres broker: the
// publish steps, each in turns with its raw ceiling, the trigger and the
// publish-to-pipeline latency, with NOTIFY on.
func (p *pgRun) plugin(ctx context.Context) error {
	cfg := p.cfg
	broker := map[string]any{"provider": "postgres", "dsn": p.dsn, "schema": p.schema}
	s, err := openSessionOn(ctx, cfg.InProcess, cfg.Logger, broker, "")
	if err != nil {
		return fail("postgres plugin", err)
	}
	defer s.close(ctx)
	s.filler = p.fill
	body := string(p.body)

	h, err := s.singlePublish(ctx, "publish", subjectPublish)
	if err != nil {
		return fail(IDPgStep, err)
	}
	one := p.q(`INSERT INTO %s.msgs (subject, payload) VALUES ($1, $2)`)
	raw := func(ctx context.Context) (int, error) {
		_, err := p.pool.Exec(ctx, one, subjectPublish, p.body)
		return 1, err
	}
	mr, ms, err := alternate(ctx, cfg.Warmup, cfg.Duration, p.cpu, raw, s.publishOne(h, subjectPublish, body))
	if err != nil {
		return fail(IDPgStep, err)
	}
	p.add(Result{ID: IDPgRawInsert, Name: "raw pgx INSERT of one message, a transaction each, 1 caller"}, mr)
	p.add(Result{ID: IDPgStep, Name: "step.eventbus.publish in process on PostgreSQL, 1 caller", Ceiling: IDPgRawInsert}, ms)

	n := cfg.PostgresBatchSize
	subjects, payloads := make([]string, n), make([][]byte, n)
	for i := range n {
		subjects[i], payloads[i] = subjectBatch, p.body
	}
	many := p.q(`INSERT INTO %s.msgs (subject, payload) SELECT * FROM unnest($1::text[], $2::bytea[])`)
	rawMany := func(ctx context.Context) (int, error) {
		_, err := p.pool.Exec(ctx, many, subjects, payloads)
		return n, err
	}
	bh, bcfg, err := s.batchPublish(ctx, "publish-batch", subjectBatch, n, body)
	if err != nil {
		return fail(IDPgStepBatch, err)
	}
	mr, ms, err = alternate(ctx, cfg.Warmup, cfg.Duration, p.cpu, rawMany, s.publishBatch(bh, bcfg, n, body))
	if err != nil {
		return fail(IDPgStepBatch, err)
	}
	p.add(Result{ID: IDPgRawInsertBatch, Name: fmt.Sprintf("raw pgx multi-row INSERT of %d messages, 1 caller", n)}, mr)
	p.add(Result{ID: IDPgStepBatch, Name: fmt.Sprintf("step.eventbus.publish batch of %d in process on PostgreSQL, 1 caller", n), Ceiling: IDPgRawInsertBatch}, ms)

	if err := s.fill(ctx, subjectTrigger, cfg.TriggerMessages, p.body); err != nil {
		return fail("postgres trigger fill", err)
	}
	for _, n := range cfg.TriggerConcurrency {
		m, err := s.triggerRun(ctx, subjectTrigger, n, cfg.TriggerMessages, cfg.Duration)
		if err != nil {
			return fail(IDPgTrigger(n), err)
		}
		res := Result{ID: IDPgTrigger(n), Name: fmt.Sprintf("trigger.eventbus.subscribe in process on PostgreSQL to a host no-op pipeline, concurrency %d", n)}
		if _, ok := p.report.Result(IDTrigger(ModeInProcess, n)); ok {
			res.Ceiling = IDTrigger(ModeInProcess, n)
		}
		p.add(res, m)
	}

	m, err := p.latency(ctx, s)
	if err != nil {
		return fail(IDPgLatency, err)
	}
	p.add(Result{ID: IDPgLatency, Name: fmt.Sprintf("publish from another Bus to pipeline start in process on PostgreSQL, through NOTIFY, at %d msg/s, trigger concurrency %d", cfg.PostgresLatencyRate, cfg.LatencyConcurrency)}, m)
	return nil
}

// latency measures the time from a publish to the start of its pipeline
// when publisher and trigger are in different processes, as the database
// sees them: the messages are published by a Bus of the bench's own, with
// NOTIFY on, whose notification wakes the plugin's trigger. (Within one
// process a publish wakes its fetches directly.) The plugin's trigger
// polls only every second, so a missing notification would show.
func (p *pgRun) latency(ctx context.Context, s *session) (measurement, error) {
	cfg := p.cfg
	pub, err := postgres.Connect(ctx, postgres.Config{DSN: p.dsn, Schema: p.schema})
	if err != nil {
		return measurement{}, err
	}
	defer pub.Close()
	subject := subjectLatency + ".notify"
	return s.latencyRunVia(ctx, subject, cfg.PostgresLatencyRate, cfg.LatencyDuration, cfg.LatencyConcurrency, cfg.PayloadSize,
		func(ctx context.Context, body string) error {
			_, err := pub.Publish(ctx, bus.OutgoingMessage{Subject: subject, Payload: []byte(body)})
			return err
		})
}

// fill stores n messages on subject through the bench's own Bus, in
// batches of 1000 from four goroutines.
func (p *pgRun) fill(ctx context.Context, subject string, n int, body []byte) error {
	const chunk = 1000
	msgs := make([]bus.OutgoingMessage, chunk)
	for i := range msgs {
		msgs[i] = bus.OutgoingMessage{Subject: subject, Payload: body}
	}
	var (
		next   atomic.Int64
		wg     sync.WaitGroup
		failed atomic.Value
	)
	for range 4 {
		wg.Go(func() {
			for {
				end := next.Add(chunk)
				left := int64(n) - (end - chunk)
				if left <= 0 || ctx.Err() != nil {
					return
				}
				res, err := p.own.PublishBatch(ctx, msgs[:min(left, chunk)])
				if err == nil {
					for _, r := range res {
						if r.Err != nil {
							err = r.Err
							break
						}
					}
				}
				if err != nil {
					failed.Store(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		return fmt.Errorf("fill %s: %w", subject, err)
	}
	return ctx.Err()
}

// fetchAck measures fetching batches of 100 and settling them, in turns:
// raw pgx (one transaction selects the batch FOR UPDATE SKIP LOCKED and
// hides it, one deletes it, both committing without waiting for the WAL
// flush as the Bus's fetches and acks do), and bus/postgres (Fetch of 100,
// Ack of each from a goroutine of its own, as a worker pool settles a
// batch). Each side reads messages stored for it beforehand.
func (p *pgRun) fetchAck(ctx context.Context) error {
	cfg := p.cfg
	n := cfg.PostgresFetchMessages
	if _, err := p.pool.Exec(ctx, p.q(`INSERT INTO %s.queue (payload) SELECT $1 FROM generate_series(1, $2)`), p.body, n); err != nil {
		return fail(IDPgRawFetchAck, err)
	}
	claim := p.q(`UPDATE %[1]s.queue q SET visible_at = now() + interval '30 seconds'
		FROM (SELECT id FROM %[1]s.queue WHERE visible_at <= now() ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED) s
		WHERE q.id = s.id RETURNING q.id, q.payload`)
	settle := p.q(`DELETE FROM %s.queue WHERE id = ANY($1)`)
	raw := func(ctx context.Context) (int, error) {
		ids := make([]int64, 0, pgFetchBatch)
		err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "SET LOCAL synchronous_commit = off"); err != nil {
				return err
			}
			rows, err := tx.Query(ctx, claim, pgFetchBatch)
			if err != nil {
				return err
			}
			for rows.Next() {
				var id int64
				var payload []byte
				if err := rows.Scan(&id, &payload); err != nil {
					return err
				}
				ids = append(ids, id)
			}
			return rows.Err()
		})
		if err != nil || len(ids) == 0 {
			return 0, err
		}
		err = pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "SET LOCAL synchronous_commit = off"); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, settle, ids)
			return err
		})
		return len(ids), err
	}
	const stream = "FETCHACK"
	if _, err := p.own.EnsureStream(ctx, bus.StreamConfig{Name: stream, Subjects: []string{"fetchack.>"}}); err != nil {
		return fail(IDPgFetchAck, err)
	}
	if _, err := p.own.EnsureConsumer(ctx, bus.ConsumerConfig{Durable: "c", Stream: stream, MaxAckPending: -1}); err != nil {
		return fail(IDPgFetchAck, err)
	}
	if err := p.fill(ctx, "fetchack.x", n, p.body); err != nil {
		return fail(IDPgFetchAck, err)
	}
	for _, t := range []string{p.q(`%s.queue`), pgx.Identifier{p.schema, "messages"}.Sanitize()} {
		if _, err := p.pool.Exec(ctx, "VACUUM ANALYZE "+t); err != nil {
			return fail(IDPgFetchAck, err)
		}
	}
	ours := func(ctx context.Context) (int, error) {
		msgs, err := p.own.Fetch(ctx, stream, "c", bus.FetchOptions{Batch: pgFetchBatch, MaxWait: fetchMaxWait})
		if err != nil || len(msgs) == 0 {
			return 0, err
		}
		var wg sync.WaitGroup
		var ackErr atomic.Value
		for _, m := range msgs {
			wg.Go(func() {
				if err := m.Acknowledger.Ack(ctx); err != nil {
					ackErr.Store(err)
				}
			})
		}
		wg.Wait()
		if err, _ := ackErr.Load().(error); err != nil {
			return 0, err
		}
		return len(msgs), nil
	}
	mr, mo, err := alternate(ctx, 0, cfg.Duration, p.cpu, raw, ours)
	if err != nil {
		return fail(IDPgFetchAck, err)
	}
	p.add(Result{ID: IDPgRawFetchAck, Name: fmt.Sprintf("raw pgx SELECT of %d FOR UPDATE SKIP LOCKED, then DELETE of them", pgFetchBatch)}, mr)
	p.add(Result{ID: IDPgFetchAck, Name: fmt.Sprintf("bus/postgres Fetch of %d and Ack of each", pgFetchBatch), Ceiling: IDPgRawFetchAck}, mo)
	return nil
}

// fetchLatency measures one Fetch of one message and its Ack on streams
// with different backlogs behind the messages fetched, taking the streams
// in turn so that each sees the same machine.
func (p *pgRun) fetchLatency(ctx context.Context) error {
	cfg := p.cfg
	ops := cfg.PostgresFetchOps
	backlogs := cfg.postgresBacklogs()
	names := make([]string, len(backlogs))
	for i, b := range backlogs {
		names[i] = "LAT" + strconv.Itoa(i)
		subject := "lat" + strconv.Itoa(i) + ".x"
		if _, err := p.own.EnsureStream(ctx, bus.StreamConfig{Name: names[i], Subjects: []string{"lat" + strconv.Itoa(i) + ".>"}}); err != nil {
			return fail(IDPgFetchLatency(b), err)
		}
		if _, err := p.own.EnsureConsumer(ctx, bus.ConsumerConfig{Durable: "c", Stream: names[i], MaxAckPending: -1}); err != nil {
			return fail(IDPgFetchLatency(b), err)
		}
		fmt.Fprintf(p.cfg.Progress, "bench: filling %s with %d messages\n", names[i], b+ops)
		if err := p.fill(ctx, subject, b+ops, p.body); err != nil {
			return fail(IDPgFetchLatency(b), err)
		}
	}
	if _, err := p.pool.Exec(ctx, "VACUUM ANALYZE "+pgx.Identifier{p.schema, "messages"}.Sanitize()); err != nil {
		return fail("postgres vacuum", err)
	}
	lat := make([][]time.Duration, len(backlogs))
	spent := make([]time.Duration, len(backlogs))
	cpu := make([]time.Duration, len(backlogs))
	for range ops {
		for i := range backlogs {
			c0 := cpuTime(nil)
			t0 := time.Now()
			msgs, err := p.own.Fetch(ctx, names[i], "c", bus.FetchOptions{Batch: 1, MaxWait: fetchMaxWait})
			if err == nil && len(msgs) != 1 {
				err = fmt.Errorf("fetched %d messages, want 1", len(msgs))
			}
			if err == nil {
				err = msgs[0].Acknowledger.Ack(ctx)
			}
			if err != nil {
				return fail(IDPgFetchLatency(backlogs[i]), err)
			}
			d := time.Since(t0)
			lat[i] = append(lat[i], d)
			spent[i] += d
			cpu[i] += cpuTime(nil) - c0
		}
	}
	for i, b := range backlogs {
		res := Result{ID: IDPgFetchLatency(b), Name: fmt.Sprintf("bus/postgres Fetch of 1 and its Ack, %d messages waiting behind it", b)}
		if i > 0 {
			res.Ceiling = IDPgFetchLatency(backlogs[0])
		}
		p.add(res, measurement{Messages: int64(ops), Elapsed: spent[i], Latency: percentilesOf(lat[i]), CPU: cpu[i]})
	}
	return nil
}

// watermillSteps is how many figures the Watermill program adds.
func (c Config) watermillSteps() int {
	if c.Watermill == "" || c.PostgresDSN == "" {
		return 0
	}
	return 3
}

// watermill runs the Watermill program on the same database and adds its
// figures, each next to the raw ceiling of its kind.
func (p *pgRun) watermill(ctx context.Context) error {
	cfg := p.cfg
	if cfg.Watermill == "" {
		return nil
	}
	cmd := exec.CommandContext(ctx, cfg.Watermill,
		"--dsn", p.dsn, "--duration", cfg.Duration.String(), "--warmup", cfg.Warmup.String(),
		"--payload-size", strconv.Itoa(cfg.PayloadSize), "--batch-size", strconv.Itoa(cfg.PostgresBatchSize),
		"--messages", strconv.Itoa(cfg.PostgresFetchMessages))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return fail("watermill", fmt.Errorf("%s: %w: %s", cfg.Watermill, err, strings.TrimSpace(stderr.String())))
	}
	var out struct {
		Results []struct {
			ID             string  `json:"id"`
			Name           string  `json:"name"`
			Messages       int64   `json:"messages"`
			ElapsedSeconds float64 `json:"elapsed_seconds"`
			CPUSeconds     float64 `json:"cpu_seconds"`
		} `json:"results"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		return fail("watermill", fmt.Errorf("read its figures: %w", err))
	}
	ceilings := map[string]string{
		"watermill.publish": IDPgRawInsert, "watermill.publish-batch": IDPgRawInsertBatch, "watermill.subscribe-ack": IDPgRawFetchAck,
	}
	for _, r := range out.Results {
		ceiling, ok := ceilings[r.ID]
		if !ok || r.Messages <= 0 || r.ElapsedSeconds <= 0 {
			return fail("watermill", fmt.Errorf("unexpected figure %+v", r))
		}
		p.add(Result{ID: r.ID, Name: r.Name, Ceiling: ceiling}, measurement{
			Messages: r.Messages, Elapsed: time.Duration(r.ElapsedSeconds * float64(time.Second)), CPU: time.Duration(r.CPUSeconds * float64(time.Second)),
		})
	}
	return nil
}

// altSlice is how long one side of alternate runs at a time.
const altSlice = 250 * time.Millisecond

// alternate measures a and b, one call at a time, in turns of altSlice
// each until each has run for measure, after warmup of each; so on a
// shared machine, whose load moves within seconds, both see the same
// conditions, and their ratio means more than that of two runs a minute
// apart. A call that moves nothing (its messages ran out) ends the
// measurement once the round it is in is over.
func alternate(ctx context.Context, warmup, measure time.Duration, cpu func() time.Duration, a, b op) (measurement, measurement, error) {
	for _, do := range []op{a, b} {
		for end := time.Now().Add(warmup); time.Now().Before(end); {
			if _, err := do(ctx); err != nil {
				return measurement{}, measurement{}, err
			}
		}
	}
	var (
		ms   [2]measurement
		lat  [2][]time.Duration
		done bool
	)
	for !done && ms[1].Elapsed < measure {
		for i, do := range []op{a, b} {
			cpu0, start := cpu(), time.Now()
			for time.Since(start) < altSlice {
				if err := ctx.Err(); err != nil {
					return measurement{}, measurement{}, err
				}
				t0 := time.Now()
				moved, err := do(ctx)
				if err != nil {
					return measurement{}, measurement{}, err
				}
				if moved == 0 {
					done = true
					break
				}
				lat[i] = append(lat[i], time.Since(t0))
				ms[i].Messages += int64(moved)
			}
			ms[i].Elapsed += time.Since(start)
			ms[i].CPU += cpu() - cpu0
		}
	}
	for i := range ms {
		if ms[i].Messages == 0 {
			return measurement{}, measurement{}, fmt.Errorf("nothing completed")
		}
		ms[i].Latency = percentilesOf(lat[i])
	}
	return ms[0], ms[1], nil
}
