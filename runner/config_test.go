package runner_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/wfeventbus/eventbus/runner"
)

func TestParseProblems(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		src  string
		want []wantProblem
	}{
		{
			name: "syntax error",
			src:  "modules: [a, b\npipelines: {}\n",
			want: []wantProblem{{1, "", runner.ErrSyntax}},
		},
		{
			name: "syntax error without a line",
			src:  "a: b: c\n",
			want: []wantProblem{{0, "", runner.ErrSyntax}},
		},
		{
			name: "document is a list",
			src:  "- a\n- b\n",
			want: []wantProblem{{1, "", runner.ErrWrongType}},
		},
		{
			name: "misspelt top-level key and unsupported imports",
			src:  "pipeline: {}\nimports: [a.yaml]\nworkflows: { http: {} }\nrequires: {}\nx-defaults: &d {}\ncustom: 1\n",
			want: []wantProblem{
				{1, "pipeline", runner.ErrUnknownField},
				{2, "imports", runner.ErrUnsupported},
			},
		},
		{
			name: "wrong kinds",
			src: `modules:
  - just-a-string
  - name: [a]
    type: eventbus.broker
    dependsOn: bus
    config: [1, 2]
pipelines:
  p:
    steps: { a: b }
    trigger: trigger.eventbus.subscribe
`,
			want: []wantProblem{
				{2, "modules[0]", runner.ErrWrongType},
				{3, "modules[1].name", runner.ErrWrongType},
				{5, "modules[1].dependsOn", runner.ErrWrongType},
				{6, "modules[1].config", runner.ErrWrongType},
				{9, "pipelines.p.steps", runner.ErrWrongType},
				{10, "pipelines.p.trigger", runner.ErrWrongType},
			},
		},
		{
			name: "unknown keys with suggestions",
			src: `modules:
  - name: a
    type: eventbus.broker
    confg: {}
pipelines:
  p:
    stepz: []
    steps:
      - name: s
        type: step.log
        cnfig: {}
    trigger:
      type: x
      configs: {}
`,
			want: []wantProblem{
				{4, "modules[0].confg", runner.ErrUnknownField},
				{7, "pipelines.p.stepz", runner.ErrUnknownField},
				{11, "pipelines.p.steps[0].cnfig", runner.ErrUnknownField},
				{14, "pipelines.p.trigger.configs", runner.ErrUnknownField},
			},
		},
		{
			name: "duplicate keys",
			src: `pipelines:
  p: {}
  p: {}
modules:
  - name: a
    name: b
`,
			want: []wantProblem{
				{3, "pipelines.p", runner.ErrDuplicate},
				{6, "modules[0].name", runner.ErrDuplicate},
			},
		},
		{
			name: "bad durations, policies and flags",
			src: `pipelines:
  p:
    timeout: 30
    on_error: retry
    strict_templates: maybe
    steps:
      - name: s
        type: step.log
        timeout: -1s
        on_error: compensate
`,
			want: []wantProblem{
				{3, "pipelines.p.timeout", runner.ErrInvalidValue},
				{4, "pipelines.p.on_error", runner.ErrInvalidValue},
				{5, "pipelines.p.strict_templates", runner.ErrWrongType},
				{9, "pipelines.p.steps[0].timeout", runner.ErrInvalidValue},
				{10, "pipelines.p.steps[0].on_error", runner.ErrInvalidValue},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := runner.Parse("app.yaml", []byte(tt.src), nil)
			checkProblems(t, err, tt.want)
		})
	}
}

func TestParseShape(t *testing.T) {
	t.Parallel()
	cfg := mustParse(t, `x-defaults: &defaults
  max_age: 1h
  subjects: ["a.>"]
modules:
  - name: bus
    type: eventbus.broker
  - name: s
    type: eventbus.stream
    dependsOn: [bus]
    config:
      <<: *defaults
      name: S
      max_age: 2h
pipelines:
  second:
    timeout: 5s
    on_error: skip
    strict_templates: true
    trigger:
      type: trigger.eventbus.subscribe
      config: { name: w, concurrency: 2, ratio: 0.5, on: true, none: null, when: 2024-01-02 }
    steps:
      - name: a
        type: step.log
        if: "{{ .x }}"
        skip_if: "{{ .y }}"
        timeout: 1s
        on_error: stop
        config: { message: hi }
    compensation:
      - { name: undo, type: step.log, config: { message: undo } }
  first:
    steps: []
triggers:
  trigger.eventbus.subscribe:
    workflowType: pipeline:first
`, nil)
	if got := len(cfg.Modules); got != 2 {
		t.Fatalf("modules: got %d", got)
	}
	wantStream := map[string]any{"max_age": "2h", "subjects": []any{"a.>"}, "name": "S"}
	if !reflect.DeepEqual(cfg.Modules[1].Config, wantStream) {
		t.Errorf("merged config: got %#v, want %#v", cfg.Modules[1].Config, wantStream)
	}
	if !reflect.DeepEqual(cfg.Modules[1].DependsOn, []string{"bus"}) {
		t.Errorf("dependsOn: got %v", cfg.Modules[1].DependsOn)
	}
	if cfg.Modules[1].Pos.Line != 7 || cfg.Modules[1].Pos.File != "app.yaml" {
		t.Errorf("module position: got %v", cfg.Modules[1].Pos)
	}
	if len(cfg.Pipelines) != 2 || cfg.Pipelines[0].Name != "second" || cfg.Pipelines[1].Name != "first" {
		t.Fatalf("pipelines not in declaration order: %+v", cfg.Pipelines)
	}
	p := cfg.Pipelines[0]
	if p.Timeout != 5*time.Second || p.OnError != "skip" || !p.StrictTemplates {
		t.Errorf("pipeline settings: %+v", p)
	}
	wantTrigger := map[string]any{"name": "w", "concurrency": 2, "ratio": 0.5, "on": true, "none": nil, "when": "2024-01-02"}
	if p.Trigger == nil || p.Trigger.Type != "trigger.eventbus.subscribe" || !reflect.DeepEqual(p.Trigger.Config, wantTrigger) {
		t.Errorf("trigger: got %+v", p.Trigger)
	}
	s := p.Steps[0]
	if s.If != "{{ .x }}" || s.SkipIf != "{{ .y }}" || s.Timeout != time.Second || s.OnError != "stop" {
		t.Errorf("step settings: %+v", s)
	}
	if len(p.Compensation) != 1 || p.Compensation[0].Name != "undo" {
		t.Errorf("compensation: %+v", p.Compensation)
	}
	if len(cfg.Triggers) != 1 || cfg.Triggers[0].Config["workflowType"] != "pipeline:first" {
		t.Errorf("top-level triggers: %+v", cfg.Triggers)
	}
}

