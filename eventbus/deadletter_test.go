package eventbus_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/wfeventbus/eventbus/bus"
	"github.com/wfeventbus/eventbus/bus/embedded"
	"github.com/wfeventbus/eventbus/bus/jetstream"
	"github.com/wfeventbus/eventbus/eventbus"
)

// logCounter counts the log records of each message.
type logCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *logCounter) Enabled(context.Context, slog.Level) bool { return true }
func (c *logCounter) Handle(_ context.Context, r slog.Record) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n[r.Message]++
	return nil
}
func (c *logCounter) WithAttrs([]slog.Attr) slog.Handler { return c }
func (c *logCounter) WithGroup(string) slog.Handler      { return c }

// count returns how many records said msg.
func (c *logCounter) count(msg string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[msg]
}

const (
	logDeadLetterRetrying = "dead-letter publish failed; the message is kept in progress and the publish retried until it is stored"
	logDeadLetterStopped  = "stopped before the dead letter was stored; the message is handed back to be dead-lettered on its next delivery"
)

// dlqEnv is an app on a broker of the test's own: streams ORDERS and DLQ,
// the latter made by the test, so that the test can take its subjects
// away; a consumer worker with max_deliver 2 whose dead letters go to
// dlq.orders; and a bus of the test's own on the same broker.
type dlqEnv struct {
	a    *app
	bus  *jetstream.Bus
	logs *logCounter
	srv  *embedded.Server
}

const dlqMaxDeliver = 2

