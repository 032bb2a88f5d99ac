package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/wfeventbus/eventbus/internal/hostgc"
	"github.com/wfeventbus/eventbus/wfplugin"
)

// hangGuard bounds a whole suite run in the tests; it only turns a hang
// into a failure and never measures speed.
const hangGuard = 2 * time.Minute

// tinyConfig runs every scenario briefly: the tests check what a run
// reports, never how fast anything was.
func tinyConfig(l Launcher) Config {
	return Config{
		Launcher:           l,
		InProcess:          Direct("0.1.0", nil),
		Duration:           100 * time.Millisecond,
		Warmup:             -1,
		BatchSize:          50,
		PublishConcurrency: 2,
		TriggerMessages:    200,
		TriggerConcurrency: []int{1, 32},
		LatencyRate:        500,
		LatencyDuration:    100 * time.Millisecond,
		LatencyConcurrency: 2,
	}
}

func TestSuiteReportsEveryScenario(t *testing.T) {
	t.Parallel()
	var progress bytes.Buffer
	cfg := tinyConfig(launcher(t, ModeOutOfProcess))
	cfg.Progress = &progress
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), hangGuard)
	defer cancel()
	rep, err := s.Run(ctx)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}

	in, out := ModeInProcess, ModeOutOfProcess
	want := []string{
		IDRawSync, IDRawSyncN, IDRawAsync, IDRawFetchAck,
		IDStep(in), IDStepN(in), IDStepBatch(in), IDTrigger(in, 1), IDTrigger(in, 32), IDLatency(in),
		IDStep(out), IDStepN(out), IDStepBatch(out),
		IDBareRPC(1), IDBareRPC(32), IDTrigger(out, 1), IDTrigger(out, 32), IDLatency(out),
		IDSyncRawSync, IDSyncStep(in), IDSyncStep(out),
	}
	var got []string
	for _, r := range rep.Results {
		got = append(got, r.ID)
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("results\n got %v\nwant %v", got, want)
	}
	for _, r := range rep.Results {
		if r.Messages <= 0 || r.Elapsed <= 0 || r.Rate <= 0 {
			t.Errorf("%s: messages %d in %s (%.0f msg/s), want some", r.ID, r.Messages, r.Elapsed, r.Rate)
		}
		if r.Ceiling != "" {
			if _, ok := rep.Result(r.Ceiling); !ok || r.Ratio <= 0 {
				t.Errorf("%s: ceiling %q ratio %v, want a measured ceiling", r.ID, r.Ceiling, r.Ratio)
			}
		}
		if runtime.GOOS == "linux" && (r.CPUPerMessage <= 0 || r.CPUPerMessage > time.Second) {
			t.Errorf("%s: %s of CPU per message, want the time host and plugin spent", r.ID, r.CPUPerMessage)
		}
		outOfProcess := strings.HasPrefix(r.ID, out+".")
		if runtime.GOOS == "linux" && outOfProcess && (r.PluginRSS <= 0 || r.PluginPeakRSS < r.PluginRSS) {
			t.Errorf("%s: plugin RSS %d, peak %d; want the plugin process's memory", r.ID, r.PluginRSS, r.PluginPeakRSS)
		}
		if !outOfProcess && r.PluginRSS != 0 {
			t.Errorf("%s: plugin RSS %d, but no plugin process took part", r.ID, r.PluginRSS)
		}
		if (r.ID == IDTrigger(in, 32) || r.ID == IDTrigger(out, 32)) && r.Messages > int64(cfg.TriggerMessages) {
			t.Errorf("%s: %d runs of %d stored messages", r.ID, r.Messages, cfg.TriggerMessages)
		}
	}
	for _, m := range []string{in, out} {
		lat, _ := rep.Result(IDLatency(m))
		if wantN := int(float64(cfg.LatencyRate) * cfg.LatencyDuration.Seconds()); lat.Latency.Count != wantN || lat.Messages != int64(wantN) {
			t.Errorf("%s: %d samples of %d messages, want %d of each", lat.ID, lat.Latency.Count, lat.Messages, wantN)
		}
		if lat.Latency.P50 <= 0 || lat.Latency.P50 > lat.Latency.P99 || lat.Latency.P99 > lat.Latency.P999 {
			t.Errorf("%s: percentiles out of order: %+v", lat.ID, lat.Latency)
		}
	}
	for id, ceiling := range map[string]string{
		IDTrigger(in, 32): IDRawFetchAck, IDTrigger(out, 32): IDBareRPC(32),
		IDStep(in): IDRawSync, IDStepBatch(out): IDRawAsync, IDSyncStep(in): IDSyncRawSync,
	} {
		if res, _ := rep.Result(id); res.Ceiling != ceiling {
			t.Errorf("%s: ceiling %q, want %q", id, res.Ceiling, ceiling)
		}
	}
	if len(rep.Targets) != 9 {
		t.Errorf("%d targets, want 9: %+v", len(rep.Targets), rep.Targets)
	}
	// One line per scenario, and the note that PostgreSQL was left out.
	if n := strings.Count(progress.String(), "\n"); n != len(want)+1 || !strings.Contains(progress.String(), pgNote) {
		t.Errorf("%d progress lines, want one per scenario (%d) and the PostgreSQL note:\n%s", n, len(want), progress.String())
	}
	if len(rep.Notes) != 1 || rep.Notes[0] != pgNote {
		t.Errorf("notes %q, want the PostgreSQL one", rep.Notes)
	}

	var table bytes.Buffer
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	head := fmt.Sprintf("GOMAXPROCS %d, host GOGC %d;", runtime.GOMAXPROCS(0), hostgc.Current())
	if first, _, _ := strings.Cut(table.String(), "\n"); !strings.Contains(first, head) {
		t.Errorf("the table's first line does not state the runtime settings %q:\n%s", head, first)
	}
	for _, id := range want {
		if !strings.Contains(table.String(), id) {
			t.Errorf("table lacks %s:\n%s", id, table.String())
		}
	}
	if !strings.Contains(table.String(), "note: "+pgNote) {
		t.Errorf("table lacks the PostgreSQL note:\n%s", table.String())
	}
	var js bytes.Buffer
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var decoded struct {
		Machine Machine `json:"machine"`
		Results []struct {
			ID        string  `json:"id"`
			MsgPerSec float64 `json:"msg_per_sec"`
			Ceiling   string  `json:"ceiling"`
			Ratio     float64 `json:"ratio"`
			CPU       float64 `json:"cpu_us_per_msg"`
		} `json:"results"`
		Targets []Target `json:"targets"`
	}
	if err := json.Unmarshal(js.Bytes(), &decoded); err != nil {
		t.Fatalf("JSON report does not decode: %v\n%s", err, js.String())
	}
	if decoded.Machine.HostGOGC != hostgc.Current() || decoded.Machine.GOMAXPROCS != runtime.GOMAXPROCS(0) {
		t.Errorf("JSON report: host_gogc %d, gomaxprocs %d; want this process's %d and %d",
			decoded.Machine.HostGOGC, decoded.Machine.GOMAXPROCS, hostgc.Current(), runtime.GOMAXPROCS(0))
	}
	if len(decoded.Results) != len(want) || decoded.Machine.CPUs < 1 || len(decoded.Targets) != len(rep.Targets) {
		t.Errorf("JSON report: %d results, %d CPUs, %d targets", len(decoded.Results), decoded.Machine.CPUs, len(decoded.Targets))
	}
	for i, r := range decoded.Results {
		if r.ID != want[i] || r.MsgPerSec != rep.Results[i].Rate || r.Ceiling != rep.Results[i].Ceiling ||
			r.CPU != float64(rep.Results[i].CPUPerMessage)/float64(time.Microsecond) {
			t.Errorf("JSON result %d = %+v, want %s as in the report", i, r, want[i])
		}
	}
}

