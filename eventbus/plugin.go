package eventbus

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/wfeventbus/eventbus/bus/jetstream"
	"github.com/wfeventbus/eventbus/bus/postgres"
	eventbusv1 "github.com/wfeventbus/eventbus/gen/eventbus/v1"
	"github.com/wfeventbus/eventbus/internal/envref"
	"github.com/wfeventbus/eventbus/internal/protomap"
)

// Module, step and trigger types. The infra.* names are the older spellings,
// still accepted.
const (
	TypeBroker        = "eventbus.broker"
	TypeStream        = "eventbus.stream"
	TypeConsumer      = "eventbus.consumer"
	TypeBrokerAlias   = "infra.eventbus"
	TypeStreamAlias   = "infra.eventbus.stream"
	TypeConsumerAlias = "infra.eventbus.consumer"

	StepPublish    = "step.eventbus.publish"
	StepConsume    = "step.eventbus.consume"
	StepAck        = "step.eventbus.ack"
	StepNak        = "step.eventbus.nak"
	StepTerm       = "step.eventbus.term"
	StepInProgress = "step.eventbus.in_progress"

	TriggerSubscribe = "trigger.eventbus.subscribe"
)

// Module is a created module instance.
type Module interface {
	Init(ctx context.Context) error
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
}

// Step is a created step instance.
type Step interface {
	// Execute runs the step once, returning JSON-shaped output.
	Execute(ctx context.Context, in StepInput) (map[string]any, error)
}

// StepInput is one execution's data, converted only when a step asks.
type StepInput interface {
	// Config is the step's config rendered for this execution.
	Config() map[string]any
	// Current returns one key of the pipeline's current data.
	Current(key string) (any, bool)
	// Trigger returns one key of the data the pipeline was triggered with,
	// which steps do not change.
	Trigger(key string) (any, bool)
}

// MapInput is a StepInput held in plain maps.
type MapInput struct {
	Rendered map[string]any
	Data     map[string]any
	// TriggerData is the pipeline's trigger data.
	TriggerData map[string]any
}

// Config returns the rendered config.
func (in MapInput) Config() map[string]any { return in.Rendered }

// Current returns one key of the current data.
func (in MapInput) Current(key string) (any, bool) {
	v, ok := in.Data[key]
	return v, ok
}

// Trigger returns one key of the trigger data.
func (in MapInput) Trigger(key string) (any, bool) {
	v, ok := in.TriggerData[key]
	return v, ok
}

// Trigger is a created trigger instance.
type Trigger interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
}

// RunFunc runs the pipeline a trigger fires with data (JSON-shaped) and
// returns when it has finished; an error means the pipeline failed.
type RunFunc func(ctx context.Context, data map[string]any) error

// Options configure a Plugin.
type Options struct {
	// Logger receives the plugin's logs (default: discarded).
	Logger *slog.Logger
	// Getenv resolves broker URLs (EVENTBUS_<NAME>_URI, NATS_URL) and the
	// brokers' token keys (EVENTBUS_TOKEN_KEY, EVENTBUS_TOKEN_KEY_PREVIOUS)
	// from the environment; nil reads nothing.
	Getenv func(string) string
	// BusOptions are passed to the bus of every NATS broker.
	BusOptions []jetstream.Option
	// PostgresOptions are passed to the bus of every postgres broker,
	// after the plugin's own (logger, max payload).
	PostgresOptions []postgres.Option
	// Metrics receives counts of what the plugin does; nil counts nothing.
	Metrics Metrics
	// Warn receives each Warning about a config the plugin accepts, within
	// the CreateModule, InitModule, CreateStep or CreateTrigger call that
	// finds it; nil logs them at warn level.
	Warn func(Warning)
}

// Plugin owns every module, step and trigger it creates.
type Plugin struct {
	log     *slog.Logger
	getenv  func(string) string
	busOpts []jetstream.Option
	pgOpts  []postgres.Option
	metrics Metrics
	warn    func(Warning)

	mu          sync.Mutex
	brokers     map[string]*broker           // by module name
	streams     map[string][]*streamModule   // by stream name; one per broker
	streamOrder []*streamModule              // in creation order
	consumers   map[string][]*consumerModule // by durable name; one per broker
	inUse       map[consumerKey]*broker      // consumers set up, for ConsumerStates
	// invalid holds "<module type>\x00<name>" for the names declared by
	// modules whose creation failed.
	invalid map[string]bool
	// invalidSubjects are the subjects of those streams (">" for one whose
	// subjects are not known).
	invalidSubjects []string
}

