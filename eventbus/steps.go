package eventbus

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/wfeventbus/eventbus/bus"
	eventbusv1 "github.com/wfeventbus/eventbus/gen/eventbus/v1"
)

const (
	defaultConsumeBatch = 10
	defaultConsumeWait  = 5 * time.Second
)

// stepConfig decodes a step's config: once at creation from the raw config
// (templates left for later), and again at each execution from the rendered
// config — unless the raw config held no template ({{ }} or ${ }), in which
// case the first decoding serves every execution.
type stepConfig[T proto.Message] struct {
	fresh  func() T
	static T
	fixed  bool
}

func newStepConfig[T proto.Message](raw map[string]any, fresh func() T) (stepConfig[T], error) {
	c := stepConfig[T]{fresh: fresh, static: fresh()}
	if err := decode(raw, c.static, "config", true); err != nil {
		return c, err
	}
	c.fixed = !hasTemplate(raw)
	return c, nil
}

func (c stepConfig[T]) get(in StepInput) (T, error) {
	if c.fixed {
		return c.static, nil
	}
	cfg := c.fresh()
	if err := decode(in.Config(), cfg, "config", false); err != nil {
		return cfg, err
	}
	return cfg, nil
}

func hasTemplate(v any) bool {
	switch v := v.(type) {
	case string:
		return strings.Contains(v, "{{") || strings.Contains(v, "${")
	case map[string]any:
		for _, e := range v {
			if hasTemplate(e) {
				return true
			}
		}
	case []any:
		for _, e := range v {
			if hasTemplate(e) {
				return true
			}
		}
	}
	return false
}

// CreateStep creates a step of type typ from its raw (untemplated) config,
// checking it against the app's modules (see check.go): its broker, the
// streams that store what it publishes, the consumer it reads. The host
// names the step in errors; the publish step derives its messages' ids from
// name.
func (p *Plugin) CreateStep(_ context.Context, typ, name string, config map[string]any) (Step, error) {
	c := p.checks("step " + name)
	switch typ {
	case StepPublish:
		cfg, err := newStepConfig(config, func() *eventbusv1.PublishStepConfig { return &eventbusv1.PublishStepConfig{} })
		if err != nil {
			return nil, err
		}
		b, err := p.stepBroker(cfg.static.GetBrokerRef())
		c.add(err)
		checkPublish(c, b, err == nil, config, cfg.static)
		if !c.ok() {
			return nil, c.err()
		}
		return &publishStep{p: p, b: b, cfg: cfg, name: name}, nil
	case StepConsume:
		cfg, err := newStepConfig(config, func() *eventbusv1.ConsumeStepConfig { return &eventbusv1.ConsumeStepConfig{} })
		if err != nil {
			return nil, err
		}
		if err := checkBatch(cfg.static.GetBatchSize()); err != nil {
			c.add(err)
		}
		b, err := p.stepBroker(cfg.static.GetBrokerRef())
		c.add(err)
		if err == nil {
			checkConsume(c, b, config, cfg.static)
		}
		if !c.ok() {
			return nil, c.err()
		}
		return &consumeStep{p: p, b: b, cfg: cfg}, nil
	case StepAck, StepNak, StepTerm, StepInProgress:
		cfg, err := newStepConfig(config, func() *eventbusv1.SettleStepConfig { return &eventbusv1.SettleStepConfig{} })
		if err != nil {
			return nil, err
		}
		if _, err := p.stepBroker(cfg.static.GetBrokerRef()); err != nil && cfg.static.GetBrokerRef() != "" {
			c.add(err)
		}
		_, explicit := config["ack_token"]
		if explicit && cfg.fixed && cfg.static.GetAckToken() == "" {
			c.fail("config.ack_token", "empty; leave it out to settle the message that triggered the pipeline")
		}
		if !c.ok() {
			return nil, c.err()
		}
		return &settleStep{p: p, kind: typ, cfg: cfg, explicitToken: explicit}, nil
	}
	return nil, fmt.Errorf("%w: step type %q (known: %s)", ErrUnknownType, typ, strings.Join(StepTypes(), ", "))
}

