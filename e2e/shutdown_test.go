package e2e_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// TestShutdownWithRunsInFlight stops the slow app with SIGTERM while runs
// are in flight: it must exit 0 once they have finished, and after a restart
// on the same store every task must have been reported exactly once.
func TestShutdownWithRunsInFlight(t *testing.T) {
	t.Parallel()
	inEachMode(t, func(t *testing.T, m mode) {
		const tasks = 12
		ctx := guard(t, testGuard)
		file := repoPath(t, "e2e/testdata/slow/app.yaml")
		cfg := appConfig{
			mode:  m,
			flags: []string{"--shutdown-timeout", "30s"},
			env:   []string{"SLOW_TASK_WAIT=2s"},
		}
		first := startApp(t, file, cfg)
		js := connect(t, first)
		for n := 1; n <= tasks; n++ {
			publish(t, ctx, js, "tasks.new", fmt.Sprintf(`{"n":%d}`, n))
		}
		if _, err := first.log.waitFor(ctx, func(r record) bool { _, ev := taskEvent(r); return ev == "started" }); err != nil {
			t.Fatalf("no task started: %v", err)
		}
		first.signal(t, syscall.SIGTERM)
		if code := first.wait(t, ctx); code != 0 {
			t.Fatalf("exit code after SIGTERM = %d, want 0", code)
		}

		// A run that started before the signal finished after it: the app let
		// in-flight runs complete instead of abandoning them.
		var inFlight []string
		started := map[string]bool{}
		signalled := false
		for _, r := range first.log.records() {
			task, ev := taskEvent(r)
			switch {
			case r.msg() == "shutting down":
				signalled = true
			case ev == "started" && !signalled:
				started[task] = true
			case ev == "finished" && signalled && started[task]:
				inFlight = append(inFlight, task)
			}
		}
		if !signalled || len(inFlight) == 0 {
			t.Fatalf("no run started before SIGTERM and finished after it (shutting down logged: %v, started before: %d)", signalled, len(started))
		}
		t.Logf("finished during the shutdown: %s", strings.Join(inFlight, ", "))

		cfg.store = first.store
		second := startApp(t, file, cfg)
		js = connect(t, second)
		eventually(t, ctx, "every task processed", func() (bool, string) {
			ok, state := settled(ctx, js, "TASKS", "task-worker")
			n, err := streamMsgs(ctx, js, "DONE")
			if err != nil {
				return false, err.Error()
			}
			return ok && n >= tasks, state + "; done: " + strconv.FormatUint(n, 10)
		})
		checkDoneOnce(t, ctx, js, tasks)
	})
}

// TestShutdownTimeoutCancelsRuns stops the slow app while its runs would
// outlast --shutdown-timeout: the runs are cancelled, the app exits 0, and
// after a restart on the same store every task is reported exactly once.
func TestShutdownTimeoutCancelsRuns(t *testing.T) {
	t.Parallel()
	inEachMode(t, func(t *testing.T, m mode) {
		const tasks = 4 // the trigger's concurrency: all run at once
		ctx := guard(t, testGuard)
		file := repoPath(t, "e2e/testdata/slow/app.yaml")
		first := startApp(t, file, appConfig{
			mode:  m,
			flags: []string{"--shutdown-timeout", "1s"},
			env:   []string{"SLOW_TASK_WAIT=1m"},
		})
		js := connect(t, first)
		for n := 1; n <= tasks; n++ {
			publish(t, ctx, js, "tasks.new", fmt.Sprintf(`{"n":%d}`, n))
		}
		started := map[string]bool{}
		if _, err := first.log.waitFor(ctx, func(r record) bool {
			if task, ev := taskEvent(r); ev == "started" {
				started[task] = true
			}
			return len(started) == tasks
		}); err != nil {
			t.Fatalf("%d of %d tasks started: %v", len(started), tasks, err)
		}
		first.signal(t, syscall.SIGTERM)
		if code := first.wait(t, ctx); code != 0 {
			t.Fatalf("exit code after SIGTERM = %d, want 0", code)
		}
		cancelled := 0
		for _, r := range first.log.records() {
			switch _, ev := taskEvent(r); {
			case ev == "finished":
				t.Errorf("%s: a run outlasted the shutdown timeout", r.msg())
			case r.msg() == "pipeline failed; message will be redelivered" && strings.Contains(r.str("error"), `step "wait" failed: remote step execute: rpc error: code = Canceled desc = context canceled`):
				// The trigger reports each cancelled run once, with what
				// becomes of its message.
				cancelled++
			}
		}
		if cancelled != tasks {
			t.Errorf("%d runs cancelled by the shutdown, want %d", cancelled, tasks)
		}

		second := startApp(t, file, appConfig{mode: m, store: first.store, env: []string{"SLOW_TASK_WAIT=100ms"}})
		js = connect(t, second)
		eventually(t, ctx, "every task processed", func() (bool, string) {
			ok, state := settled(ctx, js, "TASKS", "task-worker")
			n, err := streamMsgs(ctx, js, "DONE")
			if err != nil {
				return false, err.Error()
			}
			return ok && n >= tasks, state + "; done: " + strconv.FormatUint(n, 10)
		})
		checkDoneOnce(t, ctx, js, tasks)
	})
}

