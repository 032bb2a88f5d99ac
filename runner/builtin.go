package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The engine built-in steps of engine-pipelines.md §3, with the engine's
// config fields, outputs and error texts. Config keys are read with type
// assertions: a value of the wrong type counts as absent.

// resolvePath reads a path of the pipeline's data (engine-pipelines.md
// §3.6): "." is a copy of current, "steps.<name>[.path]" walks the step
// outputs, anything else walks current; through maps only. A missing path
// is nil.
func resolvePath(path string, pc *runContext) any {
	if path == "." {
		return cloneMap(pc.current)
	}
	if rest, ok := strings.CutPrefix(path, "steps."); ok {
		segs := strings.Split(rest, ".")
		out, ok := pc.steps[segs[0]]
		if !ok {
			return nil
		}
		return walkMaps(out, segs[1:])
	}
	return walkMaps(pc.current, strings.Split(path, "."))
}

func walkMaps(v any, segs []string) any {
	for _, seg := range segs {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		if v, ok = m[seg]; !ok {
			return nil
		}
	}
	return v
}

// intOf reads an int or float64 config value.
func intOf(v any) (int, bool) {
	switch n := v.(type) {
	case int:
		return n, true
	case float64:
		return int(n), true
	}
	return 0, false
}

// --- step.set (§3.1) ---

type setStep struct {
	r      *Runner
	name   string
	values map[string]any
}

func newSetStep(b *builder, name string, cfg map[string]any) (step, error) {
	values, _ := cfg["values"].(map[string]any)
	if len(values) == 0 {
		return nil, fmt.Errorf("set step %q: 'values' map is required and must not be empty", name)
	}
	return &setStep{r: b.r, name: name, values: values}, nil
}

func (s *setStep) Name() string { return s.name }

func (s *setStep) Execute(_ context.Context, pc *runContext) (*stepResult, error) {
	out, err := s.r.tmpl.resolveMap(s.values, pc)
	if err != nil {
		return nil, wrapText(fmt.Sprintf("set step %q: failed to resolve values", s.name), err)
	}
	return &stepResult{output: out}, nil
}

// wrapText returns "<prefix>: <err>", matching err.
func wrapText(prefix string, err error) error {
	return &textError{msg: prefix + ": " + err.Error(), errs: []error{err}}
}

// --- step.log (§3.2) ---

type logStep struct {
	r       *Runner
	name    string
	level   slog.Level
	message string
}

func newLogStep(b *builder, name string, cfg map[string]any) (step, error) {
	s := &logStep{r: b.r, name: name}
	switch lvl, _ := cfg["level"].(string); lvl {
	case "debug":
		s.level = slog.LevelDebug
	case "", "info":
		s.level = slog.LevelInfo
	case "warn":
		s.level = slog.LevelWarn
	case "error":
		s.level = slog.LevelError
	default:
		return nil, fmt.Errorf("log step %q: invalid level %q (use debug, info, warn or error)", name, lvl)
	}
	s.message, _ = cfg["message"].(string)
	if s.message == "" {
		return nil, fmt.Errorf("log step %q: 'message' is required", name)
	}
	return s, nil
}

func (s *logStep) Name() string { return s.name }

func (s *logStep) Execute(ctx context.Context, pc *runContext) (*stepResult, error) {
	msg, err := s.r.tmpl.resolve(s.message, pc)
	if err != nil {
		return nil, wrapText(fmt.Sprintf("log step %q: failed to resolve message", s.name), err)
	}
	s.r.log.Log(ctx, s.level, msg, "pipeline", pc.meta["pipeline"], "step", s.name)
	return &stepResult{output: map[string]any{}}, nil
}

// --- step.validate (§3.3) ---

type validateStep struct {
	name     string
	strategy string
	required []string
	schema   map[string]any
	source   string
}