// checkPublish checks the subjects a publish step sends to: one from
// subject, or one per message of messages (each defaulting to subject).
// brokerKnown is false when broker_ref names no broker (already reported);
// b is nil when broker_ref is a template.
func checkPublish(c *checks, b *broker, brokerKnown bool, raw map[string]any, cfg *eventbusv1.PublishStepConfig) {
	if _, ok := raw["messages"].(string); ok {
		return // a template: the batch is known only once rendered
	}
	if len(cfg.GetMessages()) == 0 {
		if cfg.GetSubject() == "" {
			c.fail("config.subject", "required: the subject to publish to (or give messages)")
			return
		}
		if brokerKnown {
			c.publishSubject(b, "config.subject", cfg.GetSubject())
		}
		return
	}
	topChecked := false
	for i, m := range cfg.GetMessages() {
		field, subject := fmt.Sprintf("config.messages[%d].subject", i), m.GetSubject()
		if subject == "" {
			if cfg.GetSubject() == "" {
				c.fail(field, "required when config.subject is not set")
				continue
			}
			if topChecked {
				continue
			}
			field, subject, topChecked = "config.subject", cfg.GetSubject(), true
		}
		if brokerKnown {
			c.publishSubject(b, field, subject)
		}
	}
}

// checkConsume checks the consumer a consume step reads on b (nil when
// broker_ref is a template): declared by a consumer module, or else on
// the stream stream_name names, by a subscribe trigger (which may be
// created after the step) or another app.
func checkConsume(c *checks, b *broker, raw map[string]any, cfg *eventbusv1.ConsumeStepConfig) {
	name, stream := cfg.GetConsumer(), cfg.GetStreamName()
	if s, ok := raw["consumer"].(string); ok && hasTemplate(s) {
		c.warn("config.consumer", "%q is a template, so whether the consumer exists is known only at run time", s)
		return
	}
	if name == "" {
		c.fail("config.consumer", "required: the durable consumer to read")
		return
	}
	if b == nil || hasTemplate(stream) {
		return
	}
	if cm := c.p.consumer(b, name); cm != nil {
		if stream != "" && stream != cm.settings.Stream {
			c.fail("config.stream_name", "%q differs from stream %q of consumer module %s", stream, cm.settings.Stream, cm.module)
		}
		return
	}
	if c.p.isInvalid(TypeConsumer, name) {
		return
	}
	if stream == "" {
		c.unknown("config.consumer", "no %s module declares consumer %q on broker %s; declare one, or give stream_name", TypeConsumer, name, b.name)
		return
	}
	if c.p.stream(b, stream) == nil {
		if !c.p.isInvalid(TypeStream, stream) {
			c.missing(b, "config.stream_name", "no %s module declares stream %q on broker %s (%s)", TypeStream, stream, b.name, c.p.describeStreams(b))
		}
		return
	}
	c.warn("config.consumer", "no %s module declares consumer %q; unless a subscribe trigger declares it, it must exist on stream %s when the step runs", TypeConsumer, name, stream)
}

// stepBroker resolves a step's broker_ref when the step is created. A
// broker_ref that is a template names its broker only once rendered, so it
// is resolved at each execution instead (nil here).
func (p *Plugin) stepBroker(ref string) (*broker, error) {
	if hasTemplate(ref) {
		return nil, nil
	}
	return p.broker(ref)
}

// executionBroker returns the step's broker: the one resolved at creation,
// or the one the rendered broker_ref names.
func (p *Plugin) executionBroker(b *broker, ref string) (*broker, error) {
	if b != nil {
		return b, nil
	}
	return p.broker(ref)
}

// stepBus returns the bus of the step's broker.
func (p *Plugin) stepBus(b *broker, ref string) (bus.Bus, error) {
	b, err := p.executionBroker(b, ref)
	if err != nil {
		return nil, err
	}
	return b.running()
}

func checkBatch(n int32) error {
	if n < 0 || n > bus.MaxFetchBatch {
		return &fieldError{field: "config.batch_size", kind: ErrConfig, msg: fmt.Sprintf("must be between 1 and %d, got %d", bus.MaxFetchBatch, n)}
	}
	return nil
}

// publishStep is step.eventbus.publish.
type publishStep struct {
	p    *Plugin
	b    *broker // nil: resolved from the rendered broker_ref
	cfg  stepConfig[*eventbusv1.PublishStepConfig]
	name string
}

