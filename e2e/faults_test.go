package e2e_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wfeventbus/eventbus/internal/natsproc"
)

// faultApp forwards every input of INPUTS to RESULTS, both on three
// replicas, with a message id derived from the input's sequence: a
// redelivered input stores its result once. Deliveries are never given up
// (max_deliver -1), so an input whose pipeline failed during an election is
// delivered again until its result is stored.
const faultApp = `modules:
  - name: bus
    type: eventbus.broker
    config:
      urls: [%s]
  - name: inputs
    type: eventbus.stream
    config: { name: INPUTS, subjects: ["in.>"], num_replicas: 3 }
  - name: results
    type: eventbus.stream
    config: { name: RESULTS, subjects: ["out.>"], num_replicas: 3, duplicate_window: 30m }
  - name: worker
    type: eventbus.consumer
    config: { stream_name: INPUTS, ack_wait: 5s, max_deliver: -1 }
pipelines:
  forward:
    trigger:
      type: trigger.eventbus.subscribe
      config: { name: worker, concurrency: 16 }
    steps:
      - name: result
        type: step.eventbus.publish
        config: { subject: 'out.{{ .subject }}', payload: '{{ .payload }}', msg_id: 'res-{{ toInt .sequence }}' }
`

// faultInputs is how many inputs go through the app around each fault.
const faultInputs = 10_000

// killAfter is how many of a fault's results are stored when the server
// goes: the kill comes mid-stream, with most inputs still to do.
const killAfter = faultInputs / 10

// fault is one server failure the app must ride out.
type fault struct {
	name string
	// target picks the server to kill.
	target func(t *testing.T, ctx context.Context, f *faultRun) string
	// restartMidStream starts the server again once the first half of the
	// inputs have their results, before the second half is published, so
	// that it catches up while the app works on them; otherwise it is
	// started again after the last result.
	restartMidStream bool
}

// faultRun is the cluster and app the faults happen to.
type faultRun struct {
	c          *natsproc.Cluster
	js         jetstream.JetStream
	app        *app
	metricsURL string
}