func newValidateStep(_ *builder, name string, cfg map[string]any) (step, error) {
	s := &validateStep{name: name}
	s.strategy, _ = cfg["strategy"].(string)
	if s.strategy == "" {
		s.strategy = "required_fields"
	}
	s.source, _ = cfg["source"].(string)
	switch s.strategy {
	case "json_schema":
		schema, ok := cfg["schema"].(map[string]any)
		if !ok {
			return nil, fmt.Errorf("validate step %q: json_schema strategy requires a 'schema' map", name)
		}
		s.schema = schema
	case "required_fields":
		raw, _ := cfg["required_fields"].([]any)
		if len(raw) == 0 {
			return nil, fmt.Errorf("validate step %q: required_fields strategy requires a non-empty 'required_fields' list", name)
		}
		for _, f := range raw {
			str, ok := f.(string)
			if !ok {
				return nil, fmt.Errorf("validate step %q: required_fields entries must be strings", name)
			}
			s.required = append(s.required, str)
		}
	default:
		return nil, fmt.Errorf("validate step %q: unknown strategy %q (expected json_schema or required_fields)", name, s.strategy)
	}
	return s, nil
}

func (s *validateStep) Name() string { return s.name }

// data is what is validated: current, or the map source leads to from a
// root that holds only steps.
func (s *validateStep) data(pc *runContext) map[string]any {
	if s.source == "" {
		return pc.current
	}
	steps := make(map[string]any, len(pc.steps))
	for k, v := range pc.steps {
		steps[k] = v
	}
	cur := map[string]any{"steps": steps}
	for _, seg := range strings.Split(s.source, ".") {
		v, ok := cur[seg]
		if !ok {
			return nil
		}
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		cur = m
	}
	return cur
}

func (s *validateStep) Execute(_ context.Context, pc *runContext) (*stepResult, error) {
	data := s.data(pc)
	if data == nil {
		return nil, fmt.Errorf("validate step %q: source %q resolved to nil", s.name, s.source)
	}
	required := s.required
	if s.strategy == "json_schema" {
		required = nil
		if raw, ok := s.schema["required"]; ok {
			list, ok := raw.([]any)
			if !ok {
				return nil, fmt.Errorf("validate step %q: schema 'required' must be an array", s.name)
			}
			for _, r := range list {
				if f, ok := r.(string); ok {
					required = append(required, f)
				}
			}
		}
	}
	var missing []string
	for _, f := range required {
		if _, ok := data[f]; !ok {
			missing = append(missing, f)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("validate step %q: missing required fields: %s", s.name, strings.Join(missing, ", "))
	}
	if s.strategy == "json_schema" {
		if raw, ok := s.schema["properties"]; ok {
			props, ok := raw.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("validate step %q: schema 'properties' must be a map", s.name)
			}
			for _, f := range slices.Sorted(maps.Keys(props)) {
				v, present := data[f]
				spec, ok := props[f].(map[string]any)
				if !present || !ok {
					continue
				}
				typ, _ := spec["type"].(string)
				if !jsonTypeMatches(v, typ) {
					return nil, fmt.Errorf("validate step %q: field %q: expected %s, got %T", s.name, f, typ, v)
				}
			}
		}
	}
	return &stepResult{output: map[string]any{}}, nil
}

// jsonTypeMatches applies step.validate's JSON schema type names; an
// unknown (or empty) name matches anything.
func jsonTypeMatches(v any, typ string) bool {
	switch typ {
	case "string":
		_, ok := v.(string)
		return ok
	case "number":
		switch v.(type) {
		case float64, float32, int, int64, int32:
			return true
		}
		return false
	case "integer":
		switch v.(type) {
		case int, int64, int32, float64:
			return true
		}
		return false
	case "boolean":
		_, ok := v.(bool)
		return ok
	case "object":
		_, ok := v.(map[string]any)
		return ok
	case "array":
		_, ok := v.([]any)
		return ok
	}
	return true
}

// --- step.conditional (§3.4) ---

type conditionalStep struct {
	r    *Runner
	name string
	// if form
	cond, then, els string
	// field form
	field    string
	routes   map[string]string
	fallback string
}

