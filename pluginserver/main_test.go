package pluginserver_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wfeventbus/eventbus/wfplugin"
)

// binaryName is the plugin's executable and directory name, laid out as the
// engine installs plugins: <plugins>/<name>/<name> with plugin.json beside it.
const binaryName = "workflow-plugin-eventbus"

// hangGuard bounds every wait of these tests; it only turns a hang into a
// failure and never measures speed.
const hangGuard = 60 * time.Second

// build compiles the plugin binary once for the whole package.
type build struct {
	once sync.Once
	root string // temporary directory removed by TestMain
	path string
	err  error
}

var pluginBuild build

func TestMain(m *testing.M) {
	code := m.Run()
	if pluginBuild.root != "" {
		_ = os.RemoveAll(pluginBuild.root)
	}
	os.Exit(code)
}

// pluginBinary builds cmd/workflow-plugin-eventbus (with the race detector
// when the tests run with it, which reuses the packages the test binary was
// built from) and writes its plugin.json beside it with the binary's own
// manifest command.
func pluginBinary(t *testing.T) string {
	t.Helper()
	b := &pluginBuild
	b.once.Do(func() {
		b.root, b.err = os.MkdirTemp("", "pluginserver-wire-")
		if b.err != nil {
			return
		}
		dir := filepath.Join(b.root, "plugins", binaryName)
		if b.err = os.MkdirAll(dir, 0o755); b.err != nil {
			return
		}
		b.path = filepath.Join(dir, binaryName)
		args := []string{"build", "-o", b.path}
		if raceEnabled {
			args = append(args, "-race")
		}
		args = append(args, "github.com/wfeventbus/eventbus/cmd/"+binaryName)
		cmd := exec.Command("go", args...)
		cmd.Dir = ".."
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build: %w\n%s", err, out)
			return
		}
		if out, err := exec.Command(b.path, "manifest", "-dir", dir).CombinedOutput(); err != nil {
			b.err = fmt.Errorf("%s manifest: %w\n%s", binaryName, err, out)
		}
	})
	if b.err != nil {
		t.Fatalf("building the plugin: %v", b.err)
	}
	return b.path
}

// stderrWatch is a slog handler for the plugin's forwarded stderr that
// remembers whether the Go runtime reported a data race or a panic.
type stderrWatch struct {
	mu  sync.Mutex
	bad []string
}

func (w *stderrWatch) Enabled(context.Context, slog.Level) bool { return true }
func (w *stderrWatch) WithAttrs([]slog.Attr) slog.Handler       { return w }
func (w *stderrWatch) WithGroup(string) slog.Handler            { return w }

func (w *stderrWatch) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "DATA RACE") || strings.HasPrefix(r.Message, "panic: ") || strings.HasPrefix(r.Message, "fatal error: ") {
		w.mu.Lock()
		w.bad = append(w.bad, r.Message)
		w.mu.Unlock()
	}
	return nil
}

func (w *stderrWatch) reports() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.bad...)
}

// launch starts the plugin binary with wfplugin.Launch, the engine's load
// sequence, with h answering TriggerWorkflow (nil: no workflow handler).
// The plugin is closed when the test ends; a data race or panic it reports
// fails the test, and a failing test shows the plugin's last stderr lines.
func launch(t *testing.T, h wfplugin.WorkflowHandler) *wfplugin.Client {
	t.Helper()
	path := pluginBinary(t)
	watch := &stderrWatch{}
	opts := []wfplugin.LaunchOption{wfplugin.WithLogger(slog.New(watch)), wfplugin.WithStderrLines(200)}
	if h != nil {
		opts = append(opts, wfplugin.WithWorkflowHandler(h))
	}
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	c, err := wfplugin.Launch(ctx, path, opts...)
	if err != nil {
		t.Fatalf("Launch: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
		defer cancel()
		if err := c.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
		for _, r := range watch.reports() {
			t.Errorf("plugin stderr: %s", r)
		}
		if t.Failed() {
			t.Logf("plugin stderr tail:\n%s", strings.Join(c.StderrTail(), "\n"))
		}
	})
	return c
}

// ctxT is a context bounded by the hang guard and the test.
func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), hangGuard)
	t.Cleanup(cancel)
	return ctx
}

// module is one module of an app config.
type module struct {
	typ, name string
	config    map[string]any
}

