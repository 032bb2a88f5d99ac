package eventbus

import (
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/wfeventbus/eventbus/bus"
	eventbusv1 "github.com/wfeventbus/eventbus/gen/eventbus/v1"
)

// streamConfig maps a stream module's config to the bus; name is the
// stream's name (config name, else the module name).
func streamConfig(c *eventbusv1.StreamConfig, name string) bus.StreamConfig {
	sc := bus.StreamConfig{
		Name:            name,
		Description:     c.GetDescription(),
		Subjects:        c.GetSubjects(),
		Replicas:        int(c.GetNumReplicas()),
		MaxMsgs:         c.GetMaxMsgs(),
		MaxBytes:        c.GetMaxBytes(),
		MaxAge:          duration(c.GetMaxAge()),
		MaxMsgSize:      c.GetMaxMsgSize(),
		DuplicateWindow: duration(c.GetDuplicateWindow()),
	}
	switch c.GetRetentionPolicy() {
	case eventbusv1.RetentionPolicy_RETENTION_POLICY_INTEREST:
		sc.Retention = bus.RetentionInterest
	case eventbusv1.RetentionPolicy_RETENTION_POLICY_WORKQUEUE:
		sc.Retention = bus.RetentionWorkQueue
	default:
		sc.Retention = bus.RetentionLimits
	}
	if c.GetStorage() == eventbusv1.StorageType_STORAGE_TYPE_MEMORY {
		sc.Storage = bus.StorageMemory
	}
	if c.GetDiscard() == eventbusv1.DiscardPolicy_DISCARD_POLICY_NEW {
		sc.Discard = bus.DiscardNew
	}
	return sc
}

// consumerSettings are the consumer fields shared by the consumer module and
// the subscribe trigger's config.
type consumerSettings struct {
	Durable        string
	Stream         string
	Description    string
	FilterSubjects []string
	DeliverPolicy  eventbusv1.DeliverPolicy
	OptStartSeq    uint64
	OptStartTime   time.Time
	AckPolicy      eventbusv1.AckPolicy
	AckWait        time.Duration
	MaxDeliver     int
	Backoff        []time.Duration
	MaxAckPending  int
	DeadLetter     string
}

// consumerFields are the consumer settings that both the consumer module's
// config and the subscribe trigger's config carry.
type consumerFields interface {
	GetFilterSubject() string
	GetFilterSubjects() []string
	GetDeliverPolicy() eventbusv1.DeliverPolicy
	GetOptStartSeq() uint64
	GetOptStartTime() *timestamppb.Timestamp
	GetAckPolicy() eventbusv1.AckPolicy
	GetAckWait() *durationpb.Duration
	GetMaxDeliver() int32
	GetBackoff() []*durationpb.Duration
	GetMaxAckPending() int32
	GetDeadLetterSubject() string
}

func newConsumerSettings(c consumerFields, durable, stream string) consumerSettings {
	s := consumerSettings{
		Durable:        durable,
		Stream:         stream,
		FilterSubjects: filters(c.GetFilterSubject(), c.GetFilterSubjects()),
		DeliverPolicy:  c.GetDeliverPolicy(),
		OptStartSeq:    c.GetOptStartSeq(),
		AckPolicy:      c.GetAckPolicy(),
		AckWait:        duration(c.GetAckWait()),
		MaxDeliver:     int(c.GetMaxDeliver()),
		Backoff:        durations(c.GetBackoff()),
		MaxAckPending:  int(c.GetMaxAckPending()),
		DeadLetter:     c.GetDeadLetterSubject(),
	}
	if t := c.GetOptStartTime(); t != nil {
		s.OptStartTime = t.AsTime()
	}
	return s
}

