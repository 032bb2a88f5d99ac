package runner

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// pipelineRuntime is a pipeline with its steps built.
type pipelineRuntime struct {
	cfg          *Pipeline
	steps        []step
	compensation []step
	// plugin holds the plugin steps at any depth, in the order Start
	// creates them: steps, then compensation steps.
	plugin []*pluginStep
}

// buildPipeline builds a pipeline's steps, each wrapped in its guards.
// The error is the engine's build error for the first step that fails;
// the steps after it are built all the same, so that the runtime returned
// holds every plugin step that builds.
func (r *Runner) buildPipeline(pl *Pipeline, cat Catalog) (*pipelineRuntime, error) {
	rt := &pipelineRuntime{cfg: pl}
	b := &builder{r: r, pluginTypes: cat.StepTypes}
	path := srcPath(pl.src, "pipelines"+pathKey(pl.Name))
	var first error
	build := func(s *Step, fallback string) step {
		b.rel, b.at, b.path = "", s, srcPath(s.src, fallback)
		st, err := b.build(s.Name, s.Type, r.withConfigDir(s.Config))
		if err != nil {
			if first == nil {
				first = fmt.Errorf("pipeline %q: step %q (type %s): %w", pl.Name, s.Name, s.Type, err)
			}
			return nil
		}
		if s.If != "" || s.SkipIf != "" {
			st = &guarded{step: st, tmpl: r.tmpl, skipIf: s.SkipIf, ifCond: s.If}
		}
		return st
	}
	for i := range pl.Steps {
		if st := build(&pl.Steps[i], fmt.Sprintf("%s.steps[%d]", path, i)); st != nil {
			rt.steps = append(rt.steps, st)
		}
	}
	for i := range pl.Compensation {
		if st := build(&pl.Compensation[i], fmt.Sprintf("%s.compensation[%d]", path, i)); st != nil {
			rt.compensation = append(rt.compensation, st)
		}
	}
	rt.plugin = b.plugin
	return rt, first
}

// run executes one pipeline run fired by a trigger with data as its
// trigger data, and records its outcome.
func (r *Runner) run(ctx context.Context, rt *pipelineRuntime, data map[string]any) error {
	pl := rt.cfg
	started := r.opts.now()
	log := r.log.With("pipeline", pl.Name)
	log.Debug("pipeline started")
	_, err := r.execute(ctx, rt, data)
	elapsed := r.opts.now().Sub(started)

	outcome := OutcomeSuccess
	switch {
	case err == nil:
	case errors.Is(err, ErrTimeout):
		outcome = OutcomeTimeout
	case errors.Is(err, context.Canceled) || errors.Is(err, ErrShutdown):
		outcome = OutcomeCanceled
	default:
		outcome = OutcomeFailure
	}
	r.metrics.observe(pl.Name, outcome, elapsed.Seconds())
	if err != nil {
		err = &WorkflowError{Pipeline: pl.Name, Err: err}
		// The trigger that fired the run gets the error back and reports
		// it, with what becomes of its message (retried, dead-lettered);
		// logging it here too would say the same thing twice.
		log.Debug("pipeline failed", "outcome", outcome, "error", err, "elapsed", elapsed)
		return err
	}
	log.Debug("pipeline completed", "elapsed", elapsed)
	return nil
}

// execute runs a pipeline as the engine's executor does
// (engine-pipelines.md §4): steps in order, a deadline check before each,
// outputs merged into current, jumps to named steps, the pipeline's
// on_error policy. It returns the run's context (for workflow_call) and
// the executor's error.
func (r *Runner) execute(ctx context.Context, rt *pipelineRuntime, data map[string]any) (*runContext, error) {
	pl := rt.cfg
	if pl.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, pl.Timeout, fmt.Errorf("%w (%v)", ErrTimeout, pl.Timeout))
		defer cancel()
	}
	pc := newRunContext(data, map[string]any{
		"pipeline":   pl.Name,
		"started_at": r.opts.now().UTC().Truncate(time.Second).Format(time.RFC3339),
	}, pl.StrictTemplates)
	for i := 0; i < len(rt.steps); {
		st := rt.steps[i]
		if ctx.Err() != nil {
			return pc, &textError{
				msg:  fmt.Sprintf("pipeline %q cancelled: %v", pl.Name, ctx.Err()),
				errs: []error{ctx.Err(), context.Cause(ctx)},
			}
		}
		res, err := st.Execute(ctx, pc)
		if err != nil {
			switch pl.OnError {
			case "skip":
				r.log.Warn("step failed; skipping it", "pipeline", pl.Name, "step", st.Name(), "error", err)
				pc.merge(st.Name(), map[string]any{"_error": err.Error(), "_skipped": true})
				i++
				continue
			case "compensate":
				suffix := " (compensation executed)"
				if cerr := r.compensate(ctx, rt, pc); cerr != nil {
					suffix = fmt.Sprintf(" (compensation also failed: %v)", cerr)
				}
				return pc, &StepError{Pipeline: pl.Name, Step: st.Name(), Err: err, suffix: suffix, cause: context.Cause(ctx)}
			}
			return pc, &StepError{Pipeline: pl.Name, Step: st.Name(), Err: err, cause: context.Cause(ctx)}
		}
		if res == nil {
			res = &stepResult{}
		}
		if res.skipped {
			i++
			continue
		}
		pc.merge(st.Name(), res.output)
		if res.stop {
			break
		}
		if res.next != "" {
			j := len(rt.steps) - 1
			for j >= 0 && rt.steps[j].Name() != res.next {
				j--
			}
			if j < 0 {
				return pc, fmt.Errorf("step %q routed to unknown step %q", st.Name(), res.next)
			}
			i = j
			continue
		}
		i++
	}
	pc.meta["completed_at"] = r.opts.now().UTC().Format(time.RFC3339)
	return pc, nil
}

// compensate runs the compensation steps, last first, on the run's
// context; their outputs are not merged. It returns the first error and
// runs the rest anyway.
func (r *Runner) compensate(ctx context.Context, rt *pipelineRuntime, pc *runContext) error {
	var first error
	for _, s := range slices.Backward(rt.compensation) {
		if _, err := s.Execute(ctx, pc); err != nil {
			r.log.Warn("compensation step failed", "pipeline", rt.cfg.Name, "step", s.Name(), "error", err)
			if first == nil {
				first = err
			}
		}
	}
	return first
}

// runDetached runs fn outside the calling run (an async workflow_call):
// bounded by timeout and by the runner's shutdown, and waited for by
// Stop like any run.
func (r *Runner) runDetached(ctx context.Context, timeout time.Duration, fn func(context.Context)) {
	r.inflight.Add(1)
	go func() {
		defer r.inflight.Done()
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
		defer cancel()
		stop := context.AfterFunc(r.runCtx, cancel)
		defer stop()
		fn(ctx)
	}()
}
