package e2e_test

import (
	"slices"
	"strings"
	"syscall"
	"testing"
)

// TestInProcessStartsNoProcess runs an app in the default mode: the plugin
// runs inside the app's process, which starts no process of its own.
func TestInProcessStartsNoProcess(t *testing.T) {
	t.Parallel()
	a := startApp(t, repoPath(t, "examples/orders/app.yaml"), appConfig{mode: modes[0]})
	if kids := children(t, a.pid()); len(kids) != 0 {
		t.Fatalf("the app started processes %v; the plugin should run inside it", kids)
	}
	if _, err := a.log.waitFor(guard(t, startGuard), func(r record) bool {
		return r.msg() == "running" && r.str("plugin_mode") == "in-process"
	}); err != nil {
		t.Fatalf("no running record with plugin_mode in-process: %v", err)
	}
}

// TestPluginKilled kills the plugin process under an app that runs it out
// of process: the app must exit non-zero, say that the plugin stopped with
// the plugin's last stderr lines, and leave no process behind.
func TestPluginKilled(t *testing.T) {
	t.Parallel()
	ctx := guard(t, testGuard)
	a := startApp(t, repoPath(t, "examples/orders/app.yaml"), appConfig{mode: modes[1]})

	plugins := children(t, a.pid())
	if len(plugins) != 1 {
		t.Fatalf("want one child process (the plugin), got %v", plugins)
	}
	plugin := plugins[0]
	family := append([]int{plugin}, descendants(t, plugin)...)
	if err := syscall.Kill(plugin, syscall.SIGKILL); err != nil {
		t.Fatalf("kill the plugin: %v", err)
	}
	code := a.wait(t, ctx)
	if code == 0 || code == -1 {
		t.Fatalf("exit code = %d, want a failure status", code)
	}

	// The last lines are the error: what happened, then the plugin's own
	// last output, indented.
	out := strings.Split(a.log.String(), "\n")
	i := slices.IndexFunc(out, func(l string) bool {
		return strings.HasPrefix(l, "eventbus: ") && strings.Contains(l, "the plugin stopped unexpectedly")
	})
	if i < 0 {
		t.Fatal("no error line saying the plugin stopped unexpectedly")
	}
	if !strings.Contains(out[i], "signal: killed") {
		t.Errorf("the error does not say how the plugin ended: %s", out[i])
	}
	tail := out[i+1:]
	if !slices.ContainsFunc(tail, func(l string) bool {
		r, ok := parseRecord(l)
		return ok && strings.HasPrefix(l, "  ") && r.msg() == "subscribed"
	}) {
		t.Errorf("the error does not end with the plugin's last stderr lines:\n%s", strings.Join(tail, "\n"))
	}
	if n := strings.Count(a.log.String(), "signal: killed"); n > 2 {
		t.Errorf("the plugin's exit is reported %d times; want it reported once (and logged once)", n)
	}

	for _, pid := range family {
		if alive(pid) {
			t.Errorf("process %d of the plugin outlived the app", pid)
		}
	}
}

// descendants returns every process below pid.
func descendants(t *testing.T, pid int) []int {
	t.Helper()
	var out []int
	for _, c := range children(t, pid) {
		out = append(out, c)
		out = append(out, descendants(t, c)...)
	}
	return out
}
