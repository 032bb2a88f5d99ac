package wfplugin

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	pluginv1 "github.com/wfeventbus/eventbus/gen/workflow/plugin/v1"
)

// LaunchDirect serves p inside this process and returns a Client that calls
// it directly: no socket and no gRPC, and on the calls made per message —
// ExecuteStep and a trigger's TriggerWorkflow — no protobuf either: the maps
// go across as they are, converted only where the wire would have changed
// them (numbers become float64) and only when a step asks for them.
//
// Everything else is the code a Client and Serve run over the wire: the
// engine's load sequence and its checks, the requests built per contract,
// the serving side's handles and lifecycle, its recovery from panics, and
// every error text, so a host gets the same answers and the same errors
// from both. What the wire does that a direct Client does not: gRPC server
// options (interceptors, message size limits) do not apply, and strings are
// not checked to be valid UTF-8.
//
// A step's output and a trigger's data are handed over without a copy when
// they hold only the values the wire would have produced; the side that
// made them must not change them afterwards.
//
// The plugin's logs go to the host's logger (WithLogger) with the
// attribute plugin=<name>, unless WithServeOptions sets a logger; WithEnv
// and WithStderrLines do not apply. The Client's Pid is 0 and it ends only
// when it is closed.
func LaunchDirect(ctx context.Context, p Plugin, opts ...LaunchOption) (*Client, error) {
	if p == nil {
		return nil, fmt.Errorf("%w: nil Plugin", ErrLaunch)
	}
	cfg, err := newLaunchConfig(opts)
	if err != nil {
		return nil, err
	}
	if cfg.name == "" {
		cfg.name = "direct"
	}
	c := newClient(cfg)
	scfg, err := newServeConfig(io.Discard, append([]ServeOption{WithServeLogger(c.log)}, cfg.serveOpts...))
	if err != nil {
		return nil, err
	}
	srv := newServer(p, scfg)
	c.local = &localConn{srv: srv, engine: &localEngine{cbs: c.host.callbacks}}
	c.rpc = directRPC{conn: c.local}
	if err := c.load(ctx, Manifest{}, false); err != nil {
		return nil, c.abort(ctx, err)
	}
	return c, nil
}

// localConn is the serving side of a direct Client.
type localConn struct {
	srv    *server
	engine *localEngine
	closed atomic.Bool
}

// errLocalClosed is what a call on a closed direct Client fails with; the
// Client reports it as ErrClosed, as it reports a closed connection.
var errLocalClosed = status.Error(codes.Canceled, "grpc: the client connection is closing")

// begin fails as the wire fails a call that cannot start: on a closed
// Client, or with ctx already done.
func (l *localConn) begin(ctx context.Context) error {
	if l.closed.Load() {
		return errLocalClosed
	}
	return ctxStatus(ctx)
}

// ctxStatus is the error a gRPC call returns once ctx is done, nil before.
func ctxStatus(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return status.FromContextError(err).Err()
	}
	return nil
}

// close stops every instance still running, as a served plugin does when
// its host shuts it down.
func (l *localConn) close() {
	if l.closed.Swap(true) {
		return
	}
	l.srv.shutdown()
}

// directRPC is the PluginService client of a direct Client: each call runs
// the serving side's handler on the caller's goroutine.
type directRPC struct{ conn *localConn }

func direct[Req, Resp any](ctx context.Context, l *localConn, h func(context.Context, Req) (Resp, error), req Req) (Resp, error) {
	if err := l.begin(ctx); err != nil {
		var zero Resp
		return zero, err
	}
	return h(ctx, req)
}

func (d directRPC) GetManifest(ctx context.Context, in *emptypb.Empty, _ ...grpc.CallOption) (*pluginv1.Manifest, error) {
	return direct(ctx, d.conn, d.conn.srv.GetManifest, in)
}