// check records the problems of fields whose combination matters, and
// of subjects that are not valid; filterFields names the field of each
// filter subject.
func (s consumerSettings) check(c *checks, filterFields []string) {
	switch s.DeliverPolicy {
	case eventbusv1.DeliverPolicy_DELIVER_POLICY_BY_START_SEQUENCE:
		if s.OptStartSeq == 0 {
			c.fail("config.opt_start_seq", "required with deliver_policy BY_START_SEQUENCE")
		}
	case eventbusv1.DeliverPolicy_DELIVER_POLICY_BY_START_TIME:
		if s.OptStartTime.IsZero() {
			c.fail("config.opt_start_time", "required with deliver_policy BY_START_TIME")
		}
	case eventbusv1.DeliverPolicy_DELIVER_POLICY_LAST_PER_SUBJECT:
		if len(s.FilterSubjects) == 0 {
			c.fail("config.deliver_policy", "LAST_PER_SUBJECT needs filter_subject or filter_subjects")
		}
	}
	if s.OptStartSeq != 0 && s.DeliverPolicy != eventbusv1.DeliverPolicy_DELIVER_POLICY_BY_START_SEQUENCE {
		c.fail("config.opt_start_seq", "needs deliver_policy BY_START_SEQUENCE")
	}
	if !s.OptStartTime.IsZero() && s.DeliverPolicy != eventbusv1.DeliverPolicy_DELIVER_POLICY_BY_START_TIME {
		c.fail("config.opt_start_time", "needs deliver_policy BY_START_TIME")
	}
	if s.MaxDeliver < -1 {
		c.fail("config.max_deliver", "must be -1 (unlimited) or more, got %d", s.MaxDeliver)
	}
	if s.MaxAckPending < -1 {
		c.fail("config.max_ack_pending", "must be -1 (unlimited) or more, got %d", s.MaxAckPending)
	}
	for i, f := range s.FilterSubjects {
		if c.checkSubject(filterFields[i], f, true) {
			for _, g := range s.FilterSubjects[:i] {
				if subjectSubset(f, g) || subjectSubset(g, f) {
					c.fail(filterFields[i], "%q overlaps filter %q; one filter of a consumer may not contain another", f, g)
					break
				}
			}
		}
	}
	if s.DeadLetter != "" {
		c.checkSubject("config.dead_letter_subject", s.DeadLetter, false)
	}
}

// bus maps the settings to a bus consumer. Backoff is not handed to the
// broker: it spaces the redeliveries the trigger asks for when a pipeline
// fails, while ack_wait alone governs deliveries that were never settled.
// With a dead-letter subject, neither is max_deliver: the subscribe
// trigger counts deliveries itself, so that a message stays deliverable
// until its dead letter is stored, however often the process handling it
// stops first.
func (s consumerSettings) bus() bus.ConsumerConfig {
	c := bus.ConsumerConfig{
		Durable:        s.Durable,
		Stream:         s.Stream,
		Description:    s.Description,
		FilterSubjects: s.FilterSubjects,
		OptStartSeq:    s.OptStartSeq,
		OptStartTime:   s.OptStartTime,
		AckWait:        s.AckWait,
		MaxDeliver:     s.MaxDeliver,
		MaxAckPending:  s.MaxAckPending,
	}
	if s.DeadLetter != "" {
		c.MaxDeliver = -1
	}
	switch s.DeliverPolicy {
	case eventbusv1.DeliverPolicy_DELIVER_POLICY_LAST:
		c.DeliverPolicy = bus.DeliverLast
	case eventbusv1.DeliverPolicy_DELIVER_POLICY_NEW:
		c.DeliverPolicy = bus.DeliverNew
	case eventbusv1.DeliverPolicy_DELIVER_POLICY_BY_START_SEQUENCE:
		c.DeliverPolicy = bus.DeliverByStartSequence
	case eventbusv1.DeliverPolicy_DELIVER_POLICY_BY_START_TIME:
		c.DeliverPolicy = bus.DeliverByStartTime
	case eventbusv1.DeliverPolicy_DELIVER_POLICY_LAST_PER_SUBJECT:
		c.DeliverPolicy = bus.DeliverLastPerSubject
	default:
		c.DeliverPolicy = bus.DeliverAll
	}
	switch s.AckPolicy {
	case eventbusv1.AckPolicy_ACK_POLICY_NONE:
		c.AckPolicy = bus.AckNone
	case eventbusv1.AckPolicy_ACK_POLICY_ALL:
		c.AckPolicy = bus.AckAll
	default:
		c.AckPolicy = bus.AckExplicit
	}
	return c
}

func filters(one string, many []string) []string {
	if one == "" {
		return many
	}
	return append([]string{one}, many...)
}

func duration(d *durationpb.Duration) time.Duration {
	if d == nil {
		return 0
	}
	return d.AsDuration()
}

func durations(ds []*durationpb.Duration) []time.Duration {
	if len(ds) == 0 {
		return nil
	}
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.AsDuration()
	}
	return out
}
