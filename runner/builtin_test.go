package runner_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/wfeventbus/eventbus/runner"
)

// builtinRun runs pipeline p of an app made of built-in steps (and the
// fake plugin's step.test.echo, which records what it sees) once, and
// returns the run's error and the inputs of its echo steps.
func builtinRun(t *testing.T, src, p string, data map[string]any) (error, []runner.StepInput) {
	t.Helper()
	f := newFake(testCatalog(t))
	r := startRunner(t, src, f)
	err := r.TriggerWorkflow(context.Background(), p, "", data)
	return err, f.inputList()
}

// lastOut returns an output of a step as the last echo saw it.
func lastOut(t *testing.T, ins []runner.StepInput, step string) map[string]any {
	t.Helper()
	if len(ins) == 0 {
		t.Fatal("no echo step ran")
	}
	return ins[len(ins)-1].StepOutputs[step]
}

func wantErrText(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("error %v, want it to contain %q", err, want)
	}
}

// engine-pipelines.md §3.1–§3.3: set, log and validate.
func TestBuiltinSetLogValidate(t *testing.T) {
	t.Parallel()
	src := `pipelines:
  set:
    steps:
      - { name: s, type: step.set, config: { values: { a: "{{ .n }}", raw: 5, nested: { b: "x-{{ .n }}" } } } }
      - { name: e, type: step.test.echo }
  validate-current:
    steps:
      - { name: v, type: step.validate, config: { required_fields: [a, b, z] } }
  validate-nil-passes:
    steps:
      - { name: v, type: step.validate, config: { required_fields: [nothing] } }
      - { name: e, type: step.test.echo }
  validate-schema:
    steps:
      - { name: s, type: step.set, config: { values: { rec: { n: "{{ .n }}", f: 2.5 } } } }
      - name: v
        type: step.validate
        config:
          source: steps.s.rec
          strategy: json_schema
          schema: { required: [n, f], properties: { f: { type: integer }, n: { type: number } } }
  validate-source-nil:
    steps:
      - { name: v, type: step.validate, config: { source: rec, required_fields: [a] } }
`
	err, ins := builtinRun(t, src, "set", map[string]any{"n": 1234567.0})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"a": "1.234567e+06", "raw": 5, "nested": map[string]any{"b": "x-1.234567e+06"}}
	if got := lastOut(t, ins, "s"); !reflect.DeepEqual(got, want) {
		t.Errorf("step.set output %#v, want %#v", got, want)
	}
	err, _ = builtinRun(t, src, "validate-current", map[string]any{"b": 1})
	wantErrText(t, err, `step "v" failed: validate step "v": missing required fields: a, z`)
	if err, _ = builtinRun(t, src, "validate-nil-passes", map[string]any{"nothing": nil}); err != nil {
		t.Errorf("a present nil value: %v", err)
	}
	err, _ = builtinRun(t, src, "validate-schema", map[string]any{"n": 1.0})
	wantErrText(t, err, `validate step "v": field "n": expected number, got string`)
	err, _ = builtinRun(t, src, "validate-source-nil", map[string]any{"rec": map[string]any{"a": 1}})
	wantErrText(t, err, `validate step "v": source "rec" resolved to nil`)
}

