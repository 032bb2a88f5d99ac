package eventbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wfeventbus/eventbus/bus"
	"github.com/wfeventbus/eventbus/bus/jetstream"
	eventbusv1 "github.com/wfeventbus/eventbus/gen/eventbus/v1"
)

// Headers a dead-lettered message carries besides its own.
const (
	HeaderError         = "Eventbus-Error"
	HeaderDeliveryCount = "Eventbus-Delivery-Count"
	HeaderSubject       = "Eventbus-Subject"
	HeaderStream        = "Eventbus-Stream"
	HeaderSequence      = "Eventbus-Sequence"
	// HeaderOriginalPrefix prefixes the input's headers that the broker
	// would act on (those beginning with Nats-: Nats-Msg-Id,
	// Nats-Expected-Stream, Nats-Rollup, Nats-TTL, ...), which a dead
	// letter keeps under this name only: as controls they could keep the
	// dead letter from being stored, or make it remove other messages.
	HeaderOriginalPrefix = "Eventbus-Original-"
)

const (
	defaultBackoffStart = time.Second
	defaultBackoffMax   = time.Minute
	defaultAckWait      = 30 * time.Second
	// A dead letter the broker does not take yet is sent again after
	// deadLetterRetryStart, then twice as long each time up to
	// deadLetterRetryMax, until it is stored or the trigger stops.
	deadLetterRetryStart = 100 * time.Millisecond
	deadLetterRetryMax   = 5 * time.Second
)

// subscribeTrigger is trigger.eventbus.subscribe: it runs its pipeline once
// per message of a durable consumer. Success acks the message; failure naks
// it with backoff; the last allowed delivery that fails is terminated, once
// published to the dead-letter subject when the consumer has one. The
// subscription keeps each message alive (in progress) from its arrival
// until its pipeline has finished, so a pipeline longer than the ack wait
// still runs once.
//
// With a dead-letter subject, the broker's consumer has no max_deliver of
// its own (see consumerSettings.bus): the trigger counts the deliveries,
// and a message whose dead letter could not be stored before the trigger
// stopped is not lost to the broker's limit but delivered again, to be
// dead-lettered without running the pipeline once more.
type subscribeTrigger struct {
	p         *Plugin
	workflow  string
	run       RunFunc
	brokerRef string
	settings  consumerSettings
	opts      bus.SubscribeOptions
	log       *slog.Logger

	// Set at Start from the consumer as the broker has it.
	ackWait    time.Duration
	maxDeliver int

	mu     sync.Mutex
	sub    bus.Subscription
	cancel context.CancelFunc
}

// CreateTrigger creates a trigger of type typ that runs workflowType (the
// engine's pipeline:<name>) through run.
func (p *Plugin) CreateTrigger(_ context.Context, typ, workflowType string, config map[string]any, run RunFunc) (Trigger, error) {
	if typ != TriggerSubscribe {
		return nil, fmt.Errorf("%w: trigger type %q (known: %s)", ErrUnknownType, typ, TriggerSubscribe)
	}
	return p.newSubscribeTrigger(workflowType, config, run)
}

