package eventbus

import (
	"cmp"
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

	"github.com/nats-io/nats.go"

	"github.com/wfeventbus/eventbus/bus"
	"github.com/wfeventbus/eventbus/bus/embedded"
	"github.com/wfeventbus/eventbus/bus/jetstream"
	"github.com/wfeventbus/eventbus/bus/postgres"
	eventbusv1 "github.com/wfeventbus/eventbus/gen/eventbus/v1"
)

// Deploy targets a broker may declare.
const (
	TargetEmbedded    = "embedded"
	TargetSelfHosted  = "self_hosted"
	TargetKubernetes  = "kubernetes"
	TargetDOAppPlat   = "digitalocean.app_platform"
	TargetAWSECS      = "aws.ecs"
	TargetAWSEKS      = "aws.eks"
	providerNATS      = "nats"
	defaultStoreDir   = "./data/eventbus"
	defaultEmbedHost  = "127.0.0.1"
	defaultEmbedPort  = 4222
	defaultBrokerName = "eventbus"
)

// The PostgreSQL backend's names and limits.
const (
	providerPostgres = "postgres"
	// providerPgChannel is the older name of providerPostgres.
	providerPgChannel = "pgchannel"
	// brokerInProcess is the one broker_target of a postgres broker: the
	// plugin talks to the database itself.
	brokerInProcess = "in_process"
	// databaseURLEnv names the database when nothing more specific does.
	databaseURLEnv = "DATABASE_URL"
	// maxPostgresPayload is the largest max_payload a postgres broker takes.
	maxPostgresPayload = 256 << 20
)

// deployTargets is the provider × deploy_target matrix: the targets each
// provider can run on. Only providers listed here are accepted.
func deployTargets(provider string) []string {
	switch provider {
	case providerNATS:
		return []string{TargetAWSECS, TargetAWSEKS, TargetDOAppPlat, TargetEmbedded, TargetKubernetes, TargetSelfHosted}
	case providerPostgres:
		return []string{TargetAWSECS, TargetAWSEKS, TargetDOAppPlat, TargetKubernetes, TargetSelfHosted}
	}
	return nil
}

// canonicalProvider maps a configured provider to the one it means: nats
// when none is set, postgres for its older name pgchannel.
func canonicalProvider(p string) string {
	switch p = strings.ToLower(strings.TrimSpace(p)); p {
	case "":
		return providerNATS
	case providerPgChannel:
		return providerPostgres
	}
	return p
}

// brokerPlan is a validated broker config: an embedded NATS server, the
// URLs of an external one, or a PostgreSQL database, and the setting that
// chose it.
type brokerPlan struct {
	provider string // providerNATS or providerPostgres
	target   string
	urls     []string
	embedded embedded.Config
	connect  jetstream.ConnectConfig
	// postgres is the database of a postgres broker, and pgMaxPayload its
	// largest message (0: the backend's default).
	postgres     postgres.Config
	pgMaxPayload int
	// reason names the setting that decided between the embedded broker
	// and an external one, or where the database's DSN came from, for the
	// start-up log.
	reason string
	// pinned is set when deploy_target embedded fixes the broker to the
	// embedded one, whatever the environment says.
	pinned bool
}

