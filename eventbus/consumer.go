package eventbus

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"sync"

	"github.com/wfeventbus/eventbus/bus/jetstream"
	eventbusv1 "github.com/wfeventbus/eventbus/gen/eventbus/v1"
)

// consumerModule is an eventbus.consumer module: Start creates the durable
// consumer or updates it to the config.
type consumerModule struct {
	p         *Plugin
	module    string
	brokerRef string
	settings  consumerSettings
	// filterFields names the field of each filter subject, for messages.
	filterFields []string

	mu      sync.Mutex
	started bool
}

func newConsumerModule(p *Plugin, module string, c *eventbusv1.ConsumerConfig, ck *checks) *consumerModule {
	durable := c.GetName()
	if durable == "" {
		durable = module
	}
	s := newConsumerSettings(c, durable, c.GetStreamName())
	s.Description = c.GetDescription()
	if s.Stream == "" {
		ck.fail("config.stream_name", "required: the stream the consumer reads")
	}
	s.check(ck, filterFields(c.GetFilterSubject(), c.GetFilterSubjects()))
	return &consumerModule{p: p, module: module, brokerRef: c.GetBrokerRef(), settings: s, filterFields: filterFields(c.GetFilterSubject(), c.GetFilterSubjects())}
}

// Init checks the consumer against its broker and the app's streams: the
// broker exists and accepts the settings, the stream is declared, the
// filters can match, and a stream stores the dead-letter subject.
func (c *consumerModule) Init(context.Context) error {
	ck := c.p.checks("module " + c.module)
	b, err := c.p.broker(c.brokerRef)
	if err != nil {
		ck.add(err)
		return ck.err()
	}
	ck.backend(jetstream.CheckConsumer(c.settings.bus()))
	ck.consumerRefs(b, c.settings, "config.stream_name", c.filterFields)
	return ck.err()
}

// Start creates or updates the consumer, first starting its broker and its
// stream when they are declared in the app and not yet started.
func (c *consumerModule) Start(ctx context.Context) error { return c.ensure(ctx) }

func (c *consumerModule) ensure(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.started {
		return nil
	}
	if err := c.p.ensureConsumer(ctx, c.brokerRef, c.settings); err != nil {
		return err
	}
	c.started = true
	return nil
}

// Stop lets the consumer be: it is durable and keeps its place.
func (c *consumerModule) Stop(context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.started = false
	return nil
}

// ensureConsumer creates or updates a durable consumer on brokerRef's broker,
// starting the broker and the stream module of s.Stream (when one is
// declared) first. A consumer with no ack wait inherits its stream module's.
func (p *Plugin) ensureConsumer(ctx context.Context, brokerRef string, s consumerSettings) error {
	b, err := p.broker(brokerRef)
	if err != nil {
		return err
	}
	jb, err := b.ensure(ctx)
	if err != nil {
		return err
	}
	if sm := p.stream(b, s.Stream); sm != nil {
		if err := sm.ensure(ctx); err != nil {
			return err
		}
		if s.AckWait == 0 {
			s.AckWait = sm.ackWait
		}
	}
	if _, err := jb.EnsureConsumer(ctx, s.bus()); err != nil {
		return err
	}
	p.metrics.ConsumerDeclared(s.Stream, s.Durable)
	p.mu.Lock()
	p.inUse[consumerKey{broker: b.name, stream: s.Stream, durable: s.Durable}] = b
	p.mu.Unlock()
	return nil
}

// consumerKey names a consumer on a broker.
type consumerKey struct{ broker, stream, durable string }

// ConsumerState is a consumer's backlog as its broker reports it.
type ConsumerState struct {
	Broker   string
	Stream   string
	Consumer string
	// Pending counts messages not yet delivered.
	Pending uint64
	// AckPending counts delivered messages not yet settled.
	AckPending int
}

// ConsumerStates reports the backlog of every consumer the plugin's modules
// and triggers have set up, on brokers that are running, sorted by broker,
// stream and consumer. Consumers whose broker cannot answer are left out.
func (p *Plugin) ConsumerStates(ctx context.Context) []ConsumerState {
	p.mu.Lock()
	keys := make([]consumerKey, 0, len(p.inUse))
	brokers := make([]*broker, 0, len(p.inUse))
	for k, b := range p.inUse {
		keys = append(keys, k)
		brokers = append(brokers, b)
	}
	p.mu.Unlock()
	var out []ConsumerState
	for i, k := range keys {
		jb, err := brokers[i].running()
		if err != nil {
			continue
		}
		info, err := jb.ConsumerInfo(ctx, k.stream, k.durable)
		if err != nil {
			continue
		}
		out = append(out, ConsumerState{Broker: k.broker, Stream: k.stream, Consumer: k.durable, Pending: info.NumPending, AckPending: info.NumAckPending})
	}
	slices.SortFunc(out, func(a, b ConsumerState) int {
		return cmp.Or(strings.Compare(a.Broker, b.Broker), strings.Compare(a.Stream, b.Stream), strings.Compare(a.Consumer, b.Consumer))
	})
	return out
}