func (p *Plugin) newSubscribeTrigger(workflowType string, config map[string]any, run RunFunc) (*subscribeTrigger, error) {
	if run == nil {
		return nil, fmt.Errorf("%w: no pipeline runner", ErrConfig)
	}
	cfg := &eventbusv1.SubscribeTriggerConfig{}
	if err := decode(config, cfg, "config", false); err != nil {
		return nil, err
	}
	c := p.checks("trigger " + workflowType)
	durable, nameField := oneOf(c, "name", cfg.GetName(), "consumer", cfg.GetConsumer())
	if durable == "" {
		c.fail("config.name", "required (or consumer): the durable consumer to read")
	}
	brokerRef, refField := oneOf(c, "broker_ref", cfg.GetBrokerRef(), "bus", cfg.GetBus())
	if cfg.GetConcurrency() < 0 {
		c.fail("config.concurrency", "must be 1 or more, got %d", cfg.GetConcurrency())
	}
	if durable == "" {
		return nil, c.err()
	}
	t := &subscribeTrigger{
		p:         p,
		workflow:  workflowType,
		run:       run,
		brokerRef: brokerRef,
		// A run's ack need not hold up the next run; the subscription
		// makes sure the broker has every ack when the trigger stops.
		opts: bus.SubscribeOptions{
			Concurrency:      max(1, int(cfg.GetConcurrency())),
			OrderedBySubject: cfg.GetOrderedBySubject(),
			UnconfirmedAcks:  true,
		},
		log: p.log.With("trigger", TriggerSubscribe, "workflow", workflowType, "consumer", durable),
	}
	cm, err := p.triggerConsumer(refField, brokerRef, durable)
	if err != nil {
		c.add(err)
		return nil, c.err()
	}
	if cm != nil {
		// The consumer module owns the consumer's settings; the trigger may
		// only restate its stream.
		if s := cfg.GetStreamName(); s != "" && s != cm.settings.Stream {
			c.fail("config.stream_name", "%q differs from stream %q of consumer module %s", s, cm.settings.Stream, cm.module)
		}
		for _, k := range consumerKeys() {
			if _, set := config[k]; set {
				c.warn("config."+k, "ignored: consumer module %s declares consumer %s, so its settings apply; set %s there", cm.module, durable, k)
			}
		}
		t.settings = cm.settings
		if t.brokerRef == "" {
			t.brokerRef = cm.brokerRef
		}
		if !c.ok() {
			return nil, c.err()
		}
		return t, nil
	}
	if p.isInvalid(TypeConsumer, durable) {
		// The consumer module's own problems stop the app.
		if !c.ok() {
			return nil, c.err()
		}
		return t, nil
	}
	if cfg.GetStreamName() == "" {
		c.unknown(nameField, "no %s module declares consumer %q; declare one, or give stream_name (and the consumer's settings) to have the trigger create it", TypeConsumer, durable)
		return nil, c.err()
	}
	t.settings = newConsumerSettings(cfg, durable, cfg.GetStreamName())
	fields := filterFields(cfg.GetFilterSubject(), cfg.GetFilterSubjects())
	t.settings.check(c, fields)
	b, err := p.brokerAt(refField, t.brokerRef)
	if err != nil {
		c.add(err)
		return nil, c.err()
	}
	c.backend(jetstream.CheckConsumer(t.settings.bus()))
	c.consumerRefs(b, t.settings, "config.stream_name", fields)
	if !c.ok() {
		return nil, c.err()
	}
	return t, nil
}

// consumerKeys are the keys of a trigger config that configure the
// consumer, used only when no consumer module declares it.
func consumerKeys() []string {
	return []string{"filter_subject", "filter_subjects", "deliver_policy", "opt_start_seq", "opt_start_time", "ack_policy", "ack_wait", "max_deliver", "backoff", "max_ack_pending", "dead_letter_subject"}
}

