package wfplugin_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	eventbusv1 "github.com/wfeventbus/eventbus/gen/eventbus/v1"
	"github.com/wfeventbus/eventbus/wfplugin"
)

// A plugin binary's main serves its Plugin; the process must be started by
// a host.
func ExampleServe() {
	p := newTestPlugin(modeServe, os.Stderr) // any wfplugin.Plugin
	if err := wfplugin.Serve(p); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// A host launches the binary, fires pipelines for its triggers and runs its
// steps.
func ExampleLaunch() {
	ctx := context.Background()
	c, err := wfplugin.Launch(ctx, "data/plugins/eventbus/eventbus",
		wfplugin.WithLogger(slog.Default()),
		wfplugin.WithWorkflowHandler(func(ctx context.Context, workflowType, _ string, data map[string]any) error {
			fmt.Println("run", workflowType, "with", data)
			return nil
		}))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close(ctx)

	trigger, err := c.CreateTrigger(ctx, "trigger.eventbus.subscribe", "pipeline:orders", map[string]any{"consumer": "orders"})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := c.StartTrigger(ctx, trigger); err != nil {
		fmt.Println(err)
		return
	}
	step, err := c.CreateStep(ctx, "step.eventbus.ack", "ack", map[string]any{"ack_token": "{{ .ack_token }}"})
	if err != nil {
		fmt.Println(err)
		return
	}
	res, err := c.ExecuteStep(ctx, step, wfplugin.ExecuteInput{
		Current: map[string]any{"ack_token": "…"},
		Config:  map[string]any{"ack_token": "…"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(res.Output)
}

// Config maps are checked against a contract message with the engine's
// coercion rules; errors name the field.
func ExampleRegistry_EncodeConfig() {
	reg, err := wfplugin.NewRegistry(testContracts(wfplugin.FileDescriptorSet(eventbusv1.File_eventbus_v1_plugin_proto)))
	if err != nil {
		fmt.Println(err)
		return
	}
	_, err = reg.EncodeConfig("eventbus.v1.StreamConfig", map[string]any{"name": "ORDERS", "num_replicas": "three"})
	fmt.Println(err)
	// Output: wfplugin: encode eventbus.v1.StreamConfig: field "num_replicas": invalid value for int32 field numReplicas: "three"
}
