package postgres

import (
	"strings"
	"time"

	"github.com/wfeventbus/eventbus/bus"
)

// Limits on names and values, the same as JetStream's so a configuration
// valid on one backend is valid on the other.
const (
	maxNameLen        = 255
	maxDescriptionLen = 4096
	maxReplicas       = 5
	// defaultAckWait is the ack wait of a consumer that sets none.
	defaultAckWait = 30 * time.Second
	// defaultDuplicateWindow is the duplicate window of a stream that sets
	// none, clipped to its max_age.
	defaultDuplicateWindow = 2 * time.Minute
	// defaultMaxAckPending bounds a consumer's unacked deliveries when its
	// max_ack_pending is 0.
	defaultMaxAckPending = 1000
)

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

// checkStreamConfig checks cfg and returns it with defaults filled in.
func checkStreamConfig(cfg bus.StreamConfig) (bus.StreamConfig, error) {
	if err := checkName("name", cfg.Name); err != nil {
		return cfg, err
	}
	if len(cfg.Description) > maxDescriptionLen {
		return cfg, configError("description", "longer than %d characters", maxDescriptionLen)
	}
	if len(cfg.Subjects) == 0 {
		return cfg, configError("subjects", "at least one subject is required")
	}
	for i, s := range cfg.Subjects {
		if p := subjectProblem(s, true); p != "" {
			return cfg, configError("subjects", "%q %s", s, p)
		}
		for _, other := range cfg.Subjects[:i] {
			if subjectsOverlap(s, other) {
				return cfg, configError("subjects", "%q overlaps %q", s, other)
			}
		}
	}
	switch cfg.Retention {
	case bus.RetentionLimits, bus.RetentionInterest, bus.RetentionWorkQueue:
	default:
		return cfg, configError("retention_policy", "unknown value %d", cfg.Retention)
	}
	switch cfg.Storage {
	case bus.StorageFile, bus.StorageMemory:
	default:
		return cfg, configError("storage", "unknown value %d", cfg.Storage)
	}
	switch cfg.Discard {
	case bus.DiscardOld, bus.DiscardNew:
	default:
		return cfg, configError("discard", "unknown value %d", cfg.Discard)
	}
	switch {
	case cfg.Replicas < 0 || cfg.Replicas > maxReplicas:
		return cfg, configError("num_replicas", "%d is not between 1 and %d (0 means 1)", cfg.Replicas, maxReplicas)
	case cfg.Replicas == 0:
		cfg.Replicas = 1
	}
	for _, l := range []struct {
		field string
		v     *int64
	}{{"max_msgs", &cfg.MaxMsgs}, {"max_bytes", &cfg.MaxBytes}} {
		switch {
		case *l.v < -1:
			return cfg, configError(l.field, "%d is negative (0 or -1 means unlimited)", *l.v)
		case *l.v == -1:
			*l.v = 0
		}
	}
	switch {
	case cfg.MaxMsgSize < -1:
		return cfg, configError("max_msg_size", "%d is negative (0 or -1 means unlimited)", cfg.MaxMsgSize)
	case cfg.MaxMsgSize == -1:
		cfg.MaxMsgSize = 0
	}
	if cfg.MaxAge < 0 {
		return cfg, configError("max_age", "%s is negative (0 keeps messages forever)", cfg.MaxAge)
	}
	if cfg.DuplicateWindow < 0 {
		return cfg, configError("duplicate_window", "%s is negative", cfg.DuplicateWindow)
	}
	if cfg.MaxAge > 0 && cfg.DuplicateWindow > cfg.MaxAge {
		return cfg, configError("duplicate_window", "%s is longer than max_age %s", cfg.DuplicateWindow, cfg.MaxAge)
	}
	if cfg.DuplicateWindow == 0 {
		cfg.DuplicateWindow = defaultDuplicateWindow
		if cfg.MaxAge > 0 && cfg.MaxAge < cfg.DuplicateWindow {
			cfg.DuplicateWindow = cfg.MaxAge
		}
	}
	cfg.Subjects = append([]string(nil), cfg.Subjects...)
	return cfg, nil
}

