package runner

import (
	"bytes"
	"fmt"
	"log/slog"
	"maps"
	"regexp"
	"strings"
	"sync"
	"text/template"
	"time"
)

// runContext is the data of one pipeline execution, as the engine keeps it
// (engine-pipelines.md §4.1): the trigger data as it arrived, every step's
// output by step name, the merged current data, and metadata.
type runContext struct {
	trigger map[string]any
	steps   map[string]map[string]any
	current map[string]any
	meta    map[string]any
	// strict makes a missing map key a template error
	// (strict_templates); sub-contexts of foreach and parallel do not
	// inherit it.
	strict bool
}

// newRunContext starts an execution with data as trigger data: trigger
// and current are two shallow copies of it.
func newRunContext(data, meta map[string]any, strict bool) *runContext {
	return &runContext{
		trigger: cloneMap(data),
		steps:   map[string]map[string]any{},
		current: cloneMap(data),
		meta:    meta,
		strict:  strict,
	}
}

func cloneMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	maps.Copy(out, m)
	return out
}

// merge records a step's output under steps.<name> and copies its
// top-level keys over current.
func (pc *runContext) merge(name string, out map[string]any) {
	o := cloneMap(out)
	pc.steps[name] = o
	maps.Copy(pc.current, o)
}

// templateData is the dot of Go templates: current keys at the top level,
// then steps, trigger and meta, which win over current keys of the same
// name.
func (pc *runContext) templateData() map[string]any {
	data := make(map[string]any, len(pc.current)+3)
	maps.Copy(data, pc.current)
	data["steps"] = pc.steps
	data["trigger"] = pc.trigger
	data["meta"] = pc.meta
	return data
}

// templates resolves template strings as the engine does
// (engine-pipelines.md §2.2): ${ } expression blocks first, then Go
// templates with hyphenated names rewritten, missing keys rendered as
// "<no value>". Parsed templates are cached by their text when the text
// comes from the config (no expression block fed it).
type templates struct {
	funcs template.FuncMap
	expr  *exprEngine
	log   *slog.Logger
	cache sync.Map // string -> *template.Template
}

// newTemplates returns a resolver whose now function reads clock and
// whose config function reads config (nil: no config.provider). Warnings
// about missing keys go to log.
func newTemplates(clock func() time.Time, config func(string) (string, bool), log *slog.Logger) *templates {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	funcs := templateFuncs(clock, config)
	// step and trigger are bound to a run at execution; these stand-ins
	// let templates that call them parse.
	funcs["step"] = func(string, ...string) (any, error) { return nil, nil }
	funcs["trigger"] = func(...string) (any, error) { return nil, nil }
	return &templates{funcs: funcs, expr: newExprEngine(templateFuncs(clock, config)), log: log}
}

// resolve evaluates one string against a run.
func (t *templates) resolve(s string, pc *runContext) (string, error) {
	hasTmpl := strings.Contains(s, "{{")
	hasExpr := strings.Contains(s, "${")
	if !hasTmpl && !hasExpr {
		return s, nil
	}
	cacheable := true
	if hasExpr {
		var err error
		if s, err = t.expr.resolveBlocks(s, pc); err != nil {
			return "", err
		}
		cacheable = false
	}
	if !strings.Contains(s, "{{") {
		return s, nil
	}
	base, err := t.parse(s, cacheable)
	if err != nil {
		return "", &textError{msg: "template parse error: " + err.Error(), errs: []error{ErrTemplate, err}}
	}
	tmpl, err := base.Clone()
	if err != nil {
		return "", &textError{msg: "template parse error: " + err.Error(), errs: []error{ErrTemplate, err}}
	}
	tmpl.Funcs(runFuncs(pc))
	data := pc.templateData()
	var buf bytes.Buffer
	err = tmpl.Option("missingkey=error").Execute(&buf, data)
	if err != nil && !pc.strict && strings.Contains(err.Error(), "map has no entry for key") {
		pipeline := "<unknown>"
		if v, ok := pc.meta["pipeline"]; ok {
			pipeline = fmt.Sprint(v)
		}
		t.log.Warn("template resolved missing key to zero value", "pipeline", pipeline, "error", err)
		buf.Reset()
		err = tmpl.Option("missingkey=zero").Execute(&buf, data)
	}
	if err != nil {
		return "", &textError{msg: "template exec error: " + err.Error(), errs: []error{ErrTemplate, err}}
	}
	return buf.String(), nil
}

// parse parses a template string after the hyphen rewrite; the
// template's name is empty, so errors read "template: :1: ...".
func (t *templates) parse(s string, cacheable bool) (*template.Template, error) {
	if cacheable {
		if v, ok := t.cache.Load(s); ok {
			return v.(*template.Template), nil
		}
	}
	tmpl, err := template.New("").Funcs(t.funcs).Parse(rewriteHyphens(s))
	if err != nil {
		return nil, err
	}
	if cacheable {
		t.cache.Store(s, tmpl)
	}
	return tmpl, nil
}

// resolveMap resolves every string of m, at any depth, into a new map;
// other values are kept. An error names the key at each map level.
func (t *templates) resolveMap(m map[string]any, pc *runContext) (map[string]any, error) {
	out := make(map[string]any, len(m))
	for k, v := range m {
		r, err := t.resolveValue(v, pc)
		if err != nil {
			return nil, &textError{msg: fmt.Sprintf("field %q: %s", k, err), errs: []error{err}}
		}
		out[k] = r
	}
	return out, nil
}

