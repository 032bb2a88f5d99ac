package eventbus_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wfeventbus/eventbus/bus"
	"github.com/wfeventbus/eventbus/bus/embedded"
	"github.com/wfeventbus/eventbus/eventbus"
)

// decl is one module of a test app.
type decl struct {
	typ, name string
	config    map[string]any
}

// app is a Plugin with its modules created, initialised and started in
// declaration order, and stopped in reverse when the test ends.
type app struct {
	t    *testing.T
	p    *eventbus.Plugin
	mods []eventbus.Module
}

func embeddedBroker(t *testing.T, name string) decl {
	return decl{eventbus.TypeBroker, name, map[string]any{
		"embedded": map[string]any{"port": float64(-1), "store_dir": t.TempDir()},
	}}
}

func newApp(t *testing.T, decls ...decl) *app {
	t.Helper()
	return newAppWith(t, eventbus.Options{}, decls...)
}

func newAppWith(t *testing.T, opts eventbus.Options, decls ...decl) *app {
	t.Helper()
	a := &app{t: t, p: eventbus.New(opts)}
	ctx := context.Background()
	for _, d := range decls {
		m, err := a.p.CreateModule(ctx, d.typ, d.name, d.config)
		if err != nil {
			t.Fatalf("create %s: %v", d.name, err)
		}
		a.mods = append(a.mods, m)
	}
	t.Cleanup(func() {
		for i := len(a.mods) - 1; i >= 0; i-- {
			if err := a.mods[i].Stop(context.Background()); err != nil {
				t.Errorf("stop: %v", err)
			}
		}
	})
	for _, m := range a.mods {
		if err := m.Init(ctx); err != nil {
			t.Fatalf("init: %v", err)
		}
	}
	for _, m := range a.mods {
		if err := m.Start(ctx); err != nil {
			t.Fatalf("start: %v", err)
		}
	}
	return a
}

func (a *app) step(typ string, config map[string]any) eventbus.Step {
	a.t.Helper()
	s, err := a.p.CreateStep(context.Background(), typ, "s", config)
	if err != nil {
		a.t.Fatalf("create step %s: %v", typ, err)
	}
	return s
}

func (a *app) exec(s eventbus.Step, config, current map[string]any) map[string]any {
	a.t.Helper()
	out, err := s.Execute(context.Background(), eventbus.MapInput{Rendered: config, Data: current})
	if err != nil {
		a.t.Fatalf("execute: %v", err)
	}
	return out
}

func ordersApp(t *testing.T, be backend, consumer map[string]any) *app {
	base := map[string]any{"stream_name": "ORDERS"}
	for k, v := range consumer {
		base[k] = v
	}
	return newApp(t,
		be.broker(t, "bus"),
		decl{eventbus.TypeStream, "orders", map[string]any{"name": "ORDERS", "subjects": []any{"orders.>"}}},
		decl{eventbus.TypeConsumer, "worker", base},
	)
}

func TestPublishConsumeAck(t *testing.T) {
	t.Parallel()
	forEachBackend(t, testPublishConsumeAck)
}

func testPublishConsumeAck(t *testing.T, be backend) {
	a := ordersApp(t, be, nil)
	pubCfg := map[string]any{"subject": "orders.created", "payload": map[string]any{"id": float64(7)}, "headers": map[string]any{"x-src": "test"}, "msg_id": "o-7"}
	pub := a.step(eventbus.StepPublish, pubCfg)
	out := a.exec(pub, pubCfg, nil)
	if out["stream"] != "ORDERS" || out["sequence"] != "1" || out["duplicate"] != false {
		t.Fatalf("publish output = %v", out)
	}
	if again := a.exec(pub, pubCfg, nil); again["duplicate"] != true {
		t.Fatalf("second publish with the same msg_id: %v, want duplicate", again)
	}

	conCfg := map[string]any{"consumer": "worker", "batch_size": float64(10), "max_wait": "500ms"}
	con := a.step(eventbus.StepConsume, conCfg)
	got := a.exec(con, conCfg, nil)
	msgs := got["messages"].([]any)
	if len(msgs) != 1 {
		t.Fatalf("consumed %d messages, want 1", len(msgs))
	}
	m := msgs[0].(map[string]any)
	if m["subject"] != "orders.created" || m["payload"] != `{"id":7}` || m["json"].(map[string]any)["id"] != float64(7) ||
		m["headers"].(map[string]any)["x-src"] != "test" || m["delivery_count"] != float64(1) {
		t.Fatalf("message = %v", m)
	}

	ack := a.step(eventbus.StepAck, map[string]any{})
	a.exec(ack, map[string]any{}, m)
	if _, err := ack.Execute(context.Background(), eventbus.MapInput{Rendered: map[string]any{}, Data: m}); !errors.Is(err, bus.ErrStaleToken) {
		t.Fatalf("second ack: %v, want ErrStaleToken", err)
	}
	if got := a.exec(con, map[string]any{"consumer": "worker", "max_wait": "200ms"}, nil); len(got["messages"].([]any)) != 0 {
		t.Fatalf("acked message delivered again: %v", got)
	}
}