func newDLQEnv(t *testing.T) *dlqEnv {
	t.Helper()
	ctx := testCtx(t)
	srv, err := embedded.Start(ctx, embedded.Config{StoreDir: t.TempDir(), Port: embedded.RandomPort})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	nc, err := jetstream.Connect(ctx, jetstream.ConnectConfig{URLs: []string{srv.ClientURL()}}, nats.ReconnectWait(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	b, err := jetstream.New(nc, jetstream.WithOwnedConn())
	if err != nil {
		nc.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	if _, err := b.EnsureStream(ctx, bus.StreamConfig{Name: "DLQ", Subjects: []string{"parked.>"}}); err != nil {
		t.Fatal(err)
	}
	logs := &logCounter{n: map[string]int{}}
	a := newAppWith(t, eventbus.Options{Logger: slog.New(logs)},
		decl{eventbus.TypeBroker, "bus", map[string]any{"url": srv.ClientURL()}},
		decl{eventbus.TypeStream, "orders", map[string]any{"name": "ORDERS", "subjects": []any{"orders.>"}}},
		decl{eventbus.TypeConsumer, "worker", map[string]any{
			"stream_name": "ORDERS", "max_deliver": float64(dlqMaxDeliver), "backoff": []any{"10ms"}, "dead_letter_subject": "dlq.orders",
		}},
	)
	return &dlqEnv{a: a, bus: b, logs: logs, srv: srv}
}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// dlqSubjects points the DLQ stream at subjects.
func (e *dlqEnv) dlqSubjects(t *testing.T, subjects ...string) {
	t.Helper()
	if _, err := e.bus.EnsureStream(testCtx(t), bus.StreamConfig{Name: "DLQ", Subjects: subjects}); err != nil {
		t.Fatal(err)
	}
}

// failing says whether input i always fails: 3 of every 10.
func failing(i int) bool { return i%10 < 3 }

// results records the pipeline's runs: the inputs that succeeded and how
// often each input ran.
type results struct {
	mu        sync.Mutex
	succeeded map[string]int
	runs      map[string]int
}

func newResults() *results { return &results{succeeded: map[string]int{}, runs: map[string]int{}} }

func (r *results) run(_ context.Context, data map[string]any) error {
	id := data["payload"].(string)
	i, _ := strconv.Atoi(id)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.runs[id]++
	if failing(i) {
		return errors.New("refused " + id)
	}
	r.succeeded[id]++
	return nil
}

func (r *results) snapshot() (succeeded, runs map[string]int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	succeeded, runs = map[string]int{}, map[string]int{}
	for k, v := range r.succeeded {
		succeeded[k] = v
	}
	for k, v := range r.runs {
		runs[k] = v
	}
	return succeeded, runs
}

func (e *dlqEnv) trigger(t *testing.T, r *results, concurrency int) eventbus.Trigger {
	t.Helper()
	tr, err := e.a.p.CreateTrigger(context.Background(), eventbus.TriggerSubscribe, "pipeline:orders", map[string]any{
		"name": "worker", "concurrency": float64(concurrency), "workflowType": "pipeline:orders",
	}, r.run)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return tr
}

func (e *dlqEnv) publishInputs(t *testing.T, n int, headers func(i int) bus.Headers) {
	t.Helper()
	msgs := make([]bus.OutgoingMessage, n)
	for i := range msgs {
		msgs[i] = bus.OutgoingMessage{Subject: fmt.Sprintf("orders.%d", i%7), Payload: []byte(strconv.Itoa(i))}
		if headers != nil {
			msgs[i].Headers = headers(i)
		}
	}
	results, err := e.bus.PublishBatch(testCtx(t), msgs)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range results {
		if r.Err != nil {
			t.Fatalf("input %d: %v", i, r.Err)
		}
	}
}

// deadLetters waits until DLQ holds want messages and the worker has
// nothing left to deliver or settle, then returns the dead letters.
func (e *dlqEnv) deadLetters(t *testing.T, want int) []*bus.Message {
	t.Helper()
	ctx := testCtx(t)
	waitFor(t, fmt.Sprintf("%d dead letters and every input settled", want), func() bool {
		si, err := e.bus.StreamInfo(ctx, "DLQ")
		if err != nil || si.Messages < uint64(want) {
			return false
		}
		ci, err := e.bus.ConsumerInfo(ctx, "ORDERS", "worker")
		return err == nil && ci.NumPending == 0 && ci.NumAckPending == 0
	})
	if _, err := e.bus.EnsureConsumer(ctx, bus.ConsumerConfig{Stream: "DLQ", Durable: "check"}); err != nil {
		t.Fatal(err)
	}
	var out []*bus.Message
	for {
		msgs, err := e.bus.Fetch(ctx, "DLQ", "check", bus.FetchOptions{Batch: 500, MaxWait: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) == 0 {
			return out
		}
		for _, m := range msgs {
			if err := m.Ack(ctx); err != nil {
				t.Fatal(err)
			}
		}
		out = append(out, msgs...)
	}
}

// checkEveryInputOnce checks that each of n inputs is in exactly one of
// the succeeded results and the dead letters, and that the failing ones
// ran max_deliver times (with handedBack, at least once and at most
// max_deliver times: a message a stopping trigger handed back unstarted
// used a delivery).
func checkEveryInputOnce(t *testing.T, n int, r *results, dead []*bus.Message, handedBack bool) {
	t.Helper()
	succeeded, runs := r.snapshot()
	letters := map[string]int{}
	for _, m := range dead {
		letters[string(m.Payload)]++
	}
	var missing, both, twice []string
	for i := range n {
		id := strconv.Itoa(i)
		switch s, d := succeeded[id], letters[id]; {
		case s == 0 && d == 0:
			missing = append(missing, id)
		case s > 0 && d > 0:
			both = append(both, id)
		case s > 1 || d > 1:
			twice = append(twice, id)
		}
		switch {
		case !failing(i):
		case !handedBack && runs[id] != dlqMaxDeliver:
			t.Errorf("failing input %s ran %d times, want %d", id, runs[id], dlqMaxDeliver)
		case runs[id] < 1 || runs[id] > dlqMaxDeliver:
			t.Errorf("failing input %s ran %d times, want 1 to %d", id, runs[id], dlqMaxDeliver)
		}
	}
	t.Logf("inputs=%d succeeded=%d dead-lettered=%d (stored %d) missing=%d in-both=%d twice=%d",
		n, len(succeeded), len(letters), len(dead), len(missing), len(both), len(twice))
	if len(missing)+len(both)+len(twice) > 0 || len(dead) != len(letters) {
		t.Fatalf("not every input in exactly one of results and dead letters: missing %v, in both %v, twice %v, %d dead letters for %d inputs",
			missing, both, twice, len(dead), len(letters))
	}
}

// TestDeadLettersWaitForTheirStream runs 600 inputs, 3 in 10 of which
// always fail, while the dead-letter stream captures no subject; once
// every run is held up by a dead letter the broker refuses, the stream
// gets its subject back. Every input must end in exactly one of the
// results and the dead letters, and the consumer must hold nothing back.
func TestDeadLettersWaitForTheirStream(t *testing.T) {
	t.Parallel()
	const (
		inputs      = 600
		concurrency = 16
	)
	e := newDLQEnv(t)
	ci, err := e.bus.ConsumerInfo(testCtx(t), "ORDERS", "worker")
	if err != nil {
		t.Fatal(err)
	}
	if ci.Config.MaxDeliver != 0 {
		t.Fatalf("the broker's consumer has max_deliver %d, want none: the trigger counts deliveries itself", ci.Config.MaxDeliver)
	}
	r := newResults()
	tr := e.trigger(t, r, concurrency)
	t.Cleanup(func() { _ = tr.Stop(context.Background()) })
	e.publishInputs(t, inputs, nil)
	waitFor(t, "every run held up by its dead letter", func() bool { return e.logs.count(logDeadLetterRetrying) >= concurrency })
	e.dlqSubjects(t, "dlq.>")
	dead := e.deadLetters(t, inputs*3/10)
	checkEveryInputOnce(t, inputs, r, dead, false)
	for _, m := range dead {
		if !strings.Contains(m.Headers.Get(eventbus.HeaderError), "refused "+string(m.Payload)) {
			t.Errorf("dead letter %s says %q, want the pipeline's error", m.Payload, m.Headers.Get(eventbus.HeaderError))
		}
	}
}

// TestDeadLetterHandedBackOnStop stops the trigger while its runs wait for
// a dead-letter stream that captures no subject, then gives the stream its
// subject and starts a new trigger on the same consumer: the messages
// handed back after their last allowed delivery are dead-lettered on
// their next one without running the pipeline again, and every input ends
// in exactly one of the results and the dead letters.
func TestDeadLetterHandedBackOnStop(t *testing.T) {
	t.Parallel()
	const (
		inputs      = 100
		concurrency = 8
	)
	e := newDLQEnv(t)
	r := newResults()
	first := e.trigger(t, r, concurrency)
	e.publishInputs(t, inputs, nil)
	waitFor(t, "every run held up by its dead letter", func() bool { return e.logs.count(logDeadLetterRetrying) >= concurrency })
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := first.Stop(ctx); err == nil {
		t.Fatal("Stop returned nil while every run waited for its dead letter")
	}
	waitFor(t, "every held message handed back", func() bool { return e.logs.count(logDeadLetterStopped) >= concurrency })

	e.dlqSubjects(t, "dlq.>")
	second := e.trigger(t, r, concurrency)
	t.Cleanup(func() { _ = second.Stop(context.Background()) })
	dead := e.deadLetters(t, inputs*3/10)
	checkEveryInputOnce(t, inputs, r, dead, true)
	handedBack := 0
	for _, m := range dead {
		if strings.Contains(m.Headers.Get(eventbus.HeaderError), "more than max_deliver") {
			handedBack++
		}
	}
	t.Logf("dead letters of messages handed back on stop: %d", handedBack)
	if handedBack < concurrency {
		t.Fatalf("%d dead letters say their message came back after its last delivery, want at least %d", handedBack, concurrency)
	}
}

// TestDeadLetterKeepsControlHeadersAsOriginals dead-letters 287 inputs
// published with NATS control headers (an expected stream, a msg id): each
// must reach the dead-letter stream, whose name is not the expected one,
// carrying them as Eventbus-Original-* and not as controls.
func TestDeadLetterKeepsControlHeadersAsOriginals(t *testing.T) {
	t.Parallel()
	const inputs = 287
	e := newDLQEnv(t)
	e.dlqSubjects(t, "dlq.>")
	r := newResults()
	tr := e.trigger(t, r, 8)
	t.Cleanup(func() { _ = tr.Stop(context.Background()) })
	// Inputs 0, 1 and 2 of every 10 fail; these are numbered so that all do.
	msgs := make([]bus.OutgoingMessage, inputs)
	for i := range msgs {
		n := i/3*10 + i%3
		msgs[i] = bus.OutgoingMessage{
			Subject: "orders.x", Payload: []byte(strconv.Itoa(n)),
			Headers:        bus.Headers{"X-Tenant": {"acme"}},
			ExpectedStream: "ORDERS", MsgID: "in-" + strconv.Itoa(n),
		}
	}
	results, err := e.bus.PublishBatch(testCtx(t), msgs)
	if err != nil {
		t.Fatal(err)
	}
	for i, res := range results {
		if res.Err != nil {
			t.Fatalf("input %d: %v", i, res.Err)
		}
	}
	dead := e.deadLetters(t, inputs)
	if len(dead) != inputs {
		t.Fatalf("%d dead letters, want %d", len(dead), inputs)
	}
	for _, m := range dead {
		id := string(m.Payload)
		h := m.Headers
		if h.Get(eventbus.HeaderOriginalPrefix+"Nats-Expected-Stream") != "ORDERS" || h.Get(eventbus.HeaderOriginalPrefix+"Nats-Msg-Id") != "in-"+id ||
			h.Get("Nats-Expected-Stream") != "" || h.Get("X-Tenant") != "acme" || h.Get(eventbus.HeaderStream) != "ORDERS" {
			t.Fatalf("dead letter %s has headers %v, want the controls as %s* only and X-Tenant kept", id, h, eventbus.HeaderOriginalPrefix)
		}
	}
	t.Logf("inputs=%d dead-lettered=%d", inputs, len(dead))
}
