package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// Scenario IDs of a Report.
const (
	IDRawSync        = "publish.raw-sync"
	IDRawSyncN       = "publish.raw-sync-xN"
	IDStep           = "publish.step"
	IDStepN          = "publish.step-xN"
	IDRawAsync       = "publish.raw-async"
	IDStepBatch      = "publish.step-batch"
	IDRawFetchAck    = "trigger.raw-fetch-ack"
	IDLatency        = "latency.publish-to-pipeline"
	IDSyncRawSync    = "sync_always.raw-sync"
	IDSyncStep       = "sync_always.step"
	bareRPCPrefix    = "rpc.bare-c"
	triggerPrefix    = "trigger.step-c"
	targetPublish    = 0.5
	targetPublishN   = 0.8
	targetBatch      = 0.7
	targetTrigger    = 0.8
	targetTriggerMin = 20000
	targetTriggerAt  = 32
	targetP50        = time.Millisecond
	targetP99        = 5 * time.Millisecond
)

// IDBareRPC is the ID of the bare round trip at concurrency n.
func IDBareRPC(n int) string { return bareRPCPrefix + strconv.Itoa(n) }

// IDTrigger is the ID of the subscribe trigger at concurrency n.
func IDTrigger(n int) string { return triggerPrefix + strconv.Itoa(n) }

// Suite runs every scenario of a Config.
type Suite struct {
	cfg Config
}

// New validates cfg; the error wraps ErrConfig and names the field.
func New(cfg Config) (*Suite, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Suite{cfg: c}, nil
}

// run is one Suite.Run in progress.
type run struct {
	cfg    Config
	report *Report
	body   []byte
	step   int
	steps  int
}

// Run measures every scenario in turn and returns the report. Raw
// figures run first on a broker inside this process, which is then shut
// down; plugin figures follow on one plugin process, and the sync_always
// figures on a fresh broker and plugin process of their own. Any failure
// ends the run with an error wrapping ErrScenario that names the scenario.
func (s *Suite) Run(ctx context.Context) (*Report, error) {
	cfg := s.cfg
	dir := cfg.Dir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "eventbus-bench-")
		if err != nil {
			return nil, fmt.Errorf("%w: store directory: %w", ErrScenario, err)
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	r := &run{
		cfg: cfg,
		report: &Report{
			Started: time.Now().UTC(),
			Machine: thisMachine(),
			Settings: Settings{
				Duration: cfg.Duration, Warmup: cfg.Warmup, PayloadSize: cfg.PayloadSize, BatchSize: cfg.BatchSize,
				PublishConcurrency: cfg.PublishConcurrency, TriggerMessages: cfg.TriggerMessages,
				TriggerConcurrency: cfg.TriggerConcurrency, LatencyRate: cfg.LatencyRate,
				LatencyDuration: cfg.LatencyDuration, LatencyConcurrency: cfg.LatencyConcurrency,
			},
		},
		body:  payload(cfg.PayloadSize, 0),
		steps: 8 + 2*len(cfg.TriggerConcurrency),
	}
	if !cfg.SkipSyncAlways {
		r.steps += 2
	}
	start := time.Now()
	phases := []func(context.Context, string) error{r.raw, r.plugin}
	if !cfg.SkipSyncAlways {
		phases = append(phases, r.syncAlways)
	}
	for i, phase := range phases {
		sub := filepath.Join(dir, "phase-"+strconv.Itoa(i))
		if err := phase(ctx, sub); err != nil {
			return nil, err
		}
	}
	r.report.Elapsed = time.Since(start)
	r.report.Machine.LoadAverageEnd = loadAverage()
	r.report.Targets = targets(r.report)
	return r.report, nil
}

// add records a result, compares it with its ceiling and reports
// progress.
func (r *run) add(res Result) {
	if res.Elapsed > 0 {
		res.Rate = float64(res.Messages) / res.Elapsed.Seconds()
	}
	if res.Ceiling != "" {
		if c, ok := r.report.Result(res.Ceiling); ok && c.Rate > 0 {
			res.Ratio = res.Rate / c.Rate
		}
	}
	r.report.Results = append(r.report.Results, res)
	r.step++
	line := fmt.Sprintf("bench: [%d/%d] %-28s %12s msg/s", r.step, r.steps, res.ID, fmtRate(res.Rate))
	if res.Ceiling != "" {
		line += fmt.Sprintf("  %.2f× %s", res.Ratio, res.Ceiling)
	}
	if res.Latency.Count > 0 {
		line += fmt.Sprintf("  p50 %s p99 %s", fmtDuration(res.Latency.P50), fmtDuration(res.Latency.P99))
	}
	fmt.Fprintln(r.cfg.Progress, line)
}

// fail wraps a scenario's error.
func fail(id string, err error) error {
	return fmt.Errorf("%w: %s: %w", ErrScenario, id, err)
}

