package embedded_test

import (
	"bufio"
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wfeventbus/eventbus/bus"
	"github.com/wfeventbus/eventbus/bus/embedded"
)

// hangGuard bounds each test's waits; tests never assert timing.
const hangGuard = 30 * time.Second

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	t.Cleanup(cancel)
	return ctx
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

func start(t *testing.T, cfg embedded.Config) *embedded.Server {
	t.Helper()
	srv, err := embedded.Start(testContext(t), cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Shutdown(context.Background()); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return srv
}

func jetStream(t *testing.T, nc *nats.Conn) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func TestStartAndShutdown(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	srv, err := embedded.Start(ctx, embedded.Config{StoreDir: t.TempDir(), Port: embedded.RandomPort})
	if err != nil {
		t.Fatal(err)
	}
	if srv.Port() <= 0 {
		t.Fatalf("Port() = %d, want the port it listens on", srv.Port())
	}
	if want := "nats://127.0.0.1:" + strconv.Itoa(srv.Port()); srv.ClientURL() != want {
		t.Fatalf("ClientURL() = %q, want %q", srv.ClientURL(), want)
	}

	// JetStream answers over both the in-process and the TCP connection.
	inProc, err := srv.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer inProc.Close()
	tcp, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	for name, nc := range map[string]*nats.Conn{"in-process": inProc, "tcp": tcp} {
		if _, err := jetStream(t, nc).AccountInfo(ctx); err != nil {
			t.Fatalf("%s: AccountInfo: %v", name, err)
		}
	}

	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
	if _, err := srv.Connect(); !errors.Is(err, embedded.ErrShutdown) {
		t.Fatalf("Connect after Shutdown = %v, want ErrShutdown", err)
	}
	if _, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(srv.Port()))); err == nil {
		t.Fatal("the port still accepts connections after Shutdown")
	}
}

func TestStartRejectsNonLoopbackHost(t *testing.T) {
	t.Parallel()
	for _, host := range []string{"0.0.0.0", "::", "192.168.1.10", "nats.example.com"} {
		_, err := embedded.Start(testContext(t), embedded.Config{StoreDir: t.TempDir(), Host: host, Port: embedded.RandomPort})
		if !errors.Is(err, bus.ErrInvalidConfig) {
			t.Errorf("Start(host %q) = %v, want bus.ErrInvalidConfig", host, err)
		}
	}
}

func TestStartPortInUse(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port

	_, err = embedded.Start(testContext(t), embedded.Config{StoreDir: t.TempDir(), Port: port})
	if !errors.Is(err, embedded.ErrPortInUse) {
		t.Fatalf("Start on a taken port = %v, want ErrPortInUse", err)
	}
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("Start on a taken port = %v, want the listen error in the chain", err)
	}
}

func TestStartTwiceOnOnePort(t *testing.T) {
	t.Parallel()
	first := start(t, embedded.Config{StoreDir: t.TempDir(), Port: embedded.RandomPort})
	_, err := embedded.Start(testContext(t), embedded.Config{StoreDir: t.TempDir(), Port: first.Port()})
	if !errors.Is(err, embedded.ErrPortInUse) {
		t.Fatalf("second server on port %d: %v, want ErrPortInUse", first.Port(), err)
	}
}

func TestStartCanceledContext(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := embedded.Start(ctx, embedded.Config{StoreDir: t.TempDir(), Port: embedded.RandomPort})
	if !errors.Is(err, embedded.ErrStart) || !errors.Is(err, context.Canceled) {
		t.Fatalf("Start with a canceled context = %v, want ErrStart and context.Canceled", err)
	}
}

func TestRestartKeepsMessages(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	dir := t.TempDir()
	cfg := embedded.Config{StoreDir: dir, Port: restartablePort(t), SyncAlways: true}

	srv, err := embedded.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := srv.Connect()
	if err != nil {
		t.Fatal(err)
	}
	js := jetStream(t, nc)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "KEEP", Subjects: []string{"keep.>"}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	payloads := []string{"one", "two", "three"}
	for _, p := range payloads {
		if _, err := js.Publish(ctx, "keep."+p, []byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	nc.Close()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	// Same directory and port: the stream and its messages come back.
	cfg.Port = srv.Port()
	again := start(t, cfg)
	if again.Port() != srv.Port() {
		t.Fatalf("restarted on port %d, want %d", again.Port(), srv.Port())
	}
	nc2, err := nats.Connect(again.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc2.Close()
	js2 := jetStream(t, nc2)
	stream, err := js2.Stream(ctx, "KEEP")
	if err != nil {
		t.Fatalf("stream lost across restart: %v", err)
	}
	if n := stream.CachedInfo().State.Msgs; n != uint64(len(payloads)) {
		t.Fatalf("stream holds %d messages after restart, want %d", n, len(payloads))
	}
	for i, p := range payloads {
		msg, err := stream.GetMsg(ctx, uint64(i+1))
		if err != nil {
			t.Fatal(err)
		}
		if string(msg.Data) != p || msg.Subject != "keep."+p {
			t.Fatalf("message %d = %q on %q, want %q on %q", i+1, msg.Data, msg.Subject, p, "keep."+p)
		}
	}
}

func TestMemoryOnly(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	storeDir := filepath.Join(t.TempDir(), "never-created")
	srv := start(t, embedded.Config{StoreDir: storeDir, Port: embedded.RandomPort, MemoryOnly: true})
	nc, err := srv.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js := jetStream(t, nc)

	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "DISK", Subjects: []string{"disk.>"}, Storage: jetstream.FileStorage}); err == nil {
		t.Fatal("a memory-only server created a file stream")
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "MEM", Subjects: []string{"mem.>"}, Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatalf("memory stream: %v", err)
	}
	if _, err := js.Publish(ctx, "mem.a", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(storeDir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("memory-only server touched StoreDir: %v", err)
	}
}

// recordingHandler keeps every record it is given.
type recordingHandler struct {
	mu      sync.Mutex
	records []slog.Record
}

func (h *recordingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordingHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, r)
	return nil
}
func (h *recordingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordingHandler) WithGroup(string) slog.Handler      { return h }

func (h *recordingHandler) levels() map[slog.Level]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := map[slog.Level]int{}
	for _, r := range h.records {
		n[r.Level]++
	}
	return n
}

