package wfplugin_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/descriptorpb"

	eventbusv1 "github.com/wfeventbus/eventbus/gen/eventbus/v1"
	pluginv1 "github.com/wfeventbus/eventbus/gen/workflow/plugin/v1"
	"github.com/wfeventbus/eventbus/wfplugin"
)

// pluginModeEnv makes the test binary serve the test plugin instead of
// running tests; its value picks a variant.
const pluginModeEnv = "WFPLUGIN_TEST_PLUGIN_MODE"

// Variants of the test plugin.
const (
	modeServe        = "serve"          // the full plugin
	modeNoTriggers   = "no-triggers"    // no trigger types
	modeBadManifest  = "bad-manifest"   // version "dev"
	modeBadContracts = "bad-contracts"  // descriptor set without its imports
	modeCrashAtStart = "crash-at-start" // writes to stderr and exits before the handshake
)

// Lines the test plugin writes to stderr before it dies.
const (
	crashAtStartLine = "fatal: marker-crash-at-start"
	crashInStepLine  = "fatal: marker-crash-in-step"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(pluginModeEnv); mode != "" {
		os.Exit(runTestPlugin(mode))
	}
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "wfplugin-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if err := writeScripts(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

func runTestPlugin(mode string) int {
	stderr := os.Stderr
	if mode == modeCrashAtStart {
		fmt.Fprintln(stderr, "starting up")
		fmt.Fprintln(stderr, crashAtStartLine)
		return 3
	}
	p := newTestPlugin(mode, stderr)
	if err := wfplugin.Serve(p, p.serveOptions()...); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}

// testPlugin is a small plugin: one module, a few steps and one trigger.
// It records the PluginService RPCs it receives, in order, and reports
// them (and the state of its instances) through step.test.calls.
type testPlugin struct {
	mode   string
	stderr *os.File

	mu       sync.Mutex
	calls    []any
	modules  []*testModule
	triggers []*testTrigger
}

func newTestPlugin(mode string, stderr *os.File) *testPlugin {
	return &testPlugin{mode: mode, stderr: stderr}
}

func (p *testPlugin) serveOptions() []wfplugin.ServeOption {
	return []wfplugin.ServeOption{wfplugin.WithGRPCServerOptions(grpc.ChainUnaryInterceptor(p.record))}
}

func (p *testPlugin) record(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if strings.HasPrefix(info.FullMethod, "/workflow.plugin.v1.PluginService/") {
		p.mu.Lock()
		p.calls = append(p.calls, path.Base(info.FullMethod))
		p.mu.Unlock()
	}
	return h(ctx, req)
}

func (p *testPlugin) Manifest() wfplugin.Manifest {
	m := wfplugin.Manifest{Name: "wfplugin-test", Version: "v1.2.3", Author: "wfplugin tests", Description: "exercises the protocol"}
	if p.mode == modeBadManifest {
		m.Version = "dev"
	}
	return m
}

func (p *testPlugin) ModuleTypes() []string { return []string{"test.module"} }

func (p *testPlugin) StepTypes() []string {
	return []string{"step.test.settle", "step.test.strict", "step.test.echo", "step.test.calls", "step.test.crash", "step.test.panic", "step.test.output"}
}

func (p *testPlugin) TriggerTypes() []string {
	if p.mode == modeNoTriggers {
		return nil
	}
	return []string{"trigger.test.fire"}
}

func (p *testPlugin) Contracts() *pluginv1.ContractRegistry {
	set := wfplugin.FileDescriptorSet(eventbusv1.File_eventbus_v1_plugin_proto)
	if p.mode == modeBadContracts {
		last := set.GetFile()[len(set.GetFile())-1]
		set = &descriptorpb.FileDescriptorSet{File: []*descriptorpb.FileDescriptorProto{last}}
	}
	return testContracts(set)
}

// testContracts declares a STRICT module, a mixed step and a STRICT step.
func testContracts(set *descriptorpb.FileDescriptorSet) *pluginv1.ContractRegistry {
	return &pluginv1.ContractRegistry{
		Contracts: []*pluginv1.ContractDescriptor{
			{
				Kind:          pluginv1.ContractKind_CONTRACT_KIND_MODULE,
				ModuleType:    "test.module",
				ConfigMessage: "eventbus.v1.StreamConfig",
				Mode:          pluginv1.ContractMode_CONTRACT_MODE_STRICT_PROTO,
			},
			{
				Kind:          pluginv1.ContractKind_CONTRACT_KIND_STEP,
				StepType:      "step.test.settle",
				ConfigMessage: "eventbus.v1.SettleStepConfig",
				InputMessage:  "eventbus.v1.SettleStepInput",
				Mode:          pluginv1.ContractMode_CONTRACT_MODE_PROTO_WITH_LEGACY_STRUCT,
			},
			{
				Kind:          pluginv1.ContractKind_CONTRACT_KIND_STEP,
				StepType:      "step.test.strict",
				ConfigMessage: "eventbus.v1.SettleStepConfig",
				InputMessage:  "eventbus.v1.SettleStepInput",
				Mode:          pluginv1.ContractMode_CONTRACT_MODE_STRICT_PROTO,
			},
			{
				Kind:        pluginv1.ContractKind_CONTRACT_KIND_TRIGGER,
				TriggerType: "trigger.test.fire",
				Mode:        pluginv1.ContractMode_CONTRACT_MODE_LEGACY_STRUCT,
			},
		},
		FileDescriptorSet: set,
	}
}

func (p *testPlugin) CreateModule(_ context.Context, spec wfplugin.ModuleSpec) (wfplugin.Module, error) {
	if spec.Name == "refused" {
		return nil, errors.New("config.name: refused by the plugin")
	}
	cfg := &eventbusv1.StreamConfig{}
	if spec.TypedConfig == nil {
		return nil, errors.New("no typed config")
	}
	if err := spec.TypedConfig.UnmarshalTo(cfg); err != nil {
		return nil, err
	}
	m := &testModule{name: spec.Name, cfg: cfg, hadStruct: spec.Config != nil}
	p.mu.Lock()
	p.modules = append(p.modules, m)
	p.mu.Unlock()
	return m, nil
}

func (p *testPlugin) CreateStep(_ context.Context, spec wfplugin.StepSpec) (wfplugin.Step, error) {
	switch spec.Type {
	case "step.test.settle", "step.test.strict":
		return &settleStep{created: spec}, nil
	case "step.test.echo":
		return echoStep{}, nil
	case "step.test.calls":
		return callsStep{p: p}, nil
	case "step.test.crash":
		return crashStep{stderr: p.stderr}, nil
	case "step.test.panic":
		return panicStep{}, nil
	case "step.test.output":
		return outputStep{}, nil
	}
	return nil, fmt.Errorf("no step %s", spec.Type)
}

func (p *testPlugin) CreateTrigger(_ context.Context, spec wfplugin.TriggerSpec, cb wfplugin.Callback) (wfplugin.Trigger, error) {
	if spec.WorkflowType == "pipeline:refused" {
		return nil, errors.New("config.name: refused by the plugin")
	}
	t := &testTrigger{spec: spec, cb: cb}
	p.mu.Lock()
	p.triggers = append(p.triggers, t)
	p.mu.Unlock()
	return t, nil
}

// testModule records its lifecycle and keeps its Start context.
type testModule struct {
	name      string
	cfg       *eventbusv1.StreamConfig
	hadStruct bool

	mu       sync.Mutex
	inited   bool
	startCtx context.Context
	stopped  bool
}

func (m *testModule) Init(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.inited = true
	return nil
}

func (m *testModule) Start(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.startCtx = ctx
	return nil
}

func (m *testModule) Stop(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.stopped = true
	return nil
}

func (m *testModule) report() map[string]any {
	m.mu.Lock()
	defer m.mu.Unlock()
	return map[string]any{
		"name":         m.name,
		"stream":       m.cfg.GetName(),
		"num_replicas": m.cfg.GetNumReplicas(),
		"had_struct":   m.hadStruct,
		"inited":       m.inited,
		"started":      m.startCtx != nil,
		"ctx_alive":    m.startCtx != nil && m.startCtx.Err() == nil,
		"stopped":      m.stopped,
	}
}

// testTrigger fires its workflow once from Start, on Start's context; if
// the host answers an error it fires again to report that error.
type testTrigger struct {
	spec wfplugin.TriggerSpec
	cb   wfplugin.Callback

	mu       sync.Mutex
	startCtx context.Context
	wg       sync.WaitGroup
}

func (t *testTrigger) Start(ctx context.Context) error {
	t.mu.Lock()
	t.startCtx = ctx
	t.mu.Unlock()
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		err := t.cb.TriggerWorkflow(ctx, map[string]any{
			"n":        1,
			"workflow": t.cb.WorkflowType(),
			"config":   t.spec.ConfigMap(),
			"nested":   map[string]any{"list": []any{"a", true, nil, 2.5}},
		})
		if err != nil {
			_ = t.cb.TriggerWorkflow(ctx, map[string]any{
				"previous_error":  err.Error(),
				"workflow_failed": errors.Is(err, wfplugin.ErrWorkflowFailed),
			})
		}
	}()
	return nil
}