func TestSettleSteps(t *testing.T) {
	t.Parallel()
	forEachBackend(t, testSettleSteps)
}

func testSettleSteps(t *testing.T, be backend) {
	a := ordersApp(t, be, map[string]any{"ack_wait": "30s"})
	pubCfg := map[string]any{"subject": "orders.x", "payload": "plain text"}
	a.exec(a.step(eventbus.StepPublish, pubCfg), pubCfg, nil)
	conCfg := map[string]any{"consumer": "worker", "max_wait": "2s", "batch_size": "1"}
	con := a.step(eventbus.StepConsume, conCfg)
	first := a.exec(con, conCfg, nil)["messages"].([]any)[0].(map[string]any)

	a.exec(a.step(eventbus.StepInProgress, nil), nil, first)
	nak := map[string]any{"ack_token": first["ack_token"], "delay": "10ms"}
	a.exec(a.step(eventbus.StepNak, nak), nak, nil)

	second := a.exec(con, conCfg, nil)["messages"].([]any)[0].(map[string]any)
	if second["delivery_count"] != float64(2) || second["payload"] != "plain text" {
		t.Fatalf("redelivery = %v", second)
	}
	term := map[string]any{"reason": "bad order"}
	a.exec(a.step(eventbus.StepTerm, term), term, second)
	if got := a.exec(con, map[string]any{"consumer": "worker", "max_wait": "300ms"}, nil); got["count"] != float64(0) {
		t.Fatalf("terminated message delivered again: %v", got)
	}
}

// countingMetrics records every count it is given, as "what labels n".
type countingMetrics struct {
	mu  sync.Mutex
	got []string
}

func (m *countingMetrics) add(s string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.got = append(m.got, s)
}

func (m *countingMetrics) StreamDeclared(stream string) { m.add("stream " + stream) }
func (m *countingMetrics) ConsumerDeclared(stream, consumer string) {
	m.add("consumer " + stream + "/" + consumer)
}
func (m *countingMetrics) Published(stream string, n int) {
	m.add(fmt.Sprintf("published %s %d", stream, n))
}
func (m *countingMetrics) Settled(stream, consumer, kind string) {
	m.add("settled " + stream + "/" + consumer + " " + kind)
}
func (m *countingMetrics) DeadLettered(stream, consumer string) {
	m.add("dead-lettered " + stream + "/" + consumer)
}

func (m *countingMetrics) all() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.got...)
}

// TestMetricsByStreamAndConsumer checks what the plugin counts, labelled
// by stream and consumer: the declared ones as they are set up, messages
// published by the stream that stored them, and settlements by token with
// the stream and consumer the token came from.
func TestMetricsByStreamAndConsumer(t *testing.T) {
	t.Parallel()
	forEachBackend(t, testMetricsByStreamAndConsumer)
}