// createModules sends CreateModule for every module in declaration order
// and returns the handles in that order.
func createModules(t *testing.T, c *wfplugin.Client, mods ...module) []string {
	t.Helper()
	handles := make([]string, len(mods))
	for i, m := range mods {
		h, err := c.CreateModule(ctxT(t), m.typ, m.name, m.config)
		if err != nil {
			t.Fatalf("CreateModule %s (%s): %v", m.name, m.typ, err)
		}
		handles[i] = h
	}
	return handles
}

// initModules sends InitModule for every handle, in order.
func initModules(t *testing.T, c *wfplugin.Client, handles []string) {
	t.Helper()
	for _, h := range handles {
		if err := c.InitModule(ctxT(t), h); err != nil {
			t.Fatalf("InitModule %s: %v", h, err)
		}
	}
}

// startModules sends StartModule for every handle, in order.
func startModules(t *testing.T, c *wfplugin.Client, handles []string) {
	t.Helper()
	for _, h := range handles {
		if err := c.StartModule(ctxT(t), h); err != nil {
			t.Fatalf("StartModule %s: %v", h, err)
		}
	}
}

// startApp runs the engine's module lifecycle, each phase for every module
// before the next: CreateModule, InitModule, StartModule. The modules are
// stopped in reverse order when the test ends.
func startApp(t *testing.T, c *wfplugin.Client, mods ...module) []string {
	t.Helper()
	handles := createModules(t, c, mods...)
	t.Cleanup(func() { stopApp(t, c, handles) })
	initModules(t, c, handles)
	startModules(t, c, handles)
	return handles
}

// stopApp stops modules in reverse order, as the engine does at shutdown.
func stopApp(t *testing.T, c *wfplugin.Client, handles []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	for i := len(handles) - 1; i >= 0; i-- {
		if err := c.StopModule(ctx, handles[i]); err != nil {
			t.Errorf("StopModule %s: %v", handles[i], err)
		}
	}
}

// embeddedBroker is a broker module running an embedded server on a random
// port with its store in a test directory.
func embeddedBroker(t *testing.T, typ, name string) module {
	return module{typ, name, map[string]any{
		"embedded": map[string]any{"port": float64(-1), "store_dir": t.TempDir()},
	}}
}

func createStep(t *testing.T, c *wfplugin.Client, typ, name string, raw map[string]any) string {
	t.Helper()
	h, err := c.CreateStep(ctxT(t), typ, name, raw)
	if err != nil {
		t.Fatalf("CreateStep %s (%s): %v", name, typ, err)
	}
	return h
}

// execStep runs a step with its resolved config and the pipeline's current
// data, and fails the test if the step fails.
func execStep(t *testing.T, c *wfplugin.Client, h string, config, current map[string]any) map[string]any {
	t.Helper()
	res, err := c.ExecuteStep(ctxT(t), h, wfplugin.ExecuteInput{
		Config:      config,
		Current:     current,
		TriggerData: map[string]any{},
		Metadata:    map[string]any{"pipeline": t.Name(), "started_at": time.Now().UTC().Format(time.RFC3339)},
	})
	if err != nil {
		t.Fatalf("ExecuteStep %s: %v", h, err)
	}
	return res.Output
}

// messagesOf returns the messages a consume step produced.
func messagesOf(t *testing.T, out map[string]any) []map[string]any {
	t.Helper()
	list, ok := out["messages"].([]any)
	if !ok {
		t.Fatalf("consume output has no messages list: %v", out)
	}
	msgs := make([]map[string]any, len(list))
	for i, m := range list {
		if msgs[i], ok = m.(map[string]any); !ok {
			t.Fatalf("consumed message %d is %T, want a map", i, m)
		}
	}
	return msgs
}

// waitFor polls cond until it holds or the hang guard ends.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(hangGuard)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// executeAfter is the input of a step that runs after step prev produced
// out: out is stored under prev's name and merged into the current data, as
// a pipeline does; config is the step's rendered config.
func executeAfter(prev string, out, config map[string]any) wfplugin.ExecuteInput {
	current := map[string]any{"steps": map[string]any{prev: out}}
	for k, v := range out {
		current[k] = v
	}
	return wfplugin.ExecuteInput{
		TriggerData: map[string]any{},
		StepOutputs: map[string]map[string]any{prev: out},
		Current:     current,
		Metadata:    map[string]any{"pipeline": "reference"},
		Config:      config,
	}
}