func newConditionalStep(b *builder, name string, cfg map[string]any) (step, error) {
	s := &conditionalStep{r: b.r, name: name}
	if cond, _ := cfg["if"].(string); cond != "" {
		s.cond = cond
		s.then, _ = cfg["then"].(string)
		if s.then == "" {
			return nil, fmt.Errorf("conditional step %q: 'then' is required when 'if' is set", name)
		}
		s.els, _ = cfg["else"].(string)
		return s, nil
	}
	s.field, _ = cfg["field"].(string)
	if s.field == "" {
		return nil, fmt.Errorf("conditional step %q: 'field' is required", name)
	}
	routes, _ := cfg["routes"].(map[string]any)
	if len(routes) == 0 {
		return nil, fmt.Errorf("conditional step %q: 'routes' map is required and must not be empty", name)
	}
	s.routes = make(map[string]string, len(routes))
	for _, k := range slices.Sorted(maps.Keys(routes)) {
		v, ok := routes[k].(string)
		if !ok {
			return nil, fmt.Errorf("conditional step %q: route value for %q must be a string", name, k)
		}
		s.routes[k] = v
	}
	s.fallback, _ = cfg["default"].(string)
	return s, nil
}

func (s *conditionalStep) Name() string { return s.name }

// comparison finds the operators that make a {{ ... }} condition an
// expression.
var comparison = regexp.MustCompile(`==|!=|>|<`)

// leadingDot matches the dot that starts an identifier chain, which the
// expression form drops ({{ .n == 3 }} is n == 3).
var leadingDot = regexp.MustCompile(`(^|[^A-Za-z0-9_)\]])\.([A-Za-z_])`)

func (s *conditionalStep) Execute(_ context.Context, pc *runContext) (*stepResult, error) {
	if s.cond != "" {
		text, err := s.evalCondition(pc)
		if err != nil {
			return nil, wrapText(fmt.Sprintf("conditional step %q: failed to evaluate condition", s.name), err)
		}
		ok := conditionTruthy(text)
		target := s.els
		if ok {
			target = s.then
		}
		out := map[string]any{"condition": ok}
		if target != "" {
			out["next_step"] = target
		}
		return &stepResult{output: out, next: target}, nil
	}
	v, err := s.r.tmpl.resolve(fieldTemplate(s.field), pc)
	if err != nil {
		return nil, wrapText(fmt.Sprintf("conditional step %q: failed to resolve field %q", s.name, s.field), err)
	}
	if next, ok := s.routes[v]; ok {
		return &stepResult{output: map[string]any{"matched_value": v, "next_step": next}, next: next}, nil
	}
	if s.fallback != "" {
		return &stepResult{output: map[string]any{"matched_value": v, "next_step": s.fallback, "used_default": true}, next: s.fallback}, nil
	}
	return nil, fmt.Errorf("conditional step %q: value %q not found in routes and no default configured", s.name, v)
}

// evalCondition evaluates the if form: a {{ }} comparison as an
// expression, anything else as a template.
func (s *conditionalStep) evalCondition(pc *runContext) (string, error) {
	t := strings.TrimSpace(s.cond)
	if strings.HasPrefix(t, "{{") && strings.HasSuffix(t, "}}") {
		inner := strings.TrimSpace(t[2 : len(t)-2])
		if comparison.MatchString(inner) {
			src := leadingDot.ReplaceAllString(inner, "$1$2")
			v, err := s.r.tmpl.expr.eval(src, pc)
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("%v", v), nil
		}
	}
	return s.r.tmpl.resolve(s.cond, pc)
}

// fieldTemplate turns a field of conditional or branch into a template: a
// template as it is, a dotted path as {{.a.b}}, or as an index call when
// a segment has a hyphen.
func fieldTemplate(f string) string {
	if strings.Contains(f, "{{") {
		return f
	}
	segs := strings.Split(f, ".")
	if !slices.ContainsFunc(segs, func(s string) bool { return strings.Contains(s, "-") }) {
		return "{{." + f + "}}"
	}
	var b strings.Builder
	b.WriteString("{{index .")
	for _, seg := range segs {
		b.WriteString(` "` + seg + `"`)
	}
	b.WriteString("}}")
	return b.String()
}

// --- step.transform (§3.5) ---

type transformOp struct {
	typ string
	cfg map[string]any
}

type transformStep struct {
	name string
	ops  []transformOp
}

