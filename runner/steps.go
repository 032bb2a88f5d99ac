package runner

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/wfeventbus/eventbus/wfplugin"
)

// step is one executable step: a built-in, a plugin step, or a guard
// around either.
type step interface {
	Name() string
	Execute(ctx context.Context, pc *runContext) (*stepResult, error)
}

// stepResult is what a step produced (engine-pipelines.md §4.2).
type stepResult struct {
	// output is merged into current and kept under steps.<name>; nil
	// merges as {}.
	output map[string]any
	// next names the step to continue with; "" continues in order.
	next string
	// stop ends the pipeline successfully after this step.
	stop bool
	// skipped means a guard skipped the step: nothing is recorded.
	skipped bool
}

// stepFactory builds a step from its config, failing with the engine's
// build-time error for a bad config.
type stepFactory func(b *builder, name string, cfg map[string]any) (step, error)

// builtinFactories are the engine built-in steps eventbus run
// implements, by type.
func builtinFactories() map[string]stepFactory {
	return map[string]stepFactory{
		"step.set":                newSetStep,
		"step.log":                newLogStep,
		"step.validate":           newValidateStep,
		"step.conditional":        newConditionalStep,
		"step.transform":          newTransformStep,
		"step.json_parse":         newJSONParseStep,
		"step.foreach":            newForeachStep,
		"step.parallel":           newParallelStep,
		"step.branch":             newBranchStep,
		"step.retry_with_backoff": newRetryStep,
		"step.http_call":          newHTTPCallStep,
		"step.json_response":      newJSONResponseStep,
		"step.response":           newJSONResponseStep,
		"step.pipeline_output":    newPipelineOutputStep,
		"step.workflow_call":      newWorkflowCallStep,
		"step.publish":            newPublishStep,
		"step.event_publish":      newEventPublishStep,
	}
}

// builtinFields are the config fields each built-in step reads; the
// engine ignores any other key.
func builtinFields() map[string][]string {
	response := []string{"status", "status_from", "headers", "body", "body_from"}
	return map[string][]string{
		"step.set":                {"values"},
		"step.log":                {"level", "message"},
		"step.validate":           {"strategy", "required_fields", "schema", "source"},
		"step.conditional":        {"if", "then", "else", "field", "routes", "default"},
		"step.transform":          {"operations", "transformer", "pipeline"},
		"step.json_parse":         {"source", "target"},
		"step.foreach":            {"collection", "item_var", "item_key", "index_key", "step", "steps", "concurrency", "error_strategy"},
		"step.parallel":           {"steps", "error_strategy"},
		"step.branch":             {"field", "branches", "default", "merge_step"},
		"step.retry_with_backoff": {"step", "max_retries", "initial_delay", "max_delay", "multiplier"},
		"step.http_call":          {"url", "method", "headers", "body", "body_from", "timeout", "error_on_status", "client", "auth", "oauth2"},
		"step.json_response":      response,
		"step.response":           response,
		"step.pipeline_output":    {"source", "values"},
		"step.workflow_call":      {"workflow", "mode", "input", "output_mapping", "timeout", "stop_pipeline"},
		"step.publish":            {"topic", "payload", "broker"},
		"step.event_publish":      {"topic", "stream", "payload", "data", "headers", "event_type", "source", "broker", "provider", "encryption"},
	}
}

// BuiltinStepFields returns the config fields a built-in step type reads,
// in documentation order; nil for any other type.
func BuiltinStepFields(typ string) []string { return builtinFields()[typ] }

// BuiltinStepTypes lists the engine built-in step types eventbus run
// implements, sorted.
func BuiltinStepTypes() []string {
	return slices.Sorted(maps.Keys(builtinFactories()))
}

func isBuiltinStep(typ string) bool {
	_, ok := builtinFactories()[typ]
	return ok
}

// IsEngineStepType reports whether typ is a step type the engine
// registers itself (engine-pipelines.md §3.17).
func IsEngineStepType(typ string) bool {
	_, ok := slices.BinarySearch(engineStepTypes(), typ)
	return ok
}

// builder builds the steps of an app's pipelines. In a Runner it creates
// plugin steps whose handles Start fills in; in validation it only checks
// them.
type builder struct {
	r *Runner // nil when only checking
	// pluginTypes are the step types the plugin declares.
	pluginTypes []string
	// pipelines names the app's pipelines, for workflow_call.
	pipelines map[string]bool
	// plugin collects the plugin steps in creation order.
	plugin []*pluginStep
	// onPlugin checks a plugin step's config at rel (a path below the
	// top-level step's config, "" for the step itself); may be nil.
	onPlugin func(typ string, cfg map[string]any, rel string)
	// rel is the config path of the step being built, below its pipeline
	// step's config.
	rel string
	// at is the pipeline step being built and path its field path.
	at   *Step
	path string
}

