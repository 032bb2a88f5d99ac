package runner

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"
)

// The built-in steps that run other steps: foreach, parallel, branch,
// retry_with_backoff (sub-steps built from their config) and
// workflow_call (another pipeline of the app), engine-pipelines.md
// §3.9–§3.12 and §3.16.

// errorStrategy reads error_strategy: fail_fast (default) or
// collect_errors.
func errorStrategy(kind, name string, cfg map[string]any) (string, error) {
	s, _ := cfg["error_strategy"].(string)
	switch s {
	case "":
		return "fail_fast", nil
	case "fail_fast", "collect_errors":
		return s, nil
	}
	return "", fmt.Errorf("%s step %q: error_strategy must be 'fail_fast' or 'collect_errors', got %q", kind, name, s)
}

// --- step.foreach (§3.9) ---

type foreachStep struct {
	name        string
	collection  string
	itemKey     string
	indexKey    string
	subs        []step
	concurrency int
	strategy    string
}

func newForeachStep(b *builder, name string, cfg map[string]any) (step, error) {
	s := &foreachStep{name: name}
	s.collection, _ = cfg["collection"].(string)
	if s.collection == "" {
		return nil, fmt.Errorf("foreach step %q: 'collection' is required", name)
	}
	s.itemKey, _ = cfg["item_var"].(string)
	if s.itemKey == "" {
		s.itemKey, _ = cfg["item_key"].(string)
	}
	if s.itemKey == "" {
		s.itemKey = "item"
	}
	s.indexKey, _ = cfg["index_key"].(string)
	if s.indexKey == "" {
		s.indexKey = "index"
	}
	s.concurrency, _ = intOf(cfg["concurrency"])
	s.concurrency = max(s.concurrency, 0)
	var err error
	if s.strategy, err = errorStrategy("foreach", name, cfg); err != nil {
		return nil, err
	}
	_, hasStep := cfg["step"]
	_, hasSteps := cfg["steps"]
	switch {
	case hasStep && hasSteps:
		return nil, fmt.Errorf("foreach step %q: 'step' and 'steps' are mutually exclusive", name)
	case hasStep:
		m, ok := cfg["step"].(map[string]any)
		if !ok {
			return nil, fmt.Errorf("foreach step %q: 'step' must be a map", name)
		}
		sub, err := b.sub(name, "step", m, "step")
		if err != nil {
			return nil, wrapText(fmt.Sprintf("foreach step %q", name), err)
		}
		s.subs = []step{sub}
	case hasSteps:
		list, ok := cfg["steps"].([]any)
		if !ok {
			return nil, fmt.Errorf("foreach step %q: 'steps' must be a list", name)
		}
		for i, e := range list {
			m, ok := e.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("foreach step %q: steps[%d] must be a map", name, i)
			}
			sub, err := b.sub(name, fmt.Sprintf("sub-%d", i), m, fmt.Sprintf("steps[%d]", i))
			if err != nil {
				return nil, wrapText(fmt.Sprintf("foreach step %q", name), err)
			}
			s.subs = append(s.subs, sub)
		}
	}
	return s, nil
}

func (s *foreachStep) Name() string { return s.name }

func (s *foreachStep) Execute(ctx context.Context, pc *runContext) (*stepResult, error) {
	items, err := s.items(pc)
	if err != nil {
		return nil, wrapText(fmt.Sprintf("foreach step %q", s.name), err)
	}
	if len(items) == 0 {
		return &stepResult{output: map[string]any{"results": []any{}, "count": 0}}, nil
	}
	if s.concurrency > 0 {
		return s.concurrent(ctx, pc, items)
	}
	results := make([]any, 0, len(items))
	for i, item := range items {
		out, sub, err := s.iterate(ctx, pc, item, i)
		if err != nil {
			return nil, wrapText(fmt.Sprintf("foreach step %q: iteration %d, sub-step %q failed", s.name, i, sub), err)
		}
		results = append(results, out)
	}
	return &stepResult{output: map[string]any{"results": results, "count": len(results)}}, nil
}

