package runner_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
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
			want: []wantProblem{{1, "", runner.ErrSyntax}},
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
			// engine-pipelines.md §1.4: a pipeline timeout that does not
			// parse fails the build; on_error typos and step-level
			// on_error/timeout are accepted (warnings, see
			// TestParseWarnings).
			name: "bad durations and flags",
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
        error_status: "400"
`,
			want: []wantProblem{
				{3, "pipelines.p.timeout", runner.ErrInvalidValue},
				{5, "pipelines.p.strict_templates", runner.ErrWrongType},
				{11, "pipelines.p.steps[0].error_status", runner.ErrWrongType},
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

// A YAML error is reported at the line it is on, not where the block the
// parser was reading began.
func TestSyntaxErrorLine(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		src  string
		line int
		text string
	}{
		{"modules:\n  - name: bus\n    type: eventbus.broker\n   config: {}\n", 4, "the YAML parser reports line 1"},
		{"a: 1\nb:\n  c: 2\n d: 3\n", 4, "the YAML parser reports line 3"},
		{"modules:\n  - name: bus\n    type: eventbus.broker\n      config: x\n", 4, "mapping values are not allowed"},
		{"a: [1, 2\nb: 3\n", 1, "did not find expected ',' or ']'"},
	} {
		_, err := runner.Parse("app.yaml", []byte(c.src), nil)
		var ce *runner.ConfigError
		if !errors.As(err, &ce) || len(ce.Problems) != 1 || ce.Problems[0].Pos.Line != c.line || !strings.Contains(err.Error(), c.text) {
			t.Errorf("Parse(%q): %v; want one problem at line %d mentioning %q", c.src, err, c.line, c.text)
		}
	}
}

// engine-pipelines.md §1.1, §1.4: what the engine accepts and ignores is
// a warning, never a problem.
func TestParseWarnings(t *testing.T) {
	t.Parallel()
	cfg, err := runner.Parse("app.yaml", []byte(`pipeline: {}
modules:
  - name: bus
    type: eventbus.broker
    confg: {}
pipelines:
  p:
    on_error: retry
    steps:
      - name: s
        type: step.log
        timeout: 1s
        on_error: skip
        condition: "{{ .x }}"
        config: { message: hi }
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range cfg.Warnings {
		got = append(got, fmt.Sprintf("%d %s", w.Pos.Line, w.Field))
	}
	want := []string{"1 pipeline", "5 modules[0].confg", "8 pipelines.p.on_error", "12 pipelines.p.steps[0].timeout", "13 pipelines.p.steps[0].on_error", "14 pipelines.p.steps[0].condition"}
	if !slices.Equal(got, want) {
		t.Errorf("warnings:\n got %q\nwant %q", got, want)
	}
}

// engine-pipelines.md §1.1: YAML values as yaml.v3 decodes them, and the
// second pass over pipelines that turns integral floats into ints.
func TestParseValueTypes(t *testing.T) {
	t.Parallel()
	cfg := mustParse(t, `modules:
  - name: m
    type: t
    config: { f: 1.0, e: 1e3, yes: yes, date: 2024-01-01, big: 18446744073709551615, hex: 0x1F }
pipelines:
  p:
    trigger: { type: t, config: { f: 1.0 } }
    steps: [{ name: s, type: step.set, config: { values: { f: 1.0, e: 1e3, half: 2.5, m: 1e6 } } }]
`, nil)
	mc := cfg.Modules[0].Config
	if mc["f"] != 1.0 || mc["e"] != 1000.0 || mc["yes"] != "yes" || mc["hex"] != 31 || mc["big"] != uint64(18446744073709551615) {
		t.Errorf("module config: %#v", mc)
	}
	if d, ok := mc["date"].(time.Time); !ok || d.Year() != 2024 {
		t.Errorf("unquoted date: %#v, want a time.Time", mc["date"])
	}
	vals := cfg.Pipelines[0].Steps[0].Config["values"].(map[string]any)
	if vals["f"] != 1 || vals["e"] != 1000 || vals["half"] != 2.5 || vals["m"] != 1e6 {
		t.Errorf("step config after the round trip: %#v", vals)
	}
	if f := cfg.Pipelines[0].Trigger.Config["f"]; f != 1 {
		t.Errorf("trigger config after the round trip: %#v", f)
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
	wantTrigger := map[string]any{"name": "w", "concurrency": 2, "ratio": 0.5, "on": true, "none": nil, "when": time.Date(2024, 1, 2, 0, 0, 0, 0, time.UTC)}
	if p.Trigger == nil || p.Trigger.Type != "trigger.eventbus.subscribe" || !reflect.DeepEqual(p.Trigger.Config, wantTrigger) {
		t.Errorf("trigger: got %+v", p.Trigger)
	}
	s := p.Steps[0]
	if s.If != "{{ .x }}" || s.SkipIf != "{{ .y }}" {
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

// engine-pipelines.md §1.7: ${...} in module config, with the engine's
// rules, and nowhere else.
func TestEnvExpansion(t *testing.T) {
	t.Parallel()
	env := map[string]string{"SET": "value", "EMPTY": "", "PORT": "4222", "NATS_URL": "nats://x", "DB_HOST": "db"}
	tests := []struct {
		in, want string
	}{
		{"${SET}", "value"},
		{"${env:SET}", "value"},
		{"${EMPTY}", ""},
		{"${nats_url}", "nats://x"},
		{"${db.host}", "db"},
		{"nats://127.0.0.1:${PORT}/x", "nats://127.0.0.1:4222/x"},
		{"${SET}-${PORT}", "value-4222"},
		{"${UNSET}", "${UNSET}"},
		{"${SET}-${UNSET}", "${SET}-${UNSET}"},
		{"${UNSET:-fallback}", "${UNSET:-fallback}"},
		{"${SET:-fallback}", "${SET:-fallback}"},
		{"${SET}:${PORT:-1}", "${SET}:${PORT:-1}"},
		{"${vault:secret}", "${vault:secret}"},
		{"${ SET }", "${ SET }"},
		{"$SET", "$SET"},
		{"${SET", "${SET"},
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
	t.Run("nowhere but module config", func(t *testing.T) {
		t.Parallel()
		cfg := mustParse(t, `modules:
  - name: ${NAME}
    type: ${TYPE}
pipelines:
  p:
    trigger: { type: t, config: { x: "${SET}" } }
    steps: [{ name: s, type: step.set, config: { values: { x: "${SET}" } } }]
triggers:
  t: { x: "${SET}" }
`, map[string]string{"TYPE": "eventbus.broker", "NAME": "bus", "SET": "value"})
		if m := cfg.Modules[0]; m.Name != "${NAME}" || m.Type != "${TYPE}" {
			t.Errorf("module name and type expanded: %q %q", m.Name, m.Type)
		}
		pl := cfg.Pipelines[0]
		if pl.Trigger.Config["x"] != "${SET}" || pl.Steps[0].Config["values"].(map[string]any)["x"] != "${SET}" || cfg.Triggers[0].Config["x"] != "${SET}" {
			t.Errorf("trigger or step config expanded: %v %v %v", pl.Trigger.Config, pl.Steps[0].Config, cfg.Triggers[0].Config)
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
