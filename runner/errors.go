package runner

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Errors of the runner, wrapped with context; match them with errors.Is.
// Every problem of an app config wraps ErrInvalidConfig and one of the
// more specific errors below it.
var (
	// ErrInvalidConfig: the app config cannot run. The *ConfigError that
	// wraps it lists every problem with its file, line and field.
	ErrInvalidConfig = errors.New("invalid app config")

	// ErrSyntax: the file is not valid YAML. Fix the line it names.
	ErrSyntax = errors.New("syntax error")

	// ErrMissingField: a required field is absent or empty, such as a
	// module's type or step.log's message.
	ErrMissingField = errors.New("missing field")

	// ErrUnknownField: a key names no field there. The message suggests
	// the closest known name when one is spelled similarly.
	ErrUnknownField = errors.New("unknown field")

	// ErrWrongType: a value has the wrong kind, such as a list where a map
	// is expected or a string for a boolean field of a typed contract.
	ErrWrongType = errors.New("wrong type")

	// ErrInvalidValue: a value has the right kind but unusable content: a
	// malformed duration or template, an enum name that does not exist,
	// a number out of range.
	ErrInvalidValue = errors.New("invalid value")

	// ErrUnknownType: no module, step or trigger of that type exists in
	// the plugin or among the built-in steps.
	ErrUnknownType = errors.New("unknown type")

	// ErrDuplicate: a name is declared twice (modules, steps of one
	// pipeline, keys of one YAML mapping).
	ErrDuplicate = errors.New("duplicate name")

	// ErrUnknownReference: a dependsOn, broker_ref or bus entry names no
	// declared module, or a top-level trigger's workflowType names no
	// declared pipeline.
	ErrUnknownReference = errors.New("unknown reference")

	// ErrDependencyCycle: modules depend on each other in a cycle, so no
	// creation order exists.
	ErrDependencyCycle = errors.New("dependency cycle")

	// ErrUnsupported: the engine knows the feature but the standalone
	// runner does not implement it (for example imports).
	ErrUnsupported = errors.New("not supported by the standalone runner")

	// ErrTypeConflict: the plugin declares a type with the name of a
	// built-in step; the engine refuses such a plugin.
	ErrTypeConflict = errors.New("type conflicts with a built-in type")

	// ErrUnknownWorkflow: TriggerWorkflow named a workflow type that is no
	// declared pipeline ("pipeline:<name>" or "<name>"). The message is
	// not processed; the trigger should treat it as failed.
	ErrUnknownWorkflow = errors.New("no handler found for workflow type")

	// ErrNotRunning: TriggerWorkflow was called before Start finished or
	// after Stop began. The trigger should redeliver later.
	ErrNotRunning = errors.New("runner is not running")

	// ErrAlreadyStarted: Start was called on a runner that was already
	// started; a Runner runs once.
	ErrAlreadyStarted = errors.New("runner already started")

	// ErrStepFailed: a pipeline step failed (the plugin answered with an
	// error, a built-in step failed, a template did not render, the run's
	// timeout expired). The wrapping *StepError names the pipeline and step; the
	// run failed and its trigger should nak the message.
	ErrStepFailed = errors.New("step failed")

	// ErrTimeout: the pipeline's timeout expired before the run finished;
	// the run failed.
	ErrTimeout = errors.New("pipeline timeout expired")

	// ErrShutdown: the runner's shutdown timeout expired while the run was
	// in flight, so it was cancelled; the run failed.
	ErrShutdown = errors.New("runner shut down before the run finished")

	// ErrTemplate: a step's config did not render: a template error at
	// run time, or a missing key with strict_templates.
	ErrTemplate = errors.New("template error")

	// ErrLifecycle: creating, initialising, starting or stopping a module,
	// step or trigger failed in the plugin; the message names which.
	ErrLifecycle = errors.New("lifecycle call failed")

	// ErrInvalidOption: an Option passed to New is invalid; the message
	// names it.
	ErrInvalidOption = errors.New("invalid option")
)

// Pos is a position in an app config file. Line and Column start at 1; a
// zero Line means the position is unknown (a Config built in code).
type Pos struct {
	File   string
	Line   int
	Column int
}

// String returns "file:line", "file" or "" depending on what is known.
func (p Pos) String() string {
	switch {
	case p.File != "" && p.Line > 0:
		return fmt.Sprintf("%s:%d", p.File, p.Line)
	case p.Line > 0:
		return fmt.Sprintf("line %d", p.Line)
	default:
		return p.File
	}
}

// Problem is one thing wrong with an app config.
type Problem struct {
	// Pos is where the problem is.
	Pos Pos
	// Field is the path of the field at fault, such as
	// "pipelines.orders.steps[1].type" or "modules[0].config.max_age".
	Field string
	// Err says what is wrong; it wraps ErrInvalidConfig's specific
	// errors (ErrUnknownType, ErrMissingField, ...).
	Err error
}

