package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Modes of running the plugin that a Suite measures: the prefixes of their
// figures' IDs.
const (
	// ModeInProcess is the plugin inside the host's process, called
	// directly: eventbus run's default.
	ModeInProcess = "inproc"
	// ModeOutOfProcess is the plugin in a process of its own over gRPC, as
	// the workflow engine runs it: eventbus run --out-of-process.
	ModeOutOfProcess = "outproc"
)

// IDs of the figures that are not a mode's.
const (
	IDRawSync     = "publish.raw-sync"
	IDRawSyncN    = "publish.raw-sync-xN"
	IDRawAsync    = "publish.raw-async"
	IDRawFetchAck = "trigger.raw-fetch-ack"
	IDSyncRawSync = "sync_always.raw-sync"
)

// IDStep is the ID of the serial publish step of a mode.
func IDStep(mode string) string { return mode + ".publish.step" }

// IDStepN is the ID of the concurrent publish step of a mode.
func IDStepN(mode string) string { return mode + ".publish.step-xN" }

// IDStepBatch is the ID of the batch publish step of a mode.
func IDStepBatch(mode string) string { return mode + ".publish.step-batch" }

// IDBareRPC is the ID of the bare gRPC round trip at concurrency n (out of
// process only).
func IDBareRPC(n int) string { return ModeOutOfProcess + ".rpc.bare-c" + strconv.Itoa(n) }

// IDTrigger is the ID of a mode's subscribe trigger at concurrency n.
func IDTrigger(mode string, n int) string { return mode + ".trigger.step-c" + strconv.Itoa(n) }

// IDLatency is the ID of a mode's publish-to-pipeline latency.
func IDLatency(mode string) string { return mode + ".latency.publish-to-pipeline" }

// IDSyncStep is the ID of a mode's serial publish step with sync_always.
func IDSyncStep(mode string) string { return mode + ".sync_always.step" }

// Targets: each mode's figures against their ceilings, and the latency.
const (
	targetTriggerAt = 32

	targetInPublish     = 0.5
	targetInPublishN    = 0.8
	targetInBatch       = 0.7
	targetInTrigger     = 0.5 // of raw fetch+ack
	targetInTriggerRate = 50000
	targetInP50         = 300 * time.Microsecond
	targetInP99         = 2 * time.Millisecond
	targetOutTrigger    = 0.7 // of the bare round trip
	targetOutP99        = 5 * time.Millisecond
)

// How the figures' descriptions name the modes.
const (
	modeNameInProcess    = "in process"
	modeNameOutOfProcess = "over gRPC"
)

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

// pluginMode is a mode of running the plugin as the suite measures it.
type pluginMode struct {
	id     string // ModeInProcess or ModeOutOfProcess
	name   string // for the figures' descriptions
	launch Launcher
	// trigger returns the ceiling of the trigger at concurrency n.
	trigger func(n int) string
}

func (r *run) modes() []pluginMode {
	return []pluginMode{
		{id: ModeInProcess, name: modeNameInProcess, launch: r.cfg.InProcess, trigger: func(int) string { return IDRawFetchAck }},
		{id: ModeOutOfProcess, name: modeNameOutOfProcess, launch: r.cfg.Launcher, trigger: IDBareRPC},
	}
}

