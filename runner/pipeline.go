package runner

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"
)

// run executes one pipeline run with data as its trigger data.
func (r *Runner) run(ctx context.Context, rt *pipelineRuntime, data map[string]any) error {
	pl := rt.cfg
	started := r.opts.now()
	if pl.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, pl.Timeout, fmt.Errorf("%w (%v)", ErrTimeout, pl.Timeout))
		defer cancel()
	}
	if data == nil {
		data = map[string]any{}
	}
	d := &runData{
		trigger: data,
		steps:   map[string]map[string]any{},
		current: maps.Clone(data),
		meta: map[string]any{
			"pipeline":   pl.Name,
			"started_at": started.UTC().Format(time.RFC3339),
		},
	}
	log := r.log.With("pipeline", pl.Name)
	log.Debug("pipeline started")

	err := r.steps(ctx, rt, d)
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
		// The trigger that fired the run gets the error back and reports
		// it, with what becomes of its message (retried, dead-lettered);
		// logging it here too would say the same thing twice.
		log.Debug("pipeline failed", "outcome", outcome, "error", err, "elapsed", elapsed)
		return err
	}
	log.Debug("pipeline completed", "elapsed", elapsed)
	return nil
}

// steps runs the steps of a pipeline in order, applying its error policy.
func (r *Runner) steps(ctx context.Context, rt *pipelineRuntime, d *runData) error {
	pl := rt.cfg
	for _, s := range rt.steps {
		if err := context.Cause(ctx); err != nil && ctx.Err() != nil {
			return &StepError{Pipeline: pl.Name, Step: s.cfg.Name, Err: err}
		}
		res, ran, err := r.step(ctx, pl, s, d)
		if err != nil {
			policy := s.cfg.OnError
			if policy == "" {
				policy = pl.OnError
			}
			switch policy {
			case "skip":
				r.log.Warn("step failed; skipping it", "pipeline", pl.Name, "step", s.cfg.Name, "error", err)
				d.merge(s.cfg.Name, map[string]any{"_error": err.Error(), "_skipped": true})
				continue
			case "compensate":
				if cerr := r.compensate(ctx, rt, d); cerr != nil {
					err = fmt.Errorf("%w (compensation also failed: %w)", err, cerr)
				}
			}
			return &StepError{Pipeline: pl.Name, Step: s.cfg.Name, Err: err}
		}
		if !ran {
			continue
		}
		d.merge(s.cfg.Name, res.Output)
		if res.StopPipeline {
			r.log.Debug("pipeline stopped by step", "pipeline", pl.Name, "step", s.cfg.Name)
			return nil
		}
	}
	return nil
}

// compensate runs the compensation steps, last first; it returns the
// first error and runs the rest anyway.
func (r *Runner) compensate(ctx context.Context, rt *pipelineRuntime, d *runData) error {
	var first error
	for _, s := range slices.Backward(rt.compensation) {
		res, ran, err := r.step(ctx, rt.cfg, s, d)
		switch {
		case err != nil:
			r.log.Warn("compensation step failed", "pipeline", rt.cfg.Name, "step", s.cfg.Name, "error", err)
			if first == nil {
				first = fmt.Errorf("step %q: %w", s.cfg.Name, err)
			}
		case ran:
			d.merge(s.cfg.Name, res.Output)
		}
	}
	return first
}

// step runs one step: it evaluates skip_if and if, renders the config and
// executes the step. ran is false when a condition skipped it.
func (r *Runner) step(ctx context.Context, pl *Pipeline, s *stepRuntime, d *runData) (res StepResult, ran bool, err error) {
	sc := r.render.scope(d, pl.StrictTemplates)
	if s.cfg.SkipIf != "" {
		v, err := sc.renderString(s.cfg.SkipIf)
		if err != nil {
			return StepResult{}, false, fmt.Errorf("skip_if: %w", err)
		}
		if truthy(v) {
			r.log.Debug("step skipped by skip_if", "pipeline", pl.Name, "step", s.cfg.Name)
			return StepResult{}, false, nil
		}
	} else if s.cfg.If != "" {
		v, err := sc.renderString(s.cfg.If)
		if err != nil {
			return StepResult{}, false, fmt.Errorf("if: %w", err)
		}
		if !truthy(v) {
			r.log.Debug("step skipped by if", "pipeline", pl.Name, "step", s.cfg.Name)
			return StepResult{}, false, nil
		}
	}
	cfg, err := sc.renderConfig(s.config)
	if err != nil {
		return StepResult{}, false, err
	}
	if s.cfg.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, s.cfg.Timeout, fmt.Errorf("%w: step timeout %v", ErrTimeout, s.cfg.Timeout))
		defer cancel()
	}
	r.log.Debug("step started", "pipeline", pl.Name, "step", s.cfg.Name, "type", s.cfg.Type)
	if isBuiltinStep(s.cfg.Type) {
		res, err = r.runBuiltin(ctx, pl.Name, s.cfg, cfg)
	} else {
		res, err = r.plugin.ExecuteStep(ctx, s.handle, StepInput{
			TriggerData: d.trigger,
			StepOutputs: d.steps,
			Current:     d.current,
			Metadata:    d.meta,
			Config:      cfg,
		})
	}
	if err != nil {
		// A step cut short by the run's context reports the context's
		// cause too, so a timeout or shutdown is recognisable.
		if cause := context.Cause(ctx); ctx.Err() != nil && cause != nil && !errors.Is(err, cause) {
			err = fmt.Errorf("%w (%w)", err, cause)
		}
		return StepResult{}, false, err
	}
	return res, true, nil
}

// merge records a step's output under steps.NAME and merges it into the
// current data (top-level keys only).
func (d *runData) merge(name string, out map[string]any) {
	o := maps.Clone(out)
	if o == nil {
		o = map[string]any{}
	}
	d.steps[name] = o
	maps.Copy(d.current, o)
}
