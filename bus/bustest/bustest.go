// Package bustest is the conformance suite every bus backend runs from its
// own tests: one Run call with a Harness that says how to make a fresh bus
// and what the backend promises.
//
// A backend's test file runs it like this:
//
//	func TestConformance(t *testing.T) {
//		bustest.Run(t, bustest.Harness{
//			Features: bustest.Features{Dedup: true, NakDelay: true},
//			Storage:  bus.StorageFile,
//			New:      newTestEnv, // a fresh bus on its own broker
//		})
//	}
//
// The cases cover publishing (headers, batches, dedup, expected sequences,
// limits), pull delivery and every settlement by message and by token (ack,
// nak with and without delay, term, in-progress, max deliveries), ack token
// checking and its settlement by other buses sharing the key, per-subject
// order, subscriptions under concurrency and their
// Stop, handlers longer than the ack wait with a backlog waiting for them,
// two buses sharing one durable consumer, a broker restart under load,
// Close, and stream and consumer management with its errors.
//
// Every case is a parallel subtest with its own Env and its own uniquely
// named streams, whose subjects no other case uses, so cases never see each
// other's messages. Cases assert counts and outcomes, never speed; their
// timeouts only keep a broken backend from hanging the run. A case that
// needs a promise the backend does not make is skipped and says which.
package bustest

import (
	"fmt"
	"strings"
	"sync/atomic"
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
	// InProgress: InProgress resets the ack deadline, and a subscription
	// keeps every message it holds from being redelivered until its handler
	// returns, however long it waits for a handler and the handler runs.
	InProgress bool
	// MaxDeliver: a consumer's MaxDeliver bounds redeliveries.
	MaxDeliver bool
	// OrderPerSubject: messages of one subject are delivered in publish
	// order, and a subscription with OrderedBySubject handles them one at a
	// time in that order.
	OrderPerSubject bool
	// Restart: Env.Restart is set and no acknowledged publish is lost across
	// it. The restart case also needs Harness.Storage to be bus.StorageFile.
	Restart bool
}

// Env is one fresh, independent bus for one test case.
type Env struct {
	Bus bus.Bus
	// Restart stops the broker and starts it again on the same storage; the
	// bus reconnects on its own. Nil when the backend cannot restart.
	Restart func(t *testing.T)
	// Connect returns another bus on the same broker, as another process
	// of an application would have (its own connection); it registers its
	// own cleanup with t. Nil makes the cases that need one use Bus twice.
	Connect func(t *testing.T) bus.Bus
	// ConnectKeyed is Connect for a bus that signs ack tokens with key and
	// also accepts those signed with previous, as the replicas of an app
	// configured with a shared token key are. Nil skips the case that
	// settles tokens across buses.
	ConnectKeyed func(t *testing.T, key []byte, previous ...[]byte) bus.Bus
}

// Harness tells the suite how to run against one backend.
type Harness struct {
	Features Features
	// Storage is the storage of the streams the suite creates.
	Storage bus.Storage
	// Replicas is how many copies of each stream the suite creates the
	// broker keeps; 0 leaves it to the backend. A clustered broker sets it
	// to keep every stream on several servers.
	Replicas int
	// New returns a fresh environment; it registers its own cleanup with t.
	New func(t *testing.T) Env
	// NewRestartable, when set, returns the environments of the cases that
	// restart the broker, so that New may hand out environments that share
	// one broker. Nil means New.
	NewRestartable func(t *testing.T) Env
}

// Run runs every case of the suite against h, each as a parallel subtest.
func Run(t *testing.T, h Harness) {
	t.Helper()
	if h.New == nil {
		t.Fatal("bustest: Harness.New is nil")
	}
	s := &suite{h: h}
	for _, c := range cases() {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if c.skip != nil {
				if reason := c.skip(h); reason != "" {
					t.Skip(reason)
				}
			}
			c.run(t, s)
		})
	}
}

// testCase is one case of the suite.
type testCase struct {
	name string
	// skip returns why the case does not apply to a harness, or "".
	skip func(Harness) string
	run  func(t *testing.T, s *suite)
}

// cases lists the suite in the order Run starts it.
func cases() []testCase {
	return []testCase{
		{name: "RoundTrip", run: testRoundTrip},
		{name: "ShortWaits", run: testShortWaits},
		{name: "AckStopsRedelivery", run: testAckStopsRedelivery},
		{name: "NakRedelivers", run: testNakRedelivers},
		{name: "NakDelay", skip: requires("NakDelay", func(f Features) bool { return f.NakDelay }), run: testNakDelay},
		{name: "TermStopsRedelivery", run: testTermStopsRedelivery},
		{name: "InProgressExtendsDeadline", skip: requires("InProgress", func(f Features) bool { return f.InProgress }), run: testInProgress},
		{name: "MaxDeliver", skip: requires("MaxDeliver", func(f Features) bool { return f.MaxDeliver }), run: testMaxDeliver},
		{name: "Dedup", skip: requires("Dedup", func(f Features) bool { return f.Dedup }), run: testDedup},
		{name: "PublishBatch", run: testPublishBatch},
		{name: "ExpectedLastSequence", run: testExpectedLastSequence},
		{name: "OrderPerSubject", skip: requires("OrderPerSubject", func(f Features) bool { return f.OrderPerSubject }), run: testOrderPerSubject},
		{name: "ConcurrentPublishersAndSubscribers", run: testConcurrent},
		{name: "RestartMidStream", skip: restartable, run: testRestart},
		{name: "Tokens", run: testTokens},
		{name: "TokensAcrossReplicas", run: testTokensAcrossReplicas},
		{name: "SubscriptionStop", run: testSubscriptionStop},
		{name: "UnconfirmedAcks", run: testUnconfirmedAcks},
		{name: "LongHandlersRunOnce", skip: requires("InProgress", func(f Features) bool { return f.InProgress }), run: testLongHandlersRunOnce},
		{name: "Close", run: testClose},
		{name: "Management", run: testManagement},
		{name: "SharedConsumer", run: testSharedConsumer},
	}
}

// requires returns a skip function for a case that needs the promise named
// feature, which promised reads from Features.
func requires(feature string, promised func(Features) bool) func(Harness) string {
	return func(h Harness) string {
		if promised(h.Features) {
			return ""
		}
		return fmt.Sprintf("backend does not promise Features.%s", feature)
	}
}

// restartable is the skip function of the restart case: it needs the
// promise and streams that outlive the broker process.
func restartable(h Harness) string {
	if !h.Features.Restart {
		return "backend does not promise Features.Restart"
	}
	if h.Storage != bus.StorageFile {
		return "streams use memory storage, which does not survive a broker restart"
	}
	return ""
}

// suite is the state one Run shares between its cases.
type suite struct {
	h Harness
	// seq numbers the streams the cases create.
	seq atomic.Uint64
}

// uniqueName returns a stream name built from the running test's name and
// the suite's counter: unique within the Run, and across Runs in one binary
// because test names are.
func (s *suite) uniqueName(t *testing.T) string {
	return streamName(t.Name(), s.seq.Add(1))
}

// streamName turns a test name into a name valid for a stream, a consumer
// and a subject token: ASCII letters and digits, everything else '_'.
func streamName(testName string, n uint64) string {
	var b strings.Builder
	for _, r := range testName {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	fmt.Fprintf(&b, "_%d", n)
	return b.String()
}
