package bench

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wfeventbus/eventbus/eventbus"
	"github.com/wfeventbus/eventbus/pluginserver"
	"github.com/wfeventbus/eventbus/wfplugin"
)

// Launcher starts the plugin under test with the given host options.
type Launcher func(ctx context.Context, opts ...wfplugin.LaunchOption) (*wfplugin.Client, error)

// Executable launches the plugin binary at path, as the engine does.
func Executable(path string) Launcher {
	return func(ctx context.Context, opts ...wfplugin.LaunchOption) (*wfplugin.Client, error) {
		return wfplugin.Launch(ctx, path, opts...)
	}
}

// Direct runs the eventbus plugin inside this process and calls it
// directly (pluginserver.LaunchDirect), as eventbus run does by default;
// the plugin logs to logger (nil: nowhere).
func Direct(version string, logger *slog.Logger) Launcher {
	return func(ctx context.Context, opts ...wfplugin.LaunchOption) (*wfplugin.Client, error) {
		return pluginserver.LaunchDirect(ctx, pluginserver.DirectConfig{Version: version, Logger: logger}, opts...)
	}
}

// GRPCInProcess serves the eventbus plugin inside this process over the
// real protocol (wfplugin.LaunchInProcess): one process, so a CPU profile
// of the caller covers both sides of the gRPC path. Its figures are not
// comparable with those of a separate plugin process, and it has no plugin
// RSS of its own.
func GRPCInProcess(version string) Launcher {
	return func(ctx context.Context, opts ...wfplugin.LaunchOption) (*wfplugin.Client, error) {
		core := eventbus.New(eventbus.Options{})
		return wfplugin.LaunchInProcess(ctx, pluginserver.New(core, version), opts...)
	}
}

// Names of what a session creates in the plugin.
const (
	brokerModule = "bench-broker"
	streamModule = "bench-stream"
)

// session is one plugin process with a broker and the bench stream, and
// the host handler its triggers fire.
type session struct {
	c      *wfplugin.Client
	url    string   // the embedded broker's client URL
	broker string   // handle of the broker module
	mods   []string // module handles in creation order
	sinks  *router
	seq    atomic.Int64 // numbers the triggers, whose names must differ
	// filler stores messages on the broker directly, bypassing the
	// plugin; nil fills an embedded broker over url.
	filler func(ctx context.Context, subject string, n int, body []byte) error
}

// openSession launches the plugin and starts a file-backed embedded broker
// storing under dir, and the bench stream.
func openSession(ctx context.Context, launch Launcher, logger *slog.Logger, dir string, syncAlways bool) (*session, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	broker := map[string]any{
		"embedded": map[string]any{"port": float64(port), "store_dir": dir, "sync_always": syncAlways},
	}
	return openSessionOn(ctx, launch, logger, broker, "nats://127.0.0.1:"+strconv.Itoa(port))
}

// openSessionOn launches the plugin and starts a broker of the given
// config, and the bench stream on it; url is an embedded broker's client
// URL.
func openSessionOn(ctx context.Context, launch Launcher, logger *slog.Logger, broker map[string]any, url string) (*session, error) {
	s := &session{sinks: &router{sinks: map[string]*sink{}}, url: url}
	c, err := launch(ctx, wfplugin.WithLogger(logger), wfplugin.WithWorkflowHandler(s.sinks.handle))
	if err != nil {
		return nil, fmt.Errorf("launch the plugin: %w", err)
	}
	s.c = c
	mods := []struct {
		typ, name string
		config    map[string]any
	}{
		{eventbus.TypeBroker, brokerModule, broker},
		{eventbus.TypeStream, streamModule, map[string]any{
			"name": streamName, "subjects": []any{streamSubjects}, "broker_ref": brokerModule,
		}},
	}
	for _, m := range mods {
		h, err := c.CreateModule(ctx, m.typ, m.name, m.config)
		if err != nil {
			s.close(ctx)
			return nil, err
		}
		s.mods = append(s.mods, h)
	}
	s.broker = s.mods[0]
	for _, phase := range []func(context.Context, string) error{c.InitModule, c.StartModule} {
		for _, h := range s.mods {
			if err := phase(ctx, h); err != nil {
				s.close(ctx)
				return nil, err
			}
		}
	}
	return s, nil
}

// freePort returns a loopback port that was free a moment ago; the
// embedded broker listens there, so the bench can fill its streams
// directly.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pick a port for the plugin's broker: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// close stops the modules in reverse order and ends the plugin process.
func (s *session) close(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	for i := len(s.mods) - 1; i >= 0; i-- {
		_ = s.c.StopModule(ctx, s.mods[i])
	}
	_ = s.c.Close(ctx)
}

// cpu reads the CPU time host and plugin have used so far.
func (s *session) cpu() time.Duration { return cpuTime(s) }

// memory reads the plugin process's resident set (VmRSS) and its peak
// (VmHWM) in bytes; zeros when the plugin runs in this process or the
// system has no /proc.
func (s *session) memory() (rss, peak int64) {
	pid := s.c.Pid()
	if pid == 0 {
		return 0, 0
	}
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		switch k {
		case "VmRSS":
			rss = kB(v)
		case "VmHWM":
			peak = kB(v)
		}
	}
	return rss, peak
}

// kB reads a /proc size such as "  12345 kB" as bytes.
func kB(v string) int64 {
	n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
	if err != nil {
		return 0
	}
	return n << 10
}

// router hands every TriggerWorkflow to the sink of its workflow.
type router struct {
	mu    sync.RWMutex
	sinks map[string]*sink
}

func (r *router) add(workflow string, s *sink) {
	r.mu.Lock()
	r.sinks[workflow] = s
	r.mu.Unlock()
}

// handle is the host's workflow handler: the pipeline each message runs,
// one no-op step that only records the message.
func (r *router) handle(_ context.Context, workflow, _ string, data map[string]any) error {
	r.mu.RLock()
	s := r.sinks[workflow]
	r.mu.RUnlock()
	if s == nil {
		return fmt.Errorf("no pipeline %s", workflow)
	}
	s.record(data)
	return nil
}
