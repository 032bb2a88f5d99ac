// Package wfplugin implements both halves of the GoCodeAlone workflow
// engine's external-plugin protocol (go-plugin in gRPC mode, handshake
// WORKFLOW_PLUGIN=workflow-external-plugin-v1, plugin key "plugin"), wire
// compatible with the engine as its specification describes it.
//
// # Serving a plugin
//
// A plugin binary implements Plugin — modules, steps and triggers created
// on request, addressed by opaque handles — and calls Serve from main:
//
//	func main() {
//		if err := wfplugin.Serve(myplugin.New()); err != nil {
//			fmt.Fprintln(os.Stderr, err)
//			os.Exit(1)
//		}
//	}
//
// Serve takes care of the engine's quirks: the callback broker is dialled
// inside ConfigureCallback, each trigger fires the workflow it was created
// for (the CreateTrigger name), Start runs on a context that outlives the
// RPC, type lists are stable, step errors travel in the response instead
// of breaking the connection, panics in plugin code are recovered, large
// requests are accepted, and logs go to stderr because stdout carries the
// handshake. Struct payloads carry only JSON-shaped values (ToStruct).
//
// # Launching a plugin
//
// Launch is the host side. It loads a plugin binary with the engine's exact
// load sequence and then drives it with typed calls that build requests the
// way the engine builds them, including typed contracts (Registry): a test
// or runner on top of it fails where the engine would.
//
//	c, err := wfplugin.Launch(ctx, "data/plugins/eventbus/eventbus",
//		wfplugin.WithLogger(logger),
//		wfplugin.WithWorkflowHandler(func(ctx context.Context, workflowType, action string, data map[string]any) error {
//			return runPipeline(ctx, workflowType, data)
//		}))
//	if err != nil {
//		return err
//	}
//	defer c.Close(context.Background())
//	h, err := c.CreateStep(ctx, "step.eventbus.ack", "ack", map[string]any{"ack_token": "{{ .ack_token }}"})
//	...
//	res, err := c.ExecuteStep(ctx, h, wfplugin.ExecuteInput{Current: current, Config: resolved})
//
// Close shuts the plugin down and never leaves its process behind; Done,
// Err and StderrTail report a plugin that died, with its last stderr
// lines. LaunchInProcess serves a Plugin inside the test process instead,
// still over gRPC.
//
// # Driving a plugin in the host's process
//
// LaunchDirect returns the same Client for a Plugin in the host's own
// process, called directly: no socket, no gRPC, and no protobuf on the
// calls made per message (ExecuteStep, a trigger's TriggerWorkflow). The
// rest of the Client and of the serving side is the code the wire runs,
// so a host gets the same answers, errors and recovered panics in both.
//
// The package knows nothing of any particular plugin: it depends only on
// go-plugin, gRPC, protobuf and the generated protocol package.
package wfplugin