func TestRunNamesTheScenarioThatFailed(t *testing.T) {
	t.Parallel()
	refuse := func(context.Context, ...wfplugin.LaunchOption) (*wfplugin.Client, error) {
		return nil, wfplugin.ErrLaunch
	}
	cfg := tinyConfig(refuse)
	cfg.InProcess = refuse
	cfg.SkipSyncAlways = true
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), hangGuard)
	defer cancel()
	_, err = s.Run(ctx)
	if !errors.Is(err, ErrScenario) || !errors.Is(err, wfplugin.ErrLaunch) || !strings.Contains(err.Error(), "plugin") {
		t.Fatalf("Run with a plugin that does not launch: %v, want ErrScenario naming the plugin and wrapping ErrLaunch", err)
	}
}

func TestNewRejectsInvalidConfig(t *testing.T) {
	t.Parallel()
	ok := Config{Launcher: GRPCInProcess("0.1.0"), InProcess: Direct("0.1.0", nil)}
	tests := []struct {
		name  string
		edit  func(*Config)
		field string
	}{
		{"no launcher", func(c *Config) { c.Launcher = nil }, "Launcher"},
		{"no in-process launcher", func(c *Config) { c.InProcess = nil }, "InProcess"},
		{"negative duration", func(c *Config) { c.Duration = -time.Second }, "Duration"},
		{"negative latency duration", func(c *Config) { c.LatencyDuration = -time.Second }, "LatencyDuration"},
		{"payload too small", func(c *Config) { c.PayloadSize = 10 }, "PayloadSize"},
		{"batch beyond the async limit", func(c *Config) { c.BatchSize = 5000 }, "BatchSize"},
		{"negative publish concurrency", func(c *Config) { c.PublishConcurrency = -1 }, "PublishConcurrency"},
		{"negative trigger messages", func(c *Config) { c.TriggerMessages = -5 }, "TriggerMessages"},
		{"zero trigger concurrency", func(c *Config) { c.TriggerConcurrency = []int{8, 0} }, "TriggerConcurrency"},
		{"negative latency rate", func(c *Config) { c.LatencyRate = -1 }, "LatencyRate"},
		{"postgres only without a database", func(c *Config) { c.PostgresOnly = true }, "PostgresDSN"},
		{"watermill without a database", func(c *Config) { c.Watermill = "/bin/true" }, "PostgresDSN"},
		{"postgres batch too large", func(c *Config) { c.PostgresBatchSize = 5000 }, "PostgresBatchSize"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := ok
			tt.edit(&c)
			_, err := New(c)
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tt.field) {
				t.Errorf("New: %v, want ErrConfig naming %s", err, tt.field)
			}
		})
	}
	if _, err := New(ok); err != nil {
		t.Errorf("New with only the launchers: %v", err)
	}
}

