package eventbus_test

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wfeventbus/eventbus/bus/embedded"
	"github.com/wfeventbus/eventbus/eventbus"
)

// logRecorder is a slog handler that keeps every record with its
// attributes, the logger's own included.
type logRecorder struct {
	mu      *sync.Mutex
	records *[]logRecord
	attrs   []slog.Attr
}

type logRecord struct {
	level slog.Level
	msg   string
	attrs map[string]string
}

func newLogRecorder() *logRecorder {
	return &logRecorder{mu: &sync.Mutex{}, records: &[]logRecord{}}
}

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	rec := logRecord{level: r.Level, msg: r.Message, attrs: map[string]string{}}
	for _, a := range h.attrs {
		rec.attrs[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool {
		rec.attrs[a.Key] = a.Value.String()
		return true
	})
	h.mu.Lock()
	defer h.mu.Unlock()
	*h.records = append(*h.records, rec)
	return nil
}

func (h *logRecorder) WithAttrs(as []slog.Attr) slog.Handler {
	return &logRecorder{mu: h.mu, records: h.records, attrs: append(append([]slog.Attr(nil), h.attrs...), as...)}
}

func (h *logRecorder) WithGroup(string) slog.Handler { return h }

// matching returns the records whose message is msg.
func (h *logRecorder) matching(msg string) []logRecord {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []logRecord
	for _, r := range *h.records {
		if r.msg == msg {
			out = append(out, r)
		}
	}
	return out
}

// atLeast returns the records at level or above.
func (h *logRecorder) atLeast(level slog.Level) []logRecord {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []logRecord
	for _, r := range *h.records {
		if r.level >= level {
			out = append(out, r)
		}
	}
	return out
}

// startModules creates, initialises and starts modules on p, stopping them
// in reverse when the test ends.
func startModules(t *testing.T, p *eventbus.Plugin, decls ...decl) {
	t.Helper()
	ctx := context.Background()
	var mods []eventbus.Module
	t.Cleanup(func() {
		for i := len(mods) - 1; i >= 0; i-- {
			_ = mods[i].Stop(context.Background())
		}
	})
	for _, d := range decls {
		m, err := p.CreateModule(ctx, d.typ, d.name, d.config)
		if err != nil {
			t.Fatalf("create %s: %v", d.name, err)
		}
		mods = append(mods, m)
		if err := m.Init(ctx); err != nil {
			t.Fatalf("init %s: %v", d.name, err)
		}
		if err := m.Start(ctx); err != nil {
			t.Fatalf("start %s: %v", d.name, err)
		}
	}
}

// TestBrokerSaysWhichItIs starts an embedded broker with NATS_URL set,
// which must not override its embedded block, and an external broker
// chosen by its own variable: each logs one line saying which broker it
// is, where, and which setting chose it.
func TestBrokerSaysWhichItIs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	external, err := embedded.Start(ctx, embedded.Config{StoreDir: t.TempDir(), Port: embedded.RandomPort})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = external.Shutdown(context.Background()) })

	logs := newLogRecorder()
	env := map[string]string{"NATS_URL": "nats://127.0.0.1:1", "EVENTBUS_REMOTE_URI": external.ClientURL()}
	p := eventbus.New(eventbus.Options{Logger: slog.New(logs), Getenv: func(k string) string { return env[k] }})
	store := t.TempDir()
	startModules(t, p,
		decl{eventbus.TypeBroker, "local", map[string]any{"embedded": map[string]any{"port": float64(-1), "store_dir": store}}},
		decl{eventbus.TypeBroker, "remote", map[string]any{}},
	)

	started := logs.matching("embedded broker started")
	if len(started) != 1 {
		t.Fatalf("%d embedded broker start lines, want 1: %v", len(started), started)
	}
	if a := started[0].attrs; a["broker"] != "local" || a["store_dir"] != store || !strings.HasPrefix(a["url"], "nats://127.0.0.1:") ||
		!strings.Contains(a["reason"], "embedded block") || !strings.Contains(a["reason"], "NATS_URL is set") {
		t.Errorf("embedded broker line = %v", a)
	}
	connected := logs.matching("connected to an external broker")
	if len(connected) != 1 {
		t.Fatalf("%d external broker lines, want 1: %v", len(connected), connected)
	}
	if a := connected[0].attrs; a["broker"] != "remote" || a["server"] != external.ClientURL() || a["servers"] != external.ClientURL() ||
		a["reason"] != "EVENTBUS_REMOTE_URI is set" {
		t.Errorf("external broker line = %v", a)
	}
}

