package bench

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wfeventbus/eventbus/eventbus"
	"github.com/wfeventbus/eventbus/wfplugin"
)

// publishInput is one execution of a publish step as a pipeline's host
// sends it: the rendered config, and the pipeline's current data, trigger
// data and metadata (here: the body the pipeline received).
func publishInput(config map[string]any, body string) wfplugin.ExecuteInput {
	data := map[string]any{"payload": body}
	return wfplugin.ExecuteInput{
		Config:      config,
		Current:     data,
		TriggerData: data,
		StepOutputs: map[string]map[string]any{},
		Metadata:    map[string]any{"pipeline": "bench", "started_at": time.Now().UTC().Format(time.RFC3339)},
	}
}

// singlePublish creates a step.eventbus.publish whose payload is a
// template, as a pipeline's would be, so the plugin decodes the rendered
// config of every execution. It returns the step's handle.
func (s *session) singlePublish(ctx context.Context, name, subject string) (string, error) {
	return s.c.CreateStep(ctx, eventbus.StepPublish, name, map[string]any{
		"subject": subject, "payload": "{{ .payload }}", "broker_ref": brokerModule,
	})
}

// publishOne is one execution of a single-message publish step.
func (s *session) publishOne(handle, subject string, body string) op {
	in := publishInput(map[string]any{"subject": subject, "payload": body, "broker_ref": brokerModule}, body)
	return func(ctx context.Context) (int, error) {
		res, err := s.c.ExecuteStep(ctx, handle, in)
		if err != nil {
			return 0, err
		}
		if _, ok := res.Output["sequence"]; !ok {
			return 0, fmt.Errorf("publish step output has no sequence: %v", res.Output)
		}
		return 1, nil
	}
}

// batchPublish creates the batch form of step.eventbus.publish with size
// templated messages and returns its handle and the rendered config of one
// execution.
func (s *session) batchPublish(ctx context.Context, name, subject string, size int, body string) (string, map[string]any, error) {
	raw := make([]any, size)
	rendered := make([]any, size)
	for i := range raw {
		raw[i] = map[string]any{"payload": "{{ .payload }}"}
		rendered[i] = map[string]any{"payload": body}
	}
	h, err := s.c.CreateStep(ctx, eventbus.StepPublish, name, map[string]any{
		"subject": subject, "messages": raw, "broker_ref": brokerModule,
	})
	if err != nil {
		return "", nil, err
	}
	return h, map[string]any{"subject": subject, "messages": rendered, "broker_ref": brokerModule}, nil
}

// publishBatch is one execution of a batch publish step of size messages.
func (s *session) publishBatch(handle string, config map[string]any, size int, body string) op {
	in := publishInput(config, body)
	return func(ctx context.Context) (int, error) {
		res, err := s.c.ExecuteStep(ctx, handle, in)
		if err != nil {
			return 0, err
		}
		if n, _ := res.Output["count"].(float64); int(n) != size {
			return 0, fmt.Errorf("batch publish stored %v of %d messages", res.Output["count"], size)
		}
		return size, nil
	}
}

