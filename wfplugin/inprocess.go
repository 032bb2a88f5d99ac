package wfplugin

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/hashicorp/go-plugin"
	"github.com/hashicorp/go-plugin/runner"
)

// LaunchInProcess serves p inside this process, on a local socket, and
// returns a Client attached to it with the same load sequence and checks
// as Launch. Both halves then run under one race detector, which makes it
// the quick way to test a Plugin through the real protocol; Launch remains
// the way to test the built binary. Serve options go in WithServeOptions;
// unless one sets a logger, the plugin's logs go to the Client's logger.
func LaunchInProcess(ctx context.Context, p Plugin, opts ...LaunchOption) (*Client, error) {
	if p == nil {
		return nil, fmt.Errorf("%w: nil Plugin", ErrLaunch)
	}
	cfg, err := newLaunchConfig(opts)
	if err != nil {
		return nil, err
	}
	if cfg.name == "" {
		cfg.name = "in-process"
	}
	c := newClient(cfg)
	scfg, err := newServeConfig(c.writers[0], cfg.serveOpts)
	if err != nil {
		return nil, err
	}

	serveCtx, cancel := context.WithCancel(context.Background())
	reattach := make(chan *plugin.ReattachConfig, 1)
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = serve(p, scfg, c.writers[0], &plugin.ServeTestConfig{Context: serveCtx, ReattachConfigCh: reattach})
	}()
	c.inproc = &inProcess{cancel: cancel, served: served}
	go c.watch(served)

	var rc *plugin.ReattachConfig
	select {
	case rc = <-reattach:
	case <-served:
		return nil, c.abort(ctx, errors.New("the in-process server stopped before serving"))
	case <-ctx.Done():
		return nil, c.abort(ctx, ctx.Err())
	}
	rc.ReattachFunc = func() (runner.AttachedRunner, error) { return &inProcRunner{ip: c.inproc}, nil }
	c.pc = plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  handshake(),
		Plugins:          plugin.PluginSet{PluginName: c.host},
		Reattach:         rc,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		GRPCDialOptions:  cfg.dialOptions(),
		Logger:           quietHCLog(),
		SyncStdout:       io.Discard,
		SyncStderr:       c.writers[1],
	})
	rpcClient, err := c.pc.Client()
	if err != nil {
		return nil, c.abort(ctx, err)
	}
	if err := c.dispense(rpcClient); err != nil {
		return nil, c.abort(ctx, err)
	}
	if err := c.load(ctx, Manifest{}, false); err != nil {
		return nil, c.abort(ctx, err)
	}
	return c, nil
}

// inProcess is the server goroutine of LaunchInProcess.
type inProcess struct {
	cancel context.CancelFunc
	served chan struct{}
}

// stop ends the server through its context, waits for Serve (and its
// clean-up) to return, then closes the client's connection. go-plugin's
// controller Shutdown is not used in-process: it would stop the server a
// second time, concurrently with Serve's own stop.
func (ip *inProcess) stop(pc *plugin.Client) {
	ip.cancel()
	<-ip.served
	if pc != nil {
		if cp, err := pc.Client(); err == nil {
			_ = cp.Close()
		}
	}
}

// inProcRunner tells go-plugin when the in-process server has ended.
type inProcRunner struct {
	ip *inProcess
}

func (r *inProcRunner) Wait(context.Context) error {
	<-r.ip.served
	return nil
}

func (r *inProcRunner) Kill(context.Context) error {
	r.ip.cancel()
	return nil
}

func (r *inProcRunner) ID() string { return "in-process" }

func (r *inProcRunner) PluginToHost(network, addr string) (string, string, error) {
	return network, addr, nil
}

func (r *inProcRunner) HostToPlugin(network, addr string) (string, string, error) {
	return network, addr, nil
}