func newTransformStep(_ *builder, name string, cfg map[string]any) (step, error) {
	s := &transformStep{name: name}
	raw, _ := cfg["operations"].([]any)
	if _, ok := cfg["transformer"].(string); ok {
		return nil, fmt.Errorf("transform step %q: 'transformer' names a data transformer service, which eventbus run does not have; use 'operations'", name)
	}
	if len(raw) == 0 {
		return nil, fmt.Errorf("transform step %q: 'operations' or 'transformer' is required", name)
	}
	for i, o := range raw {
		m, ok := o.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("transform step %q: operation %d must be a map", name, i)
		}
		typ, _ := m["type"].(string)
		c, _ := m["config"].(map[string]any)
		switch typ {
		case "extract", "map", "filter", "convert":
		default:
			return nil, fmt.Errorf("transform step %q: operation %d: unknown type %q (expected extract, map, filter or convert)", name, i, typ)
		}
		s.ops = append(s.ops, transformOp{typ: typ, cfg: c})
	}
	return s, nil
}

func (s *transformStep) Name() string { return s.name }

func (s *transformStep) Execute(_ context.Context, pc *runContext) (*stepResult, error) {
	var data any = cloneMap(pc.current)
	for i, op := range s.ops {
		var err error
		if data, err = op.apply(data); err != nil {
			return nil, wrapText(fmt.Sprintf("transform step %q: operation %d (%s) failed", s.name, i, op.typ), err)
		}
	}
	return &stepResult{output: map[string]any{"data": data}}, nil
}

func (op transformOp) apply(data any) (any, error) {
	switch op.typ {
	case "extract":
		path, _ := op.cfg["path"].(string)
		cur := data
		for _, seg := range strings.Split(path, ".") {
			switch c := cur.(type) {
			case map[string]any:
				v, ok := c[seg]
				if !ok {
					return nil, fmt.Errorf("key '%s' not found in path '%s'", seg, path)
				}
				cur = v
			case []any:
				i, err := strconv.Atoi(seg)
				if err != nil || i < 0 || i >= len(c) {
					return nil, fmt.Errorf("index '%s' out of range in path '%s'", seg, path)
				}
				cur = c[i]
			default:
				return nil, fmt.Errorf("cannot traverse '%s' in path '%s': not a map or list", seg, path)
			}
		}
		return cur, nil
	case "map":
		m, ok := data.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("map operation requires a map, got %T", data)
		}
		out := cloneMap(m)
		mappings, _ := op.cfg["mappings"].(map[string]any)
		for _, old := range slices.Sorted(maps.Keys(mappings)) {
			nw, ok := mappings[old].(string)
			v, present := m[old]
			if !ok || !present {
				continue
			}
			delete(out, old)
			out[nw] = v
		}
		return out, nil
	case "filter":
		m, ok := data.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("filter operation requires a map, got %T", data)
		}
		fields, _ := op.cfg["fields"].([]any)
		out := map[string]any{}
		for _, f := range fields {
			if k, ok := f.(string); ok {
				if v, present := m[k]; present {
					out[k] = v
				}
			}
		}
		return out, nil
	case "convert":
		from, _ := op.cfg["from"].(string)
		to, _ := op.cfg["to"].(string)
		switch {
		case from == "json" && to == "json":
			b, err := json.Marshal(data)
			if err != nil {
				return nil, err
			}
			var v any
			if err := json.Unmarshal(b, &v); err != nil {
				return nil, err
			}
			return v, nil
		case from == "json" && to == "string":
			b, err := json.Marshal(data)
			if err != nil {
				return nil, err
			}
			return string(b), nil
		case from == "string" && to == "json":
			s, ok := data.(string)
			if !ok {
				return nil, fmt.Errorf("convert from string requires a string, got %T", data)
			}
			var v any
			if err := json.Unmarshal([]byte(s), &v); err != nil {
				return nil, err
			}
			return v, nil
		}
		return nil, fmt.Errorf("unsupported conversion from %q to %q", from, to)
	}
	return data, nil
}

// --- step.json_parse (§3.8) ---

type jsonParseStep struct {
	name, source, target string
}