// iterate runs the sub-steps for one item on a copy of the context and
// returns their merged outputs, or the failing sub-step's name and error.
func (s *foreachStep) iterate(ctx context.Context, pc *runContext, item any, i int) (map[string]any, string, error) {
	child := s.child(pc, item, i)
	out := map[string]any{}
	for _, sub := range s.subs {
		res, err := sub.Execute(ctx, child)
		if err != nil {
			return nil, sub.Name(), err
		}
		if res != nil && res.output != nil {
			child.merge(sub.Name(), res.output)
			maps.Copy(out, res.output)
		}
		if res != nil && res.stop {
			break
		}
	}
	return out, "", nil
}

func (s *foreachStep) concurrent(ctx context.Context, pc *runContext, items []any) (*stepResult, error) {
	n := len(items)
	results := make([]map[string]any, n)
	errs := make([]error, n)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, s.concurrency)
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for i, item := range items {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			out, sub, err := s.iterate(ctx, pc, item, i)
			if err != nil {
				errs[i] = wrapText(fmt.Sprintf("iteration %d, sub-step %q", i, sub), err)
				if s.strategy == "fail_fast" {
					once.Do(func() {
						first = wrapText(fmt.Sprintf("foreach step %q", s.name), errs[i])
						cancel()
					})
				}
				return
			}
			results[i] = out
		})
	}
	wg.Wait()
	if first != nil {
		return nil, first
	}
	collected := make([]any, 0, n)
	failed := 0
	for i := range n {
		switch {
		case errs[i] != nil:
			failed++
			collected = append(collected, map[string]any{"_error": errs[i].Error(), "_index": i})
		case results[i] != nil:
			collected = append(collected, results[i])
		default:
			collected = append(collected, map[string]any{})
		}
	}
	out := map[string]any{"results": collected, "count": n}
	if failed > 0 {
		out["error_count"] = failed
	}
	return &stepResult{output: out}, nil
}

// items finds the collection: an exact key of current, then of the
// trigger data, then a dotted walk over current, steps and trigger.
func (s *foreachStep) items(pc *runContext) ([]any, error) {
	if v, ok := pc.current[s.collection]; ok {
		return toList(v)
	}
	if v, ok := pc.trigger[s.collection]; ok {
		return toList(v)
	}
	data := cloneMap(pc.current)
	data["steps"] = pc.steps
	data["trigger"] = pc.trigger
	if v, ok := walkPath(data, s.collection); ok {
		return toList(v)
	}
	return nil, fmt.Errorf("collection %q not found in context", s.collection)
}

// walkPath walks a dotted path through maps (step outputs included).
func walkPath(data map[string]any, path string) (any, bool) {
	if v, ok := data[path]; ok {
		return v, true
	}
	var cur any = data
	for _, seg := range strings.Split(path, ".") {
		switch m := cur.(type) {
		case map[string]any:
			v, ok := m[seg]
			if !ok {
				return nil, false
			}
			cur = v
		case map[string]map[string]any:
			v, ok := m[seg]
			if !ok {
				return nil, false
			}
			cur = v
		default:
			return nil, false
		}
	}
	return cur, true
}

func toList(v any) ([]any, error) {
	switch l := v.(type) {
	case []any:
		return l, nil
	case []map[string]any:
		out := make([]any, len(l))
		for i, e := range l {
			out[i] = e
		}
		return out, nil
	case []string:
		out := make([]any, len(l))
		for i, e := range l {
			out[i] = e
		}
		return out, nil
	case []int:
		out := make([]any, len(l))
		for i, e := range l {
			out[i] = e
		}
		return out, nil
	case nil:
		return []any{}, nil
	}
	return nil, fmt.Errorf("expected a slice, got %T", v)
}

// child is an iteration's context: copies of the parent's maps with the
// item, its index and a foreach map injected into current.
func (s *foreachStep) child(pc *runContext, item any, i int) *runContext {
	cur := cloneMap(pc.current)
	cur[s.itemKey] = item
	cur[s.indexKey] = i
	if s.itemKey != "foreach" && s.indexKey != "foreach" {
		if _, exists := cur["foreach"]; !exists {
			cur["foreach"] = map[string]any{"index": i, s.itemKey: item}
		}
	}
	steps := make(map[string]map[string]any, len(pc.steps))
	for k, v := range pc.steps {
		steps[k] = cloneMap(v)
	}
	return &runContext{trigger: cloneMap(pc.trigger), steps: steps, current: cur, meta: cloneMap(pc.meta)}
}

