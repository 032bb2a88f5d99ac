package wfplugin_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/structpb"

	pluginv1 "github.com/wfeventbus/eventbus/gen/workflow/plugin/v1"
	"github.com/wfeventbus/eventbus/wfplugin"
)

// hangGuard bounds every wait of these tests; it only stops a hung test.
const hangGuard = 30 * time.Second

func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func testBinary(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

func launchMode(t *testing.T, mode string, opts ...wfplugin.LaunchOption) (*wfplugin.Client, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), hangGuard)
	defer cancel()
	return wfplugin.Launch(ctx, testBinary(t), append(baseOptions(mode), opts...)...)
}

// baseOptions select the test plugin's variant and log when verbose.
func baseOptions(mode string) []wfplugin.LaunchOption {
	// A race-enabled binary sleeps a second at exit unless told otherwise.
	gorace := strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0")
	return []wfplugin.LaunchOption{
		wfplugin.WithEnv(pluginModeEnv+"="+mode, "GORACE="+gorace),
		wfplugin.WithLogger(testLogger()),
	}
}

// launch starts the test plugin and closes it when the test ends.
func launch(t *testing.T, mode string, opts ...wfplugin.LaunchOption) *wfplugin.Client {
	t.Helper()
	c, err := launchMode(t, mode, opts...)
	if err != nil {
		t.Fatalf("Launch: %v", err)
	}
	t.Cleanup(func() { closeClient(t, c) })
	return c
}

func closeClient(t *testing.T, c *wfplugin.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	if err := c.Close(ctx); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// transports are the ways a host reaches the test plugin: its own process
// over gRPC, as the engine does, and this process by direct calls
// (LaunchDirect). Tests of what a host sees run over both.
var transports = []string{"process", "direct"}

// launchVia starts the test plugin over transport and closes it when the
// test ends.
func launchVia(t *testing.T, transport, mode string, opts ...wfplugin.LaunchOption) *wfplugin.Client {
	t.Helper()
	if transport == "process" {
		return launch(t, mode, opts...)
	}
	p := newTestPlugin(mode, os.Stderr)
	c, err := wfplugin.LaunchDirect(ctxOf(t), p, append([]wfplugin.LaunchOption{wfplugin.WithLogger(testLogger())}, opts...)...)
	if err != nil {
		t.Fatalf("LaunchDirect: %v", err)
	}
	t.Cleanup(func() { closeClient(t, c) })
	return c
}

// overEachTransport runs test once per transport, in parallel, with a
// launcher of the test plugin over that transport.
func overEachTransport(t *testing.T, test func(t *testing.T, launch func(t *testing.T, opts ...wfplugin.LaunchOption) *wfplugin.Client)) {
	t.Helper()
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			test(t, func(t *testing.T, opts ...wfplugin.LaunchOption) *wfplugin.Client {
				t.Helper()
				return launchVia(t, tr, modeServe, opts...)
			})
		})
	}
}

func ctxOf(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), hangGuard)
	t.Cleanup(cancel)
	return ctx
}

// runStep creates a step and executes it once.
func runStep(t *testing.T, c *wfplugin.Client, typ string, raw map[string]any, in wfplugin.ExecuteInput) *wfplugin.ExecuteResult {
	t.Helper()
	ctx := ctxOf(t)
	h, err := c.CreateStep(ctx, typ, "s", raw)
	if err != nil {
		t.Fatalf("CreateStep %s: %v", typ, err)
	}
	res, err := c.ExecuteStep(ctx, h, in)
	if err != nil {
		t.Fatalf("ExecuteStep %s: %v", typ, err)
	}
	return res
}

func report(t *testing.T, c *wfplugin.Client) map[string]any {
	t.Helper()
	return runStep(t, c, "step.test.calls", nil, wfplugin.ExecuteInput{}).Output
}

func TestLaunchFollowsTheEngineLoadSequence(t *testing.T) {
	t.Parallel()
	registration := []any{
		"GetModuleTypes", "GetStepTypes", "GetTriggerTypes",
		"GetModuleTypes", "GetStepTypes", "GetTriggerTypes",
		"GetModuleSchemas",
		"GetModuleTypes", "GetStepTypes", "GetTriggerTypes",
	}
	tests := []struct {
		mode string
		head []any
	}{
		{modeServe, []any{"GetManifest", "GetTriggerTypes", "ConfigureCallback", "GetContractRegistry", "GetConfigFragment"}},
		{modeNoTriggers, []any{"GetManifest", "GetTriggerTypes", "GetContractRegistry", "GetConfigFragment"}},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			t.Parallel()
			c := launch(t, tt.mode)
			got := report(t, c)["calls"]
			want := slices.Concat(tt.head, registration, []any{"CreateStep", "ExecuteStep"})
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("RPCs:\n got %v\nwant %v", got, want)
			}
		})
	}
}

