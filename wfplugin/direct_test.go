package wfplugin_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/wfeventbus/eventbus/wfplugin"
)

// answer is what a host got from one call: an output, or an error's text
// and the sentinels it matches.
type answer struct {
	Output  any
	Error   string
	Matches []string
}

var sentinels = map[string]error{
	"ErrRemote": wfplugin.ErrRemote, "ErrEncode": wfplugin.ErrEncode, "ErrNotJSONShaped": wfplugin.ErrNotJSONShaped,
	"ErrUnknownHandle": wfplugin.ErrUnknownHandle, "ErrUnknownType": wfplugin.ErrUnknownType, "ErrClosed": wfplugin.ErrClosed,
	"ErrInvalidArgument": wfplugin.ErrInvalidArgument, "ErrWorkflowFailed": wfplugin.ErrWorkflowFailed,
}

func answerOf(out any, err error) answer {
	if err == nil {
		return answer{Output: out}
	}
	a := answer{Error: err.Error()}
	for name, s := range sentinels {
		if errors.Is(err, s) {
			a.Matches = append(a.Matches, name)
		}
	}
	slicesSort(a.Matches)
	return a
}

func slicesSort(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// workflowCalls records what a trigger handed the host and answers each
// call as the data's "answer" asks: fail, panic or succeed.
type workflowCalls struct {
	mu    sync.Mutex
	calls []map[string]any
	seen  chan struct{}
}

func (w *workflowCalls) handle(_ context.Context, _, _ string, data map[string]any) error {
	w.mu.Lock()
	w.calls = append(w.calls, data)
	w.mu.Unlock()
	w.seen <- struct{}{}
	switch len(w.calls) {
	case 1:
		return errors.New("pipeline failed: marker")
	}
	return nil
}

// TestDirectAnswersAsTheWire makes the same calls, in the same order, on
// the test plugin in its own process and through LaunchDirect, and checks
// that the host gets the same answers: outputs equal value for value
// (numbers as float64, nil maps and lists as empty ones), and errors with
// the same text matching the same sentinels.
func TestDirectAnswersAsTheWire(t *testing.T) {
	t.Parallel()
	script := func(t *testing.T, c *wfplugin.Client, w *workflowCalls) []answer {
		ctx := ctxOf(t)
		var out []answer
		add := func(v any, err error) { out = append(out, answerOf(v, err)) }
		step := func(typ string, raw map[string]any) string {
			h, err := c.CreateStep(ctx, typ, "s-"+typ, raw)
			add(h, err)
			return h
		}
		exec := func(h string, in wfplugin.ExecuteInput) {
			res, err := c.ExecuteStep(ctx, h, in)
			if err != nil {
				add(nil, err)
				return
			}
			add(map[string]any{"output": res.Output, "stop": res.StopPipeline}, nil)
		}

		m, err := c.CreateModule(ctx, "test.module", "orders", map[string]any{"name": "ORDERS", "num_replicas": 3, "_config_dir": "/app"})
		add(m, err)
		add(c.CreateModule(ctx, "test.module", "typo", map[string]any{"nmae": "X"}))
		add(c.CreateModule(ctx, "test.nope", "x", nil))
		add(c.CreateModule(ctx, "test.module", "bad", map[string]any{"name": "B", "when": time.Unix(0, 0)}))
		add(nil, c.InitModule(ctx, m))
		add(nil, c.StartModule(ctx, m))
		add(nil, c.StartModule(ctx, m))
		add(nil, c.InitModule(ctx, "module-99"))
		add(nil, c.StopModule(ctx, m))
		add(nil, c.StopModule(ctx, m))

		echo := step("step.test.echo", map[string]any{"n": 1})
		settle := step("step.test.settle", map[string]any{"ack_token": "{{ .t }}", "delay": "{{ .d }}"})
		strict := step("step.test.strict", nil)
		output := step("step.test.output", nil)
		panicky := step("step.test.panic", nil)
		step("step.test.nope", nil)
		step("step.test.strict", map[string]any{"bogus": true})

		exec(echo, wfplugin.ExecuteInput{
			TriggerData: map[string]any{"n": 3, "list": []any{int64(1), float32(0.5)}, "empty": map[string]any(nil)},
			StepOutputs: map[string]map[string]any{"prev": {"ok": true, "n": uint16(2)}, "none": nil},
			Current:     map[string]any{"ack_token": "tok", "nil_list": []any(nil)},
			Metadata:    map[string]any{"pipeline": "orders", "started_at": time.Now(), "n": 1},
			Config:      map[string]any{"msg": "hello", "stop": true, "_config_dir": "/app", "int": 9},
		})
		exec(echo, wfplugin.ExecuteInput{Config: map[string]any{"fail": "boom"}})
		exec(echo, wfplugin.ExecuteInput{TriggerData: map[string]any{"h": map[string]string{"a": "b"}}})
		exec(echo, wfplugin.ExecuteInput{StepOutputs: map[string]map[string]any{"p": {"at": time.Now()}}})
		exec(echo, wfplugin.ExecuteInput{Current: map[string]any{"b": []byte("x")}})
		exec(echo, wfplugin.ExecuteInput{Config: map[string]any{"s": []string{"x"}}})
		exec(settle, wfplugin.ExecuteInput{Current: map[string]any{"ack_token": "cur"}, Config: map[string]any{"ack_token": "cfg", "delay": "2s"}})
		exec(settle, wfplugin.ExecuteInput{Current: map[string]any{"ack_token": "cur"}, Config: map[string]any{"delay": "soon"}})
		exec(strict, wfplugin.ExecuteInput{Current: map[string]any{"ack_token": "cur"}, Config: map[string]any{"ack_token": "cfg"}})
		exec(strict, wfplugin.ExecuteInput{Config: map[string]any{"delay": "soon"}})
		for _, kind := range []string{"numbers", "time", "none", "stop"} {
			exec(output, wfplugin.ExecuteInput{Config: map[string]any{"kind": kind}})
		}
		exec(panicky, wfplugin.ExecuteInput{})
		exec("step-99", wfplugin.ExecuteInput{})
		cancelled, cancel := context.WithCancel(ctx)
		cancel()
		_, err = c.ExecuteStep(cancelled, echo, wfplugin.ExecuteInput{})
		add(nil, err)

		tr, err := c.CreateTrigger(ctx, "trigger.test.fire", "pipeline:orders", map[string]any{"queue": "q", "n": 2})
		add(tr, err)
		add(c.CreateTrigger(ctx, "trigger.test.fire", "pipeline:orders", map[string]any{"queue": "other"}))
		add(c.CreateTrigger(ctx, "trigger.test.fire", "pipeline: bad", nil))
		add(nil, c.StartTrigger(ctx, tr))
		for range 2 {
			select {
			case <-w.seen:
			case <-ctx.Done():
				t.Fatal("the trigger did not fire twice")
			}
		}
		add(nil, c.StopTrigger(ctx, tr))
		w.mu.Lock()
		for _, d := range w.calls {
			add(d, nil)
		}
		w.mu.Unlock()

		closeClient(t, c)
		exec(echo, wfplugin.ExecuteInput{})
		add(nil, c.StartModule(ctx, m))
		return out
	}
	answers := map[string][]answer{}
	for _, tr := range transports {
		w := &workflowCalls{seen: make(chan struct{}, 2)}
		answers[tr] = script(t, launchVia(t, tr, modeServe, wfplugin.WithWorkflowHandler(w.handle)), w)
	}
	wire, direct := answers["process"], answers["direct"]
	if len(wire) != len(direct) {
		t.Fatalf("%d answers over the wire, %d direct", len(wire), len(direct))
	}
	for i := range wire {
		if !reflect.DeepEqual(wire[i], direct[i]) {
			t.Errorf("call %d:\n wire   %s\n direct %s", i, show(wire[i]), show(direct[i]))
		}
	}
}

func show(a answer) string {
	if a.Error != "" {
		return fmt.Sprintf("error %q %v", a.Error, a.Matches)
	}
	return fmt.Sprintf("%#v", a.Output)
}
