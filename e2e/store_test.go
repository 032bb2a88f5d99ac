package e2e_test

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestSecondAppOnOneStore starts a second app on the store directory of a
// running one, on another port: the second must refuse to start, saying
// which directory and which process hold it and what to do, and the first
// must keep every message, across a restart too.
func TestSecondAppOnOneStore(t *testing.T) {
	t.Parallel()
	inEachMode(t, func(t *testing.T, m mode) {
		ctx := guard(t, testGuard)
		file := repoPath(t, "e2e/testdata/slow/app.yaml")
		first := startApp(t, file, appConfig{mode: m})
		js := connect(t, first)
		const before, after = 5, 5
		for i := range before {
			publish(t, ctx, js, "idle.a", fmt.Sprintf(`{"n":%d}`, i))
		}
		// The broker runs in the plugin: in the app's own process, or in the
		// plugin process it started.
		holder := first.pid()
		if len(m.flags) > 0 {
			plugins := children(t, first.pid())
			if len(plugins) != 1 {
				t.Fatalf("want one child process (the plugin), got %v", plugins)
			}
			holder = plugins[0]
		}

		second := launchApp(t, file, appConfig{mode: m, store: first.store})
		if code := second.wait(t, ctx); code != 1 {
			t.Fatalf("the second app exited with %d, want 1", code)
		}
		out := second.log.String()
		for _, want := range []string{
			"store directory " + first.store,
			"in use by process " + strconv.Itoa(holder),
			"use another store directory",
			"EVENTBUS_BUS_URI to " + first.url,
		} {
			if !strings.Contains(out, want) {
				t.Errorf("the second app's output does not say %q:\n%s", want, out)
			}
		}

		for i := range after {
			publish(t, ctx, js, "idle.b", fmt.Sprintf(`{"n":%d}`, i))
		}
		if n, err := streamMsgs(ctx, js, "IDLE"); err != nil || n != before+after {
			t.Fatalf("IDLE holds %d messages (%v), want %d", n, err, before+after)
		}
		first.signal(t, syscall.SIGTERM)
		if code := first.wait(t, ctx); code != 0 {
			t.Fatalf("the first app exited with %d, want 0", code)
		}
		again := startApp(t, file, appConfig{mode: m, store: first.store})
		if n, err := streamMsgs(ctx, connect(t, again), "IDLE"); err != nil || n != before+after {
			t.Fatalf("after a restart IDLE holds %d messages (%v), want %d", n, err, before+after)
		}
	})
}
