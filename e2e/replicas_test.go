package e2e_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wfeventbus/eventbus/eventbus"
)

// replicaApp is one replica of an app whose replicas share the durable
// consumer worker: each job's run records which replica ran it and which
// delivery it was (seen.<replica>, no message id: every run is kept) and
// stores the job's result once (a message id derived from the job; the
// job's sequence is read from .trigger, as the first publish's output
// sets .sequence). Besides, a claim
// addressed to the replica takes a task with a consume step and hands its
// ack token to the replica the claim names, whose settle pipeline acks it.
// The replicas differ only in their name (%[2]s).
const replicaApp = `modules:
  - name: bus
    type: eventbus.broker
    config:
      urls: [%[1]s]
  - name: jobs
    type: eventbus.stream
    config: { name: JOBS, subjects: ["job.>"], num_replicas: 3 }
  - name: out
    type: eventbus.stream
    config: { name: OUT, subjects: ["out.>", "seen.>"], num_replicas: 3, duplicate_window: 30m }
  - name: control
    type: eventbus.stream
    config: { name: CONTROL, subjects: ["task.>", "claim.>", "handoff.>", "settled.>"], num_replicas: 3 }
  - name: worker
    type: eventbus.consumer
    config: { stream_name: JOBS, ack_wait: 2s, max_deliver: -1 }
  - name: tasks
    type: eventbus.consumer
    config: { stream_name: CONTROL, filter_subject: task.new, ack_wait: 1h }
pipelines:
  work:
    trigger:
      type: trigger.eventbus.subscribe
      config: { name: worker, concurrency: 4 }
    steps:
      - name: seen
        type: step.eventbus.publish
        config: { subject: 'seen.%[2]s', payload: '{{ toInt .trigger.sequence }} {{ toInt .trigger.delivery_count }}' }
      - name: result
        type: step.eventbus.publish
        config: { subject: 'out.{{ toInt .trigger.sequence }}', payload: '%[2]s', msg_id: 'res-{{ toInt .trigger.sequence }}' }
  claim:
    trigger:
      type: trigger.eventbus.subscribe
      config: { name: claim-%[2]s, stream_name: CONTROL, filter_subject: claim.%[2]s }
    steps:
      - name: take
        type: step.eventbus.consume
        config: { consumer: tasks, batch_size: 1, max_wait: 5s }
      - name: hand-over
        type: step.eventbus.publish
        config: { subject: 'handoff.{{ .payload }}', payload: '{{ (index .steps.take.messages 0).ack_token }}' }
  settle:
    trigger:
      type: trigger.eventbus.subscribe
      config: { name: handoff-%[2]s, stream_name: CONTROL, filter_subject: handoff.%[2]s }
    steps:
      - name: ack
        type: step.eventbus.ack
        config: { ack_token: '{{ .payload }}' }
      - name: done
        type: step.eventbus.publish
        config: { subject: 'settled.%[2]s', payload: '{{ .payload }}' }
`

// replicaJobs is how many jobs the replicas share.
const replicaJobs = 3000