func TestLaunchReadsManifestTypesAndContracts(t *testing.T) {
	t.Parallel()
	c := launch(t, modeServe)
	want := wfplugin.Manifest{Name: "wfplugin-test", Version: "v1.2.3", Author: "wfplugin tests", Description: "exercises the protocol"}
	if got := c.Manifest(); got != want {
		t.Errorf("Manifest() = %+v, want %+v", got, want)
	}
	if got, want := c.ModuleTypes(), []string{"test.module"}; !slices.Equal(got, want) {
		t.Errorf("ModuleTypes() = %v, want %v", got, want)
	}
	wantSteps := []string{"step.test.calls", "step.test.crash", "step.test.echo", "step.test.output", "step.test.panic", "step.test.settle", "step.test.strict"}
	if got := c.StepTypes(); !slices.Equal(got, wantSteps) {
		t.Errorf("StepTypes() = %v, want %v (sorted)", got, wantSteps)
	}
	if got, want := c.TriggerTypes(), []string{"trigger.test.fire"}; !slices.Equal(got, want) {
		t.Errorf("TriggerTypes() = %v, want %v", got, want)
	}
	ct, ok := c.Contract(pluginv1.ContractKind_CONTRACT_KIND_STEP, "step.test.settle")
	if !ok || ct.GetInputMessage() != "eventbus.v1.SettleStepInput" {
		t.Errorf("Contract(STEP, step.test.settle) = %v, %v", ct, ok)
	}
	if c.Pid() <= 0 {
		t.Errorf("Pid() = %d", c.Pid())
	}
}

func TestContractRegistryResolvesFromTheSetAlone(t *testing.T) {
	t.Parallel()
	overEachTransport(t, func(t *testing.T, launch func(t *testing.T, opts ...wfplugin.LaunchOption) *wfplugin.Client) {
		c := launch(t)
		reg := c.Contracts()
		named := 0
		for _, ct := range reg.Contracts() {
			for _, name := range []string{ct.GetConfigMessage(), ct.GetInputMessage(), ct.GetOutputMessage()} {
				if name == "" {
					continue
				}
				named++
				d, err := reg.Files().FindDescriptorByName(protoreflect.FullName(name))
				if err != nil {
					t.Errorf("%s does not resolve from the plugin's set: %v", name, err)
					continue
				}
				if _, ok := d.(protoreflect.MessageDescriptor); !ok {
					t.Errorf("%s is a %T, not a message", name, d)
				}
			}
		}
		if named == 0 {
			t.Fatal("the test plugin names no messages")
		}
	})
}

func TestLaunchRejectsWhatTheEngineRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		mode string
		want error
	}{
		{modeBadManifest, wfplugin.ErrInvalidManifest},
		{modeBadContracts, wfplugin.ErrInvalidContracts},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			t.Parallel()
			c, err := launchMode(t, tt.mode)
			if err == nil {
				closeClient(t, c)
				t.Fatal("Launch succeeded")
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Launch: %v, want %v", err, tt.want)
			}
		})
	}
}

func TestLaunchReportsAPluginThatDiesAtStart(t *testing.T) {
	t.Parallel()
	c, err := launchMode(t, modeCrashAtStart)
	if err == nil {
		closeClient(t, c)
		t.Fatal("Launch succeeded")
	}
	if !errors.Is(err, wfplugin.ErrLaunch) || !errors.Is(err, wfplugin.ErrPluginExited) {
		t.Fatalf("Launch: %v, want ErrLaunch and ErrPluginExited", err)
	}
	var exit *wfplugin.ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("Launch: %v is no *ExitError", err)
	}
	if !slices.Contains(exit.Stderr, crashAtStartLine) || exit.Status != "exit status 3" {
		t.Fatalf("ExitError = %+v, want status 3 and the line %q", exit, crashAtStartLine)
	}
}

