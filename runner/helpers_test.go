package runner_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"

	eventbusv1 "github.com/wfeventbus/eventbus/gen/eventbus/v1"
	pluginv1 "github.com/wfeventbus/eventbus/gen/workflow/plugin/v1"
	"github.com/wfeventbus/eventbus/runner"
	"github.com/wfeventbus/eventbus/wfplugin"
)

// testCatalog declares eventbus-like types with typed contracts in mixed
// mode, one strict step and one step without a contract.
func testCatalog(t *testing.T) runner.Catalog {
	t.Helper()
	const (
		mixed  = pluginv1.ContractMode_CONTRACT_MODE_PROTO_WITH_LEGACY_STRUCT
		strict = pluginv1.ContractMode_CONTRACT_MODE_STRICT_PROTO
	)
	module := func(typ, msg string) *pluginv1.ContractDescriptor {
		return &pluginv1.ContractDescriptor{Kind: pluginv1.ContractKind_CONTRACT_KIND_MODULE, ModuleType: typ, ConfigMessage: msg, Mode: mixed}
	}
	step := func(typ, msg string, mode pluginv1.ContractMode) *pluginv1.ContractDescriptor {
		return &pluginv1.ContractDescriptor{Kind: pluginv1.ContractKind_CONTRACT_KIND_STEP, StepType: typ, ConfigMessage: msg, InputMessage: "google.protobuf.Empty", Mode: mode}
	}
	reg, err := wfplugin.NewRegistry(&pluginv1.ContractRegistry{
		Contracts: []*pluginv1.ContractDescriptor{
			module("eventbus.broker", "eventbus.v1.BrokerConfig"),
			module("eventbus.stream", "eventbus.v1.StreamConfig"),
			module("eventbus.consumer", "eventbus.v1.ConsumerConfig"),
			step("step.eventbus.publish", "eventbus.v1.PublishStepConfig", mixed),
			step("step.eventbus.consume", "eventbus.v1.ConsumeStepConfig", strict),
			{Kind: pluginv1.ContractKind_CONTRACT_KIND_TRIGGER, TriggerType: "trigger.eventbus.subscribe", ConfigMessage: "eventbus.v1.SubscribeTriggerConfig", Mode: mixed},
		},
		FileDescriptorSet: wfplugin.FileDescriptorSet(eventbusv1.File_eventbus_v1_resources_proto, eventbusv1.File_eventbus_v1_plugin_proto),
	})
	if err != nil {
		t.Fatalf("NewRegistry: %v", err)
	}
	return runner.Catalog{
		ModuleTypes:  []string{"eventbus.broker", "eventbus.stream", "eventbus.consumer"},
		StepTypes:    []string{"step.eventbus.publish", "step.eventbus.consume", "step.test.echo"},
		TriggerTypes: []string{"trigger.eventbus.subscribe"},
		Contracts:    reg,
	}
}

// wantProblem is one expected problem of a config.
type wantProblem struct {
	line  int
	field string
	err   error
}

func (w wantProblem) String() string { return fmt.Sprintf("line %d %s (%v)", w.line, w.field, w.err) }

// checkProblems asserts that err is a *ConfigError holding exactly the
// wanted problems, in order, each in file app.yaml.
func checkProblems(t *testing.T, err error, want []wantProblem) {
	t.Helper()
	if len(want) == 0 {
		if err != nil {
			t.Fatalf("want no problem, got:\n%v", err)
		}
		return
	}
	var ce *runner.ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("want a *ConfigError, got %v", err)
	}
	if !errors.Is(err, runner.ErrInvalidConfig) {
		t.Errorf("error does not match ErrInvalidConfig")
	}
	ok := len(ce.Problems) == len(want)
	for i := 0; ok && i < len(want); i++ {
		p, w := ce.Problems[i], want[i]
		ok = p.Pos.Line == w.line && p.Field == w.field && errors.Is(p, w.err) && p.Pos.File == "app.yaml"
	}
	if !ok {
		var got []string
		for _, p := range ce.Problems {
			got = append(got, fmt.Sprintf("line %d %s: %v", p.Pos.Line, p.Field, p.Err))
		}
		t.Fatalf("problems differ\n got:\n  %s\nwant:\n  %v", strings.Join(got, "\n  "), want)
	}
}

