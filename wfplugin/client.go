package wfplugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"github.com/hashicorp/go-plugin/runner"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/emptypb"

	pluginv1 "github.com/wfeventbus/eventbus/gen/workflow/plugin/v1"
)

// DefaultStderrLines is how many of the plugin's last stderr lines a Client
// keeps for crash reports unless WithStderrLines says otherwise.
const DefaultStderrLines = 50

// defaultStartTimeout is the engine's wait for the handshake line when ctx
// has no deadline.
const defaultStartTimeout = time.Minute

// exitGrace bounds how long a failed call waits to learn whether the
// plugin process died, so the error can say so.
const exitGrace = 2 * time.Second

// LaunchOption configures Launch and LaunchInProcess.
type LaunchOption func(*launchConfig) error

type launchConfig struct {
	logger      *slog.Logger
	workflow    WorkflowHandler
	logs        LogHandler
	env         []string
	stderrLines int
	name        string
	serveOpts   []ServeOption
	maxMessage  int
}

// WithLogger sets the host's logger; the plugin's stderr lines are logged
// to it with the attribute plugin=<name>. By default they are discarded.
func WithLogger(l *slog.Logger) LaunchOption {
	return func(c *launchConfig) error {
		if l == nil {
			return fmt.Errorf("%w: WithLogger: nil logger", ErrInvalidOption)
		}
		c.logger = l
		return nil
	}
}

// WithWorkflowHandler sets what runs when a plugin trigger fires. Without
// one, TriggerWorkflow is answered "no handler found for workflow type: X",
// as the engine answers for an unknown workflow.
func WithWorkflowHandler(h WorkflowHandler) LaunchOption {
	return func(c *launchConfig) error {
		if h == nil {
			return fmt.Errorf("%w: WithWorkflowHandler: nil handler", ErrInvalidOption)
		}
		c.workflow = h
		return nil
	}
}

// WithLogHandler sets what receives the plugin's Log callbacks. By default
// they are written to the host's logger.
func WithLogHandler(h LogHandler) LaunchOption {
	return func(c *launchConfig) error {
		if h == nil {
			return fmt.Errorf("%w: WithLogHandler: nil handler", ErrInvalidOption)
		}
		c.logs = h
		return nil
	}
}

// WithEnv adds KEY=VALUE entries to the plugin's environment, which is the
// host's environment plus go-plugin's handshake variables. The handshake
// variables themselves cannot be set.
func WithEnv(kv ...string) LaunchOption {
	return func(c *launchConfig) error {
		for _, e := range kv {
			k, _, ok := strings.Cut(e, "=")
			if !ok || k == "" {
				return fmt.Errorf("%w: WithEnv: %q is not KEY=VALUE", ErrInvalidOption, e)
			}
			if k == MagicCookieKey || strings.HasPrefix(k, "PLUGIN_") {
				return fmt.Errorf("%w: WithEnv: %s belongs to the handshake", ErrInvalidOption, k)
			}
		}
		c.env = append(c.env, kv...)
		return nil
	}
}

// WithStderrLines sets how many of the plugin's last stderr lines are kept
// for crash reports (default DefaultStderrLines).
func WithStderrLines(n int) LaunchOption {
	return func(c *launchConfig) error {
		if n < 1 {
			return fmt.Errorf("%w: WithStderrLines: %d is less than 1", ErrInvalidOption, n)
		}
		c.stderrLines = n
		return nil
	}
}

// WithName sets the plugin's name in logs and errors (default: the
// executable's base name, or "in-process").
func WithName(name string) LaunchOption {
	return func(c *launchConfig) error {
		if name == "" {
			return fmt.Errorf("%w: WithName: empty name", ErrInvalidOption)
		}
		c.name = name
		return nil
	}
}

// WithServeOptions passes options to the serving side of LaunchInProcess;
// Launch ignores them.
func WithServeOptions(opts ...ServeOption) LaunchOption {
	return func(c *launchConfig) error {
		c.serveOpts = append(c.serveOpts, opts...)
		return nil
	}
}

