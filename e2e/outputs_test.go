package e2e_test

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestOutputsOnceAcrossKill kills an app with SIGKILL while it turns
// inputs into outputs, then starts it again on the same store: every input
// must have produced its three outputs exactly once, though the inputs in
// flight at the kill ran again after the restart and published again.
func TestOutputsOnceAcrossKill(t *testing.T) {
	t.Parallel()
	inEachMode(t, func(t *testing.T, m mode) {
		const inputs = 400
		ctx := guard(t, testGuard)
		file := repoPath(t, "e2e/testdata/outputs/app.yaml")
		first := startApp(t, file, appConfig{mode: m})
		js := connect(t, first)
		for i := range inputs {
			publish(t, ctx, js, "in.x", strconv.Itoa(i))
		}
		eventually(t, ctx, "a quarter of the outputs", func() (bool, string) {
			n, err := streamMsgs(ctx, js, "OUT")
			if err != nil {
				return false, err.Error()
			}
			return n >= 3*inputs/4, fmt.Sprintf("%d outputs", n)
		})
		family := append([]int{first.pid()}, descendants(t, first.pid())...)
		first.signal(t, syscall.SIGKILL)
		first.wait(t, ctx)
		// The broker's store is free once every process holding it is gone.
		eventually(t, ctx, "the app's processes to end", func() (bool, string) {
			for _, pid := range family {
				if alive(pid) {
					return false, fmt.Sprintf("process %d alive", pid)
				}
			}
			return true, ""
		})
		before := produced(first, inputs)

		second := startApp(t, file, appConfig{mode: m, store: first.store})
		js = connect(t, second)
		eventually(t, ctx, "every input processed", func() (bool, string) {
			ok, state := settled(ctx, js, "IN", "worker")
			n, err := streamMsgs(ctx, js, "OUT")
			if err != nil {
				return false, err.Error()
			}
			return ok && n >= 3*inputs, state + "; outputs: " + strconv.FormatUint(n, 10)
		})
		after := produced(second, inputs)
		rerun, duplicates := 0, 0
		for id := range after {
			if before[id] {
				rerun++
			}
		}
		for _, r := range second.log.records() {
			if strings.HasPrefix(r.msg(), "produced ") && strings.HasSuffix(r.msg(), " first-duplicate=true") {
				duplicates++
			}
		}

		first1, rest := subjectCount(t, ctx, js, "OUT", "out.first"), subjectCount(t, ctx, js, "OUT", "out.rest")
		total, err := streamMsgs(ctx, js, "OUT")
		if err != nil {
			t.Fatal(err)
		}
		distinct := map[string]bool{}
		for _, msg := range readStream(t, ctx, js, "OUT", "out.>", int(total)) {
			distinct[msg.Subject()+" "+string(msg.Data())] = true
		}
		t.Logf("inputs=%d outputs=%d (out.first %d, out.rest %d) distinct=%d; runs finished before the kill %d, after the restart %d (%d of them again); first outputs published again and stored once: %d",
			inputs, total, first1, rest, len(distinct), len(before), len(after), rerun, duplicates)
		if total != 3*inputs || first1 != inputs || rest != 2*inputs || len(distinct) != 3*inputs {
			t.Fatalf("OUT holds %d outputs (%d distinct, out.first %d, out.rest %d), want exactly %d, each once", total, len(distinct), first1, rest, 3*inputs)
		}
		if duplicates == 0 {
			t.Fatalf("no input in flight at the kill published again after the restart (%d of the inputs finished before the kill ran again); the test needs some", rerun)
		}
	})
}

// produced returns the inputs whose run a reported finished, out of n.
func produced(a *app, n int) map[string]bool {
	out := map[string]bool{}
	for _, r := range a.log.records() {
		if id, ok := strings.CutPrefix(r.msg(), "produced "); ok {
			id, _, _ = strings.Cut(id, " ")
			out[id] = true
		}
	}
	return out
}