func (s *publishStep) Execute(ctx context.Context, in StepInput) (map[string]any, error) {
	cfg, err := s.cfg.get(in)
	if err != nil {
		return nil, err
	}
	jb, err := s.p.stepBus(s.b, cfg.GetBrokerRef())
	if err != nil {
		return nil, err
	}
	if len(cfg.GetMessages()) > 0 {
		return s.batch(ctx, jb, cfg, in)
	}
	msg, err := outgoing(cfg.GetSubject(), cfg.GetPayload(), cfg.GetHeaders(), cfg.GetMsgId(), cfg.GetCorrelationId(), cfg.GetExpectedLastSequence(), "config")
	if err != nil {
		return nil, err
	}
	s.assignIDs(cfg, in, []*bus.OutgoingMessage{&msg}, -1)
	ack, err := jb.Publish(ctx, msg)
	if errors.Is(err, bus.ErrPayloadTooLarge) {
		return nil, fmt.Errorf("message of %d bytes: %w", len(msg.Payload), err)
	}
	if err != nil {
		return nil, err
	}
	s.p.metrics.Published(ack.Stream, 1)
	return map[string]any{
		"subject":   msg.Subject,
		"stream":    ack.Stream,
		"sequence":  strconv.FormatUint(ack.Sequence, 10),
		"duplicate": ack.Duplicate,
		"acked_at":  time.Now().UTC().Format(time.RFC3339Nano),
	}, nil
}

func (s *publishStep) batch(ctx context.Context, jb bus.Publisher, cfg *eventbusv1.PublishStepConfig, in StepInput) (map[string]any, error) {
	msgs := make([]bus.OutgoingMessage, len(cfg.GetMessages()))
	for i, m := range cfg.GetMessages() {
		subject := m.GetSubject()
		if subject == "" {
			subject = cfg.GetSubject()
		}
		out, err := outgoing(subject, m.GetPayload(), m.GetHeaders(), m.GetMsgId(), m.GetCorrelationId(), m.GetExpectedLastSequence(), fmt.Sprintf("config.messages[%d]", i))
		if err != nil {
			return nil, err
		}
		msgs[i] = out
	}
	ptrs := make([]*bus.OutgoingMessage, len(msgs))
	for i := range msgs {
		ptrs[i] = &msgs[i]
	}
	s.assignIDs(cfg, in, ptrs, 0)
	results, err := jb.PublishBatch(ctx, msgs)
	if err != nil && results == nil {
		return nil, fmt.Errorf("batch publish: %w", err)
	}
	out := make([]any, len(results))
	var failed []error
	stored := map[string]int{}
	for i, r := range results {
		e := map[string]any{"subject": msgs[i].Subject}
		if r.Err != nil {
			e["error"] = r.Err.Error()
			failed = append(failed, fmt.Errorf("messages[%d] to %s: %w", i, msgs[i].Subject, r.Err))
		} else {
			e["stream"] = r.Ack.Stream
			e["sequence"] = strconv.FormatUint(r.Ack.Sequence, 10)
			e["duplicate"] = r.Ack.Duplicate
			stored[r.Ack.Stream]++
		}
		out[i] = e
	}
	for stream, n := range stored {
		s.p.metrics.Published(stream, n)
	}
	if len(failed) > 0 {
		return nil, fmt.Errorf("batch publish: %d of %d messages failed: %w", len(failed), len(results), errors.Join(failed...))
	}
	if err != nil {
		return nil, fmt.Errorf("batch publish: %w", err)
	}
	return map[string]any{
		"results":  out,
		"count":    float64(len(results)),
		"acked_at": time.Now().UTC().Format(time.RFC3339Nano),
	}, nil
}

// assignIDs gives each message of msgs without a MsgID one, unless the
// config's auto_msg_id is false: derived from the triggering message when
// the pipeline runs for one (see derivedID), else drawn at random, so that
// the bus can send it again safely when its answer is lost. first is the
// batch index of msgs[0], or -1 for a single message.
func (s *publishStep) assignIDs(cfg *eventbusv1.PublishStepConfig, in StepInput, msgs []*bus.OutgoingMessage, first int) {
	if cfg.AutoMsgId != nil && !cfg.GetAutoMsgId() {
		return
	}
	origin, derived := triggeringMessage(in)
	for i, m := range msgs {
		switch {
		case m.MsgID != "":
		case derived && first < 0:
			m.MsgID = origin.derivedID(s.name, -1, m)
		case derived:
			m.MsgID = origin.derivedID(s.name, first+i, m)
		default:
			m.MsgID = rand.Text()
		}
	}
}

// origin is the message a subscribe trigger ran the pipeline for, and
// where in the pipeline a step runs.
type origin struct {
	stream, consumer string
	sequence         uint64
	// foreach is the index of the step.foreach iteration the step runs in,
	// or -1.
	foreach int64
}

