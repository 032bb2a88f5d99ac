package embedded

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wfeventbus/eventbus/bus"
)

// Defaults applied to zero fields of ClusterConfig.
const (
	DefaultClusterSize = 3
	DefaultClusterName = "eventbus"
	// DefaultClusterPort is the route port of a cluster's first server; the
	// others take the ports after it.
	DefaultClusterPort = 6222
)

const (
	// clusterPoll is the pause between two looks at the cluster's state
	// while waiting for a leader.
	clusterPoll = 20 * time.Millisecond
	// randomPortAttempts bounds how often StartCluster picks new random
	// ports when one it picked was taken before a server could listen on
	// it.
	randomPortAttempts = 3
	// globalAccount is the account streams live in when the servers
	// configure no accounts.
	globalAccount = server.DEFAULT_GLOBAL_ACCOUNT
)

// ClusterConfig configures a cluster of embedded servers on this machine.
// The zero value is three file-backed servers, eventbus-0 to eventbus-2, with
// client ports 4222-4224 and route ports 6222-6224 on 127.0.0.1, storing
// under ./data/eventbus/<server name>.
type ClusterConfig struct {
	// Size is the number of servers (default 3, at least 2). A cluster
	// keeps serving while a majority of its servers runs: 3 servers
	// survive the loss of one, 5 of two.
	Size int
	// Name is the cluster's name and the prefix of its servers' names:
	// "eventbus" names them eventbus-0, eventbus-1, ... (default
	// "eventbus").
	Name string
	// StoreDir is the parent of the servers' store directories: each keeps
	// its streams in StoreDir/<server name> (default "./data/eventbus").
	StoreDir string
	// Host is the loopback address every server listens on (default
	// "127.0.0.1").
	Host string
	// Port is the client port of the first server, the others taking the
	// next ports: 0 means 4222, -1 (RandomPort) a free port for each.
	Port int
	// ClusterPort is the route port of the first server, the others taking
	// the next ports: 0 means 6222, -1 (RandomPort) a free port for each.
	ClusterPort int
	// SyncAlways flushes every write of each server's file store to disk
	// before it is acknowledged.
	SyncAlways bool
	// MaxPayload is the largest message the servers accept (default 1 MiB,
	// at most 64 MiB).
	MaxPayload int32
	// Logger receives the servers' logs, each record with a "server"
	// attribute naming its server; nil discards them.
	Logger *slog.Logger
}

// withDefaults returns cfg with zero fields set to their defaults, or an
// error wrapping bus.ErrInvalidConfig that names the offending field.
func (cfg ClusterConfig) withDefaults() (ClusterConfig, error) {
	if cfg.Size == 0 {
		cfg.Size = DefaultClusterSize
	}
	if cfg.Size < 2 {
		return cfg, fmt.Errorf("%w: size: %d servers cannot form a cluster; use 3 (or 5), at least 2", bus.ErrInvalidConfig, cfg.Size)
	}
	if cfg.Name == "" {
		cfg.Name = DefaultClusterName
	}
	if strings.ContainsAny(cfg.Name, " \t\r\n.*>") {
		return cfg, fmt.Errorf("%w: name: %q must not contain whitespace, '.', '*' or '>'", bus.ErrInvalidConfig, cfg.Name)
	}
	if cfg.StoreDir == "" {
		cfg.StoreDir = DefaultStoreDir
	}
	if cfg.Host == "" {
		cfg.Host = DefaultHost
	}
	if !isLoopback(cfg.Host) {
		return cfg, fmt.Errorf("%w: host: %q is not a loopback address; the embedded cluster listens on localhost, 127.0.0.0/8 or ::1 only", bus.ErrInvalidConfig, cfg.Host)
	}
	var err error
	if cfg.Port, err = portRange("port", cfg.Port, DefaultPort, cfg.Size); err != nil {
		return cfg, err
	}
	if cfg.ClusterPort, err = portRange("cluster_port", cfg.ClusterPort, DefaultClusterPort, cfg.Size); err != nil {
		return cfg, err
	}
	if cfg.Port > 0 && cfg.ClusterPort > 0 && cfg.Port < cfg.ClusterPort+cfg.Size && cfg.ClusterPort < cfg.Port+cfg.Size {
		return cfg, fmt.Errorf("%w: port and cluster_port: client ports %d-%d overlap route ports %d-%d",
			bus.ErrInvalidConfig, cfg.Port, cfg.Port+cfg.Size-1, cfg.ClusterPort, cfg.ClusterPort+cfg.Size-1)
	}
	return cfg, nil
}

