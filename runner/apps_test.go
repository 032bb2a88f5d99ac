package runner_test

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/wfeventbus/eventbus/eventbus"
	"github.com/wfeventbus/eventbus/pluginserver"
	"github.com/wfeventbus/eventbus/runner"
	"github.com/wfeventbus/eventbus/wfplugin"
)

// eventbusCatalog is the real plugin's catalog, as eventbus validate uses
// it offline.
func eventbusCatalog(t *testing.T) runner.Catalog {
	t.Helper()
	reg, err := wfplugin.NewRegistry(pluginserver.Contracts())
	if err != nil {
		t.Fatal(err)
	}
	return runner.Catalog{
		ModuleTypes:  eventbus.ModuleTypes(),
		StepTypes:    eventbus.StepTypes(),
		TriggerTypes: eventbus.TriggerTypes(),
		Contracts:    reg,
		EnvDefaults:  true,
	}
}

// readmeEnv is the environment the READMEs have the apps run in: the
// PostgreSQL example finds its database in DATABASE_URL.
var readmeEnv = map[string]string{"DATABASE_URL": "postgres:///eventbus_demo"}

// yamlApp matches a fenced YAML block of a Markdown file.
var yamlApp = regexp.MustCompile("(?s)```yaml\n(.*?)```")

// TestAppsRunInTheEngine checks every example app and every complete app
// YAML of the README offline against the engine's rules: only step types
// the engine or the plugin has, only the engine's template functions,
// valid built-in step configs (engine-pipelines.md §1–§3), and nothing the
// engine would silently ignore or leave unexpanded: no problem, no
// warning.
func TestAppsRunInTheEngine(t *testing.T) {
	t.Parallel()
	cat := eventbusCatalog(t)
	apps, err := filepath.Glob("../examples/*/app.yaml")
	if err != nil || len(apps) < 3 {
		t.Fatalf("example apps: %v %v", apps, err)
	}
	check := func(t *testing.T, name string, data []byte) {
		cfg, err := runner.Check(name, data, nil, cat)
		if err != nil {
			t.Fatalf("%s does not load:\n%v", name, err)
		}
		for _, w := range cfg.Warnings {
			t.Errorf("%s: %v", name, w)
		}
		// What the plugin checks when it creates the app, as validate and
		// run have it do.
		for _, w := range prepareApp(t, name, data, readmeEnv) {
			t.Errorf("%s: %v", name, w)
		}
		for _, pl := range cfg.Pipelines {
			for _, s := range pl.Steps {
				if !runner.IsEngineStepType(s.Type) && !strings.HasPrefix(s.Type, "step.eventbus.") {
					t.Errorf("%s: pipeline %s uses %s, which the engine lacks", name, pl.Name, s.Type)
				}
			}
		}
	}
	for _, app := range apps {
		t.Run(filepath.Base(filepath.Dir(app)), func(t *testing.T) {
			t.Parallel()
			data, err := os.ReadFile(app)
			if err != nil {
				t.Fatal(err)
			}
			check(t, app, data)
		})
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range yamlApp.FindAllSubmatch(readme, -1) {
		block := string(m[1])
		if !strings.HasPrefix(block, "modules:") && !strings.HasPrefix(block, "pipelines:") {
			continue // a fragment of an app
		}
		n++
		check(t, "README.md", m[1])
	}
	if n == 0 {
		t.Error("no app YAML found in README.md")
	}
}

// prepareApp prepares the app in the eventbus plugin in this process, as
// eventbus validate does, and returns its warnings; a problem fails t.
func prepareApp(t *testing.T, name string, data []byte, env map[string]string) []*runner.Problem {
	t.Helper()
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	cfg, err := runner.Parse(name, data, lookup)
	if err != nil {
		t.Fatalf("%s does not parse:\n%v", name, err)
	}
	warnings := &runner.PluginWarnings{}
	c, err := pluginserver.LaunchDirect(t.Context(), pluginserver.DirectConfig{Version: "1.0.0", Getenv: func(k string) string { return env[k] }, Warn: warnTo(warnings)})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := c.Close(context.Background()); err != nil {
			t.Errorf("close the plugin: %v", err)
		}
	}()
	r, err := runner.Prepare(t.Context(), cfg, runner.FromClient(c), nil, runner.WithPluginWarnings(warnings.Take))
	if err != nil {
		t.Fatalf("%s: the plugin refuses it:\n%v", name, err)
	}
	return r.Warnings()
}

// warnTo hands the warnings of the plugin in this process to ws.
func warnTo(ws *runner.PluginWarnings) func(eventbus.Warning) {
	return func(w eventbus.Warning) { ws.Add(w.Field, w.Message) }
}
