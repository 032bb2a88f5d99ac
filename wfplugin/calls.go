package wfplugin

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"unicode"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	pluginv1 "github.com/wfeventbus/eventbus/gen/workflow/plugin/v1"
)

// stepInfo is what the host remembers of a created step.
type stepInfo struct {
	typ      string
	name     string
	contract *pluginv1.ContractDescriptor // nil: Struct only
}

// triggerInfo is what the host remembers of a created trigger.
type triggerInfo struct {
	handle string
	config *structpb.Struct
}

// ExecuteInput is one step execution's data, as the pipeline holds it.
// Every map must be JSON-shaped (see ToStruct), except Metadata, whose
// unrepresentable top-level entries are dropped as the engine drops them.
type ExecuteInput struct {
	// TriggerData is the original trigger payload.
	TriggerData map[string]any
	// StepOutputs are the outputs of earlier steps by step name.
	StepOutputs map[string]map[string]any
	// Current is the merged state: trigger data plus every output so far.
	Current map[string]any
	// Metadata holds pipeline, started_at and the like.
	Metadata map[string]any
	// Config is the step config with templates resolved for this run.
	Config map[string]any
}

// ExecuteResult is what a step execution produced.
type ExecuteResult struct {
	// Output is merged into current and stored under the step's name.
	Output map[string]any
	// StopPipeline ends the pipeline successfully after this step.
	StopPipeline bool
}

// typed payload modes of a contract, as the engine reads them.
type payloadMode int

const (
	modeStruct payloadMode = iota // no contract, UNSPECIFIED, LEGACY_STRUCT
	modeMixed                     // PROTO_WITH_LEGACY_STRUCT
	modeStrict                    // STRICT_PROTO
)

func modeOf(c *pluginv1.ContractDescriptor) payloadMode {
	switch c.GetMode() {
	case pluginv1.ContractMode_CONTRACT_MODE_PROTO_WITH_LEGACY_STRUCT:
		return modeMixed
	case pluginv1.ContractMode_CONTRACT_MODE_STRICT_PROTO:
		return modeStrict
	}
	return modeStruct
}

// createPayload builds the config of a Create request per the contract's
// mode: STRICT with a config message sends only the typed config and fails
// if it does not encode; mixed mode sends the Struct and adds the typed
// config when it encodes; otherwise only the Struct is sent.
func (c *Client) createPayload(contract *pluginv1.ContractDescriptor, config map[string]any) (*structpb.Struct, *anypb.Any, error) {
	msg := contract.GetConfigMessage()
	switch mode := modeOf(contract); {
	case mode == modeStrict && msg != "":
		a, err := c.registry.EncodeConfig(msg, config)
		return nil, a, err
	case mode == modeMixed && msg != "":
		st, err := ToStruct(config)
		if err != nil {
			return nil, nil, err
		}
		a, err := c.registry.EncodeConfig(msg, config)
		if err != nil {
			c.log.Debug("typed config does not encode; sending the Struct only", "message", msg, "error", err)
			a = nil
		}
		return st, a, nil
	default:
		st, err := ToStruct(config)
		return st, nil, err
	}
}

// CreateModule creates a module instance and returns its handle. config is
// the module's config map (the engine adds _config_dir when it knows the
// config file's directory); it is sent per the module type's contract.
func (c *Client) CreateModule(ctx context.Context, typ, name string, config map[string]any) (string, error) {
	if !slices.Contains(c.moduleTypes, typ) {
		return "", fmt.Errorf("wfplugin: CreateModule %q: %w: module type %q", name, ErrUnknownType, typ)
	}
	contract, _ := c.registry.Contract(pluginv1.ContractKind_CONTRACT_KIND_MODULE, typ)
	st, typed, err := c.createPayload(contract, config)
	if err != nil {
		return "", fmt.Errorf("wfplugin: CreateModule %q (%s): config: %w", name, typ, err)
	}
	resp, err := c.rpc.CreateModule(ctx, &pluginv1.CreateModuleRequest{Type: typ, Name: name, Config: st, TypedConfig: typed})
	return c.handleResult(ctx, "CreateModule", createModulePrefix(name, typ), resp, err)
}

