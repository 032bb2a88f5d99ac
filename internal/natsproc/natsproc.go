// Package natsproc runs nats-server as real processes for tests: the
// server this module depends on, built from the module cache, so that a
// test can kill one with SIGKILL, as a crash or a lost machine would, and
// start it again on its store and ports.
//
// Build compiles the binary; Start runs one server on a configuration
// file; StartCluster runs a JetStream cluster of servers on loopback, each
// with its own store directory, client, route and monitoring ports, and
// waits until it is ready. Every process is stopped when the test ends
// (and killed with the test binary if that dies first), and its output is
// logged when the test failed.
package natsproc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Bounds of waits that only a broken run reaches; no result depends on
// them.
const (
	// buildGuard bounds compiling nats-server.
	buildGuard = 5 * time.Minute
	// stopGuard bounds a graceful stop before the process is killed.
	stopGuard = 30 * time.Second
	// readyGuard bounds the wait for a cluster to be ready.
	readyGuard = 2 * time.Minute
	// readyPoll is the pause between two looks at a cluster's health.
	readyPoll = 50 * time.Millisecond
)

// Module is the Go package of the server.
const Module = "github.com/nats-io/nats-server/v2"

// Build compiles nats-server, at the version the module requires, into a
// temporary directory of t and returns its path. The go command's build
// cache makes a build after the first one a matter of linking.
func Build(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), buildGuard)
	defer cancel()
	bin := filepath.Join(t.TempDir(), "nats-server")
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, Module).CombinedOutput()
	if err != nil {
		t.Fatalf("build nats-server: %v\n%s", err, out)
	}
	return bin
}

// Process is one running nats-server. Its methods are safe for concurrent
// use.
type Process struct {
	name string
	cmd  *exec.Cmd
	out  *syncBuffer

	exited  chan struct{}
	waitErr error // set before exited closes
}

// syncBuffer is a bytes.Buffer that a process writes to while tests read
// it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Start runs the nats-server binary bin with args, env added to the test's
// environment, and returns once the process runs. name labels its output.
// The process is stopped when the test ends, if it still runs, and its
// output logged if the test failed.
func Start(t testing.TB, bin, name string, env []string, args ...string) *Process {
	t.Helper()
	p, err := start(bin, name, env, &syncBuffer{}, args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("output of %s:\n%s", name, p.Output())
		}
	})
	return p
}

func start(bin, name string, env []string, out *syncBuffer, args ...string) (*Process, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = out, out
	// A test binary that dies takes its servers with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start nats-server %s: %w", name, err)
	}
	p := &Process{name: name, cmd: cmd, out: out, exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// Name is the name the process was started with.
func (p *Process) Name() string { return p.name }

// Pid is the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Output returns what the process has written so far.
func (p *Process) Output() string { return p.out.String() }

// Exited is closed when the process has exited.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Kill ends the process with SIGKILL, which it cannot handle: nothing it
// buffered is written, no leader is handed over, no client told. It
// returns once the process is gone.
func (p *Process) Kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// stop asks the process to shut down and waits for it, killing it after
// stopGuard.
func (p *Process) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(stopGuard):
		p.Kill()
	}
}

// ClusterConfig configures StartCluster.
type ClusterConfig struct {
	// Bin is the nats-server binary (Build).
	Bin string
	// Size is the number of servers (default 3).
	Size int
	// Name is the cluster's name and the prefix of its servers' names,
	// <Name>-0, <Name>-1, ... (default "nats").
	Name string
	// SyncAlways makes the servers flush every write to disk before they
	// acknowledge it (sync_interval: always).
	SyncAlways bool
}

// Cluster is a JetStream cluster of nats-server processes on loopback.
// Each server keeps its store directory and ports across Kill and Start.
// Its methods are safe for concurrent use.
type Cluster struct {
	t     testing.TB
	cfg   ClusterConfig
	nodes []*node

	mu sync.Mutex
}

// node is one server of a cluster.
type node struct {
	name                   string
	conf                   string
	client, route, monitor int
	out                    *syncBuffer // every run's output, in order
	proc                   *Process    // nil while down
}