// fakePlugin is an in-memory Plugin that records every call. Steps of type
// step.test.echo output their rendered config; other plugin steps output
// nothing, unless exec is set.
type fakePlugin struct {
	cat runner.Catalog

	// exec, when set, runs every plugin step.
	exec func(ctx context.Context, handle string, in runner.StepInput) (runner.StepResult, error)
	// fail makes the call whose record equals it fail, with failWith as
	// its error when set.
	fail     string
	failWith error
	// hook, when set, sees every call record before it is made.
	hook func(call string)

	mu      sync.Mutex
	calls   []string
	configs map[string]map[string]any // by handle
	types   map[string]string         // step handle -> type
	inputs  []runner.StepInput
}

func newFake(cat runner.Catalog) *fakePlugin {
	return &fakePlugin{cat: cat, configs: map[string]map[string]any{}, types: map[string]string{}}
}

func (f *fakePlugin) Catalog() runner.Catalog { return f.cat }

func (f *fakePlugin) record(call string) error {
	if f.hook != nil {
		f.hook(call)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
	if f.fail == call {
		if f.failWith != nil {
			return f.failWith
		}
		return errors.New("fake failure of " + call)
	}
	return nil
}

func (f *fakePlugin) create(call, handle string, cfg map[string]any) (string, error) {
	if err := f.record(call); err != nil {
		return "", err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.configs[handle] = cfg
	return handle, nil
}

func (f *fakePlugin) CreateModule(_ context.Context, typ, name string, cfg map[string]any) (string, error) {
	return f.create("CreateModule "+name+" "+typ, "m:"+name, cfg)
}

func (f *fakePlugin) InitModule(_ context.Context, h string) error {
	return f.record("InitModule " + h)
}
func (f *fakePlugin) StartModule(_ context.Context, h string) error {
	return f.record("StartModule " + h)
}
func (f *fakePlugin) StopModule(_ context.Context, h string) error {
	return f.record("StopModule " + h)
}

func (f *fakePlugin) CreateStep(_ context.Context, typ, name string, cfg map[string]any) (string, error) {
	f.mu.Lock()
	h := fmt.Sprintf("s:%s:%d", name, len(f.types))
	f.types[h] = typ
	f.mu.Unlock()
	return f.create("CreateStep "+name+" "+typ, h, cfg)
}

func (f *fakePlugin) ExecuteStep(ctx context.Context, h string, in runner.StepInput) (runner.StepResult, error) {
	f.mu.Lock()
	f.inputs = append(f.inputs, copyInput(in))
	typ, exec := f.types[h], f.exec
	f.mu.Unlock()
	if exec != nil {
		return exec(ctx, h, in)
	}
	if typ == "step.test.echo" {
		return runner.StepResult{Output: maps.Clone(in.Config)}, nil
	}
	return runner.StepResult{}, nil
}

func (f *fakePlugin) CreateTrigger(_ context.Context, typ, wt string, cfg map[string]any) (string, error) {
	return f.create("CreateTrigger "+wt+" "+typ, "t:"+wt, cfg)
}

func (f *fakePlugin) StartTrigger(_ context.Context, h string) error {
	return f.record("StartTrigger " + h)
}
func (f *fakePlugin) StopTrigger(_ context.Context, h string) error {
	return f.record("StopTrigger " + h)
}

func (f *fakePlugin) callList() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func (f *fakePlugin) config(handle string) map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.configs[handle]
}

func (f *fakePlugin) inputList() []runner.StepInput {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.inputs)
}

// copyInput snapshots a step input: the runner keeps filling its maps
// after the step returns.
func copyInput(in runner.StepInput) runner.StepInput {
	steps := map[string]map[string]any{}
	for k, v := range in.StepOutputs {
		steps[k] = maps.Clone(v)
	}
	return runner.StepInput{
		TriggerData: maps.Clone(in.TriggerData),
		StepOutputs: steps,
		Current:     maps.Clone(in.Current),
		Metadata:    maps.Clone(in.Metadata),
		Config:      maps.Clone(in.Config),
	}
}

// mustParse parses src as app.yaml.
func mustParse(t *testing.T, src string, env map[string]string) *runner.Config {
	t.Helper()
	cfg, err := runner.Parse("app.yaml", []byte(src), mapEnv(env))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return cfg
}

func mapEnv(env map[string]string) runner.LookupEnv {
	return func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}
}
