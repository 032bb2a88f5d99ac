package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/wfeventbus/eventbus/wfplugin"
)

// Prepare checks cfg and creates its modules, steps and triggers in p in
// the engine's order, without starting any: CreateModule for every module
// (dependencies first), InitModule for each, CreateTrigger for the
// top-level triggers, then per pipeline CreateStep for each plugin step and
// CreateTrigger for its trigger. Start then only starts them.
//
// The plugin checks each config when it is created or initialised, so
// Prepare finds every problem that would stop the app without starting
// anything: those Validate finds and those the plugin answers with, all at
// once, in a *ConfigError, each with the file, line and field of its
// config. A host checks an app this way without running it (eventbus
// validate) and runs it this way (eventbus run), so both find the same
// problems. Warnings, the plugin's among them (WithPluginWarnings), are
// added to cfg.Warnings and logged.
//
// The plugin's instances of a config with problems are left created and
// unstarted; close the plugin. An error that is no config problem (the
// plugin process died, ctx ended) matches ErrLifecycle.
func Prepare(ctx context.Context, cfg *Config, p Plugin, logger *slog.Logger, opts ...Option) (*Runner, error) {
	return prepare(ctx, cfg, &problems{}, p, logger, opts)
}

// PrepareFile reads the app config at path (see Parse) and prepares it
// (see Prepare): problems of the file's shape are reported with the
// others.
func PrepareFile(ctx context.Context, path string, lookupEnv LookupEnv, p Plugin, logger *slog.Logger, opts ...Option) (*Runner, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("runner: read app config: %w", err)
	}
	cfg, parsed, ok := parseConfig(path, data, lookupEnv)
	if !ok {
		return nil, parsed.problems.err()
	}
	if abs, err := filepath.Abs(path); err == nil {
		cfg.Dir = filepath.Dir(abs)
	}
	cfg.Warnings = parsed.warnings.list
	return prepare(ctx, cfg, &parsed.problems, p, logger, opts)
}

func prepare(ctx context.Context, cfg *Config, found *problems, p Plugin, logger *slog.Logger, opts []Option) (*Runner, error) {
	r, cat, err := newRunner(cfg, p, logger, opts)
	if err != nil {
		return nil, err
	}
	var ce *ConfigError
	if err := Validate(cfg, cat); errors.As(err, &ce) {
		for _, vp := range ce.Problems {
			if !found.covers(vp.Field) {
				found.list = append(found.list, vp)
			}
		}
	} else if err != nil {
		return nil, err
	}
	static := len(found.list)
	for i := range cfg.Pipelines {
		// A step that does not build is one of the problems Validate
		// found; the others are created all the same.
		rt, _ := r.buildPipeline(&cfg.Pipelines[i], cat)
		r.pipelines[cfg.Pipelines[i].Name] = rt
	}
	warnings := &problems{list: cfg.Warnings}
	if err := r.create(ctx, found, warnings); err != nil {
		return nil, err
	}
	cfg.Warnings = warnings.sorted()
	if len(found.list) > 0 {
		ce := found.err().(*ConfigError)
		ce.Warnings = cfg.Warnings
		if static == 0 {
			r.log.Debug("the plugin refused the app config", "problems", len(found.list))
		}
		return nil, ce
	}
	if err := r.finishNew(); err != nil {
		return nil, err
	}
	r.prepared = true
	return r, nil
}

// instance is a module, step or trigger the runner creates in the plugin,
// with where its config is written, so that the plugin's problems with it
// can name file, line and field.
type instance struct {
	// what names it in messages: "module orders (eventbus.stream)".
	what string
	pos  Pos
	src  *mapSrc
	// path is the field path of its entry: "modules[1]",
	// "pipelines.orders.steps[0]".
	path string
	// rel is the path of its config below the entry's config: "" for the
	// entry's own, a sub-step's path otherwise.
	rel string
	// unresolved are the ${...} references of a module config left as
	// written.
	unresolved []unresolvedRef
}

// configField matches a line of a plugin's answer that names the field it
// is about: "config.batch_size: ...", "config.messages[0].subject: ...",
// `config.headers["a b"]: ...`, "config: ...".
var configField = regexp.MustCompile(`^config((?:\.[A-Za-z0-9_-]+|\[[0-9]+\]|\["(?:[^"\\]|\\.)*"\])*): (.*)$`)