// planBroker validates cfg and resolves where the broker is. The first of
// these that applies decides:
//
//  1. dsn, url or urls in the config: that external broker;
//  2. deploy_target embedded in the config: the embedded broker;
//  3. EVENTBUS_<NAME>_URI (module name upper-cased, '-' and '.' as '_'):
//     that external broker;
//  4. an embedded block in the config: the embedded broker;
//  5. NATS_URL: that external broker;
//  6. nothing set: the embedded broker with its defaults.
//
// What the config says wins over the environment, with one exception: the
// variable named after this very broker overrides its embedded block, so a
// deployment can point an app written for the embedded broker at a cluster
// without editing it. NATS_URL, which tools and shells export for every
// purpose, never overrides an explicit config. getenv is the only place
// environment variables reach the plugin.
//
// A relative embedded store_dir is relative to configDir, the directory of
// the app config, when the host says what it is.
//
// A postgres broker is planned by planPostgres instead.
func planBroker(name string, cfg *eventbusv1.BrokerConfig, configDir string, getenv func(string) string) (brokerPlan, error) {
	provider := canonicalProvider(cfg.GetProvider())
	targets := deployTargets(provider)
	if targets == nil {
		return brokerPlan{}, fmt.Errorf("%w: provider %q is not supported; use %q or %q", ErrConfig, cfg.GetProvider(), providerNATS, providerPostgres)
	}
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	if provider == providerPostgres {
		return planPostgres(name, cfg, targets, getenv)
	}
	if err := natsOnly(cfg); err != nil {
		return brokerPlan{}, err
	}
	target := strings.TrimSpace(cfg.GetDeployTarget())
	if target != "" && !slices.Contains(targets, target) {
		return brokerPlan{}, fmt.Errorf("%w: deploy_target %q is not valid for provider %s; valid targets: %s",
			ErrConfig, target, provider, strings.Join(targets, ", "))
	}
	hasEmbedded := cfg.GetEmbedded() != nil
	envVar := URLEnvVar(name)
	urls := splitURLs(cfg.GetDsn(), cfg.GetUrl(), cfg.GetUrls())
	var (
		reason string
		pinned bool
	)
	switch {
	case len(urls) > 0 && target == TargetEmbedded:
		return brokerPlan{}, fmt.Errorf("%w: deploy_target embedded runs the broker in the plugin process, but a URL is set (%s); remove dsn/url/urls or choose another deploy_target",
			ErrConfig, strings.Join(urls, ","))
	case len(urls) > 0 && hasEmbedded:
		return brokerPlan{}, fmt.Errorf("%w: embedded configures the broker this plugin runs, but dsn/url/urls name an external one (%s); keep one of them",
			ErrConfig, strings.Join(urls, ","))
	case hasEmbedded && target != "" && target != TargetEmbedded:
		return brokerPlan{}, fmt.Errorf("%w: embedded configures the broker this plugin runs, but deploy_target is %s; remove embedded or set deploy_target embedded",
			ErrConfig, target)
	case len(urls) > 0:
		reason = "dsn/url/urls in the config"
	case target == TargetEmbedded:
		reason, pinned = "deploy_target embedded in the config", true
	case strings.TrimSpace(getenv(envVar)) != "":
		urls, reason = splitURLs(getenv(envVar), "", nil), envVar+" is set"
		if hasEmbedded {
			reason += " (it overrides the embedded block of the config)"
		}
	case hasEmbedded:
		reason = "embedded block in the config"
		if strings.TrimSpace(getenv("NATS_URL")) != "" {
			reason += " (NATS_URL is set, but the config decides)"
		}
	case strings.TrimSpace(getenv("NATS_URL")) != "":
		urls, reason = splitURLs(getenv("NATS_URL"), "", nil), "NATS_URL is set"
	default:
		reason = "nothing names an external broker (dsn, url, urls, " + envVar + ", NATS_URL)"
	}
	if target == "" {
		target = TargetSelfHosted
		if len(urls) == 0 {
			target = TargetEmbedded
		}
	}
	if target != TargetEmbedded && len(urls) == 0 {
		return brokerPlan{}, fmt.Errorf("%w: deploy_target %s needs the broker's URL: set dsn (or url/urls), or %s, or NATS_URL",
			ErrConfig, target, envVar)
	}
	for _, u := range urls {
		if isPostgresURL(u) {
			return brokerPlan{}, fmt.Errorf("%w: %s is a PostgreSQL DSN, and this broker's provider is nats: set provider: postgres to keep the messages in that database",
				ErrConfig, postgres.RedactDSN(u))
		}
	}
	plan := brokerPlan{provider: providerNATS, target: target, urls: urls, reason: reason, pinned: pinned}
	connName := cfg.GetConnectionName()
	if connName == "" {
		connName = name
	}
	cred := cfg.GetCredentials()
	plan.connect = jetstream.ConnectConfig{
		URLs:        urls,
		Name:        connName,
		User:        cred.GetUser(),
		Password:    cred.GetPassword(),
		Token:       cred.GetToken(),
		NKeySeed:    cred.GetNkeySeed(),
		CredsFile:   cred.GetCredsFile(),
		TLSCAFile:   cred.GetTlsCaFile(),
		TLSCertFile: cred.GetTlsCertFile(),
		TLSKeyFile:  cred.GetTlsKeyFile(),
	}
	if target == TargetEmbedded {
		e := cfg.GetEmbedded()
		plan.embedded = embedded.Config{
			StoreDir:   e.GetStoreDir(),
			Host:       e.GetHost(),
			Port:       int(e.GetPort()),
			MemoryOnly: e.GetMemoryOnly(),
			SyncAlways: e.GetSyncAlways(),
			MaxPayload: e.GetMaxPayload(),
			ServerName: name,
		}
		if plan.embedded.StoreDir == "" {
			plan.embedded.StoreDir = defaultStoreDir
		}
		if configDir != "" && !filepath.IsAbs(plan.embedded.StoreDir) {
			plan.embedded.StoreDir = filepath.Join(configDir, plan.embedded.StoreDir)
		}
		if plan.embedded.Host == "" {
			plan.embedded.Host = defaultEmbedHost
		}
		if plan.embedded.Port == 0 {
			plan.embedded.Port = defaultEmbedPort
		}
	}
	return plan, nil
}

