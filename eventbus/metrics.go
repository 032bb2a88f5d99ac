package eventbus

// Metrics receives counts of what the plugin does. Streams and consumers
// are announced as the plugin sets them up, so that their counts can exist,
// at zero, before anything happens to them.
type Metrics interface {
	// StreamDeclared announces a stream a module of the app declares.
	StreamDeclared(stream string)
	// ConsumerDeclared announces a durable consumer of stream that the app
	// declares or a trigger reads.
	ConsumerDeclared(stream, consumer string)
	// Published counts n messages the publish step stored in stream.
	Published(stream string, n int)
	// Settled counts one settlement of a delivery of stream's consumer:
	// "ack", "nak" or "term".
	Settled(stream, consumer, kind string)
	// DeadLettered counts one message of stream's consumer published to
	// its dead-letter subject after its last allowed delivery.
	DeadLettered(stream, consumer string)
}

type noMetrics struct{}

func (noMetrics) StreamDeclared(string)           {}
func (noMetrics) ConsumerDeclared(string, string) {}
func (noMetrics) Published(string, int)           {}
func (noMetrics) Settled(string, string, string)  {}
func (noMetrics) DeadLettered(string, string)     {}
