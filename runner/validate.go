package runner

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/proto"

	pluginv1 "github.com/wfeventbus/eventbus/gen/workflow/plugin/v1"
	"github.com/wfeventbus/eventbus/internal/envref"
	"github.com/wfeventbus/eventbus/internal/protomap"
	"github.com/wfeventbus/eventbus/wfplugin"
)

// Validate checks cfg against what the plugin declares and the engine's
// rules, and reports every problem at once in a *ConfigError, each with
// file, line and field:
//
//   - module, step and trigger types that do not exist (a step type the
//     engine has and the runner does not is named as such);
//   - build errors of built-in steps, in the engine's words;
//   - configs that do not fit the plugin's typed contracts; a template
//     ("{{ ... }}" or "${ ... }") in a step config counts as a valid value
//     for any field, since it is resolved before each run; module and
//     trigger configs are never resolved, so there it must fit as written;
//   - templates that do not parse, functions the engine lacks, expression
//     blocks with syntax errors;
//   - dependsOn entries and module references (Catalog.ModuleRefKeys)
//     that name no module; top-level triggers whose workflowType names no
//     pipeline; module names declared twice; dependsOn cycles.
//
// What the engine accepts but is likely a mistake (duplicate or missing
// step names, a ${NAME} left unexpanded, an expression that reads like an
// environment variable, a key a built-in step ignores) is appended to
// cfg.Warnings. A pipeline without a trigger is valid, as in the engine.
func Validate(cfg *Config, cat Catalog) error {
	v := &validator{cfg: cfg, cat: cat, messages: newMessages(cat.Contracts), tmpl: newTemplates(time.Now, nil, nil)}
	v.run()
	cfg.Warnings = append(cfg.Warnings, v.warnings.sorted()...)
	return v.problems.err()
}

type validator struct {
	cfg      *Config
	cat      Catalog
	problems problems
	warnings problems
	modules  map[string]*Module
	messages *messages
	tmpl     *templates
}

func (v *validator) run() {
	v.modules = map[string]*Module{}
	for i := range v.cfg.Modules {
		v.module(i)
	}
	v.cycles()
	pipelines := map[string]bool{}
	for i := range v.cfg.Pipelines {
		pipelines[v.cfg.Pipelines[i].Name] = true
		v.pipeline(&v.cfg.Pipelines[i])
	}
	for i := range v.cfg.Triggers {
		v.topTrigger(&v.cfg.Triggers[i], pipelines)
	}
}

// entryPos returns the position of a field of an entry: where its value
// (or key) is written, or the entry's own position.
func (v *validator) entryPos(src *mapSrc, entry Pos, key string) Pos {
	if src != nil {
		if k, val := lookup(src.node, key); k != nil {
			if val != nil && deref(val).Kind == yaml.ScalarNode {
				return v.nodePos(val)
			}
			return v.nodePos(k)
		}
	}
	if entry.File == "" {
		entry.File = v.cfg.File
	}
	return entry
}

func (v *validator) nodePos(n *yaml.Node) Pos {
	return Pos{File: v.cfg.File, Line: n.Line, Column: n.Column}
}

// configPos returns the position of the value at rel (a path such as
// "headers.x-id" or "messages[2].subject") inside an entry's config.
func (v *validator) configPos(src *mapSrc, entry Pos, rel string) Pos {
	if src == nil || src.config == nil {
		return v.entryPos(src, entry, "config")
	}
	if n := locate(src.config, rel); n != nil {
		return v.nodePos(n)
	}
	return v.nodePos(src.config)
}

func srcPath(src *mapSrc, fallback string) string {
	if src != nil {
		return src.path
	}
	return fallback
}