// handleResult reads the answer of a create call; prefix is what the
// serving side puts in front of its error.
func (c *Client) handleResult(ctx context.Context, op, prefix string, resp *pluginv1.HandleResponse, err error) (string, error) {
	if err != nil {
		return "", c.rpcError(ctx, op, err)
	}
	if resp.GetError() != "" {
		return "", remoteError(op, resp.GetError(), prefix)
	}
	if resp.GetHandleId() == "" {
		return "", remoteError(op, "the plugin returned an empty handle", "")
	}
	return resp.GetHandleId(), nil
}

// InitModule initialises a module.
func (c *Client) InitModule(ctx context.Context, handle string) error {
	resp, err := c.rpc.InitModule(ctx, &pluginv1.HandleRequest{HandleId: handle})
	return c.errorResult(ctx, "InitModule", resp, err)
}

// StartModule starts a module.
func (c *Client) StartModule(ctx context.Context, handle string) error {
	resp, err := c.rpc.StartModule(ctx, &pluginv1.HandleRequest{HandleId: handle})
	return c.errorResult(ctx, "StartModule", resp, err)
}

// StopModule stops a module.
func (c *Client) StopModule(ctx context.Context, handle string) error {
	resp, err := c.rpc.StopModule(ctx, &pluginv1.HandleRequest{HandleId: handle})
	return c.errorResult(ctx, "StopModule", resp, err)
}

// DestroyModule frees a module or trigger handle. The engine never sends
// it; it exists for hosts that rebuild instances in one plugin process.
func (c *Client) DestroyModule(ctx context.Context, handle string) error {
	resp, err := c.rpc.DestroyModule(ctx, &pluginv1.HandleRequest{HandleId: handle})
	if err == nil && resp.GetError() == "" {
		c.mu.Lock()
		for k, t := range c.triggers {
			if t.handle == handle {
				delete(c.triggers, k)
			}
		}
		c.mu.Unlock()
	}
	return c.errorResult(ctx, "DestroyModule", resp, err)
}

func (c *Client) errorResult(ctx context.Context, op string, resp *pluginv1.ErrorResponse, err error) error {
	if err != nil {
		return c.rpcError(ctx, op, err)
	}
	if resp.GetError() != "" {
		return remoteError(op, resp.GetError(), "")
	}
	return nil
}

// rpcError explains a failed RPC, as a crash when the plugin has died.
func (c *Client) rpcError(ctx context.Context, op string, err error) error {
	if c.closing.Load() {
		return fmt.Errorf("wfplugin: %s: %w", op, ErrClosed)
	}
	if ctx.Err() == nil {
		if exitErr := c.exitedOnItsOwn(err); exitErr != nil {
			return fmt.Errorf("wfplugin: %s: %w", op, exitErr)
		}
	}
	return fmt.Errorf("wfplugin: %s: %w", op, err)
}

// CreateStep creates a step instance with its raw, untemplated config and
// returns its handle. The config is sent per the step type's contract.
func (c *Client) CreateStep(ctx context.Context, typ, name string, rawConfig map[string]any) (string, error) {
	if !slices.Contains(c.stepTypes, typ) {
		return "", fmt.Errorf("wfplugin: CreateStep %q: %w: step type %q", name, ErrUnknownType, typ)
	}
	contract, _ := c.registry.Contract(pluginv1.ContractKind_CONTRACT_KIND_STEP, typ)
	st, typed, err := c.createPayload(contract, rawConfig)
	if err != nil {
		return "", fmt.Errorf("wfplugin: CreateStep %q (%s): config: %w", name, typ, err)
	}
	resp, err := c.rpc.CreateStep(ctx, &pluginv1.CreateStepRequest{Type: typ, Name: name, Config: st, TypedConfig: typed})
	h, err := c.handleResult(ctx, "CreateStep", createStepPrefix(name, typ), resp, err)
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	c.steps[h] = stepInfo{typ: typ, name: name, contract: contract}
	c.mu.Unlock()
	return h, nil
}

// DestroyStep frees a step handle. The engine never sends it.
func (c *Client) DestroyStep(ctx context.Context, handle string) error {
	resp, err := c.rpc.DestroyStep(ctx, &pluginv1.HandleRequest{HandleId: handle})
	if err == nil && resp.GetError() == "" {
		c.mu.Lock()
		delete(c.steps, handle)
		c.mu.Unlock()
	}
	return c.errorResult(ctx, "DestroyStep", resp, err)
}