// linkedPlugin links the test binary into a fresh directory, as a plugin
// directory holds its executable, and writes plugin.json there if given.
func linkedPlugin(t *testing.T, manifest string) string {
	t.Helper()
	dir := t.TempDir()
	exe := filepath.Join(dir, "wfplugin-test")
	if err := os.Symlink(testBinary(t), exe); err != nil {
		t.Fatal(err)
	}
	if manifest != "" {
		if err := os.WriteFile(filepath.Join(dir, "plugin.json"), []byte(manifest), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return exe
}

func TestLaunchRunsThePluginInItsDirectory(t *testing.T) {
	t.Parallel()
	exe := linkedPlugin(t, `{"name":"wfplugin-test","version":"1.0.0","author":"a","description":"d","capabilities":{"stepTypes":["x"]}}`)
	c, err := wfplugin.Launch(ctxOf(t), exe, baseOptions(modeServe)...)
	if err != nil {
		t.Fatal(err)
	}
	defer closeClient(t, c)
	if got := report(t, c)["cwd"]; got != filepath.Dir(exe) {
		t.Fatalf("plugin working directory = %v, want %s", got, filepath.Dir(exe))
	}
	if c.Name() != "wfplugin-test" {
		t.Errorf("Name() = %q", c.Name())
	}
}

func TestLaunchValidatesPluginJSON(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"dev version":         `{"name":"wfplugin-test","version":"dev","author":"a","description":"d"}`,
		"no author":           `{"name":"wfplugin-test","version":"1.0.0","description":"d"}`,
		"capabilities string": `{"name":"wfplugin-test","version":"1.0.0","author":"a","description":"d","capabilities":"all"}`,
		"not JSON":            `name: wfplugin-test`,
		"uppercase name":      `{"name":"Test","version":"1.0.0","author":"a","description":"d"}`,
	}
	for name, manifest := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			exe := linkedPlugin(t, manifest)
			c, err := wfplugin.Launch(ctxOf(t), exe, baseOptions(modeServe)...)
			if err == nil {
				closeClient(t, c)
				t.Fatal("Launch succeeded")
			}
			if !errors.Is(err, wfplugin.ErrInvalidManifest) {
				t.Fatalf("Launch: %v, want ErrInvalidManifest", err)
			}
		})
	}
}

func TestLaunchRejectsInvalidOptions(t *testing.T) {
	t.Parallel()
	tests := map[string]wfplugin.LaunchOption{
		"env without =":    wfplugin.WithEnv("NOPE"),
		"handshake cookie": wfplugin.WithEnv(wfplugin.MagicCookieKey + "=x"),
		"no stderr lines":  wfplugin.WithStderrLines(0),
		"nil logger":       wfplugin.WithLogger(nil),
		"no message size":  wfplugin.WithMaxMessageSize(0),
	}
	for name, opt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := wfplugin.Launch(ctxOf(t), testBinary(t), opt)
			if !errors.Is(err, wfplugin.ErrInvalidOption) {
				t.Fatalf("Launch: %v, want ErrInvalidOption", err)
			}
		})
	}
}

func TestModuleLifecycleWithStrictTypedConfig(t *testing.T) {
	t.Parallel()
	overEachTransport(t, func(t *testing.T, launch func(t *testing.T, opts ...wfplugin.LaunchOption) *wfplugin.Client) {
		c := launch(t)
		ctx := ctxOf(t)
		h, err := c.CreateModule(ctx, "test.module", "orders", map[string]any{
			"name":         "ORDERS",
			"subjects":     []any{"orders.>"},
			"num_replicas": "3",
			"max_age":      "3600s",
			"_config_dir":  "/etc/app",
		})
		if err != nil {
			t.Fatalf("CreateModule: %v", err)
		}
		for _, step := range []func(context.Context, string) error{c.InitModule, c.StartModule} {
			if err := step(ctx, h); err != nil {
				t.Fatal(err)
			}
		}
		modules := report(t, c)["modules"].([]any)
		want := map[string]any{
			"name": "orders", "stream": "ORDERS", "num_replicas": 3.0, "had_struct": false,
			"inited": true, "started": true, "ctx_alive": true, "stopped": false,
		}
		if len(modules) != 1 || !reflect.DeepEqual(modules[0], want) {
			t.Fatalf("modules = %v, want [%v]", modules, want)
		}
		if err := c.StopModule(ctx, h); err != nil {
			t.Fatal(err)
		}
		if err := c.StopModule(ctx, h); err != nil {
			t.Fatalf("second StopModule: %v", err)
		}
		if got := report(t, c)["modules"].([]any)[0].(map[string]any); got["stopped"] != true || got["ctx_alive"] != false {
			t.Fatalf("after StopModule: %v, want stopped and its Start context ended", got)
		}
	})
}