// Run measures every scenario in turn and returns the report. Raw figures
// run first on a broker inside this process, which is then shut down; then
// each mode's figures on a plugin of its own (in this process, then in a
// plugin process), and the sync_always figures on fresh brokers. Any
// failure ends the run with an error wrapping ErrScenario that names the
// scenario.
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
		body: payload(cfg.PayloadSize, 0),
	}
	// Raw: 4; each mode: 3 publish, the triggers, latency; out of process
	// also the bare round trips.
	var phases []func(context.Context, string) error
	if !cfg.PostgresOnly {
		r.steps = 4 + 2*(4+len(cfg.TriggerConcurrency)) + len(cfg.TriggerConcurrency)
		phases = append(phases, r.raw)
		for _, m := range r.modes() {
			phases = append(phases, func(ctx context.Context, dir string) error { return r.plugin(ctx, dir, m) })
		}
		if !cfg.SkipSyncAlways {
			r.steps += 3
			phases = append(phases, r.syncAlways)
		}
		if cfg.Cluster {
			r.steps += cfg.clusterSteps()
			phases = append(phases, r.cluster)
		}
	}
	r.steps += cfg.pgSteps() + cfg.watermillSteps()
	phases = append(phases, func(ctx context.Context, _ string) error { return r.postgres(ctx) })
	start := time.Now()
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
func (r *run) add(res Result, m measurement) {
	res.Messages, res.Elapsed, res.Latency, res.CPUPerMessage = m.Messages, m.Elapsed, m.Latency, m.cpuPerMessage()
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
	line := fmt.Sprintf("bench: [%d/%d] %-38s %12s msg/s", r.step, r.steps, res.ID, fmtRate(res.Rate))
	if res.Ceiling != "" {
		line += fmt.Sprintf("  %.2f× %s", res.Ratio, res.Ceiling)
	}
	if res.CPUPerMessage > 0 {
		line += "  " + fmtMicros(res.CPUPerMessage) + " cpu/msg"
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
	m, err := drive(ctx, 1, cfg.Warmup, cfg.Duration, rb.cpu, rb.syncPublish(r.body))
	if err != nil {
		return fail(IDRawSync, err)
	}
	r.add(Result{ID: IDRawSync, Name: "raw nats.go sync publish, 1 caller"}, m)
	m, err = drive(ctx, cfg.PublishConcurrency, cfg.Warmup, cfg.Duration, rb.cpu, rb.syncPublish(r.body))
	if err != nil {
		return fail(IDRawSyncN, err)
	}
	r.add(Result{ID: IDRawSyncN, Name: fmt.Sprintf("raw nats.go sync publish, %d callers", cfg.PublishConcurrency)}, m)
	m, err = rb.streamAsync(ctx, r.body, cfg.Warmup, cfg.Duration)
	if err != nil {
		return fail(IDRawAsync, err)
	}
	r.add(Result{ID: IDRawAsync, Name: fmt.Sprintf("raw nats.go async publish, up to %d unanswered", asyncMaxPending)}, m)
	if err := rb.fill(ctx, subjectTrigger, r.body, cfg.TriggerMessages); err != nil {
		return fail(IDRawFetchAck, err)
	}
	m, err = rb.fetchAck(ctx, subjectTrigger, cfg.TriggerMessages, cfg.Duration)
	if err != nil {
		return fail(IDRawFetchAck, err)
	}
	r.add(Result{ID: IDRawFetchAck, Name: fmt.Sprintf("raw nats.go fetch (batches of %d) and ack", fetchBatch)}, m)
	return nil
}

// plugin measures a mode's steps and trigger, and out of process the bare
// round trip.
func (r *run) plugin(ctx context.Context, dir string, pm pluginMode) error {
	cfg := r.cfg
	s, err := openSession(ctx, pm.launch, cfg.Logger, dir, false)
	if err != nil {
		return fail(pm.id+" plugin", err)
	}
	defer s.close(ctx)
	add := func(res Result, m measurement) {
		res.PluginRSS, res.PluginPeakRSS = s.memory()
		r.add(res, m)
	}
	body := string(r.body)

	h, err := s.singlePublish(ctx, "publish", subjectPublish)
	if err != nil {
		return fail(IDStep(pm.id), err)
	}
	m, err := drive(ctx, 1, cfg.Warmup, cfg.Duration, s.cpu, s.publishOne(h, subjectPublish, body))
	if err != nil {
		return fail(IDStep(pm.id), err)
	}
	add(Result{ID: IDStep(pm.id), Name: "step.eventbus.publish " + pm.name + ", 1 caller", Ceiling: IDRawSync}, m)
	m, err = drive(ctx, cfg.PublishConcurrency, cfg.Warmup, cfg.Duration, s.cpu, s.publishOne(h, subjectPublish, body))
	if err != nil {
		return fail(IDStepN(pm.id), err)
	}
	add(Result{ID: IDStepN(pm.id), Name: fmt.Sprintf("step.eventbus.publish %s, %d callers", pm.name, cfg.PublishConcurrency), Ceiling: IDRawSyncN}, m)

	bh, bcfg, err := s.batchPublish(ctx, "publish-batch", subjectBatch, cfg.BatchSize, body)
	if err != nil {
		return fail(IDStepBatch(pm.id), err)
	}
	m, err = drive(ctx, 1, cfg.Warmup, cfg.Duration, s.cpu, s.publishBatch(bh, bcfg, cfg.BatchSize, body))
	if err != nil {
		return fail(IDStepBatch(pm.id), err)
	}
	add(Result{ID: IDStepBatch(pm.id), Name: fmt.Sprintf("step.eventbus.publish batch of %d %s, 1 caller", cfg.BatchSize, pm.name), Ceiling: IDRawAsync}, m)

	if pm.id == ModeOutOfProcess {
		for _, n := range cfg.TriggerConcurrency {
			m, err := drive(ctx, n, cfg.Warmup, cfg.Duration, s.cpu, s.bareRPC())
			if err != nil {
				return fail(IDBareRPC(n), err)
			}
			add(Result{ID: IDBareRPC(n), Name: fmt.Sprintf("bare gRPC round trip (InitModule, a no-op), %d callers", n)}, m)
		}
	}

	if err := s.fill(ctx, subjectTrigger, cfg.TriggerMessages, r.body); err != nil {
		return fail(pm.id+" trigger fill", err)
	}
	for _, n := range cfg.TriggerConcurrency {
		m, err := s.triggerRun(ctx, subjectTrigger, n, cfg.TriggerMessages, cfg.Duration)
		if err != nil {
			return fail(IDTrigger(pm.id, n), err)
		}
		add(Result{ID: IDTrigger(pm.id, n), Name: fmt.Sprintf("trigger.eventbus.subscribe %s to a host no-op pipeline, concurrency %d", pm.name, n), Ceiling: pm.trigger(n)}, m)
	}

	m, err = s.latencyRun(ctx, cfg.LatencyRate, cfg.LatencyDuration, cfg.LatencyConcurrency, cfg.PayloadSize)
	if err != nil {
		return fail(IDLatency(pm.id), err)
	}
	add(Result{ID: IDLatency(pm.id), Name: fmt.Sprintf("publish step to pipeline start %s at %d msg/s, trigger concurrency %d", pm.name, cfg.LatencyRate, cfg.LatencyConcurrency)}, m)
	return nil
}

// syncAlways measures synchronous publishing with fsync on every write,
// raw and through the plugin in each mode.
func (r *run) syncAlways(ctx context.Context, dir string) error {
	cfg := r.cfg
	rb, err := startRawBroker(ctx, filepath.Join(dir, "raw"), true)
	if err != nil {
		return fail("raw broker, sync_always", err)
	}
	m, err := drive(ctx, 1, cfg.Warmup, cfg.Duration, rb.cpu, rb.syncPublish(r.body))
	rb.close(ctx)
	if err != nil {
		return fail(IDSyncRawSync, err)
	}
	r.add(Result{ID: IDSyncRawSync, Name: "raw nats.go sync publish, 1 caller, sync_always", Ceiling: IDRawSync}, m)

	for _, pm := range r.modes() {
		if err := r.syncStep(ctx, filepath.Join(dir, pm.id), pm); err != nil {
			return err
		}
	}
	return nil
}

func (r *run) syncStep(ctx context.Context, dir string, pm pluginMode) error {
	cfg := r.cfg
	s, err := openSession(ctx, pm.launch, cfg.Logger, dir, true)
	if err != nil {
		return fail(pm.id+" plugin, sync_always", err)
	}
	defer s.close(ctx)
	h, err := s.singlePublish(ctx, "publish", subjectPublish)
	if err != nil {
		return fail(IDSyncStep(pm.id), err)
	}
	m, err := drive(ctx, 1, cfg.Warmup, cfg.Duration, s.cpu, s.publishOne(h, subjectPublish, string(r.body)))
	if err != nil {
		return fail(IDSyncStep(pm.id), err)
	}
	res := Result{ID: IDSyncStep(pm.id), Name: "step.eventbus.publish " + pm.name + ", 1 caller, sync_always", Ceiling: IDSyncRawSync}
	res.PluginRSS, res.PluginPeakRSS = s.memory()
	r.add(res, m)
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
	rate := func(name, id string, want float64) {
		if res, ok := rep.Result(id); ok {
			out = append(out, Target{Name: name, Result: id, Want: "≥ " + fmtRate(want) + " msg/s",
				Got: fmtRate(res.Rate) + " msg/s", Value: res.Rate, Met: res.Rate >= want})
		}
	}
	latency := func(name, id string, p50, p99 time.Duration) {
		res, ok := rep.Result(id)
		if !ok {
			return
		}
		if p50 > 0 {
			out = append(out, Target{Name: name + ", p50", Result: id, Want: "≤ " + fmtDuration(p50),
				Got: fmtDuration(res.Latency.P50), Value: res.Latency.P50.Seconds(), Met: res.Latency.P50 <= p50})
		}
		out = append(out, Target{Name: name + ", p99", Result: id, Want: "≤ " + fmtDuration(p99),
			Got: fmtDuration(res.Latency.P99), Value: res.Latency.P99.Seconds(), Met: res.Latency.P99 <= p99})
	}
	in, outp := ModeInProcess, ModeOutOfProcess
	ratio("in process: publish step, 1 caller", IDStep(in), targetInPublish)
	ratio("in process: publish step, N callers", IDStepN(in), targetInPublishN)
	ratio("in process: batch publish step", IDStepBatch(in), targetInBatch)
	ratio("in process: trigger, concurrency 32", IDTrigger(in, targetTriggerAt), targetInTrigger)
	rate("in process: trigger, concurrency 32", IDTrigger(in, targetTriggerAt), targetInTriggerRate)
	latency("in process: publish to pipeline start", IDLatency(in), targetInP50, targetInP99)
	ratio("over gRPC: trigger, concurrency 32", IDTrigger(outp, targetTriggerAt), targetOutTrigger)
	latency("over gRPC: publish to pipeline start", IDLatency(outp), 0, targetOutP99)

	ratio("postgres: publish step, 1 caller", IDPgStep, targetPgPublish)
	ratio("postgres: batch publish step", IDPgStepBatch, targetPgBatch)
	rate("postgres: fetch+ack, batches of 100", IDPgFetchAck, targetPgFetchAckRate)
	ratio("postgres: fetch+ack, batches of 100", IDPgFetchAck, targetPgFetchAck)
	ratio("postgres: trigger, concurrency 32", IDPgTrigger(targetTriggerAt), targetPgTrigger)
	if res, ok := rep.Result(IDPgLatency); ok {
		out = append(out, Target{Name: "postgres: publish to pipeline start (NOTIFY), p50", Result: IDPgLatency, Want: "≤ " + fmtDuration(targetPgP50),
			Got: fmtDuration(res.Latency.P50), Value: res.Latency.P50.Seconds(), Met: res.Latency.P50 <= targetPgP50})
	}
	// The fetch latency is flat when the largest backlog's fetches run at
	// least half as fast as those with none.
	var largest string
	for _, res := range rep.Results {
		if strings.HasPrefix(res.ID, pgFetchLatencyPrefix) && res.Ceiling != "" {
			largest = res.ID
		}
	}
	if largest != "" {
		ratio("postgres: fetch latency, largest backlog against none", largest, targetPgFlat)
	}
	return out
}
