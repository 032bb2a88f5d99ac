package pluginserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"

	"github.com/wfeventbus/eventbus/eventbus"
	pluginv1 "github.com/wfeventbus/eventbus/gen/workflow/plugin/v1"
	"github.com/wfeventbus/eventbus/wfplugin"
)

// Name is the plugin's name in its manifest.
const Name = "workflow-plugin-eventbus"

// Manifest describes the plugin at version (MAJOR.MINOR.PATCH).
func Manifest(version string) wfplugin.Manifest {
	return wfplugin.Manifest{
		Name:        Name,
		Version:     version,
		Author:      "wfeventbus",
		Description: "Durable messaging for workflow pipelines on NATS JetStream: broker, stream and consumer modules, publish/consume/settle steps and a subscribe trigger.",
	}
}

// Server adapts an eventbus.Plugin to wfplugin.Plugin.
type Server struct {
	core     *eventbus.Plugin
	manifest wfplugin.Manifest
	log      *slog.Logger
}

var _ wfplugin.Plugin = (*Server)(nil)

// Option configures a Server.
type Option func(*Server)

// WithLogger sets where a Server logs a panic it recovers (default:
// nowhere).
func WithLogger(l *slog.Logger) Option {
	return func(s *Server) {
		if l != nil {
			s.log = l
		}
	}
}

// New returns a Server for core that reports version in its manifest.
func New(core *eventbus.Plugin, version string, opts ...Option) *Server {
	s := &Server{core: core, manifest: Manifest(version), log: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Manifest describes the plugin.
func (s *Server) Manifest() wfplugin.Manifest { return s.manifest }

// ModuleTypes lists the module types, aliases included.
func (s *Server) ModuleTypes() []string { return eventbus.ModuleTypes() }

// StepTypes lists the step types.
func (s *Server) StepTypes() []string { return eventbus.StepTypes() }

// TriggerTypes lists the trigger types.
func (s *Server) TriggerTypes() []string { return eventbus.TriggerTypes() }

// Contracts declares the typed contracts.
func (s *Server) Contracts() *pluginv1.ContractRegistry { return Contracts() }

// CreateModule creates a module from its Struct config.
func (s *Server) CreateModule(ctx context.Context, spec wfplugin.ModuleSpec) (wfplugin.Module, error) {
	return s.core.CreateModule(ctx, spec.Type, spec.Name, spec.ConfigMap())
}

// CreateStep creates a step from its untemplated config.
func (s *Server) CreateStep(ctx context.Context, spec wfplugin.StepSpec) (wfplugin.Step, error) {
	st, err := s.core.CreateStep(ctx, spec.Type, spec.Name, spec.ConfigMap())
	if err != nil {
		return nil, err
	}
	return step{st}, nil
}

// CreateTrigger creates a trigger that fires cb's workflow. A panic on the
// way to the host and back fails that run, as a failed pipeline does: the
// message is nak'd, and dead-lettered on its last allowed delivery.
func (s *Server) CreateTrigger(ctx context.Context, spec wfplugin.TriggerSpec, cb wfplugin.Callback) (wfplugin.Trigger, error) {
	return s.core.CreateTrigger(ctx, spec.Type, spec.WorkflowType, spec.ConfigMap(), func(ctx context.Context, data map[string]any) (err error) {
		defer func() {
			if r := recover(); r != nil {
				op := "TriggerWorkflow " + cb.WorkflowType()
				s.log.Error("panic in plugin code", "op", op, "panic", r, "stack", string(debug.Stack()))
				err = fmt.Errorf("%w: %s: %v", wfplugin.ErrPanic, op, r)
			}
		}()
		return hostError(cb.TriggerWorkflow(ctx, data))
	})
}

// hostError keeps only the host's own words of a failed workflow, which end
// up in logs and in the Eventbus-Error header of a dead letter; the protocol
// layer's prefix says nothing a reader needs.
func hostError(err error) error {
	var remote *wfplugin.RemoteError
	if errors.As(err, &remote) && remote.Message != "" {
		return &workflowError{msg: remote.Message, cause: err}
	}
	return err
}

// workflowError reads as the host's message and still matches what the
// original error matched.
type workflowError struct {
	msg   string
	cause error
}

func (e *workflowError) Error() string { return e.msg }
func (e *workflowError) Unwrap() error { return e.cause }

type step struct{ eventbus.Step }

func (s step) Execute(ctx context.Context, req *wfplugin.StepRequest) (*wfplugin.StepResult, error) {
	out, err := s.Step.Execute(ctx, stepInput{req})
	if err != nil {
		return nil, err
	}
	return &wfplugin.StepResult{Output: out}, nil
}

// stepInput reads a request's config and current data only when asked.
type stepInput struct{ req *wfplugin.StepRequest }

func (in stepInput) Config() map[string]any         { return in.req.Config() }
func (in stepInput) Current(key string) (any, bool) { return in.req.CurrentValue(key) }
func (in stepInput) Trigger(key string) (any, bool) { return in.req.TriggerValue(key) }
