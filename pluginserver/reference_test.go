package pluginserver_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/wfeventbus/eventbus/bus/embedded"
	"github.com/wfeventbus/eventbus/eventbus"
)

// TestWireReferenceConfigs runs configs written for the reference plugin,
// with every field it documents and its infra.* type names, unchanged over
// the wire, with the engine's _config_dir added as the engine adds it. One
// broker points at an external NATS server through dsn with a deploy
// target; the other has no dsn and so runs embedded. It also checks that
// the reference's measured defects do not come back: a consumer with a
// filter_subject works with the trigger, the trigger keeps running after
// its StartModule RPC returned, and headers reach the pipeline as a map of
// strings.
func TestWireReferenceConfigs(t *testing.T) {
	t.Parallel()
	const configDir = "/srv/app/config"
	external, err := embedded.Start(ctxT(t), embedded.Config{Port: -1, StoreDir: t.TempDir(), ServerName: "external"})
	if err != nil {
		t.Fatalf("start the external NATS server: %v", err)
	}
	t.Cleanup(func() { _ = external.Shutdown(context.Background()) })

	type delivery struct {
		subject string
		data    map[string]any
	}
	var (
		mu        sync.Mutex
		delivered []delivery
		workflows []string
	)
	c := launch(t, func(_ context.Context, workflowType, _ string, data map[string]any) error {
		mu.Lock()
		defer mu.Unlock()
		subject, _ := data["subject"].(string)
		delivered = append(delivered, delivery{subject, data})
		workflows = append(workflows, workflowType)
		return nil
	})
	ctx := ctxT(t)

	reference := func(kv ...any) map[string]any {
		m := map[string]any{"_config_dir": configDir}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	jetstream := map[string]any{"enabled": true, "max_storage_bytes": float64(1 << 30), "max_memory_bytes": float64(64 << 20), "max_age": "24h"}
	limits := map[string]any{"cpu": "500m", "memory": "512Mi", "storage": "10Gi"}
	handles := createModules(t, c,
		module{eventbus.TypeBrokerAlias, "events", reference(
			"provider", "nats", "deploy_target", "kubernetes", "version", "2.10", "replicas", float64(3),
			"jetstream", jetstream, "limits", limits, "dsn", external.ClientURL(),
			"poll_interval", "1s", "broker_target", "in_process", "max_conns", float64(10),
		)},
		module{eventbus.TypeBrokerAlias, "local", reference(
			"provider", "nats", "version", "2.10", "replicas", float64(1),
			"jetstream", jetstream, "limits", limits,
			"poll_interval", "1s", "broker_target", "in_process", "max_conns", float64(10),
			"embedded", map[string]any{"port": float64(-1), "store_dir": t.TempDir()},
		)},
		module{eventbus.TypeStreamAlias, "ref-orders", reference(
			"name", "REF_ORDERS", "subjects", []any{"ref.orders.>", "ref.other.>"}, "retention_policy", "RETENTION_POLICY_WORKQUEUE",
			"num_replicas", float64(1), "max_bytes", float64(10<<20), "max_age", "1h", "ack_wait", "30s", "broker_ref", "events",
		)},
		module{eventbus.TypeConsumerAlias, "ref-worker", reference(
			"name", "ref-worker", "stream_name", "REF_ORDERS", "filter_subject", "ref.orders.>",
			"deliver_policy", "DELIVER_POLICY_ALL", "ack_policy", "ACK_POLICY_EXPLICIT", "max_deliver", float64(5), "broker_ref", "events",
		)},
		module{eventbus.TypeStreamAlias, "ref-jobs", reference(
			"name", "REF_JOBS", "subjects", []any{"jobs.>"}, "retention_policy", "RETENTION_POLICY_LIMITS",
			"num_replicas", float64(1), "max_bytes", float64(10<<20), "max_age", "1h", "ack_wait", "30s", "broker_ref", "local",
		)},
		module{eventbus.TypeConsumerAlias, "job-worker", reference(
			"name", "job-worker", "stream_name", "REF_JOBS", "filter_subject", "jobs.created",
			"deliver_policy", "DELIVER_POLICY_ALL", "ack_policy", "ACK_POLICY_EXPLICIT", "max_deliver", float64(5), "broker_ref", "local",
		)},
	)
	t.Cleanup(func() { stopApp(t, c, handles) })
	initModules(t, c, handles)

	// Steps with the reference's parameters; publish templates its payload
	// as pipelines do.
	publish := createStep(t, c, eventbus.StepPublish, "publish", reference(
		"subject", "{{ .subject }}", "payload", "{{ .body }}", "headers", map[string]any{"x-tenant": "acme", "x-request": "{{ .request }}"},
		"correlation_id", "{{ .request }}", "broker_ref", "{{ .bus }}",
	))
	consumeCfg := reference("consumer", "job-worker", "batch_size", float64(10), "max_wait", "2s", "broker_ref", "local")
	consume := createStep(t, c, eventbus.StepConsume, "consume", consumeCfg)
	ack := createStep(t, c, eventbus.StepAck, "ack", reference("ack_token", "{{ .steps.consume.messages.0.ack_token }}", "broker_ref", "local"))
	trigger, err := c.CreateTrigger(ctx, eventbus.TriggerSubscribe, "pipeline:ref-orders", map[string]any{"consumer": "ref-worker", "bus": "events"})
	if err != nil {
		t.Fatalf("CreateTrigger with the reference's consumer and bus: %v", err)
	}
	startModules(t, c, handles)
	if err := c.StartTrigger(ctx, trigger); err != nil {
		t.Fatalf("StartTrigger: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
		defer cancel()
		if err := c.StopTrigger(ctx, trigger); err != nil {
			t.Errorf("StopTrigger: %v", err)
		}
	})

	send := func(bus, subject, body, request string) {
		t.Helper()
		out := execStep(t, c, publish, reference(
			"subject", subject, "payload", body, "headers", map[string]any{"x-tenant": "acme", "x-request": request},
			"correlation_id", request, "broker_ref", bus,
		), map[string]any{"subject": subject, "body": body, "request": request, "bus": bus})
		if seq, ok := out["sequence"].(string); !ok {
			t.Fatalf("publish sequence = %v (%T), want a string", out["sequence"], out["sequence"])
		} else if _, err := strconv.ParseUint(seq, 10, 64); err != nil {
			t.Fatalf("publish sequence %q: %v", seq, err)
		}
		if _, err := time.Parse(time.RFC3339, fmt.Sprint(out["acked_at"])); err != nil {
			t.Fatalf("publish acked_at %v is not RFC 3339: %v", out["acked_at"], err)
		}
	}

	t.Run("trigger on a filtered consumer", func(t *testing.T) {
		// Everything is published after StartModule returned: the trigger
		// must still be running. The message outside the consumer's filter
		// comes first in the stream, so the trigger would see it before the
		// others.
		send("events", "ref.other.noise", `{"n":0}`, "req-0")
		for i := 1; i <= 3; i++ {
			send("events", fmt.Sprintf("ref.orders.%d", i), fmt.Sprintf(`{"n":%d}`, i), fmt.Sprintf("req-%d", i))
		}
		count := func() int {
			mu.Lock()
			defer mu.Unlock()
			return len(delivered)
		}
		waitFor(t, "the three orders", func() bool { return count() >= 3 })
		// A second round, once the first was handled, still arrives.
		send("events", "ref.orders.4", `{"n":4}`, "req-4")
		waitFor(t, "the fourth order", func() bool { return count() >= 4 })

		mu.Lock()
		defer mu.Unlock()
		var subjects []string
		for _, d := range delivered {
			subjects = append(subjects, d.subject)
			headers, ok := d.data["headers"].(map[string]any)
			if !ok {
				t.Errorf("%s: headers are %T, want a map of strings", d.subject, d.data["headers"])
				continue
			}
			for k, v := range headers {
				if _, ok := v.(string); !ok {
					t.Errorf("%s: header %s is %T, want string", d.subject, k, v)
				}
			}
			n := d.subject[len(d.subject)-1:]
			if headers["x-tenant"] != "acme" || headers["x-request"] != "req-"+n || headers["Correlation-Id"] != "req-"+n {
				t.Errorf("%s: headers = %v", d.subject, headers)
			}
			if d.data["payload"] != `{"n":`+n+`}` {
				t.Errorf("%s: payload = %v", d.subject, d.data["payload"])
			}
			for _, k := range []string{"sequence", "published_at", "ack_token"} {
				if _, ok := d.data[k]; !ok {
					t.Errorf("%s: trigger data lacks %s: %v", d.subject, k, d.data)
				}
			}
		}
		if want := []string{"ref.orders.1", "ref.orders.2", "ref.orders.3", "ref.orders.4"}; !slices.Equal(subjects, want) {
			t.Errorf("the trigger ran for %v, want %v (only the consumer's filter, in order)", subjects, want)
		}
		for _, wt := range workflows {
			if wt != "pipeline:ref-orders" {
				t.Errorf("workflow type %q, want pipeline:ref-orders", wt)
			}
		}
	})

	t.Run("publish consume ack on the embedded broker", func(t *testing.T) {
		send("local", "jobs.created", "job one", "job-1")
		send("local", "jobs.created", `{"job":2}`, "job-2")
		send("local", "jobs.other", "not for this consumer", "job-x")
		var msgs []map[string]any
		waitFor(t, "two jobs", func() bool {
			msgs = append(msgs, messagesOf(t, execStep(t, c, consume, consumeCfg, nil))...)
			return len(msgs) >= 2
		})
		if len(msgs) != 2 {
			t.Fatalf("consumed %d messages, want the 2 jobs.created: %v", len(msgs), msgs)
		}
		for i, m := range msgs {
			for _, k := range []string{"subject", "payload", "headers", "sequence", "published_at", "ack_token"} {
				if _, ok := m[k]; !ok {
					t.Errorf("message %d lacks %s: %v", i, k, m)
				}
			}
			if h, _ := m["headers"].(map[string]any); m["subject"] != "jobs.created" || h["x-request"] != fmt.Sprintf("job-%d", i+1) {
				t.Errorf("message %d = %v", i, m)
			}
			// The pipeline renders the ack_token template from the consume
			// step's output.
			out := map[string]any{"messages": []any{m}, "count": float64(1)}
			res, err := c.ExecuteStep(ctx, ack, executeAfter("consume", out, reference("ack_token", m["ack_token"], "broker_ref", "local")))
			if err != nil {
				t.Fatalf("ack %d: %v", i, err)
			}
			if len(res.Output) != 0 {
				t.Errorf("ack output = %v, want empty", res.Output)
			}
		}
		if first := msgs[0]; first["payload"] != "job one" {
			t.Errorf("payload = %v", first["payload"])
		}
		if doc, _ := msgs[1]["json"].(map[string]any); doc["job"] != float64(2) {
			t.Errorf("json = %v", msgs[1]["json"])
		}
	})
}