// taskEvent reads a step.log record of the slow app, "task N started" or
// "task N finished": it returns "task N" and the event, or "" and "".
func taskEvent(r record) (task, event string) {
	if r.str("pipeline") != "slow-task" || !strings.HasPrefix(r.msg(), "task ") {
		return "", ""
	}
	i := strings.LastIndexByte(r.msg(), ' ')
	return r.msg()[:i], r.msg()[i+1:]
}

// checkDoneOnce asserts that DONE holds one report of each task 1..tasks
// and no other.
func checkDoneOnce(t *testing.T, ctx context.Context, js jetstream.JetStream, tasks int) {
	t.Helper()
	for n := 1; n <= tasks; n++ {
		subject := "done." + strconv.Itoa(n)
		if got := subjectCount(t, ctx, js, "DONE", subject); got != 1 {
			t.Errorf("%s holds %d messages, want 1 (task processed exactly once)", subject, got)
		}
	}
	if n, err := streamMsgs(ctx, js, "DONE"); err != nil || n != uint64(tasks) {
		t.Errorf("DONE holds %d messages (%v), want %d", n, err, tasks)
	}
}

// taskStarted reports whether r is the backlog app's record of a task
// starting.
func taskStarted(r record) bool {
	return strings.HasSuffix(r.msg(), " started") && r.str("pipeline") == "backlog-task"
}

// waitTasksStarted waits until the backlog app a has started n tasks.
func waitTasksStarted(t *testing.T, ctx context.Context, a *app, n int) {
	t.Helper()
	started := 0
	if _, err := a.log.waitFor(ctx, func(r record) bool {
		if taskStarted(r) {
			started++
		}
		return started >= n
	}); err != nil {
		t.Fatalf("%d of %d tasks started: %v", started, n, err)
	}
}

// TestCleanStopHandsBackHeldTasks stops an app with SIGINT while a backlog
// waits and runs are in flight: the app must exit 0 without logging a
// warning or an error, and the tasks it had taken but not started must be
// handed back at once: after a restart on the same store, with an ack wait
// of an hour, every task is reported exactly once.
func TestCleanStopHandsBackHeldTasks(t *testing.T) {
	t.Parallel()
	inEachMode(t, func(t *testing.T, m mode) {
		const tasks = 60
		ctx := guard(t, testGuard)
		file := repoPath(t, "e2e/testdata/backlog/app.yaml")
		first := startApp(t, file, appConfig{mode: m})
		js := connect(t, first)
		for n := 1; n <= tasks; n++ {
			publish(t, ctx, js, "tasks.new", fmt.Sprintf(`{"n":%d}`, n))
		}
		waitTasksStarted(t, ctx, first, 8)
		first.signal(t, syscall.SIGINT)
		if code := first.wait(t, ctx); code != 0 {
			t.Fatalf("exit code after SIGINT = %d, want 0", code)
		}
		for _, r := range first.log.records() {
			if lvl := r.str("level"); lvl == "WARN" || lvl == "ERROR" {
				t.Errorf("a clean stop logged at %s: %s", lvl, r.msg())
			}
		}
		// The stop came with a backlog waiting.
		ran := 0
		for _, r := range first.log.records() {
			if taskStarted(r) {
				ran++
			}
		}
		if ran >= tasks {
			t.Fatalf("all %d tasks ran before the stop; the test needs a backlog", tasks)
		}

		second := startApp(t, file, appConfig{mode: m, store: first.store, env: []string{"TASK_WAIT=10ms"}})
		js = connect(t, second)
		eventually(t, ctx, "every task processed", func() (bool, string) {
			ok, state := settled(ctx, js, "TASKS", "task-worker")
			n, err := streamMsgs(ctx, js, "DONE")
			if err != nil {
				return false, err.Error()
			}
			return ok && n >= tasks, state + "; done: " + strconv.FormatUint(n, 10)
		})
		checkDoneOnce(t, ctx, js, tasks)
	})
}

