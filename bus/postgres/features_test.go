package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wfeventbus/eventbus/bus"
	"github.com/wfeventbus/eventbus/bus/postgres"
)

// env is one Bus on a fresh schema with helpers for the feature tests.
type env struct {
	t      *testing.T
	b      *postgres.Bus
	schema string
	ctx    context.Context
}

func newEnv(t *testing.T, opts ...postgres.Option) *env {
	t.Helper()
	schema := pg.schema()
	ctx, cancel := context.WithTimeout(t.Context(), hangGuard)
	t.Cleanup(cancel)
	return &env{t: t, b: newBus(t, pg.dsn, schema, opts...), schema: schema, ctx: ctx}
}

func (e *env) stream(cfg bus.StreamConfig) {
	e.t.Helper()
	if _, err := e.b.EnsureStream(e.ctx, cfg); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) consumer(cfg bus.ConsumerConfig) {
	e.t.Helper()
	if _, err := e.b.EnsureConsumer(e.ctx, cfg); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) pub(subject, payload string) uint64 {
	e.t.Helper()
	ack, err := e.b.Publish(e.ctx, bus.OutgoingMessage{Subject: subject, Payload: []byte(payload)})
	if err != nil {
		e.t.Fatal(err)
	}
	return ack.Sequence
}

// fetch fetches exactly n messages (acking none) or fails.
func (e *env) fetch(stream, consumer string, n int) []*bus.Message {
	e.t.Helper()
	var out []*bus.Message
	for len(out) < n {
		msgs, err := e.b.Fetch(e.ctx, stream, consumer, bus.FetchOptions{Batch: n - len(out), MaxWait: 5 * time.Second})
		if err != nil {
			e.t.Fatal(err)
		}
		if len(msgs) == 0 {
			e.t.Fatalf("got %d of %d messages", len(out), n)
		}
		out = append(out, msgs...)
	}
	return out
}

func (e *env) none(stream, consumer string, wait time.Duration) {
	e.t.Helper()
	msgs, err := e.b.Fetch(e.ctx, stream, consumer, bus.FetchOptions{Batch: 10, MaxWait: wait})
	if err != nil {
		e.t.Fatal(err)
	}
	if len(msgs) > 0 {
		e.t.Fatalf("got %d messages, want none; first %s seq %d", len(msgs), msgs[0].Payload, msgs[0].StreamSequence)
	}
}