func (v *validator) module(i int) {
	m := &v.cfg.Modules[i]
	path := srcPath(m.src, fmt.Sprintf("modules[%d]", i))
	switch {
	case m.Name == "":
		v.problems.add(v.entryPos(m.src, m.Pos, "name"), path+".name", ErrMissingField, "a module needs a name")
	case v.modules[m.Name] != nil:
		first := v.modules[m.Name]
		v.problems.add(v.entryPos(m.src, m.Pos, "name"), path+".name", ErrDuplicate, "module %q is declared twice (first at %s)", m.Name, first.Pos)
	default:
		v.modules[m.Name] = m
	}
	cfg := m.Config
	if v.cat.EnvDefaults {
		cfg = v.pluginDefaults(cfg)
	}
	before := len(v.problems.list)
	switch {
	case m.Type == "":
		v.problems.add(v.entryPos(m.src, m.Pos, "type"), path+".type", ErrMissingField, "a module needs a type")
	case m.Type == ModuleConfigProvider:
	case !slices.Contains(v.cat.ModuleTypes, m.Type):
		v.problems.add(v.entryPos(m.src, m.Pos, "type"), path+".type", ErrUnknownType, "unknown module type %q%s", m.Type, hint(v.cat.ModuleTypes, m.Type))
	default:
		v.contract(pluginv1.ContractKind_CONTRACT_KIND_MODULE, m.Type, cfg, m.src, m.Pos, path, "", false)
		v.pluginValues(cfg, m.src, m.Pos, path, "")
	}
	v.unresolved(m, path, before)
	v.refs(m.Config, m.src, m.Pos, path)
	for j, dep := range m.DependsOn {
		field := fmt.Sprintf("%s.dependsOn[%d]", path, j)
		pos := v.listPos(m.src, m.Pos, "dependsOn", j)
		switch {
		case dep == m.Name:
			v.warnings.add(pos, field, ErrDependencyCycle, "module %q depends on itself; the engine drops the entry", dep)
		case !v.declared(dep):
			v.problems.add(pos, field, ErrUnknownReference, "no module named %q is declared%s", dep, hint(v.moduleNames(), dep))
		}
	}
}

// listPos is the position of element j of the list under key.
func (v *validator) listPos(src *mapSrc, entry Pos, key string, j int) Pos {
	if src != nil {
		if _, val := lookup(src.node, key); val != nil {
			if l := deref(val); l.Kind == yaml.SequenceNode && j < len(l.Content) {
				return v.nodePos(l.Content[j])
			}
		}
	}
	return v.entryPos(src, entry, key)
}

func (v *validator) declared(name string) bool {
	for i := range v.cfg.Modules {
		if v.cfg.Modules[i].Name == name {
			return true
		}
	}
	return false
}

func (v *validator) moduleNames() []string {
	names := make([]string, 0, len(v.cfg.Modules))
	for i := range v.cfg.Modules {
		if n := v.cfg.Modules[i].Name; n != "" && !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	return names
}

// cycles reports each dependsOn cycle once.
func (v *validator) cycles() {
	const (
		unseen = iota
		active
		done
	)
	state := map[string]int{}
	var stack []string
	var visit func(name string)
	visit = func(name string) {
		state[name] = active
		stack = append(stack, name)
		m := v.modules[name]
		for j, dep := range m.DependsOn {
			if dep == name || v.modules[dep] == nil {
				continue
			}
			switch state[dep] {
			case unseen:
				visit(dep)
			case active:
				start := slices.Index(stack, dep)
				cycle := append(slices.Clone(stack[start:]), dep)
				path := srcPath(m.src, "modules")
				v.problems.add(v.listPos(m.src, m.Pos, "dependsOn", j), fmt.Sprintf("%s.dependsOn[%d]", path, j), ErrDependencyCycle,
					"modules depend on each other in a cycle: %s", strings.Join(cycle, " -> "))
			}
		}
		stack = stack[:len(stack)-1]
		state[name] = done
	}
	for i := range v.cfg.Modules {
		name := v.cfg.Modules[i].Name
		if v.modules[name] == &v.cfg.Modules[i] && state[name] == unseen {
			visit(name)
		}
	}
}

func (v *validator) pipeline(pl *Pipeline) {
	path := srcPath(pl.src, "pipelines"+pathKey(pl.Name))
	pos := pl.Pos
	if pos.File == "" {
		pos.File = v.cfg.File
	}
	if pl.Name == "" {
		v.problems.add(pos, path, ErrMissingField, "a pipeline needs a name")
	}
	if t := pl.Trigger; t != nil {
		tpath := srcPath(t.src, path+".trigger")
		if pl.Name != "" && !validWorkflowType(pl.Name) {
			v.problems.add(pos, path, ErrInvalidValue, "a pipeline with a trigger needs a name without spaces or control characters (it becomes the workflow type %q)", "pipeline:"+pl.Name)
		}
		switch {
		case t.Type == "":
			v.problems.add(v.entryPos(t.src, t.Pos, "type"), tpath+".type", ErrMissingField, "a trigger needs a type")
		case !slices.Contains(v.cat.TriggerTypes, t.Type):
			v.problems.add(v.entryPos(t.src, t.Pos, "type"), tpath+".type", ErrUnknownType, "unknown trigger type %q%s", t.Type, hint(v.cat.TriggerTypes, t.Type))
		default:
			v.contract(pluginv1.ContractKind_CONTRACT_KIND_TRIGGER, t.Type, t.Config, t.src, t.Pos, tpath, "", false)
			v.pluginValues(t.Config, t.src, t.Pos, tpath, "")
		}
		v.refs(t.Config, t.src, t.Pos, tpath)
	}
	names := map[string]*Step{}
	for i := range pl.Steps {
		v.step(&pl.Steps[i], fmt.Sprintf("%s.steps[%d]", path, i), names)
	}
	for i := range pl.Compensation {
		v.step(&pl.Compensation[i], fmt.Sprintf("%s.compensation[%d]", path, i), names)
	}
}

// validWorkflowType applies the engine's rule for workflowType: no
// whitespace or control characters.
func validWorkflowType(name string) bool {
	return !strings.ContainsFunc(name, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) })
}

