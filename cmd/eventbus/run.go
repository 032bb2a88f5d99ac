package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/wfeventbus/eventbus/bus/embedded"
	"github.com/wfeventbus/eventbus/eventbus"
	"github.com/wfeventbus/eventbus/internal/hostgc"
	"github.com/wfeventbus/eventbus/pluginserver"
	"github.com/wfeventbus/eventbus/runner"
	"github.com/wfeventbus/eventbus/wfplugin"
)

// pluginCookie is the handshake cookie a host sets in a plugin's
// environment; eventbus started with it serves the eventbus plugin.
const (
	pluginCookieKey   = "WORKFLOW_PLUGIN"
	pluginCookieValue = "workflow-external-plugin-v1"
	// metricsAddrEnv asks the plugin to serve its own metrics at an address.
	metricsAddrEnv = "EVENTBUS_METRICS_ADDR"
)

type runOptions struct {
	plugin          string
	outOfProcess    bool
	shutdownTimeout time.Duration
	metricsAddr     string
}

// pluginName names the plugin in logs, in either mode.
const pluginName = "eventbus-plugin"

func newRunCmd(d deps, g *globals) *cobra.Command {
	o := &runOptions{}
	cmd := &cobra.Command{
		Use:   "run APP.yaml",
		Short: "Run the pipelines of an app config",
		Long: "run starts the eventbus plugin, creates the app's modules, steps and triggers\n" +
			"in the workflow engine's order and runs a pipeline each time a trigger fires.\n" +
			"SIGINT or SIGTERM stops triggers, lets running pipelines finish within\n" +
			"--shutdown-timeout, stops modules in reverse order and exits 0.\n\n" +
			"The plugin runs inside this process and is called directly. With\n" +
			"--out-of-process (or --plugin) it runs as a separate process instead, over\n" +
			"the workflow engine's gRPC protocol, exactly as the engine runs it: the same\n" +
			"app behaves the same either way, only slower over gRPC.\n\n" +
			"The host runs its garbage collector at GOGC=400 unless GOGC is set: less\n" +
			"CPU per message, more memory. In process that includes the plugin and its\n" +
			"embedded broker (set GOGC=100 to trade the CPU back for memory); a plugin\n" +
			"process runs Go's default.",
		Args: withUsageErrors(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			hostgc.Set(d.lookupEnv)
			return runApp(cmd.Context(), d, g.logger, args[0], o)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.outOfProcess, "out-of-process", false, "run the plugin as a separate process over gRPC (this eventbus binary in plugin mode), as the workflow engine does")
	f.StringVar(&o.plugin, "plugin", "", "plugin binary to run out of process (implies --out-of-process)")
	f.DurationVar(&o.shutdownTimeout, "shutdown-timeout", runner.DefaultShutdownTimeout, "how long running pipelines may take to finish on shutdown")
	f.StringVar(&o.metricsAddr, "metrics-addr", "", "serve Prometheus metrics at this address, for example 127.0.0.1:9090")
	return cmd
}

// runApp runs file until ctx is cancelled (a signal) or the plugin dies.
func runApp(ctx context.Context, d deps, logger *slog.Logger, file string, o *runOptions) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	var fw runner.Forwarder
	warnings := &runner.PluginWarnings{}
	c, metricsURL, err := openPlugin(ctx, d, logger, file, o, reg, fw.TriggerWorkflow, warnTo(warnings))
	if err != nil {
		return err
	}
	defer closePlugin(c, logger)

	opts := []runner.Option{runner.WithRegisterer(reg), runner.WithShutdownTimeout(o.shutdownTimeout)}
	if pluginMode(o) == "in-process" {
		opts = append(opts, runner.WithPluginWarnings(warnings.Take))
	}
	r, err := runner.PrepareFile(ctx, file, d.lookupEnv, livePlugin{runner.FromClient(c), c}, logger, opts...)
	var ce *runner.ConfigError
	switch {
	case errors.As(err, &ce):
		for _, w := range ce.Warnings {
			logger.Warn("app config", "warning", w.Error())
		}
		return err
	case err != nil:
		return pluginFailure(c, err)
	}
	fw.Attach(r)

	if o.metricsAddr != "" {
		stop, err := serveMetrics(o.metricsAddr, reg, metricsURL, logger)
		if err != nil {
			return err
		}
		defer stop()
	}
	if err := r.Start(ctx); err != nil {
		return pluginFailure(c, err)
	}
	logger.Info("running", "app", file, "plugin_mode", pluginMode(o))

	var exitErr error
	select {
	case <-ctx.Done():
		logger.Info("shutting down", "timeout", o.shutdownTimeout)
	case <-c.Done():
		exitErr = pluginFailure(c, errors.New("the plugin stopped unexpectedly"))
	}
	// Give modules a little longer than the runs so they can stop cleanly.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.shutdownTimeout+15*time.Second)
	defer cancel()
	if err := r.Stop(sctx); err != nil && exitErr == nil {
		exitErr = pluginFailure(c, fmt.Errorf("stop: %w", err))
	}
	return exitErr
}

// pluginMode names where the plugin runs, for the log.
func pluginMode(o *runOptions) string {
	if o.outOfProcess || o.plugin != "" {
		return "out-of-process"
	}
	return "in-process"
}

