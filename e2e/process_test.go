package e2e_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Hang guards: how long a test waits for something that should happen
// much sooner. They bound a broken run; no assertion depends on them.
const (
	startGuard = 60 * time.Second // a process starts and reports running
	testGuard  = 90 * time.Second // everything one test waits for
)

// guard returns a context that ends after d or when the test ends.
func guard(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// repoPath returns the absolute path of a file of the repository, given
// relative to its root.
func repoPath(t *testing.T, rel string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", rel))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// baseEnv is the test's environment without what would point an app at
// another broker or change how the binary starts.
func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k == "NATS_URL" || k == "WORKFLOW_PLUGIN" || strings.HasPrefix(k, "EVENTBUS_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// mode is where `eventbus run` runs the plugin.
type mode struct {
	name  string
	flags []string
}

// modes are both ways `eventbus run` runs the plugin: inside its own
// process (the default) and as a separate process over gRPC, as the
// workflow engine runs it. Every test of an app's behaviour runs in both,
// from the same case, so the modes cannot drift apart.
var modes = []mode{
	{name: "in-process"},
	{name: "out-of-process", flags: []string{"--out-of-process"}},
}

// inEachMode runs test once per mode, in parallel.
func inEachMode(t *testing.T, test func(t *testing.T, m mode)) {
	t.Helper()
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			test(t, m)
		})
	}
}

// appConfig says how to start an app.
type appConfig struct {
	// mode is where the plugin runs.
	mode mode
	// store is the embedded broker's store directory; "" is a new
	// temporary one.
	store string
	// flags are flags of `eventbus run`, such as --shutdown-timeout.
	flags []string
	// env is added to the process's environment.
	env []string
}

// app is one `eventbus run` process: its embedded broker listens on a free
// port and keeps its store where appConfig says. Its stderr is captured;
// the test logs it if it fails.
type app struct {
	cmd   *exec.Cmd
	url   string
	store string
	log   *lineLog

	exited  chan struct{}
	waitErr error // set before exited closes
}

// startApp runs `eventbus --log-format json run [flags] file` and waits
// until the app logs that it is running.
//
// The app's port was free when launchApp picked it, but another process
// of the machine may take it before the app listens: an app that ends
// because its port is in use is started again, on another port.
func startApp(t *testing.T, file string, c appConfig) *app {
	t.Helper()
	const attempts = 5
	for range attempts - 1 {
		a := launchApp(t, file, c)
		ctx := guard(t, startGuard)
		if _, err := a.log.waitFor(ctx, func(r record) bool { return r.msg() == "running" }); err == nil {
			return a
		}
		select {
		case <-a.exited:
		case <-ctx.Done():
			t.Fatalf("the app did not report running: %v", ctx.Err())
		}
		if !a.log.contains("address already in use") {
			t.Fatalf("the app did not report running: it exited (%v)", a.waitErr)
		}
		t.Logf("the app's port %s was taken before it listened; starting it again on another", a.url)
	}
	a := launchApp(t, file, c)
	a.waitRunning(t)
	return a
}

// launchApp starts the app and returns at once.
func launchApp(t *testing.T, file string, c appConfig) *app {
	t.Helper()
	if c.store == "" {
		c.store = t.TempDir()
	}
	port := freePort(t)
	args := append([]string{"--log-format", "json", "run"}, c.mode.flags...)
	args = append(args, c.flags...)
	cmd := exec.Command(eventbusBin, append(args, file)...)
	cmd.Env = append(baseEnv(),
		"EVENTBUS_PORT="+strconv.Itoa(port),
		"EVENTBUS_STORE_DIR="+c.store)
	cmd.Env = append(cmd.Env, c.env...)
	cmd.Dir = t.TempDir()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	a := &app{
		cmd:    cmd,
		url:    fmt.Sprintf("nats://127.0.0.1:%d", port),
		store:  c.store,
		log:    newLineLog(),
		exited: make(chan struct{}),
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		a.log.readFrom(stderr)
		a.waitErr = cmd.Wait()
		close(a.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-a.exited:
		default:
			// The kernel ends the plugin with its host.
			_ = cmd.Process.Kill()
			<-a.exited
		}
		if t.Failed() {
			t.Logf("stderr of %s:\n%s", filepath.Base(file), a.log)
		}
	})
	return a
}