func TestCreateRejectsUnknownFieldNamingIt(t *testing.T) {
	t.Parallel()
	overEachTransport(t, func(t *testing.T, launch func(t *testing.T, opts ...wfplugin.LaunchOption) *wfplugin.Client) {
		c := launch(t)
		ctx := ctxOf(t)
		tests := []struct {
			name   string
			create func() error
		}{
			{"strict module", func() error {
				_, err := c.CreateModule(ctx, "test.module", "m", map[string]any{"nmae": "X"})
				return err
			}},
			{"strict step", func() error {
				_, err := c.CreateStep(ctx, "step.test.strict", "s", map[string]any{"ack_token": "t", "bogus": 1})
				return err
			}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				err := tt.create()
				var enc *wfplugin.EncodeError
				if !errors.As(err, &enc) || !errors.Is(err, wfplugin.ErrEncode) {
					t.Fatalf("create: %v, want an *EncodeError", err)
				}
				if enc.Field != "nmae" && enc.Field != "bogus" {
					t.Fatalf("EncodeError.Field = %q", enc.Field)
				}
			})
		}
	})
}

// TestCreateErrorDetail: the error of a refused create call carries the
// serving side's text, which names the instance for the engine, and the
// plugin's own words apart, for a host that names the instance itself.
func TestCreateErrorDetail(t *testing.T) {
	t.Parallel()
	overEachTransport(t, func(t *testing.T, launch func(t *testing.T, opts ...wfplugin.LaunchOption) *wfplugin.Client) {
		c := launch(t)
		ctx := ctxOf(t)
		_, modErr := c.CreateModule(ctx, "test.module", "refused", map[string]any{"name": "X"})
		_, trigErr := c.CreateTrigger(ctx, "trigger.test.fire", "pipeline:refused", nil)
		for _, tc := range []struct {
			err     error
			message string
		}{
			{modErr, `create module "refused" (test.module): config.name: refused by the plugin`},
			{trigErr, `create trigger trigger.test.fire for "pipeline:refused": config.name: refused by the plugin`},
		} {
			var remote *wfplugin.RemoteError
			if !errors.As(tc.err, &remote) {
				t.Fatalf("err = %v, want a *RemoteError", tc.err)
			}
			if remote.Message != tc.message || remote.Detail != "config.name: refused by the plugin" {
				t.Errorf("Message %q, Detail %q; want %q and the plugin's words", remote.Message, remote.Detail, tc.message)
			}
		}
	})
}

func TestExecuteStepMixedContract(t *testing.T) {
	t.Parallel()
	overEachTransport(t, func(t *testing.T, launch func(t *testing.T, opts ...wfplugin.LaunchOption) *wfplugin.Client) {
		c := launch(t)
		// A template in a duration field does not encode at Create, so mixed
		// mode sends the Struct alone; at run time the resolved config encodes.
		raw := map[string]any{"ack_token": "{{ .ack_token }}", "delay": "{{ .delay }}"}
		out := runStep(t, c, "step.test.settle", raw, wfplugin.ExecuteInput{
			Current: map[string]any{"ack_token": "tok-current", "subject": "orders.1", "n": 2},
			Config:  map[string]any{"ack_token": "tok-config", "delay": "1.5s", "_config_dir": "/etc/app"},
		}).Output
		want := map[string]any{
			"created_struct":  true,
			"created_typed":   false,
			"created_config":  raw,
			"has_config":      true,
			"has_current":     true,
			"typed_config":    true,
			"typed_input":     true,
			"config":          map[string]any{"ack_token": "tok-config", "delay": "1.5s", "_config_dir": "/etc/app"},
			"cfg_ack_token":   "tok-config",
			"cfg_delay":       "1.5s",
			"config_type_url": "type.googleapis.com/eventbus.v1.SettleStepConfig",
			"input_ack_token": "tok-current",
		}
		if !reflect.DeepEqual(out, want) {
			t.Fatalf("output:\n got %v\nwant %v", out, want)
		}

		// When the resolved config does not encode, the typed pair is left out.
		out = runStep(t, c, "step.test.settle", raw, wfplugin.ExecuteInput{
			Current: map[string]any{"ack_token": "tok"},
			Config:  map[string]any{"delay": "soon"},
		}).Output
		if out["typed_config"] != false || out["typed_input"] != false || out["has_config"] != true {
			t.Fatalf("with an unencodable config: %v, want Structs only", out)
		}
	})
}

