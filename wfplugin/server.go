package wfplugin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/structpb"

	pluginv1 "github.com/wfeventbus/eventbus/gen/workflow/plugin/v1"
)

// server implements PluginService over a Plugin. It owns the handles of the
// instances it creates and the client of the host's callback service.
type server struct {
	pluginv1.UnimplementedPluginServiceServer

	p   Plugin
	log *slog.Logger
	cfg *serveConfig

	manifest     *pluginv1.Manifest
	moduleTypes  []string
	stepTypes    []string
	triggerTypes []string
	contracts    *pluginv1.ContractRegistry

	// base outlives every RPC; Start receives contexts derived from it.
	base       context.Context
	cancelBase context.CancelFunc
	nextHandle atomic.Uint64
	startSeq   atomic.Uint64

	mu        sync.RWMutex
	broker    *plugin.GRPCBroker
	engine    pluginv1.EngineCallbackServiceClient
	engineCC  *grpc.ClientConn
	instances map[string]*instance // modules and triggers
	steps     map[string]Step
}

// newServer reads the plugin's fixed answers once and reports (without
// failing) what the host will reject, so the plugin's author sees it in the
// plugin's own log.
func newServer(p Plugin, cfg *serveConfig) *server {
	s := &server{
		p:            p,
		log:          cfg.logger,
		cfg:          cfg,
		manifest:     p.Manifest().toProto(),
		moduleTypes:  sortedTypes(p.ModuleTypes()),
		stepTypes:    sortedTypes(p.StepTypes()),
		triggerTypes: sortedTypes(p.TriggerTypes()),
		contracts:    p.Contracts(),
		instances:    make(map[string]*instance),
		steps:        make(map[string]Step),
	}
	if s.contracts == nil {
		s.contracts = &pluginv1.ContractRegistry{}
	}
	s.base, s.cancelBase = context.WithCancel(context.Background())
	if err := ValidateManifest(manifestFromProto(s.manifest)); err != nil {
		s.log.Error("the host will refuse this plugin", "error", err)
	}
	if _, err := NewRegistry(s.contracts); err != nil {
		s.log.Error("the host cannot use this plugin's typed contracts", "error", err)
	}
	return s
}

func sortedTypes(types []string) []string {
	out := slices.Clone(types)
	slices.Sort(out)
	return slices.Compact(out)
}

func (s *server) setBroker(b *plugin.GRPCBroker) {
	s.mu.Lock()
	s.broker = b
	s.mu.Unlock()
}

func (s *server) engineClient() pluginv1.EngineCallbackServiceClient {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.engine
}

func (s *server) handle(prefix string) string {
	return prefix + "-" + strconv.FormatUint(s.nextHandle.Add(1), 10)
}

// shutdown stops what is still running, most recently started first, then
// releases the callback connection. It is bounded by the shutdown timeout.
func (s *server) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.shutdownTimeout)
	defer cancel()
	s.mu.Lock()
	running := make([]*instance, 0, len(s.instances))
	for _, in := range s.instances {
		running = append(running, in)
	}
	s.instances = make(map[string]*instance)
	s.steps = make(map[string]Step)
	cc := s.engineCC
	s.engine, s.engineCC = nil, nil
	s.mu.Unlock()

	slices.SortFunc(running, func(a, b *instance) int { return compareSeq(b.startedSeq(), a.startedSeq()) })
	for _, in := range running {
		if err := in.stop(ctx, s.log); err != nil {
			s.log.Warn("stopping at shutdown", "handle", in.handle, "error", err)
		}
	}
	s.cancelBase()
	if cc != nil {
		_ = cc.Close()
	}
}

func compareSeq(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// safely runs f and turns a panic into an error wrapping ErrPanic, so one
// faulty instance cannot take the process (and every pipeline) down. The
// operation is named op, followed by subject when that is not empty; the
// name is only put together when f panics.
func safely(log *slog.Logger, op, subject string, f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			if subject != "" {
				op += " " + subject
			}
			log.Error("panic in plugin code", "op", op, "panic", r, "stack", string(debug.Stack()))
			err = fmt.Errorf("%w: %s: %v", ErrPanic, op, r)
		}
	}()
	return f()
}

func errorResponse(err error) *pluginv1.ErrorResponse {
	if err == nil {
		return &pluginv1.ErrorResponse{}
	}
	return &pluginv1.ErrorResponse{Error: err.Error()}
}

// instance is a created module or trigger and its running state.
type instance struct {
	handle string
	module Module // nil for triggers
	life   lifecycle
	seq    *atomic.Uint64

	mu      sync.Mutex
	running bool
	started uint64
	cancel  context.CancelFunc
}