func (v *validator) step(s *Step, fallback string, names map[string]*Step) {
	path := srcPath(s.src, fallback)
	switch {
	case s.Name == "":
		v.warnings.add(v.entryPos(s.src, s.Pos, "name"), path+".name", ErrMissingField, "a step without a name cannot be read as steps.<name> or routed to")
	case names[s.Name] != nil:
		v.warnings.add(v.entryPos(s.src, s.Pos, "name"), path+".name", ErrDuplicate, "step %q is declared twice in this pipeline (first at %s); the later one overwrites steps.%s and takes the routes", s.Name, names[s.Name].Pos, s.Name)
	default:
		names[s.Name] = s
	}
	if s.Type == "" {
		v.problems.add(v.entryPos(s.src, s.Pos, "type"), path+".type", ErrMissingField, "unknown step type: (a step needs a type)")
		return
	}
	b := &builder{pluginTypes: v.cat.StepTypes, pipelines: v.pipelineNames()}
	b.onPlugin = func(typ string, cfg map[string]any, rel string) {
		v.contract(pluginv1.ContractKind_CONTRACT_KIND_STEP, typ, cfg, s.src, s.Pos, path, rel, true)
		v.pluginValues(cfg, s.src, s.Pos, path, rel)
	}
	if _, err := b.build(s.Name, s.Type, s.Config); err != nil {
		own := isBuiltinStep(s.Type) || slices.Contains(v.cat.StepTypes, s.Type)
		switch {
		case !own && IsEngineStepType(s.Type):
			v.problems.addErr(v.entryPos(s.src, s.Pos, "type"), path+".type", &kindError{kind: ErrUnsupported, msg: err.Error()})
		case !own:
			known := slices.Concat(BuiltinStepTypes(), v.cat.StepTypes)
			v.problems.add(v.entryPos(s.src, s.Pos, "type"), path+".type", ErrUnknownType, "%v%s", err, hint(known, s.Type))
		default:
			v.problems.addErr(v.entryPos(s.src, s.Pos, "config"), path+".config", &kindError{kind: ErrInvalidValue, msg: err.Error()})
		}
	}
	if known := BuiltinStepFields(s.Type); known != nil {
		for _, k := range slices.Sorted(maps.Keys(s.Config)) {
			if strings.HasPrefix(k, "_") || slices.Contains(known, k) {
				continue
			}
			msg := fmt.Sprintf("%q is not a field of %s; the engine ignores it", k, s.Type)
			if near := suggest(known, k); near != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", near)
			} else {
				msg += " (fields: " + strings.Join(known, ", ") + ")"
			}
			v.warnings.add(v.configPos(s.src, s.Pos, pathKeyRel(k)), path+".config"+pathKey(k), ErrUnknownField, "%s", msg)
		}
	}
	v.refs(s.Config, s.src, s.Pos, path)
	if fields, ok := templatedFields()[s.Type]; ok {
		for _, k := range fields {
			if val, ok := s.Config[k]; ok {
				v.templates(val, pathKeyRel(k), s, path)
			}
		}
		if cond, ok := s.Config["if"].(string); ok && s.Type == "step.conditional" {
			if err := checkCondition(cond, v); err != nil {
				v.problems.add(v.configPos(s.src, s.Pos, "if"), path+".config.if", ErrInvalidValue, "%v", err)
			}
		}
	} else {
		v.templates(s.Config, "", s, path)
	}
	for _, cond := range []struct{ key, text string }{{"if", s.If}, {"skip_if", s.SkipIf}} {
		if err := v.checkTemplate(cond.text); err != nil {
			v.problems.add(v.entryPos(s.src, s.Pos, cond.key), path+"."+cond.key, ErrInvalidValue, "%v", err)
		}
	}
}

