package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// state is where a Runner is in its life.
type state int

const (
	stateNew              state = iota // built, not started
	stateStarting                      // Start is creating and starting things
	stateRunning                       // triggers may fire
	stateStoppingTriggers              // Stop is stopping triggers; runs they fire still run
	stateStopping                      // Stop is draining
	stateStopped                       // done; nothing may run
)

// Runner runs the pipelines of one app config on one plugin. Build it with
// New, then Start it; it serves TriggerWorkflow until Stop. A Runner runs
// once. Its methods are safe for concurrent use.
type Runner struct {
	cfg     *Config
	plugin  Plugin
	log     *slog.Logger
	opts    options
	metrics *metrics
	tmpl    *templates

	// httpClient sends step.http_call requests; oauth caches their
	// client credentials tokens.
	httpClient *http.Client
	oauth      oauthCache

	pipelines map[string]*pipelineRuntime // by name

	// lifecycle serialises Start and Stop.
	lifecycle sync.Mutex
	modules   []*handle // in start order
	triggers  []*handle // in creation order

	// prepared is set once Prepare has created the app's instances.
	prepared bool

	mu       sync.Mutex
	state    state
	inflight sync.WaitGroup
	running  atomic.Int64 // runs in flight, for the shutdown log
	stopErr  error
	done     chan struct{}

	// runCtx is the parent of every run; cancelled when the shutdown
	// timeout expires.
	runCtx     context.Context
	cancelRuns context.CancelCauseFunc
}

// handle is a plugin instance the runner created.
type handle struct {
	what    string // "module bus (eventbus.broker)", for messages
	pos     Pos    // where its config is written
	id      string
	started bool
}

// New validates cfg against the plugin's catalog and returns a Runner
// ready to Start. Problems of the config come back as a *ConfigError
// (matching ErrInvalidConfig). New calls p.Catalog and nothing else on
// the plugin; Prepare also makes the plugin's create and init calls,
// which check what the catalog cannot. A nil logger discards logs. cfg
// must not be modified afterwards.
func New(cfg *Config, p Plugin, logger *slog.Logger, opts ...Option) (*Runner, error) {
	r, cat, err := newRunner(cfg, p, logger, opts)
	if err != nil {
		return nil, err
	}
	if err := Validate(cfg, cat); err != nil {
		return nil, err
	}
	for i := range cfg.Pipelines {
		pl := &cfg.Pipelines[i]
		rt, err := r.buildPipeline(pl, cat)
		if err != nil {
			return nil, fmt.Errorf("%w: failed to configure pipelines: %w", ErrInvalidConfig, err)
		}
		r.pipelines[pl.Name] = rt
	}
	if err := r.finishNew(); err != nil {
		return nil, err
	}
	return r, nil
}

// newRunner returns a Runner for cfg with its options applied and nothing
// built, and the plugin's catalog.
func newRunner(cfg *Config, p Plugin, logger *slog.Logger, opts []Option) (*Runner, Catalog, error) {
	if cfg == nil {
		return nil, Catalog{}, fmt.Errorf("%w: nil config", ErrInvalidOption)
	}
	if p == nil {
		return nil, Catalog{}, fmt.Errorf("%w: nil plugin", ErrInvalidOption)
	}
	o := options{shutdownTimeout: DefaultShutdownTimeout, now: time.Now}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, Catalog{}, err
		}
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cat := p.Catalog()
	for _, list := range [][]string{cat.ModuleTypes, cat.StepTypes, cat.TriggerTypes} {
		for _, t := range list {
			if IsEngineStepType(t) {
				return nil, Catalog{}, fmt.Errorf("%w: the plugin declares %q", ErrTypeConflict, t)
			}
		}
	}
	r := &Runner{
		cfg:        cfg,
		plugin:     p,
		log:        logger,
		opts:       o,
		tmpl:       newTemplates(o.now, cfg.configLookup(), logger),
		httpClient: &http.Client{},
		pipelines:  make(map[string]*pipelineRuntime, len(cfg.Pipelines)),
		done:       make(chan struct{}),
	}
	r.runCtx, r.cancelRuns = context.WithCancelCause(context.Background())
	return r, cat, nil
}

