package e2e_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestValidate checks the examples and the test apps with `eventbus
// validate`: each is ok.
func TestValidate(t *testing.T) {
	t.Parallel()
	for _, file := range []string{
		"examples/orders/app.yaml",
		"examples/work-queue/app.yaml",
		"e2e/testdata/slow/app.yaml",
		"e2e/testdata/big/app.yaml",
		"e2e/testdata/backlog/app.yaml",
		"examples/parity/app.yaml",
	} {
		t.Run(file, func(t *testing.T) {
			t.Parallel()
			ctx := guard(t, startGuard)
			path := repoPath(t, file)
			code, stdout, stderr := runCommand(t, ctx, "validate", path)
			if code != 0 {
				t.Fatalf("exit code %d, want 0; stderr:\n%s", code, stderr)
			}
			if want := path + ": ok\n"; stdout != want {
				t.Errorf("stdout %q, want %q", stdout, want)
			}
		})
	}
}

// TestValidateBroken validates a config with many mistakes: it exits 1 and
// reports each mistake with its file, line and field, all in one run.
func TestValidateBroken(t *testing.T) {
	t.Parallel()
	ctx := guard(t, startGuard)
	path := repoPath(t, "e2e/testdata/broken/app.yaml")
	code, stdout, stderr := runCommand(t, ctx, "validate", path)
	if code != 1 {
		t.Fatalf("exit code %d, want 1; stderr:\n%s", code, stderr)
	}
	if stdout != "" {
		t.Errorf("stdout %q, want nothing", stdout)
	}
	for _, w := range []struct {
		line  int
		field string
		says  string
	}{
		{12, "modules[1].config.retention_policy", `"forever"`},
		{14, "modules[2].name", `"orders" is declared twice`},
		{24, "modules[3].config.ack_wait", `"soon" is not a duration`},
		{27, "modules[4].type", `unknown module type "eventbus.cache"`},
		{35, "pipelines.process.trigger.config.concurrency", `"many" is not an integer`},
		{40, "pipelines.process.steps[0].config.subjekt", `did you mean "subject"`},
		{42, "pipelines.process.steps[1].type", `unknown step type: step.sleep`},
	} {
		prefix := fmt.Sprintf("%s:%d: %s: ", path, w.line, w.field)
		found := false
		for _, l := range strings.Split(stderr, "\n") {
			l = strings.TrimPrefix(l, "eventbus: ")
			if strings.HasPrefix(l, prefix) && strings.Contains(l, w.says) {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("no line %q...%s", prefix, w.says)
		}
	}
	if t.Failed() {
		t.Logf("stderr:\n%s", stderr)
	}
}

// TestRunRefusesWhatValidateRefuses runs the binary on an app with many
// mistakes: validate reports each with its line and field, all in one
// run, and run refuses the app with the same lines in both plugin modes,
// starting nothing (the broker's store is never created) and without a
// "runner stopped" or a protocol prefix in its output.
func TestRunRefusesWhatValidateRefuses(t *testing.T) {
	t.Parallel()
	path := repoPath(t, "e2e/testdata/refused/app.yaml")
	lines := func(stderr string) []string {
		var out []string
		for _, l := range strings.Split(stderr, "\n") {
			if l = strings.TrimPrefix(l, "eventbus: "); strings.HasPrefix(l, path+":") {
				out = append(out, l)
			}
		}
		return out
	}
	code, _, stderr := runCommand(t, guard(t, startGuard), "validate", path)
	if code != 1 {
		t.Fatalf("validate: exit code %d, want 1; stderr:\n%s", code, stderr)
	}
	want := lines(stderr)
	for i, w := range []string{
		"5: modules[1].config.num_replicas: ",
		"6: modules[2].config.stream_name: ",
		"7: modules[3].config.stream_name: ",
		"8: modules[4].config.dead_letter_subject: ",
		"9: modules[5].config.stream_name: ",
		"12: pipelines.p.trigger.config.name: ",
		"12: pipelines.p.trigger.config.concurrency: ",
		"14: pipelines.p.steps[0].config.batch_size: ",
		"15: pipelines.p.steps[1].config.subject: ",
	} {
		if i >= len(want) || !strings.HasPrefix(want[i], path+":"+w) {
			t.Errorf("problem %d: want %s:%s...", i, path, w)
		}
	}
	if len(want) != 9 {
		t.Fatalf("validate reported %d problems, want 9:\n%s", len(want), stderr)
	}
	inEachMode(t, func(t *testing.T, m mode) {
		args := append(append([]string{"run"}, m.flags...), path)
		code, _, stderr := runCommand(t, guard(t, startGuard), args...)
		if code != 1 {
			t.Fatalf("exit code %d, want 1; stderr:\n%s", code, stderr)
		}
		if got := lines(stderr); strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("run reports:\n%s\nvalidate reports:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		for _, bad := range []string{"runner stopped", "wfplugin:", "lifecycle call failed"} {
			if strings.Contains(stderr, bad) {
				t.Errorf("output holds %q:\n%s", bad, stderr)
			}
		}
	})
	t.Cleanup(func() {
		if _, err := os.Stat(repoPath(t, "e2e/testdata/refused/data")); !os.IsNotExist(err) {
			t.Errorf("the broker's store was created (%v): something started", err)
		}
	})
}

// TestValidateUsage: a file that does not exist is a failure naming the
// file; a missing argument is a usage error.
func TestValidateUsage(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "nope.yaml")
	for _, tc := range []struct {
		name string
		args []string
		code int
		says string
	}{
		{"missing file", []string{"validate", missing}, 1, missing},
		{"no file", []string{"validate"}, 2, "accepts 1 arg"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := guard(t, startGuard)
			code, _, stderr := runCommand(t, ctx, tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.says) {
				t.Errorf("exit code %d, stderr %q; want %d and %q", code, stderr, tc.code, tc.says)
			}
		})
	}
}