// templatedFields are the config fields each built-in step resolves as
// templates (engine-pipelines.md §3); the others are used as written.
func templatedFields() map[string][]string {
	return map[string][]string{
		"step.set":                {"values"},
		"step.log":                {"message"},
		"step.validate":           nil,
		"step.conditional":        {"field"},
		"step.transform":          nil,
		"step.json_parse":         nil,
		"step.foreach":            nil,
		"step.parallel":           nil,
		"step.branch":             {"field"},
		"step.retry_with_backoff": nil,
		"step.http_call":          {"url", "headers", "body"},
		"step.json_response":      {"body"},
		"step.response":           {"body"},
		"step.pipeline_output":    {"values"},
		"step.workflow_call":      {"workflow", "input"},
		"step.publish":            nil,
		"step.event_publish":      nil,
	}
}

// checkCondition checks step.conditional's if: a {{ }} comparison is an
// expression, anything else a template.
func checkCondition(cond string, v *validator) error {
	t := strings.TrimSpace(cond)
	if strings.HasPrefix(t, "{{") && strings.HasSuffix(t, "}}") {
		inner := strings.TrimSpace(t[2 : len(t)-2])
		if comparison.MatchString(inner) {
			src := leadingDot.ReplaceAllString(inner, "$1$2")
			if err := checkExpr(src); err != nil {
				return fmt.Errorf("expr compile error in %q: %v", src, err)
			}
			return nil
		}
	}
	return v.checkTemplate(cond)
}

func (v *validator) pipelineNames() map[string]bool {
	names := map[string]bool{}
	for i := range v.cfg.Pipelines {
		names[v.cfg.Pipelines[i].Name] = true
	}
	return names
}

// checkTemplate reports whether a string resolves as a template: its
// expression blocks compile and its Go template parses.
func (v *validator) checkTemplate(s string) error {
	for _, m := range exprBlock.FindAllStringSubmatch(s, -1) {
		src := strings.TrimSpace(m[1])
		if err := checkExpr(src); err != nil {
			return fmt.Errorf("expr compile error in %q: %v", src, err)
		}
	}
	text := exprBlock.ReplaceAllString(s, "")
	if !strings.Contains(text, "{{") {
		return nil
	}
	if _, err := v.tmpl.parse(text, false); err != nil {
		return fmt.Errorf("template parse error: %v", err)
	}
	return nil
}

// envLike matches an expression block that reads like an environment
// variable: ${NAME} in capitals.
var envLike = regexp.MustCompile(`^\$\{\s*(?:env:)?[A-Z][A-Z0-9_]*\s*\}$`)

// templates reports strings of a step config that do not resolve, and
// expression blocks that look like environment variables, which the
// engine never expands in step configs.
func (v *validator) templates(val any, rel string, s *Step, path string) {
	switch val := val.(type) {
	case string:
		if err := v.checkTemplate(val); err != nil {
			v.problems.add(v.configPos(s.src, s.Pos, rel), joinRel(path+".config", rel), ErrInvalidValue, "%v", err)
		}
		for _, m := range exprBlock.FindAllString(val, -1) {
			if envLike.MatchString(m) {
				v.warnings.add(v.configPos(s.src, s.Pos, rel), joinRel(path+".config", rel), ErrUnsupported,
					"%s is an expression here, not an environment variable: step configs are never env-expanded, so it renders as the data key of that name, or empty", m)
			}
		}
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(val)) {
			v.templates(val[k], relJoin(rel, pathKeyRel(k)), s, path)
		}
	case []any:
		for i, e := range val {
			v.templates(e, fmt.Sprintf("%s[%d]", rel, i), s, path)
		}
	}
}