// triggerConsumer finds the consumer module that declares durable for a
// trigger: on the trigger's broker when it names one (in refField), else
// the only module of that name (whose broker the trigger then uses).
func (p *Plugin) triggerConsumer(refField, brokerRef, durable string) (*consumerModule, error) {
	if brokerRef != "" {
		b, err := p.brokerAt(refField, brokerRef)
		if err != nil {
			return nil, err
		}
		return p.consumer(b, durable), nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch mods := p.consumers[durable]; len(mods) {
	case 0:
		return nil, nil
	case 1:
		return mods[0], nil
	default:
		return nil, &fieldError{field: refField, kind: ErrUnknownRef, msg: fmt.Sprintf("required: consumer %s is declared on %d brokers", durable, len(mods))}
	}
}

// oneOf returns the value of a field or of its alias, and the field it is
// written in; both set and different is a problem.
func oneOf(c *checks, name, v, alias, av string) (string, string) {
	if v != "" && av != "" && v != av {
		c.fail("config."+alias, "%q and config.%s %q name different things; set one", av, name, v)
	}
	if v == "" && av != "" {
		return av, "config." + alias
	}
	return v, "config." + name
}

// Start ensures the broker, stream and consumer and starts consuming on a
// context of the trigger's own: ctx only bounds the start-up.
func (t *subscribeTrigger) Start(ctx context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.sub != nil {
		return nil
	}
	if err := t.p.ensureConsumer(ctx, t.brokerRef, t.settings); err != nil {
		return err
	}
	b, err := t.p.broker(t.brokerRef)
	if err != nil {
		return err
	}
	jb, err := b.running()
	if err != nil {
		return err
	}
	info, err := jb.ConsumerInfo(ctx, t.settings.Stream, t.settings.Durable)
	if err != nil {
		return err
	}
	t.ackWait = info.Config.AckWait
	if t.ackWait <= 0 {
		t.ackWait = defaultAckWait
	}
	t.maxDeliver = info.Config.MaxDeliver
	if t.settings.DeadLetter != "" {
		t.maxDeliver = t.settings.MaxDeliver
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	sub, err := jb.Subscribe(runCtx, t.settings.Stream, t.settings.Durable, t.handle, t.opts)
	if err != nil {
		cancel()
		return fmt.Errorf("subscribe: %w", err)
	}
	t.sub, t.cancel = sub, cancel
	t.log.Info("subscribed", "stream", t.settings.Stream, "concurrency", t.opts.Concurrency, "ack_wait", t.ackWait.String(), "max_deliver", t.maxDeliver)
	return nil
}

// Stop stops taking messages, lets running pipelines finish until ctx is
// done, then cancels them. Idempotent.
func (t *subscribeTrigger) Stop(ctx context.Context) error {
	t.mu.Lock()
	sub, cancel := t.sub, t.cancel
	t.sub, t.cancel = nil, nil
	t.mu.Unlock()
	if sub == nil {
		return nil
	}
	err := sub.Stop(ctx)
	cancel()
	return err
}

// handle runs the pipeline for one message and settles it. A message back
// after its last allowed delivery is dead-lettered without a run.
func (t *subscribeTrigger) handle(ctx context.Context, msg *bus.Message) {
	if t.settings.DeadLetter != "" && t.maxDeliver > 0 && msg.DeliveryCount > uint64(t.maxDeliver) {
		t.deadLetter(ctx, msg, fmt.Errorf("%w: delivered %d times, more than max_deliver %d, without its pipeline succeeding: a stop cut its last allowed delivery short (before the pipeline ran, or before the dead letter was stored), and the pipeline's last error is not known",
			errMaxDeliverExceeded, msg.DeliveryCount, t.maxDeliver))
		return
	}
	err := t.run(ctx, messageData(msg))
	if err == nil {
		t.settle(ctx, msg, "ack", msg.Ack(ctx))
		return
	}
	t.failed(ctx, msg, err)
}

// errMaxDeliverExceeded is the error a dead letter carries for a message
// delivered after its last allowed delivery.
var errMaxDeliverExceeded = errors.New("max_deliver exceeded")

// failed naks the message with backoff, or on its last allowed delivery
// dead-letters it (when the consumer has a dead-letter subject) and
// terminates it.
func (t *subscribeTrigger) failed(ctx context.Context, msg *bus.Message, runErr error) {
	log := t.log.With("subject", msg.Subject, "sequence", msg.StreamSequence, "delivery", msg.DeliveryCount)
	if t.maxDeliver <= 0 || int(msg.DeliveryCount) < t.maxDeliver {
		delay := t.backoff(int(msg.DeliveryCount))
		log.Warn("pipeline failed; message will be redelivered", "error", runErr, "delay", delay.String())
		t.settle(ctx, msg, "nak", msg.Nak(ctx, delay))
		return
	}
	if t.settings.DeadLetter != "" {
		t.deadLetter(ctx, msg, runErr)
		return
	}
	log.Error("pipeline failed on the last allowed delivery; message terminated", "error", runErr)
	t.settle(ctx, msg, "term", msg.Term(ctx, fmt.Sprintf("max_deliver %d reached: %v", t.maxDeliver, runErr)))
}

// deadLetter publishes msg to the dead-letter subject, then terminates it.
// It keeps trying until the dead letter is stored, while the subscription
// keeps msg in progress: a broker that cannot take it now (reconnecting,
// electing a leader, a dead-letter stream whose subjects are being changed)
// costs time, not the message. When ctx ends first (the trigger stops) it
// hands msg back for redelivery, to this consumer's other subscribers or
// after a restart; a dead letter the broker can never take (too large for
// the dead-letter stream, say) is reported and the message held back for
// a while, to be tried again then. Neither terminates it.
func (t *subscribeTrigger) deadLetter(ctx context.Context, msg *bus.Message, reason error) {
	log := t.log.With("subject", msg.Subject, "sequence", msg.StreamSequence, "delivery", msg.DeliveryCount, "dead_letter_subject", t.settings.DeadLetter)
	out := t.deadLetterMessage(msg, reason)
	wait := deadLetterRetryStart
	for attempt := 1; ; attempt++ {
		err := t.publishDeadLetter(ctx, out)
		switch {
		case err == nil:
			t.p.metrics.DeadLettered(msg.Stream, msg.Consumer)
			log.Error("pipeline failed on the last allowed delivery; message terminated", "error", reason, "dead_letter_attempts", attempt)
			t.settle(ctx, msg, "term", msg.Term(ctx, fmt.Sprintf("max_deliver %d reached: %v", t.maxDeliver, reason)))
			return
		case errors.Is(err, bus.ErrClosed):
			log.Warn("the broker closed before the dead letter was stored; the message is delivered again after its ack wait", "error", err)
			return
		case ctx.Err() != nil:
			log.Warn("stopped before the dead letter was stored; the message is handed back to be dead-lettered on its next delivery", "error", err, "attempts", attempt)
			t.settle(ctx, msg, "nak", msg.Nak(ctx, 0))
			return
		case errors.Is(err, bus.ErrPayloadTooLarge), errors.Is(err, bus.ErrInvalidConfig):
			log.Error("the broker refuses the dead letter; the message is kept and tried again on its next delivery", "error", err, "redelivery_in", defaultBackoffMax.String())
			t.settle(ctx, msg, "nak", msg.Nak(ctx, defaultBackoffMax))
			return
		case attempt == 1:
			log.Warn("dead-letter publish failed; the message is kept in progress and the publish retried until it is stored", "error", err)
		default:
			log.Debug("dead-letter publish failed again", "error", err, "attempt", attempt)
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		wait = min(2*wait, deadLetterRetryMax)
	}
}

// publishDeadLetter publishes out on the trigger's broker.
func (t *subscribeTrigger) publishDeadLetter(ctx context.Context, out bus.OutgoingMessage) error {
	b, err := t.p.broker(t.brokerRef)
	if err != nil {
		return err
	}
	jb, err := b.running()
	if err != nil {
		return fmt.Errorf("%w: %w", bus.ErrClosed, err)
	}
	_, err = jb.Publish(ctx, out)
	return err
}

// deadLetterMessage is the dead letter of msg: its payload and headers,
// those the broker would act on renamed (HeaderOriginalPrefix), and the
// Eventbus-* headers saying where it came from and why it failed. Its id
// makes a repeated publish, by this trigger or after a redelivery, store it
// once.
func (t *subscribeTrigger) deadLetterMessage(msg *bus.Message, reason error) bus.OutgoingMessage {
	h := make(bus.Headers, len(msg.Headers)+5)
	for k, v := range msg.Headers {
		if isControlHeader(k) {
			k = HeaderOriginalPrefix + k
		}
		h[k] = v
	}
	h.Set(HeaderError, reason.Error())
	h.Set(HeaderDeliveryCount, strconv.FormatUint(msg.DeliveryCount, 10))
	h.Set(HeaderSubject, msg.Subject)
	h.Set(HeaderStream, msg.Stream)
	h.Set(HeaderSequence, strconv.FormatUint(msg.StreamSequence, 10))
	return bus.OutgoingMessage{
		Subject: t.settings.DeadLetter,
		Payload: msg.Payload,
		Headers: h,
		MsgID:   "dlq:" + msg.Stream + ":" + msg.Consumer + ":" + strconv.FormatUint(msg.StreamSequence, 10),
	}
}

// isControlHeader reports a header the broker acts on rather than carries:
// NATS reserves the Nats- prefix for those.
func isControlHeader(key string) bool {
	return len(key) >= 5 && strings.EqualFold(key[:5], "nats-")
}

// backoff is the redelivery delay after the given failed delivery: the
// consumer's backoff list (its last entry repeating), else doubling from one
// second up to a minute.
func (t *subscribeTrigger) backoff(delivery int) time.Duration {
	if n := len(t.settings.Backoff); n > 0 {
		return t.settings.Backoff[min(max(delivery, 1), n)-1]
	}
	d := defaultBackoffStart
	for i := 1; i < delivery && d < defaultBackoffMax; i++ {
		d *= 2
	}
	return min(d, defaultBackoffMax)
}

// settle records a settlement. A stale token means a step of the pipeline
// already settled the message, which is fine.
func (t *subscribeTrigger) settle(_ context.Context, msg *bus.Message, kind string, err error) {
	switch {
	case err == nil:
		t.p.metrics.Settled(msg.Stream, msg.Consumer, kind)
	case errors.Is(err, bus.ErrStaleToken):
	default:
		t.log.Warn(kind+" failed; the message will be redelivered after its ack wait", "subject", msg.Subject, "sequence", msg.StreamSequence, "error", err)
	}
}
