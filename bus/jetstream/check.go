package jetstream

import (
	"fmt"

	"github.com/wfeventbus/eventbus/bus"
)

// FieldError is a stream, consumer or client configuration the bus refuses
// before it asks the server: Field names the setting as the plugin's
// configs spell it (num_replicas, filter_subjects, ack_wait, ...) and
// Reason says what is wrong. It matches bus.ErrInvalidConfig.
type FieldError struct {
	Field  string
	Reason string
}

// Error returns "invalid configuration: <field>: <reason>".
func (e *FieldError) Error() string {
	return bus.ErrInvalidConfig.Error() + ": " + e.Field + ": " + e.Reason
}

// Unwrap makes errors.Is(err, bus.ErrInvalidConfig) true.
func (e *FieldError) Unwrap() error { return bus.ErrInvalidConfig }

// CheckStream runs the checks EnsureStream makes before it sends anything
// to a server, so that a configuration can be checked offline. It returns
// the first problem, a *FieldError.
func CheckStream(cfg bus.StreamConfig) error {
	_, err := streamConfig(cfg)
	return err
}

// CheckConsumer runs the checks EnsureConsumer makes before it sends
// anything to a server. It returns the first problem, a *FieldError.
func CheckConsumer(cfg bus.ConsumerConfig) error {
	_, err := consumerConfig(cfg)
	return err
}

// CheckSubject reports what is wrong with a subject, or nil: a subject to
// publish to (wildcards false) or a pattern of a stream or filter
// (wildcards true, '*' and '>' allowed as whole tokens, '>' last).
func CheckSubject(subject string, wildcards bool) error {
	if problem := subjectProblem(subject, wildcards); problem != "" {
		return fmt.Errorf("%q %s", subject, problem)
	}
	return nil
}