// natsOnly rejects the settings of a postgres broker on a nats one.
func natsOnly(cfg *eventbusv1.BrokerConfig) error {
	for _, f := range []struct {
		name string
		set  bool
	}{
		{"schema", cfg.GetSchema() != ""},
		{"notify", cfg.Notify != nil},
		{"max_payload", cfg.GetMaxPayload() != 0},
	} {
		if f.set {
			hint := ""
			if f.name == "max_payload" {
				hint = " (the embedded NATS server's is embedded.max_payload)"
			}
			return fmt.Errorf("%w: %s applies to provider postgres only, and this broker's provider is nats%s", ErrConfig, f.name, hint)
		}
	}
	return nil
}

// isPostgresURL reports a postgres:// or postgresql:// URL.
func isPostgresURL(s string) bool {
	s = strings.ToLower(strings.TrimSpace(s))
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// planPostgres validates the config of a postgres broker and resolves its
// database's DSN. The first of these that is set decides:
//
//  1. dsn or url in the config;
//  2. EVENTBUS_<NAME>_URI;
//  3. DATABASE_URL.
//
// The settings of NATS brokers (embedded, urls, credentials,
// deploy_target embedded) are errors that name the field: the plugin
// would otherwise drop them without a word.
func planPostgres(name string, cfg *eventbusv1.BrokerConfig, targets []string, getenv func(string) string) (brokerPlan, error) {
	fail := func(format string, args ...any) (brokerPlan, error) {
		return brokerPlan{}, fmt.Errorf("%w: "+format, append([]any{ErrConfig}, args...)...)
	}
	target := strings.TrimSpace(cfg.GetDeployTarget())
	switch {
	case target == TargetEmbedded:
		return fail("deploy_target embedded runs a NATS server in the plugin process; a postgres broker keeps its messages in a database of its own: remove deploy_target or use one of %s", strings.Join(targets, ", "))
	case target != "" && !slices.Contains(targets, target):
		return fail("deploy_target %q is not valid for provider postgres; valid targets: %s", target, strings.Join(targets, ", "))
	case target == "":
		target = TargetSelfHosted
	}
	if bt := strings.TrimSpace(cfg.GetBrokerTarget()); bt != "" && bt != brokerInProcess {
		return fail("broker_target %q: a postgres broker runs in the plugin process, so the only broker_target is %s", bt, brokerInProcess)
	}
	switch {
	case cfg.GetEmbedded() != nil:
		return fail("embedded configures the embedded NATS server, which a postgres broker does not run: remove embedded")
	case len(cfg.GetUrls()) > 0:
		return fail("urls lists NATS servers; give a postgres broker its database's DSN in dsn (or url)")
	case cfg.GetCredentials() != nil:
		return fail("credentials are NATS credentials; a postgres broker takes the database user and password in its DSN")
	}
	envVar := URLEnvVar(name)
	dsn, url := strings.TrimSpace(cfg.GetDsn()), strings.TrimSpace(cfg.GetUrl())
	var reason string
	switch {
	case dsn != "" && url != "" && dsn != url:
		return fail("dsn and url both name the database (%s, %s); keep one of them", postgres.RedactDSN(dsn), postgres.RedactDSN(url))
	case dsn != "" || url != "":
		dsn = cmp.Or(dsn, url)
		reason = "dsn/url in the config"
	case strings.TrimSpace(getenv(envVar)) != "":
		dsn, reason = strings.TrimSpace(getenv(envVar)), envVar+" is set"
	case strings.TrimSpace(getenv(databaseURLEnv)) != "":
		dsn, reason = strings.TrimSpace(getenv(databaseURLEnv)), databaseURLEnv+" is set"
	default:
		return fail("provider postgres needs the database's DSN (postgres://user:password@host:5432/db): set dsn (or url), or %s, or %s", envVar, databaseURLEnv)
	}
	pc := postgres.Config{
		DSN:             dsn,
		Schema:          cfg.GetSchema(),
		PollInterval:    duration(cfg.GetPollInterval()),
		MaxConns:        cfg.GetMaxConns(),
		PollOnly:        cfg.Notify != nil && !cfg.GetNotify(),
		ApplicationName: cmp.Or(cfg.GetConnectionName(), name),
	}
	if err := pc.Validate(); err != nil {
		// The error names the field (dsn, schema, poll_interval, max_conns).
		return fail("%w (DSN from %s)", err, reason)
	}
	maxPayload := int(cfg.GetMaxPayload())
	if maxPayload < 0 || maxPayload > maxPostgresPayload {
		return fail("max_payload %d is not between 1 and %d (0 means %d)", maxPayload, maxPostgresPayload, postgres.DefaultMaxPayload)
	}
	return brokerPlan{provider: providerPostgres, target: target, postgres: pc, pgMaxPayload: maxPayload, reason: reason}, nil
}

// URLEnvVar is the environment variable that gives the URL of the broker
// module name: EVENTBUS_<NAME>_URI, upper-cased with '-' and '.' as '_'.
func URLEnvVar(name string) string {
	n := strings.ToUpper(strings.NewReplacer("-", "_", ".", "_").Replace(name))
	return "EVENTBUS_" + n + "_URI"
}

func splitURLs(dsn, url string, urls []string) []string {
	var out []string
	for _, s := range append([]string{dsn, url}, urls...) {
		for _, u := range strings.Split(s, ",") {
			if u = strings.TrimSpace(u); u != "" {
				out = append(out, u)
			}
		}
	}
	return out
}

// broker is an eventbus.broker module: one connection to a NATS server, an
// embedded server and its connection, or a PostgreSQL connection pool.
// Start is idempotent, so modules that depend on the broker can start it
// themselves, whatever order the host starts modules in.
type broker struct {
	name   string
	plan   brokerPlan
	log    *slog.Logger
	opts   []jetstream.Option
	pgOpts []postgres.Option

	// keys sign and check the bus's ack tokens.
	keys tokenKeys

	mu  sync.Mutex
	srv *embedded.Server
	bus bus.Bus
}

func newBroker(name string, cfg *eventbusv1.BrokerConfig, configDir string, getenv func(string) string, log *slog.Logger, opts []jetstream.Option, pgOpts []postgres.Option) (*broker, error) {
	plan, err := planBroker(name, cfg, configDir, getenv)
	if err != nil {
		return nil, err
	}
	keys, err := resolveTokenKeys(cfg, configDir, getenv)
	if err != nil {
		return nil, err
	}
	opts = append(slices.Clip(opts), keys.jetstreamOptions()...)
	pgOpts = append(slices.Clip(pgOpts), keys.postgresOptions()...)
	return &broker{name: name, plan: plan, log: log.With("broker", name), opts: opts, pgOpts: pgOpts, keys: keys}, nil
}

func (b *broker) Init(context.Context) error { return nil }

// Start connects to the broker, starting the embedded server first when the
// broker is embedded.
func (b *broker) Start(ctx context.Context) error {
	_, err := b.ensure(ctx)
	return err
}

// ensure starts the broker if it is not running and returns its bus.
func (b *broker) ensure(ctx context.Context) (bus.Bus, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.bus != nil {
		return b.bus, nil
	}
	var (
		jb  bus.Bus
		err error
	)
	switch {
	case b.plan.provider == providerPostgres:
		jb, err = b.connectPostgres(ctx)
	case b.plan.target == TargetEmbedded:
		jb, err = b.startEmbedded(ctx)
	default:
		jb, err = b.connect(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("broker %s: %w", b.name, err)
	}
	b.bus = jb
	return jb, nil
}

func (b *broker) startEmbedded(ctx context.Context) (bus.Bus, error) {
	cfg := b.plan.embedded
	cfg.Logger = b.log
	srv, err := embedded.Start(ctx, cfg)
	var inUse *embedded.StoreInUseError
	switch {
	case errors.Is(err, embedded.ErrPortInUse):
		return nil, fmt.Errorf("%w; to use the broker already listening there instead, %s nats://%s",
			err, b.useInstead(), net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port)))
	case errors.As(err, &inUse):
		serves := inUse.URL
		if serves == "" {
			serves = "its URL"
		}
		return nil, fmt.Errorf("%w (embedded.store_dir); to use that broker instead of starting a second one, %s %s",
			err, b.useInstead(), serves)
	case err != nil:
		return nil, err
	}
	nc, err := srv.Connect()
	if err != nil {
		_ = srv.Shutdown(ctx)
		return nil, err
	}
	jb, err := jetstream.New(nc, append(b.opts, jetstream.WithOwnedConn(), jetstream.WithLogger(b.log))...)
	if err != nil {
		nc.Close()
		_ = srv.Shutdown(ctx)
		return nil, err
	}
	b.srv = srv
	store := cfg.StoreDir
	if cfg.MemoryOnly {
		store = "none (memory only)"
	}
	b.log.Info("embedded broker started", "url", srv.ClientURL(), "store_dir", store, "reason", b.plan.reason, "token_key", b.keys.source)
	return jb, nil
}