func testMetricsByStreamAndConsumer(t *testing.T, be backend) {
	m := &countingMetrics{}
	a := newAppWith(t, eventbus.Options{Metrics: m},
		be.broker(t, "bus"),
		decl{eventbus.TypeStream, "orders", map[string]any{"name": "ORDERS", "subjects": []any{"orders.>"}}},
		decl{eventbus.TypeStream, "audit", map[string]any{"name": "AUDIT", "subjects": []any{"audit.>"}}},
		decl{eventbus.TypeConsumer, "worker", map[string]any{"stream_name": "ORDERS"}},
	)
	one := map[string]any{"subject": "orders.a", "payload": "1"}
	a.exec(a.step(eventbus.StepPublish, one), one, nil)
	batch := map[string]any{"messages": []any{
		map[string]any{"subject": "orders.b", "payload": "2"},
		map[string]any{"subject": "audit.b", "payload": "3"},
		map[string]any{"subject": "orders.c", "payload": "4"},
	}}
	a.exec(a.step(eventbus.StepPublish, batch), batch, nil)
	conCfg := map[string]any{"consumer": "worker", "max_wait": "2s", "batch_size": "3"}
	msgs := a.exec(a.step(eventbus.StepConsume, conCfg), conCfg, nil)["messages"].([]any)
	if len(msgs) != 3 {
		t.Fatalf("consumed %d messages, want 3", len(msgs))
	}
	for i, kind := range []string{eventbus.StepAck, eventbus.StepTerm, eventbus.StepInProgress} {
		cfg := map[string]any{"ack_token": msgs[i].(map[string]any)["ack_token"]}
		a.exec(a.step(kind, cfg), cfg, nil)
	}
	got := m.all()
	slices.Sort(got)
	want := []string{
		"consumer ORDERS/worker",
		"published AUDIT 1",
		"published ORDERS 1",
		"published ORDERS 2",
		"settled ORDERS/worker ack",
		"settled ORDERS/worker term",
		"stream AUDIT",
		"stream ORDERS",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("counts:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// TestExplicitAckTokenRenderedEmpty: an ack step whose ack_token is given
// but renders empty must fail, not settle the triggering message in its
// place; an empty literal is refused when the step is created; a step
// without the field still settles the triggering message.
func TestExplicitAckTokenRenderedEmpty(t *testing.T) {
	t.Parallel()
	forEachBackend(t, testExplicitAckTokenRenderedEmpty)
}

func testExplicitAckTokenRenderedEmpty(t *testing.T, be backend) {
	a := ordersApp(t, be, map[string]any{"ack_wait": "30s"})
	pubCfg := map[string]any{"subject": "orders.x", "payload": "p"}
	a.exec(a.step(eventbus.StepPublish, pubCfg), pubCfg, nil)
	conCfg := map[string]any{"consumer": "worker", "max_wait": "2s", "batch_size": "1"}
	msg := a.exec(a.step(eventbus.StepConsume, conCfg), conCfg, nil)["messages"].([]any)[0].(map[string]any)
	ctx := context.Background()

	for _, kind := range []string{eventbus.StepAck, eventbus.StepNak, eventbus.StepTerm, eventbus.StepInProgress} {
		templated, err := a.p.CreateStep(ctx, kind, "s", map[string]any{"ack_token": "{{ .other.ack_token }}"})
		if err != nil {
			t.Fatal(err)
		}
		_, err = templated.Execute(ctx, eventbus.MapInput{Rendered: map[string]any{"ack_token": ""}, Data: msg})
		if !errors.Is(err, eventbus.ErrConfig) || !strings.Contains(err.Error(), "ack_token rendered empty") {
			t.Fatalf("%s with ack_token rendered empty = %v, want ErrConfig naming ack_token", kind, err)
		}
		if _, err := a.p.CreateStep(ctx, kind, "s", map[string]any{"ack_token": ""}); !errors.Is(err, eventbus.ErrConfig) {
			t.Fatalf("%s with an empty ack_token = %v, want ErrConfig", kind, err)
		}
	}
	// The triggering message was left alone: it can still be acked, once.
	a.exec(a.step(eventbus.StepAck, nil), nil, msg)
	if _, err := a.step(eventbus.StepAck, nil).Execute(ctx, eventbus.MapInput{Data: msg}); !errors.Is(err, bus.ErrStaleToken) {
		t.Fatalf("second ack of the triggering message = %v, want ErrStaleToken", err)
	}
}

func TestDeclarationOrderDoesNotMatter(t *testing.T) {
	t.Parallel()
	forEachBackend(t, testDeclarationOrderDoesNotMatter)
}

func testDeclarationOrderDoesNotMatter(t *testing.T, be backend) {
	a := newApp(t,
		decl{eventbus.TypeConsumer, "worker", map[string]any{"stream_name": "LATE"}},
		decl{eventbus.TypeStream, "late", map[string]any{"name": "LATE", "subjects": []any{"late.>"}}},
		be.broker(t, "bus"),
	)
	cfg := map[string]any{"subject": "late.one", "payload": "x"}
	a.exec(a.step(eventbus.StepPublish, cfg), cfg, nil)
	con := map[string]any{"consumer": "worker", "max_wait": "2s"}
	if got := a.exec(a.step(eventbus.StepConsume, con), con, nil); got["count"] != float64(1) {
		t.Fatalf("consume = %v", got)
	}
}

func TestTemplatedNumberField(t *testing.T) {
	t.Parallel()
	forEachBackend(t, testTemplatedNumberField)
}

func testTemplatedNumberField(t *testing.T, be backend) {
	a := ordersApp(t, be, nil)
	for i := range 3 {
		cfg := map[string]any{"subject": fmt.Sprintf("orders.%d", i), "payload": "p"}
		a.exec(a.step(eventbus.StepPublish, cfg), cfg, nil)
	}
	raw := map[string]any{"consumer": "worker", "batch_size": "{{ .n }}", "max_wait": "{{ .wait }}"}
	con := a.step(eventbus.StepConsume, raw)
	got := a.exec(con, map[string]any{"consumer": "worker", "batch_size": "2", "max_wait": "1s"}, nil)
	if got["count"] != float64(2) {
		t.Fatalf("rendered batch_size 2 consumed %v", got["count"])
	}
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	forEachBackend(t, testBadInput)
}

func testBadInput(t *testing.T, be backend) {
	a := newApp(t,
		be.broker(t, "bus"),
		decl{eventbus.TypeStream, "small", map[string]any{"name": "SMALL", "subjects": []any{"small.>"}, "max_msg_size": float64(64)}},
	)
	ctx := context.Background()
	cases := []struct {
		name string
		run  func() error
		is   error
		says string
	}{
		{"unknown module type", func() error {
			_, err := a.p.CreateModule(ctx, "eventbus.nope", "x", nil)
			return err
		}, eventbus.ErrUnknownType, "eventbus.nope"},
		{"unknown step type", func() error {
			_, err := a.p.CreateStep(ctx, "step.eventbus.nope", "x", nil)
			return err
		}, eventbus.ErrUnknownType, "step.eventbus.nope"},
		{"misspelt stream field", func() error {
			_, err := a.p.CreateModule(ctx, eventbus.TypeStream, "s2", map[string]any{"subjects": []any{"a"}, "retention_polcy": "workqueue"})
			return err
		}, eventbus.ErrConfig, "retention_polcy"},
		{"wrong field type", func() error {
			_, err := a.p.CreateModule(ctx, eventbus.TypeStream, "s3", map[string]any{"subjects": []any{"a"}, "max_msgs": "many"})
			return err
		}, eventbus.ErrConfig, "max_msgs"},
		{"stream without subjects", func() error {
			_, err := a.p.CreateModule(ctx, eventbus.TypeStream, "s4", map[string]any{})
			return err
		}, eventbus.ErrConfig, "subjects"},
		{"unknown broker_ref", func() error {
			_, err := a.p.CreateStep(ctx, eventbus.StepPublish, "x", map[string]any{"broker_ref": "nope"})
			return err
		}, eventbus.ErrUnknownRef, `config.broker_ref: unknown reference: no eventbus.broker module named "nope"`},
		{"batch too large", func() error {
			_, err := a.p.CreateStep(ctx, eventbus.StepConsume, "x", map[string]any{"consumer": "c", "batch_size": float64(2000)})
			return err
		}, eventbus.ErrConfig, "batch_size"},
		{"negative max_wait", func() error {
			_, err := a.p.CreateStep(ctx, eventbus.StepConsume, "x", map[string]any{"consumer": "c", "max_wait": "-1s"})
			return err
		}, eventbus.ErrConfig, `config.max_wait: out of range: "-1s" is negative`},
		{"negative nak delay", func() error {
			_, err := a.p.CreateStep(ctx, eventbus.StepNak, "x", map[string]any{"delay": "-5s"})
			return err
		}, eventbus.ErrConfig, `config.delay: out of range: "-5s" is negative`},
		{"negative templated nak delay", func() error {
			s, err := a.p.CreateStep(ctx, eventbus.StepNak, "x", map[string]any{"delay": "{{ .wait }}", "ack_token": "t"})
			if err != nil {
				return err
			}
			_, err = s.Execute(ctx, eventbus.MapInput{Rendered: map[string]any{"delay": "-5s", "ack_token": "t"}})
			return err
		}, eventbus.ErrConfig, `config.delay: out of range: "-5s" is negative`},
		{"publish without subject", func() error {
			s, err := a.p.CreateStep(ctx, eventbus.StepPublish, "x", map[string]any{})
			if err != nil {
				return err
			}
			_, err = s.Execute(ctx, eventbus.MapInput{Rendered: map[string]any{}})
			return err
		}, eventbus.ErrConfig, "subject"},
		{"malformed ack token", func() error {
			cfg := map[string]any{"ack_token": "forged"}
			s, err := a.p.CreateStep(ctx, eventbus.StepAck, "x", cfg)
			if err != nil {
				return err
			}
			_, err = s.Execute(ctx, eventbus.MapInput{Rendered: cfg})
			return err
		}, bus.ErrInvalidToken, ""},
		{"no ack token", func() error {
			s, err := a.p.CreateStep(ctx, eventbus.StepAck, "x", nil)
			if err != nil {
				return err
			}
			_, err = s.Execute(ctx, eventbus.MapInput{})
			return err
		}, eventbus.ErrConfig, "ack_token"},
		{"payload over max_msg_size", func() error {
			cfg := map[string]any{"subject": "small.x", "payload": strings.Repeat("x", 200)}
			s, err := a.p.CreateStep(ctx, eventbus.StepPublish, "x", cfg)
			if err != nil {
				return err
			}
			_, err = s.Execute(ctx, eventbus.MapInput{Rendered: cfg})
			return err
		}, bus.ErrPayloadTooLarge, ""},
		{"no stream for subject", func() error {
			s, err := a.p.CreateStep(ctx, eventbus.StepPublish, "x", map[string]any{"subject": "{{ .to }}", "payload": "p"})
			if err != nil {
				return err
			}
			_, err = s.Execute(ctx, eventbus.MapInput{Rendered: map[string]any{"subject": "nowhere.x", "payload": "p"}})
			return err
		}, bus.ErrNoStream, ""},
		{"trigger without consumer", func() error {
			_, err := a.p.CreateTrigger(ctx, eventbus.TriggerSubscribe, "pipeline:p", map[string]any{"workflowType": "pipeline:p"}, func(context.Context, map[string]any) error { return nil })
			return err
		}, eventbus.ErrConfig, "config.name"},
		{"trigger without stream", func() error {
			_, err := a.p.CreateTrigger(ctx, eventbus.TriggerSubscribe, "pipeline:p", map[string]any{"name": "undeclared"}, func(context.Context, map[string]any) error { return nil })
			return err
		}, eventbus.ErrUnknownRef, "stream_name"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.run()
			if !errors.Is(err, c.is) || !strings.Contains(err.Error(), c.says) {
				t.Fatalf("err = %v, want %v mentioning %q", err, c.is, c.says)
			}
		})
	}
}

func TestReferenceConfigNames(t *testing.T) {
	t.Parallel()
	forEachBackend(t, testReferenceConfigNames)
}

func testReferenceConfigNames(t *testing.T, be backend) {
	a := newApp(t,
		be.reference(t, "events"),
		decl{eventbus.TypeStreamAlias, "jobs", map[string]any{
			"name": "JOBS", "subjects": []any{"jobs.>"}, "retention_policy": "RETENTION_POLICY_WORKQUEUE",
			"num_replicas": float64(1), "max_bytes": float64(1 << 20), "max_age": "1h", "ack_wait": "45s", "broker_ref": "events",
		}},
		decl{eventbus.TypeConsumerAlias, "jobs-worker", map[string]any{
			"name": "jobs-worker", "stream_name": "JOBS", "filter_subject": "jobs.>", "deliver_policy": "DELIVER_POLICY_ALL",
			"ack_policy": "ACK_POLICY_EXPLICIT", "max_deliver": float64(5), "broker_ref": "events",
		}},
	)
	var runs atomic.Int32
	tr, err := a.p.CreateTrigger(context.Background(), eventbus.TriggerSubscribe, "pipeline:jobs", map[string]any{
		"consumer": "jobs-worker", "bus": "events", "workflowType": "pipeline:jobs",
	}, func(context.Context, map[string]any) error { runs.Add(1); return nil })
	if err != nil {
		t.Fatal(err)
	}
	startTrigger(t, tr)
	cfg := map[string]any{"subject": "jobs.a", "payload": "1", "broker_ref": "events", "correlation_id": "c-1"}
	a.exec(a.step(eventbus.StepPublish, cfg), cfg, nil)
	waitFor(t, "the pipeline to run", func() bool { return runs.Load() == 1 })
}

func startTrigger(t *testing.T, tr eventbus.Trigger) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	if err := tr.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// The trigger must outlive the context it was started with.
	cancel()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := tr.Stop(ctx); err != nil {
			t.Errorf("stop trigger: %v", err)
		}
	})
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestSubscribeTrigger(t *testing.T) {
	t.Parallel()
	forEachBackend(t, testSubscribeTrigger)
}

