package pluginserver_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wfeventbus/eventbus/eventbus"
	"github.com/wfeventbus/eventbus/wfplugin"
)

// orderRecorder is the WorkflowHandler of the orders pipeline: it checks the
// shape of every trigger payload, fails the first delivery of every tenth
// order and every delivery of one poison order, and counts what happened
// per order id.
type orderRecorder struct {
	workflow string
	poison   int

	mu        sync.Mutex
	attempts  map[int]int
	failures  map[int]int
	successes map[int]int
	problems  []string
}

func newOrderRecorder(workflow string, poison int) *orderRecorder {
	return &orderRecorder{workflow: workflow, poison: poison, attempts: map[int]int{}, failures: map[int]int{}, successes: map[int]int{}}
}

// failsOnce reports whether an order fails on its first delivery.
func failsOnce(id int) bool { return id%10 == 0 }

func (r *orderRecorder) handle(_ context.Context, workflowType, _ string, data map[string]any) error {
	id, problem := checkOrderData(data)
	if problem == "" && workflowType != r.workflow {
		problem = fmt.Sprintf("workflow type %q, want %q", workflowType, r.workflow)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if problem != "" {
		r.problems = append(r.problems, problem)
		return fmt.Errorf("bad trigger data: %s", problem)
	}
	r.attempts[id]++
	if n := r.attempts[id]; n > 1 && (data["redelivered"] != true || data["delivery_count"].(float64) < 2) {
		r.problems = append(r.problems, fmt.Sprintf("order %d: attempt %d carries redelivered=%v delivery_count=%v", id, n, data["redelivered"], data["delivery_count"]))
	}
	if id == r.poison {
		r.failures[id]++
		return fmt.Errorf("poison order %d", id)
	}
	if failsOnce(id) && r.attempts[id] == 1 {
		r.failures[id]++
		return fmt.Errorf("order %d: transient failure", id)
	}
	r.successes[id]++
	return nil
}

// checkOrderData checks that trigger data is JSON-shaped as documented:
// payload as text, json parsed from it with numbers as float64, headers as a
// map of strings, sequence and delivery count as numbers, published_at as
// RFC 3339 text. It returns the order id.
func checkOrderData(d map[string]any) (int, string) {
	payload, ok := d["payload"].(string)
	if !ok {
		return 0, fmt.Sprintf("payload is %T, want string", d["payload"])
	}
	doc, ok := d["json"].(map[string]any)
	if !ok {
		return 0, fmt.Sprintf("json is %T, want an object parsed from the payload", d["json"])
	}
	var parsed map[string]any
	if err := json.Unmarshal([]byte(payload), &parsed); err != nil || !reflect.DeepEqual(parsed, doc) {
		return 0, fmt.Sprintf("json %v is not the parsed payload %q", doc, payload)
	}
	idf, ok := doc["id"].(float64)
	if !ok || doc["kind"] != "order" {
		return 0, fmt.Sprintf("json = %v, want kind order and a float64 id", doc)
	}
	id := int(idf)
	headers, ok := d["headers"].(map[string]any)
	if !ok {
		return id, fmt.Sprintf("headers are %T, want a map", d["headers"])
	}
	for k, v := range headers {
		if _, ok := v.(string); !ok {
			return id, fmt.Sprintf("header %s is %T, want string", k, v)
		}
	}
	if headers["X-Order-Id"] != strconv.Itoa(id) {
		return id, fmt.Sprintf("header X-Order-Id = %v, want %d (headers %v)", headers["X-Order-Id"], id, headers)
	}
	for _, k := range []string{"sequence", "delivery_count", "consumer_sequence"} {
		if n, ok := d[k].(float64); !ok || n < 1 {
			return id, fmt.Sprintf("%s = %v (%T), want a positive float64", k, d[k], d[k])
		}
	}
	if tok, _ := d["ack_token"].(string); tok == "" {
		return id, "ack_token missing"
	}
	if at, _ := d["published_at"].(string); at == "" {
		return id, "published_at missing"
	} else if _, err := time.Parse(time.RFC3339Nano, at); err != nil {
		return id, fmt.Sprintf("published_at %q: %v", at, err)
	}
	if d["subject"] != "orders2.created" || d["stream"] != "ORDERS2" || d["consumer"] != "worker2" {
		return id, fmt.Sprintf("subject/stream/consumer = %v/%v/%v", d["subject"], d["stream"], d["consumer"])
	}
	return id, ""
}

// succeeded reports whether every order but the poison one has succeeded.
func (r *orderRecorder) succeeded(total int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.successes) == total-1
}

