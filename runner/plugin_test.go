package runner_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"

	pluginv1 "github.com/wfeventbus/eventbus/gen/workflow/plugin/v1"
	"github.com/wfeventbus/eventbus/runner"
	"github.com/wfeventbus/eventbus/wfplugin"
)

// pluginEnv makes the test binary serve testPlugin instead of running
// tests, so that the runner can drive a real plugin process.
const pluginEnv = "RUNNER_TEST_PLUGIN"

func TestMain(m *testing.M) {
	if os.Getenv(pluginEnv) == "1" {
		if err := wfplugin.Serve(testPlugin{}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// testPlugin offers one module type, an echo step and a trigger that
// fires the data listed in its config once started, reporting each
// outcome through the Log callback.
type testPlugin struct{}

func (testPlugin) Manifest() wfplugin.Manifest {
	return wfplugin.Manifest{Name: "runner-test", Version: "1.0.0", Author: "eventbus", Description: "plugin for runner tests"}
}
func (testPlugin) ModuleTypes() []string                 { return []string{"test.module"} }
func (testPlugin) StepTypes() []string                   { return []string{"step.test.echo"} }
func (testPlugin) TriggerTypes() []string                { return []string{"trigger.test.fire"} }
func (testPlugin) Contracts() *pluginv1.ContractRegistry { return nil }
func (testPlugin) CreateModule(context.Context, wfplugin.ModuleSpec) (wfplugin.Module, error) {
	return nopModule{}, nil
}

func (testPlugin) CreateStep(_ context.Context, spec wfplugin.StepSpec) (wfplugin.Step, error) {
	return echoStep{}, nil
}

func (testPlugin) CreateTrigger(_ context.Context, spec wfplugin.TriggerSpec, cb wfplugin.Callback) (wfplugin.Trigger, error) {
	fire, _ := spec.ConfigMap()["fire"].([]any)
	return &fireTrigger{fire: fire, cb: cb}, nil
}

type nopModule struct{}

func (nopModule) Init(context.Context) error  { return nil }
func (nopModule) Start(context.Context) error { return nil }
func (nopModule) Stop(context.Context) error  { return nil }

// echoStep outputs its rendered config plus what it saw of the run; it
// fails when its config says fail: "yes".
type echoStep struct{}

func (echoStep) Execute(_ context.Context, req *wfplugin.StepRequest) (*wfplugin.StepResult, error) {
	cfg := req.Config()
	if cfg["fail"] == "yes" {
		return nil, errors.New("refused")
	}
	pipeline, _ := req.MetadataValue("pipeline")
	current, _ := req.CurrentValue("id")
	cfg["meta_pipeline"] = pipeline
	cfg["current_id"] = current
	return &wfplugin.StepResult{Output: cfg}, nil
}

type fireTrigger struct {
	fire []any
	cb   wfplugin.Callback
	wg   sync.WaitGroup
}

func (t *fireTrigger) Start(ctx context.Context) error {
	t.wg.Go(func() {
		for i, d := range t.fire {
			data, _ := d.(map[string]any)
			msg := ""
			if err := t.cb.TriggerWorkflow(ctx, data); err != nil {
				msg = err.Error()
			}
			_ = t.cb.Log(ctx, "info", "fired", map[string]any{"index": float64(i), "error": msg})
		}
	})
	return nil
}

func (t *fireTrigger) Stop(context.Context) error {
	t.wg.Wait()
	return nil
}

// recordHandler collects the messages of log records.
type recordHandler struct {
	mu   sync.Mutex
	msgs []string
}

func (h *recordHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.msgs = append(h.msgs, r.Message)
	return nil
}
func (h *recordHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordHandler) WithGroup(string) slog.Handler      { return h }

func (h *recordHandler) messages() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.msgs...)
}

const pluginApp = `modules:
  - name: mod
    type: test.module
pipelines:
  orders:
    trigger:
      type: trigger.test.fire
      config:
        fire:
          - { id: 1, amount: 1000000 }
          - { id: 2, fail: "yes" }
    steps:
      - name: echo-step
        type: step.test.echo
        config: { id: "{{ .trigger.id }}", fail: "{{ .trigger.fail }}" }
      - name: record
        type: step.log
        config: { message: "order {{ .steps.echo-step.id }} amount {{ .trigger.amount }} via {{ .meta_pipeline }} current {{ .current_id }}" }
`

func TestRealPlugin(t *testing.T) {
	t.Parallel()
	// The plugin in this process called directly (as eventbus run runs it
	// by default), in this process over gRPC, and in a process of its own
	// (as the engine runs it).
	launchers := map[string]func(ctx context.Context, opts ...wfplugin.LaunchOption) (*wfplugin.Client, error){
		"direct": func(ctx context.Context, opts ...wfplugin.LaunchOption) (*wfplugin.Client, error) {
			return wfplugin.LaunchDirect(ctx, testPlugin{}, opts...)
		},
		"in-process": func(ctx context.Context, opts ...wfplugin.LaunchOption) (*wfplugin.Client, error) {
			return wfplugin.LaunchInProcess(ctx, testPlugin{}, opts...)
		},
		"subprocess": func(ctx context.Context, opts ...wfplugin.LaunchOption) (*wfplugin.Client, error) {
			exe, err := os.Executable()
			if err != nil {
				return nil, err
			}
			gorace := strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0")
			return wfplugin.Launch(ctx, exe, append(opts, wfplugin.WithEnv(pluginEnv+"=1", "GORACE="+gorace))...)
		},
	}
	for name, launch := range launchers {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
			defer cancel()

			type fired struct {
				index int
				err   string
			}
			results := make(chan fired, 2)
			var fw runner.Forwarder
			client, err := launch(ctx,
				wfplugin.WithWorkflowHandler(fw.TriggerWorkflow),
				wfplugin.WithLogHandler(func(_ context.Context, _, msg string, fields map[string]any) {
					if msg == "fired" {
						idx, _ := fields["index"].(float64)
						e, _ := fields["error"].(string)
						results <- fired{int(idx), e}
					}
				}))
			if err != nil {
				t.Fatalf("launch: %v", err)
			}
			defer client.Close(context.Background())

			logs := &recordHandler{}
			cfg, err := runner.Check("app.yaml", []byte(pluginApp), nil, runner.FromClient(client).Catalog())
			if err != nil {
				t.Fatal(err)
			}
			r, err := runner.New(cfg, runner.FromClient(client), slog.New(logs))
			if err != nil {
				t.Fatal(err)
			}
			fw.Attach(r)
			if err := r.Start(ctx); err != nil {
				t.Fatal(err)
			}
			got := map[int]string{}
			for range 2 {
				select {
				case f := <-results:
					got[f.index] = f.err
				case <-ctx.Done():
					t.Fatal("the trigger did not report both runs")
				}
			}
			if err := r.Stop(ctx); err != nil {
				t.Errorf("Stop: %v", err)
			}
			if got[0] != "" {
				t.Errorf("first run failed: %s", got[0])
			}
			if got[1] == "" {
				t.Errorf("second run succeeded; its step should have failed it")
			}
			// engine-pipelines.md §2.4: a number from Struct trigger data is a
			// float64 and renders with %v.
			want := "order 1 amount 1e+06 via orders current 1"
			found := false
			for _, m := range logs.messages() {
				found = found || m == want
			}
			if !found {
				t.Errorf("step.log did not log %q; logs: %q", want, logs.messages())
			}
		})
	}
}
