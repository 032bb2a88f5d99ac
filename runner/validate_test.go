package runner_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/wfeventbus/eventbus/runner"
)

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		src   string
		want  []wantProblem
		warns []wantProblem
	}{
		{
			name: "valid app",
			src: `modules:
  - name: bus
    type: eventbus.broker
  - name: orders-stream
    type: eventbus.stream
    dependsOn: [bus]
    config: { name: ORDERS, subjects: ["orders.>"], max_age: 24h, num_replicas: "1", broker_ref: bus }
pipelines:
  orders:
    trigger:
      type: trigger.eventbus.subscribe
      config: { name: worker, stream_name: ORDERS, bus: bus, concurrency: 4 }
    steps:
      - name: publish
        type: step.eventbus.publish
        config:
          subject: "done.{{ .trigger.subject }}"
          expected_last_sequence: "{{ .steps.x.seq }}"
          payload: { id: "{{ .trigger.payload.id }}" }
          broker_ref: "{{ .meta.broker }}"
      - name: log
        type: step.log
        config: { level: warn, message: "published {{ .steps.publish.sequence }}" }
      - name: set
        type: step.set
        config: { values: { a: "{{ .x }}" } }
      - name: check
        type: step.validate
        if: "{{ .boom }}"
        config: { required_fields: [id] }
  untriggered:
    steps:
      - { name: only, type: step.test.echo, config: { any: thing } }
`,
		},
		{
			name: "unknown step type",
			src: `pipelines:
  orders:
    steps:
      - name: a
        type: step.log
        config: { message: hi }
      - name: b
        type: step.eventbus.publsh
`,
			want: []wantProblem{{8, "pipelines.orders.steps[1].type", runner.ErrUnknownType}},
		},
		{
			name: "unknown module and trigger types",
			src: `modules:
  - name: bus
    type: eventbus.brokr
pipelines:
  orders:
    trigger:
      type: http
`,
			want: []wantProblem{
				{3, "modules[0].type", runner.ErrUnknownType},
				{7, "pipelines.orders.trigger.type", runner.ErrUnknownType},
			},
		},
		{
			name: "missing names and types",
			src: `modules:
  - type: eventbus.broker
  - name: bus
pipelines:
  p:
    trigger:
      config: { name: w }
    steps:
      - type: step.log
        config: { message: x }
      - name: typeless
`,
			want: []wantProblem{
				{2, "modules[0].name", runner.ErrMissingField},
				{3, "modules[1].type", runner.ErrMissingField},
				{7, "pipelines.p.trigger.type", runner.ErrMissingField},
				{11, "pipelines.p.steps[1].type", runner.ErrMissingField},
			},
			warns: []wantProblem{{9, "pipelines.p.steps[0].name", runner.ErrMissingField}},
		},
		{
			name: "duplicate module and step names",
			src: `modules:
  - name: bus
    type: eventbus.broker
  - name: bus
    type: eventbus.broker
pipelines:
  p:
    steps:
      - { name: a, type: step.log, config: { message: x } }
      - { name: a, type: step.log, config: { message: y } }
    compensation:
      - { name: a, type: step.log, config: { message: z } }
`,
			want: []wantProblem{
				{4, "modules[1].name", runner.ErrDuplicate},
			},
			warns: []wantProblem{
				{10, "pipelines.p.steps[1].name", runner.ErrDuplicate},
				{12, "pipelines.p.compensation[0].name", runner.ErrDuplicate},
			},
		},
		{
			name: "dependsOn unknown, self and cycle",
			src: `modules:
  - name: a
    type: eventbus.broker
    dependsOn: [b]
  - name: b
    type: eventbus.broker
    dependsOn:
      - c
      - a
  - name: c
    type: eventbus.broker
    dependsOn: [c, ghost]
`,
			want: []wantProblem{
				{9, "modules[1].dependsOn[1]", runner.ErrDependencyCycle},
				{12, "modules[2].dependsOn[1]", runner.ErrUnknownReference},
			},
			warns: []wantProblem{{12, "modules[2].dependsOn[0]", runner.ErrDependencyCycle}},
		},
		{
			name: "module references",
			src: `modules:
  - name: bus
    type: eventbus.broker
  - name: s
    type: eventbus.stream
    config: { name: S, broker_ref: buss }
pipelines:
  p:
    trigger:
      type: trigger.eventbus.subscribe
      config:
        name: w
        bus: nope
    steps:
      - name: pub
        type: step.eventbus.publish
        config:
          subject: x
          broker_ref: other
      - name: templated
        type: step.eventbus.publish
        config: { subject: x, broker_ref: "{{ .which }}" }
`,
			want: []wantProblem{
				{6, "modules[1].config.broker_ref", runner.ErrUnknownReference},
				{13, "pipelines.p.trigger.config.bus", runner.ErrUnknownReference},
				{19, "pipelines.p.steps[0].config.broker_ref", runner.ErrUnknownReference},
			},
		},
		{
			name: "typed contract of a module",
			src: `modules:
  - name: s
    type: eventbus.stream
    config:
      name: S
      subjectz: [a]
      num_replicas: many
      max_age: 30
      max_msgs: "{{ .n }}"
`,
			want: []wantProblem{
				{6, "modules[0].config.subjectz", runner.ErrUnknownField},
				{7, "modules[0].config.num_replicas", runner.ErrInvalidValue},
				{8, "modules[0].config.max_age", runner.ErrWrongType},
				{9, "modules[0].config.max_msgs", runner.ErrInvalidValue},
			},
		},
		{
			name: "typed contract of a step, nested",
			src: `pipelines:
  p:
    steps:
      - name: pub
        type: step.eventbus.publish
        config:
          expected_last_sequence: "{{ .seq }}"
          messages:
            - subject: a
            - subject: b
              bogus: 1
          headers: [x]
`,
			want: []wantProblem{
				{11, "pipelines.p.steps[0].config.messages[1].bogus", runner.ErrUnknownField},
				{12, "pipelines.p.steps[0].config.headers", runner.ErrWrongType},
			},
		},
		{
			name: "typed contract of a trigger",
			src: `pipelines:
  p:
    trigger:
      type: trigger.eventbus.subscribe
      config:
        name: w
        concurrency: "{{ .n }}"
        ordered: true
`,
			want: []wantProblem{
				{7, "pipelines.p.trigger.config.concurrency", runner.ErrInvalidValue},
				{8, "pipelines.p.trigger.config.ordered", runner.ErrUnknownField},
			},
		},
		{
			name: "strict contract encoded as the engine does",
			src: `pipelines:
  p:
    steps:
      - name: consume
        type: step.eventbus.consume
        config:
          consumer: c
          max_wait: 1m30s
`,
			want: []wantProblem{{8, "pipelines.p.steps[0].config.max_wait", runner.ErrInvalidValue}},
		},
		{
			// engine-pipelines.md §3: each built-in's build errors.
			name: "built-in steps",
			src: `pipelines:
  p:
    steps:
      - name: log
        type: step.log
        config: { level: loud }
      - name: log2
        type: step.log
        config: { message: hi, mesage: typo }
      - name: set
        type: step.set
      - name: set2
        type: step.set
        config: { values: [a] }
      - name: engine-only
        type: step.db_query
      - name: foreach
        type: step.foreach
        config: { collection: items, step: { type: step.nope } }
      - name: fail
        type: step.fail
`,
			want: []wantProblem{
				{6, "pipelines.p.steps[0].config", runner.ErrInvalidValue},
				{10, "pipelines.p.steps[2].config", runner.ErrInvalidValue},
				{14, "pipelines.p.steps[3].config", runner.ErrInvalidValue},
				{16, "pipelines.p.steps[4].type", runner.ErrUnsupported},
				{19, "pipelines.p.steps[5].config", runner.ErrInvalidValue},
				{21, "pipelines.p.steps[6].type", runner.ErrUnknownType},
			},
			warns: []wantProblem{{9, "pipelines.p.steps[1].config.mesage", runner.ErrUnknownField}},
		},
		{
			// engine-pipelines.md §2.2, §2.7: templates and expressions are
			// checked where they are resolved.
			name: "templates that do not parse",
			src: `pipelines:
  p:
    steps:
      - name: log
        type: step.log
        skip_if: "{{ if }}"
        config:
          message: "{{ .x "
      - name: pub
        type: step.eventbus.publish
        config:
          subject: "${ 1 + }"
          nested: { list: ["ok", "{{ nofunc }}", "{{ toJson . }}"] }
`,
			want: []wantProblem{
				{6, "pipelines.p.steps[0].skip_if", runner.ErrInvalidValue},
				{8, "pipelines.p.steps[0].config.message", runner.ErrInvalidValue},
				{12, "pipelines.p.steps[1].config.subject", runner.ErrInvalidValue},
				{13, "pipelines.p.steps[1].config.nested", runner.ErrUnknownField},
				{13, "pipelines.p.steps[1].config.nested.list[1]", runner.ErrInvalidValue},
				{13, "pipelines.p.steps[1].config.nested.list[2]", runner.ErrInvalidValue},
			},
		},
		{
			name: "top-level triggers",
			src: `pipelines:
  orders:
    steps: []
triggers:
  trigger.eventbus.subscribe:
    name: w
  trigger.eventbus.subscribe2:
    workflowType: pipeline:orders
`,
			want: []wantProblem{
				{5, `triggers["trigger.eventbus.subscribe"].workflowType`, runner.ErrMissingField},
				{7, `triggers["trigger.eventbus.subscribe2"]`, runner.ErrUnknownType},
			},
		},
		{
			name: "top-level trigger naming no pipeline",
			src: `pipelines:
  orders: {}
triggers:
  trigger.eventbus.subscribe:
    name: w
    workflowType: pipeline:ordres
`,
			want: []wantProblem{{6, `triggers["trigger.eventbus.subscribe"].workflowType`, runner.ErrUnknownReference}},
		},
		{
			name: "top-level trigger doubling a pipeline's",
			src: `pipelines:
  orders:
    trigger: { type: trigger.eventbus.subscribe, config: { name: w } }
triggers:
  trigger.eventbus.subscribe:
    name: w2
    workflowType: orders
`,
			want: []wantProblem{{7, `triggers["trigger.eventbus.subscribe"].workflowType`, runner.ErrDuplicate}},
		},
		{
			name: "expression blocks",
			src: `pipelines:
  p:
    steps:
      - name: log
        type: step.log
        config: { message: "hi ${ body.name } ${HOME} ${env:HOME}" }
      - name: pub
        type: step.eventbus.publish
        config: { subject: "${ body.subject }", payload: "${DATA}" }
`,
			want: []wantProblem{{6, "pipelines.p.steps[0].config.message", runner.ErrInvalidValue}},
			warns: []wantProblem{
				{6, "pipelines.p.steps[0].config.message", runner.ErrUnsupported},
				{6, "pipelines.p.steps[0].config.message", runner.ErrUnsupported},
				{9, "pipelines.p.steps[1].config.payload", runner.ErrUnsupported},
			},
		},
		{
			name: "pipeline name that cannot be a workflow type",
			src: `pipelines:
  "my orders":
    trigger: { type: trigger.eventbus.subscribe, config: { name: w } }
`,
			want: []wantProblem{{2, `pipelines["my orders"]`, runner.ErrInvalidValue}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := mustParse(t, tt.src, nil)
			checkProblems(t, runner.Validate(cfg, testCatalog(t)), tt.want)
			checkWarnings(t, cfg.Warnings, tt.warns)
		})
	}
}