// pluginValues reports values of a plugin config that cannot travel in a
// google.protobuf.Struct: an unquoted date, which YAML reads as a time.
func (v *validator) pluginValues(val any, src *mapSrc, entry Pos, path, rel string) {
	switch val := val.(type) {
	case time.Time:
		v.problems.add(v.configPos(src, entry, rel), joinRel(path+".config", rel), ErrWrongType,
			"an unquoted date is a timestamp, which cannot be sent to a plugin; quote it")
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(val)) {
			v.pluginValues(val[k], src, entry, path, relJoin(rel, pathKeyRel(k)))
		}
	case []any:
		for i, e := range val {
			v.pluginValues(e, src, entry, path, fmt.Sprintf("%s[%d]", rel, i))
		}
	}
}

// pluginDefaults resolves a module config as the eventbus plugin will
// before reading it (eventbus.ExpandEnvDefaults).
func (v *validator) pluginDefaults(cfg map[string]any) map[string]any {
	lookup := func(name string) (string, bool) {
		if v.cfg.lookupEnv == nil {
			return "", false
		}
		val, ok := v.cfg.lookupEnv(name)
		return val, ok && val != ""
	}
	out, _ := envref.Walk(cfg, func(s string) string {
		r, _ := envref.ExpandDefaults(s, lookup)
		return r
	}).(map[string]any)
	return out
}

// unresolved reports the ${...} references of a module config that the
// engine leaves as written: a warning naming the variable, and a note on
// the problems found since before whose field holds one.
func (v *validator) unresolved(m *Module, path string, before int) {
	for _, u := range m.unresolved {
		if u.ref.Default && v.cat.EnvDefaults {
			continue
		}
		field := joinRel(path+".config", u.rel)
		why := fmt.Sprintf("%s is left as written: ", u.ref.Text)
		switch {
		case u.ref.Default:
			why += "the engine does not expand shell-style defaults and this plugin does not resolve them"
		case u.ref.Name == "":
			why += "only the env scheme exists"
		default:
			why += fmt.Sprintf("%s is not set", u.ref.Name)
		}
		for _, p := range v.problems.list[before:] {
			if p.Field == field {
				p.Err = &kindError{kind: p.Err, msg: p.Err.Error() + " (" + why + ")"}
			}
		}
		v.warnings.add(v.configPos(m.src, m.Pos, u.rel), field, ErrInvalidValue, "%s", why)
	}
}

// joinRel appends a relative path ("a.b", `["x.y"]`, "[2]") to a field
// path.
func joinRel(path, rel string) string {
	switch {
	case rel == "":
		return path
	case strings.HasPrefix(rel, "["):
		return path + rel
	default:
		return path + "." + rel
	}
}

func pathKeyRel(k string) string { return strings.TrimPrefix(pathKey(k), ".") }

// refs reports reference keys whose value names no declared module.
func (v *validator) refs(cfg map[string]any, src *mapSrc, entry Pos, path string) {
	keys := v.cat.ModuleRefKeys
	if keys == nil {
		keys = DefaultModuleRefKeys()
	}
	for _, key := range keys {
		ref, ok := cfg[key].(string)
		if !ok || ref == "" || isTemplate(ref) || v.declared(ref) {
			continue
		}
		v.problems.add(v.configPos(src, entry, pathKeyRel(key)), path+".config"+pathKey(key), ErrUnknownReference,
			"%s %q names no module of this app%s", key, ref, hint(v.moduleNames(), ref))
	}
}

