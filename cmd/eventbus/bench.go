package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/wfeventbus/eventbus/internal/bench"
	"github.com/wfeventbus/eventbus/internal/hostgc"
)

// benchOptions are the flags of the bench command.
type benchOptions struct {
	plugin string
	json   bool
	cfg    bench.Config
}

// newBenchCmd builds `eventbus bench`.
func newBenchCmd(d deps, g *globals) *cobra.Command {
	o := &benchOptions{}
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure the plugin, in process and over gRPC, against raw NATS",
		Long: "bench measures, in one run, raw nats.go (sync and async publish, fetch and\n" +
			"ack) and the plugin in both of eventbus run's modes: inside this process,\n" +
			"called directly (inproc.*), and as a plugin process over gRPC, as the workflow\n" +
			"engine runs it (outproc.*). For each mode: step.eventbus.publish (serial,\n" +
			"concurrent and batched), trigger.eventbus.subscribe into a host no-op\n" +
			"pipeline, publish-to-pipeline latency at a fixed rate, and the cost of\n" +
			"sync_always; over gRPC also a bare round trip, the ceiling of its trigger\n" +
			"(in process the trigger's ceiling is raw fetch and ack). Every broker is\n" +
			"embedded with file storage in a temporary directory. Each figure is printed\n" +
			"next to its ceiling with the CPU time host and plugin spent per message and\n" +
			"the plugin process's resident memory, followed by the targets and whether\n" +
			"they were met. Progress goes to stderr; the default settings take about two\n" +
			"and a half minutes on two cores. The bench process is the host and paces its\n" +
			"garbage collector as eventbus run does (GOGC=400 unless GOGC is set).\n\n" +
			"With a PostgreSQL database (--postgres DSN, or DATABASE_URL) it then measures\n" +
			"the postgres backend next to raw pgx on that database: the publish steps\n" +
			"against a raw INSERT per transaction and a raw multi-row INSERT, fetch and ack\n" +
			"in batches of 100 against a raw SELECT ... FOR UPDATE SKIP LOCKED and settle,\n" +
			"the trigger against its JetStream figure, publish-to-pipeline latency with\n" +
			"NOTIFY, and the latency of a fetch as the backlog behind it grows. Without a\n" +
			"database that section is left out, and the report says so. --watermill runs\n" +
			"a program built from internal/bench/watermill on the same database and\n" +
			"reports Watermill's SQL pub/sub beside the same ceilings.",
		Example: "  eventbus bench\n" +
			"  eventbus bench --json > bench.json\n" +
			"  eventbus bench --duration 1s --trigger-messages 20000 --latency-duration 3s\n" +
			"  eventbus bench --postgres postgres:///bench --watermill /tmp/watermill-bench",
		Args: withUsageErrors(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			hostgc.Set(d.lookupEnv)
			return runBench(cmd.Context(), d, g.logger, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.plugin, "plugin", "", "plugin binary to measure out of process (default: this eventbus binary in plugin mode)")
	f.BoolVar(&o.json, "json", false, "print the report as JSON instead of tables")
	f.StringVar(&o.cfg.Dir, "dir", "", "directory for the brokers' file stores (default: a temporary directory, removed)")
	f.DurationVar(&o.cfg.Duration, "duration", bench.DefaultDuration, "measured time of each throughput scenario (and the cap of each trigger run)")
	f.DurationVar(&o.cfg.Warmup, "warmup", bench.DefaultWarmup, "unmeasured run before each throughput scenario (negative: none)")
	f.IntVar(&o.cfg.PayloadSize, "payload-size", bench.DefaultPayloadSize, "message body size in bytes")
	f.IntVar(&o.cfg.BatchSize, "batch-size", bench.DefaultBatchSize, "messages per call of the batch publish step")
	f.IntVar(&o.cfg.PublishConcurrency, "publish-concurrency", bench.DefaultPublishConcurrency, "callers of the concurrent publish scenarios")
	f.IntVar(&o.cfg.TriggerMessages, "trigger-messages", bench.DefaultTriggerMessages, "messages each trigger run reads (it stops earlier at --duration)")
	f.IntSliceVar(&o.cfg.TriggerConcurrency, "trigger-concurrency", bench.DefaultTriggerConcurrency(), "trigger concurrencies to measure")
	f.IntVar(&o.cfg.LatencyRate, "latency-rate", bench.DefaultLatencyRate, "publish rate of the latency scenario, messages per second")
	f.DurationVar(&o.cfg.LatencyDuration, "latency-duration", bench.DefaultLatencyDuration, "length of the latency scenario")
	f.IntVar(&o.cfg.LatencyConcurrency, "latency-concurrency", bench.DefaultLatencyConcurrency, "trigger concurrency of the latency scenario")
	f.BoolVar(&o.cfg.SkipSyncAlways, "skip-sync-always", false, "leave out the sync_always scenarios")
	f.BoolVar(&o.cfg.Cluster, "cluster", false, "add raw publishes to R1 and R3 streams on a local 3-node cluster, default flush and sync_always")
	f.StringVar(&o.cfg.PostgresDSN, "postgres", "", "PostgreSQL database of the postgres scenarios (default $DATABASE_URL; none: they are left out); they make schemas of their own there and drop them")
	f.BoolVar(&o.cfg.PostgresOnly, "postgres-only", false, "measure the postgres scenarios only (the trigger then has no JetStream figure to compare with)")
	f.IntVar(&o.cfg.PostgresBatchSize, "pg-batch-size", bench.DefaultPostgresBatchSize, "messages per call of the postgres batch publish scenarios")
	f.IntVar(&o.cfg.PostgresFetchMessages, "pg-fetch-messages", bench.DefaultPostgresFetchMessages, "messages each postgres fetch+ack scenario stores and reads")
	f.IntVar(&o.cfg.PostgresFetchOps, "pg-fetch-ops", bench.DefaultPostgresFetchOps, "fetches per backlog of the postgres fetch latency scenario")
	f.IntVar(&o.cfg.PostgresLatencyRate, "pg-latency-rate", bench.DefaultPostgresLatencyRate, "publish rate of the postgres latency scenario, messages per second")
	f.BoolVar(&o.cfg.PostgresMillion, "pg-backlog-1m", false, "add a backlog of a million messages to the postgres fetch latency scenario (filling it takes a while)")
	f.StringVar(&o.cfg.Watermill, "watermill", "", "program measuring Watermill's SQL pub/sub on the same database (build it from internal/bench/watermill)")
	return cmd
}

// runBench runs the suite and prints its report.
func runBench(ctx context.Context, d deps, logger *slog.Logger, o *benchOptions) error {
	path := o.plugin
	if path == "" {
		self, err := os.Executable()
		if err != nil {
			return fmt.Errorf("find the eventbus binary to run as the plugin: %w (pass --plugin)", err)
		}
		path = self
	}
	cfg := o.cfg
	if cfg.PostgresDSN == "" {
		if v, ok := d.lookupEnv("DATABASE_URL"); ok {
			cfg.PostgresDSN = strings.TrimSpace(v)
		}
	}
	cfg.Progress = d.stderr
	cfg.Logger = quieter(logger, slog.LevelWarn)
	cfg.Launcher = bench.Executable(path)
	cfg.InProcess = bench.Direct(d.version, pluginLogger(cfg.Logger))
	s, err := bench.New(cfg)
	if err != nil {
		if errors.Is(err, bench.ErrConfig) {
			return fmt.Errorf("%w: %v (see 'eventbus bench --help')", errUsage, err)
		}
		return err
	}
	rep, err := s.Run(ctx)
	if err != nil {
		return err
	}
	if o.json {
		return rep.WriteJSON(d.stdout)
	}
	return rep.WriteTable(d.stdout)
}

// quieter returns logger without its records below level, unless the
// logger is set to show debug records: the plugin's routine info lines
// would drown the progress lines.
func quieter(logger *slog.Logger, level slog.Level) *slog.Logger {
	if logger.Enabled(context.Background(), slog.LevelDebug) {
		return logger
	}
	return slog.New(minLevel{Handler: logger.Handler(), min: level})
}

// minLevel is a slog.Handler that drops records below min.
type minLevel struct {
	slog.Handler
	min slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(attrs []slog.Attr) slog.Handler {
	return minLevel{Handler: h.Handler.WithAttrs(attrs), min: h.min}
}

func (h minLevel) WithGroup(name string) slog.Handler {
	return minLevel{Handler: h.Handler.WithGroup(name), min: h.min}
}
