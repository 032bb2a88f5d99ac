package wfplugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	pluginv1 "github.com/wfeventbus/eventbus/gen/workflow/plugin/v1"
)

// DefaultMaxRecvMsgSize is the largest request the plugin's gRPC server
// accepts unless WithMaxRecvMsgSize says otherwise. gRPC's own default of
// 4 MiB rejects large pipeline states.
const DefaultMaxRecvMsgSize = 64 << 20

// DefaultShutdownTimeout bounds how long Serve spends stopping triggers and
// modules that are still running when the host shuts the plugin down. The
// host kills the process about two seconds after asking it to stop.
const DefaultShutdownTimeout = 1500 * time.Millisecond

// ServeOption configures Serve.
type ServeOption func(*serveConfig) error

type serveConfig struct {
	logger          *slog.Logger
	maxRecv         int
	grpcOpts        []grpc.ServerOption
	shutdownTimeout time.Duration
}

// WithServeLogger sets the logger of the serving side. By default it writes
// text records to the process's stderr, which the host forwards into its
// own log (stdout carries the handshake and is discarded afterwards).
func WithServeLogger(l *slog.Logger) ServeOption {
	return func(c *serveConfig) error {
		if l == nil {
			return fmt.Errorf("%w: WithServeLogger: nil logger", ErrInvalidOption)
		}
		c.logger = l
		return nil
	}
}

// WithMaxRecvMsgSize sets the largest request, in bytes, the plugin's gRPC
// server accepts (default DefaultMaxRecvMsgSize).
func WithMaxRecvMsgSize(n int) ServeOption {
	return func(c *serveConfig) error {
		if n <= 0 {
			return fmt.Errorf("%w: WithMaxRecvMsgSize: %d is not positive", ErrInvalidOption, n)
		}
		c.maxRecv = n
		return nil
	}
}

// WithGRPCServerOptions adds options to the plugin's gRPC server, for
// example interceptors.
func WithGRPCServerOptions(opts ...grpc.ServerOption) ServeOption {
	return func(c *serveConfig) error {
		c.grpcOpts = append(c.grpcOpts, opts...)
		return nil
	}
}

// WithShutdownTimeout bounds the stopping of instances still running when
// the host shuts the plugin down (default DefaultShutdownTimeout).
func WithShutdownTimeout(d time.Duration) ServeOption {
	return func(c *serveConfig) error {
		if d <= 0 {
			return fmt.Errorf("%w: WithShutdownTimeout: %s is not positive", ErrInvalidOption, d)
		}
		c.shutdownTimeout = d
		return nil
	}
}

func newServeConfig(stderr io.Writer, opts []ServeOption) (*serveConfig, error) {
	c := &serveConfig{maxRecv: DefaultMaxRecvMsgSize, shutdownTimeout: DefaultShutdownTimeout}
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, err
		}
	}
	if c.logger == nil {
		c.logger = slog.New(slog.NewTextHandler(stderr, nil))
	}
	return c, nil
}

// Serve serves p to the host that started this process and returns when
// the host shuts it down, after stopping any instance still running. Call
// it from main; the process must have been started by a host (the
// handshake cookie is checked, and a process started by hand exits with a
// message). Serve returns an error only for invalid options or a plugin
// that cannot be served.
func Serve(p Plugin, opts ...ServeOption) error {
	// go-plugin redirects os.Stderr once serving starts; logs keep going to
	// the process's real stderr, which the host reads line by line.
	stderr := os.Stderr
	cfg, err := newServeConfig(stderr, opts)
	if err != nil {
		return err
	}
	return serve(p, cfg, stderr, nil)
}

// serve runs go-plugin's server; test, when set, serves in-process.
func serve(p Plugin, cfg *serveConfig, stderr io.Writer, test *plugin.ServeTestConfig) error {
	if p == nil {
		return errors.New("wfplugin: Serve: nil Plugin")
	}
	srv := newServer(p, cfg)
	defer srv.shutdown()
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: handshake(),
		Plugins:         plugin.PluginSet{PluginName: &servePlugin{srv: srv}},
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			opts = append(opts, grpc.MaxRecvMsgSize(cfg.maxRecv))
			opts = append(opts, serverTuning()...)
			opts = append(opts, cfg.grpcOpts...)
			return grpc.NewServer(opts...)
		},
		Logger: hclog.New(&hclog.LoggerOptions{Name: "go-plugin", Output: stderr, Level: hclog.Warn}),
		Test:   test,
	})
	return nil
}

// servePlugin registers the PluginService with go-plugin's gRPC server and
// keeps the broker for the callback channel.
type servePlugin struct {
	plugin.NetRPCUnsupportedPlugin
	srv *server
}

func (p *servePlugin) GRPCServer(b *plugin.GRPCBroker, s *grpc.Server) error {
	p.srv.setBroker(b)
	pluginv1.RegisterPluginServiceServer(s, p.srv)
	return nil
}

func (p *servePlugin) GRPCClient(context.Context, *plugin.GRPCBroker, *grpc.ClientConn) (any, error) {
	return nil, errors.New("wfplugin: the serving side dispenses no client")
}