// ExecuteStep runs a step created by this Client once, building the request
// exactly as the engine does for the step's contract (engine-pipelines.md
// §5.2): trigger data, step outputs and metadata always travel as Structs
// (metadata values a Struct cannot hold dropped); without a typed contract
// current and config do too; PROTO_WITH_LEGACY_STRUCT adds the typed config
// (from Config, "_" keys dropped) and typed input (from Current, filtered to
// the input message's fields) when both encode; STRICT_PROTO sends only the
// typed pair and fails before sending if either does not encode. Every
// failure is a *StepExecError worded as the engine words it; the step's own
// failure wraps a *RemoteError.
func (c *Client) ExecuteStep(ctx context.Context, handle string, in ExecuteInput) (*ExecuteResult, error) {
	c.mu.RLock()
	info, ok := c.steps[handle]
	c.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("wfplugin: ExecuteStep: %w: %q", ErrUnknownHandle, handle)
	}
	if c.local != nil && modeOf(info.contract) != modeStrict {
		return c.executeLocal(ctx, handle, info, in)
	}
	req, err := c.executeRequest(handle, info, in)
	if err != nil {
		return nil, err
	}
	resp, err := c.rpc.ExecuteStep(ctx, req)
	if err != nil {
		return nil, &StepExecError{Text: "remote step execute: " + err.Error(), Err: c.rpcError(ctx, "ExecuteStep", err)}
	}
	if resp.GetError() != "" {
		return nil, &StepExecError{Text: "remote step execute: " + resp.GetError(), Err: &RemoteError{Op: "ExecuteStep " + info.name, Message: resp.GetError(), Detail: resp.GetError()}}
	}
	out, err := c.readOutput(info, resp.GetTypedOutput(), FromStruct(resp.GetOutput()))
	if err != nil {
		return nil, err
	}
	return &ExecuteResult{Output: out, StopPipeline: resp.GetStopPipeline()}, nil
}

func (c *Client) executeRequest(handle string, info stepInfo, in ExecuteInput) (*pluginv1.ExecuteStepRequest, error) {
	fail := func(what string, err error) error {
		return &StepExecError{Text: fmt.Sprintf("remote step %q (handle %s) encode %s as Struct: %v", info.name, handle, what, err), Err: fmt.Errorf("%w: %w", ErrNotJSONShaped, err)}
	}
	req := &pluginv1.ExecuteStepRequest{HandleId: handle, Metadata: filteredStruct(normalizeMap(in.Metadata))}
	var err error
	req.StepOutputs = make(map[string]*structpb.Struct, len(in.StepOutputs))
	for _, name := range slices.Sorted(maps.Keys(in.StepOutputs)) {
		if req.StepOutputs[name], err = engineStruct(in.StepOutputs[name]); err != nil {
			return nil, fail(fmt.Sprintf("step output %q", name), err)
		}
	}
	if req.TriggerData, err = engineStruct(in.TriggerData); err != nil {
		return nil, fail("trigger data", err)
	}
	cfgMsg, inMsg := info.contract.GetConfigMessage(), info.contract.GetInputMessage()
	strictErr := func(kind, msg string, err error) error {
		return &StepExecError{Text: fmt.Sprintf("remote step %q STRICT_PROTO %s message %q cannot use legacy Struct fallback: %v", info.name, kind, msg, err), Err: err}
	}
	switch modeOf(info.contract) {
	case modeStrict:
		if cfgMsg == "" {
			return nil, strictErr("config", "", &EncodeError{Reason: "missing protobuf message name"})
		}
		if inMsg == "" {
			return nil, strictErr("input", "", &EncodeError{Reason: "missing protobuf message name"})
		}
		if req.TypedConfig, err = c.registry.EncodeConfig(cfgMsg, in.Config); err != nil {
			return nil, strictErr("config", cfgMsg, err)
		}
		if req.TypedInput, err = c.registry.EncodeInput(inMsg, in.Current); err != nil {
			return nil, strictErr("input", inMsg, fmt.Errorf("decode %s input as protobuf JSON: %w", inMsg, err))
		}
		return req, nil
	case modeMixed:
		if cfgMsg != "" && inMsg != "" {
			tc, errC := c.registry.EncodeConfig(cfgMsg, in.Config)
			ti, errI := c.registry.EncodeInput(inMsg, in.Current)
			if errC == nil && errI == nil {
				req.TypedConfig, req.TypedInput = tc, ti
			}
		}
	}
	if req.Current, err = engineStruct(in.Current); err != nil {
		return nil, fail("current", err)
	}
	if req.Config, err = engineStruct(in.Config); err != nil {
		return nil, fail("config", err)
	}
	return req, nil
}