type lifecycle interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
}

func (in *instance) startedSeq() uint64 {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.started
}

// start runs Start with a context derived from base, which stays alive
// until stop: RPC contexts end when the RPC returns.
func (in *instance) start(base context.Context, log *slog.Logger) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.running {
		return fmt.Errorf("wfplugin: %s is already started", in.handle)
	}
	ctx, cancel := context.WithCancel(base)
	if err := safely(log, "Start", in.handle, func() error { return in.life.Start(ctx) }); err != nil {
		cancel()
		return err
	}
	in.running, in.cancel, in.started = true, cancel, in.seq.Add(1)
	return nil
}

// stop runs Stop if the instance runs, then ends its Start context.
// Stopping a stopped instance does nothing.
func (in *instance) stop(ctx context.Context, log *slog.Logger) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if !in.running {
		return nil
	}
	err := safely(log, "Stop", in.handle, func() error { return in.life.Stop(ctx) })
	in.cancel()
	in.running, in.cancel = false, nil
	return err
}

func (s *server) lookup(handle string) (*instance, error) {
	s.mu.RLock()
	in, ok := s.instances[handle]
	s.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownHandle, handle)
	}
	return in, nil
}

func (s *server) GetManifest(context.Context, *emptypb.Empty) (*pluginv1.Manifest, error) {
	return s.manifest, nil
}

func (s *server) GetModuleTypes(context.Context, *emptypb.Empty) (*pluginv1.TypeList, error) {
	return &pluginv1.TypeList{Types: s.moduleTypes}, nil
}

func (s *server) GetStepTypes(context.Context, *emptypb.Empty) (*pluginv1.TypeList, error) {
	return &pluginv1.TypeList{Types: s.stepTypes}, nil
}

func (s *server) GetTriggerTypes(context.Context, *emptypb.Empty) (*pluginv1.TypeList, error) {
	return &pluginv1.TypeList{Types: s.triggerTypes}, nil
}