func (t *testTrigger) Stop(context.Context) error {
	t.wg.Wait()
	return nil
}

func (t *testTrigger) report() map[string]any {
	t.mu.Lock()
	defer t.mu.Unlock()
	return map[string]any{
		"workflow":  t.spec.WorkflowType,
		"ctx_alive": t.startCtx != nil && t.startCtx.Err() == nil,
	}
}

// callsStep reports the recorded RPCs and the instances' state.
type callsStep struct{ p *testPlugin }

func (s callsStep) Execute(context.Context, *wfplugin.StepRequest) (*wfplugin.StepResult, error) {
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	calls := append([]any(nil), s.p.calls...)
	modules := make([]any, 0, len(s.p.modules))
	for _, m := range s.p.modules {
		modules = append(modules, m.report())
	}
	triggers := make([]any, 0, len(s.p.triggers))
	for _, t := range s.p.triggers {
		triggers = append(triggers, t.report())
	}
	cwd, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	return &wfplugin.StepResult{Output: map[string]any{"calls": calls, "modules": modules, "triggers": triggers, "cwd": cwd}}, nil
}

// settleStep reports what it received, typed and untyped.
type settleStep struct{ created wfplugin.StepSpec }

func (s *settleStep) Execute(_ context.Context, req *wfplugin.StepRequest) (*wfplugin.StepResult, error) {
	out := map[string]any{
		"created_struct": s.created.Config != nil,
		"created_typed":  s.created.TypedConfig != nil,
		"created_config": s.created.ConfigMap(),
		"has_config":     req.ConfigStruct() != nil,
		"has_current":    req.CurrentStruct() != nil,
		"typed_config":   req.TypedConfig() != nil,
		"typed_input":    req.TypedInput() != nil,
		"config":         req.Config(),
	}
	if a := req.TypedConfig(); a != nil {
		cfg := &eventbusv1.SettleStepConfig{}
		if err := a.UnmarshalTo(cfg); err != nil {
			return nil, err
		}
		out["cfg_ack_token"] = cfg.GetAckToken()
		out["cfg_delay"] = cfg.GetDelay().AsDuration().String()
		out["config_type_url"] = a.GetTypeUrl()
	}
	if a := req.TypedInput(); a != nil {
		in := &eventbusv1.SettleStepInput{}
		if err := a.UnmarshalTo(in); err != nil {
			return nil, err
		}
		out["input_ack_token"] = in.GetAckToken()
	}
	return &wfplugin.StepResult{Output: out}, nil
}

