package runner_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wfeventbus/eventbus/runner"
)

// hangGuard bounds a test's waits; reaching it means the test hangs.
const hangGuard = 20 * time.Second

func fixedClock() time.Time { return time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC) }

// startRunner builds and starts a Runner on a fake plugin.
func startRunner(t *testing.T, src string, f *fakePlugin, opts ...runner.Option) *runner.Runner {
	t.Helper()
	r := newRunner(t, src, f, opts...)
	if err := r.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
		defer cancel()
		_ = r.Stop(ctx)
	})
	return r
}

func newRunner(t *testing.T, src string, f *fakePlugin, opts ...runner.Option) *runner.Runner {
	t.Helper()
	cfg := mustParse(t, src, nil)
	r, err := runner.New(cfg, f, nil, append([]runner.Option{runner.WithClock(fixedClock)}, opts...)...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return r
}

func TestLifecycleOrder(t *testing.T) {
	t.Parallel()
	src := `modules:
  - name: c
    type: eventbus.consumer
    dependsOn: [b]
    config: { name: dur, stream_name: S }
  - name: a
    type: eventbus.broker
  - name: b
    type: eventbus.stream
    dependsOn: [a]
    config: { name: S, subjects: ["s.>"] }
  - name: d
    type: eventbus.broker
pipelines:
  orders:
    trigger:
      type: trigger.eventbus.subscribe
      config: { name: dur, workflowType: ignored }
    steps:
      - name: log
        type: step.log
        config: { message: "{{ .trigger.id }}" }
      - name: pub
        type: step.eventbus.publish
        config: { subject: "x.{{ .trigger.id }}" }
    compensation:
      - name: undo
        type: step.test.echo
  quiet:
    steps:
      - { name: echo, type: step.test.echo }
triggers:
  trigger.eventbus.subscribe:
    name: other
    workflowType: pipeline:quiet
`
	cfg := mustParse(t, src, nil)
	cfg.Dir = "/apps/demo"
	f := newFake(testCatalog(t))
	r, err := runner.New(cfg, f, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := r.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"CreateModule a eventbus.broker",
		"CreateModule b eventbus.stream",
		"CreateModule c eventbus.consumer",
		"CreateModule d eventbus.broker",
		"InitModule m:a", "InitModule m:b", "InitModule m:c", "InitModule m:d",
		"CreateTrigger pipeline:quiet trigger.eventbus.subscribe",
		"CreateStep pub step.eventbus.publish",
		"CreateStep undo step.test.echo",
		"CreateTrigger pipeline:orders trigger.eventbus.subscribe",
		"CreateStep echo step.test.echo",
		"StartModule m:a", "StartModule m:b", "StartModule m:c", "StartModule m:d",
		"StartTrigger t:pipeline:quiet", "StartTrigger t:pipeline:orders",
		"StopTrigger t:pipeline:orders", "StopTrigger t:pipeline:quiet",
		"StopModule m:d", "StopModule m:c", "StopModule m:b", "StopModule m:a",
	}
	if got := f.callList(); !slices.Equal(got, want) {
		t.Errorf("calls\n got %q\nwant %q", got, want)
	}
	checks := []struct {
		handle string
		want   map[string]any
	}{
		{"m:b", map[string]any{"name": "S", "subjects": []any{"s.>"}, "_config_dir": "/apps/demo"}},
		{"m:a", map[string]any{"_config_dir": "/apps/demo"}},
		{"s:pub:0", map[string]any{"subject": "x.{{ .trigger.id }}", "_config_dir": "/apps/demo"}},
		{"t:pipeline:orders", map[string]any{"name": "dur", "workflowType": "pipeline:orders"}},
		{"t:pipeline:quiet", map[string]any{"name": "other", "workflowType": "pipeline:quiet"}},
	}
	for _, c := range checks {
		if got := f.config(c.handle); !reflect.DeepEqual(got, c.want) {
			t.Errorf("config of %s: got %#v, want %#v", c.handle, got, c.want)
		}
	}
	select {
	case <-r.Done():
	default:
		t.Error("Done is not closed after Stop")
	}
}

func TestPipelineRun(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	var logMu sync.Mutex
	logger := slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &logMu}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	f := newFake(testCatalog(t))
	cfg := mustParse(t, `pipelines:
  orders:
    trigger: { type: trigger.eventbus.subscribe, config: { name: w } }
    steps:
      - name: parse-request
        type: step.test.echo
        config:
          order: "{{ .trigger.payload.id }}"
          amount: "{{ .trigger.amount }}"
          untouched: 3
          pipeline: "{{ .meta.pipeline }}"
      - name: set
        type: step.set
        config:
          values:
            greeting: "hello {{ .steps.parse-request.order }}"
            nested: { list: ["{{ .order }}", 1] }
      - name: log
        type: step.log
        config: { level: warn, message: "logged {{ .greeting }} {{ step \"parse-request\" \"amount\" }}" }
      - name: final
        type: step.test.echo
        config: { seen: "{{ .greeting }}/{{ .amount }}" }
`, nil)
	r, err := runner.New(cfg, f, logger, runner.WithClock(fixedClock))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer r.Stop(context.Background())

	data := map[string]any{"payload": map[string]any{"id": "o-1"}, "amount": float64(1e6)}
	if err := r.TriggerWorkflow(context.Background(), "pipeline:orders", "", data); err != nil {
		t.Fatalf("TriggerWorkflow: %v", err)
	}
	inputs := f.inputList()
	if len(inputs) != 2 {
		t.Fatalf("want 2 plugin step executions, got %d", len(inputs))
	}
	first, last := inputs[0], inputs[1]
	// engine-pipelines.md §2.4, §5.2: a float64 renders with %v.
	wantFirstCfg := map[string]any{"order": "o-1", "amount": "1e+06", "untouched": 3, "pipeline": "orders"}
	if !reflect.DeepEqual(first.Config, wantFirstCfg) {
		t.Errorf("first config: got %#v", first.Config)
	}
	if !reflect.DeepEqual(first.TriggerData, data) || !reflect.DeepEqual(first.Current, data) || len(first.StepOutputs) != 0 {
		t.Errorf("first input: %+v", first)
	}
	wantMeta := map[string]any{"pipeline": "orders", "started_at": "2026-03-04T05:06:07Z"}
	if !reflect.DeepEqual(first.Metadata, wantMeta) {
		t.Errorf("metadata: got %#v", first.Metadata)
	}
	if got := last.Config["seen"]; got != "hello o-1/1e+06" {
		t.Errorf("final config: got %q", got)
	}
	wantSet := map[string]any{"greeting": "hello o-1", "nested": map[string]any{"list": []any{"o-1", 1}}}
	if !reflect.DeepEqual(last.StepOutputs["set"], wantSet) {
		t.Errorf("step.set output: got %#v", last.StepOutputs["set"])
	}
	if !reflect.DeepEqual(last.StepOutputs["log"], map[string]any{}) {
		t.Errorf("step.log output: got %#v", last.StepOutputs["log"])
	}
	if last.Current["greeting"] != "hello o-1" || last.Current["order"] != "o-1" || last.Current["payload"] == nil {
		t.Errorf("current does not merge outputs over trigger data: %#v", last.Current)
	}
	if !reflect.DeepEqual(last.TriggerData, data) {
		t.Errorf("trigger data changed: %#v", last.TriggerData)
	}
	logMu.Lock()
	out := logs.String()
	logMu.Unlock()
	if !strings.Contains(out, `level=WARN msg="logged hello o-1 1e+06" pipeline=orders step=log`) {
		t.Errorf("step.log record missing from:\n%s", out)
	}
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// engine-pipelines.md §4.2–§4.4 and §4.7: the step loop, guards, on_error
// policies and the error texts a failed run reports.
func TestPipelineErrors(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	f := newFake(testCatalog(t))
	f.exec = func(_ context.Context, h string, in runner.StepInput) (runner.StepResult, error) {
		if in.Config["fail"] == "yes" {
			return runner.StepResult{}, boom
		}
		return runner.StepResult{Output: map[string]any{"ran": h}, StopPipeline: in.Config["stop"] == "yes"}, nil
	}
	r := startRunner(t, `pipelines:
  stop:
    steps:
      - { name: a, type: step.test.echo, config: { fail: "{{ .fail }}" } }
      - { name: b, type: step.test.echo }
  skip:
    on_error: skip
    steps:
      - { name: a, type: step.test.echo, config: { fail: "yes" } }
      - { name: b, type: step.test.echo, config: { prev: "{{ .steps.a._error }}|{{ .steps.a._skipped }}|{{ ._error }}" } }
  step-policy:
    steps:
      - { name: a, type: step.test.echo, on_error: skip, timeout: 1s, config: { fail: "yes" } }
      - { name: b, type: step.test.echo }
  typo-policy:
    on_error: skipp
    steps:
      - { name: a, type: step.test.echo, config: { fail: "yes" } }
      - { name: b, type: step.test.echo }
  compensate:
    on_error: compensate
    steps:
      - { name: a, type: step.test.echo }
      - { name: b, type: step.test.echo, config: { fail: "yes" } }
      - { name: c, type: step.test.echo }
    compensation:
      - { name: undo-1, type: step.test.echo, config: { n: "1", fail: "{{ .undo_fails }}" } }
      - { name: undo-2, type: step.test.echo, config: { n: "2" } }
  stopper:
    steps:
      - { name: a, type: step.test.echo, config: { stop: "yes" } }
      - { name: b, type: step.test.echo, config: { fail: "yes" } }
  guards:
    steps:
      - { name: if-missing, type: step.test.echo, if: "{{ .missing }}", config: { n: "if-missing" } }
      - { name: skip-missing, type: step.test.echo, skip_if: "{{ .missing }}", config: { n: "skip-missing" } }
      - { name: if-False, type: step.test.echo, if: "False", config: { n: "if-False" } }
      - { name: if-0, type: step.test.echo, if: " 0 ", config: { n: "if-0" } }
      - { name: skip-error, type: step.test.echo, skip_if: "{{ .missing.deeper }}", config: { n: "skip-error" } }
      - { name: if-error, type: step.test.echo, if: "{{ .missing.deeper }}", config: { n: "if-error" } }
      - { name: both, type: step.test.echo, skip_if: "false", if: "{{ .go }}", config: { n: "both" } }
  routes:
    on_error: skip
    steps:
      - { name: a, type: step.conditional, config: { field: kind, routes: { x: c, loop: a, bad: nowhere }, default: b } }
      - { name: b, type: step.test.echo, config: { n: "b" } }
      - { name: c, type: step.test.echo, config: { n: "c" } }
  strict:
    strict_templates: true
    steps:
      - { name: a, type: step.test.echo, config: { x: "{{ .missing }}" } }
`, f)
	ctx := context.Background()
	run := func(name string, data map[string]any) error { return r.TriggerWorkflow(ctx, name, "", data) }
	executed := func(from int) []string {
		var names []string
		for _, in := range f.inputList()[from:] {
			names = append(names, fmt.Sprintf("%v %v %v", in.Config["fail"], in.Config["n"], in.Config["prev"]))
		}
		return names
	}

	t.Run("§4.4 stop: a failing step fails the run with the engine's text", func(t *testing.T) {
		n := len(f.inputList())
		err := run("stop", map[string]any{"fail": "yes"})
		var se *runner.StepError
		if !errors.As(err, &se) || se.Pipeline != "stop" || se.Step != "a" || !errors.Is(err, runner.ErrStepFailed) || !errors.Is(err, boom) {
			t.Fatalf("want a StepError of step a wrapping boom, got %v", err)
		}
		if want := `workflow execution failed: pipeline "stop" execution failed: step "a" failed: remote step execute: boom`; err.Error() != want {
			t.Errorf("error text:\n got %s\nwant %s", err, want)
		}
		if got := len(f.inputList()) - n; got != 1 {
			t.Errorf("steps after the failure ran: %d executions", got)
		}
	})
	t.Run("§4.4 skip continues with _error and _skipped recorded at both levels", func(t *testing.T) {
		n := len(f.inputList())
		if err := run("skip", nil); err != nil {
			t.Fatal(err)
		}
		got := executed(n)
		if want := "<nil> <nil> remote step execute: boom|true|remote step execute: boom"; len(got) != 2 || got[1] != want {
			t.Errorf("executions: %q, want the second to see %q", got, want)
		}
	})
	t.Run("§1.4 a step's on_error and timeout are ignored", func(t *testing.T) {
		var se *runner.StepError
		if err := run("step-policy", nil); !errors.As(err, &se) || se.Step != "a" {
			t.Fatalf("want step a to stop the run, got %v", err)
		}
	})
	t.Run("§1.4 an unknown on_error means stop", func(t *testing.T) {
		var se *runner.StepError
		if err := run("typo-policy", nil); !errors.As(err, &se) || se.Step != "a" {
			t.Fatalf("want step a to stop the run, got %v", err)
		}
	})
	t.Run("§4.4 compensate runs compensation in reverse", func(t *testing.T) {
		n := len(f.inputList())
		err := run("compensate", nil)
		if want := `workflow execution failed: pipeline "compensate" execution failed: step "b" failed: remote step execute: boom (compensation executed)`; err == nil || err.Error() != want {
			t.Fatalf("error:\n got %v\nwant %s", err, want)
		}
		got := executed(n)
		want := []string{"<nil> <nil> <nil>", "yes <nil> <nil>", "<nil> 2 <nil>", "<no value> 1 <nil>"}
		if !slices.Equal(got, want) {
			t.Errorf("executions: got %q, want %q", got, want)
		}
		err = run("compensate", map[string]any{"undo_fails": "yes"})
		if want := `step "b" failed: remote step execute: boom (compensation also failed: remote step execute: boom)`; err == nil || !strings.HasSuffix(err.Error(), want) {
			t.Errorf("error %v, want it to end in %s", err, want)
		}
	})
	t.Run("§4.2 stop_pipeline ends the run successfully", func(t *testing.T) {
		if err := run("stopper", nil); err != nil {
			t.Errorf("want success, got %v", err)
		}
	})
	t.Run("§4.3 guards", func(t *testing.T) {
		n := len(f.inputList())
		if err := run("guards", map[string]any{"go": "yes"}); err != nil {
			t.Fatal(err)
		}
		var ran []string
		for _, in := range f.inputList()[n:] {
			ran = append(ran, fmt.Sprint(in.Config["n"]))
		}
		if want := []string{"if-missing", "if-False", "skip-error", "both"}; !slices.Equal(ran, want) {
			t.Errorf("steps run: %q, want %q", ran, want)
		}
	})
	t.Run("§3.4 §4.2 routes jump and fall through; an unknown route bypasses on_error", func(t *testing.T) {
		n := len(f.inputList())
		if err := run("routes", map[string]any{"kind": "x"}); err != nil {
			t.Fatal(err)
		}
		if got := executed(n); !slices.Equal(got, []string{"<nil> c <nil>"}) {
			t.Errorf("route x: %q, want only c", got)
		}
		n = len(f.inputList())
		if err := run("routes", map[string]any{"kind": "other"}); err != nil {
			t.Fatal(err)
		}
		if got := executed(n); !slices.Equal(got, []string{"<nil> b <nil>", "<nil> c <nil>"}) {
			t.Errorf("default route: %q, want b then c", got)
		}
		err := run("routes", map[string]any{"kind": "bad"})
		if want := `workflow execution failed: pipeline "routes" execution failed: step "a" routed to unknown step "nowhere"`; err == nil || err.Error() != want {
			t.Errorf("error %v, want %s", err, want)
		}
	})
	t.Run("§2.3 strict templates fail on a missing key", func(t *testing.T) {
		if err := run("strict", nil); !errors.Is(err, runner.ErrTemplate) || !errors.Is(err, runner.ErrStepFailed) {
			t.Errorf("want ErrTemplate, got %v", err)
		}
	})
}

func TestTriggerWorkflowNames(t *testing.T) {
	t.Parallel()
	f := newFake(testCatalog(t))
	src := "pipelines:\n  orders:\n    steps: [{ name: a, type: step.test.echo }]\n  pipeline:odd:\n    steps: []\n"
	r := newRunner(t, src, f)
	ctx := context.Background()
	if err := r.TriggerWorkflow(ctx, "orders", "", nil); !errors.Is(err, runner.ErrNotRunning) {
		t.Errorf("before Start: want ErrNotRunning, got %v", err)
	}
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"orders", "pipeline:orders", "pipeline:odd", "pipeline:pipeline:odd"} {
		if err := r.TriggerWorkflow(ctx, name, "ignored", map[string]any{}); err != nil {
			t.Errorf("TriggerWorkflow(%q): %v", name, err)
		}
	}
	for _, name := range []string{"pipeline:nope", "nope", "", "trigger.eventbus.subscribe"} {
		if err := r.TriggerWorkflow(ctx, name, "", nil); !errors.Is(err, runner.ErrUnknownWorkflow) {
			t.Errorf("TriggerWorkflow(%q): want ErrUnknownWorkflow, got %v", name, err)
		}
	}
	if err := r.Start(ctx); !errors.Is(err, runner.ErrAlreadyStarted) {
		t.Errorf("second Start: got %v", err)
	}
	if err := r.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.Stop(ctx); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if err := r.TriggerWorkflow(ctx, "orders", "", nil); !errors.Is(err, runner.ErrNotRunning) {
		t.Errorf("after Stop: want ErrNotRunning, got %v", err)
	}
	if err := r.Wait(ctx); err != nil {
		t.Errorf("Wait: %v", err)
	}
}

