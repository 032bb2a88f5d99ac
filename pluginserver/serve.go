package pluginserver

import (
	"log/slog"

	"github.com/wfeventbus/eventbus/eventbus"
	"github.com/wfeventbus/eventbus/wfplugin"
)

// Serve serves the eventbus plugin to the host that started this process.
// getenv resolves broker URLs (EVENTBUS_<NAME>_URI, NATS_URL).
func Serve(version string, logger *slog.Logger, getenv func(string) string) error {
	core := eventbus.New(eventbus.Options{Logger: logger, Getenv: getenv})
	return wfplugin.Serve(New(core, version), wfplugin.WithServeLogger(logger))
}
