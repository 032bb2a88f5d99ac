package wfplugin

import (
	"sync"

	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	pluginv1 "github.com/wfeventbus/eventbus/gen/workflow/plugin/v1"
)

// StepRequest is one step execution as the host sent it. Nothing is
// converted up front: the *Struct accessors return the wire values, and the
// map accessors convert on every call (keep the result if you need it
// twice). The Value accessors read a single top-level key without
// converting the rest. A StepRequest must not be modified.
//
// From a Client of LaunchDirect the request holds the host's maps instead
// of Structs: the map and Value accessors return what they would return
// over the wire (copies, numbers as float64), and the Struct, typed and
// Proto accessors build their protobuf values when first asked.
type StepRequest struct {
	req   *pluginv1.ExecuteStepRequest
	local *localRequest
}

// NewStepRequest wraps an ExecuteStepRequest, for example to test a Step
// without a host.
func NewStepRequest(req *pluginv1.ExecuteStepRequest) *StepRequest {
	if req == nil {
		req = &pluginv1.ExecuteStepRequest{}
	}
	return &StepRequest{req: req}
}

// localRequest is an execution of a direct Client: the host's input, which
// the Client has checked to be JSON-shaped, and what the wire request would
// have held besides, built on demand.
type localRequest struct {
	handle string
	in     ExecuteInput
	info   stepInfo
	reg    *Registry

	typedOnce            sync.Once
	typedConfig, typedIn *anypb.Any
	protoOnce            sync.Once
	proto                *pluginv1.ExecuteStepRequest
}

// typed encodes the typed config and input as the Client sends them in
// PROTO_WITH_LEGACY_STRUCT mode: both, or neither when either fails.
func (l *localRequest) typed() (cfg, in *anypb.Any) {
	l.typedOnce.Do(func() {
		cfgMsg, inMsg := l.info.contract.GetConfigMessage(), l.info.contract.GetInputMessage()
		if modeOf(l.info.contract) != modeMixed || cfgMsg == "" || inMsg == "" {
			return
		}
		tc, errC := l.reg.EncodeConfig(cfgMsg, l.in.Config)
		ti, errI := l.reg.EncodeInput(inMsg, l.in.Current)
		if errC == nil && errI == nil {
			l.typedConfig, l.typedIn = tc, ti
		}
	})
	return l.typedConfig, l.typedIn
}

// request builds the request the wire would have carried.
func (l *localRequest) request() *pluginv1.ExecuteStepRequest {
	l.protoOnce.Do(func() {
		// The input was checked to be JSON-shaped: ToStruct cannot fail.
		req := &pluginv1.ExecuteStepRequest{HandleId: l.handle, Metadata: filteredStruct(l.in.Metadata)}
		req.TriggerData, _ = ToStruct(l.in.TriggerData)
		req.StepOutputs = make(map[string]*structpb.Struct, len(l.in.StepOutputs))
		for name, out := range l.in.StepOutputs {
			req.StepOutputs[name], _ = ToStruct(out)
		}
		req.Current, _ = ToStruct(l.in.Current)
		req.Config, _ = ToStruct(l.in.Config)
		req.TypedConfig, req.TypedInput = l.typed()
		l.proto = req
	})
	return l.proto
}

// Proto returns the request as received; from a direct Client, the request
// the wire would have carried.
func (r *StepRequest) Proto() *pluginv1.ExecuteStepRequest {
	if r.local != nil {
		return r.local.request()
	}
	return r.req
}

// Handle is the step's handle.
func (r *StepRequest) Handle() string {
	if r.local != nil {
		return r.local.handle
	}
	return r.req.GetHandleId()
}

// ConfigStruct is the step config with templates resolved for this
// execution; nil in STRICT_PROTO mode.
func (r *StepRequest) ConfigStruct() *structpb.Struct { return r.Proto().GetConfig() }

// CurrentStruct is the pipeline's merged state (trigger data plus earlier
// outputs); nil in STRICT_PROTO mode.
func (r *StepRequest) CurrentStruct() *structpb.Struct { return r.Proto().GetCurrent() }

// TriggerDataStruct is the original trigger payload.
func (r *StepRequest) TriggerDataStruct() *structpb.Struct { return r.Proto().GetTriggerData() }

// MetadataStruct is the pipeline metadata (pipeline, started_at, ...).
func (r *StepRequest) MetadataStruct() *structpb.Struct { return r.Proto().GetMetadata() }

