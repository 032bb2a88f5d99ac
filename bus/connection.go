package bus

// ConnectionState is what a bus reports of its connection to the broker,
// for monitoring.
type ConnectionState struct {
	// Connected is whether the connection is up.
	Connected bool
	// Server names the server the bus is connected to (the server's own
	// name); empty while disconnected.
	Server string
	// URL is that server's address, without credentials; empty while
	// disconnected.
	URL string
	// Reconnects counts the times the connection was lost and made again,
	// to the same server or another, since the bus was made.
	Reconnects uint64
}