func TestConcurrentRuns(t *testing.T) {
	t.Parallel()
	f := newFake(testCatalog(t))
	f.exec = func(_ context.Context, _ string, in runner.StepInput) (runner.StepResult, error) {
		id := fmt.Sprint(in.TriggerData["id"])
		if in.Config["id"] != id || fmt.Sprint(in.Current["id"]) != id {
			return runner.StepResult{}, fmt.Errorf("run %s saw config %v and current %v", id, in.Config["id"], in.Current["id"])
		}
		if prev, ok := in.Config["prev"]; ok && prev != "seen-"+id {
			return runner.StepResult{}, fmt.Errorf("run %s saw previous output %v", id, prev)
		}
		return runner.StepResult{Output: map[string]any{"seen": "seen-" + id}}, nil
	}
	r := startRunner(t, `pipelines:
  p:
    steps:
      - { name: first, type: step.test.echo, config: { id: "{{ .trigger.id }}" } }
      - { name: tag, type: step.set, config: { values: { tag: "t-{{ .id }}" } } }
      - { name: second, type: step.test.echo, config: { id: "{{ .id }}", prev: "{{ .steps.first.seen }}" } }
`, f)
	const runs = 64
	errs := make(chan error, runs)
	var wg sync.WaitGroup
	for i := range runs {
		wg.Go(func() {
			errs <- r.TriggerWorkflow(context.Background(), "p", "", map[string]any{"id": float64(i)})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if got := len(f.inputList()); got != 2*runs {
		t.Errorf("want %d executions, got %d", 2*runs, got)
	}
}

func TestShutdownWaitsForRuns(t *testing.T) {
	t.Parallel()
	f := newFake(testCatalog(t))
	entered := make(chan struct{})
	release := make(chan struct{})
	var runs atomic.Int32
	f.exec = func(context.Context, string, runner.StepInput) (runner.StepResult, error) {
		if runs.Add(1) == 1 {
			close(entered)
			<-release
			_ = f.record("run finished")
		} else {
			_ = f.record("run fired while the trigger stopped")
		}
		return runner.StepResult{}, nil
	}
	var r *runner.Runner
	// A trigger may hand a message to its pipeline as it is told to stop:
	// that run runs, like the ones already in flight.
	firedWhileStopping := make(chan error, 1)
	f.hook = func(call string) {
		if call == "StopTrigger t:pipeline:p" {
			firedWhileStopping <- r.TriggerWorkflow(context.Background(), "p", "", nil)
			close(release)
		}
	}
	r = newRunner(t, "modules:\n  - { name: bus, type: eventbus.broker }\npipelines:\n  p:\n    trigger: { type: trigger.eventbus.subscribe, config: { name: w } }\n    steps: [{ name: a, type: step.test.echo }]\n", f)
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	runErr := make(chan error, 1)
	go func() { runErr <- r.TriggerWorkflow(context.Background(), "p", "", nil) }()
	<-entered
	if err := r.Stop(context.Background()); err != nil {
		t.Errorf("Stop: %v", err)
	}
	if err := <-runErr; err != nil {
		t.Errorf("the in-flight run failed: %v", err)
	}
	if err := <-firedWhileStopping; err != nil {
		t.Errorf("a run fired while its trigger stopped: %v, want it run", err)
	}
	if err := r.TriggerWorkflow(context.Background(), "p", "", nil); !errors.Is(err, runner.ErrNotRunning) {
		t.Errorf("a run after Stop: %v, want ErrNotRunning", err)
	}
	calls := f.callList()
	for _, run := range []string{"run finished", "run fired while the trigger stopped"} {
		if i, j := slices.Index(calls, run), slices.Index(calls, "StopModule m:bus"); i < 0 || j < i {
			t.Errorf("%q: modules were stopped before the run finished: %q", run, calls)
		}
	}
}

func TestShutdownTimeoutCancelsRuns(t *testing.T) {
	t.Parallel()
	f := newFake(testCatalog(t))
	entered := make(chan struct{})
	f.exec = func(ctx context.Context, _ string, _ runner.StepInput) (runner.StepResult, error) {
		close(entered)
		<-ctx.Done()
		_ = f.record("run cancelled")
		return runner.StepResult{}, ctx.Err()
	}
	reg := prometheus.NewRegistry()
	r := newRunner(t, "modules:\n  - { name: bus, type: eventbus.broker }\npipelines:\n  p:\n    steps: [{ name: a, type: step.test.echo }]\n", f,
		runner.WithShutdownTimeout(time.Millisecond), runner.WithRegisterer(reg))
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	runErr := make(chan error, 1)
	go func() { runErr <- r.TriggerWorkflow(context.Background(), "p", "", nil) }()
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	if err := r.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := <-runErr; !errors.Is(err, runner.ErrShutdown) || !errors.Is(err, runner.ErrStepFailed) {
		t.Errorf("want the run cancelled with ErrShutdown, got %v", err)
	}
	calls := f.callList()
	if i, j := slices.Index(calls, "run cancelled"), slices.Index(calls, "StopModule m:bus"); i < 0 || j < i {
		t.Errorf("modules were stopped before the run returned: %q", calls)
	}
	if got := counter(t, reg, "p", runner.OutcomeCanceled); got != 1 {
		t.Errorf("canceled runs: got %v", got)
	}
}

// A trigger that waits for its in-flight runs while it stops (as the
// eventbus subscribe trigger does) still sees them cancelled when the
// shutdown timeout expires.
func TestShutdownTimeoutCancelsRunsWhileTriggerStops(t *testing.T) {
	t.Parallel()
	f := newFake(testCatalog(t))
	entered := make(chan struct{})
	f.exec = func(ctx context.Context, _ string, _ runner.StepInput) (runner.StepResult, error) {
		close(entered)
		<-ctx.Done()
		return runner.StepResult{}, ctx.Err()
	}
	runErr := make(chan error, 1)
	var (
		once     sync.Once
		runEnded error
	)
	f.hook = func(call string) {
		if call == "StopTrigger t:pipeline:p" {
			once.Do(func() {
				select {
				case runEnded = <-runErr:
				case <-time.After(hangGuard):
					runEnded = errors.New("the run was not cancelled while its trigger stopped")
				}
			})
		}
	}
	r := newRunner(t, "modules:\n  - { name: bus, type: eventbus.broker }\npipelines:\n  p:\n    trigger: { type: trigger.eventbus.subscribe, config: { name: w } }\n    steps: [{ name: a, type: step.test.echo }]\n", f,
		runner.WithShutdownTimeout(time.Millisecond))
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	go func() { runErr <- r.TriggerWorkflow(context.Background(), "p", "", nil) }()
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), 2*hangGuard)
	defer cancel()
	if err := r.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if !errors.Is(runEnded, runner.ErrShutdown) {
		t.Errorf("want the run cancelled with ErrShutdown during StopTrigger, got %v", runEnded)
	}
}

func TestRunTimeout(t *testing.T) {
	t.Parallel()
	f := newFake(testCatalog(t))
	f.exec = func(ctx context.Context, _ string, _ runner.StepInput) (runner.StepResult, error) {
		<-ctx.Done()
		return runner.StepResult{}, ctx.Err()
	}
	reg := prometheus.NewRegistry()
	r := startRunner(t, "pipelines:\n  p:\n    timeout: 20ms\n    steps: [{ name: a, type: step.test.echo }]\n", f, runner.WithRegisterer(reg))
	for _, p := range []string{"p"} {
		err := r.TriggerWorkflow(context.Background(), p, "", nil)
		if !errors.Is(err, runner.ErrTimeout) || !errors.Is(err, runner.ErrStepFailed) {
			t.Errorf("pipeline %s: want ErrTimeout, got %v", p, err)
		}
		if got := counter(t, reg, p, runner.OutcomeTimeout); got != 1 {
			t.Errorf("pipeline %s: timeout runs: got %v", p, got)
		}
	}
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	f := newFake(testCatalog(t))
	r := startRunner(t, "pipelines:\n  ok:\n    steps: [{ name: a, type: step.test.echo }]\n  bad:\n    steps: [{ name: a, type: step.validate, config: { required_fields: [nope] } }]\n", f, runner.WithRegisterer(reg))
	for range 3 {
		_ = r.TriggerWorkflow(context.Background(), "ok", "", nil)
	}
	_ = r.TriggerWorkflow(context.Background(), "bad", "", nil)
	if got := counter(t, reg, "ok", runner.OutcomeSuccess); got != 3 {
		t.Errorf("ok successes: got %v", got)
	}
	if got := counter(t, reg, "bad", runner.OutcomeFailure); got != 1 {
		t.Errorf("bad failures: got %v", got)
	}
	if got := histogramCount(t, reg, "ok"); got != 3 {
		t.Errorf("ok durations observed: got %v", got)
	}
	// A second runner on the same registry shares the collectors.
	r2 := startRunner(t, "pipelines:\n  ok:\n    steps: []\n", newFake(testCatalog(t)), runner.WithRegisterer(reg))
	_ = r2.TriggerWorkflow(context.Background(), "ok", "", nil)
	if got := counter(t, reg, "ok", runner.OutcomeSuccess); got != 4 {
		t.Errorf("shared successes: got %v", got)
	}
}

// TestMetricsBeforeTheFirstRun checks that every pipeline has its run
// counts, at zero, and its duration histogram before it first runs, and
// that the histogram's buckets reach long pipelines.
func TestMetricsBeforeTheFirstRun(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	newRunner(t, "pipelines:\n  a:\n    steps: [{ name: s, type: step.test.echo }]\n  b:\n    steps: []\n", newFake(testCatalog(t)), runner.WithRegisterer(reg))
	runs := map[string]float64{}
	for _, m := range family(t, reg, "eventbus_pipeline_runs_total") {
		runs[label(m.GetLabel(), "pipeline")+"/"+label(m.GetLabel(), "outcome")] = m.GetCounter().GetValue()
	}
	for _, p := range []string{"a", "b"} {
		for _, o := range []string{runner.OutcomeSuccess, runner.OutcomeFailure, runner.OutcomeTimeout, runner.OutcomeCanceled} {
			if v, ok := runs[p+"/"+o]; !ok || v != 0 {
				t.Errorf("eventbus_pipeline_runs_total{pipeline=%q,outcome=%q} = %v (present: %v), want 0", p, o, v, ok)
			}
		}
	}
	hists := family(t, reg, "eventbus_pipeline_run_seconds")
	if len(hists) != 2 {
		t.Fatalf("%d run duration histograms before any run, want 2", len(hists))
	}
	var top float64
	for _, b := range hists[0].GetHistogram().GetBucket() {
		top = max(top, b.GetUpperBound())
	}
	if top < time.Hour.Seconds() {
		t.Errorf("the largest bucket ends at %vs: runs of a few minutes would only count in +Inf", top)
	}
}

// counter reads eventbus_pipeline_runs_total for a pipeline and outcome.
func counter(t *testing.T, reg *prometheus.Registry, pipeline, outcome string) float64 {
	t.Helper()
	for _, m := range family(t, reg, "eventbus_pipeline_runs_total") {
		if label(m.GetLabel(), "pipeline") == pipeline && label(m.GetLabel(), "outcome") == outcome {
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

func histogramCount(t *testing.T, reg *prometheus.Registry, pipeline string) uint64 {
	t.Helper()
	for _, m := range family(t, reg, "eventbus_pipeline_run_seconds") {
		if label(m.GetLabel(), "pipeline") == pipeline {
			return m.GetHistogram().GetSampleCount()
		}
	}
	return 0
}

func TestStartFailure(t *testing.T) {
	t.Parallel()
	src := `modules:
  - { name: a, type: eventbus.broker }
  - { name: b, type: eventbus.broker }
pipelines:
  p:
    trigger: { type: trigger.eventbus.subscribe, config: { name: w } }
    steps: [{ name: s, type: step.test.echo }]
  q:
    trigger: { type: trigger.eventbus.subscribe, config: { name: w2 } }
`
	// The create and init calls, every one of which is made whatever the
	// others answer, so that every problem is reported at once.
	creates := []string{
		"CreateModule a eventbus.broker", "CreateModule b eventbus.broker",
		"InitModule m:a", "InitModule m:b",
		"CreateStep s step.test.echo", "CreateTrigger pipeline:p trigger.eventbus.subscribe",
		"CreateTrigger pipeline:q trigger.eventbus.subscribe",
	}
	tests := []struct {
		fail string
		want []string // calls after the failing one
		line int      // of the config refused; 0 for a start that failed
	}{
		{fail: "CreateModule b eventbus.broker", want: []string{"InitModule m:a", "CreateStep s step.test.echo", "CreateTrigger pipeline:p trigger.eventbus.subscribe", "CreateTrigger pipeline:q trigger.eventbus.subscribe"}, line: 3},
		{fail: "InitModule m:a", want: creates[3:], line: 2},
		{fail: "CreateStep s step.test.echo", want: creates[5:], line: 7},
		{fail: "CreateTrigger pipeline:q trigger.eventbus.subscribe", line: 9},
		{fail: "StartModule m:b", want: []string{"StopModule m:a"}},
		{fail: "StartTrigger t:pipeline:q", want: []string{"StopTrigger t:pipeline:p", "StopModule m:b", "StopModule m:a"}},
	}
	for _, tt := range tests {
		t.Run(tt.fail, func(t *testing.T) {
			t.Parallel()
			f := newFake(testCatalog(t))
			f.fail = tt.fail
			r := newRunner(t, src, f)
			err := r.Start(context.Background())
			var ce *runner.ConfigError
			switch {
			case tt.line > 0:
				if !errors.As(err, &ce) || len(ce.Problems) != 1 || ce.Problems[0].Pos.Line != tt.line || !strings.Contains(err.Error(), "fake failure of "+tt.fail) {
					t.Fatalf("want one problem at line %d naming the failure, got %v", tt.line, err)
				}
			case !errors.Is(err, runner.ErrLifecycle):
				t.Fatalf("want ErrLifecycle, got %v", err)
			}
			calls := f.callList()
			after := calls[slices.Index(calls, tt.fail)+1:]
			if !slices.Equal(after, tt.want) {
				t.Errorf("calls after the failure: got %q, want %q", after, tt.want)
			}
			select {
			case <-r.Done():
			default:
				t.Error("Done is not closed after a failed Start")
			}
			if err := r.TriggerWorkflow(context.Background(), "p", "", nil); !errors.Is(err, runner.ErrNotRunning) {
				t.Errorf("TriggerWorkflow after a failed Start: %v", err)
			}
			if err := r.Stop(context.Background()); err != nil {
				t.Errorf("Stop after a failed Start: %v", err)
			}
		})
	}
}

func TestStopErrors(t *testing.T) {
	t.Parallel()
	f := newFake(testCatalog(t))
	f.fail = "StopModule m:b"
	r := startRunner(t, "modules:\n  - { name: a, type: eventbus.broker }\n  - { name: b, type: eventbus.broker }\n", f)
	err := r.Stop(context.Background())
	if !errors.Is(err, runner.ErrLifecycle) {
		t.Fatalf("want ErrLifecycle, got %v", err)
	}
	if calls := f.callList(); calls[len(calls)-1] != "StopModule m:a" {
		t.Errorf("a failing stop ended the shutdown: %q", calls)
	}
	if err2 := r.Wait(context.Background()); !errors.Is(err2, runner.ErrLifecycle) {
		t.Errorf("Wait: want Stop's error, got %v", err2)
	}
	if err2 := r.Stop(context.Background()); !errors.Is(err2, runner.ErrLifecycle) {
		t.Errorf("second Stop: want the same error, got %v", err2)
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	cat := testCatalog(t)
	cfg := mustParse(t, "pipelines:\n  p:\n    steps: [{ name: a, type: step.nope }]\n", nil)
	if _, err := runner.New(cfg, newFake(cat), nil); !errors.Is(err, runner.ErrUnknownType) || !errors.Is(err, runner.ErrInvalidConfig) {
		t.Errorf("invalid config: got %v", err)
	}
	ok := mustParse(t, "", nil)
	conflicting := cat
	conflicting.StepTypes = append(slices.Clone(cat.StepTypes), "step.log")
	tests := []struct {
		name string
		cfg  *runner.Config
		p    runner.Plugin
		opts []runner.Option
		want error
	}{
		{"nil config", nil, newFake(cat), nil, runner.ErrInvalidOption},
		{"nil plugin", ok, nil, nil, runner.ErrInvalidOption},
		{"zero shutdown timeout", ok, newFake(cat), []runner.Option{runner.WithShutdownTimeout(0)}, runner.ErrInvalidOption},
		{"nil registerer", ok, newFake(cat), []runner.Option{runner.WithRegisterer(nil)}, runner.ErrInvalidOption},
		{"nil clock", ok, newFake(cat), []runner.Option{runner.WithClock(nil)}, runner.ErrInvalidOption},
		{"plugin declares a built-in step", ok, newFake(conflicting), nil, runner.ErrTypeConflict},
	}
	for _, tt := range tests {
		if _, err := runner.New(tt.cfg, tt.p, nil, tt.opts...); !errors.Is(err, tt.want) {
			t.Errorf("%s: want %v, got %v", tt.name, tt.want, err)
		}
	}
}

func TestForwarder(t *testing.T) {
	t.Parallel()
	var fw runner.Forwarder
	if err := fw.TriggerWorkflow(context.Background(), "p", "", nil); !errors.Is(err, runner.ErrNotRunning) {
		t.Errorf("before Attach: want ErrNotRunning, got %v", err)
	}
	f := newFake(testCatalog(t))
	r := startRunner(t, "pipelines:\n  p:\n    steps: [{ name: a, type: step.test.echo }]\n", f)
	fw.Attach(r)
	if err := fw.TriggerWorkflow(context.Background(), "pipeline:p", "", map[string]any{"x": 1.0}); err != nil {
		t.Fatal(err)
	}
	if in := f.inputList(); len(in) != 1 || in[0].TriggerData["x"] != 1.0 {
		t.Errorf("the run did not reach the runner: %+v", in)
	}
}

// A module the plugin refuses says which ${NAME} of its config was left as
// written (engine-pipelines.md §1.7).
func TestStartNamesUnsetVariables(t *testing.T) {
	t.Parallel()
	f := newFake(testCatalog(t))
	f.fail = "CreateModule bus eventbus.broker"
	cfg := mustParse(t, "modules:\n  - name: bus\n    type: eventbus.broker\n    config: { dsn: \"nats://${NATS_HOST}:4222\" }\n", nil)
	r, err := runner.New(cfg, f, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = r.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "(${NATS_HOST} is left as written: NATS_HOST is not set)") {
		t.Errorf("start error %v, want it to name NATS_HOST", err)
	}
}