// fill stores n messages on subject directly on the plugin's broker,
// over TCP with nats.go async publishes, so that preparing a trigger run
// costs the plugin as little as possible.
func (s *session) fill(ctx context.Context, subject string, n int, body []byte) error {
	if s.filler != nil {
		return s.filler(ctx, subject, n, body)
	}
	nc, err := nats.Connect(s.url, nats.Name("eventbus-bench-fill"))
	if err != nil {
		return fmt.Errorf("connect to the plugin's broker: %w", err)
	}
	defer nc.Close()
	var failed atomic.Int64
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(asyncMaxPending),
		jetstream.WithPublishAsyncErrHandler(func(jetstream.JetStream, *nats.Msg, error) { failed.Add(1) }))
	if err != nil {
		return err
	}
	for i := range n {
		if _, err := js.PublishAsync(subject, body, jetstream.WithStallWait(asyncStallWait)); err != nil {
			return fmt.Errorf("fill %s, message %d: %w", subject, i, err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		return ctx.Err()
	}
	if f := failed.Load(); f > 0 {
		return fmt.Errorf("fill %s: %d of %d publishes failed", subject, f, n)
	}
	return nil
}

// bareRPC is the cheapest round trip the protocol has: InitModule of the
// broker module, which the plugin answers without doing anything. It is
// the same gRPC connection, framing and request path every step and
// trigger call uses, with nothing to convert or store.
func (s *session) bareRPC() op {
	return func(ctx context.Context) (int, error) {
		if err := s.c.InitModule(ctx, s.broker); err != nil {
			return 0, err
		}
		return 1, nil
	}
}

// triggerRun subscribes a trigger of the given concurrency to subject and
// measures its pipeline runs from the first until target runs or limit
// have passed. Every trigger reads through a durable consumer of its own,
// from the start of the stream.
func (s *session) triggerRun(ctx context.Context, subject string, concurrency, target int, limit time.Duration) (measurement, error) {
	cpu0 := s.cpu()
	h, sk, err := s.startTrigger(ctx, subject, concurrency, target, false)
	if err != nil {
		return measurement{}, err
	}
	m, waitErr := waitRuns(ctx, sk, limit)
	// The CPU time from the trigger's start to here, per run so far: the
	// runs before the window opened cost CPU too.
	if n := sk.count.Load(); n > 0 {
		m.CPU = (s.cpu() - cpu0) * time.Duration(m.Messages) / time.Duration(n)
	}
	if err := s.stopTrigger(ctx, h, sk); err != nil && waitErr == nil {
		waitErr = err
	}
	return m, waitErr
}

// startTrigger creates and starts a subscribe trigger of the given
// concurrency on subject, whose pipeline runs go to the returned sink.
func (s *session) startTrigger(ctx context.Context, subject string, concurrency, target int, latency bool) (string, *sink, error) {
	id := s.seq.Add(1)
	name := "bench-trigger-" + strconv.Itoa(concurrency) + "-" + strconv.FormatInt(id, 10)
	workflow := "pipeline:" + name
	sk := newSink(target, latency)
	s.sinks.add(workflow, sk)
	h, err := s.c.CreateTrigger(ctx, eventbus.TriggerSubscribe, workflow, map[string]any{
		"name":           name,
		"stream_name":    streamName,
		"filter_subject": subject,
		"concurrency":    float64(concurrency),
		"broker_ref":     brokerModule,
	})
	if err != nil {
		return "", nil, err
	}
	if err := s.c.StartTrigger(ctx, h); err != nil {
		return "", nil, err
	}
	return h, sk, nil
}

// stopTrigger stops and frees a trigger, and fails if any of its runs got
// data that was not a bench message.
func (s *session) stopTrigger(ctx context.Context, h string, sk *sink) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	err := s.c.StopTrigger(ctx, h)
	_ = s.c.DestroyModule(ctx, h)
	if err != nil {
		return err
	}
	if bad := sk.bad.Load(); bad > 0 {
		return fmt.Errorf("%d pipeline runs got data that is not a bench message", bad)
	}
	return nil
}

// firstRunGuard bounds the wait for a trigger's first run; it only turns a
// hang into an error.
const firstRunGuard = 30 * time.Second

// waitRuns waits for sk's target or for limit after its first run.
func waitRuns(ctx context.Context, sk *sink, limit time.Duration) (measurement, error) {
	guard := time.NewTimer(firstRunGuard)
	defer guard.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-sk.done:
			first, _ := sk.started()
			return measurement{Messages: sk.target, Elapsed: time.Unix(0, sk.end.Load()).Sub(first)}, nil
		case <-ctx.Done():
			return measurement{}, ctx.Err()
		case <-guard.C:
			if _, ok := sk.started(); !ok {
				return measurement{}, fmt.Errorf("the trigger ran no pipeline within %s", firstRunGuard)
			}
		case now := <-tick.C:
			if first, ok := sk.started(); ok && now.Sub(first) >= limit {
				return measurement{Messages: sk.count.Load(), Elapsed: now.Sub(first)}, nil
			}
		}
	}
}

// latencyWarmup is how many messages the latency scenario sends, at its
// rate, before it measures: the trigger's first pull and the first calls
// on each connection are not what it is after.
const latencyWarmup = 100