// eventually waits until cond holds, polling.
func (e *env) eventually(what string, cond func() bool) {
	e.t.Helper()
	for !cond() {
		select {
		case <-e.ctx.Done():
			e.t.Fatalf("gave up waiting for %s", what)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (e *env) messages(stream string) uint64 {
	e.t.Helper()
	info, err := e.b.StreamInfo(e.ctx, stream)
	if err != nil {
		e.t.Fatal(err)
	}
	return info.Messages
}

func payloadsOf(msgs []*bus.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = string(m.Payload)
	}
	return out
}

// TestNotifyWakesOtherBus checks that a Bus with a poll interval far
// longer than the test learns of another Bus's publish through NOTIFY, and
// that a poll-only Bus finds it by polling.
func TestNotifyWakesOtherBus(t *testing.T) {
	t.Parallel()
	for _, pollOnly := range []bool{false, true} {
		t.Run(fmt.Sprintf("poll_only=%v", pollOnly), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.stream(bus.StreamConfig{Name: "N", Subjects: []string{"n.>"}})
			e.consumer(bus.ConsumerConfig{Durable: "c", Stream: "N"})
			poll := time.Hour
			if pollOnly {
				poll = 50 * time.Millisecond
			}
			other := newBusConfig(t, postgres.Config{DSN: pg.dsn, Schema: e.schema, PollInterval: poll, PollOnly: pollOnly})
			type result struct {
				msgs []*bus.Message
				err  error
			}
			// The first fetch finds nothing and waits; publishing is then
			// done by the other Bus.
			got := make(chan result, 1)
			waiting := make(chan struct{})
			go func() {
				msgs, err := other.Fetch(e.ctx, "N", "c", bus.FetchOptions{Batch: 1, MaxWait: 200 * time.Millisecond})
				if err != nil || len(msgs) != 0 {
					got <- result{msgs, err}
					return
				}
				close(waiting)
				msgs, err = other.Fetch(e.ctx, "N", "c", bus.FetchOptions{Batch: 1, MaxWait: 50 * time.Second})
				got <- result{msgs, err}
			}()
			select {
			case <-waiting:
			case r := <-got:
				t.Fatalf("first fetch: %v %v", r.msgs, r.err)
			}
			e.pub("n.x", "hello")
			r := <-got
			if r.err != nil || len(r.msgs) != 1 || string(r.msgs[0].Payload) != "hello" {
				t.Fatalf("fetch on the other Bus got %v, %v", r.msgs, r.err)
			}
		})
	}
}

// TestConcurrentMigration starts eight Buses at once on a new schema.
func TestConcurrentMigration(t *testing.T) {
	t.Parallel()
	schema := pg.schema()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			b, err := postgres.Connect(t.Context(), postgres.Config{DSN: pg.dsn, Schema: schema})
			if err == nil {
				err = b.Close()
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	conn, err := pgx.Connect(t.Context(), pg.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	var versions, rows int
	if err := conn.QueryRow(t.Context(), fmt.Sprintf(`SELECT max(version), count(*) FROM %q.schema_version`, schema)).Scan(&versions, &rows); err != nil {
		t.Fatal(err)
	}
	if versions != 2 || rows != 1 {
		t.Errorf("schema_version holds %d rows, max %d; want one row, version 2", rows, versions)
	}
	// A schema left at version 1 is brought to version 2 by the next Bus,
	// and works.
	if _, err := conn.Exec(t.Context(), fmt.Sprintf(`UPDATE %q.schema_version SET version = 1`, schema)); err != nil {
		t.Fatal(err)
	}
	b := newBus(t, pg.dsn, schema)
	if err := conn.QueryRow(t.Context(), fmt.Sprintf(`SELECT max(version), count(*) FROM %q.schema_version`, schema)).Scan(&versions, &rows); err != nil {
		t.Fatal(err)
	}
	if versions != 2 || rows != 1 {
		t.Errorf("after the upgrade schema_version holds %d rows, max %d; want one row, version 2", rows, versions)
	}
	if _, err := b.EnsureStream(t.Context(), bus.StreamConfig{Name: "M", Subjects: []string{"m.>"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.EnsureConsumer(t.Context(), bus.ConsumerConfig{Durable: "c", Stream: "M", FilterSubjects: []string{"m.b"}}); err != nil {
		t.Fatal(err)
	}
	for _, subject := range []string{"m.a", "m.b", "m.a", "m.b"} {
		if _, err := b.Publish(t.Context(), bus.OutgoingMessage{Subject: subject}); err != nil {
			t.Fatal(err)
		}
	}
	msgs, err := b.Fetch(t.Context(), "M", "c", bus.FetchOptions{Batch: 10, MaxWait: 5 * time.Second})
	if err != nil || len(msgs) != 2 || msgs[0].StreamSequence != 2 || msgs[1].StreamSequence != 4 {
		t.Fatalf("fetch on the upgraded schema: %d messages, %v", len(msgs), err)
	}
}

// TestConfigErrors checks that bad configurations name their field.
func TestConfigErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.stream(bus.StreamConfig{Name: "A", Subjects: []string{"a.>"}})
	cases := []struct {
		name string
		err  func() error
		want string
	}{
		{"overlapping streams", func() error {
			_, err := e.b.EnsureStream(e.ctx, bus.StreamConfig{Name: "B", Subjects: []string{"a.x"}})
			return err
		}, "subjects"},
		{"no subjects", func() error {
			_, err := e.b.EnsureStream(e.ctx, bus.StreamConfig{Name: "C"})
			return err
		}, "subjects"},
		{"negative max_age", func() error {
			_, err := e.b.EnsureStream(e.ctx, bus.StreamConfig{Name: "D", Subjects: []string{"d"}, MaxAge: -1})
			return err
		}, "max_age"},
		{"retention change", func() error {
			_, err := e.b.EnsureStream(e.ctx, bus.StreamConfig{Name: "A", Subjects: []string{"a.>"}, Retention: bus.RetentionWorkQueue})
			return err
		}, "retention_policy"},
		{"start sequence without policy", func() error {
			_, err := e.b.EnsureConsumer(e.ctx, bus.ConsumerConfig{Durable: "x", Stream: "A", OptStartSeq: 3})
			return err
		}, "opt_start_seq"},
		{"backoff and max_deliver", func() error {
			_, err := e.b.EnsureConsumer(e.ctx, bus.ConsumerConfig{Durable: "x", Stream: "A", MaxDeliver: 2, Backoff: []time.Duration{time.Second, time.Second}})
			return err
		}, "max_deliver"},
		{"bad schema", func() error {
			_, err := postgres.Connect(e.ctx, postgres.Config{DSN: pg.dsn, Schema: "Bad-Schema"})
			return err
		}, "schema"},
		{"no dsn", func() error {
			_, err := postgres.Connect(e.ctx, postgres.Config{})
			return err
		}, "dsn"},
		{"bad poll interval", func() error {
			_, err := postgres.Connect(e.ctx, postgres.Config{DSN: pg.dsn, PollInterval: -time.Second})
			return err
		}, "poll_interval"},
	}
	for _, c := range cases {
		err := c.err()
		if !errors.Is(err, bus.ErrInvalidConfig) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %v naming %s", c.name, err, bus.ErrInvalidConfig, c.want)
		}
	}
	_, err := postgres.Connect(e.ctx, postgres.Config{DSN: "postgres://nobody@127.0.0.1:1/x?connect_timeout=2"})
	if !errors.Is(err, bus.ErrNotConnected) {
		t.Errorf("Connect to a closed port: %v, want %v", err, bus.ErrNotConnected)
	}
}

// TestRetention covers limits trimmed in the background, discard new, the
// workqueue and interest policies.
func TestRetention(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	t.Run("MaxMsgs", func(t *testing.T) {
		e.stream(bus.StreamConfig{Name: "MM", Subjects: []string{"mm"}, MaxMsgs: 3})
		for i := range 10 {
			e.pub("mm", fmt.Sprint(i))
		}
		e.eventually("max_msgs trimming", func() bool { return e.messages("MM") == 3 })
		e.consumer(bus.ConsumerConfig{Durable: "c", Stream: "MM"})
		if got := payloadsOf(e.fetch("MM", "c", 3)); fmt.Sprint(got) != "[7 8 9]" {
			t.Errorf("kept %v, want the newest three", got)
		}
	})
	t.Run("MaxBytes", func(t *testing.T) {
		e.stream(bus.StreamConfig{Name: "MB", Subjects: []string{"mb"}, MaxBytes: 100})
		for i := range 10 {
			e.pub("mb", fmt.Sprintf("%030d", i)) // 32 bytes with the subject
		}
		e.eventually("max_bytes trimming", func() bool { return e.messages("MB") == 3 })
	})
	t.Run("MaxAge", func(t *testing.T) {
		e.stream(bus.StreamConfig{Name: "MA", Subjects: []string{"ma"}, MaxAge: 300 * time.Millisecond})
		e.pub("ma", "old")
		e.eventually("max_age trimming", func() bool { return e.messages("MA") == 0 })
	})
	t.Run("DiscardNew", func(t *testing.T) {
		e.stream(bus.StreamConfig{Name: "DN", Subjects: []string{"dn"}, MaxMsgs: 2, Discard: bus.DiscardNew})
		e.pub("dn", "1")
		e.pub("dn", "2")
		if _, err := e.b.Publish(e.ctx, bus.OutgoingMessage{Subject: "dn", Payload: []byte("3")}); err == nil {
			t.Error("publish to a full discard-new stream succeeded")
		}
		if n := e.messages("DN"); n != 2 {
			t.Errorf("stream holds %d, want 2", n)
		}
	})
	t.Run("WorkQueue", func(t *testing.T) {
		e.stream(bus.StreamConfig{Name: "WQ", Subjects: []string{"wq.>"}, Retention: bus.RetentionWorkQueue})
		e.consumer(bus.ConsumerConfig{Durable: "a", Stream: "WQ", FilterSubjects: []string{"wq.a"}})
		if _, err := e.b.EnsureConsumer(e.ctx, bus.ConsumerConfig{Durable: "b", Stream: "WQ", FilterSubjects: []string{"wq.*"}}); !errors.Is(err, bus.ErrInvalidConfig) {
			t.Errorf("overlapping workqueue consumer: %v, want %v", err, bus.ErrInvalidConfig)
		}
		e.pub("wq.a", "1")
		e.pub("wq.a", "2")
		m := e.fetch("WQ", "a", 1)[0]
		if err := m.Ack(e.ctx); err != nil {
			t.Fatal(err)
		}
		if n := e.messages("WQ"); n != 1 {
			t.Errorf("after one ack the workqueue holds %d, want 1", n)
		}
	})
	t.Run("Interest", func(t *testing.T) {
		e.stream(bus.StreamConfig{Name: "IN", Subjects: []string{"in"}, Retention: bus.RetentionInterest})
		e.consumer(bus.ConsumerConfig{Durable: "a", Stream: "IN"})
		e.consumer(bus.ConsumerConfig{Durable: "b", Stream: "IN"})
		e.pub("in", "1")
		for _, m := range e.fetch("IN", "a", 1) {
			if err := m.Ack(e.ctx); err != nil {
				t.Fatal(err)
			}
		}
		// One consumer still has it: it stays for a few rounds of maintenance.
		for range 3 {
			if n := e.messages("IN"); n != 1 {
				t.Fatalf("interest stream holds %d with consumer b still to ack, want 1", n)
			}
			time.Sleep(120 * time.Millisecond)
		}
		for _, m := range e.fetch("IN", "b", 1) {
			if err := m.Ack(e.ctx); err != nil {
				t.Fatal(err)
			}
		}
		e.eventually("interest removal", func() bool { return e.messages("IN") == 0 })
	})
}

// TestDeliverPolicies checks where each policy starts.
func TestDeliverPolicies(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.stream(bus.StreamConfig{Name: "DP", Subjects: []string{"dp.>"}})
	e.pub("dp.a", "a1")
	e.pub("dp.b", "b1")
	e.pub("dp.a", "a2")
	mid := time.Now()
	e.pub("dp.b", "b2")
	cases := []struct {
		cfg  bus.ConsumerConfig
		want string
	}{
		{bus.ConsumerConfig{Durable: "all", DeliverPolicy: bus.DeliverAll}, "[a1 b1 a2 b2 new]"},
		{bus.ConsumerConfig{Durable: "last", DeliverPolicy: bus.DeliverLast}, "[b2 new]"},
		{bus.ConsumerConfig{Durable: "lasta", DeliverPolicy: bus.DeliverLast, FilterSubjects: []string{"dp.a"}}, "[a2]"},
		{bus.ConsumerConfig{Durable: "new", DeliverPolicy: bus.DeliverNew}, "[new]"},
		{bus.ConsumerConfig{Durable: "seq", DeliverPolicy: bus.DeliverByStartSequence, OptStartSeq: 3}, "[a2 b2 new]"},
		{bus.ConsumerConfig{Durable: "time", DeliverPolicy: bus.DeliverByStartTime, OptStartTime: mid}, "[b2 new]"},
		{bus.ConsumerConfig{Durable: "lps", DeliverPolicy: bus.DeliverLastPerSubject}, "[a2 b2 new]"},
		{bus.ConsumerConfig{Durable: "filt", FilterSubjects: []string{"dp.b", "dp.c"}}, "[b1 b2 new]"},
	}
	for _, c := range cases {
		c.cfg.Stream = "DP"
		e.consumer(c.cfg)
	}
	e.pub("dp.b", "new")
	for _, c := range cases {
		var got []string
		for {
			msgs, err := e.b.Fetch(e.ctx, "DP", c.cfg.Durable, bus.FetchOptions{Batch: 10, MaxWait: 150 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			if len(msgs) == 0 {
				break
			}
			got = append(got, payloadsOf(msgs)...)
		}
		if fmt.Sprint(got) != c.want {
			t.Errorf("consumer %s delivered %v, want %s", c.cfg.Durable, got, c.want)
		}
	}
}

// TestRedeliveryControls covers backoff, max_ack_pending, ack all and ack
// none.
func TestRedeliveryControls(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.stream(bus.StreamConfig{Name: "RC", Subjects: []string{"rc"}})
	for i := range 5 {
		e.pub("rc", fmt.Sprint(i))
	}
	t.Run("Backoff", func(t *testing.T) {
		e.stream(bus.StreamConfig{Name: "BO", Subjects: []string{"bo"}})
		e.pub("bo", "x")
		e.consumer(bus.ConsumerConfig{Durable: "bo", Stream: "BO", Backoff: []time.Duration{200 * time.Millisecond, time.Hour}, MaxDeliver: 5})
		if m := e.fetch("BO", "bo", 1)[0]; m.DeliveryCount != 1 {
			t.Fatalf("first delivery %d", m.DeliveryCount)
		}
		// The first step is short, the second an hour.
		if m := e.fetch("BO", "bo", 1)[0]; m.DeliveryCount != 2 {
			t.Fatalf("after the first backoff step: delivery %d, want 2", m.DeliveryCount)
		}
		e.none("BO", "bo", 500*time.Millisecond)
	})
	t.Run("MaxAckPending", func(t *testing.T) {
		e.consumer(bus.ConsumerConfig{Durable: "map", Stream: "RC", MaxAckPending: 2})
		msgs := e.fetch("RC", "map", 2)
		e.none("RC", "map", 200*time.Millisecond)
		if err := msgs[0].Ack(e.ctx); err != nil {
			t.Fatal(err)
		}
		if m := e.fetch("RC", "map", 1)[0]; m.StreamSequence != 3 {
			t.Errorf("after an ack got seq %d, want 3", m.StreamSequence)
		}
	})
	t.Run("AckAll", func(t *testing.T) {
		e.consumer(bus.ConsumerConfig{Durable: "all", Stream: "RC", AckPolicy: bus.AckAll, AckWait: 300 * time.Millisecond})
		msgs := e.fetch("RC", "all", 3)
		if err := e.b.Ack(e.ctx, msgs[2].AckToken); err != nil {
			t.Fatal(err)
		}
		got := e.fetch("RC", "all", 2)
		if got[0].StreamSequence != 4 || got[1].StreamSequence != 5 {
			t.Errorf("after acking seq 3 with ack all, got %v", payloadsOf(got))
		}
	})
	t.Run("AckNone", func(t *testing.T) {
		e.consumer(bus.ConsumerConfig{Durable: "none", Stream: "RC", AckPolicy: bus.AckNone, AckWait: 100 * time.Millisecond})
		msgs := e.fetch("RC", "none", 5)
		if msgs[0].AckToken != "" {
			t.Error("ack none delivery has a token")
		}
		if err := msgs[0].Ack(e.ctx); err != nil {
			t.Errorf("Ack of an ack none delivery: %v", err)
		}
		if err := msgs[0].Nak(e.ctx, 0); !errors.Is(err, bus.ErrNoAcknowledger) {
			t.Errorf("Nak of an ack none delivery: %v", err)
		}
		e.none("RC", "none", 300*time.Millisecond)
	})
}

// TestPublishTx checks that a message published in a transaction that
// rolls back is never stored, and one that commits is delivered.
func TestPublishTx(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.stream(bus.StreamConfig{Name: "TX", Subjects: []string{"tx"}})
	e.consumer(bus.ConsumerConfig{Durable: "c", Stream: "TX"})
	conn, err := pgx.Connect(e.ctx, pg.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(e.ctx)
	for _, commit := range []bool{false, true} {
		tx, err := conn.Begin(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		ack, err := e.b.PublishTx(e.ctx, tx, bus.OutgoingMessage{Subject: "tx", Payload: []byte(fmt.Sprint(commit))})
		if err != nil || ack.Sequence != 1 {
			t.Fatalf("PublishTx: %+v %v, want sequence 1", ack, err)
		}
		if commit {
			err = tx.Commit(e.ctx)
		} else {
			err = tx.Rollback(e.ctx)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := payloadsOf(e.fetch("TX", "c", 1)); got[0] != "true" {
		t.Errorf("delivered %v, want the committed message", got)
	}
	if _, err := e.b.PublishTx(e.ctx, nil, bus.OutgoingMessage{Subject: "nowhere", Payload: nil}); !errors.Is(err, bus.ErrNoStream) {
		t.Errorf("PublishTx to a subject no stream captures: %v", err)
	}
}

// TestTokenAcrossBuses settles a token on another Bus sharing the key, and
// refuses it on a Bus with another key.
func TestTokenAcrossBuses(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.stream(bus.StreamConfig{Name: "TK", Subjects: []string{"tk"}})
	e.consumer(bus.ConsumerConfig{Durable: "c", Stream: "TK"})
	e.pub("tk", "x")
	m := e.fetch("TK", "c", 1)[0]
	stranger := newBus(t, pg.dsn, e.schema, postgres.WithTokenKey([]byte("another key of sixteen bytes or more")))
	if err := stranger.Ack(e.ctx, m.AckToken); !errors.Is(err, bus.ErrInvalidToken) {
		t.Errorf("Ack with another key: %v, want %v", err, bus.ErrInvalidToken)
	}
	friend := newBus(t, pg.dsn, e.schema)
	if err := friend.Ack(e.ctx, m.AckToken); err != nil {
		t.Errorf("Ack on another Bus sharing the key: %v", err)
	}
	if err := e.b.Ack(e.ctx, m.AckToken); !errors.Is(err, bus.ErrStaleToken) {
		t.Errorf("second Ack: %v, want %v", err, bus.ErrStaleToken)
	}
}

// TestPublishBatchDedup publishes batches mixing message ids new to the
// window, ids it holds, ids repeated inside the batch and messages without
// an id: each duplicate answers with its original's sequence and is not
// stored, the stored messages take consecutive sequences, and the stream's
// last sequence leaves no gap for the next publish.
func TestPublishBatchDedup(t *testing.T) {
	t.Parallel()
	b := newBus(t, pg.dsn, pg.schema())
	ctx, cancel := context.WithTimeout(t.Context(), hangGuard)
	defer cancel()
	if _, err := b.EnsureStream(ctx, bus.StreamConfig{Name: "D", Subjects: []string{"d.>"}, DuplicateWindow: time.Minute}); err != nil {
		t.Fatal(err)
	}
	publish := func(ids ...string) []bus.PublishResult {
		t.Helper()
		msgs := make([]bus.OutgoingMessage, len(ids))
		for i, id := range ids {
			msgs[i] = bus.OutgoingMessage{Subject: "d.x", Payload: []byte(id), MsgID: id}
		}
		res, err := b.PublishBatch(ctx, msgs)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range res {
			if r.Err != nil {
				t.Fatalf("result %d (id %q): %v", i, ids[i], r.Err)
			}
		}
		return res
	}
	check := func(res []bus.PublishResult, want []uint64, dup []bool) {
		t.Helper()
		for i, r := range res {
			if r.Ack.Sequence != want[i] || r.Ack.Duplicate != dup[i] {
				t.Errorf("result %d: sequence %d duplicate %v, want %d %v", i, r.Ack.Sequence, r.Ack.Duplicate, want[i], dup[i])
			}
		}
	}
	check(publish("a", "b", "a", "", "c", "b"),
		[]uint64{1, 2, 1, 3, 4, 2}, []bool{false, false, true, false, false, true})
	check(publish("c", "d", "", "d", "a", "e"),
		[]uint64{4, 5, 6, 5, 1, 7}, []bool{true, false, false, true, true, false})
	check(publish("b", "a"), []uint64{2, 1}, []bool{true, true})
	check(publish("f"), []uint64{8}, []bool{false})
	info, err := b.StreamInfo(ctx, "D")
	if err != nil {
		t.Fatal(err)
	}
	if info.Messages != 8 || info.LastSeq != 8 {
		t.Errorf("stream holds %d messages, last sequence %d; want 8 and 8", info.Messages, info.LastSeq)
	}
	if _, err := b.EnsureConsumer(ctx, bus.ConsumerConfig{Durable: "r", Stream: "D"}); err != nil {
		t.Fatal(err)
	}
	msgs, err := b.Fetch(ctx, "D", "r", bus.FetchOptions{Batch: 20, MaxWait: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for i, m := range msgs {
		if m.StreamSequence != uint64(i+1) {
			t.Errorf("delivery %d has sequence %d", i, m.StreamSequence)
		}
		got = append(got, string(m.Payload))
	}
	if want := []string{"a", "b", "", "c", "d", "", "e", "f"}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("delivered %q, want %q", got, want)
	}
}
