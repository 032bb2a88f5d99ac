// Package hostgc paces the garbage collector of a process that hosts
// pipelines: eventbus run and the host side of eventbus bench.
//
// A host keeps little memory alive (the app config, the pipelines' running
// states), so at Go's default GOGC of 100 its heap goal stays at the 4 MiB
// floor and, while messages flow, every trigger call's decoding starts
// another collection within milliseconds. A higher percent lets the heap grow
// to five times what is alive before collecting: a few tens of MiB for a
// host, and markedly more pipeline runs per second (docs/PERFORMANCE.md).
// GOGC in the environment always wins.
package hostgc

import (
	"runtime/debug"
	"runtime/metrics"
)

// Percent is the GOGC a host runs with when the environment sets none.
const Percent = 400

// Set sets the collector's percent to Percent unless lookupEnv finds GOGC,
// and returns the percent in force.
func Set(lookupEnv func(string) (string, bool)) int {
	if _, ok := lookupEnv("GOGC"); !ok {
		debug.SetGCPercent(Percent)
	}
	return Current()
}

// Current returns the collector's percent in force; -1 means collection
// is off (or that the runtime does not report the percent).
func Current() int {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return -1
	}
	// Off is reported as the largest uint64, which converts to -1.
	return int(s[0].Value.Uint64())
}
