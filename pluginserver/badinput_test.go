package pluginserver_test

import (
	"context"
	"errors"
	"io"
	"os/exec"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/wfeventbus/eventbus/eventbus"
	pluginv1 "github.com/wfeventbus/eventbus/gen/workflow/plugin/v1"
	"github.com/wfeventbus/eventbus/wfplugin"
)

// TestWireBadInput sends what users get wrong over the wire. Each mistake
// must come back as an error that says what is wrong, and the plugin must go
// on serving: a good call follows every bad one.
func TestWireBadInput(t *testing.T) {
	t.Parallel()
	c := launch(t, nil)
	ctx := ctxT(t)
	startApp(t, c,
		embeddedBroker(t, eventbus.TypeBroker, "bus"),
		module{eventbus.TypeStream, "small", map[string]any{"name": "SMALL", "subjects": []any{"small.>"}, "max_msg_size": float64(64)}},
		module{eventbus.TypeConsumer, "small-reader", map[string]any{"stream_name": "SMALL"}},
	)
	goodCfg := map[string]any{"subject": "small.ok", "payload": "ok"}
	good := createStep(t, c, eventbus.StepPublish, "good", goodCfg)
	ack := createStep(t, c, eventbus.StepAck, "ack", map[string]any{"ack_token": "{{ .token }}"})
	big := createStep(t, c, eventbus.StepPublish, "big", map[string]any{"subject": "small.big", "payload": "{{ .body }}"})
	consume := createStep(t, c, eventbus.StepConsume, "consume", map[string]any{"consumer": "small-reader", "batch_size": "{{ .n }}", "max_wait": "200ms"})

	stream := func(name string, extra map[string]any) map[string]any {
		cfg := map[string]any{"name": name, "subjects": []any{strings.ToLower(name) + ".>"}}
		for k, v := range extra {
			cfg[k] = v
		}
		return cfg
	}
	cases := []struct {
		name string
		call func() error
		// is, when set, is the sentinel the error wraps.
		is error
		// says are the texts the error must contain, so a user can tell what
		// to fix.
		says []string
	}{
		{
			name: "unknown module type",
			call: func() error { _, err := c.CreateModule(ctx, "eventbus.queue", "q", map[string]any{}); return err },
			is:   wfplugin.ErrUnknownType, says: []string{"eventbus.queue"},
		},
		{
			name: "unknown step type",
			call: func() error { _, err := c.CreateStep(ctx, "step.eventbus.publsh", "p", map[string]any{}); return err },
			is:   wfplugin.ErrUnknownType, says: []string{"step.eventbus.publsh"},
		},
		{
			name: "stream without subjects",
			call: func() error {
				_, err := c.CreateModule(ctx, eventbus.TypeStream, "nosubj", map[string]any{"name": "NOSUBJ"})
				return err
			},
			is: wfplugin.ErrRemote, says: []string{"subjects", "required"},
		},
		{
			name: "wrong field type",
			call: func() error {
				_, err := c.CreateModule(ctx, eventbus.TypeStream, "wrongtype", stream("WRONGTYPE", map[string]any{"max_msgs": "many"}))
				return err
			},
			is: wfplugin.ErrRemote, says: []string{"max_msgs", "many"},
		},
		{
			name: "unknown field",
			call: func() error {
				_, err := c.CreateModule(ctx, eventbus.TypeStream, "typo", stream("TYPO", map[string]any{"retention_polcy": "RETENTION_POLICY_WORKQUEUE"}))
				return err
			},
			is: wfplugin.ErrRemote, says: []string{"retention_polcy", "retention_policy"},
		},
		{
			name: "unknown broker_ref on a step",
			call: func() error {
				_, err := c.CreateStep(ctx, eventbus.StepPublish, "elsewhere", map[string]any{"subject": "small.x", "payload": "x", "broker_ref": "nope"})
				return err
			},
			is: wfplugin.ErrRemote, says: []string{"broker_ref", "nope"},
		},
		{
			name: "unknown broker_ref on a stream",
			call: func() error {
				h, err := c.CreateModule(ctx, eventbus.TypeStream, "orphan", stream("ORPHAN", map[string]any{"broker_ref": "nope"}))
				if err != nil {
					return err
				}
				return c.InitModule(ctx, h)
			},
			is: wfplugin.ErrRemote, says: []string{"broker_ref", "nope"},
		},
		{
			name: "malformed ack token",
			call: func() error {
				_, err := c.ExecuteStep(ctx, ack, wfplugin.ExecuteInput{Config: map[string]any{"ack_token": "not-a-token"}, Current: map[string]any{"token": "not-a-token"}})
				return err
			},
			is: wfplugin.ErrRemote, says: []string{"invalid ack token"},
		},
		{
			name: "payload over max_msg_size",
			call: func() error {
				body := strings.Repeat("x", 200)
				_, err := c.ExecuteStep(ctx, big, wfplugin.ExecuteInput{Config: map[string]any{"subject": "small.big", "payload": body}, Current: map[string]any{"body": body}})
				return err
			},
			is: wfplugin.ErrRemote, says: []string{"payload too large"},
		},
		{
			name: "batch_size 2000",
			call: func() error {
				_, err := c.CreateStep(ctx, eventbus.StepConsume, "huge", map[string]any{"consumer": "small-reader", "batch_size": float64(2000)})
				return err
			},
			is: wfplugin.ErrRemote, says: []string{"batch_size", "1000", "2000"},
		},
		{
			name: "batch_size 2000 rendered from a template",
			call: func() error {
				_, err := c.ExecuteStep(ctx, consume, wfplugin.ExecuteInput{Config: map[string]any{"consumer": "small-reader", "batch_size": "2000", "max_wait": "200ms"}, Current: map[string]any{"n": "2000"}})
				return err
			},
			is: wfplugin.ErrRemote, says: []string{"batch_size", "1000", "2000"},
		},
		{
			name: "unknown trigger field",
			call: func() error {
				_, err := c.CreateTrigger(ctx, eventbus.TriggerSubscribe, "pipeline:typo", map[string]any{"name": "small-reader", "concurency": float64(4)})
				return err
			},
			is: wfplugin.ErrRemote, says: []string{"concurency", "concurrency"},
		},
		{
			name: "trigger without a consumer",
			call: func() error {
				_, err := c.CreateTrigger(ctx, eventbus.TriggerSubscribe, "pipeline:nameless", map[string]any{"stream_name": "SMALL"})
				return err
			},
			is: wfplugin.ErrRemote, says: []string{"name", "required"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if err == nil {
				t.Fatal("no error")
			}
			t.Logf("error: %v", err)
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %q does not match %v", err, tc.is)
			}
			for _, s := range tc.says {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
			if c.Exited() {
				t.Fatalf("the plugin exited: %v", c.Err())
			}
			if out := execStep(t, c, good, goodCfg, nil); out["stream"] != "SMALL" {
				t.Errorf("publish after the error: %v", out)
			}
		})
	}
	// What the good publishes stored is still consumable, under the limit.
	msgs := messagesOf(t, execStep(t, c, consume, map[string]any{"consumer": "small-reader", "batch_size": "1000", "max_wait": "1s"}, map[string]any{"n": "1000"}))
	if len(msgs) != len(cases) {
		t.Errorf("consumed %d messages, want the %d good publishes", len(msgs), len(cases))
	}
}

