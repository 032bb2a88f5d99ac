package runner

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"text/template"
	"text/template/parse"
	"time"

	"github.com/google/uuid"
)

// formatFunc is the function the renderer appends to every printing
// action, so that what an action prints is decided here and not by fmt:
// nothing for a missing value, integral numbers without an exponent.
const formatFunc = "_runner_format"

// runData is what a pipeline run's templates see.
type runData struct {
	trigger map[string]any
	steps   map[string]map[string]any
	current map[string]any
	meta    map[string]any
}

// templateData is the dot of every template: current keys at the top
// level, then steps, trigger and meta, which win over current keys of the
// same name.
func (d *runData) templateData() map[string]any {
	data := make(map[string]any, len(d.current)+3)
	for k, v := range d.current {
		data[k] = v
	}
	data["steps"] = d.steps
	data["trigger"] = d.trigger
	data["meta"] = d.meta
	return data
}

// renderer renders template strings of step configs. Parsed templates are
// cached by their text; the texts come from the app config, so the cache
// is bounded by its size.
type renderer struct {
	now   func() time.Time
	cache sync.Map // string -> *template.Template
}

func newRenderer(now func() time.Time) *renderer {
	return &renderer{now: now}
}

// isTemplate reports whether s holds a template action.
func isTemplate(s string) bool { return strings.Contains(s, "{{") }

// compileTemplate parses a template string the way pipelines use it:
// dotted names with hyphens (.steps.my-step.id) are rewritten to index
// calls, and every printing action ends in formatFunc.
func compileTemplate(text string) (*template.Template, error) {
	t, err := template.New("config").Funcs(baseFuncs(time.Now)).Funcs(runFuncs(&runData{}, false)).Parse(rewriteHyphens(text))
	if err != nil {
		return nil, err
	}
	for _, tt := range t.Templates() {
		if tt.Tree != nil {
			appendFormat(tt.Tree.Root)
		}
	}
	return t, nil
}

// appendFormat makes every action that prints pass its value through
// formatFunc.
func appendFormat(n parse.Node) {
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return
		}
		for _, c := range n.Nodes {
			appendFormat(c)
		}
	case *parse.ActionNode:
		if len(n.Pipe.Decl) > 0 {
			return
		}
		ident := parse.NewIdentifier(formatFunc).SetPos(n.Pos)
		n.Pipe.Cmds = append(n.Pipe.Cmds, &parse.CommandNode{NodeType: parse.NodeCommand, Pos: n.Pos, Args: []parse.Node{ident}})
	case *parse.IfNode:
		appendFormat(n.List)
		appendFormat(n.ElseList)
	case *parse.RangeNode:
		appendFormat(n.List)
		appendFormat(n.ElseList)
	case *parse.WithNode:
		appendFormat(n.List)
		appendFormat(n.ElseList)
	}
}

func (r *renderer) template(text string) (*template.Template, error) {
	if t, ok := r.cache.Load(text); ok {
		return t.(*template.Template), nil
	}
	t, err := compileTemplate(text)
	if err != nil {
		return nil, err
	}
	r.cache.Store(text, t)
	return t, nil
}

// scope is the template environment of one step execution: the dot and
// the functions bound to the run, built once for all of the step's
// strings.
type scope struct {
	r      *renderer
	data   map[string]any
	funcs  template.FuncMap
	strict bool
}

// scope prepares rendering against d. With strict set, a missing map key
// is an error.
func (r *renderer) scope(d *runData, strict bool) *scope {
	funcs := baseFuncs(r.now)
	maps.Copy(funcs, runFuncs(d, strict))
	return &scope{r: r, data: d.templateData(), funcs: funcs, strict: strict}
}

// renderString renders one template string; a string without an action
// is returned as it is.
func (s *scope) renderString(text string) (string, error) {
	if !isTemplate(text) {
		return text, nil
	}
	base, err := s.r.template(text)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrTemplate, err)
	}
	t, err := base.Clone()
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrTemplate, err)
	}
	t.Funcs(s.funcs)
	if s.strict {
		t.Option("missingkey=error")
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, s.data); err != nil {
		return "", fmt.Errorf("%w: %w", ErrTemplate, err)
	}
	return buf.String(), nil
}

