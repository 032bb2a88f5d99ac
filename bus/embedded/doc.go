// Package embedded runs a nats-server with JetStream inside the current
// process, so the event bus works on a fresh machine with no broker to
// install.
//
// The server listens on a loopback address only ("localhost", 127.0.0.0/8 or
// ::1): it serves this process and local tools such as the nats CLI, never
// the network. Pointing clients at a real NATS cluster is how a deployment
// scales out; this package is the single-node default.
//
// Storage: by default streams may use the file store under Config.StoreDir,
// and a server started again with the same StoreDir recovers every stream
// and message stored there. A server holds an exclusive lock on its store
// directory while it runs, so a second server on the same directory, in
// this process or another, fails to start with ErrStoreInUse instead of
// corrupting the first one's streams; the operating system releases the
// lock when the process ends, however it ends. With Config.MemoryOnly the
// server has no file store at all: only streams with memory storage can be
// created, a stream asking for file storage is refused, nothing is written
// to disk, and there is nothing to lock.
//
// Start validates the configuration, starts the server and waits until it
// accepts clients; Shutdown stops it and waits until it is down. Connect
// returns a client connection that skips the network when it can.
//
// StartCluster runs several such servers routed to each other on loopback,
// each with its own store directory and ports, as a JetStream cluster that
// takes replicated streams: a development stand-in for a production
// cluster, and the cluster the tests take servers away from. A server of a
// Cluster is addressed by name (Stop, Start, Restart); the Cluster says
// which server leads the meta group, a stream or a consumer, which one a
// connection is on, and waits for leaders and for replicas to catch up.
package embedded
