package wfplugin

import (
	"context"

	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	pluginv1 "github.com/wfeventbus/eventbus/gen/workflow/plugin/v1"
)

// Plugin is what a plugin binary implements and hands to Serve. The
// manifest, the type lists and the contracts are read once, when Serve
// starts, and answered unchanged for the life of the process.
type Plugin interface {
	// Manifest describes the plugin; see ValidateManifest for the rules.
	Manifest() Manifest
	// ModuleTypes, StepTypes and TriggerTypes list the types the plugin
	// offers. They are answered sorted.
	ModuleTypes() []string
	StepTypes() []string
	TriggerTypes() []string
	// Contracts declares the typed contracts with a FileDescriptorSet that
	// resolves every named message on its own (see FileDescriptorSet). nil
	// means every payload is a Struct.
	Contracts() *pluginv1.ContractRegistry
	// CreateModule instantiates a module of one of ModuleTypes.
	CreateModule(ctx context.Context, spec ModuleSpec) (Module, error)
	// CreateStep instantiates a step of one of StepTypes, with its
	// untemplated config.
	CreateStep(ctx context.Context, spec StepSpec) (Step, error)
	// CreateTrigger instantiates a trigger of one of TriggerTypes for one
	// workflow; cb fires that workflow.
	CreateTrigger(ctx context.Context, spec TriggerSpec, cb Callback) (Trigger, error)
}

// Module is a long-lived component. The host calls Init once, then Start,
// and Stop at shutdown.
//
// Start's ctx stays alive until the module is stopped (it is cancelled
// after Stop returns) or the plugin shuts down, so goroutines started there
// may use it. Init and Stop receive the context of their RPC.
type Module interface {
	Init(ctx context.Context) error
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
}

// Trigger fires its workflow through the Callback it was created with. It
// is never initialised. Start's ctx stays alive until the trigger is
// stopped (it is cancelled after Stop returns); Stop receives the context of
// its RPC and should return once the trigger has stopped firing.
type Trigger interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
}

// Step runs once per pipeline execution. Execute may be called
// concurrently. A returned error fails the step on the host (it travels in
// ExecuteStepResponse.error); it does not break the connection.
type Step interface {
	Execute(ctx context.Context, req *StepRequest) (*StepResult, error)
}

// StepResult is what a step hands back to the pipeline.
type StepResult struct {
	// Output is merged into the pipeline's current data and stored under
	// the step's name. Values must be JSON-shaped (see ToStruct).
	Output map[string]any
	// StopPipeline ends the pipeline successfully after this step.
	StopPipeline bool
	// TypedOutput is read by the host instead of Output when the step's
	// contract names an output_message and its mode is typed; it is then
	// required in STRICT_PROTO mode.
	TypedOutput *anypb.Any
}

// Callback fires the workflow a trigger was created for.
type Callback interface {
	// WorkflowType is the workflow the callback fires, for example
	// "pipeline:orders" (the CreateTrigger name).
	WorkflowType() string
	// TriggerWorkflow runs the workflow with data as its trigger data and
	// returns when the host has finished it. data must be JSON-shaped (see
	// ToStruct); numbers arrive as float64. A workflow failure wraps
	// ErrWorkflowFailed; ErrNoCallback means the host offers no callbacks.
	TriggerWorkflow(ctx context.Context, data map[string]any) error
	// TriggerWorkflowStruct is TriggerWorkflow for data already held in a
	// Struct, which saves a conversion on hot paths.
	TriggerWorkflowStruct(ctx context.Context, data *structpb.Struct) error
	// Log writes a record into the host's log. fields must be JSON-shaped.
	Log(ctx context.Context, level, message string, fields map[string]any) error
}

// ModuleSpec is the request to create a module.
type ModuleSpec struct {
	// Type is one of the plugin's module types.
	Type string
	// Name is the module's name in the app config.
	Name string
	// Config is the config map as a Struct. It may hold _config_dir and
	// other keys starting with "_", which are the engine's. nil in
	// STRICT_PROTO mode when the contract names a config message.
	Config *structpb.Struct
	// TypedConfig is the config encoded as the contract's config message,
	// when the contract is typed and the config encodes.
	TypedConfig *anypb.Any
}

// ConfigMap returns Config as a map (empty when Config is nil).
func (s ModuleSpec) ConfigMap() map[string]any { return FromStruct(s.Config) }

// StepSpec is the request to create a step. Config holds the untemplated
// config: template strings are still literal.
type StepSpec struct {
	// Type is one of the plugin's step types.
	Type string
	// Name is the step's name in its pipeline.
	Name string
	// Config is the raw config as a Struct; nil in STRICT_PROTO mode when
	// the contract names a config message.
	Config *structpb.Struct
	// TypedConfig is the raw config encoded as the contract's config
	// message, when the contract is typed and the config encodes.
	TypedConfig *anypb.Any
}

// ConfigMap returns Config as a map (empty when Config is nil).
func (s StepSpec) ConfigMap() map[string]any { return FromStruct(s.Config) }

// TriggerSpec is the request to create a trigger. Trigger config is always
// a Struct: the engine ignores trigger contracts.
type TriggerSpec struct {
	// Type is one of the plugin's trigger types.
	Type string
	// WorkflowType is the workflow to fire (the CreateTrigger name), for
	// example "pipeline:orders".
	WorkflowType string
	// Config is the trigger config; the engine adds the key workflowType.
	Config *structpb.Struct
}

// ConfigMap returns Config as a map (empty when Config is nil).
func (s TriggerSpec) ConfigMap() map[string]any { return FromStruct(s.Config) }

// SchemaProvider is implemented by plugins that publish editor schemas for
// their module types (GetModuleSchemas). Others answer an empty list.
type SchemaProvider interface {
	ModuleSchemas() []*pluginv1.ModuleSchema
}

// ConfigFragmentProvider is implemented by plugins that contribute a YAML
// fragment to the app config (GetConfigFragment). Others answer none.
type ConfigFragmentProvider interface {
	ConfigFragment() (yaml []byte, pluginDir string)
}
