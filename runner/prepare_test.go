package runner_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wfeventbus/eventbus/bus/embedded"
	"github.com/wfeventbus/eventbus/pluginserver"
	"github.com/wfeventbus/eventbus/runner"
	"github.com/wfeventbus/eventbus/wfplugin"
)

// Lines of the apps of TestValidateAndRunAgree: an embedded broker, the
// ORDERS and DLQ streams, a consumer of ORDERS that dead-letters to DLQ, and
// a pipeline fired by that consumer that publishes to ORDERS.
const (
	lBus    = `  - { name: bus, type: eventbus.broker, config: { embedded: { port: -1, store_dir: "${STORE}" } } }`
	lOrders = `  - { name: orders, type: eventbus.stream, config: { name: ORDERS, subjects: ["orders.>"] } }`
	lDead   = `  - { name: dead, type: eventbus.stream, config: { name: DLQ, subjects: ["dlq.>"] } }`
	lWorker = `  - { name: worker, type: eventbus.consumer, config: { stream_name: ORDERS, dead_letter_subject: dlq.orders } }`
	lPipe   = "pipelines:\n  p:"
	lTrig   = `    trigger: { type: trigger.eventbus.subscribe, config: { name: worker } }`
	lSteps  = `    steps:`
	lFwd    = `      - { name: fwd, type: step.eventbus.publish, config: { subject: orders.done, payload: x } }`
)

// app joins lines into an app config; lPipe counts as two lines.
func app(lines ...string) string { return strings.Join(lines, "\n") + "\n" }

// want is a problem or warning a case expects: where, which field, what
// kind, and words its message holds.
type want struct {
	line  int
	field string
	err   error // nil for a warning
	says  string
}