// portRange applies the default of a first port and checks that size ports
// from it are TCP ports.
func portRange(field string, port, def, size int) (int, error) {
	switch {
	case port == 0:
		port = def
	case port == RandomPort:
		return port, nil
	}
	if port < 1 || port+size-1 > 65535 {
		return port, fmt.Errorf("%w: %s: %d does not leave %d TCP ports (1-65535; 0 for %d, -1 for free ports)",
			bus.ErrInvalidConfig, field, port, size, def)
	}
	return port, nil
}

// Cluster is a running cluster of embedded nats-servers with JetStream,
// routed to each other on loopback. Each server has a name, its own store
// directory and its own ports, all kept when it is stopped and started
// again, so a test can take servers away and bring them back while clients
// that list every server's URL carry on.
//
// A Cluster is safe for concurrent use.
type Cluster struct {
	cfg ClusterConfig
	// settling is set while the cluster forms and while it shuts down; see
	// settlingHandler.
	settling *atomic.Bool

	mu     sync.Mutex
	nodes  []*clusterNode
	closed bool
}

// clusterNode is one server of a cluster: its fixed settings and, while it
// runs, the server.
type clusterNode struct {
	name        string
	cfg         Config
	clusterPort int
	srv         *Server // nil while stopped
}

// StartCluster validates cfg, starts its servers and waits until they have
// elected a JetStream meta leader that every server follows, so that a
// replicated stream can be created as soon as it returns. ctx bounds the
// wait; on any failure nothing is left running. A configuration error wraps
// bus.ErrInvalidConfig and names the field; a taken port is ErrPortInUse;
// anything else wraps ErrStart.
func StartCluster(ctx context.Context, cfg ClusterConfig) (*Cluster, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	random := cfg.Port == RandomPort || cfg.ClusterPort == RandomPort
	for attempt := 1; ; attempt++ {
		c, err := startCluster(ctx, cfg)
		// A random port can be taken by another process between the moment
		// it was found free and the moment a server listens on it; new
		// random ports make that unlikely to repeat.
		if errors.Is(err, ErrPortInUse) && random && attempt < randomPortAttempts {
			continue
		}
		return c, err
	}
}