// useInstead says how to point this broker at a running server instead of
// the embedded one, ending where the server's URL goes: the variable named
// after the broker overrides an embedded block, NATS_URL does not (see
// planBroker).
func (b *broker) useInstead() string {
	if b.plan.pinned {
		return "replace deploy_target embedded with dsn:"
	}
	return "set dsn (in place of embedded) or " + URLEnvVar(b.name) + " to"
}

func (b *broker) connect(ctx context.Context) (bus.Bus, error) {
	// The server the connection was last on: a disconnect is reported
	// after the connection has let go of it.
	var server atomic.Value
	nc, err := jetstream.Connect(ctx, b.plan.connect,
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if nc.IsClosed() {
				return // closed on purpose, at stop
			}
			b.log.Warn("lost the connection to the broker; reconnecting", "server", server.Load(), "error", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			server.Store(nc.ConnectedUrlRedacted())
			b.log.Info("reconnected to the broker", "server", nc.ConnectedUrlRedacted())
		}))
	if err != nil {
		return nil, err
	}
	server.Store(nc.ConnectedUrlRedacted())
	jb, err := jetstream.New(nc, append(b.opts, jetstream.WithOwnedConn(), jetstream.WithLogger(b.log))...)
	if err != nil {
		nc.Close()
		return nil, err
	}
	b.log.Info("connected to an external broker", "server", nc.ConnectedUrlRedacted(), "servers", strings.Join(redactURLs(b.plan.urls), ","), "reason", b.plan.reason, "token_key", b.keys.source)
	return jb, nil
}