// --- step.parallel (§3.10) ---

type parallelStep struct {
	name     string
	subs     []step
	strategy string
}

func newParallelStep(b *builder, name string, cfg map[string]any) (step, error) {
	list, ok := cfg["steps"].([]any)
	if !ok || len(list) == 0 {
		return nil, fmt.Errorf("parallel step %q: 'steps' list is required", name)
	}
	s := &parallelStep{name: name}
	var err error
	if s.strategy, err = errorStrategy("parallel", name, cfg); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for i, e := range list {
		m, ok := e.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("parallel step %q: steps[%d] must be a map", name, i)
		}
		branch, _ := m["name"].(string)
		if branch == "" {
			return nil, fmt.Errorf("parallel step %q: steps[%d] requires a 'name'", name, i)
		}
		if seen[branch] {
			return nil, fmt.Errorf("parallel step %q: duplicate branch name %q", name, branch)
		}
		seen[branch] = true
		sub, err := b.sub(name, branch, m, fmt.Sprintf("steps[%d]", i))
		if err != nil {
			return nil, wrapText(fmt.Sprintf("parallel step %q", name), err)
		}
		s.subs = append(s.subs, sub)
	}
	return s, nil
}

func (s *parallelStep) Name() string { return s.name }

func (s *parallelStep) Execute(ctx context.Context, pc *runContext) (*stepResult, error) {
	n := len(s.subs)
	outs := make([]map[string]any, n)
	errs := make([]error, n)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for i, sub := range s.subs {
		child := deepCopyContext(pc)
		wg.Go(func() {
			res, err := sub.Execute(ctx, child)
			if err != nil {
				errs[i] = err
				if s.strategy == "fail_fast" {
					once.Do(func() {
						first = wrapText(fmt.Sprintf("parallel step %q: branch %q failed", s.name, sub.Name()), err)
						cancel()
					})
				}
				return
			}
			out := map[string]any{}
			if res != nil {
				maps.Copy(out, res.output)
			}
			outs[i] = out
		})
	}
	wg.Wait()
	if first != nil {
		return nil, first
	}
	results, failures := map[string]any{}, map[string]any{}
	for i, sub := range s.subs {
		if errs[i] != nil {
			failures[sub.Name()] = errs[i].Error()
		} else {
			results[sub.Name()] = outs[i]
		}
	}
	if s.strategy == "collect_errors" && len(failures) == n {
		return nil, fmt.Errorf("parallel step %q: all %d branches failed", s.name, n)
	}
	return &stepResult{output: map[string]any{
		"results": results, "errors": failures, "completed": len(results), "failed": len(failures),
	}}, nil
}

// deepCopyContext copies every map and list of a context, so that
// branches running at once share nothing.
func deepCopyContext(pc *runContext) *runContext {
	steps := make(map[string]map[string]any, len(pc.steps))
	for k, v := range pc.steps {
		steps[k] = deepCopy(v).(map[string]any)
	}
	return &runContext{
		trigger: deepCopy(pc.trigger).(map[string]any),
		steps:   steps,
		current: deepCopy(pc.current).(map[string]any),
		meta:    deepCopy(pc.meta).(map[string]any),
	}
}

func deepCopy(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = deepCopy(e)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = deepCopy(e)
		}
		return out
	}
	return v
}

// --- step.branch (§3.11) ---

type branchStep struct {
	r        *Runner
	name     string
	field    string
	branches map[string][]step
	fallback []step
	merge    string
}

