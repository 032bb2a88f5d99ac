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
	"os"
	"os/signal"
	"syscall"
)

func main() {
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