// raw measures nats.go against an embedded broker in this process.
func (r *run) raw(ctx context.Context, dir string) error {
	rb, err := startRawBroker(ctx, dir, false)
	if err != nil {
		return fail("raw broker", err)
	}
	defer rb.close(ctx)
	cfg := r.cfg
	m, err := drive(ctx, 1, cfg.Warmup, cfg.Duration, rb.syncPublish(r.body))
	if err != nil {
		return fail(IDRawSync, err)
	}
	r.add(Result{ID: IDRawSync, Name: "raw nats.go sync publish, 1 caller", Messages: m.Messages, Elapsed: m.Elapsed, Latency: m.Latency})
	m, err = drive(ctx, cfg.PublishConcurrency, cfg.Warmup, cfg.Duration, rb.syncPublish(r.body))
	if err != nil {
		return fail(IDRawSyncN, err)
	}
	r.add(Result{ID: IDRawSyncN, Name: fmt.Sprintf("raw nats.go sync publish, %d callers", cfg.PublishConcurrency), Messages: m.Messages, Elapsed: m.Elapsed, Latency: m.Latency})
	m, err = rb.streamAsync(ctx, r.body, cfg.Warmup, cfg.Duration)
	if err != nil {
		return fail(IDRawAsync, err)
	}
	r.add(Result{ID: IDRawAsync, Name: fmt.Sprintf("raw nats.go async publish, up to %d unanswered", asyncMaxPending), Messages: m.Messages, Elapsed: m.Elapsed})
	if err := rb.fill(ctx, subjectTrigger, r.body, cfg.TriggerMessages); err != nil {
		return fail(IDRawFetchAck, err)
	}
	m, err = rb.fetchAck(ctx, subjectTrigger, cfg.TriggerMessages, cfg.Duration)
	if err != nil {
		return fail(IDRawFetchAck, err)
	}
	r.add(Result{ID: IDRawFetchAck, Name: fmt.Sprintf("raw nats.go fetch (batches of %d) and ack", fetchBatch), Messages: m.Messages, Elapsed: m.Elapsed})
	return nil
}

// plugin measures the plugin's steps and trigger and the bare round trip.
func (r *run) plugin(ctx context.Context, dir string) error {
	cfg := r.cfg
	s, err := openSession(ctx, cfg.Launcher, cfg.Logger, dir, false)
	if err != nil {
		return fail("plugin", err)
	}
	defer s.close(ctx)
	withRSS := func(res Result) Result {
		res.PluginRSS, res.PluginPeakRSS = s.memory()
		return res
	}
	body := string(r.body)

	h, err := s.singlePublish(ctx, "publish", subjectPublish)
	if err != nil {
		return fail(IDStep, err)
	}
	m, err := drive(ctx, 1, cfg.Warmup, cfg.Duration, s.publishOne(h, subjectPublish, body))
	if err != nil {
		return fail(IDStep, err)
	}
	r.add(withRSS(Result{ID: IDStep, Name: "step.eventbus.publish over gRPC, 1 caller", Messages: m.Messages, Elapsed: m.Elapsed, Latency: m.Latency, Ceiling: IDRawSync}))
	m, err = drive(ctx, cfg.PublishConcurrency, cfg.Warmup, cfg.Duration, s.publishOne(h, subjectPublish, body))
	if err != nil {
		return fail(IDStepN, err)
	}
	r.add(withRSS(Result{ID: IDStepN, Name: fmt.Sprintf("step.eventbus.publish over gRPC, %d callers", cfg.PublishConcurrency), Messages: m.Messages, Elapsed: m.Elapsed, Latency: m.Latency, Ceiling: IDRawSyncN}))

	bh, bcfg, err := s.batchPublish(ctx, "publish-batch", subjectBatch, cfg.BatchSize, body)
	if err != nil {
		return fail(IDStepBatch, err)
	}
	m, err = drive(ctx, 1, cfg.Warmup, cfg.Duration, s.publishBatch(bh, bcfg, cfg.BatchSize, body))
	if err != nil {
		return fail(IDStepBatch, err)
	}
	r.add(withRSS(Result{ID: IDStepBatch, Name: fmt.Sprintf("step.eventbus.publish batch of %d over gRPC, 1 caller", cfg.BatchSize), Messages: m.Messages, Elapsed: m.Elapsed, Latency: m.Latency, Ceiling: IDRawAsync}))

	for _, n := range cfg.TriggerConcurrency {
		m, err := drive(ctx, n, cfg.Warmup, cfg.Duration, s.bareRPC())
		if err != nil {
			return fail(IDBareRPC(n), err)
		}
		r.add(withRSS(Result{ID: IDBareRPC(n), Name: fmt.Sprintf("bare gRPC round trip (InitModule, a no-op), %d callers", n), Messages: m.Messages, Elapsed: m.Elapsed, Latency: m.Latency}))
	}

	if err := s.fill(ctx, subjectTrigger, cfg.TriggerMessages, r.body); err != nil {
		return fail("trigger fill", err)
	}
	for _, n := range cfg.TriggerConcurrency {
		m, err := s.triggerRun(ctx, subjectTrigger, n, cfg.TriggerMessages, cfg.Duration)
		if err != nil {
			return fail(IDTrigger(n), err)
		}
		r.add(withRSS(Result{ID: IDTrigger(n), Name: fmt.Sprintf("trigger.eventbus.subscribe to a host no-op pipeline, concurrency %d", n), Messages: m.Messages, Elapsed: m.Elapsed, Ceiling: IDBareRPC(n)}))
	}

	m, err = s.latencyRun(ctx, cfg.LatencyRate, cfg.LatencyDuration, cfg.LatencyConcurrency, cfg.PayloadSize)
	if err != nil {
		return fail(IDLatency, err)
	}
	r.add(withRSS(Result{ID: IDLatency, Name: fmt.Sprintf("publish step to pipeline start at %d msg/s, trigger concurrency %d", cfg.LatencyRate, cfg.LatencyConcurrency), Messages: m.Messages, Elapsed: m.Elapsed, Latency: m.Latency}))
	return nil
}