// validateRunCases are broken apps, apps that are right but likely wrong
// (warnings only), and apps at the edges of what is allowed (no problem).
// Unless a case says otherwise, the line numbers are those of the base app
// (1 modules, 2 bus, 3 orders, 4 dead, 5 worker, 6-7 pipelines.p,
// 8 trigger, 9 steps, 10 fwd).
var validateRunCases = []struct {
	name     string
	src      string
	env      map[string]string
	problems []want
	warnings []want
}{
	{
		name: "the base app",
		src:  app("modules:", lBus, lOrders, lDead, lWorker, lPipe, lTrig, lSteps, lFwd),
	},
	{
		name: "consumer without stream_name",
		src: app("modules:", lBus, lOrders, lDead,
			`  - { name: worker, type: eventbus.consumer, config: { max_deliver: 3 } }`, lPipe, lTrig, lSteps, lFwd),
		problems: []want{{5, "modules[3].config.stream_name", runner.ErrMissingField, "module worker (eventbus.consumer): required: the stream the consumer reads"}},
	},
	{
		name: "trigger naming a consumer no module declares",
		src: app("modules:", lBus, lOrders, lDead, lWorker, lPipe,
			`    trigger: { type: trigger.eventbus.subscribe, config: { name: nobody } }`, lSteps, lFwd),
		problems: []want{{8, "pipelines.p.trigger.config.name", runner.ErrUnknownReference, `trigger of pipeline p (trigger.eventbus.subscribe): unknown reference: no eventbus.consumer module declares consumer "nobody"`}},
	},
	{
		name: "consumer on a stream no module declares",
		src: app("modules:", lBus, lOrders, lDead,
			`  - { name: worker, type: eventbus.consumer, config: { stream_name: PAYMENTS } }`, lPipe, lTrig, lSteps, lFwd),
		problems: []want{{5, "modules[3].config.stream_name", runner.ErrUnknownReference, `no eventbus.stream module declares stream "PAYMENTS" on broker bus (declared: ORDERS [orders.>], DLQ [dlq.>]); the embedded broker bus holds only what this app declares`}},
	},
	{
		name: "batch_size 5000",
		src: app("modules:", lBus, lOrders, lDead, lWorker, lPipe, lTrig, lSteps, lFwd,
			`      - { name: read, type: step.eventbus.consume, config: { consumer: worker, batch_size: 5000 } }`),
		problems: []want{{11, "pipelines.p.steps[1].config.batch_size", runner.ErrInvalidValue, "step read (step.eventbus.consume): must be between 1 and 1000, got 5000"}},
	},
	{
		name: "concurrency -1",
		src: app("modules:", lBus, lOrders, lDead, lWorker, lPipe,
			`    trigger: { type: trigger.eventbus.subscribe, config: { name: worker, concurrency: -1 } }`, lSteps, lFwd),
		problems: []want{{8, "pipelines.p.trigger.config.concurrency", runner.ErrInvalidValue, "must be 1 or more, got -1"}},
	},
	{
		name: "num_replicas 3 on the embedded broker",
		src: app("modules:", lBus,
			`  - { name: orders, type: eventbus.stream, config: { name: ORDERS, subjects: ["orders.>"], num_replicas: 3 } }`, lDead, lWorker, lPipe, lTrig, lSteps, lFwd),
		problems: []want{{3, "modules[1].config.num_replicas", runner.ErrInvalidValue, "3 replicas on broker bus, a single server (embedded), which holds 1"}},
	},
	{
		name: "num_replicas 7, more than NATS allows",
		src: app("modules:", lBus,
			`  - { name: orders, type: eventbus.stream, config: { name: ORDERS, subjects: ["orders.>"], num_replicas: 7 } }`, lDead, lWorker, lPipe, lTrig, lSteps, lFwd),
		problems: []want{{3, "modules[1].config.num_replicas", runner.ErrInvalidValue, "7 is not between 1 and 5"}},
	},
	{
		name: "${X} with X unset",
		src: app("modules:", lBus, lOrders, lDead,
			`  - { name: worker, type: eventbus.consumer, config: { stream_name: "${ORDERS_STREAM}" } }`, lPipe, lTrig, lSteps, lFwd),
		problems: []want{{5, "modules[3].config.stream_name", runner.ErrUnknownReference, `declares stream "${ORDERS_STREAM}" on broker bus (declared: ORDERS [orders.>], DLQ [dlq.>]); the embedded broker bus holds only what this app declares (${ORDERS_STREAM} is left as written: ORDERS_STREAM is not set)`}},
		warnings: []want{{5, "modules[3].config.stream_name", nil, "${ORDERS_STREAM} is left as written: ORDERS_STREAM is not set"}},
	},
	{
		name: "${X} set",
		src: app("modules:", lBus, lOrders, lDead,
			`  - { name: worker, type: eventbus.consumer, config: { stream_name: "${ORDERS_STREAM}" } }`, lPipe, lTrig, lSteps, lFwd),
		env: map[string]string{"ORDERS_STREAM": "ORDERS"},
	},
	{
		name: "publish to a subject no stream stores",
		src: app("modules:", lBus, lOrders, lDead, lWorker, lPipe, lTrig, lSteps,
			`      - { name: fwd, type: step.eventbus.publish, config: { subject: shipping.created, payload: x } }`),
		problems: []want{{10, "pipelines.p.steps[0].config.subject", runner.ErrUnknownReference, `no stream on broker bus stores subject "shipping.created"`}},
	},
	{
		name: "publish to a templated subject whose prefix no stream stores",
		src: app("modules:", lBus, lOrders, lDead, lWorker, lPipe, lTrig, lSteps,
			`      - { name: fwd, type: step.eventbus.publish, config: { subject: 'shipping.{{ .json.region }}', payload: x } }`),
		problems: []want{{10, "pipelines.p.steps[0].config.subject", runner.ErrUnknownReference, `no stream on broker bus stores subjects beginning "shipping." (from "shipping.{{ .json.region }}")`}},
	},
	{
		name: "publish a batch whose message subject no stream stores",
		src: app("modules:", lBus, lOrders, lDead, lWorker, lPipe, lTrig, lSteps,
			`      - { name: fwd, type: step.eventbus.publish, config: { subject: orders.a, messages: [{ payload: x }, { subject: refunds.b, payload: y }] } }`),
		problems: []want{{10, "pipelines.p.steps[0].config.messages[1].subject", runner.ErrUnknownReference, `stores subject "refunds.b"`}},
	},
	{
		name: "publish to an invalid subject",
		src: app("modules:", lBus, lOrders, lDead, lWorker, lPipe, lTrig, lSteps,
			`      - { name: fwd, type: step.eventbus.publish, config: { subject: orders..x, payload: x } }`),
		problems: []want{{10, "pipelines.p.steps[0].config.subject", runner.ErrInvalidValue, `"orders..x" has an empty token`}},
	},
	{
		name: "dead letters no stream stores",
		src:  app("modules:", lBus, lOrders, lWorker, lPipe, lTrig, lSteps, lFwd),
		problems: []want{{4, "modules[2].config.dead_letter_subject", runner.ErrUnknownReference,
			`no stream on broker bus stores dead letters to "dlq.orders" (declared: ORDERS [orders.>]); the embedded broker bus holds only what this app declares`}},
	},
	{
		name: "broker_ref naming a module that is no broker",
		src: app("modules:", lBus, lOrders, lDead,
			`  - { name: worker, type: eventbus.consumer, config: { stream_name: ORDERS, broker_ref: orders } }`, lPipe, lTrig, lSteps, lFwd),
		problems: []want{{5, "modules[3].config.broker_ref", runner.ErrUnknownReference, `no eventbus.broker module named "orders" (declared: bus)`}},
	},
	{
		name: "trigger declaring its consumer on a stream no module declares",
		src: app("modules:", lBus, lOrders, lDead, lWorker, lPipe,
			`    trigger: { type: trigger.eventbus.subscribe, config: { name: audit, stream_name: AUDIT } }`, lSteps, lFwd),
		problems: []want{{8, "pipelines.p.trigger.config.stream_name", runner.ErrUnknownReference, `no eventbus.stream module declares stream "AUDIT"`}},
	},
	{
		name: "consume step of a consumer no module declares",
		src: app("modules:", lBus, lOrders, lDead, lWorker, lPipe, lTrig, lSteps, lFwd,
			`      - { name: read, type: step.eventbus.consume, config: { consumer: ghost } }`),
		problems: []want{{11, "pipelines.p.steps[1].config.consumer", runner.ErrUnknownReference, `no eventbus.consumer module declares consumer "ghost" on broker bus; declare one, or give stream_name`}},
	},
	{
		name: "max_msg_size over the broker's max_payload",
		src: app("modules:", lBus,
			`  - { name: orders, type: eventbus.stream, config: { name: ORDERS, subjects: ["orders.>"], max_msg_size: 2000000 } }`, lDead, lWorker, lPipe, lTrig, lSteps, lFwd),
		problems: []want{{3, "modules[1].config.max_msg_size", runner.ErrInvalidValue, "2000000 bytes is more than broker bus accepts (max_payload 1048576 bytes)"}},
	},
	{
		name: "negative max_bytes",
		src: app("modules:", lBus,
			`  - { name: orders, type: eventbus.stream, config: { name: ORDERS, subjects: ["orders.>"], max_bytes: -5 } }`, lDead, lWorker, lPipe, lTrig, lSteps, lFwd),
		problems: []want{{3, "modules[1].config.max_bytes", runner.ErrInvalidValue, "-5 is negative"}},
	},
	{
		name: "negative ack_wait",
		src: app("modules:", lBus, lOrders, lDead,
			`  - { name: worker, type: eventbus.consumer, config: { stream_name: ORDERS, ack_wait: -1s } }`, lPipe, lTrig, lSteps, lFwd),
		problems: []want{{5, "modules[3].config.ack_wait", runner.ErrInvalidValue, "negative"}},
	},
	{
		name: "negative consume max_wait and nak delay",
		src: app("modules:", lBus, lOrders, lDead, lWorker, lPipe, lTrig, lSteps, lFwd,
			`      - { name: read, type: step.eventbus.consume, config: { consumer: worker, max_wait: -1s } }`,
			`      - { name: retry, type: step.eventbus.nak, config: { delay: -5s } }`),
		problems: []want{
			{11, "pipelines.p.steps[1].config.max_wait", runner.ErrInvalidValue, `out of range: "-1s" is negative`},
			{12, "pipelines.p.steps[2].config.delay", runner.ErrInvalidValue, `out of range: "-5s" is negative`},
		},
	},
	{
		name: "a consumer name the broker refuses",
		src: app("modules:", lBus, lOrders, lDead,
			`  - { name: worker, type: eventbus.consumer, config: { name: work.er, stream_name: ORDERS } }`, lPipe, lTrig, lSteps, lFwd),
		problems: []want{
			{5, "modules[3].config.name", runner.ErrInvalidValue, `"work.er" may not contain whitespace, control characters, '.', '*', '>', '/' or '\'`},
			// The trigger names the durable, which is no longer "worker".
			{8, "pipelines.p.trigger.config.name", runner.ErrUnknownReference, `no eventbus.consumer module declares consumer "worker"`},
		},
	},
	{
		name: "embedded max_payload out of range",
		src: app("modules:",
			`  - { name: bus, type: eventbus.broker, config: { embedded: { port: -1, store_dir: "${STORE}", max_payload: -1 } } }`, lOrders, lDead, lWorker, lPipe, lTrig, lSteps, lFwd),
		problems: []want{{2, "modules[0].config.embedded.max_payload", runner.ErrInvalidValue, "-1 must be between 1 and"}},
	},
	{
		name: "two streams storing one subject",
		src: app("modules:", lBus, lOrders, lDead, lWorker,
			`  - { name: all, type: eventbus.stream, config: { name: ALL, subjects: ["orders.*"] } }`, lPipe, lTrig, lSteps, lFwd),
		problems: []want{{6, "modules[4].config.subjects[0]", runner.ErrInvalidValue, `"orders.*" overlaps "orders.>" of stream ORDERS (module orders)`}},
	},
	{
		name: "filters containing each other",
		src: app("modules:", lBus, lOrders, lDead,
			`  - { name: worker, type: eventbus.consumer, config: { stream_name: ORDERS, filter_subjects: ["orders.*", "orders.new"] } }`, lPipe, lTrig, lSteps, lFwd),
		problems: []want{{5, "modules[3].config.filter_subjects[1]", runner.ErrInvalidValue, `"orders.new" overlaps filter "orders.*"`}},
	},
	{
		name: "a subject that is all template",
		src: app("modules:", lBus, lOrders, lDead, lWorker, lPipe, lTrig, lSteps,
			`      - { name: fwd, type: step.eventbus.publish, config: { subject: '{{ .json.to }}', payload: x } }`),
		warnings: []want{{10, "pipelines.p.steps[0].config.subject", nil, `step fwd (step.eventbus.publish): "{{ .json.to }}" is a template, so whether a stream stores what it renders to is known only at run time`}},
	},
	{
		name: "a filter that matches no subject of its stream",
		src: app("modules:", lBus, lOrders, lDead,
			`  - { name: worker, type: eventbus.consumer, config: { stream_name: ORDERS, filter_subject: payments.x } }`, lPipe, lTrig, lSteps, lFwd),
		warnings: []want{{5, "modules[3].config.filter_subject", nil, `"payments.x" matches no subject of stream ORDERS [orders.>], so the consumer receives nothing`}},
	},
	{
		name: "dead letters the same consumer reads again",
		src: app("modules:", lBus, lOrders, lDead,
			`  - { name: worker, type: eventbus.consumer, config: { stream_name: ORDERS, dead_letter_subject: orders.dead } }`, lPipe, lTrig, lSteps, lFwd),
		warnings: []want{{5, "modules[3].config.dead_letter_subject", nil, "every dead letter is delivered to the same pipeline again"}},
	},
	{
		name: "consumer settings on a trigger whose consumer a module declares",
		src: app("modules:", lBus, lOrders, lDead, lWorker, lPipe,
			`    trigger: { type: trigger.eventbus.subscribe, config: { name: worker, max_deliver: 3 } }`, lSteps, lFwd),
		warnings: []want{{8, "pipelines.p.trigger.config.max_deliver", nil, "ignored: consumer module worker declares consumer worker"}},
	},
	{
		name: "at the limits",
		src: app("modules:", lBus,
			`  - { name: orders, type: eventbus.stream, config: { name: ORDERS, subjects: ["orders.>"], num_replicas: 1, max_msg_size: 1048576, max_bytes: -1 } }`, lDead, lWorker, lPipe,
			`    trigger: { type: trigger.eventbus.subscribe, config: { name: worker, concurrency: 1 } }`, lSteps, lFwd,
			`      - { name: read, type: step.eventbus.consume, config: { consumer: worker, batch_size: 1000, max_wait: 0s } }`,
			`      - { name: retry, type: step.eventbus.nak, config: { delay: 0s } }`),
	},
	{
		name: "a trigger declaring its consumer",
		src: app("modules:", lBus, lOrders, lDead, lPipe,
			`    trigger: { type: trigger.eventbus.subscribe, config: { name: audit, stream_name: ORDERS, dead_letter_subject: dlq.audit, max_deliver: 3 } }`, lSteps, lFwd),
	},
	{
		name: "consume step of a consumer no module declares, on a declared stream",
		src: app("modules:", lBus, lOrders, lDead, lPipe,
			`    trigger: { type: trigger.eventbus.subscribe, config: { name: audit, stream_name: ORDERS } }`, lSteps,
			`      - { name: read, type: step.eventbus.consume, config: { consumer: audit, stream_name: ORDERS, batch_size: 1 } }`),
		warnings: []want{{9, "pipelines.p.steps[0].config.consumer", nil, `no eventbus.consumer module declares consumer "audit"; unless a subscribe trigger declares it, it must exist on stream ORDERS when the step runs`}},
	},
	{
		name: "every mistake of one file, at once",
		src: app("modules:", lBus,
			`  - { name: orders, type: eventbus.stream, config: { name: ORDERS, subjects: ["orders.>"], num_replicas: 3 } }`,
			`  - { name: nameless, type: eventbus.consumer, config: { max_deliver: 3 } }`,
			`  - { name: payments, type: eventbus.consumer, config: { stream_name: PAYMENTS } }`,
			`  - { name: worker, type: eventbus.consumer, config: { stream_name: ORDERS, dead_letter_subject: dlq.orders } }`,
			`  - { name: audit, type: eventbus.consumer, config: { stream_name: "${AUDIT_STREAM}" } }`,
			lPipe,
			`    trigger: { type: trigger.eventbus.subscribe, config: { name: nobody, concurrency: -1 } }`,
			lSteps,
			`      - { name: read, type: step.eventbus.consume, config: { consumer: worker, batch_size: 5000 } }`,
			`      - { name: fwd, type: step.eventbus.publish, config: { subject: 'shipping.{{ .json.region }}', payload: x } }`),
		problems: []want{
			{3, "modules[1].config.num_replicas", runner.ErrInvalidValue, "3 replicas"},
			{4, "modules[2].config.stream_name", runner.ErrMissingField, "required"},
			{5, "modules[3].config.stream_name", runner.ErrUnknownReference, `"PAYMENTS"`},
			{6, "modules[4].config.dead_letter_subject", runner.ErrUnknownReference, `"dlq.orders"`},
			{7, "modules[5].config.stream_name", runner.ErrUnknownReference, "AUDIT_STREAM is not set"},
			{10, "pipelines.p.trigger.config.name", runner.ErrUnknownReference, `"nobody"`},
			{10, "pipelines.p.trigger.config.concurrency", runner.ErrInvalidValue, "got -1"},
			{12, "pipelines.p.steps[0].config.batch_size", runner.ErrInvalidValue, "got 5000"},
			{13, "pipelines.p.steps[1].config.subject", runner.ErrUnknownReference, `"shipping."`},
		},
		warnings: []want{{7, "modules[5].config.stream_name", nil, "${AUDIT_STREAM} is left as written"}},
	},
}