// triggeringMessage returns the origin of a step's execution when the
// pipeline runs for a message of trigger.eventbus.subscribe: its trigger
// data names the stream, consumer and sequence of a delivery with an ack
// token.
func triggeringMessage(in StepInput) (origin, bool) {
	str := func(key string) string {
		v, _ := in.Trigger(key)
		s, _ := v.(string)
		return s
	}
	o := origin{stream: str("stream"), consumer: str("consumer"), foreach: -1}
	seq, ok := number(in.Trigger("sequence"))
	if !ok || seq <= 0 || o.stream == "" || o.consumer == "" || str("ack_token") == "" {
		return origin{}, false
	}
	o.sequence = uint64(seq)
	if fe, ok := in.Current("foreach"); ok {
		if m, ok := fe.(map[string]any); ok {
			if i, ok := number(m["index"], true); ok {
				o.foreach = int64(i)
			}
		}
	}
	return o, true
}

// number reads a whole number of a pipeline's data: JSON numbers arrive as
// float64, the host's own as ints.
func number(v any, ok bool) (float64, bool) {
	if !ok {
		return 0, false
	}
	switch n := v.(type) {
	case float64:
		return n, n == float64(int64(n))
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	}
	return 0, false
}

// derivedID is the id of msg, published by step (index: its place in a
// batch, or -1) for the origin's message: the same on every delivery of
// that message, so that the outputs of a redelivered input are stored once
// within their stream's duplicate window. The message itself is part of
// it, so that two different messages never share an id, even from a step
// that runs several times for one input; an output that differs from one
// run to the next (a time in its payload, say) is stored once per run.
func (o origin) derivedID(step string, index int, msg *bus.OutgoingMessage) string {
	h := sha256.New()
	field := func(s string) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	field(o.consumer)
	field(step)
	field(strconv.Itoa(index))
	field(strconv.FormatInt(o.foreach, 10))
	field(msg.Subject)
	field(string(msg.Payload))
	keys := slices.Sorted(maps.Keys(msg.Headers))
	for _, k := range keys {
		field(k)
		for _, v := range msg.Headers[k] {
			field(v)
		}
	}
	field(msg.CorrelationID)
	field(strconv.FormatUint(msg.ExpectedLastSequence, 10))
	return fmt.Sprintf("eventbus:%s:%d:%x", o.stream, o.sequence, h.Sum(nil)[:16])
}

// outgoing builds a message; path names the config it came from in errors.
func outgoing(subject string, payload *structpb.Value, headers map[string]string, msgID, correlationID string, lastSeq uint64, path string) (bus.OutgoingMessage, error) {
	if subject == "" {
		return bus.OutgoingMessage{}, fmt.Errorf("%w: %s.subject is required", ErrConfig, path)
	}
	body, err := payloadBytes(payload)
	if err != nil {
		return bus.OutgoingMessage{}, fmt.Errorf("%w: %s.payload: %w", ErrConfig, path, err)
	}
	m := bus.OutgoingMessage{
		Subject:              subject,
		Payload:              body,
		MsgID:                msgID,
		CorrelationID:        correlationID,
		ExpectedLastSequence: lastSeq,
	}
	if len(headers) > 0 {
		m.Headers = make(bus.Headers, len(headers))
		for k, v := range headers {
			m.Headers.Set(k, v)
		}
	}
	return m, nil
}

// payloadBytes sends a string as is and any other value as its JSON.
func payloadBytes(v *structpb.Value) ([]byte, error) {
	switch k := v.GetKind().(type) {
	case nil, *structpb.Value_NullValue:
		return nil, nil
	case *structpb.Value_StringValue:
		return []byte(k.StringValue), nil
	}
	return json.Marshal(v.AsInterface())
}

// consumeStep is step.eventbus.consume.
type consumeStep struct {
	p   *Plugin
	b   *broker // nil: resolved from the rendered broker_ref
	cfg stepConfig[*eventbusv1.ConsumeStepConfig]
}

