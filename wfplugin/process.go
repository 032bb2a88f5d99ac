package wfplugin

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"strconv"
	"sync"

	"github.com/hashicorp/go-plugin/runner"
)

// process runs the plugin executable for go-plugin and records how it
// ended, which go-plugin's own runner does not expose.
type process struct {
	cmd    *exec.Cmd
	stdout io.ReadCloser
	stderr io.ReadCloser

	done     chan struct{} // closed once the process has been reaped (or never ran)
	doneOnce sync.Once
	waitOnce sync.Once
	waitErr  error

	mu      sync.Mutex
	started bool
	killed  bool // Kill was called; a process not yet started never starts
	pid     int
}

var _ runner.Runner = (*process)(nil)

func newProcess(cmd *exec.Cmd) (*process, error) {
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	setProcAttrs(cmd)
	return &process{cmd: cmd, stdout: stdout, stderr: stderr, done: make(chan struct{})}, nil
}

func (p *process) Start(context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	err := errors.New("killed before it started")
	if !p.killed {
		err = p.cmd.Start()
	}
	if err != nil {
		p.markDone()
		return err
	}
	p.started, p.pid = true, p.cmd.Process.Pid
	return nil
}

// Wait reaps the process; go-plugin calls it once, after both pipes are
// drained, so every stderr line has been seen when done closes.
func (p *process) Wait(context.Context) error {
	p.waitOnce.Do(func() {
		p.waitErr = p.cmd.Wait()
		p.markDone()
	})
	return p.waitErr
}

func (p *process) Kill(context.Context) error {
	p.mu.Lock()
	p.killed = true
	started := p.started
	p.mu.Unlock()
	if !started {
		return nil
	}
	killGroup(p.pid)
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	return nil
}

// markDone marks the process as ended: reaped, or never to be started.
func (p *process) markDone() {
	p.doneOnce.Do(func() { close(p.done) })
}

// ran reports whether the process was started.
func (p *process) ran() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.started
}

func (p *process) processID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pid
}

// exitedByItself reports whether the process has ended by exiting (with
// any status) rather than by a signal such as the host's kill.
func (p *process) exitedByItself() bool {
	select {
	case <-p.done:
	default:
		return false
	}
	ps := p.cmd.ProcessState
	return ps != nil && ps.Exited()
}

// exitStatus describes how the process ended; call it after done.
func (p *process) exitStatus() string {
	if p.waitErr != nil {
		return p.waitErr.Error()
	}
	return "exit status 0"
}

func (p *process) Stdout() io.ReadCloser { return p.stdout }
func (p *process) Stderr() io.ReadCloser { return p.stderr }
func (p *process) Name() string          { return p.cmd.Path }
func (p *process) ID() string            { return strconv.Itoa(p.processID()) }

func (p *process) Diagnose(context.Context) string {
	return "the plugin must be an executable for this platform that calls wfplugin.Serve (or speaks the go-plugin handshake) and writes nothing to stdout before it"
}

func (p *process) PluginToHost(network, addr string) (string, string, error) {
	return network, addr, nil
}

func (p *process) HostToPlugin(network, addr string) (string, string, error) {
	return network, addr, nil
}
