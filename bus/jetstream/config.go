package jetstream

import (
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wfeventbus/eventbus/bus"
)

// Limits JetStream puts on names and values.
const (
	maxNameLen        = 255
	maxDescriptionLen = 4096
	maxReplicas       = 5
	// defaultAckWait is JetStream's ack wait for a consumer that sets none.
	defaultAckWait = 30 * time.Second
)

// configError wraps bus.ErrInvalidConfig and names the field.
func configError(field, format string, args ...any) error {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// checkName checks a stream or consumer name.
func checkName(field, name string) error {
	if name == "" {
		return configError(field, "required")
	}
	if len(name) > maxNameLen {
		return configError(field, "%q is longer than %d characters", name, maxNameLen)
	}
	for _, r := range name {
		if r <= ' ' || r == 0x7f || strings.ContainsRune(".*>/\\", r) {
			return configError(field, "%q may not contain whitespace, control characters, '.', '*', '>', '/' or '\\'", name)
		}
	}
	return nil
}

// checkSubject checks a subject, wildcards allowed when wild is true.
func checkSubject(field, subject string, wild bool) error {
	if problem := subjectProblem(subject, wild); problem != "" {
		return configError(field, "%q %s", subject, problem)
	}
	return nil
}

// subjectProblem says what is wrong with subject, or "" when nothing is. It
// does not allocate: it runs for every published message.
func subjectProblem(subject string, wild bool) string {
	if subject == "" {
		return "is empty"
	}
	start := 0
	for i := 0; i <= len(subject); i++ {
		if i < len(subject) && subject[i] != '.' {
			if c := subject[i]; c <= ' ' || c == 0x7f {
				return "may not contain whitespace or control characters"
			}
			continue
		}
		switch tok := subject[start:i]; {
		case tok == "":
			return "has an empty token"
		case tok == "*" || tok == ">":
			if !wild {
				return "may not contain wildcards"
			}
			if tok == ">" && i != len(subject) {
				return "has '>' before its last token"
			}
		case strings.ContainsAny(tok, "*>"):
			return "has a wildcard that is not a whole token"
		}
		start = i + 1
	}
	return ""
}

// streamConfig checks cfg and maps it to JetStream's stream configuration.
func streamConfig(cfg bus.StreamConfig) (jetstream.StreamConfig, error) {
	var out jetstream.StreamConfig
	if err := checkName("name", cfg.Name); err != nil {
		return out, err
	}
	if len(cfg.Description) > maxDescriptionLen {
		return out, configError("description", "longer than %d characters", maxDescriptionLen)
	}
	for _, s := range cfg.Subjects {
		if err := checkSubject("subjects", s, true); err != nil {
			return out, err
		}
	}
	var err error
	if out.Retention, err = retention(cfg.Retention); err != nil {
		return out, err
	}
	if out.Storage, err = storage(cfg.Storage); err != nil {
		return out, err
	}
	if out.Discard, err = discard(cfg.Discard); err != nil {
		return out, err
	}
	switch {
	case cfg.Replicas < 0 || cfg.Replicas > maxReplicas:
		return out, configError("num_replicas", "%d is not between 1 and %d (0 means 1)", cfg.Replicas, maxReplicas)
	case cfg.Replicas == 0:
		out.Replicas = 1
	default:
		out.Replicas = cfg.Replicas
	}
	if out.MaxMsgs, err = limit64("max_msgs", cfg.MaxMsgs); err != nil {
		return out, err
	}
	if out.MaxBytes, err = limit64("max_bytes", cfg.MaxBytes); err != nil {
		return out, err
	}
	maxMsgSize, err := limit64("max_msg_size", int64(cfg.MaxMsgSize))
	if err != nil {
		return out, err
	}
	out.MaxMsgSize = int32(maxMsgSize)
	if cfg.MaxAge < 0 {
		return out, configError("max_age", "%s is negative (0 keeps messages forever)", cfg.MaxAge)
	}
	if cfg.DuplicateWindow < 0 {
		return out, configError("duplicate_window", "%s is negative", cfg.DuplicateWindow)
	}
	if cfg.MaxAge > 0 && cfg.DuplicateWindow > cfg.MaxAge {
		return out, configError("duplicate_window", "%s is longer than max_age %s", cfg.DuplicateWindow, cfg.MaxAge)
	}
	out.Name = cfg.Name
	out.Description = cfg.Description
	out.Subjects = cfg.Subjects
	out.MaxAge = cfg.MaxAge
	out.Duplicates = cfg.DuplicateWindow
	return out, nil
}

// limit64 maps a bus limit (0 or -1: unlimited) to JetStream's (-1).
func limit64(field string, v int64) (int64, error) {
	switch {
	case v < -1:
		return 0, configError(field, "%d is negative (0 or -1 means unlimited)", v)
	case v == 0:
		return -1, nil
	default:
		return v, nil
	}
}

// unlimited maps JetStream's "no limit" (-1) back to bus's zero value.
func unlimited(v int64) int64 {
	if v < 0 {
		return 0
	}
	return v
}

func retention(r bus.Retention) (jetstream.RetentionPolicy, error) {
	switch r {
	case bus.RetentionLimits:
		return jetstream.LimitsPolicy, nil
	case bus.RetentionInterest:
		return jetstream.InterestPolicy, nil
	case bus.RetentionWorkQueue:
		return jetstream.WorkQueuePolicy, nil
	}
	return 0, configError("retention_policy", "unknown value %d", r)
}

func storage(s bus.Storage) (jetstream.StorageType, error) {
	switch s {
	case bus.StorageFile:
		return jetstream.FileStorage, nil
	case bus.StorageMemory:
		return jetstream.MemoryStorage, nil
	}
	return 0, configError("storage", "unknown value %d", s)
}

func discard(d bus.Discard) (jetstream.DiscardPolicy, error) {
	switch d {
	case bus.DiscardOld:
		return jetstream.DiscardOld, nil
	case bus.DiscardNew:
		return jetstream.DiscardNew, nil
	}
	return 0, configError("discard", "unknown value %d", d)
}

// fromStreamConfig maps a JetStream stream configuration back to bus's.
func fromStreamConfig(c jetstream.StreamConfig) bus.StreamConfig {
	out := bus.StreamConfig{
		Name:            c.Name,
		Description:     c.Description,
		Subjects:        c.Subjects,
		Replicas:        c.Replicas,
		MaxMsgs:         unlimited(c.MaxMsgs),
		MaxBytes:        unlimited(c.MaxBytes),
		MaxAge:          c.MaxAge,
		MaxMsgSize:      int32(unlimited(int64(c.MaxMsgSize))),
		DuplicateWindow: c.Duplicates,
	}
	switch c.Retention {
	case jetstream.InterestPolicy:
		out.Retention = bus.RetentionInterest
	case jetstream.WorkQueuePolicy:
		out.Retention = bus.RetentionWorkQueue
	default:
		out.Retention = bus.RetentionLimits
	}
	if c.Storage == jetstream.MemoryStorage {
		out.Storage = bus.StorageMemory
	}
	if c.Discard == jetstream.DiscardNew {
		out.Discard = bus.DiscardNew
	}
	return out
}

func fromStreamInfo(si *jetstream.StreamInfo) bus.StreamInfo {
	return bus.StreamInfo{
		Config:    fromStreamConfig(si.Config),
		Messages:  si.State.Msgs,
		Bytes:     si.State.Bytes,
		FirstSeq:  si.State.FirstSeq,
		LastSeq:   si.State.LastSeq,
		Consumers: si.State.Consumers,
	}
}

// consumerConfig checks cfg and maps it to JetStream's durable pull
// consumer configuration.
func consumerConfig(cfg bus.ConsumerConfig) (jetstream.ConsumerConfig, error) {
	var out jetstream.ConsumerConfig
	if err := checkName("name", cfg.Durable); err != nil {
		return out, err
	}
	if err := checkName("stream_name", cfg.Stream); err != nil {
		return out, err
	}
	if len(cfg.Description) > maxDescriptionLen {
		return out, configError("description", "longer than %d characters", maxDescriptionLen)
	}
	seen := make(map[string]bool, len(cfg.FilterSubjects))
	for _, s := range cfg.FilterSubjects {
		if err := checkSubject("filter_subjects", s, true); err != nil {
			return out, err
		}
		if seen[s] {
			return out, configError("filter_subjects", "%q is listed twice", s)
		}
		seen[s] = true
	}
	var err error
	if out.DeliverPolicy, err = deliverPolicy(cfg); err != nil {
		return out, err
	}
	if out.AckPolicy, err = ackPolicy(cfg.AckPolicy); err != nil {
		return out, err
	}
	if cfg.AckWait < 0 {
		return out, configError("ack_wait", "%s is negative", cfg.AckWait)
	}
	switch {
	case cfg.MaxDeliver < -1:
		return out, configError("max_deliver", "%d is negative (0 or -1 means unlimited)", cfg.MaxDeliver)
	case cfg.MaxDeliver == 0:
		out.MaxDeliver = -1
	default:
		out.MaxDeliver = cfg.MaxDeliver
	}
	for _, d := range cfg.Backoff {
		if d <= 0 {
			return out, configError("backoff", "%s is not a positive delay", d)
		}
	}
	if len(cfg.Backoff) > 0 && out.MaxDeliver > 0 && out.MaxDeliver <= len(cfg.Backoff) {
		return out, configError("max_deliver", "%d must exceed the %d backoff delays", out.MaxDeliver, len(cfg.Backoff))
	}
	if cfg.MaxAckPending < -1 {
		return out, configError("max_ack_pending", "%d is negative (0 means the server default, -1 unlimited)", cfg.MaxAckPending)
	}

	out.Durable = cfg.Durable
	out.Description = cfg.Description
	switch len(cfg.FilterSubjects) {
	case 0:
	case 1:
		out.FilterSubject = cfg.FilterSubjects[0]
	default:
		out.FilterSubjects = cfg.FilterSubjects
	}
	out.OptStartSeq = cfg.OptStartSeq
	if !cfg.OptStartTime.IsZero() {
		t := cfg.OptStartTime
		out.OptStartTime = &t
	}
	out.AckWait = cfg.AckWait
	out.BackOff = cfg.Backoff
	out.MaxAckPending = cfg.MaxAckPending
	return out, nil
}

// deliverPolicy maps the deliver policy, checking that a start sequence or
// time is given exactly when the policy uses it.
func deliverPolicy(cfg bus.ConsumerConfig) (jetstream.DeliverPolicy, error) {
	bySeq := cfg.DeliverPolicy == bus.DeliverByStartSequence
	byTime := cfg.DeliverPolicy == bus.DeliverByStartTime
	if bySeq != (cfg.OptStartSeq > 0) {
		if bySeq {
			return 0, configError("opt_start_seq", "required with deliver_policy by_start_sequence")
		}
		return 0, configError("opt_start_seq", "only allowed with deliver_policy by_start_sequence")
	}
	if byTime != !cfg.OptStartTime.IsZero() {
		if byTime {
			return 0, configError("opt_start_time", "required with deliver_policy by_start_time")
		}
		return 0, configError("opt_start_time", "only allowed with deliver_policy by_start_time")
	}
	switch cfg.DeliverPolicy {
	case bus.DeliverAll:
		return jetstream.DeliverAllPolicy, nil
	case bus.DeliverLast:
		return jetstream.DeliverLastPolicy, nil
	case bus.DeliverNew:
		return jetstream.DeliverNewPolicy, nil
	case bus.DeliverByStartSequence:
		return jetstream.DeliverByStartSequencePolicy, nil
	case bus.DeliverByStartTime:
		return jetstream.DeliverByStartTimePolicy, nil
	case bus.DeliverLastPerSubject:
		return jetstream.DeliverLastPerSubjectPolicy, nil
	}
	return 0, configError("deliver_policy", "unknown value %d", cfg.DeliverPolicy)
}

func ackPolicy(p bus.AckPolicy) (jetstream.AckPolicy, error) {
	switch p {
	case bus.AckExplicit:
		return jetstream.AckExplicitPolicy, nil
	case bus.AckNone:
		return jetstream.AckNonePolicy, nil
	case bus.AckAll:
		return jetstream.AckAllPolicy, nil
	}
	return 0, configError("ack_policy", "unknown value %d", p)
}

// fromConsumerConfig maps a JetStream consumer configuration back to bus's.
func fromConsumerConfig(stream string, c jetstream.ConsumerConfig) bus.ConsumerConfig {
	name := c.Durable
	if name == "" {
		name = c.Name
	}
	out := bus.ConsumerConfig{
		Durable:       name,
		Stream:        stream,
		Description:   c.Description,
		OptStartSeq:   c.OptStartSeq,
		AckWait:       c.AckWait,
		Backoff:       c.BackOff,
		MaxAckPending: c.MaxAckPending,
		MaxDeliver:    c.MaxDeliver,
	}
	if out.MaxDeliver < 0 {
		out.MaxDeliver = 0
	}
	switch {
	case c.FilterSubject != "":
		out.FilterSubjects = []string{c.FilterSubject}
	case len(c.FilterSubjects) > 0:
		out.FilterSubjects = c.FilterSubjects
	}
	if c.OptStartTime != nil {
		out.OptStartTime = *c.OptStartTime
	}
	switch c.DeliverPolicy {
	case jetstream.DeliverLastPolicy:
		out.DeliverPolicy = bus.DeliverLast
	case jetstream.DeliverNewPolicy:
		out.DeliverPolicy = bus.DeliverNew
	case jetstream.DeliverByStartSequencePolicy:
		out.DeliverPolicy = bus.DeliverByStartSequence
	case jetstream.DeliverByStartTimePolicy:
		out.DeliverPolicy = bus.DeliverByStartTime
	case jetstream.DeliverLastPerSubjectPolicy:
		out.DeliverPolicy = bus.DeliverLastPerSubject
	default:
		out.DeliverPolicy = bus.DeliverAll
	}
	switch c.AckPolicy {
	case jetstream.AckNonePolicy:
		out.AckPolicy = bus.AckNone
	case jetstream.AckAllPolicy:
		out.AckPolicy = bus.AckAll
	default:
		out.AckPolicy = bus.AckExplicit
	}
	return out
}

func fromConsumerInfo(ci *jetstream.ConsumerInfo) bus.ConsumerInfo {
	return bus.ConsumerInfo{
		Config:         fromConsumerConfig(ci.Stream, ci.Config),
		NumPending:     ci.NumPending,
		NumAckPending:  ci.NumAckPending,
		NumRedelivered: ci.NumRedelivered,
	}
}
