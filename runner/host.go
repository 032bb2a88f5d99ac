package runner

import (
	"context"
	"fmt"
	"sync"

	"github.com/wfeventbus/eventbus/wfplugin"
)

// FromClient adapts a plugin launched with wfplugin.Launch, LaunchInProcess
// or LaunchDirect (the plugin in this process, called without gRPC) to
// Plugin. Launch the client with
// wfplugin.WithWorkflowHandler(fw.TriggerWorkflow) for a Forwarder fw,
// and Attach the Runner to fw once New has built it.
func FromClient(c *wfplugin.Client) Plugin { return clientPlugin{c} }

type clientPlugin struct{ c *wfplugin.Client }

func (p clientPlugin) Catalog() Catalog {
	return Catalog{
		ModuleTypes:  p.c.ModuleTypes(),
		StepTypes:    p.c.StepTypes(),
		TriggerTypes: p.c.TriggerTypes(),
		Contracts:    p.c.Contracts(),
		EnvDefaults:  p.c.Manifest().Name == EventbusPluginName,
	}
}

func (p clientPlugin) CreateModule(ctx context.Context, typ, name string, config map[string]any) (string, error) {
	return p.c.CreateModule(ctx, typ, name, config)
}

func (p clientPlugin) InitModule(ctx context.Context, handle string) error {
	return p.c.InitModule(ctx, handle)
}

func (p clientPlugin) StartModule(ctx context.Context, handle string) error {
	return p.c.StartModule(ctx, handle)
}

func (p clientPlugin) StopModule(ctx context.Context, handle string) error {
	return p.c.StopModule(ctx, handle)
}

func (p clientPlugin) CreateStep(ctx context.Context, typ, name string, config map[string]any) (string, error) {
	return p.c.CreateStep(ctx, typ, name, config)
}

func (p clientPlugin) ExecuteStep(ctx context.Context, handle string, in StepInput) (StepResult, error) {
	res, err := p.c.ExecuteStep(ctx, handle, wfplugin.ExecuteInput{
		TriggerData: in.TriggerData,
		StepOutputs: in.StepOutputs,
		Current:     in.Current,
		Metadata:    in.Metadata,
		Config:      in.Config,
	})
	if err != nil {
		return StepResult{}, err
	}
	return StepResult{Output: res.Output, StopPipeline: res.StopPipeline}, nil
}

func (p clientPlugin) CreateTrigger(ctx context.Context, typ, workflowType string, config map[string]any) (string, error) {
	return p.c.CreateTrigger(ctx, typ, workflowType, config)
}

func (p clientPlugin) StartTrigger(ctx context.Context, handle string) error {
	return p.c.StartTrigger(ctx, handle)
}

func (p clientPlugin) StopTrigger(ctx context.Context, handle string) error {
	return p.c.StopTrigger(ctx, handle)
}

// Forwarder passes the plugin's TriggerWorkflow calls to a Runner. A
// plugin is launched before the Runner that drives it exists (New needs
// the plugin's catalog), so the launch gets the Forwarder's method and the
// Runner is attached afterwards. Until then, calls fail with
// ErrNotRunning. The zero value is ready to use.
type Forwarder struct {
	mu sync.RWMutex
	r  *Runner
}

// Attach sets the Runner that receives the calls.
func (f *Forwarder) Attach(r *Runner) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.r = r
}

// TriggerWorkflow calls the attached Runner's TriggerWorkflow. It has the
// signature of wfplugin.WorkflowHandler.
func (f *Forwarder) TriggerWorkflow(ctx context.Context, workflowType, action string, data map[string]any) error {
	f.mu.RLock()
	r := f.r
	f.mu.RUnlock()
	if r == nil {
		return fmt.Errorf("%w: no runner attached yet (workflow %s)", ErrNotRunning, workflowType)
	}
	return r.TriggerWorkflow(ctx, workflowType, action, data)
}