func (v *validator) topTrigger(t *Trigger, pipelines map[string]bool) {
	path := srcPath(t.src, "triggers"+pathKey(t.Type))
	pos := t.Pos
	if pos.File == "" {
		pos.File = v.cfg.File
	}
	if !slices.Contains(v.cat.TriggerTypes, t.Type) {
		v.problems.add(pos, path, ErrUnknownType, "unknown trigger type %q%s", t.Type, hint(v.cat.TriggerTypes, t.Type))
	} else {
		cfg := maps.Clone(t.Config)
		delete(cfg, "workflowType")
		v.contract(pluginv1.ContractKind_CONTRACT_KIND_TRIGGER, t.Type, cfg, t.src, t.Pos, path, "", false)
		v.pluginValues(cfg, t.src, t.Pos, path, "")
	}
	v.refs(t.Config, t.src, t.Pos, path)
	wt, _ := t.Config["workflowType"].(string)
	switch {
	case wt == "":
		v.problems.add(pos, path+".workflowType", ErrMissingField, "a top-level trigger needs workflowType: the pipeline it fires (pipeline:<name>)")
	case !pipelines[strings.TrimPrefix(wt, "pipeline:")]:
		v.problems.add(v.configPos(t.src, t.Pos, "workflowType"), path+".workflowType", ErrUnknownReference, "workflowType %q names no pipeline of this app", wt)
	default:
		for i := range v.cfg.Pipelines {
			pl := &v.cfg.Pipelines[i]
			if pl.Trigger != nil && pl.Trigger.Type == t.Type && pl.Name == strings.TrimPrefix(wt, "pipeline:") {
				v.problems.add(v.configPos(t.src, t.Pos, "workflowType"), path+".workflowType", ErrDuplicate,
					"pipeline %s already has a %s trigger; a workflow takes one trigger of a type", pl.Name, t.Type)
			}
		}
	}
}

// contract checks a config against the typed contract of its type, if the
// plugin declares one in a typed mode.
// rel is the config's path below the entry's config ("" for the entry's
// own config; a sub-step's config otherwise).
func (v *validator) contract(kind pluginv1.ContractKind, typ string, cfg map[string]any, src *mapSrc, entry Pos, path, rel string, templates bool) {
	reg := v.cat.Contracts
	if reg == nil {
		return
	}
	c, ok := reg.Contract(kind, typ)
	if !ok || c.GetConfigMessage() == "" {
		return
	}
	mode := c.GetMode()
	if mode != pluginv1.ContractMode_CONTRACT_MODE_PROTO_WITH_LEGACY_STRUCT && mode != pluginv1.ContractMode_CONTRACT_MODE_STRICT_PROTO {
		return
	}
	msg, err := v.messages.newMessage(c.GetConfigMessage())
	if err != nil {
		return
	}
	var opts []protomap.Option
	if templates {
		opts = append(opts, protomap.AllowTemplates())
	}
	fieldErrs, err := decodeFields(cfg, msg, opts)
	if err != nil {
		v.problems.add(v.configPos(src, entry, rel), joinRel(path+".config", rel), ErrInvalidValue, "cannot check the config against %s: %v", c.GetConfigMessage(), err)
		return
	}
	for _, fe := range fieldErrs {
		var err error = fe.Err
		if s, ok := cfg[fe.Path].(string); ok && !templates && isTemplate(s) {
			err = fmt.Errorf("%w (templates are rendered in step configs only)", err)
		}
		v.problems.addErr(v.configPos(src, entry, relJoin(rel, fe.Path)), joinRel(path+".config", relJoin(rel, fe.Path)), &contractError{kind: contractKind(fe.Err), err: err})
	}
	if len(fieldErrs) > 0 || mode != pluginv1.ContractMode_CONTRACT_MODE_STRICT_PROTO {
		return
	}
	// In strict mode the engine itself encodes the raw config, more
	// strictly than the plugin decodes it.
	raw := maps.Clone(cfg)
	if templates {
		maps.DeleteFunc(raw, func(_ string, val any) bool { s, ok := val.(string); return ok && isTemplate(s) })
		maps.DeleteFunc(raw, func(_ string, val any) bool { _, ok := val.(time.Time); return ok })
	}
	if _, err := reg.EncodeConfig(c.GetConfigMessage(), raw); err != nil {
		var ee *wfplugin.EncodeError
		fld, reason, sentinel := "", err.Error(), ErrInvalidValue
		if errors.As(err, &ee) {
			fld, reason = pathKeyRel(ee.Field), ee.Reason
			if ee.Field == "" {
				fld = ""
			}
			if ee.Reason == "unknown field" {
				sentinel = ErrUnknownField
			}
		}
		v.problems.addErr(v.configPos(src, entry, relJoin(rel, fld)), joinRel(path+".config", relJoin(rel, fld)),
			&contractError{kind: sentinel, err: fmt.Errorf("the engine cannot encode it as %s: %s", c.GetConfigMessage(), reason)})
	}
}