// renderValue renders every template string inside v, walking maps and
// lists; other values are returned as they are. Maps and lists are
// copied, never modified.
func (s *scope) renderValue(v any, path string) (any, error) {
	switch v := v.(type) {
	case string:
		out, err := s.renderString(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return out, nil
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			re, err := s.renderValue(e, joinPath(path, k))
			if err != nil {
				return nil, err
			}
			out[k] = re
		}
		return out, nil
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			re, err := s.renderValue(e, fmt.Sprintf("%s[%d]", path, i))
			if err != nil {
				return nil, err
			}
			out[i] = re
		}
		return out, nil
	}
	return v, nil
}

// renderConfig renders a step config.
func (s *scope) renderConfig(cfg map[string]any) (map[string]any, error) {
	out, err := s.renderValue(cfg, "config")
	if err != nil {
		return nil, err
	}
	return out.(map[string]any), nil
}

// truthy is the engine's reading of a rendered condition: anything but
// "", "false" and "0".
func truthy(s string) bool {
	s = strings.TrimSpace(s)
	return s != "" && !strings.EqualFold(s, "false") && s != "0"
}

// formatValue is what an action prints for v.
func formatValue(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case float64:
		return formatFloat(v, 64)
	case float32:
		return formatFloat(float64(v), 32)
	case json.Number:
		return v.String()
	case []byte:
		return string(v)
	case error:
		return v.Error()
	case fmt.Stringer:
		return v.String()
	}
	rv := reflect.ValueOf(v)
	if (rv.Kind() == reflect.Pointer || rv.Kind() == reflect.Interface) && rv.IsNil() {
		return ""
	}
	return fmt.Sprint(v)
}

// formatFloat writes a float as JSON does: plain digits for integral
// values and ordinary magnitudes (1000000, 0.25), an exponent only for
// very large or very small ones.
func formatFloat(f float64, bits int) string {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return strconv.FormatFloat(f, 'g', -1, bits)
	}
	abs := math.Abs(f)
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		return strconv.FormatFloat(f, 'g', -1, bits)
	}
	return strconv.FormatFloat(f, 'f', -1, bits)
}

// baseFuncs are the template functions that do not depend on a run.
func baseFuncs(now func() time.Time) template.FuncMap {
	return template.FuncMap{
		formatFunc: formatValue,
		"uuid":     func() string { return uuid.NewString() },
		"uuidv4":   func() string { return uuid.NewString() },
		"now": func(layout ...string) string {
			l := time.RFC3339
			if len(layout) > 0 && layout[0] != "" {
				l = timeLayout(layout[0])
			}
			return now().UTC().Format(l)
		},
		"default": func(fallback, v any) any {
			if isEmpty(v) {
				return fallback
			}
			return v
		},
		"coalesce": func(vs ...any) any {
			for _, v := range vs {
				if !isEmpty(v) {
					return v
				}
			}
			return nil
		},
		"toJson": toJSON,
		"json":   toJSON,
		"fromJson": func(s string) (any, error) {
			var v any
			if err := json.Unmarshal([]byte(s), &v); err != nil {
				return nil, fmt.Errorf("fromJson: %w", err)
			}
			return v, nil
		},
		"lower":      strings.ToLower,
		"upper":      strings.ToUpper,
		"trimSpace":  strings.TrimSpace,
		"trimPrefix": func(prefix, s string) string { return strings.TrimPrefix(s, prefix) },
		"trimSuffix": func(suffix, s string) string { return strings.TrimSuffix(s, suffix) },
		"replace":    func(old, repl, s string) string { return strings.ReplaceAll(s, old, repl) },
		"contains":   func(sub, s string) bool { return strings.Contains(s, sub) },
		"hasPrefix":  func(prefix, s string) bool { return strings.HasPrefix(s, prefix) },
		"hasSuffix":  func(suffix, s string) bool { return strings.HasSuffix(s, suffix) },
		"split":      func(sep, s string) []any { return stringsToAny(strings.Split(s, sep)) },
		"join":       joinValues,
		"toString":   formatValue,
		"toInt":      func(v any) (int64, error) { f, err := toNumber(v); return int64(f), err },
		"toFloat":    toNumber,
		"length":     length,
	}
}