func (s *consumeStep) Execute(ctx context.Context, in StepInput) (map[string]any, error) {
	cfg, err := s.cfg.get(in)
	if err != nil {
		return nil, err
	}
	if cfg.GetConsumer() == "" {
		return nil, fmt.Errorf("%w: config.consumer is required: the durable consumer to read", ErrConfig)
	}
	if err := checkBatch(cfg.GetBatchSize()); err != nil {
		return nil, err
	}
	b, err := s.p.executionBroker(s.b, cfg.GetBrokerRef())
	if err != nil {
		return nil, err
	}
	stream := cfg.GetStreamName()
	if stream == "" {
		cm := s.p.consumer(b, cfg.GetConsumer())
		if cm == nil {
			return nil, fmt.Errorf("%w: config.stream_name is required: no %s module declares consumer %s", ErrConfig, TypeConsumer, cfg.GetConsumer())
		}
		stream = cm.settings.Stream
	}
	opts := bus.FetchOptions{Batch: int(cfg.GetBatchSize()), MaxWait: duration(cfg.GetMaxWait())}
	if opts.Batch == 0 {
		opts.Batch = defaultConsumeBatch
	}
	if opts.MaxWait == 0 {
		opts.MaxWait = defaultConsumeWait
	}
	jb, err := b.running()
	if err != nil {
		return nil, err
	}
	msgs, err := jb.Fetch(ctx, stream, cfg.GetConsumer(), opts)
	if err != nil {
		return nil, fmt.Errorf("consume from %s/%s: %w", stream, cfg.GetConsumer(), err)
	}
	out := make([]any, len(msgs))
	for i, m := range msgs {
		out[i] = messageData(m)
	}
	return map[string]any{"messages": out, "count": float64(len(msgs))}, nil
}

// settleStep is step.eventbus.ack, nak, term and in_progress.
type settleStep struct {
	p    *Plugin
	kind string
	cfg  stepConfig[*eventbusv1.SettleStepConfig]
	// explicitToken is whether the config names the token to settle; when
	// it does not, the step settles the message that triggered the run.
	explicitToken bool
}

func (s *settleStep) Execute(ctx context.Context, in StepInput) (map[string]any, error) {
	cfg, err := s.cfg.get(in)
	if err != nil {
		return nil, err
	}
	token := cfg.GetAckToken()
	if token == "" && s.explicitToken {
		// Settling the triggering message instead of the one meant would
		// settle the wrong message without a word.
		return nil, fmt.Errorf("%w: config.ack_token rendered empty; it names no delivery to settle (leave the field out to settle the message that triggered the pipeline)", ErrConfig)
	}
	if token == "" {
		v, _ := in.Current("ack_token")
		token, _ = v.(string)
	}
	if token == "" {
		return nil, fmt.Errorf("%w: config.ack_token is required (or run the step in a pipeline of %s, whose message carries ack_token)", ErrConfig, TriggerSubscribe)
	}
	jb, err := s.p.settle(ctx, cfg.GetBrokerRef(), token, func(st bus.Settler) error {
		switch s.kind {
		case StepAck:
			return st.Ack(ctx, token)
		case StepNak:
			return st.Nak(ctx, token, duration(cfg.GetDelay()))
		case StepTerm:
			return st.Term(ctx, token, cfg.GetReason())
		default:
			return st.InProgress(ctx, token)
		}
	})
	if err != nil {
		return nil, err
	}
	if kind := settlementKind(s.kind); kind != "" {
		stream, consumer, _ := jb.TokenSource(token)
		s.p.metrics.Settled(stream, consumer, kind)
	}
	return map[string]any{}, nil
}

// settlementKind is the settlement a step type counts as; "" for
// in_progress, which settles nothing.
func settlementKind(stepType string) string {
	switch stepType {
	case StepAck:
		return "ack"
	case StepNak:
		return "nak"
	case StepTerm:
		return "term"
	}
	return ""
}

// settle runs do against the broker that issued token: the named one, or
// the first whose signature check accepts the token. It returns the bus
// that settled it.
func (p *Plugin) settle(ctx context.Context, brokerRef, token string, do func(bus.Settler) error) (bus.Bus, error) {
	if brokerRef != "" {
		b, err := p.broker(brokerRef)
		if err != nil {
			return nil, err
		}
		jb, err := b.running()
		if err != nil {
			return nil, err
		}
		return jb, do(jb)
	}
	brokers := p.allBrokers()
	if len(brokers) == 0 {
		return nil, fmt.Errorf("%w: no %s module is declared", ErrUnknownRef, TypeBroker)
	}
	var lastErr error
	for _, b := range brokers {
		jb, err := b.running()
		if err != nil {
			lastErr = err
			continue
		}
		err = do(jb)
		if !errors.Is(err, bus.ErrInvalidToken) {
			return jb, err
		}
		lastErr = err
	}
	return nil, lastErr
}