// checkConsumerConfig checks cfg and returns it with defaults filled in.
func checkConsumerConfig(cfg bus.ConsumerConfig) (bus.ConsumerConfig, error) {
	if err := checkName("name", cfg.Durable); err != nil {
		return cfg, err
	}
	if err := checkName("stream_name", cfg.Stream); err != nil {
		return cfg, err
	}
	if len(cfg.Description) > maxDescriptionLen {
		return cfg, configError("description", "longer than %d characters", maxDescriptionLen)
	}
	for i, s := range cfg.FilterSubjects {
		if p := subjectProblem(s, true); p != "" {
			return cfg, configError("filter_subjects", "%q %s", s, p)
		}
		for _, other := range cfg.FilterSubjects[:i] {
			if s == other {
				return cfg, configError("filter_subjects", "%q is listed twice", s)
			}
			if subjectsOverlap(s, other) {
				return cfg, configError("filter_subjects", "%q overlaps %q", s, other)
			}
		}
	}
	bySeq := cfg.DeliverPolicy == bus.DeliverByStartSequence
	byTime := cfg.DeliverPolicy == bus.DeliverByStartTime
	if bySeq != (cfg.OptStartSeq > 0) {
		if bySeq {
			return cfg, configError("opt_start_seq", "required with deliver_policy by_start_sequence")
		}
		return cfg, configError("opt_start_seq", "only allowed with deliver_policy by_start_sequence")
	}
	if byTime != !cfg.OptStartTime.IsZero() {
		if byTime {
			return cfg, configError("opt_start_time", "required with deliver_policy by_start_time")
		}
		return cfg, configError("opt_start_time", "only allowed with deliver_policy by_start_time")
	}
	switch cfg.DeliverPolicy {
	case bus.DeliverAll, bus.DeliverLast, bus.DeliverNew, bus.DeliverByStartSequence, bus.DeliverByStartTime, bus.DeliverLastPerSubject:
	default:
		return cfg, configError("deliver_policy", "unknown value %d", cfg.DeliverPolicy)
	}
	switch cfg.AckPolicy {
	case bus.AckExplicit, bus.AckNone, bus.AckAll:
	default:
		return cfg, configError("ack_policy", "unknown value %d", cfg.AckPolicy)
	}
	switch {
	case cfg.AckWait < 0:
		return cfg, configError("ack_wait", "%s is negative", cfg.AckWait)
	case cfg.AckWait == 0:
		cfg.AckWait = defaultAckWait
	case cfg.AckWait < time.Millisecond:
		return cfg, configError("ack_wait", "%s is shorter than 1ms", cfg.AckWait)
	}
	switch {
	case cfg.MaxDeliver < -1:
		return cfg, configError("max_deliver", "%d is negative (0 or -1 means unlimited)", cfg.MaxDeliver)
	case cfg.MaxDeliver == -1:
		cfg.MaxDeliver = 0
	}
	for _, d := range cfg.Backoff {
		if d <= 0 {
			return cfg, configError("backoff", "%s is not a positive delay", d)
		}
	}
	if len(cfg.Backoff) > 0 && cfg.MaxDeliver > 0 && cfg.MaxDeliver <= len(cfg.Backoff) {
		return cfg, configError("max_deliver", "%d must exceed the %d backoff delays", cfg.MaxDeliver, len(cfg.Backoff))
	}
	switch {
	case cfg.MaxAckPending < -1:
		return cfg, configError("max_ack_pending", "%d is negative (0 means the default of %d, -1 unlimited)", cfg.MaxAckPending, defaultMaxAckPending)
	case cfg.MaxAckPending == 0:
		cfg.MaxAckPending = defaultMaxAckPending
	}
	cfg.FilterSubjects = append([]string(nil), cfg.FilterSubjects...)
	cfg.Backoff = append([]time.Duration(nil), cfg.Backoff...)
	return cfg, nil
}
