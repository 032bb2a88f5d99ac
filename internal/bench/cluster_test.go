package bench

import (
	"context"
	"io"
	"testing"
)

// TestClusterScenarios runs the cluster phase briefly and checks that it
// reports each of its figures, with messages counted and each R3 and
// sync_always figure set against its ceiling, never how fast they were.
func TestClusterScenarios(t *testing.T) {
	t.Parallel()
	cfg := tinyConfig(launcher(t, ModeOutOfProcess))
	cfg.Cluster = true
	cfg, err := cfg.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	cfg.Progress = io.Discard
	r := &run{cfg: cfg, report: &Report{}, body: payload(cfg.PayloadSize, 0)}
	ctx, cancel := context.WithTimeout(t.Context(), hangGuard)
	defer cancel()
	if err := r.cluster(ctx, t.TempDir()); err != nil {
		t.Fatalf("cluster phase: %v", err)
	}
	if got := len(r.report.Results); got != cfg.clusterSteps() {
		t.Errorf("%d results, want %d", got, cfg.clusterSteps())
	}
	for _, flush := range []string{"", "sync_always"} {
		for _, replicas := range []int{1, 3} {
			for _, callers := range []string{"", "xN"} {
				id := IDCluster(flush, replicas, callers)
				res, ok := r.report.Result(id)
				if !ok {
					t.Errorf("no result %s", id)
					continue
				}
				if res.Messages == 0 || res.Rate <= 0 {
					t.Errorf("%s: %d messages at %.0f msg/s, want some", id, res.Messages, res.Rate)
				}
				var want string
				switch {
				case replicas > 1:
					want = IDCluster(flush, 1, callers)
				case flush != "":
					want = IDCluster("", replicas, callers)
				}
				if res.Ceiling != want || (want != "" && res.Ratio <= 0) {
					t.Errorf("%s: ceiling %q ratio %.2f, want ceiling %q with a ratio", id, res.Ceiling, res.Ratio, want)
				}
			}
		}
	}
}
