package wfplugin

import (
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	pluginv1 "github.com/wfeventbus/eventbus/gen/workflow/plugin/v1"
)

// StepRequest is one step execution as the host sent it. Nothing is
// converted up front: the *Struct accessors return the wire values, and the
// map accessors convert on every call (keep the result if you need it
// twice). The Value accessors read a single top-level key without
// converting the rest. A StepRequest must not be modified.
type StepRequest struct {
	req *pluginv1.ExecuteStepRequest
}

// NewStepRequest wraps an ExecuteStepRequest, for example to test a Step
// without a host.
func NewStepRequest(req *pluginv1.ExecuteStepRequest) *StepRequest {
	if req == nil {
		req = &pluginv1.ExecuteStepRequest{}
	}
	return &StepRequest{req: req}
}

// Proto returns the request as received.
func (r *StepRequest) Proto() *pluginv1.ExecuteStepRequest { return r.req }

// Handle is the step's handle.
func (r *StepRequest) Handle() string { return r.req.GetHandleId() }

// ConfigStruct is the step config with templates resolved for this
// execution; nil in STRICT_PROTO mode.
func (r *StepRequest) ConfigStruct() *structpb.Struct { return r.req.GetConfig() }

// CurrentStruct is the pipeline's merged state (trigger data plus earlier
// outputs); nil in STRICT_PROTO mode.
func (r *StepRequest) CurrentStruct() *structpb.Struct { return r.req.GetCurrent() }

// TriggerDataStruct is the original trigger payload.
func (r *StepRequest) TriggerDataStruct() *structpb.Struct { return r.req.GetTriggerData() }

// MetadataStruct is the pipeline metadata (pipeline, started_at, ...).
func (r *StepRequest) MetadataStruct() *structpb.Struct { return r.req.GetMetadata() }

// StepOutputStructs are the outputs of earlier steps by step name.
func (r *StepRequest) StepOutputStructs() map[string]*structpb.Struct { return r.req.GetStepOutputs() }

// TypedConfig is the resolved config as the contract's config message, when
// the host sent one.
func (r *StepRequest) TypedConfig() *anypb.Any { return r.req.GetTypedConfig() }

// TypedInput is the current data as the contract's input message, when the
// host sent one.
func (r *StepRequest) TypedInput() *anypb.Any { return r.req.GetTypedInput() }

// Config converts ConfigStruct to a map (empty when absent).
func (r *StepRequest) Config() map[string]any { return FromStruct(r.req.GetConfig()) }

// Current converts CurrentStruct to a map (empty when absent).
func (r *StepRequest) Current() map[string]any { return FromStruct(r.req.GetCurrent()) }

// TriggerData converts TriggerDataStruct to a map (empty when absent).
func (r *StepRequest) TriggerData() map[string]any { return FromStruct(r.req.GetTriggerData()) }

// Metadata converts MetadataStruct to a map (empty when absent).
func (r *StepRequest) Metadata() map[string]any { return FromStruct(r.req.GetMetadata()) }

// StepOutput converts the output of the earlier step name; ok is false when
// that step has no output.
func (r *StepRequest) StepOutput(name string) (out map[string]any, ok bool) {
	s, ok := r.req.GetStepOutputs()[name]
	if !ok {
		return nil, false
	}
	return FromStruct(s), true
}

// StepOutputs converts every earlier step's output.
func (r *StepRequest) StepOutputs() map[string]map[string]any {
	outs := make(map[string]map[string]any, len(r.req.GetStepOutputs()))
	for name, s := range r.req.GetStepOutputs() {
		outs[name] = FromStruct(s)
	}
	return outs
}

// ConfigValue returns one top-level key of the config.
func (r *StepRequest) ConfigValue(key string) (any, bool) { return structValue(r.req.GetConfig(), key) }

// CurrentValue returns one top-level key of the current data.
func (r *StepRequest) CurrentValue(key string) (any, bool) {
	return structValue(r.req.GetCurrent(), key)
}

// TriggerValue returns one top-level key of the trigger data.
func (r *StepRequest) TriggerValue(key string) (any, bool) {
	return structValue(r.req.GetTriggerData(), key)
}

// MetadataValue returns one top-level key of the metadata.
func (r *StepRequest) MetadataValue(key string) (any, bool) {
	return structValue(r.req.GetMetadata(), key)
}

func structValue(s *structpb.Struct, key string) (any, bool) {
	v, ok := s.GetFields()[key]
	if !ok {
		return nil, false
	}
	return v.AsInterface(), true
}