// syncAlways measures synchronous publishing with fsync on every write,
// raw and through the plugin.
func (r *run) syncAlways(ctx context.Context, dir string) error {
	cfg := r.cfg
	rb, err := startRawBroker(ctx, filepath.Join(dir, "raw"), true)
	if err != nil {
		return fail("raw broker, sync_always", err)
	}
	m, err := drive(ctx, 1, cfg.Warmup, cfg.Duration, rb.syncPublish(r.body))
	rb.close(ctx)
	if err != nil {
		return fail(IDSyncRawSync, err)
	}
	r.add(Result{ID: IDSyncRawSync, Name: "raw nats.go sync publish, 1 caller, sync_always", Messages: m.Messages, Elapsed: m.Elapsed, Latency: m.Latency, Ceiling: IDRawSync})

	s, err := openSession(ctx, cfg.Launcher, cfg.Logger, filepath.Join(dir, "plugin"), true)
	if err != nil {
		return fail("plugin, sync_always", err)
	}
	defer s.close(ctx)
	h, err := s.singlePublish(ctx, "publish", subjectPublish)
	if err != nil {
		return fail(IDSyncStep, err)
	}
	m, err = drive(ctx, 1, cfg.Warmup, cfg.Duration, s.publishOne(h, subjectPublish, string(r.body)))
	if err != nil {
		return fail(IDSyncStep, err)
	}
	res := Result{ID: IDSyncStep, Name: "step.eventbus.publish over gRPC, 1 caller, sync_always", Messages: m.Messages, Elapsed: m.Elapsed, Latency: m.Latency, Ceiling: IDSyncRawSync}
	res.PluginRSS, res.PluginPeakRSS = s.memory()
	r.add(res)
	return nil
}

// targets holds the report's figures to their goals.
func targets(rep *Report) []Target {
	var out []Target
	ratio := func(name, id string, want float64) {
		res, ok := rep.Result(id)
		if !ok || res.Ceiling == "" {
			return
		}
		out = append(out, Target{Name: name, Result: id, Want: fmt.Sprintf("≥ %.2f× %s", want, res.Ceiling),
			Got: fmt.Sprintf("%.2f×", res.Ratio), Value: res.Ratio, Met: res.Ratio >= want})
	}
	ratio("publish step, 1 caller", IDStep, targetPublish)
	ratio("publish step, N callers", IDStepN, targetPublishN)
	ratio("batch publish step", IDStepBatch, targetBatch)
	trig := IDTrigger(targetTriggerAt)
	ratio("trigger, concurrency 32", trig, targetTrigger)
	if res, ok := rep.Result(trig); ok {
		out = append(out, Target{Name: "trigger, concurrency 32", Result: trig, Want: "≥ " + fmtRate(targetTriggerMin) + " msg/s",
			Got: fmtRate(res.Rate) + " msg/s", Value: res.Rate, Met: res.Rate >= targetTriggerMin})
	}
	if res, ok := rep.Result(IDLatency); ok {
		out = append(out,
			Target{Name: "publish to pipeline start, p50", Result: IDLatency, Want: "≤ " + fmtDuration(targetP50),
				Got: fmtDuration(res.Latency.P50), Value: res.Latency.P50.Seconds(), Met: res.Latency.P50 <= targetP50},
			Target{Name: "publish to pipeline start, p99", Result: IDLatency, Want: "≤ " + fmtDuration(targetP99),
				Got: fmtDuration(res.Latency.P99), Value: res.Latency.P99.Seconds(), Met: res.Latency.P99 <= targetP99})
	}
	return out
}
