package e2e_test

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// TestWorkQueue runs the work-queue app on each broker, examples/work-queue
// on embedded NATS and examples/postgres on PostgreSQL: every job of the
// work-queue stream is processed once, its result lands in RESULTS, and the
// JOBS stream ends empty; a job that is no job is tried three times and
// moved to FAILED_JOBS with the error.
func TestWorkQueue(t *testing.T) {
	t.Parallel()
	inEachBackendAndMode(t, func(t *testing.T, be queueBackend, m mode) {
		const jobs = 200
		ctx := guard(t, testGuard)
		a, view := be.start(t, m, repoPath(t, be.file))

		view.publish(t, ctx, "jobs.new", "not a job")
		for n := 1; n <= jobs; n++ {
			view.publish(t, ctx, "jobs.new", fmt.Sprintf(`{"n":%d}`, n))
		}

		seen := map[string]int{}
		for _, m := range view.read(t, ctx, "RESULTS", "results.>", jobs) {
			var r map[string]any
			if err := json.Unmarshal(m.data, &r); err != nil {
				t.Fatalf("result %q is not JSON: %v", m.data, err)
			}
			n, _ := r["n"].(string)
			if m.subject != "results."+n {
				t.Errorf("result for job %q published on %s", n, m.subject)
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

		// The job that is no job is retried after 1s and 5s, then set aside.
		dead := view.read(t, ctx, "FAILED_JOBS", "failed.jobs", 1)[0]
		if string(dead.data) != "not a job" {
			t.Errorf("FAILED_JOBS holds %q, want the failed job", dead.data)
		}
		// Acked and dead-lettered jobs leave a work-queue stream.
		eventually(t, ctx, "JOBS empty", func() (bool, string) {
			n, err := view.count(ctx, "JOBS")
			if err != nil {
				return false, err.Error()
			}
			return n == 0, fmt.Sprintf("JOBS holds %d messages", n)
		})
		if n, err := view.count(ctx, "RESULTS"); err != nil || n != jobs {
			t.Errorf("RESULTS holds %d messages (%v), want %d", n, err, jobs)
		}
		if n, err := view.count(ctx, "FAILED_JOBS"); err != nil || n != 1 {
			t.Errorf("FAILED_JOBS holds %d messages (%v), want 1", n, err)
		}
		failures := len(waitRecords(t, ctx, a, 3, func(r record) bool {
			return strings.HasPrefix(r.msg(), "pipeline failed") && strings.Contains(r.str("error"), "parse")
		}))
		if failures != 3 {
			t.Errorf("%d failed runs logged, want 3 (two retries, then the dead letter)", failures)
		}
	})
}