func TestPercentilesOf(t *testing.T) {
	t.Parallel()
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	seq := func(n int) []time.Duration {
		d := make([]time.Duration, n)
		for i := range d {
			d[i] = ms(n - i) // reversed: percentilesOf sorts
		}
		return d
	}
	tests := []struct {
		name string
		in   []time.Duration
		want Percentiles
	}{
		{"none", nil, Percentiles{}},
		{"one", []time.Duration{ms(7)}, Percentiles{Count: 1, P50: ms(7), P99: ms(7), P999: ms(7), Max: ms(7)}},
		{"hundred", seq(100), Percentiles{Count: 100, P50: ms(50), P99: ms(99), P999: ms(100), Max: ms(100)}},
		{"thousand", seq(1000), Percentiles{Count: 1000, P50: ms(500), P99: ms(990), P999: ms(999), Max: ms(1000)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := percentilesOf(tt.in); got != tt.want {
				t.Errorf("percentilesOf = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestPayloadCarriesItsSendTime(t *testing.T) {
	t.Parallel()
	for _, size := range []int{minPayloadSize, DefaultPayloadSize, 4096} {
		for _, ts := range []int64{0, 1, 1732700000123456789} {
			p := payload(size, ts)
			if len(p) != size {
				t.Errorf("payload(%d, %d) has %d bytes", size, ts, len(p))
			}
			var parsed any
			if err := json.Unmarshal(p, &parsed); err != nil {
				t.Fatalf("payload(%d, %d) is not JSON: %v", size, ts, err)
			}
			got, ok := sendTime(map[string]any{"json": parsed})
			if !ok || got != ts {
				t.Errorf("send time of payload(%d, %d) = %d, %v", size, ts, got, ok)
			}
		}
	}
	if _, ok := sendTime(map[string]any{"payload": "x"}); ok {
		t.Error("sendTime found a time in data without json")
	}
}
