// Command workflow-plugin-eventbus is the eventbus plugin binary that the
// workflow engine (or `eventbus run`) launches. Run by hand as
// `workflow-plugin-eventbus manifest -dir DIR` it writes plugin.json and
// plugin.contracts.json instead.
package main

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/wfeventbus/eventbus/pluginserver"
)

// version is the plugin's semantic version, set at build time with
// -ldflags "-X main.version=MAJOR.MINOR.PATCH".
var version = "0.1.0"

func main() {
	if len(os.Args) > 1 && os.Args[1] == "manifest" {
		if err := pluginserver.WriteManifests(os.Args[2:], version); err != nil {
			fmt.Fprintln(os.Stderr, "workflow-plugin-eventbus:", err)
			os.Exit(1)
		}
		return
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if err := pluginserver.Serve(version, logger, os.Getenv); err != nil {
		fmt.Fprintln(os.Stderr, "workflow-plugin-eventbus:", err)
		os.Exit(1)
	}
}