// TestStopsInABurst stops an app with SIGINT again and again while tasks
// are published to it and its trigger is busy, and starts it again on the
// same store. What a stop interrupted (tasks taken and not started, tasks
// on their way to the app) is handed back for the next start: with an ack
// wait of an hour, the last start reports every stored task exactly once.
func TestStopsInABurst(t *testing.T) {
	t.Parallel()
	inEachMode(t, func(t *testing.T, m mode) {
		const rounds = 5
		ctx := guard(t, testGuard)
		file := repoPath(t, "e2e/testdata/backlog/app.yaml")
		var (
			store string
			// stored are the tasks whose publish was confirmed; maybe are
			// those whose publish failed as the app stopped, which the
			// broker may or may not have stored.
			stored, maybe = map[int]bool{}, map[int]bool{}
			next          = 1
		)
		for round := range rounds {
			a := startApp(t, file, appConfig{mode: m, store: store, env: []string{"TASK_WAIT=20ms"}})
			store = a.store
			js := connect(t, a)
			publishing := make(chan struct{})
			go func() {
				defer close(publishing)
				for {
					task := next
					next++
					pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
					_, err := js.Publish(pctx, "tasks.new", fmt.Appendf(nil, `{"n":%d}`, task))
					cancel()
					if err != nil {
						maybe[task] = true
						return
					}
					stored[task] = true
					time.Sleep(2 * time.Millisecond)
				}
			}()
			waitTasksStarted(t, ctx, a, 20)
			a.signal(t, syscall.SIGINT)
			if code := a.wait(t, ctx); code != 0 {
				t.Fatalf("round %d: exit code after SIGINT = %d, want 0", round, code)
			}
			<-publishing
		}

		last := startApp(t, file, appConfig{mode: m, store: store, env: []string{"TASK_WAIT=1ms"}})
		js := connect(t, last)
		eventually(t, ctx, "every task processed", func() (bool, string) {
			ok, state := settled(ctx, js, "TASKS", "task-worker")
			n, err := streamMsgs(ctx, js, "DONE")
			if err != nil {
				return false, err.Error()
			}
			return ok && n >= uint64(len(stored)), fmt.Sprintf("%s; done: %d of %d stored", state, n, len(stored))
		})
		n, err := streamMsgs(ctx, js, "DONE")
		if err != nil {
			t.Fatal(err)
		}
		done := map[int]int{}
		for _, msg := range readStream(t, ctx, js, "DONE", "done.>", int(n)) {
			task, err := strconv.Atoi(strings.TrimPrefix(msg.Subject(), "done."))
			if err != nil {
				t.Fatalf("result subject %q", msg.Subject())
			}
			done[task]++
		}
		t.Logf("%d tasks stored in %d stops (%d more may have been), %d reported", len(stored), rounds, len(maybe), n)
		for task := range stored {
			if done[task] != 1 {
				t.Errorf("task %d reported %d times, want once", task, done[task])
			}
		}
		for task, c := range done {
			if !stored[task] && (!maybe[task] || c != 1) {
				t.Errorf("task %d reported %d times; it was never stored", task, c)
			}
		}
	})
}