// readOutput reads the typed output when the contract names an output
// message and is typed; STRICT_PROTO then requires it, mixed mode falls back
// to the untyped output.
func (c *Client) readOutput(info stepInfo, typed *anypb.Any, untyped map[string]any) (map[string]any, error) {
	outMsg := info.contract.GetOutputMessage()
	mode := modeOf(info.contract)
	if outMsg == "" || mode == modeStruct {
		return untyped, nil
	}
	if typed == nil {
		if mode == modeStrict {
			err := &decodeError{msg: outMsg, reason: "STRICT_PROTO step requires typed_output"}
			return nil, &StepExecError{Text: fmt.Sprintf("remote step %q STRICT_PROTO output message %q requires typed_output", info.name, outMsg), Err: err}
		}
		return untyped, nil
	}
	out, err := c.registry.DecodeOutput(outMsg, typed)
	if err != nil {
		return nil, &StepExecError{Text: fmt.Sprintf("remote step %q decode typed output: %v", info.name, err), Err: err}
	}
	return out, nil
}

// CreateTrigger creates a trigger of type typ that fires workflowType (for
// a pipeline "pipeline:<name>"). As the engine does, it sends workflowType
// as the request's name and adds it to the config under "workflowType",
// overwriting a user value; trigger config is always a Struct. Creating the
// same type for the same workflow again returns the first handle if the
// config is equal and fails otherwise.
func (c *Client) CreateTrigger(ctx context.Context, typ, workflowType string, config map[string]any) (string, error) {
	if !slices.Contains(c.triggerTypes, typ) {
		return "", fmt.Errorf("wfplugin: CreateTrigger %q: %w: trigger type %q", workflowType, ErrUnknownType, typ)
	}
	if err := validWorkflowType(workflowType); err != nil {
		return "", fmt.Errorf("wfplugin: CreateTrigger %s: %w", typ, err)
	}
	cfg := maps.Clone(config)
	if cfg == nil {
		cfg = make(map[string]any, 1)
	}
	cfg["workflowType"] = workflowType
	st, err := ToStruct(cfg)
	if err != nil {
		return "", fmt.Errorf("wfplugin: CreateTrigger %s for %q: config: %w", typ, workflowType, err)
	}
	key := typ + "\x00" + workflowType
	c.mu.RLock()
	prev, exists := c.triggers[key]
	c.mu.RUnlock()
	if exists {
		if proto.Equal(prev.config, st) {
			return prev.handle, nil
		}
		return "", fmt.Errorf("wfplugin: CreateTrigger %s: workflow %q is already configured with a different config", typ, workflowType)
	}
	resp, err := c.rpc.CreateTrigger(ctx, &pluginv1.CreateTriggerRequest{Type: typ, Name: workflowType, Config: st})
	h, err := c.handleResult(ctx, "CreateTrigger", createTriggerPrefix(typ, workflowType), resp, err)
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	c.triggers[key] = triggerInfo{handle: h, config: st}
	c.mu.Unlock()
	return h, nil
}

// validWorkflowType applies the engine's rule: non-empty, without
// whitespace or control characters.
func validWorkflowType(wt string) error {
	if wt == "" {
		return fmt.Errorf("%w: empty workflow type", ErrInvalidArgument)
	}
	for _, r := range wt {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return fmt.Errorf("%w: workflow type %q contains whitespace or control characters", ErrInvalidArgument, wt)
		}
	}
	return nil
}

// StartTrigger starts a trigger (StartModule on its handle); it may fire
// from then on.
func (c *Client) StartTrigger(ctx context.Context, handle string) error {
	resp, err := c.rpc.StartModule(ctx, &pluginv1.HandleRequest{HandleId: handle})
	return c.errorResult(ctx, "StartModule", resp, err)
}

// StopTrigger stops a trigger (StopModule on its handle).
func (c *Client) StopTrigger(ctx context.Context, handle string) error {
	resp, err := c.rpc.StopModule(ctx, &pluginv1.HandleRequest{HandleId: handle})
	return c.errorResult(ctx, "StopModule", resp, err)
}
