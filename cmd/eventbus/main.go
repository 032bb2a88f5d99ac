// Command eventbus runs and inspects the message broker behind workflow
// pipelines: `eventbus server` runs an embedded NATS JetStream server, and
// pub, sub and streams publish, print and list against any NATS server.
//
// Environment: NATS_URL is the server pub, sub and streams connect to when
// --url is not given. Exit codes: 0 success, 1 failure, 2 usage error, 130
// interrupted.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/wfeventbus/eventbus/pluginserver"
)

func main() {
	// A host that launches eventbus as its plugin (eventbus run does, with
	// itself) sets the handshake cookie: serve the plugin instead of the CLI.
	if os.Getenv(pluginCookieKey) == pluginCookieValue {
		servePlugin()
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first signal, a second one gets the default behaviour and
	// ends a shutdown that hangs.
	context.AfterFunc(ctx, stop)
	code := execute(ctx, os.Args[1:], deps{
		stdin:     os.Stdin,
		stdout:    os.Stdout,
		stderr:    os.Stderr,
		lookupEnv: os.LookupEnv,
		version:   version,
	})
	stop()
	os.Exit(code)
}

// servePlugin serves the eventbus plugin over the engine's protocol; logs go
// to stderr as JSON, which the host forwards record by record.
func servePlugin() {
	logger := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo, ReplaceAttr: readableDurations}))
	if err := pluginserver.Serve(version, logger, os.Getenv); err != nil {
		fmt.Fprintln(os.Stderr, "eventbus plugin:", err)
		os.Exit(1)
	}
}