// waitRunning waits for the "running" log record; the test fails if the
// process exits first.
func (a *app) waitRunning(t *testing.T) {
	t.Helper()
	ctx := guard(t, startGuard)
	if _, err := a.log.waitFor(ctx, func(r record) bool { return r.msg() == "running" }); err != nil {
		t.Fatalf("the app did not report running: %v", err)
	}
}

// pid is the process id of the app.
func (a *app) pid() int { return a.cmd.Process.Pid }

// signal sends sig to the app.
func (a *app) signal(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := a.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v: %v", sig, err)
	}
}

// wait waits for the app to exit and returns its exit code (-1 for a
// death by signal).
func (a *app) wait(t *testing.T, ctx context.Context) int {
	t.Helper()
	select {
	case <-a.exited:
	case <-ctx.Done():
		t.Fatalf("the app did not exit: %v", ctx.Err())
	}
	if a.waitErr == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(a.waitErr, &ee) {
		return ee.ExitCode()
	}
	t.Fatalf("wait: %v", a.waitErr)
	return 0
}

// children returns the process ids of the direct children of pid.
func children(t *testing.T, pid int) []int {
	t.Helper()
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, f := range tasks {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // the thread ended
		}
		for _, field := range strings.Fields(string(b)) {
			n, err := strconv.Atoi(field)
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			out = append(out, n)
		}
	}
	return out
}

// alive reports whether a process with id pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name, which is in parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// record is one JSON log record.
type record map[string]any

func (r record) msg() string { return r.str("msg") }

func (r record) str(key string) string {
	s, _ := r[key].(string)
	return s
}

// lineLog keeps every line a process writes and lets tests wait for one.
type lineLog struct {
	mu      sync.Mutex
	lines   []string
	closed  bool
	changed chan struct{} // closed and replaced on every change
}

func newLineLog() *lineLog { return &lineLog{changed: make(chan struct{})} }

// readFrom keeps the lines of r until it ends.
func (l *lineLog) readFrom(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 4*1024*1024)
	for sc.Scan() {
		l.add(sc.Text())
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	close(l.changed)
	l.changed = make(chan struct{})
}

func (l *lineLog) add(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, line)
	close(l.changed)
	l.changed = make(chan struct{})
}

// String returns the whole output.
func (l *lineLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// records returns the lines that are JSON log records, in order.
func (l *lineLog) records() []record {
	l.mu.Lock()
	lines := append([]string(nil), l.lines...)
	l.mu.Unlock()
	var out []record
	for _, line := range lines {
		if r, ok := parseRecord(line); ok {
			out = append(out, r)
		}
	}
	return out
}

func parseRecord(line string) (record, bool) {
	line = strings.TrimSpace(line)
	if !strings.HasPrefix(line, "{") {
		return nil, false
	}
	var r record
	if err := json.Unmarshal([]byte(line), &r); err != nil {
		return nil, false
	}
	return r, true
}

// waitFor returns the first record that match accepts, waiting for it
// until ctx ends or the output ends.
func (l *lineLog) waitFor(ctx context.Context, match func(record) bool) (record, error) {
	seen := 0
	for {
		l.mu.Lock()
		lines := l.lines[seen:]
		seen = len(l.lines)
		closed, changed := l.closed, l.changed
		l.mu.Unlock()
		for _, line := range lines {
			if r, ok := parseRecord(line); ok && match(r) {
				return r, nil
			}
		}
		if closed {
			return nil, errors.New("the process ended its output")
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// contains reports whether any line contains s.
func (l *lineLog) contains(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range l.lines {
		if strings.Contains(line, s) {
			return true
		}
	}
	return false
}

// runCommand runs the eventbus binary with args and returns its exit code,
// stdout and stderr.
func runCommand(t *testing.T, ctx context.Context, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.CommandContext(ctx, eventbusBin, args...)
	cmd.Env = baseEnv()
	cmd.Dir = t.TempDir()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, stdout.String(), stderr.String()
	case errors.As(err, &ee) && ctx.Err() == nil:
		return ee.ExitCode(), stdout.String(), stderr.String()
	default:
		t.Fatalf("eventbus %s: %v\nstderr:\n%s", strings.Join(args, " "), err, stderr.String())
		return 0, "", ""
	}
}