// New returns an empty Plugin.
func New(opts Options) *Plugin {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	m := opts.Metrics
	if m == nil {
		m = noMetrics{}
	}
	return &Plugin{
		log:       log,
		getenv:    opts.Getenv,
		busOpts:   opts.BusOptions,
		pgOpts:    opts.PostgresOptions,
		metrics:   m,
		warn:      opts.Warn,
		brokers:   map[string]*broker{},
		streams:   map[string][]*streamModule{},
		consumers: map[string][]*consumerModule{},
		inUse:     map[consumerKey]*broker{},
		invalid:   map[string]bool{},
	}
}

// ModuleTypes lists the module types, aliases included, in a fixed order.
func ModuleTypes() []string {
	return []string{TypeBroker, TypeStream, TypeConsumer, TypeBrokerAlias, TypeStreamAlias, TypeConsumerAlias}
}

// StepTypes lists the step types in a fixed order.
func StepTypes() []string {
	return []string{StepPublish, StepConsume, StepAck, StepNak, StepTerm, StepInProgress}
}

// TriggerTypes lists the trigger types.
func TriggerTypes() []string { return []string{TriggerSubscribe} }

// canonicalModuleType maps an alias to its module type.
func canonicalModuleType(t string) string {
	switch t {
	case TypeBrokerAlias:
		return TypeBroker
	case TypeStreamAlias:
		return TypeStream
	case TypeConsumerAlias:
		return TypeConsumer
	}
	return t
}

// decode reads a config map into msg; every problem is reported, each with
// its field path under prefix.
func decode(config map[string]any, msg proto.Message, prefix string, templates bool) error {
	opts := []protomap.Option{protomap.Path(prefix)}
	if templates {
		opts = append(opts, protomap.AllowTemplates())
	}
	if err := protomap.Decode(config, msg, opts...); err != nil {
		return &configError{err}
	}
	return nil
}

// CreateModule creates a module of type typ named name from its config.
// References to environment variables that the host left in the config's
// strings are resolved first, ${NAME:-default} included (see
// ExpandEnvDefaults). Every problem of the config is reported at once (see
// check.go); what it says about other modules is checked by Init.
func (p *Plugin) CreateModule(_ context.Context, typ, name string, config map[string]any) (Module, error) {
	config = ExpandEnvDefaults(config, p.getenv)
	m, err := p.createModule(typ, name, config)
	if err != nil {
		p.markInvalid(typ, name, config)
		return nil, err
	}
	return m, nil
}

