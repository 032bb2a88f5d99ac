package pluginserver_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wfeventbus/eventbus/eventbus"
	"github.com/wfeventbus/eventbus/pluginserver"
	"github.com/wfeventbus/eventbus/runner"
	"github.com/wfeventbus/eventbus/wfplugin"
)

// planted is the eventbus plugin with panics planted where a bug in plugin
// code would be: in a step, when the message's payload says
// "panic-in-step", and on a delivery's way to the host, when it says
// "panic-in-delivery".
type planted struct{ *pluginserver.Server }

func (p planted) CreateStep(ctx context.Context, spec wfplugin.StepSpec) (wfplugin.Step, error) {
	st, err := p.Server.CreateStep(ctx, spec)
	if err != nil {
		return nil, err
	}
	return plantedStep{st}, nil
}

func (p planted) CreateTrigger(ctx context.Context, spec wfplugin.TriggerSpec, cb wfplugin.Callback) (wfplugin.Trigger, error) {
	return p.Server.CreateTrigger(ctx, spec, plantedCallback{cb})
}

type plantedStep struct{ wfplugin.Step }

func (s plantedStep) Execute(ctx context.Context, req *wfplugin.StepRequest) (*wfplugin.StepResult, error) {
	if p, _ := req.CurrentValue("payload"); p == "panic-in-step" {
		panic("planted in a step")
	}
	return s.Step.Execute(ctx, req)
}

type plantedCallback struct{ wfplugin.Callback }

func (c plantedCallback) TriggerWorkflow(ctx context.Context, data map[string]any) error {
	if data["payload"] == "panic-in-delivery" {
		panic("planted in a delivery")
	}
	return c.Callback.TriggerWorkflow(ctx, data)
}

const panicApp = `modules:
  - name: bus
    type: eventbus.broker
    config:
      embedded: { port: %d, store_dir: %q }
  - name: in
    type: eventbus.stream
    config: { name: IN, subjects: ["in.>"] }
  - name: out
    type: eventbus.stream
    config: { name: OUT, subjects: ["out.>", "dlq.>"] }
  - name: worker
    type: eventbus.consumer
    config: { stream_name: IN, max_deliver: 2, backoff: ["10ms"], dead_letter_subject: dlq.in }
pipelines:
  forward:
    trigger:
      type: trigger.eventbus.subscribe
      config: { name: worker }
    steps:
      - name: publish
        type: step.eventbus.publish
        config: { subject: out.done, payload: '{{ .payload }}' }
`

// TestPanicsFailTheirStepOrDelivery plants panics in plugin code: one in a
// step, one on a delivery's way to the host. Each is reported as that
// step's or that delivery's error, so the message is retried and then
// dead-lettered with the panic as its error, while the host goes on: the
// messages before and after are handled. It runs with the plugin called
// directly, as eventbus run does by default (a panic there that nothing
// recovered would end this test's process), and over gRPC in this process,
// whose errors the direct path must match.
func TestPanicsFailTheirStepOrDelivery(t *testing.T) {
	t.Parallel()
	launchers := map[string]func(context.Context, wfplugin.Plugin, ...wfplugin.LaunchOption) (*wfplugin.Client, error){
		"direct": wfplugin.LaunchDirect,
		"grpc":   wfplugin.LaunchInProcess,
	}
	var (
		mu     sync.Mutex
		errors = map[string]map[string]string{}
	)
	t.Run("transports", func(t *testing.T) {
		for name, launch := range launchers {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				got := runPanicApp(t, launch)
				mu.Lock()
				errors[name] = got
				mu.Unlock()
			})
		}
	})
	if t.Failed() {
		return
	}
	for payload, text := range errors["direct"] {
		if other := errors["grpc"][payload]; other != text {
			t.Errorf("%s: dead-letter error %q directly, %q over gRPC", payload, text, other)
		}
	}
}

// runPanicApp runs panicApp on the planted plugin and returns the error
// each dead letter carries, by payload.
func runPanicApp(t *testing.T, launch func(context.Context, wfplugin.Plugin, ...wfplugin.LaunchOption) (*wfplugin.Client, error)) map[string]string {
	ctx := ctxT(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()

	var fw runner.Forwarder
	core := eventbus.New(eventbus.Options{})
	c, err := launch(ctx, planted{pluginserver.New(core, "0.1.0")}, wfplugin.WithWorkflowHandler(fw.TriggerWorkflow))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	p := runner.FromClient(c)
	cfg, err := runner.Check("app.yaml", []byte(fmt.Sprintf(panicApp, port, t.TempDir())), nil, p.Catalog())
	if err != nil {
		t.Fatal(err)
	}
	r, err := runner.New(cfg, p, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	fw.Attach(r)
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = r.Stop(context.Background()) }()

	nc, err := nats.Connect("nats://127.0.0.1:" + strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	sent := []string{"first", "panic-in-step", "panic-in-delivery", "last"}
	for _, p := range sent {
		if _, err := js.Publish(ctx, "in.x", []byte(p)); err != nil {
			t.Fatal(err)
		}
	}

	done, dead := map[string]int{}, map[string]string{}
	cons, err := js.OrderedConsumer(ctx, "OUT", jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for len(done)+len(dead) < len(sent) {
		m, err := cons.Next(jetstream.FetchMaxWait(hangGuard))
		if err != nil {
			t.Fatalf("handled %v, dead-lettered %v: %v", done, dead, err)
		}
		switch m.Subject() {
		case "out.done":
			done[string(m.Data())]++
		case "dlq.in":
			dead[string(m.Data())] = m.Headers().Get(eventbus.HeaderError)
		}
	}
	if done["first"] != 1 || done["last"] != 1 || len(done) != 2 {
		t.Errorf("handled %v, want first and last once each", done)
	}
	for p, want := range map[string]string{
		"panic-in-step":     `step "publish" failed: remote step execute: plugin code panicked: Execute step-5: planted in a step`,
		"panic-in-delivery": "plugin code panicked: TriggerWorkflow pipeline:forward: planted in a delivery",
	} {
		if text, ok := dead[p]; !ok || !strings.Contains(text, want) {
			t.Errorf("%s: dead-lettered %v with error %q, want the panic as its error (%q)", p, ok, text, want)
		}
	}
	// The host goes on: a new message is handled too.
	if _, err := js.Publish(ctx, "in.x", []byte("after")); err != nil {
		t.Fatal(err)
	}
	for {
		m, err := cons.Next(jetstream.FetchMaxWait(hangGuard))
		if err != nil {
			t.Fatalf("the message after the panics was not handled: %v", err)
		}
		if string(m.Data()) == "after" {
			break
		}
	}
	if c.Exited() {
		t.Error("the plugin ended")
	}
	return dead
}