func TestExecuteStepStrictContract(t *testing.T) {
	t.Parallel()
	overEachTransport(t, func(t *testing.T, launch func(t *testing.T, opts ...wfplugin.LaunchOption) *wfplugin.Client) {
		c := launch(t)
		out := runStep(t, c, "step.test.strict", map[string]any{"ack_token": "raw"}, wfplugin.ExecuteInput{
			Current: map[string]any{"ack_token": "tok-current", "subject": "orders.1"},
			Config:  map[string]any{"ack_token": "tok-config", "_config_dir": "/etc/app"},
		}).Output
		for k, want := range map[string]any{
			"created_struct": false, "created_typed": true, "has_config": false, "has_current": false,
			"typed_config": true, "typed_input": true, "cfg_ack_token": "tok-config", "input_ack_token": "tok-current",
		} {
			if out[k] != want {
				t.Errorf("%s = %v, want %v", k, out[k], want)
			}
		}

		ctx := ctxOf(t)
		h, err := c.CreateStep(ctx, "step.test.strict", "s", nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.ExecuteStep(ctx, h, wfplugin.ExecuteInput{Config: map[string]any{"delay": "soon"}})
		var enc *wfplugin.EncodeError
		if !errors.As(err, &enc) || enc.Field != "delay" {
			t.Fatalf("ExecuteStep with an unencodable config: %v, want an *EncodeError for delay", err)
		}
	})
}

func TestExecuteStepRoundTrip(t *testing.T) {
	t.Parallel()
	overEachTransport(t, func(t *testing.T, launch func(t *testing.T, opts ...wfplugin.LaunchOption) *wfplugin.Client) {
		c := launch(t)
		in := wfplugin.ExecuteInput{
			TriggerData: map[string]any{"id": "o-1", "n": 3, "tags": []any{"a", "b"}},
			StepOutputs: map[string]map[string]any{"prev": {"ok": true}},
			Current:     map[string]any{"id": "o-1", "ok": true, "ack_token": "tok"},
			Metadata:    map[string]any{"pipeline": "orders", "started_at": time.Now()},
			Config:      map[string]any{"msg": "hello", "stop": true, "_config_dir": "/etc/app"},
		}
		res := runStep(t, c, "step.test.echo", nil, in)
		want := map[string]any{
			"config":    map[string]any{"msg": "hello", "stop": true, "_config_dir": "/etc/app"},
			"current":   map[string]any{"id": "o-1", "ok": true, "ack_token": "tok"},
			"trigger":   map[string]any{"id": "o-1", "n": 3.0, "tags": []any{"a", "b"}},
			"steps":     map[string]any{"prev": map[string]any{"ok": true}},
			"meta":      map[string]any{"pipeline": "orders"}, // time.Time is dropped, as the engine drops it
			"ack_token": "tok",
		}
		if !reflect.DeepEqual(res.Output, want) {
			t.Fatalf("output:\n got %v\nwant %v", res.Output, want)
		}
		if !res.StopPipeline {
			t.Error("StopPipeline = false, want true")
		}
	})
}

func TestExecuteStepFailures(t *testing.T) {
	t.Parallel()
	overEachTransport(t, func(t *testing.T, launch func(t *testing.T, opts ...wfplugin.LaunchOption) *wfplugin.Client) {
		c := launch(t)
		ctx := ctxOf(t)
		echo, err := c.CreateStep(ctx, "step.test.echo", "echo", nil)
		if err != nil {
			t.Fatal(err)
		}
		panicky, err := c.CreateStep(ctx, "step.test.panic", "panic", nil)
		if err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name   string
			handle string
			in     wfplugin.ExecuteInput
			want   error
		}{
			{"step error", echo, wfplugin.ExecuteInput{Config: map[string]any{"fail": "boom"}}, wfplugin.ErrRemote},
			{"panic", panicky, wfplugin.ExecuteInput{}, wfplugin.ErrRemote},
			{"time in a step output", echo, wfplugin.ExecuteInput{StepOutputs: map[string]map[string]any{"p": {"at": time.Now()}}}, wfplugin.ErrNotJSONShaped},
			{"unknown handle", "step-999", wfplugin.ExecuteInput{}, wfplugin.ErrUnknownHandle},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, err := c.ExecuteStep(ctx, tt.handle, tt.in)
				if !errors.Is(err, tt.want) {
					t.Fatalf("ExecuteStep: %v, want %v", err, tt.want)
				}
			})
		}
		// engine-pipelines.md §5.2: the engine's words for an output a
		// Struct cannot hold, and typed maps and []byte normalised rather
		// than refused. protobuf-go words its errors with a space that
		// varies between builds ("proto: " or "proto:\u00a0"), so the
		// expected text takes its own.
		_, err = c.ExecuteStep(ctx, echo, wfplugin.ExecuteInput{StepOutputs: map[string]map[string]any{"p": {"at": time.Now()}}})
		_, protoErr := structpb.NewValue(time.Now())
		if want := `remote step "echo" (handle ` + echo + `) encode step output "p" as Struct: ` + protoErr.Error(); err == nil || err.Error() != want {
			t.Errorf("error %v, want %s", err, want)
		}
		res, err := c.ExecuteStep(ctx, echo, wfplugin.ExecuteInput{
			Config:      map[string]any{"h": map[string]string{"a": "b"}, "raw": []byte("hi")},
			TriggerData: map[string]any{"h": map[string]string{"a": "b"}},
		})
		if err != nil {
			t.Fatalf("typed map and bytes: %v", err)
		}
		cfg, _ := res.Output["config"].(map[string]any)
		if h, _ := cfg["h"].(map[string]any); h["a"] != "b" {
			t.Errorf("typed map arrived as %#v", cfg["h"])
		}
		if raw, _ := cfg["raw"].([]any); len(raw) != 2 || raw[0] != 104.0 {
			t.Errorf("[]byte arrived as %#v, want a list of numbers", cfg["raw"])
		}
		// The plugin survives all of that.
		if _, err := c.ExecuteStep(ctx, echo, wfplugin.ExecuteInput{}); err != nil {
			t.Fatalf("ExecuteStep after failures: %v", err)
		}
	})
}