// decodeFields decodes cfg into msg and returns the field problems. A
// panic of the decoder is returned as an error, so that one odd contract
// cannot take validation down.
func decodeFields(cfg map[string]any, msg proto.Message, opts []protomap.Option) (fes []*protomap.FieldError, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("decoder failed: %v", p)
		}
	}()
	return protomap.FieldErrors(protomap.Decode(cfg, msg, opts...)), nil
}

// contractKind maps a protomap error to the runner's error.
func contractKind(err error) error {
	switch {
	case errors.Is(err, protomap.ErrUnknownField):
		return ErrUnknownField
	case errors.Is(err, protomap.ErrDuplicateField):
		return ErrDuplicate
	case errors.Is(err, protomap.ErrWrongType):
		return ErrWrongType
	default:
		return ErrInvalidValue
	}
}

// contractError is a problem found by a typed contract: its text, matched
// with errors.Is as the runner's error of its kind.
type contractError struct {
	kind error
	err  error
}

func (e *contractError) Error() string   { return e.err.Error() }
func (e *contractError) Unwrap() []error { return []error{e.kind, e.err} }

// hint suggests the closest known name, or lists the known names when
// there are few.
func hint(known []string, s string) string {
	if near := suggest(known, s); near != "" {
		return fmt.Sprintf(" (did you mean %q?)", near)
	}
	switch {
	case len(known) == 0:
		return " (none is declared)"
	case len(known) <= 12:
		quoted := make([]string, len(known))
		for i, k := range known {
			quoted[i] = strconv.Quote(k)
		}
		return " (known: " + strings.Join(quoted, ", ") + ")"
	}
	return ""
}

// locate finds the node at rel (".a.b", `["x.y"]`, "[2]" segments, with
// or without the leading dot) below n; nil if the path leaves the YAML.
// For a mapping key the key's node is returned, so a problem with a whole
// nested value points at its key.
func locate(n *yaml.Node, rel string) *yaml.Node {
	cur := deref(n)
	var found *yaml.Node
	for rel != "" {
		var key string
		index := -1
		switch {
		case strings.HasPrefix(rel, "["):
			end := strings.IndexByte(rel, ']')
			if strings.HasPrefix(rel, `["`) {
				q, err := strconv.QuotedPrefix(rel[1:])
				if err != nil {
					return found
				}
				key, _ = strconv.Unquote(q)
				end = 1 + len(q)
				if end >= len(rel) || rel[end] != ']' {
					return found
				}
			} else {
				if end < 0 {
					return found
				}
				i, err := strconv.Atoi(rel[1:end])
				if err != nil {
					return found
				}
				index = i
			}
			rel = rel[end+1:]
		default:
			rel = strings.TrimPrefix(rel, ".")
			end := strings.IndexAny(rel, ".[")
			if end < 0 {
				end = len(rel)
			}
			key, rel = rel[:end], rel[end:]
		}
		if cur == nil {
			return found
		}
		if index >= 0 {
			if cur.Kind != yaml.SequenceNode || index >= len(cur.Content) {
				return found
			}
			found = cur.Content[index]
			cur = deref(found)
			continue
		}
		k, val := lookup(cur, key)
		if k == nil {
			return found
		}
		found, cur = k, deref(val)
		if cur != nil && cur.Kind == yaml.ScalarNode {
			found = val
		}
	}
	return found
}

// describeValue names the kind of a config value, for messages.
func describeValue(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case string:
		return "string " + strconv.Quote(v)
	case bool:
		return strconv.FormatBool(v)
	case map[string]any:
		return "a map"
	case []any:
		return "a list"
	default:
		return "number " + fmt.Sprint(v)
	}
}