func TestValidateMessage(t *testing.T) {
	t.Parallel()
	cfg := mustParse(t, `pipelines:
  orders:
    steps:
      - { name: a, type: step.log, config: { message: hi } }
      - name: b
        type: step.eventbus.publsh
`, nil)
	err := runner.Validate(cfg, testCatalog(t))
	var ce *runner.ConfigError
	if !errors.As(err, &ce) || len(ce.Problems) != 1 {
		t.Fatalf("want one problem, got %v", err)
	}
	want := `app.yaml:6: pipelines.orders.steps[1].type: unknown step type: step.eventbus.publsh (did you mean "step.eventbus.publish"?)`
	if got := ce.Problems[0].Error(); got != want {
		t.Errorf("message\n got %s\nwant %s", got, want)
	}
}

func TestValidateWithoutContracts(t *testing.T) {
	t.Parallel()
	cat := testCatalog(t)
	cat.Contracts = nil
	cat.ModuleRefKeys = []string{}
	cfg := mustParse(t, `modules:
  - name: s
    type: eventbus.stream
    config: { anything: goes, broker_ref: nowhere }
`, nil)
	if err := runner.Validate(cfg, cat); err != nil {
		t.Errorf("want no problem without contracts and reference keys, got %v", err)
	}
}

func TestValidateConfigBuiltInCode(t *testing.T) {
	t.Parallel()
	cfg := &runner.Config{
		Modules: []runner.Module{{Name: "bus", Type: "eventbus.broker"}, {Name: "x", Type: "nope"}},
		Pipelines: []runner.Pipeline{{
			Name:  "p",
			Steps: []runner.Step{{Name: "s", Type: "step.log", Config: map[string]any{"message": "hi"}}},
		}},
	}
	err := runner.Validate(cfg, testCatalog(t))
	var ce *runner.ConfigError
	if !errors.As(err, &ce) || len(ce.Problems) != 1 || ce.Problems[0].Field != "modules[1].type" || !errors.Is(err, runner.ErrUnknownType) {
		t.Fatalf("want one unknown module type, got %v", err)
	}
}