// StepOutputStructs are the outputs of earlier steps by step name.
func (r *StepRequest) StepOutputStructs() map[string]*structpb.Struct {
	return r.Proto().GetStepOutputs()
}

// TypedConfig is the resolved config as the contract's config message, when
// the host sent one.
func (r *StepRequest) TypedConfig() *anypb.Any {
	if r.local != nil {
		cfg, _ := r.local.typed()
		return cfg
	}
	return r.req.GetTypedConfig()
}

// TypedInput is the current data as the contract's input message, when the
// host sent one.
func (r *StepRequest) TypedInput() *anypb.Any {
	if r.local != nil {
		_, in := r.local.typed()
		return in
	}
	return r.req.GetTypedInput()
}

// Config converts ConfigStruct to a map (empty when absent).
func (r *StepRequest) Config() map[string]any {
	if r.local != nil {
		return copyMap(r.local.in.Config)
	}
	return FromStruct(r.req.GetConfig())
}

// Current converts CurrentStruct to a map (empty when absent).
func (r *StepRequest) Current() map[string]any {
	if r.local != nil {
		return copyMap(r.local.in.Current)
	}
	return FromStruct(r.req.GetCurrent())
}

// TriggerData converts TriggerDataStruct to a map (empty when absent).
func (r *StepRequest) TriggerData() map[string]any {
	if r.local != nil {
		return copyMap(r.local.in.TriggerData)
	}
	return FromStruct(r.req.GetTriggerData())
}

// Metadata converts MetadataStruct to a map (empty when absent).
func (r *StepRequest) Metadata() map[string]any {
	if r.local != nil {
		return filteredCopy(r.local.in.Metadata)
	}
	return FromStruct(r.req.GetMetadata())
}

// StepOutput converts the output of the earlier step name; ok is false when
// that step has no output.
func (r *StepRequest) StepOutput(name string) (out map[string]any, ok bool) {
	if r.local != nil {
		m, ok := r.local.in.StepOutputs[name]
		if !ok {
			return nil, false
		}
		return copyMap(m), true
	}
	s, ok := r.req.GetStepOutputs()[name]
	if !ok {
		return nil, false
	}
	return FromStruct(s), true
}

// StepOutputs converts every earlier step's output.
func (r *StepRequest) StepOutputs() map[string]map[string]any {
	if r.local != nil {
		outs := make(map[string]map[string]any, len(r.local.in.StepOutputs))
		for name, m := range r.local.in.StepOutputs {
			outs[name] = copyMap(m)
		}
		return outs
	}
	outs := make(map[string]map[string]any, len(r.req.GetStepOutputs()))
	for name, s := range r.req.GetStepOutputs() {
		outs[name] = FromStruct(s)
	}
	return outs
}

// ConfigValue returns one top-level key of the config.
func (r *StepRequest) ConfigValue(key string) (any, bool) {
	if r.local != nil {
		return mapValue(r.local.in.Config, key)
	}
	return structValue(r.req.GetConfig(), key)
}

// CurrentValue returns one top-level key of the current data.
func (r *StepRequest) CurrentValue(key string) (any, bool) {
	if r.local != nil {
		return mapValue(r.local.in.Current, key)
	}
	return structValue(r.req.GetCurrent(), key)
}

// TriggerValue returns one top-level key of the trigger data.
func (r *StepRequest) TriggerValue(key string) (any, bool) {
	if r.local != nil {
		return mapValue(r.local.in.TriggerData, key)
	}
	return structValue(r.req.GetTriggerData(), key)
}

// MetadataValue returns one top-level key of the metadata.
func (r *StepRequest) MetadataValue(key string) (any, bool) {
	if r.local != nil {
		v, ok := r.local.in.Metadata[key]
		if !ok || shapeOf(v) == invalid {
			return nil, false
		}
		return copyValue(v), true
	}
	return structValue(r.req.GetMetadata(), key)
}

func structValue(s *structpb.Struct, key string) (any, bool) {
	v, ok := s.GetFields()[key]
	if !ok {
		return nil, false
	}
	return v.AsInterface(), true
}

// mapValue is structValue for a JSON-shaped map.
func mapValue(m map[string]any, key string) (any, bool) {
	v, ok := m[key]
	if !ok {
		return nil, false
	}
	return copyValue(v), true
}