// latencyRun publishes through a publish step at a fixed rate for d while
// a trigger of the given concurrency runs a pipeline per message, and
// measures the time from each message's send to the start of its
// pipeline. Sends follow the schedule even when one is late, and a message
// the system held back counts from its scheduled time, so a stall shows up
// in the latencies of the messages behind it (see paced).
func (s *session) latencyRun(ctx context.Context, rate int, d time.Duration, concurrency, size int) (measurement, error) {
	// A subject of its own, so the trigger reads only this run's messages.
	subject := subjectLatency + "." + strconv.FormatInt(s.seq.Add(1), 10)
	step, err := s.singlePublish(ctx, "latency", subject)
	if err != nil {
		return measurement{}, err
	}
	cfg := map[string]any{"subject": subject, "broker_ref": brokerModule}
	return s.latencyRunVia(ctx, subject, rate, d, concurrency, size, func(ctx context.Context, body string) error {
		cfg["payload"] = body
		_, err := s.c.ExecuteStep(ctx, step, publishInput(cfg, body))
		return err
	})
}

// latencyRunVia is latencyRun with the messages sent to subject by send.
func (s *session) latencyRunVia(ctx context.Context, subject string, rate int, d time.Duration, concurrency, size int, send func(ctx context.Context, body string) error) (measurement, error) {
	total := max(1, int(float64(rate)*d.Seconds()))
	h, sk, err := s.startTrigger(ctx, subject, concurrency, latencyWarmup+total, true)
	if err != nil {
		return measurement{}, err
	}
	m, runErr := s.paced(ctx, sk, send, rate, total, size)
	if err := s.stopTrigger(ctx, h, sk); err != nil && runErr == nil {
		runErr = err
	}
	if runErr != nil {
		return measurement{}, runErr
	}
	return m, nil
}

// paced sends the warm-up messages, waits for their runs, then sends total
// messages on schedule and waits for every run.
//
// Each measured message carries the time it counts from: its scheduled
// time when the previous publish was still running then (the system held
// it back, and that delay is part of its latency), else the moment it was
// sent. The scheduler wakes a sleeping sender up to a millisecond late on
// Linux, and that lateness belongs to the load generator, not to the path
// being measured.
func (s *session) paced(ctx context.Context, sk *sink, publish func(ctx context.Context, body string) error, rate, total, size int) (measurement, error) {
	interval := time.Second / time.Duration(rate)
	var prevEnd time.Time
	send := func(at time.Time, measured bool) error {
		behind := prevEnd.After(at)
		if wait := time.Until(at); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			}
		}
		ts := int64(0) // warm-up messages carry no send time
		if measured {
			ts = time.Now().UnixNano()
			if behind {
				ts = at.UnixNano()
			}
		}
		err := publish(ctx, string(payload(size, ts)))
		prevEnd = time.Now()
		return err
	}
	start := time.Now()
	for i := range latencyWarmup {
		if err := send(start.Add(time.Duration(i)*interval), false); err != nil {
			return measurement{}, fmt.Errorf("publish warm-up message %d: %w", i, err)
		}
	}
	guard := time.Now().Add(firstRunGuard)
	for sk.count.Load() < latencyWarmup {
		if time.Now().After(guard) {
			return measurement{}, fmt.Errorf("%d of %d warm-up messages reached a pipeline", sk.count.Load(), latencyWarmup)
		}
		time.Sleep(time.Millisecond)
	}
	cpu0 := s.cpu()
	start = time.Now()
	for i := range total {
		if err := send(start.Add(time.Duration(i)*interval), true); err != nil {
			return measurement{}, fmt.Errorf("publish message %d: %w", i, err)
		}
	}
	select {
	case <-sk.done:
	case <-ctx.Done():
		return measurement{}, ctx.Err()
	case <-time.After(firstRunGuard):
		return measurement{}, fmt.Errorf("%d of %d messages reached a pipeline", sk.count.Load()-latencyWarmup, total)
	}
	return measurement{Messages: int64(total), Elapsed: time.Duration(total) * interval, Latency: sk.latencies(), CPU: s.cpu() - cpu0}, nil
}