type fired struct {
	workflowType, action string
	data                 map[string]any
}

func TestTriggerFiresTheWorkflowItWasCreatedFor(t *testing.T) {
	t.Parallel()
	overEachTransport(t, func(t *testing.T, launch func(t *testing.T, opts ...wfplugin.LaunchOption) *wfplugin.Client) {
		got := make(chan fired, 1)
		c := launch(t, wfplugin.WithWorkflowHandler(func(_ context.Context, wt, action string, data map[string]any) error {
			got <- fired{wt, action, data}
			return nil
		}))
		ctx := ctxOf(t)
		h, err := c.CreateTrigger(ctx, "trigger.test.fire", "pipeline:orders", map[string]any{"queue": "orders", "workflowType": "user-value"})
		if err != nil {
			t.Fatalf("CreateTrigger: %v", err)
		}
		if err := c.StartTrigger(ctx, h); err != nil {
			t.Fatalf("StartTrigger: %v", err)
		}
		var f fired
		select {
		case f = <-got:
		case <-time.After(hangGuard):
			t.Fatal("the trigger never fired")
		}
		want := fired{workflowType: "pipeline:orders", data: map[string]any{
			"n":        1.0,
			"workflow": "pipeline:orders",
			"config":   map[string]any{"queue": "orders", "workflowType": "pipeline:orders"},
			"nested":   map[string]any{"list": []any{"a", true, nil, 2.5}},
		}}
		if !reflect.DeepEqual(f, want) {
			t.Fatalf("TriggerWorkflow:\n got %+v\nwant %+v", f, want)
		}
		triggers := report(t, c)["triggers"].([]any)
		if wantT := []any{map[string]any{"workflow": "pipeline:orders", "ctx_alive": true}}; !reflect.DeepEqual(triggers, wantT) {
			t.Fatalf("triggers after StartModule returned = %v, want %v", triggers, wantT)
		}
		if err := c.StopTrigger(ctx, h); err != nil {
			t.Fatalf("StopTrigger: %v", err)
		}
	})
}

func TestCreateTriggerPerWorkflow(t *testing.T) {
	t.Parallel()
	overEachTransport(t, func(t *testing.T, launch func(t *testing.T, opts ...wfplugin.LaunchOption) *wfplugin.Client) {
		c := launch(t)
		ctx := ctxOf(t)
		first, err := c.CreateTrigger(ctx, "trigger.test.fire", "pipeline:a", map[string]any{"queue": "a"})
		if err != nil {
			t.Fatal(err)
		}
		again, err := c.CreateTrigger(ctx, "trigger.test.fire", "pipeline:a", map[string]any{"queue": "a"})
		if err != nil || again != first {
			t.Fatalf("same workflow and config: %q, %v; want handle %q", again, err, first)
		}
		other, err := c.CreateTrigger(ctx, "trigger.test.fire", "pipeline:b", map[string]any{"queue": "a"})
		if err != nil || other == first || other == "" {
			t.Fatalf("another workflow: %q, %v; want a new handle", other, err)
		}
		if _, err := c.CreateTrigger(ctx, "trigger.test.fire", "pipeline:a", map[string]any{"queue": "z"}); err == nil {
			t.Fatal("same workflow with another config succeeded")
		}
		for _, wt := range []string{"", "pipeline: a", "pipe\tline"} {
			if _, err := c.CreateTrigger(ctx, "trigger.test.fire", wt, nil); !errors.Is(err, wfplugin.ErrInvalidArgument) {
				t.Errorf("workflow type %q: %v, want ErrInvalidArgument", wt, err)
			}
		}
		if _, err := c.CreateTrigger(ctx, "trigger.nope", "pipeline:a", nil); !errors.Is(err, wfplugin.ErrUnknownType) {
			t.Errorf("unknown trigger type: %v, want ErrUnknownType", err)
		}
	})
}

