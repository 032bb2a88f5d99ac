package eventbus_test

import (
	"context"
	"strings"
	"testing"

	"github.com/wfeventbus/eventbus/eventbus"
)

// TestPublishMsgIDs checks the ids the publish step gives messages without
// a msg_id: in a pipeline of the subscribe trigger, the same for a repeated
// execution for the same input, step, batch index, foreach iteration and
// message, so that the repeat is stored once, and different when any of
// them differs; elsewhere a new one each time. A msg_id of the config wins,
// and auto_msg_id: false sends none.
//
// The ids are derived by the plugin core, whatever the backend; they are
// read back from the Nats-Msg-Id header, which only JetStream delivers (the
// postgres backend keeps a message's id in a column of its own).
func TestPublishMsgIDs(t *testing.T) {
	t.Parallel()
	a := ordersApp(t, backends[0], nil)
	ctx := context.Background()
	input := func(seq float64) map[string]any {
		return map[string]any{"stream": "IN", "consumer": "w", "sequence": seq, "ack_token": "token", "subject": "in.x"}
	}
	step := func(name string, cfg map[string]any) eventbus.Step {
		t.Helper()
		s, err := a.p.CreateStep(ctx, eventbus.StepPublish, name, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	var stored int
	publish := func(what string, s eventbus.Step, cfg, trigger, current map[string]any, wantDuplicates ...bool) {
		t.Helper()
		out, err := s.Execute(ctx, eventbus.MapInput{Rendered: cfg, Data: current, TriggerData: trigger})
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		var got []bool
		if results, ok := out["results"].([]any); ok {
			for _, r := range results {
				got = append(got, r.(map[string]any)["duplicate"].(bool))
			}
		} else {
			got = []bool{out["duplicate"].(bool)}
		}
		for i, dup := range got {
			if dup != wantDuplicates[i] {
				t.Fatalf("%s: message %d duplicate = %v, want %v", what, i, dup, wantDuplicates[i])
			}
			if !dup {
				stored++
			}
		}
	}

	one := map[string]any{"subject": "orders.out", "payload": "x"}
	forward := step("forward", one)
	publish("first run", forward, one, input(7), nil, false)
	publish("the same input again", forward, one, input(7), nil, true)
	publish("another step", step("other", one), one, input(7), nil, false)
	publish("another input", forward, one, input(8), nil, false)
	publish("foreach iteration 0", forward, one, input(7), map[string]any{"foreach": map[string]any{"index": 0}}, false)
	publish("foreach iteration 1", forward, one, input(7), map[string]any{"foreach": map[string]any{"index": float64(1)}}, false)
	publish("foreach iteration 1 again", forward, one, input(7), map[string]any{"foreach": map[string]any{"index": 1}}, true)
	other := map[string]any{"subject": "orders.out", "payload": "y"}
	publish("another message", step("forward", other), other, input(7), nil, false)

	batch := map[string]any{"subject": "orders.out", "messages": []any{map[string]any{"payload": "x"}, map[string]any{"payload": "x"}}}
	publishBatch := step("fan-out", batch)
	publish("a batch of two equal messages", publishBatch, batch, input(7), nil, false, false)
	publish("the batch again", publishBatch, batch, input(7), nil, true, true)

	off := map[string]any{"subject": "orders.out", "payload": "x", "auto_msg_id": false}
	noIDs := step("forward", off)
	publish("auto_msg_id false", noIDs, off, input(7), nil, false)
	publish("auto_msg_id false again", noIDs, off, input(7), nil, false)

	publish("outside a trigger", forward, one, nil, nil, false)
	publish("outside a trigger again", forward, one, nil, nil, false)

	own := map[string]any{"subject": "orders.out", "payload": "x", "msg_id": "mine"}
	publish("a msg_id of the config", step("forward", own), own, input(7), nil, false)
	publish("a msg_id of the config again", step("forward", own), own, input(9), nil, true)

	read := map[string]any{"consumer": "worker", "batch_size": float64(100), "max_wait": "200ms"}
	con := a.step(eventbus.StepConsume, read)
	var msgs []any
	for {
		got := a.exec(con, read, nil)["messages"].([]any)
		if len(got) == 0 {
			break
		}
		msgs = append(msgs, got...)
	}
	if len(msgs) != stored {
		t.Fatalf("the stream holds %d messages, want %d", len(msgs), stored)
	}
	var derived, random, none, mine int
	for _, m := range msgs {
		id, _ := m.(map[string]any)["headers"].(map[string]any)["Nats-Msg-Id"].(string)
		switch {
		case id == "mine":
			mine++
		case strings.HasPrefix(id, "eventbus:IN:"):
			derived++
		case id == "":
			none++
		default:
			random++
		}
	}
	if derived != 8 || random != 2 || none != 2 || mine != 1 {
		t.Fatalf("ids: %d derived, %d random, %d none, %d of the config; want 8, 2, 2, 1", derived, random, none, mine)
	}
}