// startCluster is one attempt of StartCluster.
func startCluster(ctx context.Context, cfg ClusterConfig) (*Cluster, error) {
	c := &Cluster{cfg: cfg, settling: new(atomic.Bool), nodes: make([]*clusterNode, cfg.Size)}
	c.settling.Store(true)
	for i := range c.nodes {
		name := cfg.Name + "-" + strconv.Itoa(i)
		n := &clusterNode{
			name: name,
			cfg: Config{
				StoreDir:   filepath.Join(cfg.StoreDir, name),
				Host:       cfg.Host,
				Port:       offsetPort(cfg.Port, i),
				SyncAlways: cfg.SyncAlways,
				MaxPayload: cfg.MaxPayload,
				ServerName: name,
				Logger:     cfg.Logger,
			},
			clusterPort: offsetPort(cfg.ClusterPort, i),
		}
		if cfg.Logger != nil {
			n.cfg.Logger = slog.New(settlingHandler{Handler: cfg.Logger.Handler(), settling: c.settling}).With("server", name)
		}
		// Every server's routes name every route port, so they must all be
		// known before the first server starts.
		if n.clusterPort == RandomPort {
			port, err := freePort(cfg.Host)
			if err != nil {
				return nil, err
			}
			n.clusterPort = port
		} else if err := checkPortFree(cfg.Host, n.clusterPort); err != nil {
			return nil, err
		}
		c.nodes[i] = n
	}
	// All servers start at once, so that their routes connect before their
	// first meta leader election: servers that campaign before they can
	// reach each other split the vote and wait seconds for the next round.
	errs := make([]error, len(c.nodes))
	var wg sync.WaitGroup
	for i, n := range c.nodes {
		wg.Go(func() {
			if err := c.startNode(ctx, n); err != nil {
				errs[i] = fmt.Errorf("server %s: %w", n.name, err)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		c.stopAll(context.WithoutCancel(ctx))
		return nil, err
	}
	if _, err := c.WaitReady(ctx); err != nil {
		c.stopAll(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("%w: %w", ErrStart, err)
	}
	c.settling.Store(false)
	return c, nil
}

// settlingHandler passes the servers' log records on, but while the
// cluster forms or shuts down it hands warnings and errors on as debug
// records: servers that are not up yet, or no longer, refuse and drop
// routes to each other as a matter of course, and those reports would
// read as faults. Once the cluster runs, a lost route is news and keeps
// its level.
type settlingHandler struct {
	slog.Handler
	settling *atomic.Bool
}

func (h settlingHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level > slog.LevelDebug && h.settling.Load() {
		if !h.Handler.Enabled(ctx, slog.LevelDebug) {
			return nil
		}
		r.Level = slog.LevelDebug
	}
	return h.Handler.Handle(ctx, r)
}

func (h settlingHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return settlingHandler{Handler: h.Handler.WithAttrs(attrs), settling: h.settling}
}

func (h settlingHandler) WithGroup(name string) slog.Handler {
	return settlingHandler{Handler: h.Handler.WithGroup(name), settling: h.settling}
}

// offsetPort returns the i-th port of a range starting at first, or
// RandomPort for a random range.
func offsetPort(first, i int) int {
	if first == RandomPort {
		return RandomPort
	}
	return first + i
}

// freePort returns a port on host that was free a moment ago.
func freePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("%w: find a free port on %s: %w", ErrStart, host, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startNode starts n with routes to every server of the cluster, itself
// included (a server ignores the route to itself), and fixes its client
// port so that a restart comes back where clients look for it.
func (c *Cluster) startNode(ctx context.Context, n *clusterNode) error {
	routes := make([]*url.URL, len(c.nodes))
	for i, m := range c.nodes {
		routes[i] = &url.URL{Scheme: "nats-route", Host: net.JoinHostPort(c.cfg.Host, strconv.Itoa(m.clusterPort))}
	}
	srv, err := start(ctx, n.cfg, func(o *server.Options) {
		o.Cluster.Name = c.cfg.Name
		o.Cluster.Host = c.cfg.Host
		o.Cluster.Port = n.clusterPort
		o.Routes = routes
	})
	if err != nil {
		// A route port taken since it was found free fails the start as a
		// fatal report; say which port it was.
		if perr := checkPortFree(c.cfg.Host, n.clusterPort); errors.Is(perr, ErrPortInUse) {
			return perr
		}
		return err
	}
	n.srv = srv
	n.cfg.Port = srv.Port()
	return nil
}

// Names returns the servers' names in order: <Name>-0, <Name>-1, ...
func (c *Cluster) Names() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	names := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		names[i] = n.name
	}
	return names
}

// ClientURLs returns every server's client URL in order, whether it runs or
// not: a server keeps its port across a stop and start.
func (c *Cluster) ClientURLs() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	urls := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		urls[i] = "nats://" + net.JoinHostPort(c.cfg.Host, strconv.Itoa(n.cfg.Port))
	}
	return urls
}

// URLs returns the client URLs joined with commas, as an app's broker urls
// or NATS_URL take them.
func (c *Cluster) URLs() string { return strings.Join(c.ClientURLs(), ",") }

// StoreDir returns the store directory of the server called name.
func (c *Cluster) StoreDir(name string) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.node(name)
	if err != nil {
		return "", err
	}
	return n.cfg.StoreDir, nil
}

// Server returns the running server called name: ErrUnknownServer when the
// cluster has no server of that name, ErrShutdown when it is stopped.
func (c *Cluster) Server(name string) (*Server, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.node(name)
	if err != nil {
		return nil, err
	}
	if n.srv == nil {
		return nil, fmt.Errorf("server %s: %w", name, ErrShutdown)
	}
	return n.srv, nil
}

// Running returns the names of the servers that run, in order.
func (c *Cluster) Running() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var names []string
	for _, n := range c.nodes {
		if n.srv != nil {
			names = append(names, n.name)
		}
	}
	return names
}

// node returns the node called name; c.mu must be held.
func (c *Cluster) node(name string) (*clusterNode, error) {
	for _, n := range c.nodes {
		if n.name == name {
			return n, nil
		}
	}
	names := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		names[i] = n.name
	}
	return nil, fmt.Errorf("%w: %q (servers: %s)", ErrUnknownServer, name, strings.Join(names, ", "))
}

