package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/wfeventbus/eventbus/bus"
	"github.com/wfeventbus/eventbus/bus/embedded"
)

// shutdownTimeout bounds a clean shutdown once the server is told to stop.
const shutdownTimeout = 30 * time.Second

// serverOptions are the flags of the server command.
type serverOptions struct {
	storeDir    string
	host        string
	port        int
	memory      bool
	syncAlways  bool
	maxPayload  int32
	cluster     int
	clusterPort int
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
			"created and nothing is written to disk.\n\n" +
			"With --cluster N it runs N servers routed to each other as one JetStream\n" +
			"cluster, for trying replicated streams (num_replicas: 3) and failover on\n" +
			"one machine: server i listens on --port + i and routes on --cluster-port + i,\n" +
			"and keeps its streams in --store-dir/eventbus-i. It prints the urls an app\n" +
			"lists to reach every server.",
		Example: "  eventbus server\n" +
			"  eventbus server --store-dir /var/lib/eventbus --port 4333\n" +
			"  eventbus server --memory --port -1\n" +
			"  eventbus server --cluster 3",
		Args: withUsageErrors(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.port == 0 || o.port < -1 || o.port > 65535 {
				return usageError(cmd, fmt.Errorf("--port must be between 1 and 65535, or -1 for any free port, not %d", o.port))
			}
			if o.maxPayload < 0 {
				return usageError(cmd, fmt.Errorf("--max-payload must not be negative, not %d", o.maxPayload))
			}
			if o.cluster == 0 {
				if cmd.Flags().Changed("cluster-port") {
					return usageError(cmd, errors.New("--cluster-port needs --cluster"))
				}
				return runServer(cmd.Context(), d, g.logger, o)
			}
			switch {
			case o.cluster < 2:
				return usageError(cmd, fmt.Errorf("--cluster must be at least 2 servers (3 is usual), not %d", o.cluster))
			case o.memory:
				return usageError(cmd, errors.New("--memory and --cluster are alternatives: cluster servers keep their streams in --store-dir"))
			case o.clusterPort == 0 || o.clusterPort < -1 || o.clusterPort > 65535:
				return usageError(cmd, fmt.Errorf("--cluster-port must be between 1 and 65535, or -1 for free ports, not %d", o.clusterPort))
			}
			return runCluster(cmd.Context(), d, g.logger, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.storeDir, "store-dir", "./data/eventbus", "directory where JetStream keeps streams")
	f.StringVar(&o.host, "host", "127.0.0.1", "loopback address to listen on (localhost, 127.0.0.0/8 or ::1)")
	f.IntVar(&o.port, "port", 4222, "port to listen on (-1: any free port)")
	f.BoolVar(&o.memory, "memory", false, "keep streams in memory only; nothing is written to --store-dir")
	f.BoolVar(&o.syncAlways, "sync-always", false, "flush every stored message to disk before acknowledging it")
	f.Int32Var(&o.maxPayload, "max-payload", 0, "largest message in bytes, up to 64 MiB (0: 1 MiB)")
	f.IntVar(&o.cluster, "cluster", 0, "run this many servers as one JetStream cluster (3 is usual; 0: a single server)")
	f.IntVar(&o.clusterPort, "cluster-port", embedded.DefaultClusterPort, "route port of the first cluster server, the next ones following (-1: free ports)")
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

// runCluster starts a cluster of o.cluster servers, announces each server
// and the urls an app lists on stdout, and serves until ctx is cancelled;
// it then shuts every server down and returns nil.
func runCluster(ctx context.Context, d deps, logger *slog.Logger, o *serverOptions) error {
	c, err := embedded.StartCluster(ctx, embedded.ClusterConfig{
		Size:        o.cluster,
		StoreDir:    o.storeDir,
		Host:        o.host,
		Port:        o.port,
		ClusterPort: o.clusterPort,
		SyncAlways:  o.syncAlways,
		MaxPayload:  o.maxPayload,
		Logger:      logger,
	})
	if errors.Is(err, bus.ErrInvalidConfig) {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	if err != nil {
		return fmt.Errorf("start a cluster of %d servers: %w", o.cluster, err)
	}
	urls := c.ClientURLs()
	fmt.Fprintf(d.stdout, "eventbus cluster of %d servers listening:\n", len(urls))
	for i, name := range c.Names() {
		dir, err := c.StoreDir(name)
		if err != nil {
			return err
		}
		fmt.Fprintf(d.stdout, "  %s  %s  store %s\n", name, urls[i], dir)
	}
	fmt.Fprintf(d.stdout, "urls: %s\n", strings.Join(urls, ","))
	fmt.Fprintf(d.stdout, "(an app's broker: urls: [%s]; the CLI: NATS_URL=%s)\n",
		strings.Join(urls, ", "), strings.Join(urls, ","))

	<-ctx.Done()
	logger.Info("shutting down", "reason", context.Cause(ctx))
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if err := c.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shut down cluster: %w", err)
	}
	logger.Info("eventbus cluster stopped")
	return nil
}