func (d directRPC) GetModuleTypes(ctx context.Context, in *emptypb.Empty, _ ...grpc.CallOption) (*pluginv1.TypeList, error) {
	return direct(ctx, d.conn, d.conn.srv.GetModuleTypes, in)
}

func (d directRPC) GetStepTypes(ctx context.Context, in *emptypb.Empty, _ ...grpc.CallOption) (*pluginv1.TypeList, error) {
	return direct(ctx, d.conn, d.conn.srv.GetStepTypes, in)
}

func (d directRPC) GetTriggerTypes(ctx context.Context, in *emptypb.Empty, _ ...grpc.CallOption) (*pluginv1.TypeList, error) {
	return direct(ctx, d.conn, d.conn.srv.GetTriggerTypes, in)
}

func (d directRPC) GetModuleSchemas(ctx context.Context, in *emptypb.Empty, _ ...grpc.CallOption) (*pluginv1.ModuleSchemaList, error) {
	return direct(ctx, d.conn, d.conn.srv.GetModuleSchemas, in)
}

func (d directRPC) GetContractRegistry(ctx context.Context, in *emptypb.Empty, _ ...grpc.CallOption) (*pluginv1.ContractRegistry, error) {
	return direct(ctx, d.conn, d.conn.srv.GetContractRegistry, in)
}

func (d directRPC) CreateModule(ctx context.Context, in *pluginv1.CreateModuleRequest, _ ...grpc.CallOption) (*pluginv1.HandleResponse, error) {
	return direct(ctx, d.conn, d.conn.srv.CreateModule, in)
}

func (d directRPC) InitModule(ctx context.Context, in *pluginv1.HandleRequest, _ ...grpc.CallOption) (*pluginv1.ErrorResponse, error) {
	return direct(ctx, d.conn, d.conn.srv.InitModule, in)
}

func (d directRPC) StartModule(ctx context.Context, in *pluginv1.HandleRequest, _ ...grpc.CallOption) (*pluginv1.ErrorResponse, error) {
	return direct(ctx, d.conn, d.conn.srv.StartModule, in)
}

func (d directRPC) StopModule(ctx context.Context, in *pluginv1.HandleRequest, _ ...grpc.CallOption) (*pluginv1.ErrorResponse, error) {
	return direct(ctx, d.conn, d.conn.srv.StopModule, in)
}

func (d directRPC) DestroyModule(ctx context.Context, in *pluginv1.HandleRequest, _ ...grpc.CallOption) (*pluginv1.ErrorResponse, error) {
	return direct(ctx, d.conn, d.conn.srv.DestroyModule, in)
}

func (d directRPC) CreateStep(ctx context.Context, in *pluginv1.CreateStepRequest, _ ...grpc.CallOption) (*pluginv1.HandleResponse, error) {
	return direct(ctx, d.conn, d.conn.srv.CreateStep, in)
}

func (d directRPC) ExecuteStep(ctx context.Context, in *pluginv1.ExecuteStepRequest, _ ...grpc.CallOption) (*pluginv1.ExecuteStepResponse, error) {
	return direct(ctx, d.conn, d.conn.srv.ExecuteStep, in)
}

func (d directRPC) DestroyStep(ctx context.Context, in *pluginv1.HandleRequest, _ ...grpc.CallOption) (*pluginv1.ErrorResponse, error) {
	return direct(ctx, d.conn, d.conn.srv.DestroyStep, in)
}

func (d directRPC) InvokeService(ctx context.Context, in *pluginv1.InvokeServiceRequest, _ ...grpc.CallOption) (*pluginv1.InvokeServiceResponse, error) {
	return direct(ctx, d.conn, d.conn.srv.InvokeService, in)
}

func (d directRPC) DeliverMessage(ctx context.Context, in *pluginv1.DeliverMessageRequest, _ ...grpc.CallOption) (*pluginv1.DeliverMessageResponse, error) {
	return direct(ctx, d.conn, d.conn.srv.DeliverMessage, in)
}