func newJSONParseStep(_ *builder, name string, cfg map[string]any) (step, error) {
	s := &jsonParseStep{name: name}
	s.source, _ = cfg["source"].(string)
	if s.source == "" {
		return nil, fmt.Errorf("json_parse step %q: 'source' is required", name)
	}
	s.target, _ = cfg["target"].(string)
	if s.target == "" {
		s.target = "value"
	}
	return s, nil
}

func (s *jsonParseStep) Name() string { return s.name }

func (s *jsonParseStep) Execute(_ context.Context, pc *runContext) (*stepResult, error) {
	raw := resolvePath(s.source, pc)
	if raw == nil {
		return nil, fmt.Errorf("json_parse step %q: source %q not found or resolved to nil", s.name, s.source)
	}
	parsed := raw
	switch v := raw.(type) {
	case string:
		if err := json.Unmarshal([]byte(v), &parsed); err != nil {
			return nil, wrapText(fmt.Sprintf("json_parse step %q: failed to parse JSON from %q", s.name, s.source), err)
		}
	case []byte:
		if err := json.Unmarshal(v, &parsed); err != nil {
			return nil, wrapText(fmt.Sprintf("json_parse step %q: failed to parse JSON bytes from %q", s.name, s.source), err)
		}
	}
	return &stepResult{output: map[string]any{s.target: parsed}}, nil
}

// --- step.json_response, step.response (§3.6) ---

type jsonResponseStep struct {
	r          *Runner
	name       string
	status     int
	statusFrom string
	body       any
	bodyFrom   string
}

func newJSONResponseStep(b *builder, name string, cfg map[string]any) (step, error) {
	s := &jsonResponseStep{r: b.r, name: name, status: 200}
	switch v := cfg["status"].(type) {
	case int:
		s.status = v
	case float64:
		s.status = int(v)
	}
	s.statusFrom, _ = cfg["status_from"].(string)
	s.bodyFrom, _ = cfg["body_from"].(string)
	s.body = cfg["body"]
	return s, nil
}

func (s *jsonResponseStep) Name() string { return s.name }

func (s *jsonResponseStep) Execute(_ context.Context, pc *runContext) (*stepResult, error) {
	status := s.status
	if s.statusFrom != "" {
		if n, ok := wholeNumber(resolvePath(s.statusFrom, pc)); ok && n >= 100 && n <= 599 {
			status = n
		}
	}
	var body any
	switch {
	case s.bodyFrom != "":
		body = resolvePath(s.bodyFrom, pc)
	case s.body != nil:
		body = s.resolveBody(pc)
	}
	out := map[string]any{"status": status}
	if body != nil {
		out["body"] = body
	}
	return &stepResult{output: out, stop: true}, nil
}

func wholeNumber(v any) (int, bool) {
	switch n := v.(type) {
	case int:
		return n, true
	case int64:
		return int(n), true
	case float64:
		if n == float64(int(n)) {
			return int(n), true
		}
	}
	return 0, false
}

// resolveBody resolves a map or string body; a body that fails to
// resolve is used as written.
func (s *jsonResponseStep) resolveBody(pc *runContext) any {
	switch b := s.body.(type) {
	case map[string]any:
		v, err := s.resolveBodyValue(b, pc)
		if err != nil {
			return s.body
		}
		return v
	case string:
		v, err := s.r.tmpl.resolve(b, pc)
		if err != nil {
			return b
		}
		return jsonIfLooksLike(v)
	}
	return s.body
}

func (s *jsonResponseStep) resolveBodyValue(v any, pc *runContext) (any, error) {
	switch v := v.(type) {
	case map[string]any:
		if from, ok := v["_from"].(string); ok && len(v) == 1 {
			return resolvePath(from, pc), nil
		}
		out := make(map[string]any, len(v))
		for k, e := range v {
			r, err := s.resolveBodyValue(e, pc)
			if err != nil {
				return nil, err
			}
			out[k] = r
		}
		return out, nil
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			r, err := s.resolveBodyValue(e, pc)
			if err != nil {
				return nil, err
			}
			out[i] = r
		}
		return out, nil
	case string:
		r, err := s.r.tmpl.resolve(v, pc)
		if err != nil {
			return nil, err
		}
		return jsonIfLooksLike(r), nil
	}
	return v, nil
}

