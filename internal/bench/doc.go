// Package bench measures the eventbus plugin against the ceilings it is
// built on, in one run on one machine: raw nats.go JetStream publishing and
// fetching on the same embedded broker, and a bare go-plugin gRPC round trip
// between the same host and plugin processes.
//
// A Suite runs every scenario in turn and returns a Report: messages per
// second, the ratio to each figure's ceiling, latency percentiles and the
// plugin process's resident memory, plus the targets the figures are held
// to. `eventbus bench` prints it as a table or as JSON; the Go benchmarks of
// this package run the same scenarios under `go test -bench`.
//
// Raw figures run an embedded nats-server inside the measuring process and
// talk to it over nats.go's in-process connection, exactly as the plugin
// talks to its own embedded broker, so a ratio isolates what the plugin and
// the protocol add. Plugin figures drive a real plugin process through
// wfplugin, as the workflow engine does.
package bench