func newBranchStep(b *builder, name string, cfg map[string]any) (step, error) {
	s := &branchStep{r: b.r, name: name, branches: map[string][]step{}}
	s.field, _ = cfg["field"].(string)
	if s.field == "" {
		return nil, fmt.Errorf("branch step %q: 'field' is required", name)
	}
	branches, _ := cfg["branches"].(map[string]any)
	if len(branches) == 0 {
		return nil, fmt.Errorf("branch step %q: 'branches' map is required and must not be empty", name)
	}
	build := func(key string, raw any, rel string) ([]step, error) {
		list, ok := raw.([]any)
		if !ok || len(list) == 0 {
			return nil, fmt.Errorf("branch step %q: branch %q must be a non-empty list of steps", name, key)
		}
		var out []step
		for i, e := range list {
			m, ok := e.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("branch step %q: branch %q step %d must be a map", name, key, i)
			}
			sub, err := b.sub(name, fmt.Sprintf("%s-%d", key, i), m, fmt.Sprintf("%s[%d]", rel, i))
			if err != nil {
				return nil, wrapText(fmt.Sprintf("branch step %q", name), err)
			}
			out = append(out, sub)
		}
		return out, nil
	}
	for _, k := range slices.Sorted(maps.Keys(branches)) {
		subs, err := build(k, branches[k], "branches"+pathKey(k))
		if err != nil {
			return nil, err
		}
		s.branches[k] = subs
	}
	if raw, ok := cfg["default"]; ok && raw != nil {
		subs, err := build("default", raw, "default")
		if err != nil {
			return nil, err
		}
		s.fallback = subs
	}
	s.merge, _ = cfg["merge_step"].(string)
	return s, nil
}

func (s *branchStep) Name() string { return s.name }

func (s *branchStep) Execute(ctx context.Context, pc *runContext) (*stepResult, error) {
	v, err := s.r.tmpl.resolve(fieldTemplate(s.field), pc)
	if err != nil {
		return nil, wrapText(fmt.Sprintf("branch step %q: failed to resolve field %q", s.name, s.field), err)
	}
	subs, branch := s.branches[v], v
	if subs == nil {
		if s.fallback == nil {
			return nil, fmt.Errorf("branch step %q: value %q not found in branches and no default configured", s.name, v)
		}
		subs, branch = s.fallback, "default"
	}
	out := map[string]any{"matched_value": v, "branch": branch}
	for _, sub := range subs {
		res, err := sub.Execute(ctx, pc)
		if err != nil {
			return nil, wrapText(fmt.Sprintf("branch step %q: sub-step %q failed", s.name, sub.Name()), err)
		}
		if res != nil {
			pc.merge(sub.Name(), res.output)
			if res.stop {
				out["stopped"] = true
				return &stepResult{output: out, stop: true}, nil
			}
		}
	}
	return &stepResult{output: out, next: s.merge}, nil
}

// --- step.retry_with_backoff (§3.12) ---

type retryStep struct {
	name       string
	maxRetries int
	initial    time.Duration
	maxDelay   time.Duration
	multiplier float64
	sub        step
}

func newRetryStep(b *builder, name string, cfg map[string]any) (step, error) {
	s := &retryStep{name: name, maxRetries: 3, multiplier: 2}
	if n, ok := intOf(cfg["max_retries"]); ok {
		s.maxRetries = max(n, 0)
	}
	var err error
	if s.initial, err = durationOf(cfg, "initial_delay", time.Second); err != nil {
		return nil, fmt.Errorf("retry_with_backoff step %q: invalid initial_delay %q: %w", name, cfg["initial_delay"], err)
	}
	if s.maxDelay, err = durationOf(cfg, "max_delay", 30*time.Second); err != nil {
		return nil, fmt.Errorf("retry_with_backoff step %q: invalid max_delay %q: %w", name, cfg["max_delay"], err)
	}
	switch m := cfg["multiplier"].(type) {
	case float64:
		s.multiplier = m
	case int:
		s.multiplier = float64(m)
	}
	if s.multiplier <= 0 {
		s.multiplier = 2
	}
	m, ok := cfg["step"].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("retry_with_backoff step %q: 'step' config is required", name)
	}
	if s.sub, err = b.sub(name, "step", m, "step"); err != nil {
		return nil, wrapText(fmt.Sprintf("retry_with_backoff step %q", name), err)
	}
	return s, nil
}

func (s *retryStep) Name() string { return s.name }