// pluginProblems turns the plugin's answer to a create or init call of in
// into problems: one per line of its text, at the field the line names,
// else at the entry.
func (r *Runner) pluginProblems(in *instance, err error) []*Problem {
	text := err.Error()
	var remote *wfplugin.RemoteError
	if errors.As(err, &remote) {
		text = remote.Detail
	}
	var out []*Problem
	for _, line := range strings.Split(text, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		out = append(out, r.instanceProblem(in, line, kindOf))
	}
	return out
}

// instanceProblem places one line of the plugin's about in: at the field
// it names, with a note on a ${...} reference left in that field's value.
func (r *Runner) instanceProblem(in *instance, line string, kind func(string) error) *Problem {
	v := &validator{cfg: r.cfg}
	field, pos, msg := in.path, in.pos, line
	if pos.File == "" {
		pos.File = r.cfg.File
	}
	if m := configField.FindStringSubmatch(line); m != nil {
		rel := relJoin(in.rel, strings.TrimPrefix(m[1], "."))
		field, pos, msg = joinRel(in.path+".config", rel), v.configPos(in.src, in.pos, rel), m[2]
		for _, u := range in.unresolved {
			if u.rel == strings.TrimPrefix(m[1], ".") && u.ref.Name != "" && !u.ref.Default {
				msg += fmt.Sprintf(" (%s is left as written: %s is not set)", u.ref.Text, u.ref.Name)
			}
		}
	} else {
		msg += unsetNote(in.unresolved)
	}
	return &Problem{Pos: pos, Field: field, Err: &kindError{kind: kind(msg), msg: in.what + ": " + msg}}
}

// kindOf reads the kind of a plugin's problem from the words it begins
// with, which the eventbus plugin and the decoder of typed configs use.
func kindOf(msg string) error {
	switch {
	case strings.HasPrefix(msg, "unknown reference"):
		return ErrUnknownReference
	case strings.HasPrefix(msg, "unknown field"):
		return ErrUnknownField
	case strings.HasPrefix(msg, "wrong type"):
		return ErrWrongType
	case strings.HasPrefix(msg, "duplicate"):
		return ErrDuplicate
	case strings.HasPrefix(msg, "required"):
		return ErrMissingField
	}
	return ErrInvalidValue
}

// warningKind is the kind of every warning of a plugin.
func warningKind(string) error { return ErrInvalidValue }

// takeWarnings places the warnings the plugin reported while creating or
// initialising in.
func (r *Runner) takeWarnings(in *instance, warnings *problems) {
	if r.opts.pluginWarnings == nil {
		return
	}
	for _, w := range r.opts.pluginWarnings() {
		line := w.Message
		if w.Field != "" {
			line = w.Field + ": " + w.Message
		}
		warnings.list = append(warnings.list, r.instanceProblem(in, line, warningKind))
	}
}

// fatal reports whether a failed plugin call says nothing about the
// config: the plugin is gone, or ctx ended.
func fatal(ctx context.Context, err error) bool {
	return ctx.Err() != nil || errors.Is(err, wfplugin.ErrClosed) || errors.Is(err, wfplugin.ErrPluginExited)
}