// echoStep returns everything it received; config "fail" fails it and
// config "stop" stops the pipeline.
type echoStep struct{}

func (echoStep) Execute(_ context.Context, req *wfplugin.StepRequest) (*wfplugin.StepResult, error) {
	if msg, ok := req.ConfigValue("fail"); ok {
		return nil, fmt.Errorf("%v", msg)
	}
	steps := map[string]any{}
	for name, out := range req.StepOutputs() {
		steps[name] = out
	}
	stop, _ := req.ConfigValue("stop")
	ackToken, _ := req.CurrentValue("ack_token")
	return &wfplugin.StepResult{
		Output: map[string]any{
			"config":    req.Config(),
			"current":   req.Current(),
			"trigger":   req.TriggerData(),
			"steps":     steps,
			"meta":      req.Metadata(),
			"ack_token": ackToken,
		},
		StopPipeline: stop == true,
	}, nil
}

// crashStep kills the plugin process after a last word on stderr.
type crashStep struct{ stderr *os.File }

func (s crashStep) Execute(context.Context, *wfplugin.StepRequest) (*wfplugin.StepResult, error) {
	fmt.Fprintln(s.stderr, "about to fail")
	fmt.Fprintln(s.stderr, crashInStepLine)
	os.Exit(4)
	return nil, nil
}

// panicStep panics; the server recovers and keeps serving.
type panicStep struct{}

func (panicStep) Execute(context.Context, *wfplugin.StepRequest) (*wfplugin.StepResult, error) {
	panic("marker-panic")
}

// outputStep returns the output its config's "kind" names, in Go values
// that only the wire's conversion turns into what a host reads.
type outputStep struct{}

func (outputStep) Execute(_ context.Context, req *wfplugin.StepRequest) (*wfplugin.StepResult, error) {
	kind, _ := req.ConfigValue("kind")
	switch kind {
	case "numbers":
		return &wfplugin.StepResult{Output: map[string]any{
			"int": 7, "int64": int64(1) << 53, "uint8": uint8(200), "float32": float32(0.1), "float": 2.5,
			"nested":  map[string]any{"list": []any{1, "a", nil, true}},
			"nil_map": map[string]any(nil), "nil_list": []any(nil),
		}}, nil
	case "time":
		return &wfplugin.StepResult{Output: map[string]any{"at": time.Unix(0, 0)}}, nil
	case "none":
		return nil, nil
	}
	return &wfplugin.StepResult{Output: nil, StopPipeline: true}, nil
}