// Stop shuts the server called name down, closing its clients'
// connections, and waits until it is down or ctx is done. Its store
// directory and ports are kept for Start. Leaders it held hand over to
// other servers as it goes; acknowledged messages are on disk when it
// returns nil. Stopping a stopped server does nothing.
func (c *Cluster) Stop(ctx context.Context, name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.node(name)
	if err != nil {
		return err
	}
	if n.srv == nil {
		return nil
	}
	if err := n.srv.Shutdown(ctx); err != nil {
		return fmt.Errorf("server %s: %w", name, err)
	}
	n.srv = nil
	return nil
}

// Start starts the stopped server called name again, on its store directory
// and ports, and waits until it accepts clients; it then catches up with
// the cluster on its own (WaitReady and WaitStreamCurrent wait for that).
// Starting a running server does nothing; after Shutdown it is ErrShutdown.
func (c *Cluster) Start(ctx context.Context, name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrShutdown
	}
	n, err := c.node(name)
	if err != nil {
		return err
	}
	if n.srv != nil {
		return nil
	}
	if err := c.startNode(ctx, n); err != nil {
		return fmt.Errorf("server %s: %w", name, err)
	}
	return nil
}

// Restart stops the server called name and starts it again.
func (c *Cluster) Restart(ctx context.Context, name string) error {
	if err := c.Stop(ctx, name); err != nil {
		return err
	}
	return c.Start(ctx, name)
}

// Shutdown stops every server and waits until all are down or ctx is done.
// It is idempotent; the cluster cannot be started again.
func (c *Cluster) Shutdown(ctx context.Context) error {
	c.settling.Store(true)
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	return c.stopAll(ctx)
}

