package e2e_test

import (
	"encoding/json"
	"fmt"
	"strconv"
	"testing"
)

// TestWorkQueue runs examples/work-queue: every job of the work-queue
// stream is processed once, its result lands in RESULTS, and the JOBS
// stream ends empty.
func TestWorkQueue(t *testing.T) {
	t.Parallel()
	inEachMode(t, func(t *testing.T, m mode) {
		const jobs = 200
		ctx := guard(t, testGuard)
		a := startApp(t, repoPath(t, "examples/work-queue/app.yaml"), appConfig{mode: m})
		js := connect(t, a)

		for n := 1; n <= jobs; n++ {
			publish(t, ctx, js, "jobs.new", fmt.Sprintf(`{"n":%d}`, n))
		}

		seen := map[string]int{}
		for _, m := range readStream(t, ctx, js, "RESULTS", "results.>", jobs) {
			var r map[string]any
			if err := json.Unmarshal(m.Data(), &r); err != nil {
				t.Fatalf("result %q is not JSON: %v", m.Data(), err)
			}
			n, _ := r["n"].(string)
			if m.Subject() != "results."+n {
				t.Errorf("result for job %q published on %s", n, m.Subject())
			}
			if r["attempt"] != "1" {
				t.Errorf("job %s: attempt %v, want 1", n, r["attempt"])
			}
			seen[n]++
		}
		for n := 1; n <= jobs; n++ {
			if c := seen[strconv.Itoa(n)]; c != 1 {
				t.Errorf("job %d has %d results, want 1", n, c)
			}
		}

		// Acked jobs leave a work-queue stream.
		eventually(t, ctx, "JOBS empty", func() (bool, string) {
			n, err := streamMsgs(ctx, js, "JOBS")
			if err != nil {
				return false, err.Error()
			}
			return n == 0, fmt.Sprintf("JOBS holds %d messages", n)
		})
		if n, err := streamMsgs(ctx, js, "RESULTS"); err != nil || n != jobs {
			t.Errorf("RESULTS holds %d messages (%v), want %d", n, err, jobs)
		}
		if n, err := streamMsgs(ctx, js, "FAILED_JOBS"); err != nil || n != 0 {
			t.Errorf("FAILED_JOBS holds %d messages (%v), want 0", n, err)
		}
	})
}
