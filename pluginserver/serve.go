package pluginserver

import (
	"log/slog"

	"github.com/wfeventbus/eventbus/eventbus"
	"github.com/wfeventbus/eventbus/wfplugin"
)

// Serve serves the eventbus plugin to the host that started this process.
// getenv resolves broker URLs (EVENTBUS_<NAME>_URI, NATS_URL), token keys
// (EVENTBUS_TOKEN_KEY, EVENTBUS_TOKEN_KEY_PREVIOUS),
// EVENTBUS_METRICS_ADDR, where the plugin then serves Prometheus metrics,
// and EVENTBUS_MAX_MESSAGE_BYTES (MaxMessageEnv), which raises the largest
// request the plugin accepts.
func Serve(version string, logger *slog.Logger, getenv func(string) string) error {
	serveOpts := []wfplugin.ServeOption{wfplugin.WithServeLogger(logger)}
	n, err := maxRecv(getenv)
	if err != nil {
		return err
	}
	if n > 0 {
		serveOpts = append(serveOpts, wfplugin.WithMaxRecvMsgSize(n))
	}
	opts := eventbus.Options{Logger: logger, Getenv: getenv}
	addr := getenv(MetricsAddrEnv)
	if addr == "" {
		return wfplugin.Serve(New(eventbus.New(opts), version, WithLogger(logger)), serveOpts...)
	}
	reg := newRegistry()
	opts.Metrics = NewMetrics(reg)
	core := eventbus.New(opts)
	reg.MustRegister(NewBacklogCollector(core), NewConnectionCollector(core))
	stop, err := serveMetrics(addr, reg, logger)
	if err != nil {
		return err
	}
	defer stop()
	return wfplugin.Serve(New(core, version, WithLogger(logger)), serveOpts...)
}
