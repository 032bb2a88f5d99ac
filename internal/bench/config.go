package bench

import (
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"

	"github.com/wfeventbus/eventbus/bus"
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
	// DefaultPostgresBatchSize is the messages per call of the batch
	// publish scenarios on PostgreSQL.
	DefaultPostgresBatchSize = 100
	// DefaultPostgresFetchMessages is the messages the fetch+ack scenarios
	// on PostgreSQL store and read.
	DefaultPostgresFetchMessages = 200000
	// DefaultPostgresFetchOps is how many fetches the fetch latency
	// scenario makes on each stream.
	DefaultPostgresFetchOps = 2000
	// DefaultPostgresLatencyRate is the publish rate of the latency
	// scenario on PostgreSQL: one caller publishing one message per
	// transaction waits for a WAL flush each time, about a millisecond on
	// a virtual disk, so its rate stays well below that.
	DefaultPostgresLatencyRate = 200
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
	// Cluster adds the scenarios on a local 3-node cluster: R1 against R3
	// streams, with the servers' default flush and with sync_always.
	Cluster bool
	// PostgresDSN is the database of the PostgreSQL scenarios, which make
	// schemas of their own there and drop them at the end; empty leaves
	// them out, with a note in the report.
	PostgresDSN string
	// PostgresOnly leaves out every NATS scenario; the PostgreSQL trigger
	// then has no JetStream figure to be compared with.
	PostgresOnly bool
	// PostgresBatchSize is the messages per call of the batch publish
	// scenarios on PostgreSQL.
	PostgresBatchSize int
	// PostgresFetchMessages is the messages each fetch+ack scenario on
	// PostgreSQL stores; it reads them for at most Duration.
	PostgresFetchMessages int
	// PostgresFetchOps is the fetches of the fetch latency scenario on
	// each backlog.
	PostgresFetchOps int
	// PostgresLatencyRate is the publish rate of the latency scenario on
	// PostgreSQL, messages per second.
	PostgresLatencyRate int
	// PostgresMillion adds a backlog of a million messages to the fetch
	// latency scenario (filling it takes a while).
	PostgresMillion bool
	// Watermill is a program that measures Watermill's SQL pub/sub on the
	// same database (internal/bench/watermill); empty leaves it out.
	Watermill string
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
		{"PostgresBatchSize", &c.PostgresBatchSize, DefaultPostgresBatchSize, 1, bus.MaxFetchBatch},
		{"PostgresFetchMessages", &c.PostgresFetchMessages, DefaultPostgresFetchMessages, pgFetchBatch, 10_000_000},
		{"PostgresFetchOps", &c.PostgresFetchOps, DefaultPostgresFetchOps, 1, 1_000_000},
		{"PostgresLatencyRate", &c.PostgresLatencyRate, DefaultPostgresLatencyRate, 1, 100_000},
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
	if c.PostgresOnly && c.PostgresDSN == "" {
		return c, fmt.Errorf("%w: PostgresOnly needs PostgresDSN", ErrConfig)
	}
	if c.Watermill != "" && c.PostgresDSN == "" {
		return c, fmt.Errorf("%w: Watermill needs PostgresDSN, the database it measures on", ErrConfig)
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}