// stopAll stops every running server, all at once.
func (c *Cluster) stopAll(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	errs := make([]error, len(c.nodes))
	var wg sync.WaitGroup
	for i, n := range c.nodes {
		if n.srv == nil {
			continue
		}
		wg.Go(func() {
			if err := n.srv.Shutdown(ctx); err != nil {
				errs[i] = fmt.Errorf("server %s: %w", n.name, err)
				return
			}
			n.srv = nil
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// running returns the running servers by name; the servers may stop
// afterwards, which their methods tolerate.
func (c *Cluster) running() map[string]*server.Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := make(map[string]*server.Server, len(c.nodes))
	for _, n := range c.nodes {
		if n.srv != nil {
			m[n.name] = n.srv.ns
		}
	}
	return m
}

// MetaLeader returns the name of the server leading the JetStream meta
// group, which creates and places streams; ErrNoLeader while none does.
func (c *Cluster) MetaLeader() (string, error) {
	return c.leader("meta group", func(s *server.Server) bool { return s.JetStreamIsLeader() })
}

// StreamLeader returns the name of the server leading stream, the one that
// stores its messages first and answers its publishes; ErrNoLeader while
// none does (during an election, or for a stream that does not exist).
func (c *Cluster) StreamLeader(stream string) (string, error) {
	return c.leader("stream "+stream, func(s *server.Server) bool {
		return s.JetStreamIsStreamLeader(globalAccount, stream)
	})
}

// ConsumerLeader returns the name of the server leading the durable
// consumer of stream, the one that delivers its messages and takes their
// acks; ErrNoLeader while none does.
func (c *Cluster) ConsumerLeader(stream, consumer string) (string, error) {
	return c.leader("consumer "+stream+"/"+consumer, func(s *server.Server) bool {
		return s.JetStreamIsConsumerLeader(globalAccount, stream, consumer)
	})
}

// leader returns the one running server for which isLeader holds. Two
// servers may both claim leadership for a moment while one steps down;
// that too is no leader yet.
func (c *Cluster) leader(what string, isLeader func(*server.Server) bool) (string, error) {
	var leaders []string
	for name, s := range c.running() {
		if isLeader(s) {
			leaders = append(leaders, name)
		}
	}
	if len(leaders) != 1 {
		return "", fmt.Errorf("%w of %s", ErrNoLeader, what)
	}
	return leaders[0], nil
}

// WaitStreamLeader waits until stream has a leader and returns its name.
func (c *Cluster) WaitStreamLeader(ctx context.Context, stream string) (string, error) {
	return waitFor(ctx, func() (string, error) { return c.StreamLeader(stream) })
}

// WaitConsumerLeader waits until the consumer has a leader and returns its
// name.
func (c *Cluster) WaitConsumerLeader(ctx context.Context, stream, consumer string) (string, error) {
	return waitFor(ctx, func() (string, error) { return c.ConsumerLeader(stream, consumer) })
}

// WaitStreamPublishable waits until stream has a leader and every running
// server routes a publish on subject to it, and returns the leader's name.
// A stream just created, or just given a new leader, takes publishes only
// from then on: before, a publish reaching a server that has not yet
// learned where the stream is finds nothing listening on its subject.
func (c *Cluster) WaitStreamPublishable(ctx context.Context, stream, subject string) (string, error) {
	return waitFor(ctx, func() (string, error) {
		leader, err := c.StreamLeader(stream)
		if err != nil {
			return "", err
		}
		for name, s := range c.running() {
			if !s.GlobalAccount().SubscriptionInterest(subject) {
				return "", fmt.Errorf("%w of stream %s: server %s does not route %s to it yet", ErrNoLeader, stream, name, subject)
			}
		}
		return leader, nil
	})
}

// WaitReady waits until the running servers have a JetStream meta leader
// that each of them follows and is caught up with, and returns the
// leader's name. After StartCluster, and after a server is started again,
// it says the cluster can create and place streams.
func (c *Cluster) WaitReady(ctx context.Context) (string, error) {
	return waitFor(ctx, c.ready)
}

// ready is one look at what WaitReady waits for.
func (c *Cluster) ready() (string, error) {
	servers := c.running()
	leader, err := c.MetaLeader()
	if err != nil {
		return "", err
	}
	ls, ok := servers[leader]
	if !ok {
		return "", fmt.Errorf("%w of the meta group: %s stopped", ErrNoLeader, leader)
	}
	info, err := ls.Jsz(nil)
	if err != nil || info.Meta == nil {
		return "", fmt.Errorf("%w of the meta group: no cluster information from %s (%v)", ErrNoLeader, leader, err)
	}
	current := map[string]bool{leader: true}
	for _, p := range info.Meta.Replicas {
		current[p.Name] = p.Current
	}
	for name, s := range servers {
		if !current[name] || !s.JetStreamIsCurrent() {
			return "", fmt.Errorf("%w of the meta group: %s is not caught up with leader %s", ErrNoLeader, name, leader)
		}
		// A server without a route to every other one cannot forward its
		// clients' API requests to the leader or to a stream's replicas
		// yet: a request sent then gets no answer.
		if missing := missingRoutes(s, servers); len(missing) > 0 {
			return "", fmt.Errorf("%w of the meta group: %s has no route to %s yet", ErrNoLeader, name, strings.Join(missing, ", "))
		}
	}
	return leader, nil
}

// missingRoutes returns the names of the servers of running, other than
// s, that s has no route to, sorted.
func missingRoutes(s *server.Server, running map[string]*server.Server) []string {
	routed := map[string]bool{s.Name(): true}
	if rz, err := s.Routez(nil); err == nil {
		for _, r := range rz.Routes {
			routed[r.RemoteName] = true
		}
	}
	var missing []string
	for name := range running {
		if !routed[name] {
			missing = append(missing, name)
		}
	}
	slices.Sort(missing)
	return missing
}

// WaitStreamCurrent waits until stream has a leader and every running
// server holding a replica of it holds what the leader holds, and returns
// the leader's name. After a server is started again it says the server has
// every message the stream stored while it was away. Call it while nothing
// is published to the stream, or it waits for a pause.
func (c *Cluster) WaitStreamCurrent(ctx context.Context, stream string) (string, error) {
	return waitFor(ctx, func() (string, error) { return c.streamCurrent(stream) })
}

// streamCurrent is one look at what WaitStreamCurrent waits for.
func (c *Cluster) streamCurrent(stream string) (string, error) {
	leader, err := c.StreamLeader(stream)
	if err != nil {
		return "", err
	}
	d, err := c.streamDetail(leader, stream)
	if err != nil {
		return "", err
	}
	if d.Cluster == nil {
		return leader, nil
	}
	running := c.running()
	for _, p := range d.Cluster.Replicas {
		if _, ok := running[p.Name]; !ok {
			continue
		}
		if !p.Current || p.Lag > 0 {
			return "", fmt.Errorf("%w of stream %s: replica on %s is %d operations behind leader %s", ErrNoLeader, stream, p.Name, p.Lag, leader)
		}
		r, err := c.streamDetail(p.Name, stream)
		if err != nil {
			return "", err
		}
		if r.State.LastSeq != d.State.LastSeq || r.State.Msgs != d.State.Msgs {
			return "", fmt.Errorf("%w of stream %s: replica on %s holds %d messages up to %d, leader %s %d up to %d",
				ErrNoLeader, stream, p.Name, r.State.Msgs, r.State.LastSeq, leader, d.State.Msgs, d.State.LastSeq)
		}
	}
	return leader, nil
}

// streamDetail returns what the server called name reports about its
// replica of stream.
func (c *Cluster) streamDetail(name, stream string) (*server.StreamDetail, error) {
	srv, err := c.Server(name)
	if err != nil {
		return nil, err
	}
	info, err := srv.ns.Jsz(&server.JSzOptions{Accounts: true, Streams: true})
	if err != nil {
		return nil, fmt.Errorf("server %s: %w", name, err)
	}
	for _, acc := range info.AccountDetails {
		if acc.Name != globalAccount {
			continue
		}
		for _, s := range acc.Streams {
			if s.Name == stream {
				return &s, nil
			}
		}
	}
	return nil, fmt.Errorf("%w: server %s holds no replica of stream %s", bus.ErrNotFound, name, stream)
}

// ReplicaState is what one server's replica of a stream holds.
type ReplicaState struct {
	Messages uint64
	FirstSeq uint64
	LastSeq  uint64
}

// ReplicaState returns what the replica of stream on the server called name
// holds, as that server reports it: after WaitStreamCurrent every replica
// holds what the leader holds. It is ErrShutdown for a stopped server and
// bus.ErrNotFound when the server holds no replica of stream.
func (c *Cluster) ReplicaState(name, stream string) (ReplicaState, error) {
	d, err := c.streamDetail(name, stream)
	if err != nil {
		return ReplicaState{}, err
	}
	return ReplicaState{Messages: d.State.Msgs, FirstSeq: d.State.FirstSeq, LastSeq: d.State.LastSeq}, nil
}

// ServerOf returns the name of the server nc is connected to;
// ErrUnknownServer when that is no server of the cluster, and
// bus.ErrNotConnected when nc is not connected.
func (c *Cluster) ServerOf(nc *nats.Conn) (string, error) {
	if !nc.IsConnected() {
		return "", fmt.Errorf("%w: connection is %v", bus.ErrNotConnected, nc.Status())
	}
	name := nc.ConnectedServerName()
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := c.node(name); err != nil {
		return "", err
	}
	return name, nil
}

// waitFor calls look until it succeeds or ctx is done, and then returns
// what it returned last, with ctx's error when it never succeeded.
func waitFor(ctx context.Context, look func() (string, error)) (string, error) {
	for {
		v, err := look()
		if err == nil {
			return v, nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("%w: %w", err, ctx.Err())
		case <-time.After(clusterPoll):
		}
	}
}

// CreateStream bounds each stream create request by createAttempt and
// pauses createPause before it sends one again.
const (
	createAttempt = 5 * time.Second
	createPause   = 100 * time.Millisecond
)

// CreateStream creates a stream through js on a cluster that may have just
// formed or lost a server. It sends the request again while ctx allows when
// the answer is lost, which happens while a meta leader is elected, or when
// the meta leader cannot place the stream yet (a server it has not heard
// from lately counts as offline). Creating a stream with the same config
// again is a no-op, so a repeated request is harmless.
func CreateStream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	for {
		actx, cancel := context.WithTimeout(ctx, createAttempt)
		s, err := js.CreateStream(actx, cfg)
		cancel()
		if err == nil {
			return s, nil
		}
		var apiErr *jetstream.APIError
		noPeers := errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.ErrorCode(server.JSClusterNoPeersErrF)
		if !noPeers && !errors.Is(err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("create stream %s: %w", cfg.Name, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("create stream %s: %w", cfg.Name, err)
		case <-time.After(createPause):
		}
	}
}