// build builds a step of type typ.
func (b *builder) build(name, typ string, cfg map[string]any) (step, error) {
	if cfg == nil {
		cfg = map[string]any{}
	}
	if f, ok := builtinFactories()[typ]; ok {
		return f(b, name, cfg)
	}
	if slices.Contains(b.pluginTypes, typ) {
		if b.onPlugin != nil {
			b.onPlugin(typ, cfg, b.rel)
		}
		ps := &pluginStep{name: name, typ: typ, config: cfg, at: b.at, path: b.path, rel: b.rel}
		if b.r != nil {
			ps.r = b.r
		}
		b.plugin = append(b.plugin, ps)
		return ps, nil
	}
	if IsEngineStepType(typ) {
		return nil, &textError{msg: fmt.Sprintf("unknown step type: %s (an engine built-in not available in eventbus run)", typ), errs: []error{ErrUnsupported}}
	}
	return nil, &textError{msg: "unknown step type: " + typ, errs: []error{ErrUnknownType}}
}

// sub builds a sub-step of a foreach, parallel, branch or retry step from
// its map {name?, type, config?}: without config, every other key is the
// config. Its name defaults to "<parent>-<field>". rel is the sub-step
// map's path below the parent's config.
func (b *builder) sub(parent, field string, m map[string]any, rel string) (step, error) {
	typ, _ := m["type"].(string)
	if typ == "" {
		return nil, fmt.Errorf("failed to build %s sub-step for %q: 'type' is required", field, parent)
	}
	name, _ := m["name"].(string)
	if name == "" {
		name = parent + "-" + field
	}
	cfg, hasConfig := m["config"].(map[string]any)
	cfgRel := joinRel(rel, "config")
	if !hasConfig {
		cfg = make(map[string]any, len(m))
		for k, v := range m {
			if k != "type" && k != "name" {
				cfg[k] = v
			}
		}
		cfgRel = rel
	}
	saved := b.rel
	b.rel = relJoin(saved, cfgRel)
	defer func() { b.rel = saved }()
	return b.build(name, typ, cfg)
}

// guarded wraps a step with its skip_if and if guards
// (engine-pipelines.md §4.3): skip_if first, a resolution error counting
// as false (the step runs); then if, a resolution error counting as
// false (the step is skipped).
type guarded struct {
	step
	tmpl   *templates
	skipIf string
	ifCond string
}

func (g *guarded) Execute(ctx context.Context, pc *runContext) (*stepResult, error) {
	if g.skipIf != "" {
		if v, err := g.tmpl.resolve(g.skipIf, pc); err == nil && guardTruthy(v) {
			return &stepResult{skipped: true}, nil
		}
	}
	if g.ifCond != "" {
		if v, err := g.tmpl.resolve(g.ifCond, pc); err != nil || !guardTruthy(v) {
			return &stepResult{skipped: true}, nil
		}
	}
	return g.step.Execute(ctx, pc)
}

// pluginStep is a step the plugin implements. Each execution resolves
// every string of its config against the run and calls ExecuteStep.
type pluginStep struct {
	r      *Runner
	name   string
	typ    string
	config map[string]any // raw, with _config_dir when the host adds it
	// at is the pipeline step whose config holds this step's, path its
	// field path and rel the path of this step's config below it.
	at   *Step
	path string
	rel  string

	mu     sync.RWMutex
	handle string // set by Start
}

func (s *pluginStep) Name() string { return s.name }

func (s *pluginStep) setHandle(h string) {
	s.mu.Lock()
	s.handle = h
	s.mu.Unlock()
}

func (s *pluginStep) Execute(ctx context.Context, pc *runContext) (*stepResult, error) {
	s.mu.RLock()
	h := s.handle
	s.mu.RUnlock()
	cfg, err := s.r.tmpl.resolveMap(s.config, pc)
	if err != nil {
		return nil, &textError{msg: fmt.Sprintf("remote step %q (handle %s) config resolve: %s", s.name, h, err), errs: []error{err}}
	}
	res, err := s.r.plugin.ExecuteStep(ctx, h, StepInput{
		TriggerData: pc.trigger,
		StepOutputs: pc.steps,
		Current:     pc.current,
		Metadata:    pc.meta,
		Config:      cfg,
	})
	if err != nil {
		return nil, remoteStepError(err)
	}
	return &stepResult{output: res.Output, stop: res.StopPipeline}, nil
}

// remoteStepError words a plugin step's failure as the engine does: the
// wire client already does (wfplugin.StepExecError); any other plugin
// error is the text the plugin would have answered.
func remoteStepError(err error) error {
	var se *wfplugin.StepExecError
	if errors.As(err, &se) {
		return err
	}
	return &textError{msg: "remote step execute: " + err.Error(), errs: []error{err}}
}
