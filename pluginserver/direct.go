package pluginserver

import (
	"context"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wfeventbus/eventbus/eventbus"
	"github.com/wfeventbus/eventbus/wfplugin"
)

// DirectConfig is what the eventbus plugin needs to run inside its host's
// process; the plugin process reads the same from its environment.
type DirectConfig struct {
	// Version is the plugin's version in its manifest.
	Version string
	// Logger receives the plugin's logs, as the plugin process writes them
	// to its stderr for the host; nil discards them.
	Logger *slog.Logger
	// Getenv resolves broker URLs (EVENTBUS_<NAME>_URI, NATS_URL) and token
	// keys (EVENTBUS_TOKEN_KEY, EVENTBUS_TOKEN_KEY_PREVIOUS); nil reads
	// nothing.
	Getenv func(string) string
	// Registerer, when set, receives the plugin's metrics: the counters of
	// NewMetrics, the backlog of NewBacklogCollector and the connections of
	// NewConnectionCollector, the families the plugin process serves at
	// EVENTBUS_METRICS_ADDR.
	Registerer prometheus.Registerer
	// Warn, when set, receives the plugin's warnings about the configs it
	// accepts, within the create or init call that finds each (see
	// eventbus.Options.Warn); nil logs them.
	Warn func(eventbus.Warning)
}

// LaunchDirect runs the eventbus plugin inside this process and returns the
// host's client of it (wfplugin.LaunchDirect): the plugin core behind the
// same Server as over the wire, called without gRPC. opts are the host's,
// as for wfplugin.Launch; the plugin's server logs to cfg.Logger.
func LaunchDirect(ctx context.Context, cfg DirectConfig, opts ...wfplugin.LaunchOption) (*wfplugin.Client, error) {
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	o := eventbus.Options{Logger: logger, Getenv: cfg.Getenv, Warn: cfg.Warn}
	if cfg.Registerer != nil {
		o.Metrics = NewMetrics(cfg.Registerer)
	}
	core := eventbus.New(o)
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(NewBacklogCollector(core)); err != nil {
			return nil, err
		}
		if err := cfg.Registerer.Register(NewConnectionCollector(core)); err != nil {
			return nil, err
		}
	}
	opts = append(opts, wfplugin.WithServeOptions(wfplugin.WithServeLogger(logger)))
	return wfplugin.LaunchDirect(ctx, New(core, cfg.Version, WithLogger(logger)), opts...)
}