func testSubscribeTrigger(t *testing.T, be backend) {
	const total = 300
	a := newApp(t,
		be.broker(t, "bus"),
		decl{eventbus.TypeStream, "orders", map[string]any{"name": "ORDERS", "subjects": []any{"orders.>"}}},
		decl{eventbus.TypeStream, "dlq", map[string]any{"name": "DLQ", "subjects": []any{"dlq.>"}}},
		decl{eventbus.TypeConsumer, "worker", map[string]any{
			"stream_name": "ORDERS", "max_deliver": float64(3), "backoff": []any{"20ms"}, "dead_letter_subject": "dlq.orders",
		}},
	)
	var (
		mu        sync.Mutex
		succeeded = map[string]int{}
		failures  = map[string]int{}
	)
	run := func(_ context.Context, data map[string]any) error {
		id := data["payload"].(string)
		mu.Lock()
		defer mu.Unlock()
		if id == "poison" || (strings.HasSuffix(id, "0") && failures[id] == 0) {
			failures[id]++
			return errors.New("refused " + id)
		}
		succeeded[id]++
		return nil
	}
	tr, err := a.p.CreateTrigger(context.Background(), eventbus.TriggerSubscribe, "pipeline:orders", map[string]any{
		"name": "worker", "concurrency": "8", "workflowType": "pipeline:orders",
	}, run)
	if err != nil {
		t.Fatal(err)
	}
	startTrigger(t, tr)

	msgs := make([]any, 0, total+1)
	for i := range total {
		msgs = append(msgs, map[string]any{"subject": fmt.Sprintf("orders.%d", i%5), "payload": fmt.Sprint(i)})
	}
	msgs = append(msgs, map[string]any{"subject": "orders.bad", "payload": "poison"})
	batch := map[string]any{"messages": msgs}
	if out := a.exec(a.step(eventbus.StepPublish, batch), batch, nil); out["count"] != float64(total+1) {
		t.Fatalf("batch publish = %v", out["count"])
	}

	dlq := newDLQReader(t, a)
	waitFor(t, "every message to be processed", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(succeeded) == total && failures["poison"] == 3
	})
	mu.Lock()
	for i := range total {
		id := fmt.Sprint(i)
		if succeeded[id] < 1 {
			t.Errorf("message %s never succeeded", id)
		}
		if strings.HasSuffix(id, "0") && failures[id] != 1 {
			t.Errorf("message %s failed %d times, want once", id, failures[id])
		}
	}
	mu.Unlock()
	var dead map[string]any
	waitFor(t, "the poison message on the dead-letter subject", func() bool {
		got := a.exec(dlq, map[string]any{"consumer": "dlq-reader", "stream_name": "DLQ", "max_wait": "200ms"}, nil)["messages"].([]any)
		if len(got) > 0 {
			dead = got[0].(map[string]any)
		}
		return dead != nil
	})
	h := dead["headers"].(map[string]any)
	if dead["payload"] != "poison" || h[eventbus.HeaderDeliveryCount] != "3" || h[eventbus.HeaderSubject] != "orders.bad" || !strings.Contains(h[eventbus.HeaderError].(string), "refused poison") {
		t.Fatalf("dead letter = %v", dead)
	}
}