// openPlugin starts the plugin for file: inside this process, or as a
// separate process with --out-of-process or --plugin. handler runs the
// pipelines its triggers fire. With --metrics-addr the plugin's metrics
// are registered with reg, or, out of process, served by the plugin at the
// returned URL. In this process the plugin's config warnings go to warn.
func openPlugin(ctx context.Context, d deps, logger *slog.Logger, file string, o *runOptions, reg *prometheus.Registry, handler wfplugin.WorkflowHandler, warn func(eventbus.Warning)) (*wfplugin.Client, string, error) {
	getenv := func(k string) string { v, _ := d.lookupEnv(k); return v }
	opts := []wfplugin.LaunchOption{wfplugin.WithWorkflowHandler(handler), wfplugin.WithLogger(logger), wfplugin.WithName(pluginName)}
	if !o.outOfProcess && o.plugin == "" {
		cfg := pluginserver.DirectConfig{Version: d.version, Logger: pluginLogger(logger), Getenv: getenv, Warn: warn}
		if o.metricsAddr != "" {
			cfg.Registerer = reg
		}
		c, err := pluginserver.LaunchDirect(ctx, cfg, opts...)
		if err != nil {
			return nil, "", fmt.Errorf("start the plugin: %w", err)
		}
		return c, "", nil
	}
	limit := pluginserver.MessageLimit(maxPayload(file, d.lookupEnv, getenv))
	env := []string{pluginserver.MaxMessageEnv + "=" + strconv.Itoa(limit)}
	var metricsURL string
	if o.metricsAddr != "" {
		pluginAddr, err := freeLoopbackAddr()
		if err != nil {
			return nil, "", err
		}
		env = append(env, metricsAddrEnv+"="+pluginAddr)
		metricsURL = "http://" + pluginAddr + "/metrics"
	}
	opts = append(opts, wfplugin.WithEnv(env...), wfplugin.WithMaxMessageSize(limit))
	c, err := launchPlugin(ctx, o.plugin, logger, opts...)
	if err != nil {
		return nil, "", err
	}
	return c, metricsURL, nil
}

// maxPayload is the largest message any broker of the app accepts (see
// eventbus.BrokerMaxPayload), or the embedded broker's default when the
// app declares none or cannot be read (the check that follows reports
// why).
func maxPayload(file string, lookupEnv runner.LookupEnv, getenv func(string) string) int {
	n := embedded.DefaultMaxPayload
	cfg, err := runner.Load(file, lookupEnv)
	if err != nil {
		return n
	}
	for _, m := range cfg.Modules {
		if p, ok := eventbus.BrokerMaxPayload(m.Type, m.Name, m.Config, getenv); ok {
			n = max(n, p)
		}
	}
	return n
}

// pluginLogger is the logger of the plugin in this process. It logs as the
// plugin process does (JSON records at info and above, servePlugin) into
// what the host makes of a plugin process's stderr, so that its records
// reach logger exactly as they do from a plugin process.
func pluginLogger(logger *slog.Logger) *slog.Logger {
	w := wfplugin.LogWriter(logger.With("plugin", pluginName))
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// livePlugin is the launched plugin as the runner drives it. Once the
// plugin process has died, stopping its triggers and modules is skipped:
// they died with it, and every call would fail with the same exit error,
// which runApp reports once.
type livePlugin struct {
	runner.Plugin
	c *wfplugin.Client
}

func (p livePlugin) StopTrigger(ctx context.Context, handle string) error {
	if p.c.Exited() {
		return nil
	}
	return p.Plugin.StopTrigger(ctx, handle)
}

func (p livePlugin) StopModule(ctx context.Context, handle string) error {
	if p.c.Exited() {
		return nil
	}
	return p.Plugin.StopModule(ctx, handle)
}

// launchPlugin starts the plugin binary: path, or this executable in plugin
// mode.
func launchPlugin(ctx context.Context, path string, logger *slog.Logger, opts ...wfplugin.LaunchOption) (*wfplugin.Client, error) {
	if path == "" {
		self, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("find the eventbus binary to run as the plugin: %w (pass --plugin)", err)
		}
		path = self
	}
	opts = append([]wfplugin.LaunchOption{wfplugin.WithLogger(logger), wfplugin.WithName(pluginName)}, opts...)
	c, err := wfplugin.Launch(ctx, path, opts...)
	if err != nil {
		return nil, fmt.Errorf("launch plugin %s: %w", path, err)
	}
	return c, nil
}

func closePlugin(c *wfplugin.Client, logger *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Close(ctx); err != nil {
		logger.Warn("closing the plugin", "error", err)
	}
}

// pluginFailure adds the plugin's last stderr lines to err when the plugin
// process has died.
func pluginFailure(c *wfplugin.Client, err error) error {
	if exit := c.Err(); exit != nil {
		return fmt.Errorf("%w: %w", err, exit)
	}
	select {
	case <-c.Done():
		if tail := c.StderrTail(); len(tail) > 0 {
			return fmt.Errorf("%w; the plugin's last output:\n  %s", err, strings.Join(tail, "\n  "))
		}
	default:
	}
	return err
}

// serveMetrics serves reg, followed by the plugin's own metrics scraped from
// pluginURL, at addr.
func serveMetrics(addr string, reg *prometheus.Registry, pluginURL string, logger *slog.Logger) (func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-addr %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(prometheus.Gatherers{reg, remoteGatherer{url: pluginURL}}, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("metrics server", "error", err)
		}
	}()
	logger.Info("serving metrics", "url", "http://"+ln.Addr().String()+"/metrics")
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}

func freeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("pick a port for the plugin's metrics: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