// finishNew registers the metrics of a Runner whose config has no problem
// and logs the config's warnings.
func (r *Runner) finishNew() error {
	m, err := newMetrics(r.opts.registerer)
	if err != nil {
		return fmt.Errorf("runner: register metrics: %w", err)
	}
	r.metrics = m
	for i := range r.cfg.Pipelines {
		m.declare(r.cfg.Pipelines[i].Name)
	}
	for _, w := range r.cfg.Warnings {
		r.log.Warn("app config", "warning", w.Error())
	}
	return nil
}

// withConfigDir returns a copy of cfg with _config_dir added, as the
// engine passes it, when the config's directory is known.
func (r *Runner) withConfigDir(cfg map[string]any) map[string]any {
	out := maps.Clone(cfg)
	if out == nil {
		out = map[string]any{}
	}
	if r.cfg.Dir != "" {
		out["_config_dir"] = r.cfg.Dir
	}
	return out
}

// Start brings the app up in the engine's order: unless Prepare has
// done so, CreateModule for every module (dependencies first, declaration
// order otherwise), InitModule for each, CreateTrigger for the top-level
// triggers, then per pipeline CreateStep for each plugin step (raw config)
// and CreateTrigger (workflow type "pipeline:<name>"), every problem the
// plugin finds in the config coming back at once in a *ConfigError; then
// StartModule for every module and StartTrigger for every trigger.
// Pipelines may run as soon as the first trigger has started. If anything
// fails, what was started is stopped again and the error is returned (a
// *LifecycleError, matching ErrLifecycle, when a start call failed); the
// Runner is then stopped.
func (r *Runner) Start(ctx context.Context) error {
	r.lifecycle.Lock()
	defer r.lifecycle.Unlock()
	r.mu.Lock()
	if r.state != stateNew {
		r.mu.Unlock()
		return ErrAlreadyStarted
	}
	r.state = stateStarting
	r.mu.Unlock()

	if err := r.start(ctx); err != nil {
		stopErr := r.shutdown(ctx, false)
		r.finish(stopErr)
		if stopErr != nil {
			return errors.Join(err, stopErr)
		}
		return err
	}
	return nil
}

func (r *Runner) start(ctx context.Context) error {
	if !r.prepared {
		found, warnings := &problems{}, &problems{}
		err := r.create(ctx, found, warnings)
		for _, w := range warnings.sorted() {
			r.log.Warn("app config", "warning", w.Error())
		}
		if err != nil {
			return err
		}
		if err := found.err(); err != nil {
			return err
		}
		r.prepared = true
	}
	for _, h := range r.modules {
		if err := r.plugin.StartModule(ctx, h.id); err != nil {
			return &LifecycleError{Op: "start", What: h.what, Pos: h.pos, Err: err}
		}
		h.started = true
	}
	r.mu.Lock()
	r.state = stateRunning
	r.mu.Unlock()
	for _, h := range r.triggers {
		if err := r.plugin.StartTrigger(ctx, h.id); err != nil {
			return &LifecycleError{Op: "start", What: h.what, Pos: h.pos, Err: err}
		}
		h.started = true
	}
	r.log.Info("runner started", "modules", len(r.modules), "pipelines", len(r.pipelines), "triggers", len(r.triggers))
	return nil
}

