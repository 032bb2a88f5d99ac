package bench

import (
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"
)

// Defaults of Config, chosen so that a whole run takes well under three
// minutes on a two-core machine.
const (
	DefaultDuration           = 4 * time.Second
	DefaultWarmup             = 300 * time.Millisecond
	DefaultPayloadSize        = 128
	DefaultBatchSize          = 1000
	DefaultPublishConcurrency = 8
	DefaultTriggerMessages    = 60000
	DefaultLatencyRate        = 1000
	DefaultLatencyDuration    = 10 * time.Second
	DefaultLatencyConcurrency = 8
)

// DefaultTriggerConcurrency is the trigger concurrencies measured when
// Config.TriggerConcurrency is empty.
func DefaultTriggerConcurrency() []int { return []int{1, 8, 32} }

// minPayloadSize is the smallest payload that still holds the JSON object
// every scenario publishes (a send time and padding).
const minPayloadSize = 64

// Config shapes a Suite. Zero fields take the defaults above.
type Config struct {
	// Launcher starts the plugin out of process, as the workflow engine
	// does; required (see Executable).
	Launcher Launcher
	// InProcess starts the plugin inside this process, called directly, as
	// eventbus run does by default; required (see Direct).
	InProcess Launcher
	// Dir holds the brokers' file stores; empty means a temporary
	// directory removed at the end.
	Dir string
	// Duration is how long each throughput scenario measures, after
	// Warmup. Trigger scenarios stop at Duration or TriggerMessages,
	// whichever comes first.
	Duration time.Duration
	// Warmup runs each throughput scenario unmeasured first; negative
	// means none.
	Warmup time.Duration
	// PayloadSize is the size of every message body in bytes.
	PayloadSize int
	// BatchSize is the messages per call of the batch publish step (at most
	// the plugin's limit of unanswered messages, 4000).
	BatchSize int
	// PublishConcurrency is the concurrent callers of the concurrent
	// publish scenarios.
	PublishConcurrency int
	// TriggerMessages is the messages stored for the trigger scenarios;
	// each trigger reads them through its own durable consumer.
	TriggerMessages int
	// TriggerConcurrency lists the trigger concurrencies to measure.
	TriggerConcurrency []int
	// LatencyRate is the fixed publish rate, in messages per second, of the
	// publish-to-pipeline latency scenario, which runs for
	// LatencyDuration with a trigger of LatencyConcurrency.
	LatencyRate        int
	LatencyDuration    time.Duration
	LatencyConcurrency int
	// SkipSyncAlways leaves out the scenarios that measure sync_always.
	SkipSyncAlways bool
	// Progress receives one line per scenario as it finishes; nil
	// discards them.
	Progress io.Writer
	// Logger receives the plugin's stderr lines; nil discards them.
	Logger *slog.Logger
}

// withDefaults validates c and fills in its zero fields. The error wraps
// ErrConfig and names the field.
func (c Config) withDefaults() (Config, error) {
	if c.Launcher == nil {
		return c, fmt.Errorf("%w: Launcher is required", ErrConfig)
	}
	if c.InProcess == nil {
		return c, fmt.Errorf("%w: InProcess is required", ErrConfig)
	}
	durations := []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"Duration", &c.Duration, DefaultDuration},
		{"LatencyDuration", &c.LatencyDuration, DefaultLatencyDuration},
	}
	for _, d := range durations {
		switch {
		case *d.v < 0:
			return c, fmt.Errorf("%w: %s must be positive, got %s", ErrConfig, d.name, *d.v)
		case *d.v == 0:
			*d.v = d.def
		}
	}
	switch {
	case c.Warmup < 0:
		c.Warmup = 0
	case c.Warmup == 0:
		c.Warmup = DefaultWarmup
	}
	ints := []struct {
		name     string
		v        *int
		def, min int
		max      int
	}{
		{"PayloadSize", &c.PayloadSize, DefaultPayloadSize, minPayloadSize, 1 << 20},
		{"BatchSize", &c.BatchSize, DefaultBatchSize, 1, 4000},
		{"PublishConcurrency", &c.PublishConcurrency, DefaultPublishConcurrency, 1, 1024},
		{"TriggerMessages", &c.TriggerMessages, DefaultTriggerMessages, 1, 10_000_000},
		{"LatencyRate", &c.LatencyRate, DefaultLatencyRate, 1, 100_000},
		{"LatencyConcurrency", &c.LatencyConcurrency, DefaultLatencyConcurrency, 1, 1024},
	}
	for _, f := range ints {
		if *f.v == 0 {
			*f.v = f.def
		}
		if *f.v < f.min || *f.v > f.max {
			return c, fmt.Errorf("%w: %s must be between %d and %d, got %d", ErrConfig, f.name, f.min, f.max, *f.v)
		}
	}
	if len(c.TriggerConcurrency) == 0 {
		c.TriggerConcurrency = DefaultTriggerConcurrency()
	}
	c.TriggerConcurrency = slices.Clone(c.TriggerConcurrency)
	for _, n := range c.TriggerConcurrency {
		if n < 1 || n > 1024 {
			return c, fmt.Errorf("%w: TriggerConcurrency must list values between 1 and 1024, got %d", ErrConfig, n)
		}
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}