func (s *server) GetModuleSchemas(context.Context, *emptypb.Empty) (*pluginv1.ModuleSchemaList, error) {
	list := &pluginv1.ModuleSchemaList{}
	if sp, ok := s.p.(SchemaProvider); ok {
		err := safely(s.log, "ModuleSchemas", "", func() error {
			list.Schemas = sp.ModuleSchemas()
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return list, nil
}

func (s *server) GetContractRegistry(context.Context, *emptypb.Empty) (*pluginv1.ContractRegistry, error) {
	return s.contracts, nil
}

func (s *server) GetConfigFragment(context.Context, *emptypb.Empty) (*pluginv1.ConfigFragmentResponse, error) {
	resp := &pluginv1.ConfigFragmentResponse{}
	if cp, ok := s.p.(ConfigFragmentProvider); ok {
		err := safely(s.log, "ConfigFragment", "", func() error {
			resp.YamlConfig, resp.PluginDir = cp.ConfigFragment()
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return resp, nil
}

func (s *server) ConfigureCallback(_ context.Context, req *pluginv1.ConfigureCallbackRequest) (*pluginv1.ErrorResponse, error) {
	if req.GetBrokerId() == 0 {
		return errorResponse(errors.New("broker id 0: the host serves no callbacks")), nil
	}
	s.mu.RLock()
	b := s.broker
	s.mu.RUnlock()
	if b == nil {
		return errorResponse(errors.New("no go-plugin broker")), nil
	}
	// The broker forgets the host's connection info after about five
	// seconds, so the dial happens now, inside the RPC.
	cc, err := b.DialWithOptions(req.GetBrokerId(), dialTuning()...)
	if err != nil {
		return errorResponse(fmt.Errorf("dial callback broker id %d: %w", req.GetBrokerId(), err)), nil
	}
	s.mu.Lock()
	old := s.engineCC
	s.engineCC, s.engine = cc, pluginv1.NewEngineCallbackServiceClient(cc)
	s.mu.Unlock()
	if old != nil {
		_ = old.Close()
	}
	return &pluginv1.ErrorResponse{}, nil
}

func (s *server) CreateModule(ctx context.Context, req *pluginv1.CreateModuleRequest) (*pluginv1.HandleResponse, error) {
	if !slices.Contains(s.moduleTypes, req.GetType()) {
		return &pluginv1.HandleResponse{Error: fmt.Sprintf("%v: module type %q", ErrUnknownType, req.GetType())}, nil
	}
	spec := ModuleSpec{Type: req.GetType(), Name: req.GetName(), Config: req.GetConfig(), TypedConfig: req.GetTypedConfig()}
	var m Module
	err := safely(s.log, "CreateModule", req.GetName(), func() (err error) {
		m, err = s.p.CreateModule(ctx, spec)
		return err
	})
	if err == nil && m == nil {
		err = errors.New("plugin returned no module")
	}
	if err != nil {
		return &pluginv1.HandleResponse{Error: createModulePrefix(req.GetName(), req.GetType()) + err.Error()}, nil
	}
	h := s.handle("module")
	s.mu.Lock()
	s.instances[h] = &instance{handle: h, module: m, life: m, seq: &s.startSeq}
	s.mu.Unlock()
	return &pluginv1.HandleResponse{HandleId: h}, nil
}

func (s *server) InitModule(ctx context.Context, req *pluginv1.HandleRequest) (*pluginv1.ErrorResponse, error) {
	in, err := s.lookup(req.GetHandleId())
	if err != nil {
		return errorResponse(err), nil
	}
	if in.module == nil {
		// The engine never initialises triggers.
		return &pluginv1.ErrorResponse{}, nil
	}
	return errorResponse(safely(s.log, "Init", in.handle, func() error { return in.module.Init(ctx) })), nil
}

func (s *server) StartModule(_ context.Context, req *pluginv1.HandleRequest) (*pluginv1.ErrorResponse, error) {
	in, err := s.lookup(req.GetHandleId())
	if err != nil {
		return errorResponse(err), nil
	}
	return errorResponse(in.start(s.base, s.log)), nil
}

func (s *server) StopModule(ctx context.Context, req *pluginv1.HandleRequest) (*pluginv1.ErrorResponse, error) {
	in, err := s.lookup(req.GetHandleId())
	if err != nil {
		return errorResponse(err), nil
	}
	return errorResponse(in.stop(ctx, s.log)), nil
}

func (s *server) DestroyModule(ctx context.Context, req *pluginv1.HandleRequest) (*pluginv1.ErrorResponse, error) {
	s.mu.Lock()
	in, ok := s.instances[req.GetHandleId()]
	delete(s.instances, req.GetHandleId())
	s.mu.Unlock()
	if !ok {
		return errorResponse(fmt.Errorf("%w: %q", ErrUnknownHandle, req.GetHandleId())), nil
	}
	return errorResponse(in.stop(ctx, s.log)), nil
}

func (s *server) CreateStep(ctx context.Context, req *pluginv1.CreateStepRequest) (*pluginv1.HandleResponse, error) {
	if !slices.Contains(s.stepTypes, req.GetType()) {
		return &pluginv1.HandleResponse{Error: fmt.Sprintf("%v: step type %q", ErrUnknownType, req.GetType())}, nil
	}
	spec := StepSpec{Type: req.GetType(), Name: req.GetName(), Config: req.GetConfig(), TypedConfig: req.GetTypedConfig()}
	var st Step
	err := safely(s.log, "CreateStep", req.GetName(), func() (err error) {
		st, err = s.p.CreateStep(ctx, spec)
		return err
	})
	if err == nil && st == nil {
		err = errors.New("plugin returned no step")
	}
	if err != nil {
		return &pluginv1.HandleResponse{Error: createStepPrefix(req.GetName(), req.GetType()) + err.Error()}, nil
	}
	h := s.handle("step")
	s.mu.Lock()
	s.steps[h] = st
	s.mu.Unlock()
	return &pluginv1.HandleResponse{HandleId: h}, nil
}

func (s *server) ExecuteStep(ctx context.Context, req *pluginv1.ExecuteStepRequest) (*pluginv1.ExecuteStepResponse, error) {
	res, failure := s.execute(ctx, req.GetHandleId(), &StepRequest{req: req})
	if failure != "" {
		return &pluginv1.ExecuteStepResponse{Error: failure}, nil
	}
	if res == nil {
		return &pluginv1.ExecuteStepResponse{Output: &structpb.Struct{}}, nil
	}
	out, err := ToStruct(res.Output)
	if err != nil {
		return &pluginv1.ExecuteStepResponse{Error: outputFailure(err)}, nil
	}
	return &pluginv1.ExecuteStepResponse{Output: out, StopPipeline: res.StopPipeline, TypedOutput: res.TypedOutput}, nil
}

// execute runs the step of handle once, recovering a panic. failure is the
// text the response's error field carries when the step did not run or
// failed; res may be nil when it succeeded.
func (s *server) execute(ctx context.Context, handle string, req *StepRequest) (res *StepResult, failure string) {
	s.mu.RLock()
	st, ok := s.steps[handle]
	s.mu.RUnlock()
	if !ok {
		return nil, fmt.Sprintf("%v: %q", ErrUnknownHandle, handle)
	}
	err := safely(s.log, "Execute", handle, func() (err error) {
		res, err = st.Execute(ctx, req)
		return err
	})
	if err != nil {
		return nil, err.Error()
	}
	return res, ""
}

// outputFailure is the error text of a step whose output cannot travel.
func outputFailure(err error) string { return "step output: " + err.Error() }

func (s *server) DestroyStep(_ context.Context, req *pluginv1.HandleRequest) (*pluginv1.ErrorResponse, error) {
	s.mu.Lock()
	_, ok := s.steps[req.GetHandleId()]
	delete(s.steps, req.GetHandleId())
	s.mu.Unlock()
	if !ok {
		return errorResponse(fmt.Errorf("%w: %q", ErrUnknownHandle, req.GetHandleId())), nil
	}
	return &pluginv1.ErrorResponse{}, nil
}

func (s *server) CreateTrigger(ctx context.Context, req *pluginv1.CreateTriggerRequest) (*pluginv1.HandleResponse, error) {
	if !slices.Contains(s.triggerTypes, req.GetType()) {
		return &pluginv1.HandleResponse{Error: fmt.Sprintf("%v: trigger type %q", ErrUnknownType, req.GetType())}, nil
	}
	// The engine names the workflow to fire; older or other hosts may only
	// put it in the config, and the trigger type is the last resort.
	wt := req.GetName()
	if wt == "" {
		wt = req.GetConfig().GetFields()["workflowType"].GetStringValue()
	}
	if wt == "" {
		wt = req.GetType()
	}
	spec := TriggerSpec{Type: req.GetType(), WorkflowType: wt, Config: req.GetConfig()}
	cb := &callback{s: s, workflowType: wt}
	var t Trigger
	err := safely(s.log, "CreateTrigger", wt, func() (err error) {
		t, err = s.p.CreateTrigger(ctx, spec, cb)
		return err
	})
	if err == nil && t == nil {
		err = errors.New("plugin returned no trigger")
	}
	if err != nil {
		return &pluginv1.HandleResponse{Error: createTriggerPrefix(req.GetType(), wt) + err.Error()}, nil
	}
	h := s.handle("trigger")
	s.mu.Lock()
	s.instances[h] = &instance{handle: h, life: t, seq: &s.startSeq}
	s.mu.Unlock()
	return &pluginv1.HandleResponse{HandleId: h}, nil
}

// callback fires one workflow through the host's callback service.
type callback struct {
	s            *server
	workflowType string
}

func (c *callback) WorkflowType() string { return c.workflowType }

func (c *callback) TriggerWorkflow(ctx context.Context, data map[string]any) error {
	if le, ok := c.s.engineClient().(*localEngine); ok {
		return le.triggerWorkflow(ctx, c.workflowType, data)
	}
	st, err := ToStruct(data)
	if err != nil {
		return fmt.Errorf("wfplugin: trigger %s: data: %w", c.workflowType, err)
	}
	return c.TriggerWorkflowStruct(ctx, st)
}

func (c *callback) TriggerWorkflowStruct(ctx context.Context, data *structpb.Struct) error {
	engine := c.s.engineClient()
	if engine == nil {
		return fmt.Errorf("wfplugin: trigger %s: %w", c.workflowType, ErrNoCallback)
	}
	if data == nil {
		data = &structpb.Struct{}
	}
	resp, err := engine.TriggerWorkflow(ctx, &pluginv1.TriggerWorkflowRequest{TriggerType: c.workflowType, Data: data})
	if err != nil {
		return fmt.Errorf("wfplugin: trigger %s: %w", c.workflowType, err)
	}
	if resp.GetError() != "" {
		return &RemoteError{Op: "TriggerWorkflow " + c.workflowType, Message: resp.GetError(), Detail: resp.GetError(), kind: ErrWorkflowFailed}
	}
	return nil
}

func (c *callback) Log(ctx context.Context, level, message string, fields map[string]any) error {
	engine := c.s.engineClient()
	if engine == nil {
		return fmt.Errorf("wfplugin: log: %w", ErrNoCallback)
	}
	st, err := ToStruct(fields)
	if err != nil {
		return fmt.Errorf("wfplugin: log fields: %w", err)
	}
	if _, err := engine.Log(ctx, &pluginv1.LogRequest{Level: level, Message: message, Fields: st}); err != nil {
		return fmt.Errorf("wfplugin: log: %w", err)
	}
	return nil
}
