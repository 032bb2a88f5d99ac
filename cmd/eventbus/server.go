package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/wfeventbus/eventbus/bus"
	"github.com/wfeventbus/eventbus/bus/embedded"
)

// shutdownTimeout bounds a clean shutdown once the server is told to stop.
const shutdownTimeout = 30 * time.Second

// serverOptions are the flags of the server command.
type serverOptions struct {
	storeDir   string
	host       string
	port       int
	memory     bool
	syncAlways bool
	maxPayload int32
}

// newServerCmd builds `eventbus server`. g supplies the logger, which the
// root command builds from --log-format and --log-level before this runs.
func newServerCmd(d deps, g *globals) *cobra.Command {
	o := &serverOptions{}
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run an embedded NATS JetStream server in the foreground",
		Long: "server runs a NATS server with JetStream for other processes (pipelines,\n" +
			"eventbus pub and sub) until interrupted (Ctrl-C or SIGTERM), then shuts it\n" +
			"down cleanly. It listens on loopback only. Streams are kept in --store-dir\n" +
			"and survive a restart; with --memory only memory-storage streams can be\n" +
			"created and nothing is written to disk.",
		Example: "  eventbus server\n" +
			"  eventbus server --store-dir /var/lib/eventbus --port 4333\n" +
			"  eventbus server --memory --port -1",
		Args: withUsageErrors(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.port == 0 || o.port < -1 || o.port > 65535 {
				return usageError(cmd, fmt.Errorf("--port must be between 1 and 65535, or -1 for any free port, not %d", o.port))
			}
			if o.maxPayload < 0 {
				return usageError(cmd, fmt.Errorf("--max-payload must not be negative, not %d", o.maxPayload))
			}
			return runServer(cmd.Context(), d, g.logger, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.storeDir, "store-dir", "./data/eventbus", "directory where JetStream keeps streams")
	f.StringVar(&o.host, "host", "127.0.0.1", "loopback address to listen on (localhost, 127.0.0.0/8 or ::1)")
	f.IntVar(&o.port, "port", 4222, "port to listen on (-1: any free port)")
	f.BoolVar(&o.memory, "memory", false, "keep streams in memory only; nothing is written to --store-dir")
	f.BoolVar(&o.syncAlways, "sync-always", false, "flush every stored message to disk before acknowledging it")
	f.Int32Var(&o.maxPayload, "max-payload", 0, "largest message in bytes, up to 64 MiB (0: 1 MiB)")
	return cmd
}

// runServer starts the server, announces its URL on stdout, and serves until
// ctx is cancelled; it then shuts the server down and returns nil.
func runServer(ctx context.Context, d deps, logger *slog.Logger, o *serverOptions) error {
	srv, err := embedded.Start(ctx, embedded.Config{
		StoreDir:   o.storeDir,
		Host:       o.host,
		Port:       o.port,
		MemoryOnly: o.memory,
		SyncAlways: o.syncAlways,
		MaxPayload: o.maxPayload,
		ServerName: "eventbus",
		Logger:     logger,
	})
	if errors.Is(err, bus.ErrInvalidConfig) {
		// A flag value the server refuses, such as a non-loopback --host.
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	if err != nil {
		return fmt.Errorf("start server on %s: %w", net.JoinHostPort(o.host, strconv.Itoa(o.port)), err)
	}
	store := "store " + o.storeDir
	if o.memory {
		store = "memory only"
	}
	fmt.Fprintf(d.stdout, "eventbus server listening on %s (%s)\n", srv.ClientURL(), store)

	<-ctx.Done()
	logger.Info("shutting down", "reason", context.Cause(ctx))
	// The serving context is over; shutting down gets its own deadline.
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shut down server: %w", err)
	}
	logger.Info("eventbus server stopped")
	return nil
}