func TestWorkflowFailureReachesThePlugin(t *testing.T) {
	t.Parallel()
	overEachTransport(t, func(t *testing.T, launch func(t *testing.T, opts ...wfplugin.LaunchOption) *wfplugin.Client) {
		got := make(chan map[string]any, 2)
		var calls atomic.Int32
		c := launch(t, wfplugin.WithWorkflowHandler(func(_ context.Context, _, _ string, data map[string]any) error {
			got <- data
			if calls.Add(1) == 1 {
				return errors.New("pipeline failed")
			}
			return nil
		}))
		ctx := ctxOf(t)
		h, err := c.CreateTrigger(ctx, "trigger.test.fire", "pipeline:orders", nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.StartTrigger(ctx, h); err != nil {
			t.Fatal(err)
		}
		var second map[string]any
		for range 2 {
			select {
			case second = <-got:
			case <-time.After(hangGuard):
				t.Fatal("the trigger did not fire twice")
			}
		}
		if second["workflow_failed"] != true {
			t.Fatalf("the plugin saw %v, want an error matching ErrWorkflowFailed", second)
		}
		if err := c.StopTrigger(ctx, h); err != nil {
			t.Fatal(err)
		}
	})
}

func processAlive(pid int) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	defer p.Release()
	return p.Signal(syscall.Signal(0)) == nil
}

func TestCloseLeavesNoProcess(t *testing.T) {
	t.Parallel()
	c, err := launchMode(t, modeServe)
	if err != nil {
		t.Fatal(err)
	}
	pid := c.Pid()
	if !processAlive(pid) {
		t.Fatalf("plugin pid %d is not running after Launch", pid)
	}
	closeClient(t, c)
	if processAlive(pid) {
		t.Fatalf("plugin pid %d still runs after Close", pid)
	}
	if !c.Exited() || c.Err() != nil {
		t.Fatalf("after Close: Exited() = %v, Err() = %v; want true, nil", c.Exited(), c.Err())
	}
	if _, err := c.CreateStep(ctxOf(t), "step.test.echo", "s", nil); !errors.Is(err, wfplugin.ErrClosed) {
		t.Fatalf("CreateStep after Close: %v, want ErrClosed", err)
	}
	closeClient(t, c) // idempotent
}

