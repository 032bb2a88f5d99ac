package main

import (
	"context"
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
			"plugin's typed contracts), references to undeclared modules, duplicate names.",
		Args: withUsageErrors(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			cat, closeCat, err := catalog(cmd.Context(), plugin, g.logger)
			if err != nil {
				return err
			}
			defer closeCat()
			cfg, err := runner.CheckFile(args[0], d.lookupEnv, cat)
			if err != nil {
				return err
			}
			for _, w := range cfg.Warnings {
				fmt.Fprintf(d.stdout, "warning: %v\n", w)
			}
			fmt.Fprintf(d.stdout, "%s: ok\n", args[0])
			return nil
		},
	}
	cmd.Flags().StringVar(&plugin, "plugin", "", "plugin binary whose types and contracts to check against (default: the built-in eventbus plugin)")
	return cmd
}

// catalog returns the types and contracts to validate against: the built-in
// plugin's, or those of the plugin binary at path.
func catalog(ctx context.Context, path string, logger *slog.Logger) (runner.Catalog, func(), error) {
	if path == "" {
		reg, err := wfplugin.NewRegistry(pluginserver.Contracts())
		if err != nil {
			return runner.Catalog{}, nil, err
		}
		return runner.Catalog{
			ModuleTypes:  eventbus.ModuleTypes(),
			StepTypes:    eventbus.StepTypes(),
			TriggerTypes: eventbus.TriggerTypes(),
			Contracts:    reg,
			EnvDefaults:  true,
		}, func() {}, nil
	}
	c, err := launchPlugin(ctx, path, logger)
	if err != nil {
		return runner.Catalog{}, nil, err
	}
	return runner.FromClient(c).Catalog(), func() { closePlugin(c, logger) }, nil
}