func (p *Plugin) createModule(typ, name string, config map[string]any) (Module, error) {
	c := p.checks("module " + name)
	switch canonicalModuleType(typ) {
	case TypeBroker:
		cfg := &eventbusv1.BrokerConfig{}
		if err := decode(config, cfg, "config", false); err != nil {
			return nil, err
		}
		configDir, _ := config["_config_dir"].(string)
		b, err := newBroker(name, cfg, configDir, p.getenv, p.log, p.busOpts, p.pgOpts)
		if err != nil {
			return nil, err
		}
		if err := b.checkPlan(); err != nil {
			return nil, err
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		if _, dup := p.brokers[name]; dup {
			return nil, fmt.Errorf("%w: a broker named %s already exists", ErrConfig, name)
		}
		p.brokers[name] = b
		return b, nil
	case TypeStream:
		cfg := &eventbusv1.StreamConfig{}
		if err := decode(config, cfg, "config", false); err != nil {
			return nil, err
		}
		s := newStreamModule(p, name, cfg, c)
		if !c.ok() {
			return nil, c.err()
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, other := range p.streams[s.cfg.Name] {
			if other.brokerRef == s.brokerRef {
				return nil, fmt.Errorf("%w: stream %s is declared twice on one broker (modules %s and %s)", ErrConfig, s.cfg.Name, other.module, name)
			}
		}
		p.streams[s.cfg.Name] = append(p.streams[s.cfg.Name], s)
		p.streamOrder = append(p.streamOrder, s)
		return s, nil
	case TypeConsumer:
		cfg := &eventbusv1.ConsumerConfig{}
		if err := decode(config, cfg, "config", false); err != nil {
			return nil, err
		}
		cm := newConsumerModule(p, name, cfg, c)
		if !c.ok() {
			return nil, c.err()
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, other := range p.consumers[cm.settings.Durable] {
			if other.brokerRef == cm.brokerRef {
				return nil, fmt.Errorf("%w: consumer %s is declared twice on one broker (modules %s and %s)", ErrConfig, cm.settings.Durable, other.module, name)
			}
		}
		p.consumers[cm.settings.Durable] = append(p.consumers[cm.settings.Durable], cm)
		return cm, nil
	}
	return nil, fmt.Errorf("%w: module type %q (known: %s)", ErrUnknownType, typ, strings.Join(ModuleTypes(), ", "))
}

// ExpandEnvDefaults returns a copy of a module config whose strings have
// their ${NAME}, ${env:NAME} and ${NAME:-default} references resolved from
// getenv, with the engine's naming rules (upper-cased, "." as "_"). A
// variable set to "" counts as unset; default is used for an unset one. A
// string with any reference that does not resolve is kept as written. The
// engine leaves strings with a default unexpanded for the plugin, so a
// default written this way works under both hosts.
func ExpandEnvDefaults(config map[string]any, getenv func(string) string) map[string]any {
	lookup := func(name string) (string, bool) {
		if getenv == nil {
			return "", false
		}
		v := getenv(name)
		return v, v != ""
	}
	out, _ := envref.Walk(config, func(s string) string {
		v, _ := envref.ExpandDefaults(s, lookup)
		return v
	}).(map[string]any)
	if out == nil {
		out = map[string]any{}
	}
	return out
}

// broker resolves a broker_ref: the named broker, or the only one. An
// error names the field config.broker_ref.
func (p *Plugin) broker(ref string) (*broker, error) {
	return p.brokerAt("config.broker_ref", ref)
}

// brokerAt resolves a broker reference written in field.
func (p *Plugin) brokerAt(field, ref string) (*broker, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.brokerLocked(field, ref)
}

func (p *Plugin) brokerLocked(field, ref string) (*broker, error) {
	if ref != "" {
		if b, ok := p.brokers[ref]; ok {
			return b, nil
		}
		if p.invalid[TypeBroker+"\x00"+ref] {
			return nil, errInvalidTarget
		}
		return nil, &fieldError{field: field, kind: ErrUnknownRef, msg: fmt.Sprintf("no %s module named %q (declared: %s)", TypeBroker, ref, listOrNone(p.brokers))}
	}
	switch len(p.brokers) {
	case 1:
		for _, b := range p.brokers {
			return b, nil
		}
	case 0:
		for k := range p.invalid {
			if strings.HasPrefix(k, TypeBroker+"\x00") {
				return nil, errInvalidTarget
			}
		}
		return nil, &fieldError{field: field, kind: ErrUnknownRef, msg: fmt.Sprintf("no %s module is declared; add one (it needs no config to run an embedded broker)", TypeBroker)}
	}
	return nil, &fieldError{field: field, kind: ErrUnknownRef, msg: fmt.Sprintf("required when several brokers are declared (%s)", listOrNone(p.brokers))}
}

// allBrokers returns every broker, sorted by name.
func (p *Plugin) allBrokers() []*broker {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]*broker, 0, len(p.brokers))
	for _, b := range p.brokers {
		out = append(out, b)
	}
	slices.SortFunc(out, func(a, b *broker) int { return strings.Compare(a.name, b.name) })
	return out
}

// stream returns the stream module that declares name on b, if any.
func (p *Plugin) stream(b *broker, name string) *streamModule {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.streams[name] {
		if on, err := p.brokerLocked("", s.brokerRef); err == nil && on == b {
			return s
		}
	}
	return nil
}

// consumer returns the consumer module that declares durable on b, if any.
func (p *Plugin) consumer(b *broker, durable string) *consumerModule {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.consumers[durable] {
		if on, err := p.brokerLocked("", c.brokerRef); err == nil && on == b {
			return c
		}
	}
	return nil
}

func listOrNone[V any](m map[string]V) string {
	if len(m) == 0 {
		return "none"
	}
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}