// TestValidateAndRunAgree checks each app of validateRunCases the way
// eventbus validate does (Prepare, with the eventbus plugin in this
// process) and runs it the way a Runner built by New does (Start, which
// creates everything and then starts it, on an embedded broker). Both must
// report the same problems and warnings, with file, line and field, and
// those the case expects. An app without problems must start: a check made
// only once the app starts would fail it here while validate passes it.
// Nothing may be written to the broker's store before the app starts.
func TestValidateAndRunAgree(t *testing.T) {
	t.Parallel()
	for _, tc := range validateRunCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			store := filepath.Join(t.TempDir(), "store")
			env := map[string]string{"STORE": store}
			for k, v := range tc.env {
				env[k] = v
			}
			vProblems, vWarnings := validateApp(t, tc.src, env)
			if _, err := os.Stat(store); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("validate touched the broker's store %s: %v", store, err)
			}
			rProblems, rWarnings, started := runApp(t, tc.src, env)
			if !slices.Equal(vProblems, rProblems) {
				t.Errorf("validate and run disagree on problems\nvalidate:\n  %s\nrun:\n  %s", strings.Join(vProblems, "\n  "), strings.Join(rProblems, "\n  "))
			}
			if !slices.Equal(vWarnings, rWarnings) {
				t.Errorf("validate and run disagree on warnings\nvalidate:\n  %s\nrun:\n  %s", strings.Join(vWarnings, "\n  "), strings.Join(rWarnings, "\n  "))
			}
			if started != (len(tc.problems) == 0) {
				t.Errorf("run started %v, want %v", started, len(tc.problems) == 0)
			}
			expect(t, "problem", vProblems, tc.problems)
			expect(t, "warning", vWarnings, tc.warnings)
		})
	}
}

