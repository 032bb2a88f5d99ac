package eventbus

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/wfeventbus/eventbus/bus"
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

func newStreamModule(p *Plugin, module string, c *eventbusv1.StreamConfig) (*streamModule, error) {
	name := c.GetName()
	if name == "" {
		name = module
	}
	cfg := streamConfig(c, name)
	if len(cfg.Subjects) == 0 {
		return nil, fmt.Errorf("%w: config.subjects is required: the subjects the stream captures, for example [\"orders.>\"]", ErrConfig)
	}
	return &streamModule{p: p, module: module, brokerRef: c.GetBrokerRef(), cfg: cfg, ackWait: duration(c.GetAckWait())}, nil
}

// Init checks that the broker exists.
func (s *streamModule) Init(context.Context) error {
	if _, err := s.p.broker(s.brokerRef); err != nil {
		return fmt.Errorf("module %s: %w", s.module, err)
	}
	return nil
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
		return fmt.Errorf("module %s: %w", s.module, err)
	}
	jb, err := b.ensure(ctx)
	if err != nil {
		return fmt.Errorf("module %s: %w", s.module, err)
	}
	if _, err := jb.EnsureStream(ctx, s.cfg); err != nil {
		return fmt.Errorf("module %s: stream %s: %w", s.module, s.cfg.Name, err)
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