func TestParseEmpty(t *testing.T) {
	t.Parallel()
	for _, src := range []string{"", "# nothing\n", "~\n"} {
		cfg, err := runner.Parse("app.yaml", []byte(src), nil)
		if err != nil || len(cfg.Modules) != 0 || len(cfg.Pipelines) != 0 {
			t.Errorf("Parse(%q): got %+v, %v", src, cfg, err)
		}
	}
}

func TestEnvExpansion(t *testing.T) {
	t.Parallel()
	env := map[string]string{"SET": "value", "EMPTY": "", "PORT": "4222"}
	tests := []struct {
		in, want string
	}{
		{"${SET}", "value"},
		{"${UNSET}", ""},
		{"${UNSET:-fallback}", "fallback"},
		{"${EMPTY:-fallback}", "fallback"},
		{"${SET:-fallback}", "value"},
		{"nats://127.0.0.1:${PORT}/x", "nats://127.0.0.1:4222/x"},
		{"${SET}-${PORT}", "value-4222"},
		{"${UNSET:-}", ""},
		{"$SET", "$SET"},
		{"${ body.name }", "${ body.name }"},
		{"${1BAD}", "${1BAD}"},
		{"{{ .x }}", "{{ .x }}"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			cfg := mustParse(t, "modules:\n  - name: m\n    type: t\n    config:\n      v: \""+tt.in+"\"\n      list: [\""+tt.in+"\"]\n", env)
			got := cfg.Modules[0].Config
			if got["v"] != tt.want || got["list"].([]any)[0] != tt.want {
				t.Errorf("expand %q: got %q and %q, want %q", tt.in, got["v"], got["list"], tt.want)
			}
		})
	}
	t.Run("names and types", func(t *testing.T) {
		t.Parallel()
		cfg := mustParse(t, "modules:\n  - name: ${NAME:-bus}\n    type: ${TYPE}\n", map[string]string{"TYPE": "eventbus.broker"})
		if m := cfg.Modules[0]; m.Name != "bus" || m.Type != "eventbus.broker" {
			t.Errorf("got name %q type %q", m.Name, m.Type)
		}
	})
}

func TestCheck(t *testing.T) {
	t.Parallel()
	src := `modules:
  - name: bus
    type: eventbus.brokr
    confg: {}
  - name: [x]
    type: eventbus.broker
pipelines:
  p:
    steps:
      - name: s
        type: step.nope
`
	_, err := runner.Check("app.yaml", []byte(src), nil, testCatalog(t))
	checkProblems(t, err, []wantProblem{
		{3, "modules[0].type", runner.ErrUnknownType},
		{4, "modules[0].confg", runner.ErrUnknownField},
		{5, "modules[1].name", runner.ErrWrongType},
		{11, "pipelines.p.steps[0].type", runner.ErrUnknownType},
	})
}

func TestFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "app.yaml")
	if err := os.WriteFile(path, []byte("modules:\n  - name: bus\n    type: eventbus.broker\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, load := range map[string]func() (*runner.Config, error){
		"Load":      func() (*runner.Config, error) { return runner.Load(path, nil) },
		"CheckFile": func() (*runner.Config, error) { return runner.CheckFile(path, nil, testCatalog(t)) },
	} {
		cfg, err := load()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if cfg.Dir != dir || cfg.File != path || len(cfg.Modules) != 1 {
			t.Errorf("%s: got dir %q file %q modules %d", name, cfg.Dir, cfg.File, len(cfg.Modules))
		}
	}
	if _, err := runner.Load(filepath.Join(dir, "missing.yaml"), nil); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load of a missing file: got %v", err)
	}
}