// engine-pipelines.md §3.4: the if and field forms of step.conditional.
func TestBuiltinConditional(t *testing.T) {
	t.Parallel()
	src := `pipelines:
  expr:
    steps:
      - { name: c, type: step.conditional, config: { if: "{{ .n > 2 }}", then: yes, else: no } }
      - { name: no, type: step.test.echo, config: { which: no } }
      - { name: yes, type: step.test.echo, config: { which: yes } }
  tmpl:
    steps:
      - { name: c, type: step.conditional, config: { if: "{{ .flag }}", then: yes } }
      - { name: after, type: step.test.echo, config: { which: after } }
      - { name: yes, type: step.test.echo, config: { which: yes } }
  field:
    steps:
      - { name: c, type: step.conditional, config: { field: "a.b-c", routes: { "1": one, "<no value>": none } } }
      - { name: one, type: step.test.echo, config: { which: one } }
      - { name: none, type: step.test.echo, config: { which: none } }
`
	which := func(ins []runner.StepInput) []string {
		var out []string
		for _, in := range ins {
			out = append(out, fmt.Sprint(in.Config["which"]))
		}
		return out
	}
	for _, c := range []struct {
		p    string
		data map[string]any
		want []string
		out  map[string]any
	}{
		{"expr", map[string]any{"n": 3.0}, []string{"yes"}, map[string]any{"condition": true, "next_step": "yes"}},
		{"expr", map[string]any{"n": 1.0}, []string{"no", "yes"}, map[string]any{"condition": false, "next_step": "no"}},
		{"tmpl", map[string]any{"flag": "No"}, []string{"after", "yes"}, map[string]any{"condition": false}},
		{"tmpl", map[string]any{}, []string{"yes"}, map[string]any{"condition": true, "next_step": "yes"}},
		{"field", map[string]any{"a": map[string]any{"b-c": 1.0}}, []string{"one", "none"}, map[string]any{"matched_value": "1", "next_step": "one"}},
		{"field", map[string]any{"a": map[string]any{}}, []string{"none"}, map[string]any{"matched_value": "<no value>", "next_step": "none"}},
	} {
		err, ins := builtinRun(t, src, c.p, c.data)
		if err != nil {
			t.Fatalf("%s %v: %v", c.p, c.data, err)
		}
		if got := which(ins); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s %v: ran %q, want %q", c.p, c.data, got, c.want)
		}
		if got := lastOut(t, ins, "c"); !reflect.DeepEqual(got, c.out) {
			t.Errorf("%s %v: output %#v, want %#v", c.p, c.data, got, c.out)
		}
	}
	err, _ := builtinRun(t, src, "field", map[string]any{"a": map[string]any{"b-c": "2"}})
	wantErrText(t, err, `conditional step "c": value "2" not found in routes and no default configured`)
}

// engine-pipelines.md §3.5, §3.8: transform and json_parse.
func TestBuiltinTransformJSONParse(t *testing.T) {
	t.Parallel()
	src := `pipelines:
  p:
    steps:
      - { name: parse, type: step.json_parse, config: { source: payload, target: doc } }
      - name: t
        type: step.transform
        config:
          operations:
            - { type: extract, config: { path: doc.items.1 } }
            - { type: map, config: { mappings: { id: key } } }
            - { type: filter, config: { fields: [key, n] } }
            - { type: convert, config: { from: json, to: string } }
      - { name: e, type: step.test.echo }
  missing:
    steps:
      - { name: t, type: step.transform, config: { operations: [{ type: extract, config: { path: a.k } }] } }
  badjson:
    steps:
      - { name: parse, type: step.json_parse, config: { source: payload } }
`
	err, ins := builtinRun(t, src, "p", map[string]any{"payload": `{"items":[{"id":"a"},{"id":"b","n":2,"x":true}]}`})
	if err != nil {
		t.Fatal(err)
	}
	if got := lastOut(t, ins, "t")["data"]; got != `{"key":"b","n":2}` {
		t.Errorf("transform data %#v", got)
	}
	if doc := lastOut(t, ins, "parse")["doc"].(map[string]any); len(doc["items"].([]any)) != 2 {
		t.Errorf("json_parse output %#v", doc)
	}
	err, _ = builtinRun(t, src, "missing", map[string]any{"a": map[string]any{}})
	wantErrText(t, err, `transform step "t": operation 0 (extract) failed: key 'k' not found in path 'a.k'`)
	err, _ = builtinRun(t, src, "badjson", map[string]any{"payload": "not json"})
	wantErrText(t, err, `json_parse step "parse": failed to parse JSON from "payload": invalid character`)
	err, _ = builtinRun(t, src, "badjson", nil)
	wantErrText(t, err, `json_parse step "parse": source "payload" not found or resolved to nil`)
}