// jsonIfLooksLike parses s as JSON when it starts with { or [ and parses.
func jsonIfLooksLike(s string) any {
	t := strings.TrimSpace(s)
	if strings.HasPrefix(t, "{") || strings.HasPrefix(t, "[") {
		var v any
		if json.Unmarshal([]byte(t), &v) == nil {
			return v
		}
	}
	return s
}

// --- step.pipeline_output (§3.7) ---

type pipelineOutputStep struct {
	r      *Runner
	name   string
	source string
	values map[string]any
}

func newPipelineOutputStep(b *builder, name string, cfg map[string]any) (step, error) {
	s := &pipelineOutputStep{r: b.r, name: name}
	s.source, _ = cfg["source"].(string)
	values, hasValues := cfg["values"].(map[string]any)
	switch {
	case s.source == "" && !hasValues:
		return nil, fmt.Errorf("pipeline_output step %q: one of 'source' or 'values' is required", name)
	case s.source != "" && hasValues:
		return nil, fmt.Errorf("pipeline_output step %q: 'source' and 'values' are mutually exclusive", name)
	}
	if hasValues {
		s.values = map[string]any{}
		for k, v := range values {
			if str, ok := v.(string); ok {
				s.values[k] = str
			}
		}
	}
	return s, nil
}

func (s *pipelineOutputStep) Name() string { return s.name }

func (s *pipelineOutputStep) Execute(_ context.Context, pc *runContext) (*stepResult, error) {
	var out map[string]any
	if s.values != nil {
		var err error
		if out, err = s.r.tmpl.resolveMap(s.values, pc); err != nil {
			return nil, wrapText(fmt.Sprintf("pipeline_output step %q: failed to resolve values", s.name), err)
		}
	} else {
		m, _ := resolvePath(s.source, pc).(map[string]any)
		out = cloneMap(m)
	}
	result := cloneMap(out)
	result["_pipeline_output"] = out
	pc.meta["_pipeline_output"] = out
	return &stepResult{output: result, stop: true}, nil
}

// --- step.publish, step.event_publish (§3.14, §3.15) ---
//
// eventbus run has no in-process event bus or broker service, as an
// engine without those modules: step.publish reports it did not publish,
// step.event_publish fails. The eventbus plugin's own publish step is the
// one that reaches a broker.

type publishStep struct {
	name   string
	broker string
}

func newPublishStep(_ *builder, name string, cfg map[string]any) (step, error) {
	if t, _ := cfg["topic"].(string); t == "" {
		return nil, fmt.Errorf("publish step %q: 'topic' is required", name)
	}
	s := &publishStep{name: name}
	s.broker, _ = cfg["broker"].(string)
	return s, nil
}

func (s *publishStep) Name() string { return s.name }

func (s *publishStep) Execute(context.Context, *runContext) (*stepResult, error) {
	reason := "eventbus not available"
	if s.broker != "" {
		reason = "broker not found"
	}
	return &stepResult{output: map[string]any{"published": false, "reason": reason}}, nil
}

type eventPublishStep struct{ name string }

func newEventPublishStep(_ *builder, name string, cfg map[string]any) (step, error) {
	topic, _ := cfg["topic"].(string)
	if topic == "" {
		topic, _ = cfg["stream"].(string)
	}
	if topic == "" {
		return nil, fmt.Errorf("event_publish step %q: 'topic' is required", name)
	}
	return &eventPublishStep{name: name}, nil
}

func (s *eventPublishStep) Name() string { return s.name }

func (s *eventPublishStep) Execute(context.Context, *runContext) (*stepResult, error) {
	return nil, fmt.Errorf("event_publish step %q: no broker configured and eventbus not available", s.name)
}

// durationOf parses a duration config value; absent or unparseable
// values give def when lenient, an error otherwise.
func durationOf(cfg map[string]any, key string, def time.Duration) (time.Duration, error) {
	s, ok := cfg[key].(string)
	if !ok || s == "" {
		return def, nil
	}
	return time.ParseDuration(s)
}