// Error returns `app.yaml:14: pipelines.orders.steps[1].type: unknown step
// type "step.eventbus.publsh"`.
func (p *Problem) Error() string {
	var b strings.Builder
	if s := p.Pos.String(); s != "" {
		b.WriteString(s)
		b.WriteString(": ")
	}
	if p.Field != "" {
		b.WriteString(p.Field)
		b.WriteString(": ")
	}
	b.WriteString(p.Err.Error())
	return b.String()
}

// Unwrap returns Err.
func (p *Problem) Unwrap() error { return p.Err }

// ConfigError is every problem found in an app config, ordered by
// position. It matches ErrInvalidConfig and the specific error of each
// problem with errors.Is.
type ConfigError struct {
	Problems []*Problem
	// Warnings are the config's warnings (see Config.Warnings), when they
	// are known: Prepare reports them along with the problems.
	Warnings []*Problem
}

// Error returns one problem per line.
func (e *ConfigError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns ErrInvalidConfig and every problem.
func (e *ConfigError) Unwrap() []error {
	errs := make([]error, 0, len(e.Problems)+1)
	errs = append(errs, ErrInvalidConfig)
	for _, p := range e.Problems {
		errs = append(errs, p)
	}
	return errs
}

// problems collects config problems.
type problems struct {
	list []*Problem
}

// add records a problem of the given kind; its message is the formatted
// text alone, since it already says what is wrong.
func (ps *problems) add(pos Pos, field string, kind error, format string, args ...any) {
	ps.list = append(ps.list, &Problem{Pos: pos, Field: field, Err: &kindError{kind: kind, msg: fmt.Sprintf(format, args...)}})
}

// kindError is a message that matches its kind with errors.Is.
type kindError struct {
	kind error
	msg  string
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.kind }

// addErr records a problem with a prepared error.
func (ps *problems) addErr(pos Pos, field string, err error) {
	ps.list = append(ps.list, &Problem{Pos: pos, Field: field, Err: err})
}

// covers reports whether a problem was recorded for field or for a field
// that contains it.
func (ps *problems) covers(field string) bool {
	for _, p := range ps.list {
		if p.Field == field || strings.HasPrefix(field, p.Field+".") || strings.HasPrefix(field, p.Field+"[") {
			return true
		}
	}
	return false
}

// sorted returns the problems sorted by position; nil when there are
// none.
func (ps *problems) sorted() []*Problem {
	if len(ps.list) == 0 {
		return nil
	}
	list := slices.Clone(ps.list)
	slices.SortStableFunc(list, func(a, b *Problem) int {
		if a.Pos.Line != b.Pos.Line {
			return a.Pos.Line - b.Pos.Line
		}
		return a.Pos.Column - b.Pos.Column
	})
	return list
}

// err returns nil or a *ConfigError with the problems sorted by position
// (stable, so problems on one line keep the order they were found in).
func (ps *problems) err() error {
	if len(ps.list) == 0 {
		return nil
	}
	list := slices.Clone(ps.list)
	slices.SortStableFunc(list, func(a, b *Problem) int {
		if a.Pos.Line != b.Pos.Line {
			return a.Pos.Line - b.Pos.Line
		}
		return a.Pos.Column - b.Pos.Column
	})
	return &ConfigError{Problems: list}
}

// StepError reports a step of a pipeline run that failed.
type StepError struct {
	// Pipeline is the pipeline's name.
	Pipeline string
	// Step is the failed step's name.
	Step string
	// Err is the step's error, worded as the engine words it: a built-in
	// step's own text, "remote step execute: ..." for a plugin step, a
	// template error.
	Err error

	suffix string // the compensation outcome, with on_error: compensate
	cause  error  // why the run's context ended, when it had
}

// Error returns `step "publish" failed: <cause>`, followed by
// " (compensation executed)" or " (compensation also failed: <error>)"
// when the pipeline compensated.
func (e *StepError) Error() string {
	return fmt.Sprintf("step %q failed: %v%s", e.Step, e.Err, e.suffix)
}

// Unwrap returns ErrStepFailed and the cause.
func (e *StepError) Unwrap() []error {
	if e.cause != nil {
		return []error{ErrStepFailed, e.Err, e.cause}
	}
	return []error{ErrStepFailed, e.Err}
}

// WorkflowError is a failed run as TriggerWorkflow reports it to the
// trigger: its text is the engine's (engine-pipelines.md §4.7), so that
// logs and dead-letter headers read the same under both hosts.
type WorkflowError struct {
	// Pipeline is the pipeline's name.
	Pipeline string
	// Err is the executor's error: a *StepError, a cancelled run, a jump
	// to an unknown step.
	Err error
}

// Error returns `workflow execution failed: pipeline "orders" execution
// failed: step "publish" failed: <cause>`.
func (e *WorkflowError) Error() string {
	return fmt.Sprintf("workflow execution failed: pipeline %q execution failed: %v", e.Pipeline, e.Err)
}

// Unwrap returns the executor's error.
func (e *WorkflowError) Unwrap() error { return e.Err }