// StartCluster starts cfg.Size servers routed to each other, with
// JetStream on a file store under a temporary directory of t, and waits
// until every server reports healthy (a JetStream meta leader elected and
// followed). The servers are stopped when the test ends, and their output
// logged if it failed. A server that exits at once, because another
// process took a port between the moment it was found free and the
// server's start, makes it start the cluster again on other ports.
func StartCluster(t testing.TB, cfg ClusterConfig) *Cluster {
	t.Helper()
	if cfg.Size == 0 {
		cfg.Size = 3
	}
	if cfg.Name == "" {
		cfg.Name = "nats"
	}
	for attempt := 1; ; attempt++ {
		c, err := startCluster(t, cfg)
		var gone *exitedError
		if err == nil {
			return c
		}
		if !errors.As(err, &gone) || attempt == startAttempts {
			t.Fatal(err)
		}
		c.stopAll()
	}
}

// startAttempts bounds how often StartCluster tries new ports.
const startAttempts = 3

// startCluster is one attempt of StartCluster.
func startCluster(t testing.TB, cfg ClusterConfig) (*Cluster, error) {
	c := &Cluster{t: t, cfg: cfg}
	taken := map[int]bool{}
	for i := range cfg.Size {
		n := &node{name: fmt.Sprintf("%s-%d", cfg.Name, i), out: &syncBuffer{}}
		n.client, n.route, n.monitor = restartablePort(t, taken), restartablePort(t, taken), restartablePort(t, taken)
		c.nodes = append(c.nodes, n)
	}
	dir := t.TempDir()
	for _, n := range c.nodes {
		n.conf = filepath.Join(dir, n.name+".conf")
		if err := os.WriteFile(n.conf, []byte(c.config(n, filepath.Join(dir, n.name))), 0o600); err != nil {
			return c, err
		}
	}
	t.Cleanup(func() {
		c.stopAll()
		if t.Failed() {
			for _, n := range c.nodes {
				t.Logf("output of %s:\n%s", n.name, n.out)
			}
		}
	})
	for _, n := range c.nodes {
		c.startNode(t, n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), readyGuard)
	defer cancel()
	return c, c.WaitReady(ctx)
}

// stopAll stops every running server, all at once: a server stopping
// alone waits for the others to take over what it leads.
func (c *Cluster) stopAll() {
	var wg sync.WaitGroup
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.nodes {
		if n.proc != nil {
			wg.Go(n.proc.stop)
		}
	}
	wg.Wait()
}

// config renders the configuration of n with its store under store.
func (c *Cluster) config(n *node, store string) string {
	routes := make([]string, len(c.nodes))
	for i, m := range c.nodes {
		routes[i] = fmt.Sprintf("nats-route://127.0.0.1:%d", m.route)
	}
	sync := ""
	if c.cfg.SyncAlways {
		sync = "\n  sync_interval: always"
	}
	return fmt.Sprintf(`server_name: %q
listen: "127.0.0.1:%d"
http: "127.0.0.1:%d"
jetstream {
  store_dir: %q%s
}
cluster {
  name: %q
  listen: "127.0.0.1:%d"
  routes: [%s]
}
`, n.name, n.client, n.monitor, store, sync, c.cfg.Name, n.route, strings.Join(routes, ", "))
}

func (c *Cluster) startNode(t testing.TB, n *node) {
	t.Helper()
	fmt.Fprintf(n.out, "--- %s starts\n", n.name)
	p, err := start(c.cfg.Bin, n.name, nil, n.out, "--config", n.conf)
	if err != nil {
		t.Fatal(err)
	}
	n.proc = p
}

// node returns the server called name; c.mu must be held.
func (c *Cluster) node(name string) (*node, error) {
	for _, n := range c.nodes {
		if n.name == name {
			return n, nil
		}
	}
	return nil, fmt.Errorf("no server %q in the cluster (%s)", name, strings.Join(c.Names(), ", "))
}

// Names returns the servers' names in order.
func (c *Cluster) Names() []string {
	names := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		names[i] = n.name
	}
	return names
}