// create makes the plugin's create and init calls of the app in the
// engine's order (see Prepare), recording every refusal in found and every
// warning in warnings. Instances whose type or name Validate found wrong
// are not created. It returns an error only when the plugin cannot be
// asked any more.
func (r *Runner) create(ctx context.Context, found, warnings *problems) error {
	v := &validator{cfg: r.cfg}
	cat := r.plugin.Catalog()
	record := func(in *instance, err error) error {
		if fatal(ctx, err) {
			return &LifecycleError{Op: "create", What: in.what, Pos: in.pos, Err: err}
		}
		for _, p := range r.pluginProblems(in, err) {
			if !found.covers(p.Field) {
				found.list = append(found.list, p)
			}
		}
		return nil
	}
	index := make(map[*Module]int, len(r.cfg.Modules))
	for i := range r.cfg.Modules {
		index[&r.cfg.Modules[i]] = i
	}
	created := map[string]bool{}
	type moduleInstance struct {
		in *instance
		h  *handle
	}
	var mods []moduleInstance
	for _, m := range moduleOrder(r.cfg.Modules) {
		if m.Type == ModuleConfigProvider || m.Name == "" || created[m.Name] || !contains(cat.ModuleTypes, m.Type) {
			continue // the runner's own, or a problem Validate reported
		}
		created[m.Name] = true
		in := &instance{what: fmt.Sprintf("module %s (%s)", m.Name, m.Type), pos: v.entryPos(m.src, m.Pos, ""), src: m.src, path: srcPath(m.src, fmt.Sprintf("modules[%d]", index[m])), unresolved: r.unsetRefs(m, cat)}
		id, err := r.plugin.CreateModule(ctx, m.Type, m.Name, r.withConfigDir(m.Config))
		r.takeWarnings(in, warnings)
		if err != nil {
			if err := record(in, err); err != nil {
				return err
			}
			continue
		}
		h := &handle{what: in.what, pos: in.pos, id: id}
		r.modules = append(r.modules, h)
		mods = append(mods, moduleInstance{in, h})
	}
	for _, m := range mods {
		err := r.plugin.InitModule(ctx, m.h.id)
		r.takeWarnings(m.in, warnings)
		if err != nil {
			if err := record(m.in, err); err != nil {
				return err
			}
		}
	}
	trigger := func(typ, workflowType string, config map[string]any, in *instance) error {
		if !contains(cat.TriggerTypes, typ) || workflowType == "" || !validWorkflowType(workflowType) {
			// A problem Validate reported.
			return nil
		}
		err := r.createTrigger(ctx, typ, workflowType, config, in)
		r.takeWarnings(in, warnings)
		if err != nil {
			return record(in, err)
		}
		return nil
	}
	for i := range r.cfg.Triggers {
		t := &r.cfg.Triggers[i]
		wt, _ := t.Config["workflowType"].(string)
		path := srcPath(t.src, "triggers"+pathKey(t.Type))
		in := &instance{what: fmt.Sprintf("trigger %s (%s)", wt, t.Type), pos: v.entryPos(t.src, t.Pos, ""), src: t.src, path: path}
		if err := trigger(t.Type, wt, t.Config, in); err != nil {
			return err
		}
	}
	for i := range r.cfg.Pipelines {
		pl := &r.cfg.Pipelines[i]
		rt := r.pipelines[pl.Name]
		if rt == nil {
			continue
		}
		for _, s := range rt.plugin {
			in := &instance{what: fmt.Sprintf("step %s (%s)", s.name, s.typ), pos: v.entryPos(s.at.src, s.at.Pos, ""), src: s.at.src, path: s.path, rel: s.rel}
			id, err := r.plugin.CreateStep(ctx, s.typ, s.name, maps.Clone(s.config))
			r.takeWarnings(in, warnings)
			if err != nil {
				if err := record(in, err); err != nil {
					return err
				}
				continue
			}
			s.setHandle(id)
		}
		if t := pl.Trigger; t != nil {
			path := srcPath(t.src, srcPath(pl.src, "pipelines"+pathKey(pl.Name))+".trigger")
			in := &instance{what: fmt.Sprintf("trigger of pipeline %s (%s)", pl.Name, t.Type), pos: v.entryPos(t.src, t.Pos, ""), src: t.src, path: path}
			if err := trigger(t.Type, "pipeline:"+pl.Name, t.Config, in); err != nil {
				return err
			}
		}
	}
	return nil
}

// unsetRefs are the references of a module config that reach the plugin
// as written because their variable is not set.
func (r *Runner) unsetRefs(m *Module, cat Catalog) []unresolvedRef {
	var out []unresolvedRef
	for _, u := range m.unresolved {
		if u.ref.Default && cat.EnvDefaults {
			continue
		}
		out = append(out, u)
	}
	return out
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

// LifecycleError is a call of the app's lifecycle that the plugin failed
// for a reason other than the config: a module that did not start, a
// plugin that died. It names the call, the instance and where its config
// is written, and matches ErrLifecycle and the cause.
type LifecycleError struct {
	// Op is the call: create, init, start or stop.
	Op string
	// What names the instance: "module bus (eventbus.broker)".
	What string
	// Pos is where its config is written.
	Pos Pos
	// Err is the plugin's error.
	Err error
}

// Error returns "app.yaml:3: start module bus (eventbus.broker): <cause>",
// the cause in the plugin's own words.
func (e *LifecycleError) Error() string {
	cause := e.Err.Error()
	var remote *wfplugin.RemoteError
	if errors.As(e.Err, &remote) {
		cause = remote.Detail
	}
	msg := fmt.Sprintf("%s %s: %s", e.Op, e.What, cause)
	if s := e.Pos.String(); s != "" {
		return s + ": " + msg
	}
	return msg
}

// Unwrap returns ErrLifecycle and the cause.
func (e *LifecycleError) Unwrap() []error { return []error{ErrLifecycle, e.Err} }