// connectPostgres connects to the broker's database and migrates its
// schema. A database that cannot be reached is an error naming it, its
// password left out.
func (b *broker) connectPostgres(ctx context.Context) (bus.Bus, error) {
	cfg := b.plan.postgres
	opts := []postgres.Option{postgres.WithLogger(b.log)}
	if b.plan.pgMaxPayload > 0 {
		opts = append(opts, postgres.WithMaxPayload(b.plan.pgMaxPayload))
	}
	pb, err := postgres.Connect(ctx, cfg, append(opts, b.pgOpts...)...)
	if err != nil {
		return nil, fmt.Errorf("database %s (DSN from %s): %w", postgres.RedactDSN(cfg.DSN), b.plan.reason, err)
	}
	schema := cmp.Or(cfg.Schema, postgres.DefaultSchema)
	b.log.Info("connected to PostgreSQL", "dsn", postgres.RedactDSN(cfg.DSN), "schema", schema, "notify", !cfg.PollOnly, "reason", b.plan.reason)
	return pb, nil
}

// redactURLs returns urls with any password or token in them replaced.
func redactURLs(urls []string) []string {
	out := make([]string, len(urls))
	for i, raw := range urls {
		out[i] = raw
		if u, err := url.Parse(raw); err == nil && u.User != nil {
			u.User = url.User("redacted")
			out[i] = u.String()
		} else if at := strings.LastIndex(raw, "@"); err != nil && at >= 0 {
			out[i] = "redacted" + raw[at:]
		}
	}
	return out
}

// running returns the bus of a started broker.
func (b *broker) running() (bus.Bus, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.bus == nil {
		return nil, fmt.Errorf("%w: %s", ErrNotStarted, b.name)
	}
	return b.bus, nil
}

// Stop closes the connection and shuts the embedded server down. Idempotent.
func (b *broker) Stop(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	var errs []error
	if b.bus != nil {
		errs = append(errs, b.bus.Close())
		b.bus = nil
	}
	if b.srv != nil {
		errs = append(errs, b.srv.Shutdown(ctx))
		b.srv = nil
	}
	return errors.Join(errs...)
}

// ConnectionState is the state of a broker's connection.
type ConnectionState struct {
	Broker string
	bus.ConnectionState
}

// connectionReporter is a bus that reports its connection.
type connectionReporter interface {
	ConnectionState() bus.ConnectionState
}

// ConnectionStates reports the connection of every running broker whose
// backend reports one, sorted by broker. It does no I/O.
func (p *Plugin) ConnectionStates() []ConnectionState {
	var out []ConnectionState
	for _, b := range p.allBrokers() {
		jb, err := b.running()
		if err != nil {
			continue
		}
		if r, ok := jb.(connectionReporter); ok {
			out = append(out, ConnectionState{Broker: b.name, ConnectionState: r.ConnectionState()})
		}
	}
	return out
}

var (
	_ bus.Bus = (*jetstream.Bus)(nil)
	_ bus.Bus = (*postgres.Bus)(nil)
)