func (d directRPC) GetConfigFragment(ctx context.Context, in *emptypb.Empty, _ ...grpc.CallOption) (*pluginv1.ConfigFragmentResponse, error) {
	return direct(ctx, d.conn, d.conn.srv.GetConfigFragment, in)
}

func (d directRPC) GetAsset(ctx context.Context, in *pluginv1.GetAssetRequest, _ ...grpc.CallOption) (*pluginv1.GetAssetResponse, error) {
	return direct(ctx, d.conn, d.conn.srv.GetAsset, in)
}

// ConfigureCallback connects the serving side's callbacks to the host's
// callback service in this process; the broker id is go-plugin's and has
// no meaning here.
func (d directRPC) ConfigureCallback(ctx context.Context, _ *pluginv1.ConfigureCallbackRequest, _ ...grpc.CallOption) (*pluginv1.ErrorResponse, error) {
	if err := d.conn.begin(ctx); err != nil {
		return nil, err
	}
	s := d.conn.srv
	s.mu.Lock()
	s.engine = d.conn.engine
	s.mu.Unlock()
	return &pluginv1.ErrorResponse{}, nil
}

func (d directRPC) CreateTrigger(ctx context.Context, in *pluginv1.CreateTriggerRequest, _ ...grpc.CallOption) (*pluginv1.HandleResponse, error) {
	return direct(ctx, d.conn, d.conn.srv.CreateTrigger, in)
}

// localEngine is the host's callback service as the serving side of a
// direct Client calls it.
type localEngine struct {
	cbs *callbackServer
}

var _ pluginv1.EngineCallbackServiceClient = (*localEngine)(nil)

// triggerWorkflow is TriggerWorkflow without the Struct: data goes to the
// host's handler as FromStruct(ToStruct(data)) would have. Its errors read
// as those of the wire.
func (e *localEngine) triggerWorkflow(ctx context.Context, workflowType string, data map[string]any) error {
	data, err := jsonShaped(data)
	if err != nil {
		return fmt.Errorf("wfplugin: trigger %s: data: %w", workflowType, err)
	}
	if err := ctxStatus(ctx); err != nil {
		return fmt.Errorf("wfplugin: trigger %s: %w", workflowType, err)
	}
	failure := e.cbs.runWorkflow(ctx, workflowType, "", data)
	// Over the wire a call whose context ends before the answer arrives
	// fails with the context's status, whatever the host then answers.
	if err := ctxStatus(ctx); err != nil {
		return fmt.Errorf("wfplugin: trigger %s: %w", workflowType, err)
	}
	if failure != "" {
		return &RemoteError{Op: "TriggerWorkflow " + workflowType, Message: failure, Detail: failure, kind: ErrWorkflowFailed}
	}
	return nil
}

func (e *localEngine) TriggerWorkflow(ctx context.Context, in *pluginv1.TriggerWorkflowRequest, _ ...grpc.CallOption) (*pluginv1.ErrorResponse, error) {
	if err := ctxStatus(ctx); err != nil {
		return nil, err
	}
	return e.cbs.TriggerWorkflow(ctx, in)
}

func (e *localEngine) GetService(ctx context.Context, in *pluginv1.GetServiceRequest, _ ...grpc.CallOption) (*pluginv1.GetServiceResponse, error) {
	return e.cbs.GetService(ctx, in)
}

func (e *localEngine) Log(ctx context.Context, in *pluginv1.LogRequest, _ ...grpc.CallOption) (*emptypb.Empty, error) {
	if err := ctxStatus(ctx); err != nil {
		return nil, err
	}
	return e.cbs.Log(ctx, in)
}

func (e *localEngine) PublishMessage(ctx context.Context, in *pluginv1.PublishMessageRequest, _ ...grpc.CallOption) (*pluginv1.PublishMessageResponse, error) {
	return e.cbs.PublishMessage(ctx, in)
}

func (e *localEngine) Subscribe(ctx context.Context, in *pluginv1.SubscribeRequest, _ ...grpc.CallOption) (*pluginv1.ErrorResponse, error) {
	return e.cbs.Subscribe(ctx, in)
}

