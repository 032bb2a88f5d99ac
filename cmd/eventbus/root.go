package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"
)

// deps is what the commands need from the process: where to read and write,
// how to look up environment variables, and the release they report. main
// fills it from the os package; tests fill it with buffers and a map.
type deps struct {
	stdin     io.Reader
	stdout    io.Writer
	stderr    io.Writer
	lookupEnv func(key string) (string, bool)
	version   string
}

// globals holds the root command's persistent flags and the logger built
// from them. The root's PersistentPreRunE fills logger before any subcommand
// runs, so subcommands must not declare a PersistentPreRunE of their own.
type globals struct {
	logFormat string
	logLevel  string
	logger    *slog.Logger
}

// execute runs the command line args and returns the process exit code.
func execute(ctx context.Context, args []string, d deps) int {
	root := newRootCmd(d)
	root.SetArgs(args)
	return report(ctx, d.stderr, root.ExecuteContext(ctx))
}

// report prints err, if any, to stderr as one plain line and returns the exit
// code: 0 on success, 2 for a usage error, 130 when ctx was cancelled (an
// interrupt) before the command finished, 1 for any other failure.
func report(ctx context.Context, stderr io.Writer, err error) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		fmt.Fprintln(stderr, "eventbus: interrupted")
		return 130
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "eventbus: %v\n", err)
		return 2
	default:
		fmt.Fprintf(stderr, "eventbus: %v\n", err)
		return 1
	}
}

// newRootCmd builds the eventbus command with every subcommand attached.
func newRootCmd(d deps) *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "eventbus",
		Short: "Durable messaging for workflow pipelines on NATS JetStream or PostgreSQL",
		Long: "eventbus runs and inspects the message broker behind workflow pipelines:\n" +
			"an embedded NATS JetStream server, and publish, subscribe and stream\n" +
			"listing against any NATS server or a postgres broker's database.",
		Version: d.version,
		// Runtime errors are printed once, plainly, by execute; usage is
		// shown only when asked for with --help.
		SilenceErrors: true,
		SilenceUsage:  true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			logger, err := newLogger(d.stderr, g.logFormat, g.logLevel)
			if err != nil {
				return usageError(cmd, err)
			}
			g.logger = logger
			return nil
		},
		// Without a subcommand the root prints its help; an argument that
		// names no subcommand is a usage error like any other.
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return nil
			}
			msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
			if cmd.SuggestionsMinimumDistance <= 0 {
				cmd.SuggestionsMinimumDistance = 2
			}
			if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
				msg += "; did you mean " + strings.Join(s, " or ") + "?"
			}
			return usageError(cmd, errors.New(msg))
		},
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	root.SetIn(d.stdin)
	root.SetOut(d.stdout)
	root.SetErr(d.stderr)
	root.SetVersionTemplate("eventbus {{.Version}}\n")
	root.SetFlagErrorFunc(usageError)
	root.CompletionOptions.DisableDefaultCmd = true

	pf := root.PersistentFlags()
	pf.StringVar(&g.logFormat, "log-format", "text", "log format on stderr: text or json")
	pf.StringVar(&g.logLevel, "log-level", "info", "lowest level logged: debug, info, warn or error")

	root.AddCommand(
		newServerCmd(d, g),
		newPubCmd(d),
		newSubCmd(d),
		newStreamsCmd(d),
		newVersionCmd(d),
		newRunCmd(d, g),
		newValidateCmd(d, g),
		newBenchCmd(d, g),
		newDeployCmd(d),
	)
	return root
}

// newLogger returns a logger writing to w in format (text or json) at level
// (debug, info, warn or error, in any case).
func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lvl slog.Level
	switch strings.ToLower(level) {
	case "debug":
		lvl = slog.LevelDebug
	case "info":
		lvl = slog.LevelInfo
	case "warn", "warning":
		lvl = slog.LevelWarn
	case "error":
		lvl = slog.LevelError
	default:
		return nil, fmt.Errorf("--log-level must be debug, info, warn or error, not %q", level)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch strings.ToLower(format) {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		opts.ReplaceAttr = readableDurations
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	default:
		return nil, fmt.Errorf("--log-format must be text or json, not %q", format)
	}
}

// readableDurations writes a duration as Go writes it ("30s", "1.5ms"), not
// as the number of nanoseconds slog's JSON handler writes by default.
func readableDurations(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		return slog.String(a.Key, a.Value.Duration().String())
	}
	return a
}

// usageError marks err as a usage error of cmd and points at its help.
func usageError(cmd *cobra.Command, err error) error {
	return fmt.Errorf("%w: %v (see '%s --help')", errUsage, err, cmd.CommandPath())
}

// withUsageErrors wraps a positional-argument check so that its failures
// are usage errors.
func withUsageErrors(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return usageError(cmd, err)
		}
		return nil
	}
}
