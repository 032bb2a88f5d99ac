package eventbus

import "time"

// Metrics receives counts of what the plugin does.
type Metrics interface {
	// Published counts n messages stored on subject (a batch's subject is
	// its first message's).
	Published(subject string, n int)
	// Settled counts one settlement: "ack", "nak" or "term".
	Settled(kind string)
	// DeadLettered counts one message published to a dead-letter subject.
	DeadLettered(subject string)
	// PipelineRun counts one pipeline run a trigger fired and its duration.
	PipelineRun(workflow string, ok bool, d time.Duration)
}

type noMetrics struct{}

func (noMetrics) Published(string, int)                   {}
func (noMetrics) Settled(string)                          {}
func (noMetrics) DeadLettered(string)                     {}
func (noMetrics) PipelineRun(string, bool, time.Duration) {}