// engine-pipelines.md §3.9, §3.10: foreach and parallel, with a plugin
// sub-step.
func TestBuiltinForeachParallel(t *testing.T) {
	t.Parallel()
	src := `pipelines:
  each:
    steps:
      - name: f
        type: step.foreach
        config:
          collection: list
          item_var: it
          steps:
            - { type: step.set, config: { values: { label: "{{ .index }}={{ .it }}/{{ .foreach.index }}" } } }
            - { name: echo, type: step.test.echo, config: { seen: "{{ .label }}" } }
      - { name: e, type: step.test.echo }
  concurrent:
    steps:
      - { name: f, type: step.foreach, config: { collection: steps.s.list, concurrency: 2, error_strategy: collect_errors, step: { type: step.validate, config: { required_fields: [it] } } } }
  notalist:
    steps:
      - { name: f, type: step.foreach, config: { collection: list, step: { type: step.log, message: x } } }
  par:
    steps:
      - name: p
        type: step.parallel
        config:
          error_strategy: collect_errors
          steps:
            - { name: good, type: step.set, config: { values: { v: "{{ .n }}" } } }
            - { name: bad, type: step.validate, config: { required_fields: [zz] } }
      - { name: e, type: step.test.echo }
`
	err, ins := builtinRun(t, src, "each", map[string]any{"list": []any{"a", "b"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(ins) != 3 || ins[0].Config["seen"] != "0=a/0" || ins[1].Config["seen"] != "1=b/1" {
		t.Errorf("sub-step inputs: %v", ins)
	}
	out := lastOut(t, ins, "f")
	if out["count"] != 2 || len(out["results"].([]any)) != 2 {
		t.Errorf("foreach output %#v", out)
	}
	if _, leaked := ins[2].Current["label"]; leaked {
		t.Error("a sub-step output leaked into the pipeline's current data")
	}
	err, _ = builtinRun(t, src, "notalist", map[string]any{"list": "x"})
	wantErrText(t, err, `foreach step "f": expected a slice, got string`)
	err, _ = builtinRun(t, src, "notalist", nil)
	wantErrText(t, err, `foreach step "f": collection "list" not found in context`)

	err, ins = builtinRun(t, src, "par", map[string]any{"n": 1.0})
	if err != nil {
		t.Fatal(err)
	}
	out = lastOut(t, ins, "p")
	if out["completed"] != 1 || out["failed"] != 1 || out["results"].(map[string]any)["good"].(map[string]any)["v"] != "1" {
		t.Errorf("parallel output %#v", out)
	}
	if msg := out["errors"].(map[string]any)["bad"]; msg != `validate step "bad": missing required fields: zz` {
		t.Errorf("parallel error %#v", msg)
	}
}

// engine-pipelines.md §3.11, §3.12: branch and retry_with_backoff.
func TestBuiltinBranchRetry(t *testing.T) {
	t.Parallel()
	src := `pipelines:
  branch:
    steps:
      - name: b
        type: step.branch
        config:
          field: kind
          branches:
            a: [{ name: set-a, type: step.set, config: { values: { got: a } } }]
          default: [{ name: set-d, type: step.set, config: { values: { got: d } } }]
          merge_step: end
      - { name: skipped, type: step.test.echo, config: { which: skipped } }
      - { name: end, type: step.test.echo, config: { which: end, got: "{{ .got }}" } }
  retry:
    steps:
      - name: r
        type: step.retry_with_backoff
        config: { max_retries: 2, initial_delay: 1ms, step: { type: step.validate, config: { required_fields: [never] } } }
  retry-ok:
    steps:
      - { name: r, type: step.retry_with_backoff, config: { initial_delay: 1ms, step: { type: step.set, config: { values: { x: "1" } } } } }
      - { name: e, type: step.test.echo }
`
	err, ins := builtinRun(t, src, "branch", map[string]any{"kind": "a"})
	if err != nil {
		t.Fatal(err)
	}
	if len(ins) != 1 || ins[0].Config["got"] != "a" || !reflect.DeepEqual(ins[0].StepOutputs["b"], map[string]any{"matched_value": "a", "branch": "a"}) {
		t.Errorf("branch: %v", ins)
	}
	err, ins = builtinRun(t, src, "branch", map[string]any{"kind": "z"})
	if err != nil || len(ins) != 1 || ins[0].Config["got"] != "d" {
		t.Errorf("branch default: %v %v", err, ins)
	}
	err, _ = builtinRun(t, src, "retry", nil)
	wantErrText(t, err, `retry_with_backoff step "r": all 3 attempts failed: validate step "r-step": missing required fields: never`)
	err, ins = builtinRun(t, src, "retry-ok", nil)
	if err != nil || !reflect.DeepEqual(lastOut(t, ins, "r"), map[string]any{"x": "1", "retry_attempts": 0}) {
		t.Errorf("retry success: %v %v", err, ins)
	}
}

// engine-pipelines.md §3.7, §3.16: workflow_call and pipeline_output.
func TestBuiltinWorkflowCall(t *testing.T) {
	t.Parallel()
	src := `pipelines:
  parent:
    steps:
      - { name: call, type: step.workflow_call, config: { workflow: "{{ .target }}", input: { who: "{{ .name }}" }, output_mapping: { greeting: steps.greet.text } } }
      - { name: whole, type: step.workflow_call, config: { workflow: child } }
      - { name: e, type: step.test.echo }
  child:
    steps:
      - { name: greet, type: step.set, config: { values: { text: "hi ${ who }" } } }
      - { name: out, type: step.pipeline_output, config: { values: { text: "{{ .text }}" } } }
      - { name: never, type: step.validate, config: { required_fields: [x] } }
  failing:
    steps:
      - { name: call, type: step.workflow_call, config: { workflow: child2 } }
  child2:
    steps:
      - { name: v, type: step.validate, config: { required_fields: [x] } }
`
	err, ins := builtinRun(t, src, "parent", map[string]any{"target": "child", "name": "ann"})
	if err != nil {
		t.Fatal(err)
	}
	if got := lastOut(t, ins, "call"); !reflect.DeepEqual(got, map[string]any{"greeting": "hi ann"}) {
		t.Errorf("mapped output %#v", got)
	}
	result := lastOut(t, ins, "whole")["result"].(map[string]any)
	if result["text"] != "hi " || result["_pipeline_output"] == nil || result["target"] != "child" {
		t.Errorf("whole result %#v", result)
	}
	err, _ = builtinRun(t, src, "failing", nil)
	wantErrText(t, err, `step "call" failed: workflow_call step "call": workflow "child2" failed: step "v" failed: validate step "v": missing required fields: x`)
	err, _ = builtinRun(t, src, "parent", map[string]any{"target": "nope"})
	wantErrText(t, err, `workflow_call step "call": pipeline "nope" not found`)
}

// engine-pipelines.md §3.13: step.http_call against a real HTTP server.
func TestBuiltinHTTPCall(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var seen []string
	var tokens int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		seen = append(seen, fmt.Sprintf("%s %s ct=%s auth=%s x=%s %s", r.Method, r.URL.RequestURI(), r.Header.Get("Content-Type"), r.Header.Get("Authorization"), r.Header.Get("X-Id"), body))
		if r.URL.Path == "/token" {
			tokens++
		}
		mu.Unlock()
		switch r.URL.Path {
		case "/token":
			_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "tok", "expires_in": 3600})
		case "/fail":
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, "down")
		case "/text":
			w.Header().Add("X-Multi", "a")
			w.Header().Add("X-Multi", "b")
			_, _ = io.WriteString(w, "plain")
		default:
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"n":1234567,"ok":true}`)
		}
	}))
	t.Cleanup(srv.Close)
	src := fmt.Sprintf(`pipelines:
  get:
    steps:
      - { name: h, type: step.http_call, config: { url: "%[1]s/items/{{ .id }}?q={{ urlEncode .q }}", headers: { X-Id: "{{ .id }}" } } }
      - { name: e, type: step.test.echo, config: { n: "{{ .body.n }}" } }
  post-current:
    steps:
      - { name: h, type: step.http_call, config: { url: "%[1]s/in", method: POST } }
  post-body:
    steps:
      - { name: h, type: step.http_call, config: { url: "%[1]s/in", method: PUT, body: { id: "{{ .id }}", n: 2 } } }
  text:
    steps:
      - { name: h, type: step.http_call, config: { url: "%[1]s/text" } }
      - { name: e, type: step.test.echo }
  fail:
    steps:
      - { name: h, type: step.http_call, config: { url: "%[1]s/fail" } }
  fail-ok:
    steps:
      - { name: h, type: step.http_call, config: { url: "%[1]s/fail", error_on_status: false } }
      - { name: e, type: step.test.echo }
  oauth:
    steps:
      - { name: h, type: step.http_call, config: { url: "%[1]s/x", auth: { type: oauth2_client_credentials, token_url: "%[1]s/token", client_id: c, client_secret: s } } }
`, srv.URL)
	f := newFake(testCatalog(t))
	r := startRunner(t, src, f)
	run := func(p string, data map[string]any) error {
		return r.TriggerWorkflow(context.Background(), p, "", data)
	}
	last := func() runner.StepInput { ins := f.inputList(); return ins[len(ins)-1] }
	lastSeen := func() string { mu.Lock(); defer mu.Unlock(); return seen[len(seen)-1] }

	if err := run("get", map[string]any{"id": "a-1", "q": "x y"}); err != nil {
		t.Fatal(err)
	}
	if got := lastSeen(); got != "GET /items/a-1?q=x+y ct= auth= x=a-1 " {
		t.Errorf("request: %s", got)
	}
	out := last().StepOutputs["h"]
	if out["status_code"] != 200 || out["status"] != "200 OK" || out["body"].(map[string]any)["ok"] != true || out["headers"].(map[string]any)["Content-Type"] != "application/json" {
		t.Errorf("output %#v", out)
	}
	if _, ok := out["elapsed_ms"].(int64); !ok {
		t.Errorf("elapsed_ms %#v", out["elapsed_ms"])
	}
	// A JSON body's numbers are float64 (§2.4).
	if got := last().Config["n"]; got != "1.234567e+06" {
		t.Errorf("body number rendered %q", got)
	}
	if err := run("post-current", map[string]any{"id": "a-2"}); err != nil {
		t.Fatal(err)
	}
	if got := lastSeen(); got != `POST /in ct=application/json auth= x= {"id":"a-2"}` {
		t.Errorf("POST without a body sends current: %s", got)
	}
	if err := run("post-body", map[string]any{"id": "a-3"}); err != nil {
		t.Fatal(err)
	}
	if got := lastSeen(); got != `PUT /in ct=application/json auth= x= {"id":"a-3","n":2}` {
		t.Errorf("PUT with a body: %s", got)
	}
	if err := run("text", nil); err != nil {
		t.Fatal(err)
	}
	if out := last().StepOutputs["h"]; out["body"] != "plain" || !reflect.DeepEqual(out["headers"].(map[string]any)["X-Multi"], []any{"a", "b"}) {
		t.Errorf("text output %#v", out)
	}
	wantErrText(t, run("fail", nil), `step "h" failed: http_call step "h": HTTP 503: down`)
	if err := run("fail-ok", nil); err != nil || last().StepOutputs["h"]["status_code"] != 503 {
		t.Errorf("error_on_status false: %v", err)
	}
	for range 2 {
		if err := run("oauth", nil); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if tokens != 1 || !strings.Contains(seen[len(seen)-1], "auth=Bearer tok") {
		t.Errorf("oauth: %d token requests, last request %s", tokens, seen[len(seen)-1])
	}
}

// engine-pipelines.md §3.17: an engine built-in eventbus run lacks is a
// build error, never skipped.
func TestBuiltinUnavailable(t *testing.T) {
	t.Parallel()
	f := newFake(testCatalog(t))
	cfg := mustParse(t, "pipelines:\n  p:\n    steps: [{ name: q, type: step.db_query, config: { query: x } }]\n", nil)
	_, err := runner.New(cfg, f, nil)
	wantErrText(t, err, "unknown step type: step.db_query (an engine built-in not available in eventbus run)")
	if !runner.IsEngineStepType("step.db_query") || runner.IsEngineStepType("step.fail") || !runner.IsEngineStepType("step.workflow_call") {
		t.Error("IsEngineStepType disagrees with the engine's list")
	}
	for _, typ := range runner.BuiltinStepTypes() {
		if !runner.IsEngineStepType(typ) {
			t.Errorf("built-in %s is not an engine step type", typ)
		}
	}
}