// expect checks that got (problems as "app.yaml:<line>: <field>: <msg>
// [<kind>]") holds exactly the wanted ones, in order.
func expect(t *testing.T, what string, got []string, wants []want) {
	t.Helper()
	ok := len(got) == len(wants)
	for i := 0; ok && i < len(wants); i++ {
		w := wants[i]
		prefix := fmt.Sprintf("app.yaml:%d: %s: ", w.line, w.field)
		ok = strings.HasPrefix(got[i], prefix) && strings.Contains(got[i], w.says) && (w.err == nil || strings.HasSuffix(got[i], "["+w.err.Error()+"]"))
	}
	if !ok {
		t.Errorf("%ss\n got:\n  %s\nwant:\n  %v", what, strings.Join(got, "\n  "), wants)
	}
}

// describe renders problems for comparison: position, field, message and,
// for problems, the runner error they match.
func describe(ps []*runner.Problem, kinds bool) []string {
	var out []string
	for _, p := range ps {
		s := p.Error()
		if kinds {
			for _, k := range []error{runner.ErrMissingField, runner.ErrUnknownReference, runner.ErrInvalidValue, runner.ErrWrongType, runner.ErrUnknownField, runner.ErrDuplicate} {
				if errors.Is(p, k) {
					s += " [" + k.Error() + "]"
					break
				}
			}
		}
		out = append(out, s)
	}
	return out
}