// checkWarnings asserts the warnings of a config, in order.
func checkWarnings(t *testing.T, got []*runner.Problem, want []wantProblem) {
	t.Helper()
	ok := len(got) == len(want)
	for i := 0; ok && i < len(want); i++ {
		ok = got[i].Pos.Line == want[i].line && got[i].Field == want[i].field && errors.Is(got[i], want[i].err)
	}
	if !ok {
		var lines []string
		for _, p := range got {
			lines = append(lines, p.Error())
		}
		t.Errorf("warnings differ\n got:\n  %s\nwant:\n  %v", strings.Join(lines, "\n  "), want)
	}
}

// engine-pipelines.md §1.7: a ${NAME} the engine leaves as written is
// named, with its line, as a warning, and on any problem of its field.
func TestValidateUnsetVariables(t *testing.T) {
	t.Parallel()
	src := `modules:
  - name: bus
    type: eventbus.broker
    config:
      embedded:
        port: ${PORT}
        store_dir: ${DIR}
        host: ${HOST:-127.0.0.1}
`
	cfg := mustParse(t, src, nil)
	err := runner.Validate(cfg, testCatalog(t))
	checkProblems(t, err, []wantProblem{{6, "modules[0].config.embedded.port", runner.ErrInvalidValue}})
	if !strings.Contains(err.Error(), "(${PORT} is left as written: PORT is not set)") {
		t.Errorf("the problem does not name the variable: %v", err)
	}
	checkWarnings(t, cfg.Warnings, []wantProblem{
		{6, "modules[0].config.embedded.port", runner.ErrInvalidValue},
		{7, "modules[0].config.embedded.store_dir", runner.ErrInvalidValue},
		{8, "modules[0].config.embedded.host", runner.ErrInvalidValue},
	})
	if !strings.Contains(cfg.Warnings[1].Error(), "${DIR} is left as written: DIR is not set") {
		t.Errorf("warning %v", cfg.Warnings[1])
	}
	// A plugin that resolves defaults: ${HOST:-...} is fine, and the port
	// is checked as the plugin will read it.
	cat := testCatalog(t)
	cat.EnvDefaults = true
	cfg = mustParse(t, src, map[string]string{"PORT": "4222"})
	if err := runner.Validate(cfg, cat); err != nil {
		t.Fatal(err)
	}
	checkWarnings(t, cfg.Warnings, []wantProblem{{7, "modules[0].config.embedded.store_dir", runner.ErrInvalidValue}})
}