// WithMaxMessageSize sets the largest message, in bytes, the host's side
// of the connection receives: the plugin's answers (a step's output) and
// the requests of its callbacks (a trigger's data). Without it both keep
// gRPC's default of 4 MiB, which is also the engine's; the plugin's own
// limit on what it receives is set where it is served (WithMaxRecvMsgSize).
// LaunchDirect ignores it: nothing is sent.
func WithMaxMessageSize(n int) LaunchOption {
	return func(c *launchConfig) error {
		if n <= 0 {
			return fmt.Errorf("%w: WithMaxMessageSize: %d is not positive", ErrInvalidOption, n)
		}
		c.maxMessage = n
		return nil
	}
}

// dialOptions are the options of the host's connection to the plugin.
func (c *launchConfig) dialOptions() []grpc.DialOption {
	opts := dialTuning()
	if c.maxMessage > 0 {
		opts = append(opts, grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(c.maxMessage), grpc.MaxCallSendMsgSize(c.maxMessage)))
	}
	return opts
}

func newLaunchConfig(opts []LaunchOption) (*launchConfig, error) {
	c := &launchConfig{stderrLines: DefaultStderrLines}
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, err
		}
	}
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// Client drives one plugin process over the protocol, as the engine does.
// It is safe for concurrent use. Always Close it: Close ends the process.
type Client struct {
	name string
	log  *slog.Logger
	pc   *plugin.Client
	rpc  pluginv1.PluginServiceClient
	host *hostPlugin
	// brokerID is the go-plugin broker id of the callback service.
	brokerID uint32

	proc    *process      // nil when in-process
	inproc  *inProcess    // nil when a separate process
	local   *localConn    // set for LaunchDirect
	tail    *stderrTail   // the plugin's last stderr lines
	writers []*lineWriter // flushed when the process ends
	exited  chan struct{} // closed once the plugin has ended and exitErr is set
	exitErr *ExitError    // set before exited closes when the plugin died on its own
	closing atomic.Bool   // Close was called
	closeMu sync.Mutex    // serialises Close
	closed  chan struct{} // closed when Close has finished
	closeEr error

	manifest     Manifest
	moduleTypes  []string
	stepTypes    []string
	triggerTypes []string
	registry     *Registry
	fragment     []byte
	fragmentDir  string

	mu       sync.RWMutex
	steps    map[string]stepInfo
	triggers map[string]triggerInfo
}

// Launch starts the plugin executable at path and loads it exactly as the
// engine does: it runs the binary in its own directory with the host's
// environment plus go-plugin's, performs the handshake, dispenses "plugin",
// serves the callback service on a go-plugin broker id, then calls
// GetManifest, GetTriggerTypes, ConfigureCallback (only when there are
// trigger types), GetContractRegistry, GetConfigFragment and the type
// lists.
//
// Where the engine would quietly degrade, Launch fails: an invalid
// manifest (ErrInvalidManifest), an unresolvable contract registry
// (ErrInvalidContracts), a failed ConfigureCallback, or type lists that
// change between calls (ErrUnstableTypes). A plugin.json beside the binary
// is validated like the engine validates it, and stands in for a plugin
// that answers no manifest. ctx bounds the launch; the process outlives it
// until Close.
//
// On Linux the plugin runs in its own process group, which Close kills as a
// whole, and the kernel kills it if the host dies first. That signal
// follows the OS thread that started the plugin, so do not call Launch from
// a goroutine that locks its OS thread and then exits.
func Launch(ctx context.Context, path string, opts ...LaunchOption) (*Client, error) {
	cfg, err := newLaunchConfig(opts)
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrLaunch, err)
	}
	if st, err := os.Stat(abs); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrLaunch, err)
	} else if st.IsDir() {
		return nil, fmt.Errorf("%w: %s is a directory", ErrLaunch, abs)
	}
	dir := filepath.Dir(abs)
	fileManifest, hasFile, err := readManifestFile(filepath.Join(dir, "plugin.json"))
	if err != nil {
		return nil, err
	}
	if cfg.name == "" {
		cfg.name = filepath.Base(abs)
	}

	c := newClient(cfg)
	var procPtr atomic.Pointer[process]
	c.pc = plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig: handshake(),
		Plugins:         plugin.PluginSet{PluginName: c.host},
		RunnerFunc: func(_ hclog.Logger, base *exec.Cmd, _ string) (runner.Runner, error) {
			cmd := exec.Command(abs)
			cmd.Dir = dir
			cmd.Env = append(slices.Clone(base.Env), cfg.env...)
			cmd.Stdin = base.Stdin
			p, err := newProcess(cmd)
			if err != nil {
				return nil, err
			}
			procPtr.Store(p)
			// Checked after the store: a cancellation from now on kills p.
			if err := ctx.Err(); err != nil {
				p.markDone()
				return nil, err
			}
			return p, nil
		},
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		GRPCDialOptions:  cfg.dialOptions(),
		Logger:           quietHCLog(),
		StartTimeout:     startTimeout(ctx),
		Stderr:           c.writers[0],
		SyncStdout:       io.Discard,
		SyncStderr:       c.writers[1],
	})

	// A cancelled ctx ends the launch by ending the process, which also
	// ends go-plugin's wait for the handshake.
	stopKill := context.AfterFunc(ctx, func() {
		if p := procPtr.Load(); p != nil {
			c.closing.Store(true) // ended by the host, not a crash
			_ = p.Kill(context.Background())
		}
	})
	defer stopKill()

	rpcClient, err := c.pc.Client()
	c.proc = procPtr.Load()
	if c.proc != nil {
		go c.watch(c.proc.done)
	}
	if err != nil {
		return nil, c.abort(ctx, err)
	}
	if err := c.dispense(rpcClient); err != nil {
		return nil, c.abort(ctx, err)
	}
	if err := c.load(ctx, fileManifest, hasFile); err != nil {
		return nil, c.abort(ctx, err)
	}
	if !stopKill() {
		// ctx ended as the load finished; the process is being killed.
		return nil, c.abort(ctx, ctx.Err())
	}
	return c, nil
}