// launch starts the eventbus plugin in this process, as eventbus validate
// and run do, and closes it when the test ends.
func launch(t *testing.T, env map[string]string, warnings *runner.PluginWarnings) runner.Plugin {
	t.Helper()
	c, err := pluginserver.LaunchDirect(t.Context(), pluginserver.DirectConfig{Version: "1.0.0", Getenv: func(k string) string { return env[k] }, Warn: warnTo(warnings)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(context.Background()); err != nil {
			t.Errorf("close the plugin: %v", err)
		}
	})
	return runner.FromClient(c)
}

func parseApp(t *testing.T, src string, env map[string]string) *runner.Config {
	t.Helper()
	cfg, err := runner.Parse("app.yaml", []byte(src), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return cfg
}

// validateApp checks src as eventbus validate does.
func validateApp(t *testing.T, src string, env map[string]string) (problems, warnings []string) {
	t.Helper()
	buf := &runner.PluginWarnings{}
	r, err := runner.Prepare(t.Context(), parseApp(t, src, env), launch(t, env, buf), nil, runner.WithPluginWarnings(buf.Take))
	var ce *runner.ConfigError
	switch {
	case errors.As(err, &ce):
		return describe(ce.Problems, true), describe(ce.Warnings, false)
	case err != nil:
		t.Fatalf("validate: %v", err)
	}
	return nil, describe(r.Warnings(), false)
}

// runApp runs src with a Runner built by New until it has started, and
// stops it; it returns the problems Start reported, the warnings logged and
// whether the app started.
func runApp(t *testing.T, src string, env map[string]string) (problems, warnings []string, started bool) {
	t.Helper()
	buf := &runner.PluginWarnings{}
	logs := &warningLog{}
	r, err := runner.New(parseApp(t, src, env), launch(t, env, buf), slog.New(logs), runner.WithPluginWarnings(buf.Take))
	var ce *runner.ConfigError
	switch {
	case errors.As(err, &ce):
		return describe(ce.Problems, true), logs.sorted(), false
	case err != nil:
		t.Fatalf("New: %v", err)
	}
	err = r.Start(t.Context())
	switch {
	case errors.As(err, &ce):
		return describe(ce.Problems, true), logs.sorted(), false
	case err != nil:
		t.Fatalf("Start: %v", err)
	}
	if err := r.Stop(context.Background()); err != nil {
		t.Errorf("Stop: %v", err)
	}
	return nil, logs.sorted(), true
}

// warningLog keeps the config warnings a Runner logs.
type warningLog struct {
	mu   sync.Mutex
	list []string
}

func (h *warningLog) Enabled(context.Context, slog.Level) bool { return true }

func (h *warningLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "app config" {
		return nil
	}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "warning" {
			h.mu.Lock()
			h.list = append(h.list, a.Value.String())
			h.mu.Unlock()
		}
		return true
	})
	return nil
}

