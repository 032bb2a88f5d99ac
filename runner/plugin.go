package runner

import (
	"context"

	"github.com/wfeventbus/eventbus/wfplugin"
)

// Plugin is what the runner needs from a workflow plugin: the calls of the
// engine's lifecycle, with JSON-shaped maps in place of protobuf. Handles
// are the plugin's opaque instance ids. An adapter over a plugin process
// implements it; so can an in-memory plugin in tests. Every method must be
// safe for concurrent use: ExecuteStep is called by every pipeline run at
// once.
type Plugin interface {
	// Catalog returns the plugin's type lists and typed contracts. It is
	// called once, by New.
	Catalog() Catalog

	// CreateModule creates a module from its config (environment expanded,
	// _config_dir added when known).
	CreateModule(ctx context.Context, typ, name string, config map[string]any) (handle string, err error)
	// InitModule initialises a created module.
	InitModule(ctx context.Context, handle string) error
	// StartModule starts an initialised module.
	StartModule(ctx context.Context, handle string) error
	// StopModule stops a started module.
	StopModule(ctx context.Context, handle string) error

	// CreateStep creates a step from its raw config: template strings are
	// still literal.
	CreateStep(ctx context.Context, typ, name string, config map[string]any) (handle string, err error)
	// ExecuteStep runs a step once.
	ExecuteStep(ctx context.Context, handle string, in StepInput) (StepResult, error)

	// CreateTrigger creates a trigger that fires workflowType (for a
	// pipeline, "pipeline:<name>"); config holds the user's keys plus
	// workflowType.
	CreateTrigger(ctx context.Context, typ, workflowType string, config map[string]any) (handle string, err error)
	// StartTrigger starts a created trigger; from then on it may call
	// Runner.TriggerWorkflow.
	StartTrigger(ctx context.Context, handle string) error
	// StopTrigger stops a started trigger.
	StopTrigger(ctx context.Context, handle string) error
}

// StepInput is what a plugin step receives each time it runs.
type StepInput struct {
	// TriggerData is the payload the trigger fired with.
	TriggerData map[string]any
	// StepOutputs holds the outputs of the steps run so far, by name.
	StepOutputs map[string]map[string]any
	// Current is the trigger data with every output so far merged in.
	Current map[string]any
	// Metadata holds pipeline and started_at.
	Metadata map[string]any
	// Config is the step's config with templates rendered for this run.
	Config map[string]any
}

// StepResult is what a step returns.
type StepResult struct {
	// Output is merged into the run's current data and kept under
	// steps.<name>.
	Output map[string]any
	// StopPipeline ends the run successfully after this step.
	StopPipeline bool
}

// Catalog is what a plugin declares: its type names and typed contracts.
type Catalog struct {
	ModuleTypes  []string
	StepTypes    []string
	TriggerTypes []string
	// Contracts holds the plugin's typed contracts; nil means none, and
	// configs are then not checked field by field.
	Contracts *wfplugin.Registry
	// ModuleRefKeys are the config keys whose string value names a module
	// of the app; Validate reports values that name none. They are looked
	// up at the top level of module, step and trigger configs. Nil means
	// DefaultModuleRefKeys; an empty slice checks nothing.
	ModuleRefKeys []string
	// EnvDefaults says the plugin resolves ${NAME:-default} (and the
	// other references the engine leaves) in its module configs, as the
	// eventbus plugin does (eventbus.ExpandEnvDefaults). Validate then
	// checks module configs as the plugin will read them, and does not
	// warn about such references.
	EnvDefaults bool
}

// EventbusPluginName is the manifest name of the eventbus plugin, whose
// catalog FromClient marks with EnvDefaults.
const EventbusPluginName = "workflow-plugin-eventbus"

// DefaultModuleRefKeys returns the config keys by which eventbus configs
// name a module: broker_ref, and its alias bus in trigger configs.
func DefaultModuleRefKeys() []string { return []string{"broker_ref", "bus"} }
