package bench

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"runtime/pprof"
	"strings"
	"testing"

	"github.com/wfeventbus/eventbus/internal/hostgc"
	"github.com/wfeventbus/eventbus/pluginserver"
	"github.com/wfeventbus/eventbus/wfplugin"
)

// inProcess serves the out-of-process figures' plugin inside the test
// process over gRPC instead of as a child process, so that -cpuprofile
// covers both sides of the protocol.
var inProcess = flag.Bool("bench.inprocess", false, "serve the gRPC plugin in the test process (for one CPU profile of host and plugin)")

// pluginProfile asks the plugin child process for a CPU profile of its
// whole life, written to the given file when it exits.
var pluginProfile = flag.String("bench.plugin-cpuprofile", "", "write a CPU profile of the plugin process to this file")

// pluginEnv adds variables to the plugin process's environment, for
// example GOMAXPROCS=1 or GOGC=200, to compare runtime settings.
var pluginEnv = flag.String("bench.plugin-env", "", "comma-separated KEY=VALUE pairs added to the plugin's environment")

// profileEnv carries pluginProfile to the plugin process.
const profileEnv = "EVENTBUS_BENCH_PLUGIN_CPUPROFILE"

// TestMain serves the eventbus plugin when a host launched this test
// binary as its plugin; otherwise it runs the tests.
func TestMain(m *testing.M) {
	if os.Getenv(wfplugin.MagicCookieKey) == wfplugin.MagicCookieValue {
		os.Exit(servePlugin())
	}
	// The benchmarks' host paces its collector as eventbus bench does.
	hostgc.Set(os.LookupEnv)
	os.Exit(m.Run())
}

// servePlugin serves the plugin until the host shuts it down, profiling it
// when asked to.
func servePlugin() int {
	if path := os.Getenv(profileEnv); path != "" {
		f, err := os.Create(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench plugin:", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "bench plugin:", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if err := pluginserver.Serve("0.1.0", logger, os.Getenv); err != nil {
		fmt.Fprintln(os.Stderr, "bench plugin:", err)
		return 1
	}
	return 0
}

// launcher returns the plugin the tests and benchmarks measure in a mode:
// in process, called directly; out of process, this test binary in plugin
// mode, or with -bench.inprocess the plugin served in this process over
// gRPC.
func launcher(tb testing.TB, mode string) Launcher {
	tb.Helper()
	if mode == ModeInProcess {
		return Direct("0.1.0", nil)
	}
	if *inProcess {
		return GRPCInProcess("0.1.0")
	}
	exe, err := os.Executable()
	if err != nil {
		tb.Fatal(err)
	}
	// A race-enabled binary sleeps a second at exit unless told otherwise.
	env := []string{"GORACE=" + strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0")}
	if *pluginProfile != "" {
		env = append(env, profileEnv+"="+*pluginProfile)
	}
	if *pluginEnv != "" {
		env = append(env, strings.Split(*pluginEnv, ",")...)
	}
	return func(ctx context.Context, opts ...wfplugin.LaunchOption) (*wfplugin.Client, error) {
		return wfplugin.Launch(ctx, exe, append(opts, wfplugin.WithEnv(env...))...)
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