func (h *warningLog) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *warningLog) WithGroup(string) slog.Handler      { return h }

// sorted returns the warnings in the order of their lines, as validate
// reports them.
func (h *warningLog) sorted() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := slices.Clone(h.list)
	slices.SortStableFunc(out, func(a, b string) int { return lineOf(a) - lineOf(b) })
	return out
}

func lineOf(s string) int {
	var n int
	_, _ = fmt.Sscanf(strings.TrimPrefix(s, "app.yaml:"), "%d", &n)
	return n
}

// TestExternalBrokerWarnings runs an app whose consumer reads a stream the
// app does not declare, on an external broker: validate warns and passes
// it, and run starts it, because the stream exists on the broker.
func TestExternalBrokerWarnings(t *testing.T) {
	t.Parallel()
	srv, err := embedded.Start(t.Context(), embedded.Config{Port: embedded.RandomPort, StoreDir: t.TempDir(), MemoryOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "LEGACY", Subjects: []string{"legacy.>"}, Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	src := app("modules:",
		`  - { name: bus, type: eventbus.broker, config: { dsn: "${NATS}" } }`,
		`  - { name: worker, type: eventbus.consumer, config: { stream_name: LEGACY } }`,
		lPipe, lTrig, lSteps,
		`      - { name: fwd, type: step.eventbus.publish, config: { subject: legacy.done, payload: x } }`)
	env := map[string]string{"NATS": srv.ClientURL()}
	vProblems, vWarnings := validateApp(t, src, env)
	rProblems, rWarnings, started := runApp(t, src, env)
	expect(t, "problem", vProblems, nil)
	expect(t, "warning", vWarnings, []want{
		{3, "modules[1].config.stream_name", nil, `no eventbus.stream module declares stream "LEGACY" on broker bus (none declared); on external broker bus it must be created by something other than this app`},
		{8, "pipelines.p.steps[0].config.subject", nil, `no stream on broker bus stores subject "legacy.done" (none declared); on external broker bus it must be created by something other than this app`},
	})
	if !slices.Equal(vProblems, rProblems) || !slices.Equal(vWarnings, rWarnings) || !started {
		t.Errorf("run: problems %q, warnings %q, started %v", rProblems, rWarnings, started)
	}
}

// TestPluginProblemsPlaced: each line of a plugin's refusal becomes a
// problem at the field it names, in the config of the step refused, a
// sub-step's included; a line that names no field is placed at the entry.
func TestPluginProblemsPlaced(t *testing.T) {
	t.Parallel()
	src := `pipelines:
  p:
    steps:
      - name: each
        type: step.foreach
        config:
          collection: items
          step:
            name: inner
            type: step.eventbus.publish
            config:
              subject: a
              messages:
                - { payload: x }
`
	f := newFake(testCatalog(t))
	f.fail = "CreateStep inner step.eventbus.publish"
	f.failWith = &wfplugin.RemoteError{Op: "CreateStep", Message: `create step "inner" (step.eventbus.publish): config.subject: no stream stores it`, Detail: "config.subject: no stream stores it\nconfig.messages[0].subject: unknown reference: nowhere\nthe broker is gone"}
	_, err := runner.Prepare(t.Context(), mustParse(t, src, nil), f, nil)
	var ce *runner.ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("want a *ConfigError, got %v", err)
	}
	got := describe(ce.Problems, true)
	wantLines := []string{
		"app.yaml:4: pipelines.p.steps[0]: step inner (step.eventbus.publish): the broker is gone [invalid value]",
		"app.yaml:12: pipelines.p.steps[0].config.step.config.subject: step inner (step.eventbus.publish): no stream stores it [invalid value]",
		"app.yaml:14: pipelines.p.steps[0].config.step.config.messages[0].subject: step inner (step.eventbus.publish): unknown reference: nowhere [unknown reference]",
	}
	if !slices.Equal(got, wantLines) {
		t.Errorf("problems\n got:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(wantLines, "\n  "))
	}
}

// TestCreateFailureThatIsNoConfigProblem: a plugin that cannot be asked
// any more stops Prepare with that, not with a problem of the config.
func TestCreateFailureThatIsNoConfigProblem(t *testing.T) {
	t.Parallel()
	f := newFake(testCatalog(t))
	f.fail = "CreateModule bus eventbus.broker"
	f.failWith = fmt.Errorf("wfplugin: CreateModule: %w", wfplugin.ErrClosed)
	_, err := runner.Prepare(t.Context(), mustParse(t, "modules:\n  - { name: bus, type: eventbus.broker }\n  - { name: other, type: eventbus.broker }\n", nil), f, nil)
	var ce *runner.ConfigError
	var le *runner.LifecycleError
	if errors.As(err, &ce) || !errors.As(err, &le) || !errors.Is(err, runner.ErrLifecycle) || !errors.Is(err, wfplugin.ErrClosed) {
		t.Fatalf("err = %v, want a *LifecycleError", err)
	}
	if want := "app.yaml:2: create module bus (eventbus.broker): wfplugin: CreateModule: plugin client closed"; err.Error() != want {
		t.Errorf("err = %q, want %q", err, want)
	}
	if calls := f.callList(); len(calls) != 1 {
		t.Errorf("calls after the plugin was gone: %q", calls)
	}
}

// TestFailedStartLogsNoStop: a start that fails stops what it started
// without logging "runner stopped" ahead of the error it returns; a Stop
// logs it.
func TestFailedStartLogsNoStop(t *testing.T) {
	t.Parallel()
	src := "modules:\n  - { name: a, type: eventbus.broker }\n  - { name: b, type: eventbus.broker }\n"
	for _, fail := range []string{"StartModule m:b", ""} {
		f := newFake(testCatalog(t))
		f.fail = fail
		logs := &recordHandler{}
		r, err := runner.New(mustParse(t, src, nil), f, slog.New(logs))
		if err != nil {
			t.Fatal(err)
		}
		err = r.Start(t.Context())
		if fail == "" {
			if err != nil {
				t.Fatal(err)
			}
			err = r.Stop(t.Context())
		}
		var le *runner.LifecycleError
		switch {
		case fail != "" && (!errors.As(err, &le) || err.Error() != "app.yaml:3: start module b (eventbus.broker): fake failure of StartModule m:b"):
			t.Errorf("Start: %v, want the failure at line 3", err)
		case fail == "" && err != nil:
			t.Errorf("Stop: %v", err)
		}
		logs.mu.Lock()
		stopped := slices.Contains(logs.msgs, "runner stopped")
		logs.mu.Unlock()
		if stopped != (fail == "") {
			t.Errorf("fail %q: runner stopped logged %v", fail, stopped)
		}
	}
}
