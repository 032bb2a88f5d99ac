package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// brokenApp has one mistake of each kind that used to pass validate and
// then stop run at start, one per start, without a line number.
const brokenApp = `modules:
  - { name: bus, type: eventbus.broker, config: { embedded: { port: -1, store_dir: "%s" } } }
  - { name: orders, type: eventbus.stream, config: { name: ORDERS, subjects: ["orders.>"], num_replicas: 3 } }
  - { name: nameless, type: eventbus.consumer, config: { max_deliver: 3 } }
  - { name: payments, type: eventbus.consumer, config: { stream_name: PAYMENTS } }
  - { name: worker, type: eventbus.consumer, config: { stream_name: ORDERS, dead_letter_subject: dlq.orders } }
  - { name: audit, type: eventbus.consumer, config: { stream_name: "${AUDIT_STREAM}" } }
pipelines:
  p:
    trigger: { type: trigger.eventbus.subscribe, config: { name: nobody, concurrency: -1 } }
    steps:
      - { name: read, type: step.eventbus.consume, config: { consumer: worker, batch_size: 5000 } }
      - { name: fwd, type: step.eventbus.publish, config: { subject: 'shipping.{{ .json.region }}', payload: x } }
`

// problemLines returns the lines of a command's stderr that report a
// problem of file, without the command's prefix.
func problemLines(stderr, file string) []string {
	var out []string
	for _, l := range strings.Split(stderr, "\n") {
		l = strings.TrimPrefix(l, "eventbus: ")
		if strings.HasPrefix(l, file+":") {
			out = append(out, l)
		}
	}
	return out
}

// TestRunRefusesWhatValidateRefuses: eventbus validate reports every
// mistake of brokenApp at once, each with its line and field, and eventbus
// run, in either plugin mode, refuses the app with the same lines, starting
// nothing: the broker's store is never created.
func TestRunRefusesWhatValidateRefuses(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	file := filepath.Join(dir, "app.yaml")
	if err := os.WriteFile(file, []byte(fmt.Sprintf(brokenApp, store)), 0o600); err != nil {
		t.Fatal(err)
	}
	v := runCLI(t, nil, "", "validate", file)
	warning := fmt.Sprintf("warning: %s:7: modules[5].config.stream_name: ${AUDIT_STREAM} is left as written: AUDIT_STREAM is not set\n", file)
	if v.code != 1 || v.stdout != warning {
		t.Fatalf("validate: exit %d, stdout %q, want 1 and %q", v.code, v.stdout, warning)
	}
	got := problemLines(v.stderr, file)
	for i, w := range []struct {
		line  int
		field string
		says  string
	}{
		{3, "modules[1].config.num_replicas", "module orders (eventbus.stream): 3 replicas on broker bus, a single server (embedded)"},
		{4, "modules[2].config.stream_name", "module nameless (eventbus.consumer): required"},
		{5, "modules[3].config.stream_name", `module payments (eventbus.consumer): unknown reference: no eventbus.stream module declares stream "PAYMENTS"`},
		{6, "modules[4].config.dead_letter_subject", `module worker (eventbus.consumer): unknown reference: no stream on broker bus stores dead letters to "dlq.orders"`},
		{7, "modules[5].config.stream_name", "(${AUDIT_STREAM} is left as written: AUDIT_STREAM is not set)"},
		{10, "pipelines.p.trigger.config.name", `trigger of pipeline p (trigger.eventbus.subscribe): unknown reference: no eventbus.consumer module declares consumer "nobody"`},
		{10, "pipelines.p.trigger.config.concurrency", "must be 1 or more, got -1"},
		{12, "pipelines.p.steps[0].config.batch_size", "step read (step.eventbus.consume): must be between 1 and 1000, got 5000"},
		{13, "pipelines.p.steps[1].config.subject", `step fwd (step.eventbus.publish): unknown reference: no stream on broker bus stores subjects beginning "shipping."`},
	} {
		prefix := fmt.Sprintf("%s:%d: %s: ", file, w.line, w.field)
		if i >= len(got) || !strings.HasPrefix(got[i], prefix) || !strings.Contains(got[i], w.says) {
			t.Errorf("problem %d: want %s...%s", i, prefix, w.says)
		}
	}
	if len(got) != 9 {
		t.Errorf("validate reported %d problems, want 9:\n%s", len(got), v.stderr)
	}
	for _, mode := range []string{"in-process", "out-of-process"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			args := []string{"run", file}
			if mode == "out-of-process" {
				args = []string{"run", "--out-of-process", file}
			}
			r := runCLI(t, nil, "", args...)
			if r.code != 1 {
				t.Fatalf("run: exit %d, want 1; stderr:\n%s", r.code, r.stderr)
			}
			if lines := problemLines(r.stderr, file); !slices.Equal(lines, got) {
				t.Errorf("run reports\n  %s\nvalidate reports\n  %s", strings.Join(lines, "\n  "), strings.Join(got, "\n  "))
			}
			for _, bad := range []string{"runner stopped", "wfplugin:", "lifecycle call failed", "create module"} {
				if strings.Contains(r.stderr, bad) {
					t.Errorf("run's output holds %q:\n%s", bad, r.stderr)
				}
			}
		})
	}
	if _, err := os.Stat(store); !os.IsNotExist(err) {
		t.Errorf("the broker's store was created (%v): something started", err)
	}
}