// newDLQReader declares a consumer on DLQ through a trigger-less consumer
// module and returns a consume step for it.
func newDLQReader(t *testing.T, a *app) eventbus.Step {
	t.Helper()
	ctx := context.Background()
	m, err := a.p.CreateModule(ctx, eventbus.TypeConsumer, "dlq-reader", map[string]any{"stream_name": "DLQ"})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Init(ctx); err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return a.step(eventbus.StepConsume, map[string]any{"consumer": "dlq-reader"})
}

// TestTriggerLongRunsWithBacklogRunOnce runs pipelines ten times as long as
// the ack wait, with more messages than the trigger runs at once: the
// messages waiting for a free run wait ten ack waits too. Each message must
// run exactly once, on its first delivery.
func TestTriggerLongRunsWithBacklogRunOnce(t *testing.T) {
	t.Parallel()
	forEachBackend(t, testTriggerLongRunsWithBacklogRunOnce)
}

func testTriggerLongRunsWithBacklogRunOnce(t *testing.T, be backend) {
	const (
		ackWait     = time.Second
		runFor      = 10 * ackWait
		concurrency = 2
		total       = 4
	)
	a := ordersApp(t, be, map[string]any{"ack_wait": ackWait.String()})
	var (
		mu       sync.Mutex
		runs     = map[string]int{}
		late     []string
		finished atomic.Int32
	)
	tr, err := a.p.CreateTrigger(context.Background(), eventbus.TriggerSubscribe, "pipeline:slow",
		map[string]any{"name": "worker", "concurrency": float64(concurrency)},
		func(ctx context.Context, data map[string]any) error {
			seq := fmt.Sprint(data["sequence"])
			mu.Lock()
			runs[seq]++
			if data["delivery_count"] != float64(1) {
				late = append(late, fmt.Sprintf("sequence %s delivery %v", seq, data["delivery_count"]))
			}
			mu.Unlock()
			select {
			case <-time.After(runFor):
			case <-ctx.Done():
				return ctx.Err()
			}
			finished.Add(1)
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	startTrigger(t, tr)
	for i := range total {
		cfg := map[string]any{"subject": "orders.slow", "payload": fmt.Sprint(i)}
		a.exec(a.step(eventbus.StepPublish, cfg), cfg, nil)
	}
	waitFor(t, "every run to finish", func() bool { return finished.Load() == total })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := tr.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for seq := 1; seq <= total; seq++ {
		if n := runs[fmt.Sprint(seq)]; n != 1 {
			t.Errorf("message %d ran %d times, want once", seq, n)
		}
	}
	if len(runs) != total || len(late) > 0 {
		t.Errorf("runs by sequence %v; redeliveries that ran: %v", runs, late)
	}
}

func TestTriggerStopWaitsForRuns(t *testing.T) {
	t.Parallel()
	forEachBackend(t, testTriggerStopWaitsForRuns)
}

func testTriggerStopWaitsForRuns(t *testing.T, be backend) {
	a := ordersApp(t, be, nil)
	started, release := make(chan struct{}), make(chan struct{})
	var finished atomic.Bool
	tr, err := a.p.CreateTrigger(context.Background(), eventbus.TriggerSubscribe, "pipeline:p", map[string]any{"name": "worker"},
		func(context.Context, map[string]any) error {
			close(started)
			<-release
			finished.Store(true)
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	cfg := map[string]any{"subject": "orders.1", "payload": "x"}
	a.exec(a.step(eventbus.StepPublish, cfg), cfg, nil)
	<-started
	go func() { time.Sleep(200 * time.Millisecond); close(release) }()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := tr.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if !finished.Load() {
		t.Fatal("Stop returned before the running pipeline finished")
	}
	if err := tr.Stop(ctx); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
}

func TestTwoBrokers(t *testing.T) {
	t.Parallel()
	forEachBackend(t, testTwoBrokers)
}

func testTwoBrokers(t *testing.T, be backend) {
	a := newApp(t,
		be.broker(t, "east"),
		be.broker(t, "west"),
		decl{eventbus.TypeStream, "e", map[string]any{"name": "EV", "subjects": []any{"ev.>"}, "broker_ref": "east"}},
		decl{eventbus.TypeStream, "w", map[string]any{"name": "WV", "subjects": []any{"ev.>"}, "broker_ref": "west"}},
	)
	for _, ref := range []string{"east", "west", "west"} {
		cfg := map[string]any{"subject": "ev.x", "payload": ref, "broker_ref": ref}
		a.exec(a.step(eventbus.StepPublish, cfg), cfg, nil)
	}
	if _, err := a.p.CreateStep(context.Background(), eventbus.StepPublish, "x", map[string]any{}); !errors.Is(err, eventbus.ErrUnknownRef) {
		t.Fatalf("publish without broker_ref among two brokers: %v, want ErrUnknownRef", err)
	}
	last := map[string]any{"subject": "ev.y", "payload": "p", "broker_ref": "west"}
	if out := a.exec(a.step(eventbus.StepPublish, last), last, nil); out["stream"] != "WV" || out["sequence"] != "3" {
		t.Fatalf("west publish = %v, want WV seq 3", out)
	}
}

func TestEmbeddedPortInUse(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	p := eventbus.New(eventbus.Options{})
	m, err := p.CreateModule(context.Background(), eventbus.TypeBroker, "bus", map[string]any{
		"embedded": map[string]any{"port": float64(port), "store_dir": t.TempDir()},
	})
	if err != nil {
		t.Fatal(err)
	}
	err = m.Start(context.Background())
	if !errors.Is(err, embedded.ErrPortInUse) || !strings.Contains(err.Error(), fmt.Sprintf("set dsn (in place of embedded) or EVENTBUS_BUS_URI to nats://127.0.0.1:%d", port)) {
		t.Fatalf("start on a taken port: %v", err)
	}
}

func TestSameNamesOnTwoBrokers(t *testing.T) {
	t.Parallel()
	forEachBackend(t, testSameNamesOnTwoBrokers)
}

func testSameNamesOnTwoBrokers(t *testing.T, be backend) {
	a := newApp(t,
		be.broker(t, "east"),
		be.broker(t, "west"),
		decl{eventbus.TypeStream, "orders-east", map[string]any{"name": "ORDERS", "subjects": []any{"orders.>"}, "broker_ref": "east"}},
		decl{eventbus.TypeStream, "orders-west", map[string]any{"name": "ORDERS", "subjects": []any{"orders.>"}, "broker_ref": "west"}},
		decl{eventbus.TypeConsumer, "worker-east", map[string]any{"name": "worker", "stream_name": "ORDERS", "broker_ref": "east"}},
		decl{eventbus.TypeConsumer, "worker-west", map[string]any{"name": "worker", "stream_name": "ORDERS", "broker_ref": "west"}},
	)
	for _, ref := range []string{"east", "west", "west"} {
		cfg := map[string]any{"subject": "orders.x", "payload": ref, "broker_ref": ref}
		a.exec(a.step(eventbus.StepPublish, cfg), cfg, nil)
	}
	for ref, want := range map[string]float64{"east": 1, "west": 2} {
		cfg := map[string]any{"consumer": "worker", "broker_ref": ref, "max_wait": "500ms"}
		if got := a.exec(a.step(eventbus.StepConsume, cfg), cfg, nil); got["count"] != want {
			t.Errorf("consumed %v from %s, want %v", got["count"], ref, want)
		}
	}
	run := func(context.Context, map[string]any) error { return nil }
	if _, err := a.p.CreateTrigger(context.Background(), eventbus.TriggerSubscribe, "pipeline:p", map[string]any{"name": "worker"}, run); !errors.Is(err, eventbus.ErrUnknownRef) {
		t.Fatalf("trigger on a consumer declared on two brokers without broker_ref: %v, want ErrUnknownRef", err)
	}
	if _, err := a.p.CreateTrigger(context.Background(), eventbus.TriggerSubscribe, "pipeline:p", map[string]any{"name": "worker", "bus": "west"}, run); err != nil {
		t.Fatalf("trigger with bus: west: %v", err)
	}
	if _, err := a.p.CreateModule(context.Background(), eventbus.TypeStream, "again", map[string]any{"name": "ORDERS", "subjects": []any{"x"}, "broker_ref": "east"}); !errors.Is(err, eventbus.ErrConfig) {
		t.Fatalf("second ORDERS on east: %v, want ErrConfig", err)
	}
}

// A default written ${NAME:-default}, which the engine leaves as written,
// is resolved by the plugin in its own module config.
func TestExpandEnvDefaults(t *testing.T) {
	t.Parallel()
	env := map[string]string{"EVENTBUS_PORT": "5000", "EMPTY": ""}
	getenv := func(k string) string { return env[k] }
	got := eventbus.ExpandEnvDefaults(map[string]any{
		"embedded": map[string]any{"port": "${EVENTBUS_PORT:-4222}", "store_dir": "${EVENTBUS_STORE_DIR:-./data/eventbus}"},
		"list":     []any{"${EMPTY:-x}", 3},
		"kept":     "${UNSET}",
	}, getenv)
	emb := got["embedded"].(map[string]any)
	if emb["port"] != "5000" || emb["store_dir"] != "./data/eventbus" {
		t.Errorf("embedded: %#v", emb)
	}
	if l := got["list"].([]any); l[0] != "x" || l[1] != 3 {
		t.Errorf("list: %#v", l)
	}
	if got["kept"] != "${UNSET}" {
		t.Errorf("an unset variable without a default: %#v", got["kept"])
	}
}
