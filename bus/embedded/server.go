package embedded

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/wfeventbus/eventbus/bus"
)

// readyPoll is how long one readiness check waits before Start looks at ctx
// and the server's fatal reports again.
const readyPoll = 100 * time.Millisecond

// Server is a running embedded nats-server with JetStream.
type Server struct {
	ns   *server.Server
	port int
	// scratchDir is the private store directory of a memory-only server,
	// removed at shutdown; empty otherwise.
	scratchDir string
	// lock is held on the store directory while the server runs; nil for
	// a memory-only server.
	lock *storeLock

	shutdownOnce sync.Once
	// down is closed once the server has shut down completely.
	down chan struct{}
}

// Start validates cfg, starts the server and waits until it accepts clients
// with JetStream enabled. ctx bounds the wait; on any failure nothing is left
// running. A configuration error wraps bus.ErrInvalidConfig and names the
// field; a taken port is ErrPortInUse; a store directory another server
// runs on is ErrStoreInUse; anything else wraps ErrStart.
//
// A file-backed server holds an exclusive lock on its store directory (the
// file LockFileName in it) from Start until Shutdown has finished.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	return start(ctx, cfg, nil)
}

// start is Start with tune, when not nil, applied to the server's options
// last: a cluster node adds its routes there.
func start(ctx context.Context, cfg Config, tune func(*server.Options)) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStart, err)
	}
	if cfg.Port > 0 {
		if err := checkPortFree(cfg.Host, cfg.Port); err != nil {
			return nil, err
		}
	}

	opts := &server.Options{}
	storeDir := cfg.StoreDir
	var scratchDir string
	if cfg.MemoryOnly {
		// A file store limit of zero is only expressible through the
		// configuration language; it leaves JetStream with memory storage
		// alone.
		if err := opts.ProcessConfigString("jetstream { max_file_store: 0 }"); err != nil {
			return nil, fmt.Errorf("%w: memory-only configuration: %w", ErrStart, err)
		}
		// JetStream still wants a directory; give it a private one so
		// servers never share it, and remove it at shutdown.
		scratchDir, err = os.MkdirTemp("", "eventbus-memory-*")
		if err != nil {
			return nil, fmt.Errorf("%w: scratch directory: %w", ErrStart, err)
		}
		storeDir = scratchDir
	} else if err := os.MkdirAll(storeDir, 0o750); err != nil {
		return nil, fmt.Errorf("%w: store_dir: %w", bus.ErrInvalidConfig, err)
	}
	var lock *storeLock
	if !cfg.MemoryOnly {
		if lock, err = lockStore(storeDir); err != nil {
			return nil, err
		}
	}
	opts.ServerName = cfg.ServerName
	opts.Host = cfg.Host
	opts.Port = cfg.Port
	opts.MaxPayload = cfg.MaxPayload
	opts.JetStream = true
	opts.StoreDir = storeDir
	opts.SyncAlways = cfg.SyncAlways
	opts.NoSigs = true
	opts.NoLog = true
	opts.DisableJetStreamBanner = true
	if tune != nil {
		tune(opts)
	}

	fail := func(err error) (*Server, error) {
		if scratchDir != "" {
			_ = os.RemoveAll(scratchDir)
		}
		lock.release()
		return nil, err
	}

	ns, err := server.NewServer(opts)
	if err != nil {
		return fail(fmt.Errorf("%w: %w", ErrStart, err))
	}
	logger := newServerLogger(cfg.Logger)
	ns.SetLogger(logger, cfg.Logger.Enabled(ctx, slog.LevelDebug), false)
	ns.Start()

	stop := func(err error) (*Server, error) {
		ns.Shutdown()
		ns.WaitForShutdown()
		return fail(err)
	}
	for {
		select {
		case msg := <-logger.fatal:
			// A port taken between the check above and the server's own
			// listen is still reported as a taken port.
			if cfg.Port > 0 {
				if perr := checkPortFree(cfg.Host, cfg.Port); errors.Is(perr, ErrPortInUse) {
					return stop(perr)
				}
			}
			return stop(fmt.Errorf("%w: %s", ErrStart, msg))
		default:
		}
		if ns.ReadyForConnections(readyPoll) {
			break
		}
		if err := ctx.Err(); err != nil {
			return stop(fmt.Errorf("%w: not ready: %w", ErrStart, err))
		}
	}
	if !ns.JetStreamEnabled() {
		return stop(fmt.Errorf("%w: JetStream is not enabled", ErrStart))
	}
	addr, ok := ns.Addr().(*net.TCPAddr)
	if !ok {
		return stop(fmt.Errorf("%w: no TCP listener", ErrStart))
	}
	if lock != nil {
		// Best effort: the URL only makes a second server's error more
		// helpful.
		_ = lock.note(ns.ClientURL())
	}
	return &Server{ns: ns, port: addr.Port, scratchDir: scratchDir, lock: lock, down: make(chan struct{})}, nil
}

// checkPortFree reports whether host:port can be listened on, turning "in
// use" into a portInUseError.
func checkPortFree(host string, port int) error {
	hp := net.JoinHostPort(host, strconv.Itoa(port))
	l, err := net.Listen("tcp", hp)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return &portInUseError{port: port, err: err}
		}
		return fmt.Errorf("%w: cannot listen on %s: %w", ErrStart, hp, err)
	}
	return l.Close()
}

// ClientURL is the URL clients connect to, such as "nats://127.0.0.1:4222".
func (s *Server) ClientURL() string { return s.ns.ClientURL() }

// Port is the port the server listens on; with RandomPort, the one it got.
func (s *Server) Port() int { return s.port }

// Connect returns a client connection to the server. It runs in-process,
// without a socket, so it does not reconnect: it ends when the server shuts
// down. Clients that must survive a restart of the server connect to
// ClientURL over TCP instead. opts are applied after the in-process option.
func (s *Server) Connect(opts ...nats.Option) (*nats.Conn, error) {
	select {
	case <-s.down:
		return nil, ErrShutdown
	default:
	}
	if !s.ns.Running() {
		return nil, ErrShutdown
	}
	all := make([]nats.Option, 0, len(opts)+1)
	all = append(all, nats.InProcessServer(s.ns))
	all = append(all, opts...)
	nc, err := nats.Connect(s.ClientURL(), all...)
	if err != nil {
		return nil, fmt.Errorf("embedded: connect in-process: %w", err)
	}
	return nc, nil
}

// Shutdown stops the server, closing client connections, and waits until it
// is down or ctx is done. It is idempotent: later calls wait for the same
// shutdown. With a file store, every acknowledged message is on disk when
// it returns nil.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutdownOnce.Do(func() {
		go func() {
			defer close(s.down)
			s.ns.Shutdown()
			s.ns.WaitForShutdown()
			if s.scratchDir != "" {
				_ = os.RemoveAll(s.scratchDir)
			}
			s.lock.release()
		}()
	})
	select {
	case <-s.down:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("embedded: shutdown not finished: %w", ctx.Err())
	}
}