// runFuncs are the functions that read the run's data: step "NAME" keys...
// and trigger keys...
func runFuncs(d *runData, strict bool) template.FuncMap {
	return template.FuncMap{
		"step": func(name string, keys ...string) (any, error) {
			out, ok := d.steps[name]
			if !ok {
				if strict {
					return nil, fmt.Errorf("step %q has no output", name)
				}
				return nil, nil
			}
			return dig(map[string]any(out), keys, "step "+strconv.Quote(name), strict)
		},
		"trigger": func(keys ...string) (any, error) {
			return dig(d.trigger, keys, "trigger", strict)
		},
	}
}

// dig follows keys through nested maps; a missing key is nil, or an error
// when strict.
func dig(v any, keys []string, what string, strict bool) (any, error) {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			if strict {
				return nil, fmt.Errorf("%s: cannot read key %q of %T", what, k, v)
			}
			return nil, nil
		}
		if v, ok = m[k]; !ok {
			if strict {
				return nil, fmt.Errorf("%s: no key %q", what, k)
			}
			return nil, nil
		}
	}
	return v, nil
}

func isEmpty(v any) bool {
	if v == nil {
		return true
	}
	s, ok := v.(string)
	return ok && s == ""
}

func toJSON(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("toJson: %w", err)
	}
	return string(b), nil
}

func stringsToAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

func joinValues(sep string, v any) string {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Slice && rv.Kind() != reflect.Array {
		return formatValue(v)
	}
	parts := make([]string, rv.Len())
	for i := range parts {
		parts[i] = formatValue(rv.Index(i).Interface())
	}
	return strings.Join(parts, sep)
}

func toNumber(v any) (float64, error) {
	switch v := v.(type) {
	case nil:
		return 0, nil
	case string:
		if strings.TrimSpace(v) == "" {
			return 0, nil
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil {
			return 0, fmt.Errorf("%q is not a number", v)
		}
		return f, nil
	case bool:
		if v {
			return 1, nil
		}
		return 0, nil
	case json.Number:
		return v.Float64()
	}
	rv := reflect.ValueOf(v)
	switch {
	case rv.CanInt():
		return float64(rv.Int()), nil
	case rv.CanUint():
		return float64(rv.Uint()), nil
	case rv.CanFloat():
		return rv.Float(), nil
	}
	return 0, errors.New("not a number: " + fmt.Sprintf("%T", v))
}

func length(v any) int {
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.String, reflect.Slice, reflect.Array, reflect.Map:
		return rv.Len()
	}
	return 0
}

// timeLayout maps the name of a time package layout to the layout; any
// other string is a layout itself.
func timeLayout(name string) string {
	switch name {
	case "RFC3339":
		return time.RFC3339
	case "RFC3339Nano":
		return time.RFC3339Nano
	case "RFC1123":
		return time.RFC1123
	case "RFC1123Z":
		return time.RFC1123Z
	case "RFC822":
		return time.RFC822
	case "RFC822Z":
		return time.RFC822Z
	case "RFC850":
		return time.RFC850
	case "ANSIC":
		return time.ANSIC
	case "UnixDate":
		return time.UnixDate
	case "RubyDate":
		return time.RubyDate
	case "Kitchen":
		return time.Kitchen
	case "Stamp":
		return time.Stamp
	case "StampMilli":
		return time.StampMilli
	case "StampMicro":
		return time.StampMicro
	case "StampNano":
		return time.StampNano
	case "DateTime":
		return time.DateTime
	case "DateOnly":
		return time.DateOnly
	case "TimeOnly":
		return time.TimeOnly
	}
	return name
}