// TestReplicas runs three `eventbus run` replicas of one app on a cluster
// of three nats-server processes, with the token key from
// EVENTBUS_TOKEN_KEY as eventbus deploy passes it. A task one replica
// consumed is acked by a settle step on another, with the token the first
// handed over. Then the replicas share 3,000 jobs through one durable
// consumer and one of them is killed (SIGKILL) mid-stream: every job has
// exactly one result, the jobs the killed replica held are delivered
// again to the others once their ack wait has passed, and both survivors
// take work after the kill. The counts per replica are logged.
func TestReplicas(t *testing.T) {
	t.Parallel()
	ctx := guard(t, clusterGuard)
	c, js := startNATSCluster(t, "replica")
	key := base64.StdEncoding.EncodeToString([]byte("the replicas' shared key, 32 b.."))
	names := []string{"r1", "r2", "r3"}
	apps := map[string]*app{}
	for _, name := range names {
		file := filepath.Join(t.TempDir(), name+".yaml")
		if err := os.WriteFile(file, fmt.Appendf(nil, replicaApp, clusterURLs(c), name), 0o600); err != nil {
			t.Fatal(err)
		}
		apps[name] = launchApp(t, file, appConfig{env: []string{eventbus.TokenKeyEnv + "=" + key}})
	}
	for _, name := range names {
		apps[name].waitRunning(t)
	}

	t.Run("token handed over", func(t *testing.T) {
		publishOnce(t, ctx, js, "task.new", "the task", "task-1")
		publishOnce(t, ctx, js, "claim.r1", "r2", "claim-1")
		settledBy := waitValue(t, ctx, "the task settled on r2", func(ctx context.Context) (uint64, error) {
			n, err := subjectMsgs(ctx, js, "CONTROL", "settled.r2")
			if err == nil && n == 0 {
				err = fmt.Errorf("not yet")
			}
			return n, err
		})
		eventually(t, ctx, "the task acked", func() (bool, string) { return settled(ctx, js, "CONTROL", "tasks") })
		info := waitValue(t, ctx, "the tasks consumer", func(ctx context.Context) (*jetstream.ConsumerInfo, error) {
			cons, err := js.Consumer(ctx, "CONTROL", "tasks")
			if err != nil {
				return nil, err
			}
			return cons.Info(ctx)
		})
		handoffs, err := subjectMsgs(ctx, js, "CONTROL", "handoff.r2")
		if err != nil {
			t.Fatal(err)
		}
		if info.Delivered.Stream != 1 || info.AckFloor.Stream != 1 || info.NumRedelivered != 0 || handoffs != 1 || settledBy != 1 {
			t.Errorf("tasks consumer delivered up to %d, acked up to %d, %d redelivered; %d handoffs, %d settlements; want the one task delivered once, handed over once and acked by r2",
				info.Delivered.Stream, info.AckFloor.Stream, info.NumRedelivered, handoffs, settledBy)
		}
		t.Logf("a task consumed on r1 was acked on r2 with its token: %d handoff, %d settlement, consumer pending=%d ack_pending=%d",
			handoffs, settledBy, info.NumPending, info.NumAckPending)
	})

	victim, survivors := "r1", []string{"r2", "r3"}
	waitValue(t, ctx, "pause the consumer", func(ctx context.Context) (*jetstream.ConsumerPauseResponse, error) {
		return js.PauseConsumer(ctx, "JOBS", "worker", time.Now().Add(time.Hour))
	})
	publishInputs(t, ctx, js, "job.new", "job", replicaJobs)
	waitValue(t, ctx, "resume the consumer", func(ctx context.Context) (*jetstream.ConsumerPauseResponse, error) {
		return js.ResumeConsumer(ctx, "JOBS", "worker")
	})
	// The victim is killed once it has run some jobs and most are still to
	// do.
	eventually(t, ctx, "the replicas at work", func() (bool, string) {
		n, err := subjectMsgs(ctx, js, "OUT", "seen.r1")
		if err != nil {
			return false, err.Error()
		}
		total, err := countSeen(ctx, js)
		return err == nil && n >= 100 && total >= replicaJobs/5, fmt.Sprintf("r1 ran %d jobs, all %d (%v)", n, total, err)
	})
	killedAt := time.Now()
	apps[victim].signal(t, syscall.SIGKILL)
	if code := apps[victim].wait(t, ctx); code != -1 {
		t.Fatalf("%s exited %d, want killed", victim, code)
	}
	seenAtKill := waitValue(t, ctx, "the runs so far", func(ctx context.Context) (uint64, error) { return countSeen(ctx, js) })
	if seenAtKill >= replicaJobs {
		t.Fatalf("every job had run when %s was killed: the kill was not mid-stream", victim)
	}

	eventually(t, ctx, "every result", func() (bool, string) {
		info, err := js.Stream(ctx, "OUT")
		if err != nil {
			return false, err.Error()
		}
		si, err := info.Info(ctx, jetstream.WithSubjectFilter("out.*"))
		if err != nil {
			return false, err.Error()
		}
		return uint64(len(si.State.Subjects)) >= replicaJobs, fmt.Sprintf("%d results", len(si.State.Subjects))
	})
	eventually(t, ctx, "nothing pending", func() (bool, string) { return settled(ctx, js, "JOBS", "worker") })
	done := time.Since(killedAt)

	// Results: one per job, whoever stored it.
	s, err := js.Stream(ctx, "OUT")
	if err != nil {
		t.Fatal(err)
	}
	si, err := s.Info(ctx, jetstream.WithSubjectFilter("out.*"))
	if err != nil {
		t.Fatal(err)
	}
	var stored uint64
	for _, n := range si.State.Subjects {
		stored += n
	}
	if len(si.State.Subjects) != replicaJobs || stored != replicaJobs {
		t.Errorf("%d results on %d subjects for %d jobs, want one each", stored, len(si.State.Subjects), replicaJobs)
	}
	resultsBy := map[string]int{}
	for _, m := range readStream(t, ctx, js, "OUT", "out.*", int(stored)) {
		resultsBy[string(m.Data())]++
	}

	// Runs: every delivery each replica ran, in the order they were
	// recorded; those after seenAtKill ran after the kill.
	total, err := countSeen(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	runs := readStream(t, ctx, js, "OUT", "seen.>", int(total))
	type run struct {
		replica  string
		seq      int
		delivery int
	}
	var all []run
	for _, m := range runs {
		seq, delivery, ok := strings.Cut(string(m.Data()), " ")
		s, err1 := strconv.Atoi(seq)
		d, err2 := strconv.Atoi(delivery)
		if !ok || err1 != nil || err2 != nil {
			t.Fatalf("run record %q on %s", m.Data(), m.Subject())
		}
		all = append(all, run{replica: strings.TrimPrefix(m.Subject(), "seen."), seq: s, delivery: d})
	}
	runsBy, afterKill := map[string]int{}, map[string]int{}
	ranBefore := map[int][]string{} // the replicas each job ran on, before the run at hand
	redeliveredFromVictim := 0
	for i, r := range all {
		runsBy[r.replica]++
		if uint64(i) >= seenAtKill {
			afterKill[r.replica]++
			if r.delivery > 1 && !slices.ContainsFunc(ranBefore[r.seq], func(s string) bool { return s != victim }) {
				// Delivered before, but never run by a survivor: the
				// victim held it, and the survivors got it back.
				redeliveredFromVictim++
			}
		}
		ranBefore[r.seq] = append(ranBefore[r.seq], r.replica)
	}
	for _, s := range survivors {
		if afterKill[s] == 0 {
			t.Errorf("%s ran no job after %s was killed; the work should spread over the survivors", s, victim)
		}
	}
	if redeliveredFromVictim == 0 {
		t.Errorf("no job %s held when it was killed was delivered again to another replica", victim)
	}
	t.Logf("jobs=%d results=%d (stored by r1=%d r2=%d r3=%d); runs=%d: r1=%d r2=%d r3=%d; killed %s with %d runs recorded; after the kill r2=%d r3=%d, of which %d jobs %s held, delivered again; all done %s after the kill",
		replicaJobs, stored, resultsBy["r1"], resultsBy["r2"], resultsBy["r3"], total, runsBy["r1"], runsBy["r2"], runsBy["r3"],
		victim, seenAtKill, afterKill["r2"], afterKill["r3"], redeliveredFromVictim, victim, done.Round(100*time.Millisecond))

	for _, s := range survivors {
		apps[s].signal(t, syscall.SIGINT)
	}
	for _, s := range survivors {
		if code := apps[s].wait(t, ctx); code != 0 {
			t.Errorf("%s exited %d after an interrupt, want 0", s, code)
		}
	}
}

// countSeen returns how many runs the replicas recorded.
func countSeen(ctx context.Context, js jetstream.JetStream) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, "OUT")
	if err != nil {
		return 0, err
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter("seen.>"))
	if err != nil {
		return 0, err
	}
	var n uint64
	for _, c := range info.State.Subjects {
		n += c
	}
	return n, nil
}
