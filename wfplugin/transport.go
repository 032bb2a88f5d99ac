package wfplugin

import (
	"runtime"

	"google.golang.org/grpc"
)

// Both halves talk over a local socket, so the connection is tuned for
// many small calls and for large pipeline states rather than for a network.
const (
	// flowWindow is the HTTP/2 flow-control window of every stream and
	// connection. gRPC's default starts at 64 KiB and grows only after it
	// has measured the link; a batch step's request (hundreds of KiB) would
	// wait for several window updates on every call. Setting it turns that
	// measuring off.
	flowWindow = 4 << 20
	// minStreamWorkers is the least number of goroutines that serve calls.
	// gRPC otherwise starts a goroutine per call, whose stack then grows
	// through the protobuf decoding on every call; a worker keeps its grown
	// stack. Calls beyond the workers still get a goroutine of their own.
	minStreamWorkers = 32
)

// serverTuning returns the options of the gRPC servers this package runs:
// the plugin's PluginService and the host's callback service.
func serverTuning() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.NumStreamWorkers(uint32(max(minStreamWorkers, 4*runtime.GOMAXPROCS(0)))),
		grpc.InitialWindowSize(flowWindow),
		grpc.InitialConnWindowSize(flowWindow),
	}
}

// dialTuning returns the options of the gRPC connections this package
// dials: the host's to the plugin and the plugin's callback connection.
func dialTuning() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithInitialWindowSize(flowWindow),
		grpc.WithInitialConnWindowSize(flowWindow),
	}
}
