package runner_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/wfeventbus/eventbus/runner"
)

// builtinOnly is a plugin with no types of its own: apps made of the
// built-in steps run on it.
type builtinOnly struct{}

func (builtinOnly) Catalog() runner.Catalog { return runner.Catalog{} }
func (builtinOnly) CreateModule(context.Context, string, string, map[string]any) (string, error) {
	return "", nil
}
func (builtinOnly) InitModule(context.Context, string) error  { return nil }
func (builtinOnly) StartModule(context.Context, string) error { return nil }
func (builtinOnly) StopModule(context.Context, string) error  { return nil }
func (builtinOnly) CreateStep(context.Context, string, string, map[string]any) (string, error) {
	return "", nil
}
func (builtinOnly) ExecuteStep(context.Context, string, runner.StepInput) (runner.StepResult, error) {
	return runner.StepResult{}, nil
}
func (builtinOnly) CreateTrigger(context.Context, string, string, map[string]any) (string, error) {
	return "", nil
}
func (builtinOnly) StartTrigger(context.Context, string) error { return nil }
func (builtinOnly) StopTrigger(context.Context, string) error  { return nil }

func ExampleCheck() {
	app := `modules:
  - name: bus
    type: eventbus.broker
pipelines:
  orders:
    trigger:
      type: trigger.eventbus.subscribe
      config: { name: worker, broker_ref: buss }
    steps:
      - name: publish
        type: step.eventbus.publsh
      - name: log
        type: step.log
`
	catalog := runner.Catalog{
		ModuleTypes:  []string{"eventbus.broker"},
		StepTypes:    []string{"step.eventbus.publish"},
		TriggerTypes: []string{"trigger.eventbus.subscribe"},
	}
	_, err := runner.Check("app.yaml", []byte(app), nil, catalog)
	fmt.Println(err)
	// Output:
	// app.yaml:8: pipelines.orders.trigger.config.broker_ref: broker_ref "buss" names no module of this app (did you mean "bus"?)
	// app.yaml:11: pipelines.orders.steps[0].type: unknown step type: step.eventbus.publsh (did you mean "step.eventbus.publish"?)
	// app.yaml:12: pipelines.orders.steps[1].config: log step "log": 'message' is required
}

func ExampleRunner() {
	app := `pipelines:
  greet:
    steps:
      - name: who
        type: step.set
        config: { values: { name: "{{ .trigger.name }}", count: "{{ .trigger.count }}" } }
      - name: say
        type: step.log
        config: { level: warn, message: "hello {{ .steps.who.name }} ({{ .count }})" }
`
	cfg, err := runner.Parse("app.yaml", []byte(app), os.LookupEnv)
	if err != nil {
		fmt.Println(err)
		return
	}
	// Warnings only, without time, so that the output is stable.
	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		Level: slog.LevelWarn,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
	r, err := runner.New(cfg, builtinOnly{}, logger)
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()
	if err := r.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	// A plugin trigger would make this call once per message.
	err = r.TriggerWorkflow(ctx, "pipeline:greet", "", map[string]any{"name": "ann", "count": float64(1e6)})
	fmt.Println("run error:", err)
	err = r.TriggerWorkflow(ctx, "pipeline:nope", "", nil)
	fmt.Println("run error:", err)
	fmt.Println("stop error:", r.Stop(ctx))
	// Output:
	// level=WARN msg="hello ann (1e+06)" pipeline=greet step=say
	// run error: <nil>
	// run error: no handler found for workflow type: pipeline:nope
	// stop error: <nil>
}
