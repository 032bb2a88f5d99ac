package eventbus

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/wfeventbus/eventbus/bus"
	"github.com/wfeventbus/eventbus/bus/jetstream"
	eventbusv1 "github.com/wfeventbus/eventbus/gen/eventbus/v1"
)

// streamModule is an eventbus.stream module: Start creates the stream on its
// broker or updates it to the config.
type streamModule struct {
	p         *Plugin
	module    string
	brokerRef string
	cfg       bus.StreamConfig
	// ackWait is the ack wait consumers of this stream inherit when they set none.
	ackWait time.Duration

	mu      sync.Mutex
	started bool
}

func newStreamModule(p *Plugin, module string, c *eventbusv1.StreamConfig, ck *checks) *streamModule {
	name := c.GetName()
	if name == "" {
		name = module
	}
	cfg := streamConfig(c, name)
	if len(cfg.Subjects) == 0 {
		ck.fail("config.subjects", "required: the subjects the stream stores, for example [\"orders.>\"]")
	}
	for i, subj := range cfg.Subjects {
		ck.checkSubject(fmt.Sprintf("config.subjects[%d]", i), subj, true)
	}
	return &streamModule{p: p, module: module, brokerRef: c.GetBrokerRef(), cfg: cfg, ackWait: duration(c.GetAckWait())}
}

// Init checks the stream against its broker: the broker exists, can hold
// the stream's replicas and messages, and no stream created before this one
// stores any of its subjects.
func (s *streamModule) Init(context.Context) error {
	c := s.p.checks("module " + s.module)
	b, err := s.p.broker(s.brokerRef)
	if err != nil {
		c.add(err)
		return c.err()
	}
	c.backend(jetstream.CheckStream(s.cfg))
	if n := s.cfg.Replicas; n > 1 && n <= maxReplicas && b.singleNode() {
		c.fail("config.num_replicas", "%d replicas on broker %s, a single server (embedded), which holds 1; use 1, or a cluster of at least %d servers", n, b.name, n)
	}
	if n := s.cfg.MaxMsgSize; n > 0 && int(n) > b.maxPayload() {
		c.fail("config.max_msg_size", "%d bytes is more than broker %s accepts (max_payload %d bytes), so messages that large are refused anyway", n, b.name, b.maxPayload())
	}
	for _, other := range s.p.streamsOn(b) {
		if other == s {
			break
		}
		for i, subj := range s.cfg.Subjects {
			for _, theirs := range other.cfg.Subjects {
				if subjectsCollide(subj, theirs) {
					c.fail(fmt.Sprintf("config.subjects[%d]", i), "%q overlaps %q of stream %s (module %s) on broker %s; a subject is stored by one stream only", subj, theirs, other.cfg.Name, other.module, b.name)
				}
			}
		}
	}
	return c.err()
}

// Start creates or updates the stream, starting its broker first if the host
// has not yet.
func (s *streamModule) Start(ctx context.Context) error { return s.ensure(ctx) }

func (s *streamModule) ensure(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return nil
	}
	b, err := s.p.broker(s.brokerRef)
	if err != nil {
		return err
	}
	jb, err := b.ensure(ctx)
	if err != nil {
		return err
	}
	if _, err := jb.EnsureStream(ctx, s.cfg); err != nil {
		return err
	}
	s.p.metrics.StreamDeclared(s.cfg.Name)
	s.started = true
	return nil
}

// Stop lets the stream be; its messages outlive the app.
func (s *streamModule) Stop(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.started = false
	return nil
}