func newClient(cfg *launchConfig) *Client {
	log := cfg.logger.With("plugin", cfg.name)
	c := &Client{
		name:     cfg.name,
		log:      log,
		tail:     newStderrTail(log, cfg.stderrLines),
		exited:   make(chan struct{}),
		closed:   make(chan struct{}),
		steps:    make(map[string]stepInfo),
		triggers: make(map[string]triggerInfo),
	}
	c.writers = []*lineWriter{c.tail.writer("stderr"), c.tail.writer("stdio")}
	c.host = &hostPlugin{callbacks: &callbackServer{log: log, workflow: cfg.workflow, logs: cfg.logs}, maxRecv: cfg.maxMessage}
	return c
}

func quietHCLog() hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Output: io.Discard, Level: hclog.Off})
}

func startTimeout(ctx context.Context) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		if d := time.Until(dl); d > 0 {
			return d
		}
		return time.Millisecond
	}
	return defaultStartTimeout
}

// watch records how the plugin ended once done closes.
func (c *Client) watch(done <-chan struct{}) {
	<-done
	for _, w := range c.writers {
		w.flush()
	}
	if !c.closing.Load() && (c.proc == nil || c.proc.ran()) {
		e := &ExitError{Plugin: c.name, Stderr: c.tail.snapshot()}
		if c.proc != nil {
			e.Status = c.proc.exitStatus()
		}
		c.exitErr = e
		c.log.Error("plugin exited", "status", e.Status)
	}
	close(c.exited)
}

func (c *Client) dispense(rpcClient plugin.ClientProtocol) error {
	raw, err := rpcClient.Dispense(PluginName)
	if err != nil {
		return fmt.Errorf("%w: dispense %q: %w", ErrLaunch, PluginName, err)
	}
	d, ok := raw.(*dispensed)
	if !ok {
		return fmt.Errorf("%w: dispense %q: unexpected %T", ErrLaunch, PluginName, raw)
	}
	c.rpc, c.brokerID = d.rpc, d.brokerID
	return nil
}

// abort ends a plugin that failed to load and explains why, with its last
// stderr lines when it died on its own.
func (c *Client) abort(ctx context.Context, cause error) error {
	exitErr := c.exitedOnItsOwn(cause)
	_ = c.Close(context.WithoutCancel(ctx))
	if exitErr == nil && c.proc != nil && c.proc.exitedByItself() {
		// It died before the failure was noticed, for example while
		// go-plugin read its empty stdout.
		exitErr = &ExitError{Plugin: c.name, Status: c.proc.exitStatus(), Stderr: c.tail.snapshot()}
	}
	if err := ctxEnded(ctx); err != nil && !errors.Is(cause, err) {
		cause = fmt.Errorf("%w: %w", cause, err)
	}
	if !errors.Is(cause, ErrInvalidManifest) && !errors.Is(cause, ErrInvalidContracts) &&
		!errors.Is(cause, ErrUnstableTypes) && !errors.Is(cause, ErrLaunch) && !errors.Is(cause, ErrRemote) {
		cause = fmt.Errorf("%w: %w", ErrLaunch, cause)
	}
	if exitErr != nil {
		return fmt.Errorf("%w: %w", cause, exitErr)
	}
	return cause
}