func (s *retryStep) Execute(ctx context.Context, pc *runContext) (*stepResult, error) {
	delay := s.initial
	var last error
	for attempt := 0; attempt <= s.maxRetries; attempt++ {
		res, err := s.sub.Execute(ctx, pc)
		if err == nil {
			if res == nil {
				res = &stepResult{}
			}
			out := cloneMap(res.output)
			out["retry_attempts"] = attempt
			res.output = out
			return res, nil
		}
		last = err
		if attempt == s.maxRetries {
			break
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("retry_with_backoff step %q: context cancelled after %d attempts: %w", s.name, attempt+1, ctx.Err())
		case <-t.C:
		}
		delay = min(time.Duration(float64(delay)*s.multiplier), s.maxDelay)
	}
	return nil, wrapText(fmt.Sprintf("retry_with_backoff step %q: all %d attempts failed", s.name, s.maxRetries+1), last)
}

// --- step.workflow_call (§3.16) ---

type workflowCallStep struct {
	r            *Runner
	name         string
	workflow     string
	async        bool
	input        map[string]string
	outputs      map[string]string
	timeout      time.Duration
	stopPipeline bool
}

func newWorkflowCallStep(b *builder, name string, cfg map[string]any) (step, error) {
	s := &workflowCallStep{r: b.r, name: name, timeout: 30 * time.Second}
	s.workflow, _ = cfg["workflow"].(string)
	if s.workflow == "" {
		return nil, fmt.Errorf("workflow_call step %q: 'workflow' is required", name)
	}
	mode, _ := cfg["mode"].(string)
	s.async = mode == "async"
	if in, ok := cfg["input"].(map[string]any); ok {
		s.input = map[string]string{}
		for k, v := range in {
			if str, ok := v.(string); ok {
				s.input[k] = str
			}
		}
	}
	if om, ok := cfg["output_mapping"].(map[string]any); ok {
		s.outputs = map[string]string{}
		for k, v := range om {
			if str, ok := v.(string); ok {
				s.outputs[k] = str
			}
		}
	}
	if t, ok := cfg["timeout"].(string); ok && t != "" {
		if d, err := time.ParseDuration(t); err == nil {
			s.timeout = d
		}
	}
	s.stopPipeline, _ = cfg["stop_pipeline"].(bool)
	return s, nil
}

func (s *workflowCallStep) Name() string { return s.name }

func (s *workflowCallStep) Execute(ctx context.Context, pc *runContext) (*stepResult, error) {
	workflow, err := s.r.tmpl.resolve(s.workflow, pc)
	if err != nil {
		return nil, wrapText(fmt.Sprintf("workflow_call step %q: failed to resolve workflow", s.name), err)
	}
	target := s.r.pipelines[workflow]
	if target == nil {
		return nil, fmt.Errorf("workflow_call step %q: pipeline %q not found — ensure it is defined in the application config", s.name, workflow)
	}
	data := map[string]any{}
	if s.input != nil {
		for _, k := range slices.Sorted(maps.Keys(s.input)) {
			v, err := s.r.tmpl.resolve(s.input[k], pc)
			if err != nil {
				return nil, wrapText(fmt.Sprintf("workflow_call step %q: failed to resolve input %q", s.name, k), err)
			}
			data[k] = v
		}
	} else {
		maps.Copy(data, pc.current)
	}
	if s.async {
		s.r.runDetached(ctx, s.timeout, func(ctx context.Context) {
			_, _ = s.r.execute(ctx, target, data)
		})
		return &stepResult{output: map[string]any{"workflow": workflow, "mode": "async", "dispatched": true}, stop: s.stopPipeline}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	child, err := s.r.execute(ctx, target, data)
	if err != nil {
		return nil, wrapText(fmt.Sprintf("workflow_call step %q: workflow %q failed", s.name, workflow), err)
	}
	out := map[string]any{}
	if s.outputs != nil {
		for k, path := range s.outputs {
			out[k] = childPath(child, path)
		}
	} else {
		out["result"] = child.current
	}
	return &stepResult{output: out, stop: s.stopPipeline}, nil
}

// childPath reads a path of a finished child run: "steps.<name>..." from
// its step outputs, anything else from its current data.
func childPath(pc *runContext, path string) any {
	return resolvePath(path, pc)
}
