package eventbus_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/wfeventbus/eventbus/bus"
	"github.com/wfeventbus/eventbus/eventbus"
)

// TestTriggerOrderedBySubject: with ordered_by_subject, messages of one
// subject run one at a time in stream order, while subjects run side by
// side; every message runs once.
func TestTriggerOrderedBySubject(t *testing.T) {
	t.Parallel()
	forEachBackend(t, testTriggerOrderedBySubject)
}

func testTriggerOrderedBySubject(t *testing.T, be backend) {
	const subjects, perSubject = 4, 50
	a := ordersApp(t, be, nil)
	var (
		mu      sync.Mutex
		running = map[string]int{}
		last    = map[string]float64{}
		ran     = map[float64]int{}
		faults  []string
		total   atomic.Int32
	)
	tr, err := a.p.CreateTrigger(context.Background(), eventbus.TriggerSubscribe, "pipeline:ordered",
		map[string]any{"name": "worker", "concurrency": float64(8), "ordered_by_subject": true},
		func(_ context.Context, data map[string]any) error {
			subject, seq := data["subject"].(string), data["sequence"].(float64)
			mu.Lock()
			running[subject]++
			if running[subject] > 1 {
				faults = append(faults, fmt.Sprintf("%s: two runs at once", subject))
			}
			if seq <= last[subject] {
				faults = append(faults, fmt.Sprintf("%s: sequence %v after %v", subject, seq, last[subject]))
			}
			last[subject] = seq
			ran[seq]++
			mu.Unlock()
			mu.Lock()
			running[subject]--
			mu.Unlock()
			total.Add(1)
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	startTrigger(t, tr)
	msgs := make([]any, 0, subjects*perSubject)
	for i := range subjects * perSubject {
		msgs = append(msgs, map[string]any{"subject": fmt.Sprintf("orders.s%d", i%subjects), "payload": fmt.Sprint(i)})
	}
	batch := map[string]any{"messages": msgs}
	a.exec(a.step(eventbus.StepPublish, batch), batch, nil)
	waitFor(t, "every message to run", func() bool { return total.Load() >= subjects*perSubject })
	mu.Lock()
	defer mu.Unlock()
	if len(faults) > 0 {
		t.Fatalf("ordering broken: %v", faults)
	}
	for seq := 1; seq <= subjects*perSubject; seq++ {
		if ran[float64(seq)] != 1 {
			t.Errorf("sequence %d ran %d times, want once", seq, ran[float64(seq)])
		}
	}
}

// TestTriggerConcurrency: a trigger with concurrency N runs N pipelines at
// once, and never more.
func TestTriggerConcurrency(t *testing.T) {
	t.Parallel()
	forEachBackend(t, testTriggerConcurrency)
}

func testTriggerConcurrency(t *testing.T, be backend) {
	const concurrency, total = 4, 12
	a := ordersApp(t, be, nil)
	var (
		mu      sync.Mutex
		running int
		most    int
		done    atomic.Int32
	)
	// The first runs wait until concurrency of them run at once; had the
	// trigger run fewer at a time, they would wait for ever.
	all := make(chan struct{})
	tr, err := a.p.CreateTrigger(context.Background(), eventbus.TriggerSubscribe, "pipeline:wide",
		map[string]any{"name": "worker", "concurrency": float64(concurrency)},
		func(ctx context.Context, _ map[string]any) error {
			mu.Lock()
			running++
			most = max(most, running)
			if running == concurrency {
				select {
				case <-all:
				default:
					close(all)
				}
			}
			mu.Unlock()
			select {
			case <-all:
			case <-ctx.Done():
				return ctx.Err()
			}
			mu.Lock()
			running--
			mu.Unlock()
			done.Add(1)
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	startTrigger(t, tr)
	for i := range total {
		cfg := map[string]any{"subject": "orders.c", "payload": fmt.Sprint(i)}
		a.exec(a.step(eventbus.StepPublish, cfg), cfg, nil)
	}
	waitFor(t, "every run to finish", func() bool { return done.Load() == total })
	mu.Lock()
	defer mu.Unlock()
	if most != concurrency {
		t.Fatalf("at most %d runs at once, want %d", most, concurrency)
	}
}

// TestMixedBackends: one app with brokers of both kinds; a settle step
// without broker_ref finds the broker that issued each token, whichever
// of the others it asks first.
func TestMixedBackends(t *testing.T) {
	t.Parallel()
	// Settlement asks the brokers in name order: a, b, c.
	a := newApp(t,
		postgresBroker(t, "a"),
		embeddedBroker(t, "b"),
		postgresBroker(t, "c"),
	)
	for _, ref := range []string{"a", "b", "c"} {
		for _, d := range []decl{
			{eventbus.TypeStream, "s-" + ref, map[string]any{"name": "S", "subjects": []any{"s.>"}, "broker_ref": ref}},
			{eventbus.TypeConsumer, "c-" + ref, map[string]any{"name": "w", "stream_name": "S", "broker_ref": ref}},
		} {
			m, err := a.p.CreateModule(context.Background(), d.typ, d.name, d.config)
			if err != nil {
				t.Fatal(err)
			}
			if err := m.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, ref := range []string{"b", "c", "a"} {
		pub := map[string]any{"subject": "s.x", "payload": ref, "broker_ref": ref}
		a.exec(a.step(eventbus.StepPublish, pub), pub, nil)
		con := map[string]any{"consumer": "w", "broker_ref": ref, "batch_size": float64(1), "max_wait": "5s"}
		msgs := a.exec(a.step(eventbus.StepConsume, con), con, nil)["messages"].([]any)
		if len(msgs) != 1 || msgs[0].(map[string]any)["payload"] != ref {
			t.Fatalf("consumed from %s: %v", ref, msgs)
		}
		token := map[string]any{"ack_token": msgs[0].(map[string]any)["ack_token"]}
		a.exec(a.step(eventbus.StepAck, token), token, nil)
		if _, err := a.step(eventbus.StepAck, token).Execute(context.Background(), eventbus.MapInput{Rendered: token}); !errors.Is(err, bus.ErrStaleToken) {
			t.Fatalf("second ack of %s's message = %v, want ErrStaleToken", ref, err)
		}
	}
}

// TestPostgresBrokerSaysWhichItIs: a postgres broker logs one line at
// start saying where its database is (password left out), its schema,
// whether it listens for notifications, and which setting named the
// database.
func TestPostgresBrokerSaysWhichItIs(t *testing.T) {
	t.Parallel()
	dsn := pg.start(t)
	// The server trusts every local login: the password is there to be
	// hidden, not checked.
	withPassword := strings.Replace(dsn, "postgres@", "postgres:s3cret@", 1)
	schema := pg.schema()
	logs := newLogRecorder()
	env := map[string]string{"DATABASE_URL": withPassword, "NATS_URL": "nats://127.0.0.1:1"}
	p := eventbus.New(eventbus.Options{Logger: slog.New(logs), Getenv: func(k string) string { return env[k] }})
	startModules(t, p,
		decl{eventbus.TypeBroker, "db", map[string]any{"provider": "postgres", "schema": schema, "notify": false}},
	)
	lines := logs.matching("connected to PostgreSQL")
	if len(lines) != 1 {
		t.Fatalf("%d start lines, want 1: %v", len(lines), lines)
	}
	want := map[string]string{
		"broker": "db", "dsn": strings.Replace(dsn, "postgres@", "postgres:redacted@", 1), "schema": schema,
		"notify": "false", "reason": "DATABASE_URL is set",
	}
	for k, v := range want {
		if got := lines[0].attrs[k]; got != v {
			t.Errorf("%s = %q, want %q (line %v)", k, got, v, lines[0].attrs)
		}
	}
}

// TestPostgresDown: a database that cannot be reached at start is an error
// naming the broker and the database, without its password.
func TestPostgresDown(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	p := eventbus.New(eventbus.Options{})
	m, err := p.CreateModule(context.Background(), eventbus.TypeBroker, "orders-db", map[string]any{
		"provider": "postgres", "dsn": "postgres://app:s3cret@" + addr + "/app",
	})
	if err != nil {
		t.Fatal(err)
	}
	err = m.Start(context.Background())
	if !errors.Is(err, bus.ErrNotConnected) {
		t.Fatalf("start = %v, want ErrNotConnected", err)
	}
	for _, want := range []string{"broker orders-db:", "postgres://app:redacted@" + addr + "/app", "DSN from dsn/url in the config"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Errorf("error shows the password: %v", err)
	}
	t.Log(err)
	if err := m.Stop(context.Background()); err != nil {
		t.Fatalf("stop after a failed start: %v", err)
	}
}

// TestConsumerStates: the backlog the metrics report, as each broker
// counts it: messages not yet delivered, and delivered ones not settled.
func TestConsumerStates(t *testing.T) {
	t.Parallel()
	forEachBackend(t, testConsumerStates)
}

func testConsumerStates(t *testing.T, be backend) {
	a := ordersApp(t, be, nil)
	for i := range 5 {
		cfg := map[string]any{"subject": "orders.s", "payload": fmt.Sprint(i)}
		a.exec(a.step(eventbus.StepPublish, cfg), cfg, nil)
	}
	con := map[string]any{"consumer": "worker", "batch_size": float64(2), "max_wait": "5s"}
	if got := a.exec(a.step(eventbus.StepConsume, con), con, nil); got["count"] != float64(2) {
		t.Fatalf("consumed %v, want 2", got["count"])
	}
	want := []eventbus.ConsumerState{{Broker: "bus", Stream: "ORDERS", Consumer: "worker", Pending: 3, AckPending: 2}}
	var got []eventbus.ConsumerState
	waitFor(t, "the broker to count the deliveries", func() bool {
		got = a.p.ConsumerStates(context.Background())
		return len(got) == 1 && got[0] == want[0]
	})
}