// ctxEnded is ctx's error, or context.DeadlineExceeded once its deadline
// has passed: go-plugin's start timeout, set to the same deadline, may fire
// before ctx's own timer has marked it done.
func ctxEnded(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
		return context.DeadlineExceeded
	}
	return nil
}

// exitedOnItsOwn returns the plugin's ExitError if it has died, waiting a
// moment when err looks like a lost connection.
func (c *Client) exitedOnItsOwn(err error) *ExitError {
	if c.proc == nil && c.inproc == nil {
		return nil
	}
	wait := time.Duration(0)
	if st, ok := status.FromError(err); ok && (st.Code() == codes.Unavailable || st.Code() == codes.Canceled) {
		wait = exitGrace
	}
	if wait == 0 {
		select {
		case <-c.exited:
			return c.exitErr
		default:
			return nil
		}
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-c.exited:
		return c.exitErr
	case <-t.C:
		return nil
	}
}

// load runs the engine's load sequence.
func (c *Client) load(ctx context.Context, fileManifest Manifest, hasFile bool) error {
	empty := &emptypb.Empty{}

	m, err := c.rpc.GetManifest(ctx, empty)
	switch {
	case status.Code(err) == codes.Unimplemented || (err == nil && m.GetVersion() == ""):
		if !hasFile {
			return fmt.Errorf("%w: the plugin answers no manifest and has no plugin.json", ErrInvalidManifest)
		}
		c.manifest = fileManifest
	case err != nil:
		return fmt.Errorf("%w: GetManifest: %w", ErrLaunch, err)
	default:
		c.manifest = manifestFromProto(m)
		if err := ValidateManifest(c.manifest); err != nil {
			return err
		}
	}

	triggers, err := c.typeList(ctx, "GetTriggerTypes", c.rpc.GetTriggerTypes)
	if err != nil {
		return err
	}
	if len(triggers) > 0 {
		resp, err := c.rpc.ConfigureCallback(ctx, &pluginv1.ConfigureCallbackRequest{BrokerId: c.brokerID})
		if err != nil {
			return fmt.Errorf("%w: ConfigureCallback: %w", ErrLaunch, err)
		}
		if resp.GetError() != "" {
			return &RemoteError{Op: "ConfigureCallback", Message: resp.GetError(), Detail: resp.GetError()}
		}
	}

	cr, err := c.rpc.GetContractRegistry(ctx, empty)
	if status.Code(err) == codes.Unimplemented {
		cr, err = nil, nil
	}
	if err != nil {
		return fmt.Errorf("%w: GetContractRegistry: %w", ErrInvalidContracts, err)
	}
	if c.registry, err = NewRegistry(cr); err != nil {
		return err
	}

	// The engine ignores every failure of GetConfigFragment.
	if frag, err := c.rpc.GetConfigFragment(ctx, empty); err == nil {
		c.fragment, c.fragmentDir = frag.GetYamlConfig(), frag.GetPluginDir()
	}

	// Registration asks for the lists three more times, with the schemas
	// between the second and third round; every answer must agree.
	var rounds [3][3][]string
	for i := range rounds {
		if i == 2 {
			_, _ = c.rpc.GetModuleSchemas(ctx, empty)
		}
		for j, l := range []struct {
			op   string
			call typeListCall
		}{
			{"GetModuleTypes", c.rpc.GetModuleTypes},
			{"GetStepTypes", c.rpc.GetStepTypes},
			{"GetTriggerTypes", c.rpc.GetTriggerTypes},
		} {
			if rounds[i][j], err = c.typeList(ctx, l.op, l.call); err != nil {
				return err
			}
		}
	}
	for i := range rounds {
		if !slices.Equal(rounds[i][0], rounds[0][0]) || !slices.Equal(rounds[i][1], rounds[0][1]) ||
			!slices.Equal(rounds[i][2], triggers) {
			return fmt.Errorf("%w: the answers changed during one load", ErrUnstableTypes)
		}
	}
	c.moduleTypes, c.stepTypes, c.triggerTypes = rounds[0][0], rounds[0][1], triggers
	return nil
}