// ClientURLs returns every server's client URL in order, running or not.
func (c *Cluster) ClientURLs() []string {
	urls := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		urls[i] = fmt.Sprintf("nats://127.0.0.1:%d", n.client)
	}
	return urls
}

// URLs returns the client URLs joined with commas.
func (c *Cluster) URLs() string { return strings.Join(c.ClientURLs(), ",") }

// Running returns the names of the servers that run, in order.
func (c *Cluster) Running() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var names []string
	for _, n := range c.nodes {
		if n.proc != nil {
			names = append(names, n.name)
		}
	}
	return names
}

// Kill ends the server called name with SIGKILL and waits until it is gone.
func (c *Cluster) Kill(name string) {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.node(name)
	if err != nil {
		c.t.Fatal(err)
	}
	if n.proc == nil {
		c.t.Fatalf("kill %s: it is not running", name)
	}
	n.proc.Kill()
	fmt.Fprintf(n.out, "--- %s killed\n", n.name)
	n.proc = nil
}

// Start starts the server called name again on its store and ports. It
// returns once the process runs; WaitReady waits until it has caught up.
func (c *Cluster) Start(name string) {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.node(name)
	if err != nil {
		c.t.Fatal(err)
	}
	if n.proc != nil {
		c.t.Fatalf("start %s: it is running", name)
	}
	c.startNode(c.t, n)
}

// WaitReady waits until every running server answers its health check
// with success: JetStream has a meta leader the server follows, and the
// streams and consumers it holds replicas of are caught up. It returns
// what the last unhealthy server said when ctx ends first.
func (c *Cluster) WaitReady(ctx context.Context) error {
	for {
		err := c.healthy(ctx)
		var gone *exitedError
		if err == nil || errors.As(err, &gone) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster not ready: %w", err)
		case <-time.After(readyPoll):
		}
	}
}

// healthy asks every running server's /healthz.
func (c *Cluster) healthy(ctx context.Context) error {
	c.mu.Lock()
	var running []*node
	for _, n := range c.nodes {
		if n.proc != nil {
			running = append(running, n)
		}
	}
	c.mu.Unlock()
	for _, n := range running {
		select {
		case <-n.proc.exited:
			return &exitedError{name: n.name, err: n.proc.waitErr, output: n.out.String()}
		default:
		}
		url := fmt.Sprintf("http://127.0.0.1:%d/healthz", n.monitor)
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return fmt.Errorf("%s: %w", n.name, err)
		}
		var body bytes.Buffer
		_, _ = body.ReadFrom(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s %s", n.name, resp.Status, strings.TrimSpace(body.String()))
		}
	}
	return nil
}

// exitedError says a server that should run has exited, for example
// because another process took one of its ports.
type exitedError struct {
	name   string
	err    error
	output string
}

func (e *exitedError) Error() string {
	out := e.output
	if len(out) > 2000 {
		out = "..." + out[len(out)-2000:]
	}
	return fmt.Sprintf("%s exited (%v); its last output:\n%s", e.name, e.err, out)
}

// MonitorURL returns the monitoring endpoint of the server called name, for
// example to read its /jsz.
func (c *Cluster) MonitorURL(name string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.node(name)
	if err != nil {
		c.t.Fatal(err)
	}
	return fmt.Sprintf("http://127.0.0.1:%d", n.monitor)
}

// Output returns what the server called name has written in all its runs.
func (c *Cluster) Output(name string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.node(name)
	if err != nil {
		c.t.Fatal(err)
	}
	return n.out.String()
}

// restartablePort returns a loopback port that was free a moment ago and
// is not in taken, chosen below the range the kernel hands out for port 0:
// while a killed server is down, its port cannot be handed to a process
// another test starts on port 0.
func restartablePort(t testing.TB, taken map[int]bool) int {
	t.Helper()
	for range 1000 {
		port := 20000 + rand.IntN(12000)
		if taken[port] {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		l.Close()
		taken[port] = true
		return port
	}
	t.Fatal(errors.New("no free port between 20000 and 32000"))
	return 0
}