func TestLoggerReceivesServerLogs(t *testing.T) {
	t.Parallel()
	h := &recordingHandler{}
	start(t, embedded.Config{StoreDir: t.TempDir(), Port: embedded.RandomPort, Logger: slog.New(h)})
	levels := h.levels()
	if levels[slog.LevelDebug] == 0 || levels[slog.LevelInfo] != 0 {
		t.Fatalf("records by level = %v, want the server's notices at debug", levels)
	}
}

// storeMsgs returns how many messages stream holds on the server at url.
func storeMsgs(t *testing.T, ctx context.Context, nc *nats.Conn, stream string) uint64 {
	t.Helper()
	s, err := jetStream(t, nc).Stream(ctx, stream)
	if err != nil {
		t.Fatalf("stream %s: %v", stream, err)
	}
	return s.CachedInfo().State.Msgs
}

func TestSecondServerOnOneStoreFails(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	dir := t.TempDir()
	cfg := embedded.Config{StoreDir: dir, Port: embedded.RandomPort, SyncAlways: true}
	first, err := embedded.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := first.Connect()
	if err != nil {
		t.Fatal(err)
	}
	js := jetStream(t, nc)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "KEEP", Subjects: []string{"keep.>"}}); err != nil {
		t.Fatal(err)
	}
	const before, after = 5, 5
	for i := range before {
		if _, err := js.Publish(ctx, "keep.a", []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}

	_, err = embedded.Start(ctx, cfg)
	if !errors.Is(err, embedded.ErrStoreInUse) {
		t.Fatalf("second server on the store = %v, want ErrStoreInUse", err)
	}
	var inUse *embedded.StoreInUseError
	if !errors.As(err, &inUse) {
		t.Fatalf("error %v is not a *StoreInUseError", err)
	}
	if inUse.PID != os.Getpid() || inUse.URL != first.ClientURL() || inUse.Dir != dir {
		t.Fatalf("StoreInUseError = %+v, want PID %d, URL %s, Dir %s", inUse, os.Getpid(), first.ClientURL(), dir)
	}
	for _, want := range []string{dir, strconv.Itoa(os.Getpid()), "use another store directory"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}

	// The first server is untouched: it keeps taking messages and keeps
	// every one of them across a restart.
	for i := range after {
		if _, err := js.Publish(ctx, "keep.b", []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	nc.Close()
	if err := first.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	again := start(t, cfg)
	nc2, err := again.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer nc2.Close()
	if n := storeMsgs(t, ctx, nc2, "KEEP"); n != before+after {
		t.Fatalf("the store holds %d messages after a restart, want %d", n, before+after)
	}
}

func TestStoreLockedByAnotherProcess(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	dir := t.TempDir()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	helper := exec.Command(self)
	helper.Env = append(os.Environ(), holdStoreEnv+"="+dir)
	helper.Stderr = os.Stderr
	stdin, err := helper.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := helper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = stdin.Close()
		_ = helper.Process.Kill()
		_ = helper.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("the helper process did not start its server: %v", err)
	}
	url := strings.TrimSpace(line)

	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js := jetStream(t, nc)
	const total = 10
	for i := range total {
		if _, err := js.Publish(ctx, "held.a", []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}

	_, err = embedded.Start(ctx, embedded.Config{StoreDir: dir, Port: embedded.RandomPort})
	var inUse *embedded.StoreInUseError
	if !errors.As(err, &inUse) || !errors.Is(err, embedded.ErrStoreInUse) {
		t.Fatalf("server on a store another process runs on = %v, want a StoreInUseError", err)
	}
	if inUse.PID != helper.Process.Pid || inUse.URL != url {
		t.Fatalf("StoreInUseError = %+v, want PID %d and URL %s", inUse, helper.Process.Pid, url)
	}
	if n := storeMsgs(t, ctx, nc, "HELD"); n != total {
		t.Fatalf("the first server holds %d messages after the refused start, want %d", n, total)
	}

	// A killed process leaves no stale lock: the store opens at once, with
	// every message.
	nc.Close()
	if err := helper.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = helper.Wait()
	srv := start(t, embedded.Config{StoreDir: dir, Port: embedded.RandomPort})
	nc2, err := srv.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer nc2.Close()
	if n := storeMsgs(t, ctx, nc2, "HELD"); n != total {
		t.Fatalf("the store holds %d messages after the holder was killed, want %d", n, total)
	}
}

func TestMemoryOnlyServersShareNoLock(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	start(t, embedded.Config{StoreDir: dir, Port: embedded.RandomPort, MemoryOnly: true})
	start(t, embedded.Config{StoreDir: dir, Port: embedded.RandomPort, MemoryOnly: true})
	if _, err := os.Stat(filepath.Join(dir, embedded.LockFileName)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a memory-only server locked its store directory: %v", err)
	}
}