// rawPlugin dispenses a bare PluginService client, with no host logic in
// between, to send requests the engine's host would refuse to send.
type rawPlugin struct {
	plugin.NetRPCUnsupportedPlugin
}

func (rawPlugin) GRPCServer(*plugin.GRPCBroker, *grpc.Server) error {
	return errors.New("the raw host serves nothing")
}

func (rawPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, cc *grpc.ClientConn) (any, error) {
	return pluginv1.NewPluginServiceClient(cc), nil
}

// TestWireRawRequests sends the plugin requests no well-behaved host sends
// (unknown types and handles, a missing config, a step with no broker) and
// checks each is answered with an error in the response, not a broken
// connection, and the plugin keeps serving.
func TestWireRawRequests(t *testing.T) {
	t.Parallel()
	pc := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig: plugin.HandshakeConfig{
			ProtocolVersion:  wfplugin.ProtocolVersion,
			MagicCookieKey:   wfplugin.MagicCookieKey,
			MagicCookieValue: wfplugin.MagicCookieValue,
		},
		Plugins:          plugin.PluginSet{wfplugin.PluginName: rawPlugin{}},
		Cmd:              exec.Command(pluginBinary(t)),
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		Logger:           hclog.NewNullLogger(),
		SyncStdout:       io.Discard,
		SyncStderr:       io.Discard,
	})
	t.Cleanup(pc.Kill)
	conn, err := pc.Client()
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	raw, err := conn.Dispense(wfplugin.PluginName)
	if err != nil {
		t.Fatalf("dispense: %v", err)
	}
	rpc := raw.(pluginv1.PluginServiceClient)
	ctx := ctxT(t)
	cfg, err := structpb.NewStruct(map[string]any{"subject": "a.b", "payload": "x"})
	if err != nil {
		t.Fatal(err)
	}

	type answer interface{ GetError() string }
	cases := []struct {
		name string
		call func() (answer, error)
		says []string
	}{
		{"unknown module type", func() (answer, error) {
			return rpc.CreateModule(ctx, &pluginv1.CreateModuleRequest{Type: "eventbus.queue", Name: "q"})
		}, []string{"unknown type", "eventbus.queue"}},
		{"unknown step type", func() (answer, error) {
			return rpc.CreateStep(ctx, &pluginv1.CreateStepRequest{Type: "step.eventbus.publsh", Name: "p"})
		}, []string{"unknown type", "step.eventbus.publsh"}},
		{"unknown trigger type", func() (answer, error) {
			return rpc.CreateTrigger(ctx, &pluginv1.CreateTriggerRequest{Type: "trigger.eventbus.poll", Name: "pipeline:x"})
		}, []string{"unknown type", "trigger.eventbus.poll"}},
		{"unknown module handle", func() (answer, error) {
			return rpc.StartModule(ctx, &pluginv1.HandleRequest{HandleId: "no-such-handle"})
		}, []string{"unknown handle", "no-such-handle"}},
		{"unknown step handle", func() (answer, error) {
			return rpc.ExecuteStep(ctx, &pluginv1.ExecuteStepRequest{HandleId: "no-such-step"})
		}, []string{"unknown handle", "no-such-step"}},
		{"stream with no config at all", func() (answer, error) {
			return rpc.CreateModule(ctx, &pluginv1.CreateModuleRequest{Type: eventbus.TypeStream, Name: "bare"})
		}, []string{"subjects"}},
		{"step before any broker is declared", func() (answer, error) {
			return rpc.CreateStep(ctx, &pluginv1.CreateStepRequest{Type: eventbus.StepPublish, Name: "p", Config: cfg})
		}, []string{eventbus.TypeBroker}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := tc.call()
			if err != nil {
				t.Fatalf("the RPC failed instead of answering an error: %v", err)
			}
			t.Logf("error: %s", resp.GetError())
			for _, s := range tc.says {
				if !strings.Contains(resp.GetError(), s) {
					t.Errorf("error %q does not mention %q", resp.GetError(), s)
				}
			}
			if m, err := rpc.GetManifest(ctx, &emptypb.Empty{}); err != nil || m.GetName() == "" {
				t.Fatalf("GetManifest after the error: %v, %v", m, err)
			}
		})
	}
	if pc.Exited() {
		t.Fatal("the plugin exited")
	}
}