func TestCrashInAStepIsReportedWithStderr(t *testing.T) {
	t.Parallel()
	c := launch(t, modeServe)
	ctx := ctxOf(t)
	pid := c.Pid()
	h, err := c.CreateStep(ctx, "step.test.crash", "crash", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.ExecuteStep(ctx, h, wfplugin.ExecuteInput{})
	var exit *wfplugin.ExitError
	if !errors.Is(err, wfplugin.ErrPluginExited) || !errors.As(err, &exit) {
		t.Fatalf("ExecuteStep: %v, want an *ExitError", err)
	}
	if !slices.Contains(exit.Stderr, crashInStepLine) || exit.Status != "exit status 4" {
		t.Fatalf("ExitError = %+v, want status 4 and the line %q", exit, crashInStepLine)
	}
	select {
	case <-c.Done():
	case <-time.After(hangGuard):
		t.Fatal("Done never closed")
	}
	if !errors.Is(c.Err(), wfplugin.ErrPluginExited) {
		t.Fatalf("Err() = %v, want ErrPluginExited", c.Err())
	}
	if processAlive(pid) {
		t.Fatalf("crashed plugin pid %d still runs", pid)
	}
}

func TestLaunchInProcess(t *testing.T) {
	t.Parallel()
	got := make(chan fired, 1)
	p := newTestPlugin(modeServe, os.Stderr)
	c, err := wfplugin.LaunchInProcess(ctxOf(t), p,
		wfplugin.WithLogger(testLogger()),
		wfplugin.WithServeOptions(p.serveOptions()...),
		wfplugin.WithWorkflowHandler(func(_ context.Context, wt, action string, data map[string]any) error {
			got <- fired{wt, action, data}
			return nil
		}))
	if err != nil {
		t.Fatalf("LaunchInProcess: %v", err)
	}
	ctx := ctxOf(t)
	if c.Manifest().Name != "wfplugin-test" || c.Pid() != 0 {
		t.Fatalf("Manifest() = %+v, Pid() = %d", c.Manifest(), c.Pid())
	}
	out := runStep(t, c, "step.test.settle", nil, wfplugin.ExecuteInput{
		Current: map[string]any{"ack_token": "tok"},
		Config:  map[string]any{"ack_token": "cfg"},
	}).Output
	if out["input_ack_token"] != "tok" || out["cfg_ack_token"] != "cfg" {
		t.Fatalf("output = %v", out)
	}
	h, err := c.CreateTrigger(ctx, "trigger.test.fire", "pipeline:inproc", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.StartTrigger(ctx, h); err != nil {
		t.Fatal(err)
	}
	select {
	case f := <-got:
		if f.workflowType != "pipeline:inproc" {
			t.Fatalf("fired %q", f.workflowType)
		}
	case <-time.After(hangGuard):
		t.Fatal("the trigger never fired")
	}
	closeClient(t, c)
	select {
	case <-c.Done():
	default:
		t.Fatal("Done is open after Close")
	}
	if c.Err() != nil {
		t.Fatalf("Err() = %v after Close", c.Err())
	}
}

// script writes an executable shell script into a fresh directory.
func script(t *testing.T, body string) string {
	t.Helper()
	exe, ok := scripts[body]
	if !ok {
		t.Fatalf("no script %q: add it to scriptBodies", body)
	}
	return exe
}

// scriptBodies are the shell scripts the tests launch in place of a
// plugin. TestMain writes them before any test runs: an executable written
// while another test forks can fail to start with "text file busy"
// (golang.org/issue/22315).
var scriptBodies = []string{"echo hello; sleep 60", "echo bye >&2; exit 2", "sleep 60"}

// scripts maps each of scriptBodies to its executable; written by
// writeScripts before the tests run, read-only afterwards.
var scripts = map[string]string{}

// writeScripts writes every script into dir.
func writeScripts(dir string) error {
	for i, body := range scriptBodies {
		exe := filepath.Join(dir, fmt.Sprintf("not-a-plugin-%d", i))
		if err := os.WriteFile(exe, []byte("#!/bin/sh\n"+body+"\n"), 0o700); err != nil {
			return err
		}
		scripts[body] = exe
	}
	return nil
}

func TestLaunchFailsForWhatIsNotAPlugin(t *testing.T) {
	t.Parallel()
	notExecutable := filepath.Join(t.TempDir(), "plain")
	if err := os.WriteFile(notExecutable, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := map[string]string{
		"missing file":      filepath.Join(t.TempDir(), "nope"),
		"directory":         t.TempDir(),
		"not executable":    notExecutable,
		"garbage on stdout": script(t, "echo hello; sleep 60"),
		"exits at once":     script(t, "echo bye >&2; exit 2"),
	}
	for name, path := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c, err := wfplugin.Launch(ctxOf(t), path, wfplugin.WithLogger(testLogger()))
			if err == nil {
				closeClient(t, c)
				t.Fatal("Launch succeeded")
			}
			if !errors.Is(err, wfplugin.ErrLaunch) {
				t.Fatalf("Launch: %v, want ErrLaunch", err)
			}
		})
	}
}

func TestLaunchStopsWaitingWhenCtxEnds(t *testing.T) {
	t.Parallel()
	tests := map[string]func() (context.Context, context.CancelFunc){
		"deadline": func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(t.Context(), 300*time.Millisecond)
		},
		"cancel": func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(t.Context())
			time.AfterFunc(300*time.Millisecond, cancel)
			return ctx, cancel
		},
	}
	for name, newCtx := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := newCtx()
			defer cancel()
			_, err := wfplugin.Launch(ctx, script(t, "sleep 60"), wfplugin.WithLogger(testLogger()))
			if !errors.Is(err, ctx.Err()) || errors.Is(err, wfplugin.ErrPluginExited) {
				t.Fatalf("Launch: %v, want %v and no crash report", err, ctx.Err())
			}
		})
	}
}

func TestLaunchedPluginOutlivesTheLaunchContext(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), hangGuard)
	c, err := wfplugin.Launch(ctx, testBinary(t), baseOptions(modeServe)...)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	defer closeClient(t, c)
	if calls := report(t, c)["calls"].([]any); len(calls) == 0 {
		t.Fatal("no RPCs recorded")
	}
	if c.Exited() {
		t.Fatal("the plugin ended with its launch context")
	}
}