// createTrigger creates a trigger firing workflowType; its config gets
// the workflowType key, overwriting any the user wrote.
func (r *Runner) createTrigger(ctx context.Context, typ, workflowType string, cfg map[string]any, in *instance) error {
	c := maps.Clone(cfg)
	if c == nil {
		c = map[string]any{}
	}
	c["workflowType"] = workflowType
	id, err := r.plugin.CreateTrigger(ctx, typ, workflowType, c)
	if err != nil {
		return err
	}
	if id == "" {
		return errors.New("the plugin returned an empty handle")
	}
	// A plugin answers the same handle for the same trigger created twice;
	// it is started and stopped once.
	for _, h := range r.triggers {
		if h.id == id {
			return nil
		}
	}
	r.triggers = append(r.triggers, &handle{what: in.what, pos: in.pos, id: id})
	return nil
}

// moduleOrder returns the modules in creation order: each after the
// modules it depends on, otherwise in declaration order. Validate has
// ruled out cycles and unknown names; a module that is part of one
// anyway comes last, in declaration order.
func moduleOrder(mods []Module) []*Module {
	index := map[string]int{}
	for i := range mods {
		if _, dup := index[mods[i].Name]; !dup {
			index[mods[i].Name] = i
		}
	}
	placed := make([]bool, len(mods))
	out := make([]*Module, 0, len(mods))
	for len(out) < len(mods) {
		progress := false
		for i := range mods {
			if placed[i] {
				continue
			}
			ready := true
			for _, dep := range mods[i].DependsOn {
				if j, ok := index[dep]; ok && j != i && !placed[j] {
					ready = false
					break
				}
			}
			if ready {
				placed[i] = true
				out = append(out, &mods[i])
				progress = true
				break
			}
		}
		if !progress {
			for i := range mods {
				if !placed[i] {
					placed[i] = true
					out = append(out, &mods[i])
				}
			}
		}
	}
	return out
}

// Stop shuts the app down: it stops every trigger (last created first),
// lets in-flight runs finish for up to the shutdown timeout, cancels the
// runs still going (they fail with ErrShutdown), and stops every started
// module in reverse start order. It does not stop the plugin process;
// the caller does that afterwards. Stop is idempotent; ctx bounds the
// calls to the plugin and the wait for runs. The error joins every stop
// call that failed.
func (r *Runner) Stop(ctx context.Context) error {
	r.lifecycle.Lock()
	defer r.lifecycle.Unlock()
	r.mu.Lock()
	switch r.state {
	case stateStopped:
		err := r.stopErr
		r.mu.Unlock()
		return err
	case stateNew:
		r.mu.Unlock()
		r.finish(nil)
		return nil
	}
	r.mu.Unlock()
	err := r.shutdown(ctx, true)
	r.finish(err)
	return err
}

// shutdown stops triggers, drains runs and stops modules.
//
// Runs keep being accepted while the triggers stop: a trigger may hand a
// message to its pipeline as it is told to stop, and that run then runs
// like the others, instead of failing and costing its message a delivery
// attempt. New runs are refused once every trigger has stopped, or the
// shutdown timeout has expired.
//
// loud is false after a failed start: the error that stopped the runner
// says what happened, and no "runner stopped" comes before it.
func (r *Runner) shutdown(ctx context.Context, loud bool) error {
	r.mu.Lock()
	r.state = stateStoppingTriggers
	r.mu.Unlock()
	// The shutdown timeout counts from here, not from the end of the
	// trigger stops: a trigger may wait for its in-flight runs before its
	// StopTrigger returns (the eventbus subscribe trigger does, so that it
	// can settle their messages), and those runs must still be cancelled
	// when the timeout expires.
	expire := time.AfterFunc(r.opts.shutdownTimeout, func() {
		if n := r.running.Load(); n > 0 {
			r.log.Warn("shutdown timeout expired; cancelling in-flight runs", "timeout", r.opts.shutdownTimeout, "runs", n)
		}
		r.cancelRuns(ErrShutdown)
	})
	defer expire.Stop()
	var errs []error
	for _, h := range slices.Backward(r.triggers) {
		if !h.started {
			continue
		}
		if err := r.plugin.StopTrigger(ctx, h.id); err != nil {
			errs = append(errs, &LifecycleError{Op: "stop", What: h.what, Pos: h.pos, Err: err})
		}
		h.started = false
	}
	r.mu.Lock()
	r.state = stateStopping
	r.mu.Unlock()
	r.drain(ctx)
	for _, h := range slices.Backward(r.modules) {
		if !h.started {
			continue
		}
		if err := r.plugin.StopModule(ctx, h.id); err != nil {
			errs = append(errs, &LifecycleError{Op: "stop", What: h.what, Pos: h.pos, Err: err})
		}
		h.started = false
	}
	if len(errs) > 0 {
		err := errors.Join(errs...)
		if loud {
			r.log.Warn("runner stopped with errors", "error", err)
		}
		return err
	}
	if loud {
		r.log.Info("runner stopped")
	}
	return nil
}