// TestWireStory runs the eventbus plugin binary through an app's whole life
// over the wire, in the engine's order: modules are created and
// initialised, steps and the trigger created, modules then the trigger
// started; a publish / consume / ack pipeline moves 100 orders; the trigger
// runs a pipeline per message for 1,000 more, with failures, redelivery and
// dead-lettering; then the app stops and the plugin process is gone.
func TestWireStory(t *testing.T) {
	t.Parallel()
	const (
		workflow   = "pipeline:orders"
		firstBatch = 100
		total      = 1000
		batchSize  = 25
		pubBatch   = 250
		poison     = 777
		maxDeliver = 3
	)
	rec := newOrderRecorder(workflow, poison)
	c := launch(t, rec.handle)
	pid := c.Pid()
	if pid <= 0 {
		t.Fatalf("plugin pid %d", pid)
	}
	ctx := ctxT(t)

	// Build, in the engine's order.
	handles := createModules(t, c,
		embeddedBroker(t, eventbus.TypeBroker, "bus"),
		module{eventbus.TypeStream, "orders", map[string]any{"name": "ORDERS", "subjects": []any{"orders.>"}}},
		module{eventbus.TypeStream, "orders2", map[string]any{"name": "ORDERS2", "subjects": []any{"orders2.>"}}},
		module{eventbus.TypeStream, "dead-letters", map[string]any{"name": "DLQ", "subjects": []any{"dlq.>"}}},
		// A short ack wait makes an unacknowledged message come back
		// within the final consume's wait, so "nothing pending" is checked.
		module{eventbus.TypeConsumer, "worker", map[string]any{"name": "worker", "stream_name": "ORDERS", "ack_wait": "4s"}},
		module{eventbus.TypeConsumer, "dlq-reader", map[string]any{"name": "dlq-reader", "stream_name": "DLQ"}},
	)
	initModules(t, c, handles)
	publish := createStep(t, c, eventbus.StepPublish, "publish", map[string]any{
		"subject": "orders.created", "payload": "{{ .order }}", "headers": map[string]any{"X-Order-Id": "{{ .id }}"},
	})
	// A template in a number field: the typed half of the request cannot
	// encode, so the host sends the Struct alone and the step must accept it.
	consume := createStep(t, c, eventbus.StepConsume, "consume", map[string]any{"consumer": "worker", "batch_size": "{{ .n }}", "max_wait": "2s"})
	ack := createStep(t, c, eventbus.StepAck, "ack", map[string]any{})
	// Steps without templates: the host sends their config unchanged at
	// every execution.
	type staticStep struct {
		h   string
		cfg map[string]any
	}
	static := func(typ, name string, cfg map[string]any) staticStep {
		return staticStep{createStep(t, c, typ, name, cfg), cfg}
	}
	var batches []staticStep
	for b := range total / pubBatch {
		msgs := make([]any, pubBatch)
		for i := range msgs {
			id := b*pubBatch + i
			msgs[i] = map[string]any{
				"payload": map[string]any{"id": float64(id), "kind": "order"},
				"headers": map[string]any{"X-Order-Id": strconv.Itoa(id)},
			}
		}
		batches = append(batches, static(eventbus.StepPublish, "publish-batch-"+strconv.Itoa(b), map[string]any{"subject": "orders2.created", "messages": msgs}))
	}
	readDLQ := static(eventbus.StepConsume, "read-dlq", map[string]any{"consumer": "dlq-reader", "max_wait": "1s", "batch_size": float64(10)})
	leftovers := static(eventbus.StepConsume, "leftovers", map[string]any{"consumer": "worker2", "stream_name": "ORDERS2", "max_wait": "5s", "batch_size": float64(100)})
	trigger, err := c.CreateTrigger(ctx, eventbus.TriggerSubscribe, workflow, map[string]any{
		"name": "worker2", "stream_name": "ORDERS2", "concurrency": float64(8), "max_deliver": float64(maxDeliver),
		"backoff": []any{"50ms"}, "dead_letter_subject": "dlq.orders2", "ack_wait": "4s",
	})
	if err != nil {
		t.Fatalf("CreateTrigger: %v", err)
	}

	// Start: modules, then triggers.
	startModules(t, c, handles)
	if err := c.StartTrigger(ctx, trigger); err != nil {
		t.Fatalf("StartTrigger: %v", err)
	}

	t.Run("publish consume ack", func(t *testing.T) {
		for i := range firstBatch {
			order := fmt.Sprintf(`{"id":%d,"kind":"order"}`, i)
			out := execStep(t, c, publish, map[string]any{
				"subject": "orders.created", "payload": order, "headers": map[string]any{"X-Order-Id": strconv.Itoa(i)},
			}, map[string]any{"order": order, "id": strconv.Itoa(i)})
			if out["stream"] != "ORDERS" || out["sequence"] != strconv.Itoa(i+1) {
				t.Fatalf("publish %d output = %v, want stream ORDERS sequence %d", i, out, i+1)
			}
			if _, err := time.Parse(time.RFC3339Nano, fmt.Sprint(out["acked_at"])); err != nil {
				t.Fatalf("publish acked_at: %v", err)
			}
		}
		rendered := map[string]any{"consumer": "worker", "batch_size": strconv.Itoa(batchSize), "max_wait": "2s"}
		seen := map[int]bool{}
		var firstToken string
		for round := 0; len(seen) < firstBatch; round++ {
			if round == firstBatch/batchSize {
				t.Fatalf("after %d rounds %d of %d orders were consumed", round, len(seen), firstBatch)
			}
			msgs := messagesOf(t, execStep(t, c, consume, rendered, map[string]any{"n": strconv.Itoa(batchSize)}))
			if len(msgs) != batchSize {
				t.Fatalf("round %d consumed %d messages, want the rendered batch_size %d", round, len(msgs), batchSize)
			}
			for _, m := range msgs {
				doc, _ := m["json"].(map[string]any)
				id, ok := doc["id"].(float64)
				if !ok || m["subject"] != "orders.created" || m["payload"] != fmt.Sprintf(`{"id":%d,"kind":"order"}`, int(id)) {
					t.Fatalf("consumed message = %v", m)
				}
				if h, _ := m["headers"].(map[string]any); h["X-Order-Id"] != strconv.Itoa(int(id)) {
					t.Fatalf("consumed headers = %v", m["headers"])
				}
				if seen[int(id)] {
					t.Fatalf("order %d consumed twice", int(id))
				}
				seen[int(id)] = true
				// The ack step reads ack_token from the current data: the
				// consumed message, as a pipeline that iterates them holds it.
				execStep(t, c, ack, map[string]any{}, m)
				if firstToken == "" {
					firstToken = m["ack_token"].(string)
				}
			}
		}
		_, err := c.ExecuteStep(ctx, ack, wfplugin.ExecuteInput{Config: map[string]any{}, Current: map[string]any{"ack_token": firstToken}})
		if err == nil || !strings.Contains(err.Error(), "stale") {
			t.Errorf("acking a message twice: %v, want a stale token error", err)
		}
		// Any message left unacknowledged would be redelivered within this
		// wait, which is longer than the consumer's ack wait.
		leftover := messagesOf(t, execStep(t, c, consume, map[string]any{"consumer": "worker", "batch_size": "10", "max_wait": "5s"}, nil))
		if len(leftover) != 0 {
			t.Errorf("%d messages came back after all were acked: %v", len(leftover), leftover)
		}
	})

	t.Run("trigger", func(t *testing.T) {
		published := 0
		for _, b := range batches {
			out := execStep(t, c, b.h, b.cfg, nil)
			results, _ := out["results"].([]any)
			if out["count"] != float64(pubBatch) || len(results) != pubBatch {
				t.Fatalf("batch publish output: count %v, %d results", out["count"], len(results))
			}
			for _, r := range results {
				if res, _ := r.(map[string]any); res["stream"] != "ORDERS2" || res["error"] != nil {
					t.Fatalf("batch publish result %v", r)
				}
			}
			published += pubBatch
		}
		if published != total {
			t.Fatalf("published %d, want %d", published, total)
		}
		waitFor(t, "every order but the poison one to succeed", func() bool { return rec.succeeded(total) })

		// The poison order is dead-lettered after its last delivery.
		var dead []map[string]any
		waitFor(t, "the dead letter", func() bool {
			dead = append(dead, messagesOf(t, execStep(t, c, readDLQ.h, readDLQ.cfg, nil))...)
			return len(dead) > 0
		})
		if len(dead) != 1 {
			t.Fatalf("%d dead letters, want 1: %v", len(dead), dead)
		}
		dl := dead[0]
		h, _ := dl["headers"].(map[string]any)
		if dl["subject"] != "dlq.orders2" || h["Eventbus-Delivery-Count"] != strconv.Itoa(maxDeliver) ||
			!strings.Contains(fmt.Sprint(h["Eventbus-Error"]), fmt.Sprintf("poison order %d", poison)) ||
			h["Eventbus-Subject"] != "orders2.created" || h["Eventbus-Stream"] != "ORDERS2" || h["X-Order-Id"] != strconv.Itoa(poison) {
			t.Errorf("dead letter = %v", dl)
		}
		if doc, _ := dl["json"].(map[string]any); doc["id"] != float64(poison) {
			t.Errorf("dead letter payload = %v, want order %d", dl["payload"], poison)
		}
		execStep(t, c, ack, map[string]any{}, dl)

		if err := c.StopTrigger(ctx, trigger); err != nil {
			t.Fatalf("StopTrigger: %v", err)
		}
		// The trigger has stopped: the counts are final.
		rec.mu.Lock()
		problems := slices.Clone(rec.problems)
		attempts, failures, successes := maps.Clone(rec.attempts), maps.Clone(rec.failures), maps.Clone(rec.successes)
		rec.mu.Unlock()
		for _, p := range problems {
			t.Errorf("trigger data: %s", p)
		}
		if attempts[poison] != maxDeliver || failures[poison] != maxDeliver || successes[poison] != 0 {
			t.Errorf("poison order: %d attempts, %d failures, %d successes; want exactly %d failed attempts",
				attempts[poison], failures[poison], successes[poison], maxDeliver)
		}
		retried := 0
		for id := range total {
			if id == poison {
				continue
			}
			if successes[id] < 1 {
				t.Errorf("order %d never succeeded (%d attempts)", id, attempts[id])
			}
			want := 0
			if failsOnce(id) {
				want = 1
				retried++
			}
			if failures[id] != want {
				t.Errorf("order %d failed %d times, want %d", id, failures[id], want)
			}
		}
		if retried != total/10 {
			t.Errorf("%d orders were retried, want %d", retried, total/10)
		}

		// Nothing is left: no message undelivered, none unacknowledged (the
		// trigger's ack wait is shorter than this consume's wait), and only
		// one dead letter.
		if left := messagesOf(t, execStep(t, c, leftovers.h, leftovers.cfg, nil)); len(left) != 0 {
			t.Errorf("%d messages of ORDERS2 are still pending: %v", len(left), left)
		}
		if more := messagesOf(t, execStep(t, c, readDLQ.h, readDLQ.cfg, nil)); len(more) != 0 {
			t.Errorf("%d more dead letters: %v", len(more), more)
		}
	})

	// Shut down as the engine does: triggers were stopped first, then the
	// modules in reverse order, then the process.
	stopApp(t, c, handles)
	closeCtx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	if err := c.Close(closeCtx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if !c.Exited() || c.Err() != nil {
		t.Errorf("after Close: exited %v, err %v; want a clean exit", c.Exited(), c.Err())
	}
	waitFor(t, fmt.Sprintf("plugin process %d to be gone", pid), func() bool { return processGone(pid) })
}
