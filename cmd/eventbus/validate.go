package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/wfeventbus/eventbus/eventbus"
	"github.com/wfeventbus/eventbus/pluginserver"
	"github.com/wfeventbus/eventbus/runner"
	"github.com/wfeventbus/eventbus/wfplugin"
)

func newValidateCmd(d deps, g *globals) *cobra.Command {
	var plugin string
	cmd := &cobra.Command{
		Use:   "validate APP.yaml",
		Short: "Check an app config without running it",
		Long: "validate reports every problem of an app config at once, each with its file,\n" +
			"line and field: unknown types, missing or mistyped fields (checked against the\n" +
			"plugin's typed contracts), references to undeclared modules, duplicate names,\n" +
			"and everything the plugin itself refuses when run creates the app: values out\n" +
			"of range, consumers of streams no module declares, subjects no stream stores.\n" +
			"It creates the app's modules, steps and triggers in the plugin as run does, in\n" +
			"the same order, but starts none of them: no broker is started or contacted.\n" +
			"Warnings (exit 0) name what is likely wrong but may work, such as a stream an\n" +
			"external broker may hold without the app declaring it.",
		Args: withUsageErrors(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return validateApp(cmd.Context(), d, g.logger, args[0], plugin)
		},
	}
	cmd.Flags().StringVar(&plugin, "plugin", "", "plugin binary to check against, run out of process (default: the built-in eventbus plugin, in this process)")
	return cmd
}

// validateApp prepares file in a plugin that is then closed, and prints
// the warnings and "ok", or returns every problem.
func validateApp(ctx context.Context, d deps, logger *slog.Logger, file, plugin string) error {
	var (
		c    *wfplugin.Client
		err  error
		opts []runner.Option
	)
	if plugin == "" {
		warnings := &runner.PluginWarnings{}
		getenv := func(k string) string { v, _ := d.lookupEnv(k); return v }
		c, err = pluginserver.LaunchDirect(ctx, pluginserver.DirectConfig{Version: d.version, Logger: pluginLogger(logger), Getenv: getenv, Warn: warnTo(warnings)}, wfplugin.WithLogger(logger), wfplugin.WithName(pluginName))
		if err != nil {
			return fmt.Errorf("start the plugin: %w", err)
		}
		opts = append(opts, runner.WithPluginWarnings(warnings.Take))
	} else if c, err = launchPlugin(ctx, plugin, logger); err != nil {
		return err
	}
	defer closePlugin(c, logger)
	r, err := runner.PrepareFile(ctx, file, d.lookupEnv, livePlugin{runner.FromClient(c), c}, nil, opts...)
	var ce *runner.ConfigError
	switch {
	case errors.As(err, &ce):
		printWarnings(d, ce.Warnings)
		return err
	case err != nil:
		return pluginFailure(c, err)
	}
	printWarnings(d, r.Warnings())
	fmt.Fprintf(d.stdout, "%s: ok\n", file)
	return nil
}

func printWarnings(d deps, warnings []*runner.Problem) {
	for _, w := range warnings {
		fmt.Fprintf(d.stdout, "warning: %v\n", w)
	}
}

// warnTo hands the warnings of the plugin in this process to ws, from
// which the runner places each at the field it is about.
func warnTo(ws *runner.PluginWarnings) func(eventbus.Warning) {
	return func(w eventbus.Warning) { ws.Add(w.Field, w.Message) }
}