// drain waits for in-flight runs to return, as long as ctx allows; runs
// still going when the shutdown timeout expires have been cancelled by
// then (see shutdown). If ctx ends first, the runs are cancelled at once.
func (r *Runner) drain(ctx context.Context) {
	drained := make(chan struct{})
	go func() {
		r.inflight.Wait()
		close(drained)
	}()
	select {
	case <-drained:
	case <-ctx.Done():
		r.log.Warn("stop context ended; cancelling in-flight runs", "error", ctx.Err())
		r.cancelRuns(ErrShutdown)
	}
}

// finish marks the runner stopped.
func (r *Runner) finish(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state == stateStopped {
		return
	}
	r.state = stateStopped
	r.stopErr = err
	r.cancelRuns(ErrShutdown)
	close(r.done)
}

// Warnings are what the config's checks found likely wrong but did not
// refuse (see Config.Warnings), the plugin's among them after Prepare.
func (r *Runner) Warnings() []*Problem { return r.cfg.Warnings }

// Done is closed once the runner has stopped (after Stop, or after a
// failed Start).
func (r *Runner) Done() <-chan struct{} { return r.done }

// Wait blocks until the runner has stopped and returns Stop's error, or
// returns ctx's error if ctx ends first.
func (r *Runner) Wait(ctx context.Context) error {
	select {
	case <-r.done:
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.stopErr
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TriggerWorkflow runs the pipeline that workflowType names
// ("pipeline:<name>", or the bare name) once with data as its trigger
// data, and returns when the run has finished: nil when it succeeded, an
// error (a *StepError matching ErrStepFailed) when it failed, so that the
// trigger can nak the message. action is ignored, as pipelines ignore it
// in the engine. It fails with ErrUnknownWorkflow for a name that is no
// pipeline and ErrNotRunning before Start has started the modules and
// once Stop has stopped every trigger. Runs execute on the
// caller's goroutine; any number may run at once. data is owned by the
// run from then on.
func (r *Runner) TriggerWorkflow(ctx context.Context, workflowType, action string, data map[string]any) error {
	rt := r.pipelines[workflowType]
	if rt == nil {
		if name, ok := strings.CutPrefix(workflowType, "pipeline:"); ok {
			rt = r.pipelines[name]
		}
	}
	if rt == nil {
		return fmt.Errorf("%w: %s", ErrUnknownWorkflow, workflowType)
	}
	r.mu.Lock()
	if accepting := r.state == stateRunning || r.state == stateStoppingTriggers; !accepting || r.runCtx.Err() != nil {
		r.mu.Unlock()
		return fmt.Errorf("%w: pipeline %s not run", ErrNotRunning, rt.cfg.Name)
	}
	r.inflight.Add(1)
	r.running.Add(1)
	r.mu.Unlock()
	defer r.inflight.Done()
	defer r.running.Add(-1)

	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := context.AfterFunc(r.runCtx, func() { cancel(context.Cause(r.runCtx)) })
	defer stop()
	return r.run(runCtx, rt, data)
}