// TestClusterFaults runs an app on a cluster of three nats-server
// processes, with R3 file-store streams, and kills (SIGKILL) one server in
// the middle of each of three runs of 10,000 inputs through a subscribe
// trigger whose pipeline publishes one result per input: the leader of the
// input stream (started again halfway), the leader of the trigger's
// consumer, and the server the app is connected to. After each, every input
// has exactly one result (as many distinct as stored) and the consumer has
// nothing pending; the app's metrics name the server it is on, and after
// the last fault another, with the reconnect counted. The counts are
// logged.
func TestClusterFaults(t *testing.T) {
	t.Parallel()
	ctx := guard(t, clusterGuard)
	c, js := startNATSCluster(t, "fault")
	file := filepath.Join(t.TempDir(), "app.yaml")
	if err := os.WriteFile(file, fmt.Appendf(nil, faultApp, clusterURLs(c)), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	run := &faultRun{c: c, js: js, metricsURL: "http://" + addr + "/metrics"}
	run.app = startApp(t, file, appConfig{flags: []string{"--metrics-addr", addr}})

	faults := []fault{
		{name: "stream leader", restartMidStream: true, target: func(t *testing.T, ctx context.Context, f *faultRun) string {
			return waitValue(t, ctx, "the leader of INPUTS", func(ctx context.Context) (string, error) { return streamLeader(ctx, f.js, "INPUTS") })
		}},
		{name: "consumer leader", target: func(t *testing.T, ctx context.Context, f *faultRun) string {
			return waitValue(t, ctx, "the leader of INPUTS/worker", func(ctx context.Context) (string, error) {
				return consumerLeader(ctx, f.js, "INPUTS", "worker")
			})
		}},
		{name: "app's server", target: func(t *testing.T, ctx context.Context, f *faultRun) string {
			return waitValue(t, ctx, "the app's server", func(ctx context.Context) (string, error) {
				server, _, err := connectedServer(ctx, f.metricsURL, "bus")
				return server, err
			})
		}},
	}
	for i, f := range faults {
		ok := t.Run(strings.ReplaceAll(f.name, " ", "_"), func(t *testing.T) {
			run.inject(t, ctx, f, fmt.Sprintf("f%d", i))
		})
		if !ok {
			break
		}
	}

	run.app.signal(t, syscall.SIGINT)
	if code := run.app.wait(t, ctx); code != 0 {
		t.Errorf("app exited %d after an interrupt, want 0", code)
	}
}

// inject runs faultInputs inputs on subject in.<phase> through the app and
// kills the server f picks once killAfter of their results are stored.
func (r *faultRun) inject(t *testing.T, ctx context.Context, f fault, phase string) {
	subject, results := "in."+phase, "out.in."+phase
	start := time.Now()
	// The consumer holds the inputs back until all are stored, so that the
	// kill finds the app in the middle of them.
	waitValue(t, ctx, "pause the consumer", func(ctx context.Context) (*jetstream.ConsumerPauseResponse, error) {
		return r.js.PauseConsumer(ctx, "INPUTS", "worker", time.Now().Add(time.Hour))
	})
	first := faultInputs
	if f.restartMidStream {
		first = faultInputs / 2
	}
	publishRange(t, ctx, r.js, subject, phase, 0, first)
	before := r.snapshot(t, ctx)
	victim := f.target(t, ctx, r)
	roles := r.roles(ctx, victim)
	waitValue(t, ctx, "resume the consumer", func(ctx context.Context) (*jetstream.ConsumerPauseResponse, error) {
		return r.js.ResumeConsumer(ctx, "INPUTS", "worker")
	})

	atKill := r.waitResults(t, ctx, results, killAfter)
	r.c.Kill(victim)
	if atKill >= uint64(first) {
		t.Fatalf("every result was stored before %s was killed: the kill was not mid-stream", victim)
	}
	var atRestart uint64
	if f.restartMidStream {
		atRestart = r.waitResults(t, ctx, results, uint64(first))
		r.c.Start(victim)
		publishRange(t, ctx, r.js, subject, phase, first, faultInputs)
	}
	if victim == before.server {
		// The app's connection moves to another server, and counts it.
		eventually(t, ctx, "the app on another server", func() (bool, string) {
			server, reconnects, err := connectedServer(ctx, r.metricsURL, "bus")
			if err != nil {
				return false, err.Error()
			}
			return server != victim && reconnects == before.reconnects+1,
				fmt.Sprintf("on %s after %v reconnects, was on %s after %v", server, reconnects, victim, before.reconnects)
		})
	}
	stored := r.waitResults(t, ctx, results, faultInputs)
	eventually(t, ctx, "nothing pending", func() (bool, string) { return settled(ctx, r.js, "INPUTS", "worker") })
	if !f.restartMidStream {
		r.c.Start(victim)
	}
	if err := r.c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)

	// Every input has one result: as many stored as there are inputs, each
	// a different one.
	if stored != faultInputs {
		t.Errorf("%d results stored for %d inputs", stored, faultInputs)
	}
	n := int(min(stored, faultInputs))
	distinct := map[string]bool{}
	for _, m := range readStream(t, ctx, r.js, "RESULTS", results, n) {
		distinct[string(m.Data())] = true
	}
	var missing []string
	for i := range faultInputs {
		if id := fmt.Sprintf("%s-%d", phase, i); !distinct[id] {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		t.Errorf("%d inputs have no result, the first: %s", len(missing), missing[0])
	}
	after := r.snapshot(t, ctx)
	if after.pending != 0 || after.ackPending != 0 {
		t.Errorf("the app's metrics say %v pending and %v ack pending, want none", after.pending, after.ackPending)
	}
	if victim == before.server && (after.server == victim || after.reconnects != before.reconnects+1) {
		t.Errorf("the app's metrics say it is on %s after %v reconnects, want another server than %s after %v",
			after.server, after.reconnects, victim, before.reconnects+1)
	}
	restarted := "after the last result"
	if f.restartMidStream {
		restarted = fmt.Sprintf("with %d results stored, before inputs %d to %d were published", atRestart, first, faultInputs-1)
	}
	t.Logf("%s: killed %s (%s) with %d of %d results stored; started again %s", f.name, victim, roles, atKill, faultInputs, restarted)
	t.Logf("%s: inputs=%d results stored=%d distinct=%d missing=%d; consumer pending=%v ack_pending=%v; pipeline runs: %v succeeded, %v failed; app on %s (was %s), reconnects %v; %s",
		f.name, faultInputs, stored, len(distinct), len(missing), after.pending, after.ackPending,
		after.succeeded-before.succeeded, after.failed-before.failed, after.server, before.server, after.reconnects,
		elapsed.Round(100*time.Millisecond))
}

// waitResults waits until at least n results are stored on subject and
// returns how many are.
func (r *faultRun) waitResults(t *testing.T, ctx context.Context, subject string, n uint64) uint64 {
	t.Helper()
	var got uint64
	eventually(t, ctx, fmt.Sprintf("%d results on %s", n, subject), func() (bool, string) {
		v, err := subjectMsgs(ctx, r.js, "RESULTS", subject)
		if err != nil {
			return false, err.Error()
		}
		got = v
		return v >= n, fmt.Sprintf("%d results", v)
	})
	return got
}

// roles says what the server called name leads and whether the app is on
// it.
func (r *faultRun) roles(ctx context.Context, name string) string {
	var leads []string
	for _, s := range []string{"INPUTS", "RESULTS"} {
		if l, err := streamLeader(ctx, r.js, s); err == nil && l == name {
			leads = append(leads, "stream "+s)
		}
	}
	if l, err := consumerLeader(ctx, r.js, "INPUTS", "worker"); err == nil && l == name {
		leads = append(leads, "consumer INPUTS/worker")
	}
	desc := "leads nothing"
	if len(leads) > 0 {
		desc = "leads " + strings.Join(leads, ", ")
	}
	if server, _, err := connectedServer(ctx, r.metricsURL, "bus"); err == nil && server == name {
		desc += "; the app is on it"
	}
	return desc
}

// appState is what the app's metrics say.
type appState struct {
	server              string
	reconnects          float64
	pending, ackPending float64
	succeeded, failed   float64
}

// snapshot reads the app's metrics once it is connected.
func (r *faultRun) snapshot(t *testing.T, ctx context.Context) appState {
	t.Helper()
	var st appState
	eventually(t, ctx, "the app's metrics", func() (bool, string) {
		server, reconnects, err := connectedServer(ctx, r.metricsURL, "bus")
		if err != nil {
			return false, err.Error()
		}
		body, err := scrape(ctx, r.metricsURL)
		if err != nil {
			return false, err.Error()
		}
		consumer := map[string]string{"broker": "bus", "stream": "INPUTS", "consumer": "worker"}
		pending, ok1 := sample(body, "eventbus_consumer_pending_messages", consumer)
		ackPending, ok2 := sample(body, "eventbus_consumer_ack_pending_messages", consumer)
		succeeded, _ := sample(body, "eventbus_pipeline_runs_total", map[string]string{"pipeline": "forward", "outcome": "success"})
		failed, _ := sample(body, "eventbus_pipeline_runs_total", map[string]string{"pipeline": "forward", "outcome": "failure"})
		st = appState{server: server, reconnects: reconnects, pending: pending, ackPending: ackPending, succeeded: succeeded, failed: failed}
		return ok1 && ok2, "no consumer gauges"
	})
	return st
}