// TestRunStartFailure: a broker that cannot start (its port is taken)
// stops run with one error that names the module and the line of its
// config once, after no "runner stopped", in either plugin mode.
func TestRunStartFailure(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	port := ln.Addr().(*net.TCPAddr).Port
	for _, mode := range []string{"in-process", "out-of-process"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			file := filepath.Join(dir, "app.yaml")
			src := fmt.Sprintf("modules:\n  - name: bus\n    type: eventbus.broker\n    config: { embedded: { port: %d, store_dir: %q } }\n", port, filepath.Join(dir, "store"))
			if err := os.WriteFile(file, []byte(src), 0o600); err != nil {
				t.Fatal(err)
			}
			args := []string{"run", file}
			if mode == "out-of-process" {
				args = []string{"run", "--out-of-process", file}
			}
			r := runCLI(t, nil, "", args...)
			if r.code != 1 {
				t.Fatalf("exit %d, want 1; stderr:\n%s", r.code, r.stderr)
			}
			lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
			last := lines[len(lines)-1]
			want := fmt.Sprintf("eventbus: %s:2: start module bus (eventbus.broker): broker bus: ", file)
			if !strings.HasPrefix(last, want) || !strings.Contains(last, fmt.Sprint(port)) {
				t.Errorf("last line %q, want %q... naming port %d", last, want, port)
			}
			for _, bad := range []string{"runner stopped", "wfplugin:", "lifecycle call failed", "module bus: "} {
				if strings.Contains(r.stderr, bad) {
					t.Errorf("output holds %q:\n%s", bad, r.stderr)
				}
			}
		})
	}
}

// TestReadmeAppValidates: the app of README.md's "In an app YAML" passes
// validate without a warning, as written: every subject it publishes to
// and its dead letters are stored by a stream it declares.
func TestReadmeAppValidates(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n## In an app YAML\n")
	if !ok {
		t.Fatal(`README.md has no section "In an app YAML"`)
	}
	_, block, ok := strings.Cut(section, "```yaml\n")
	if !ok {
		t.Fatal(`the section "In an app YAML" has no yaml block`)
	}
	src, _, ok := strings.Cut(block, "```")
	if !ok {
		t.Fatal("the yaml block does not end")
	}
	file := filepath.Join(t.TempDir(), "app.yaml")
	if err := os.WriteFile(file, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	v := runCLI(t, nil, "", "validate", file)
	if want := file + ": ok\n"; v.code != 0 || v.stdout != want {
		t.Fatalf("validate: exit %d, stdout %q, stderr %q; want 0 and %q", v.code, v.stdout, v.stderr, want)
	}
}