type typeListCall = func(context.Context, *emptypb.Empty, ...grpc.CallOption) (*pluginv1.TypeList, error)

// typeList calls a type-list RPC; Unimplemented means no types.
func (c *Client) typeList(ctx context.Context, op string, call typeListCall) ([]string, error) {
	tl, err := call(ctx, &emptypb.Empty{})
	if status.Code(err) == codes.Unimplemented {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrLaunch, op, err)
	}
	return tl.GetTypes(), nil
}

// Close shuts the plugin down as the engine does: it asks go-plugin's
// controller to shut the server down, waits briefly for the process to
// exit, and kills it otherwise. When ctx ends first the process is killed
// at once. Close returns once the process is gone; it is idempotent.
func (c *Client) Close(ctx context.Context) error {
	c.closeMu.Lock()
	defer c.closeMu.Unlock()
	select {
	case <-c.closed:
		return c.closeEr
	default:
	}
	c.closing.Store(true)
	defer close(c.closed)

	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		switch {
		case c.local != nil:
			c.local.close()
			close(c.exited)
		case c.inproc != nil:
			c.inproc.stop(c.pc)
		default:
			c.pc.Kill()
		}
	}()
	select {
	case <-stopped:
	case <-ctx.Done():
		if c.proc != nil {
			_ = c.proc.Kill(context.Background())
		}
		if c.inproc != nil {
			c.inproc.cancel()
		}
		<-stopped
		c.closeEr = fmt.Errorf("wfplugin: close %s: %w", c.name, ctx.Err())
	}
	if c.proc != nil || c.inproc != nil {
		<-c.exited
	}
	if err := c.host.wait(ctx); err != nil && c.closeEr == nil {
		c.closeEr = fmt.Errorf("wfplugin: close %s: callback server: %w", c.name, err)
	}
	return c.closeEr
}

// Done is closed once the plugin has ended, whether it exited on its own or
// was closed.
func (c *Client) Done() <-chan struct{} { return c.exited }

// Exited reports whether the plugin has ended.
func (c *Client) Exited() bool {
	select {
	case <-c.exited:
		return true
	default:
		return false
	}
}

// Err returns an *ExitError (matching ErrPluginExited) with the plugin's
// last stderr lines if the plugin exited on its own, and nil while it runs
// or when it was closed.
func (c *Client) Err() error {
	select {
	case <-c.exited:
		if c.exitErr != nil {
			return c.exitErr
		}
	default:
	}
	return nil
}

// Pid is the plugin's process id, or 0 for an in-process plugin.
func (c *Client) Pid() int {
	if c.proc == nil {
		return 0
	}
	return c.proc.processID()
}

// Name is the plugin's name in logs and errors.
func (c *Client) Name() string { return c.name }

// StderrTail returns the last lines the plugin wrote to stderr, oldest
// first.
func (c *Client) StderrTail() []string { return c.tail.snapshot() }

// Manifest is the manifest the plugin answered (or its plugin.json).
func (c *Client) Manifest() Manifest { return c.manifest }

// ModuleTypes lists the plugin's module types.
func (c *Client) ModuleTypes() []string { return slices.Clone(c.moduleTypes) }

// StepTypes lists the plugin's step types.
func (c *Client) StepTypes() []string { return slices.Clone(c.stepTypes) }

// TriggerTypes lists the plugin's trigger types.
func (c *Client) TriggerTypes() []string { return slices.Clone(c.triggerTypes) }

// Contracts is the plugin's parsed contract registry.
func (c *Client) Contracts() *Registry { return c.registry }

// Contract returns the contract of a module, step or trigger type.
func (c *Client) Contract(kind pluginv1.ContractKind, typ string) (*pluginv1.ContractDescriptor, bool) {
	return c.registry.Contract(kind, typ)
}

// EncodeConfig encodes a config map as the named message with the engine's
// rules (see Registry.EncodeConfig).
func (c *Client) EncodeConfig(msgName string, m map[string]any) (*anypb.Any, error) {
	return c.registry.EncodeConfig(msgName, m)
}

// ConfigFragment is the YAML fragment the plugin contributes to the app
// config, and the directory its relative paths are based on.
func (c *Client) ConfigFragment() (yaml []byte, pluginDir string) {
	return slices.Clone(c.fragment), c.fragmentDir
}