func (e *localEngine) Unsubscribe(ctx context.Context, in *pluginv1.UnsubscribeRequest, _ ...grpc.CallOption) (*pluginv1.ErrorResponse, error) {
	return e.cbs.Unsubscribe(ctx, in)
}

// executeLocal is ExecuteStep on a direct Client for a step whose contract
// lets the current data and config travel as Structs: the same checks,
// conversions and errors as executeRequest and the wire, with the maps
// handed over as they are when they already hold what the wire would carry.
func (c *Client) executeLocal(ctx context.Context, handle string, info stepInfo, in ExecuteInput) (*ExecuteResult, error) {
	in, err := c.localInput(handle, info, in)
	if err != nil {
		return nil, err
	}
	if err := c.local.begin(ctx); err != nil {
		return nil, &StepExecError{Text: "remote step execute: " + err.Error(), Err: c.rpcError(ctx, "ExecuteStep", err)}
	}
	req := &StepRequest{local: &localRequest{handle: handle, in: in, info: info, reg: c.registry}}
	res, failure := c.local.srv.execute(ctx, handle, req)
	if err := ctxStatus(ctx); err != nil {
		return nil, &StepExecError{Text: "remote step execute: " + err.Error(), Err: c.rpcError(ctx, "ExecuteStep", err)}
	}
	if failure != "" {
		return nil, &StepExecError{Text: "remote step execute: " + failure, Err: &RemoteError{Op: "ExecuteStep " + info.name, Message: failure, Detail: failure}}
	}
	if res == nil {
		return &ExecuteResult{Output: map[string]any{}}, nil
	}
	out, err := jsonShaped(res.Output)
	if err != nil {
		failure := outputFailure(err)
		return nil, &StepExecError{Text: "remote step execute: " + failure, Err: &RemoteError{Op: "ExecuteStep " + info.name, Message: failure, Detail: failure}}
	}
	out, err = c.readOutput(info, res.TypedOutput, out)
	if err != nil {
		return nil, err
	}
	return &ExecuteResult{Output: out, StopPipeline: res.StopPipeline}, nil
}

// localInput converts in as executeRequest does, in the same order and
// with the same errors: a map that holds only what a Struct carries as it
// is goes across unchanged; any other is converted as the wire converts it
// (typed maps and slices normalised, []byte a list of numbers), or refused
// with the engine's words when a Struct cannot hold it.
func (c *Client) localInput(handle string, info stepInfo, in ExecuteInput) (ExecuteInput, error) {
	conv := func(what string, m map[string]any) (map[string]any, error) {
		if mapShape(m) != invalid {
			return m, nil
		}
		s, err := engineStruct(m)
		if err != nil {
			return nil, &StepExecError{Text: fmt.Sprintf("remote step %q (handle %s) encode %s as Struct: %v", info.name, handle, what, err), Err: fmt.Errorf("%w: %w", ErrNotJSONShaped, err)}
		}
		return FromStruct(s), nil
	}
	out := in
	var err error
	for _, name := range slices.Sorted(maps.Keys(in.StepOutputs)) {
		if mapShape(in.StepOutputs[name]) != invalid {
			continue
		}
		m, err := conv(fmt.Sprintf("step output %q", name), in.StepOutputs[name])
		if err != nil {
			return ExecuteInput{}, err
		}
		out.StepOutputs = maps.Clone(out.StepOutputs)
		out.StepOutputs[name] = m
	}
	if out.TriggerData, err = conv("trigger data", in.TriggerData); err != nil {
		return ExecuteInput{}, err
	}
	if out.Current, err = conv("current", in.Current); err != nil {
		return ExecuteInput{}, err
	}
	if out.Config, err = conv("config", in.Config); err != nil {
		return ExecuteInput{}, err
	}
	out.Metadata = normalizeMap(in.Metadata)
	return out, nil
}