func (t *templates) resolveValue(v any, pc *runContext) (any, error) {
	switch v := v.(type) {
	case string:
		return t.resolve(v, pc)
	case map[string]any:
		return t.resolveMap(v, pc)
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			r, err := t.resolveValue(e, pc)
			if err != nil {
				return nil, err
			}
			out[i] = r
		}
		return out, nil
	}
	return v, nil
}

// runFuncs are the step and trigger functions bound to a run
// (engine-pipelines.md §2.5): they walk nested maps by key; a missing
// step, key or non-map is nil, or an error in strict mode.
func runFuncs(pc *runContext) template.FuncMap {
	return template.FuncMap{
		"step": func(name string, keys ...string) (any, error) {
			out, ok := pc.steps[name]
			if !ok || out == nil {
				if pc.strict {
					return nil, fmt.Errorf("step %q not found in pipeline context", name)
				}
				return nil, nil
			}
			return walkKeys(out, keys, fmt.Sprintf("step %q", name), pc.strict)
		},
		"trigger": func(keys ...string) (any, error) {
			return walkKeys(pc.trigger, keys, "trigger", pc.strict)
		},
	}
}

func walkKeys(v any, keys []string, what string, strict bool) (any, error) {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			if strict {
				return nil, fmt.Errorf("%s: value at key path is not a map (cannot access key %q)", what, k)
			}
			return nil, nil
		}
		if v, ok = m[k]; !ok {
			if strict {
				return nil, fmt.Errorf("%s: key %q not found", what, k)
			}
			return nil, nil
		}
	}
	return v, nil
}

// dotChain matches a dot-access chain whose segments may hold hyphens.
var dotChain = regexp.MustCompile(`\.[a-zA-Z_][a-zA-Z0-9_-]*(?:\.[a-zA-Z_][a-zA-Z0-9_-]*)*`)

// quoted matches Go template string literals ("..." and `...`).
var quoted = regexp.MustCompile("\"(?:[^\"\\\\]|\\\\.)*\"|`[^`]*`")

// rewriteHyphens turns dot chains with a hyphenated segment inside
// template actions into index calls (engine-pipelines.md §2.2 step 4):
//
//	{{ .steps.my-step.out }}  ->  {{ (index .steps "my-step" "out") }}
//
// An action runs from "{{" to the next "}}"; string literals inside it
// are left alone, and so are actions that are only a comment. A segment
// with a hyphen is always a key, never a subtraction.
func rewriteHyphens(s string) string {
	if !strings.Contains(s, "{{") || !strings.Contains(s, "-") {
		return s
	}
	var out strings.Builder
	rest := s
	for {
		open := strings.Index(rest, "{{")
		if open < 0 {
			break
		}
		end := strings.Index(rest[open:], "}}")
		if end < 0 {
			break
		}
		end += open
		out.WriteString(rest[:open])
		out.WriteString("{{")
		out.WriteString(rewriteAction(rest[open+2 : end]))
		out.WriteString("}}")
		rest = rest[end+2:]
	}
	out.WriteString(rest)
	return out.String()
}

func rewriteAction(action string) string {
	if t := strings.TrimSpace(action); strings.HasPrefix(t, "/*") && strings.HasSuffix(t, "*/") {
		return action
	}
	// Rewrite the text between string literals only.
	var out strings.Builder
	last := 0
	for _, loc := range quoted.FindAllStringIndex(action, -1) {
		out.WriteString(dotChain.ReplaceAllStringFunc(action[last:loc[0]], indexChain))
		out.WriteString(action[loc[0]:loc[1]])
		last = loc[1]
	}
	out.WriteString(dotChain.ReplaceAllStringFunc(action[last:], indexChain))
	return out.String()
}

// indexChain rewrites one chain from its first hyphenated segment on.
func indexChain(chain string) string {
	segs := strings.Split(chain[1:], ".")
	first := -1
	for i, seg := range segs {
		if strings.Contains(seg, "-") {
			first = i
			break
		}
	}
	if first < 0 {
		return chain
	}
	prefix := "." + strings.Join(segs[:first], ".")
	var b strings.Builder
	b.WriteString("(index ")
	b.WriteString(prefix)
	for _, seg := range segs[first:] {
		b.WriteString(` "`)
		b.WriteString(seg)
		b.WriteString(`"`)
	}
	b.WriteString(")")
	return b.String()
}

// isTemplate reports whether s is resolved at run time: it holds a Go
// template action or an expression block.
func isTemplate(s string) bool {
	return strings.Contains(s, "{{") || strings.Contains(s, "${")
}

// guardTruthy is the truth of a resolved skip_if or if
// (engine-pipelines.md §2.6): falsy only when the trimmed text is "",
// "false" or "0", case-sensitively.
func guardTruthy(s string) bool {
	switch strings.TrimSpace(s) {
	case "", "false", "0":
		return false
	}
	return true
}

// conditionTruthy is the truth of step.conditional's if: falsy when the
// trimmed, lower-cased text is "", "0", "false", "no", "n", "off" or
// "<nil>".
func conditionTruthy(s string) bool {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "0", "false", "no", "n", "off", "<nil>":
		return false
	}
	return true
}

// textError has the engine's wording and still matches the errors it
// wraps with errors.Is and errors.As.
type textError struct {
	msg  string
	errs []error
}

func (e *textError) Error() string   { return e.msg }
func (e *textError) Unwrap() []error { return e.errs }