// TestExternalBrokerReconnects takes an external broker away under a
// running trigger and brings it back: one line says the connection is
// lost, one that it is back, each naming the server; the trigger's pulls
// do not fill the log meanwhile, and it runs messages again afterwards.
func TestExternalBrokerReconnects(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg := embedded.Config{StoreDir: t.TempDir(), Port: restartablePort(t)}
	srv, err := embedded.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	url := srv.ClientURL()
	var srvMu sync.Mutex
	t.Cleanup(func() {
		srvMu.Lock()
		defer srvMu.Unlock()
		_ = srv.Shutdown(context.Background())
	})

	logs := newLogRecorder()
	p := eventbus.New(eventbus.Options{Logger: slog.New(logs)})
	startModules(t, p,
		decl{eventbus.TypeBroker, "bus", map[string]any{"dsn": url}},
		decl{eventbus.TypeStream, "orders", map[string]any{"name": "ORDERS", "subjects": []any{"orders.>"}}},
		decl{eventbus.TypeConsumer, "worker", map[string]any{"stream_name": "ORDERS"}},
	)
	runs := make(chan string, 10)
	tr, err := p.CreateTrigger(ctx, eventbus.TriggerSubscribe, "pipeline:p", map[string]any{"name": "worker"},
		func(_ context.Context, data map[string]any) error {
			runs <- data["payload"].(string)
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	startTrigger(t, tr)
	pub, err := p.CreateStep(ctx, eventbus.StepPublish, "pub", map[string]any{"subject": "orders.a", "payload": "{{ .payload }}"})
	if err != nil {
		t.Fatal(err)
	}
	publish := func(payload string) {
		t.Helper()
		cfg := map[string]any{"subject": "orders.a", "payload": payload}
		deadline := time.Now().Add(30 * time.Second)
		for {
			_, err := pub.Execute(ctx, eventbus.MapInput{Rendered: cfg})
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("publish %s: %v", payload, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	publish("before")
	if got := <-runs; got != "before" {
		t.Fatalf("ran %q, want before", got)
	}

	srvMu.Lock()
	if err := srv.Shutdown(ctx); err != nil {
		srvMu.Unlock()
		t.Fatal(err)
	}
	srvMu.Unlock()
	waitFor(t, "the disconnect to be logged", func() bool { return len(logs.matching("lost the connection to the broker; reconnecting")) > 0 })
	srvMu.Lock()
	srv, err = embedded.Start(ctx, cfg)
	srvMu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the reconnect to be logged", func() bool { return len(logs.matching("reconnected to the broker")) > 0 })
	publish("after")
	if got := <-runs; got != "after" {
		t.Fatalf("ran %q, want after", got)
	}

	lost := logs.matching("lost the connection to the broker; reconnecting")
	back := logs.matching("reconnected to the broker")
	if len(lost) != 1 || len(back) != 1 {
		t.Fatalf("%d disconnect and %d reconnect lines, want 1 and 1", len(lost), len(back))
	}
	if lost[0].level != slog.LevelWarn || lost[0].attrs["server"] != url || back[0].attrs["server"] != url {
		t.Errorf("disconnect %v / reconnect %v: want each with server %s", lost[0], back[0], url)
	}
	// The lost connection is the news; the subscription's pulls, which
	// fail meanwhile, may add one warning at most.
	if warns := logs.atLeast(slog.LevelWarn); len(warns) > 2 {
		t.Errorf("%d warnings for one outage, want at most the disconnect and one for the subscription: %v", len(warns), warns)
	}
}

// restartablePort returns a loopback port that was free a moment ago, taken
// below the range the kernel hands out for port 0. A server that a test
// stops and starts again on its port finds it free: while it was down, the
// port could not be handed to a server that another test started on port
// 0 (embedded.RandomPort).
func restartablePort(t testing.TB) int {
	t.Helper()
	for range 100 {
		port := 20000 + rand.IntN(12000)
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		l.Close()
		return port
	}
	t.Fatal("no free port between 20000 and 32000")
	return 0
}
