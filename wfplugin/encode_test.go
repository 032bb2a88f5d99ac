package wfplugin_test

import (
	"errors"
	"math"
	"reflect"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	eventbusv1 "github.com/wfeventbus/eventbus/gen/eventbus/v1"
	pluginv1 "github.com/wfeventbus/eventbus/gen/workflow/plugin/v1"
	"github.com/wfeventbus/eventbus/wfplugin"
)

const scalarsMsg = "wfplugintest.v1.Scalars"

// scalarsRegistry holds a message with a field of every scalar kind, built
// by hand so the set resolves only through the plugin's own descriptors.
func scalarsRegistry(t *testing.T) *wfplugin.Registry {
	t.Helper()
	type T = descriptorpb.FieldDescriptorProto_Type
	field := func(name string, num int32, typ T, repeated bool) *descriptorpb.FieldDescriptorProto {
		label := descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL
		if repeated {
			label = descriptorpb.FieldDescriptorProto_LABEL_REPEATED
		}
		return &descriptorpb.FieldDescriptorProto{Name: proto.String(name), Number: proto.Int32(num), Type: typ.Enum(), Label: label.Enum()}
	}
	color := field("color", 12, descriptorpb.FieldDescriptorProto_TYPE_ENUM, false)
	color.TypeName = proto.String(".wfplugintest.v1.Color")
	file := &descriptorpb.FileDescriptorProto{
		Name:    proto.String("wfplugintest/v1/scalars.proto"),
		Package: proto.String("wfplugintest.v1"),
		Syntax:  proto.String("proto3"),
		EnumType: []*descriptorpb.EnumDescriptorProto{{
			Name: proto.String("Color"),
			Value: []*descriptorpb.EnumValueDescriptorProto{
				{Name: proto.String("COLOR_UNSPECIFIED"), Number: proto.Int32(0)},
				{Name: proto.String("COLOR_RED"), Number: proto.Int32(1)},
			},
		}},
		MessageType: []*descriptorpb.DescriptorProto{{
			Name: proto.String("Scalars"),
			Field: []*descriptorpb.FieldDescriptorProto{
				field("flag", 1, descriptorpb.FieldDescriptorProto_TYPE_BOOL, false),
				field("i32", 2, descriptorpb.FieldDescriptorProto_TYPE_INT32, false),
				field("i64", 3, descriptorpb.FieldDescriptorProto_TYPE_INT64, false),
				field("s32", 4, descriptorpb.FieldDescriptorProto_TYPE_SINT32, false),
				field("sf64", 5, descriptorpb.FieldDescriptorProto_TYPE_SFIXED64, false),
				field("u32", 6, descriptorpb.FieldDescriptorProto_TYPE_UINT32, false),
				field("u64", 7, descriptorpb.FieldDescriptorProto_TYPE_UINT64, false),
				field("fx32", 8, descriptorpb.FieldDescriptorProto_TYPE_FIXED32, false),
				field("f", 9, descriptorpb.FieldDescriptorProto_TYPE_FLOAT, false),
				field("d", 10, descriptorpb.FieldDescriptorProto_TYPE_DOUBLE, false),
				field("s", 11, descriptorpb.FieldDescriptorProto_TYPE_STRING, false),
				color,
				field("raw", 13, descriptorpb.FieldDescriptorProto_TYPE_BYTES, false),
				field("nums", 14, descriptorpb.FieldDescriptorProto_TYPE_INT32, true),
				field("max_items", 15, descriptorpb.FieldDescriptorProto_TYPE_INT32, false),
			},
		}},
	}
	reg, err := wfplugin.NewRegistry(&pluginv1.ContractRegistry{
		Contracts: []*pluginv1.ContractDescriptor{{
			Kind:          pluginv1.ContractKind_CONTRACT_KIND_STEP,
			StepType:      "step.scalars",
			ConfigMessage: scalarsMsg,
			InputMessage:  scalarsMsg,
			Mode:          pluginv1.ContractMode_CONTRACT_MODE_STRICT_PROTO,
		}},
		FileDescriptorSet: &descriptorpb.FileDescriptorSet{File: []*descriptorpb.FileDescriptorProto{file}},
	})
	if err != nil {
		t.Fatalf("NewRegistry: %v", err)
	}
	return reg
}

// unpack decodes an Any built from the scalars registry.
func unpack(t *testing.T, reg *wfplugin.Registry, a *anypb.Any) protoreflect.Message {
	t.Helper()
	mt, err := reg.FindMessage(scalarsMsg)
	if err != nil {
		t.Fatal(err)
	}
	m := mt.New()
	if err := proto.Unmarshal(a.GetValue(), m.Interface()); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestEncodeConfigCoercesTopLevelStrings(t *testing.T) {
	t.Parallel()
	reg := scalarsRegistry(t)
	tests := []struct {
		name     string
		in       map[string]any
		field    string
		want     any  // the field's value; nil with unset
		unset    bool // the field keeps its default
		errField string
	}{
		{name: "bool yes", in: map[string]any{"flag": "yes"}, field: "flag", want: true},
		{name: "bool ON trimmed", in: map[string]any{"flag": " ON "}, field: "flag", want: true},
		{name: "bool 1", in: map[string]any{"flag": "1"}, field: "flag", want: true},
		{name: "bool false", in: map[string]any{"flag": "False"}, field: "flag", unset: true},
		{name: "bool empty dropped", in: map[string]any{"flag": ""}, field: "flag", unset: true},
		{name: "bool unparsable", in: map[string]any{"flag": "maybe"}, errField: "flag"},
		{name: "bool native", in: map[string]any{"flag": true}, field: "flag", want: true},
		{name: "int32", in: map[string]any{"i32": "-42"}, field: "i32", want: int32(-42)},
		{name: "int32 from float", in: map[string]any{"i32": 3.0}, field: "i32", want: int32(3)},
		{name: "int32 out of range", in: map[string]any{"i32": "4000000000"}, errField: "i32"},
		{name: "int32 template", in: map[string]any{"i32": "{{ .n }}"}, errField: "i32"},
		{name: "int32 empty dropped", in: map[string]any{"i32": ""}, field: "i32", unset: true},
		{name: "int64 beyond float precision", in: map[string]any{"i64": "9007199254740993"}, field: "i64", want: int64(9007199254740993)},
		{name: "sint32", in: map[string]any{"s32": "7"}, field: "s32", want: int32(7)},
		{name: "sfixed64", in: map[string]any{"sf64": "-8"}, field: "sf64", want: int64(-8)},
		{name: "uint32", in: map[string]any{"u32": "42"}, field: "u32", want: uint32(42)},
		{name: "uint32 negative", in: map[string]any{"u32": "-1"}, errField: "u32"},
		{name: "uint64 max", in: map[string]any{"u64": "18446744073709551615"}, field: "u64", want: uint64(math.MaxUint64)},
		{name: "fixed32", in: map[string]any{"fx32": "9"}, field: "fx32", want: uint32(9)},
		{name: "float", in: map[string]any{"f": "1.5"}, field: "f", want: float32(1.5)},
		{name: "double", in: map[string]any{"d": "2.25"}, field: "d", want: 2.25},
		{name: "double empty dropped", in: map[string]any{"d": " "}, field: "d", unset: true},
		{name: "string unchanged", in: map[string]any{"s": "  padded "}, field: "s", want: "  padded "},
		{name: "enum name", in: map[string]any{"color": "COLOR_RED"}, field: "color", want: protoreflect.EnumNumber(1)},
		{name: "bytes base64", in: map[string]any{"raw": "aGk="}, field: "raw", want: []byte("hi")},
		{name: "json name", in: map[string]any{"maxItems": "5"}, field: "max_items", want: int32(5)},
		{name: "underscore keys dropped", in: map[string]any{"_config_dir": "/etc", "i32": 1}, field: "i32", want: int32(1)},
		{name: "unknown field", in: map[string]any{"nope": 1}, errField: "nope"},
		{name: "nested strings are not coerced", in: map[string]any{"nums": []any{1, "x"}}, errField: "nums"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a, err := reg.EncodeConfig(scalarsMsg, tt.in)
			if tt.errField != "" {
				var enc *wfplugin.EncodeError
				if !errors.As(err, &enc) || !errors.Is(err, wfplugin.ErrEncode) || enc.Field != tt.errField || enc.Message != scalarsMsg {
					t.Fatalf("EncodeConfig(%v) = %v, want an *EncodeError for field %q", tt.in, err, tt.errField)
				}
				return
			}
			if err != nil {
				t.Fatalf("EncodeConfig(%v): %v", tt.in, err)
			}
			if a.GetTypeUrl() != "type.googleapis.com/"+scalarsMsg {
				t.Fatalf("type URL %q", a.GetTypeUrl())
			}
			m := unpack(t, reg, a)
			fd := m.Descriptor().Fields().ByName(protoreflect.Name(tt.field))
			if tt.unset {
				if m.Has(fd) {
					t.Fatalf("%s = %v, want unset", tt.field, m.Get(fd))
				}
				return
			}
			if got := m.Get(fd).Interface(); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("%s = %#v, want %#v", tt.field, got, tt.want)
			}
		})
	}
}

func TestCoerce(t *testing.T) {
	t.Parallel()
	tests := []struct {
		kind protoreflect.Kind
		in   string
		want any
		keep bool
	}{
		{protoreflect.BoolKind, "off", false, true},
		{protoreflect.BoolKind, "NO", false, true},
		{protoreflect.BoolKind, "", nil, false},
		{protoreflect.BoolKind, "nah", "nah", true},
		{protoreflect.Int64Kind, " 12 ", int64(12), true},
		{protoreflect.Sfixed32Kind, "x", "x", true},
		{protoreflect.Uint64Kind, "7", uint64(7), true},
		{protoreflect.Fixed64Kind, "", nil, false},
		{protoreflect.DoubleKind, "1e3", 1000.0, true},
		{protoreflect.DoubleKind, "NaN", "NaN", true},
		{protoreflect.FloatKind, "1e39", "1e39", true},
		{protoreflect.StringKind, "", "", true},
		{protoreflect.EnumKind, "1", "1", true},
		{protoreflect.BytesKind, " ", " ", true},
	}
	for _, tt := range tests {
		got, keep := wfplugin.Coerce(tt.kind, tt.in)
		if keep != tt.keep || (keep && !reflect.DeepEqual(got, tt.want)) {
			t.Errorf("Coerce(%s, %q) = %#v, %v; want %#v, %v", tt.kind, tt.in, got, keep, tt.want, tt.keep)
		}
	}
}

func TestEncodeInputKeepsOnlyTheMessageFields(t *testing.T) {
	t.Parallel()
	reg := scalarsRegistry(t)
	current := map[string]any{"i32": "5", "maxItems": 2, "subject": "orders.1", "body": map[string]any{"x": 1}, "_private": 1}
	a, err := reg.EncodeInput(scalarsMsg, current)
	if err != nil {
		t.Fatalf("EncodeInput: %v", err)
	}
	m := unpack(t, reg, a)
	fields := m.Descriptor().Fields()
	if got := m.Get(fields.ByName("i32")).Int(); got != 5 {
		t.Errorf("i32 = %d, want 5", got)
	}
	if got := m.Get(fields.ByName("max_items")).Int(); got != 2 {
		t.Errorf("max_items = %d, want 2", got)
	}
	if _, err := reg.EncodeConfig(scalarsMsg, current); !errors.Is(err, wfplugin.ErrEncode) {
		t.Errorf("EncodeConfig of the same map: %v, want ErrEncode (unknown fields)", err)
	}
}

func TestEncodeNeedsAMessageName(t *testing.T) {
	t.Parallel()
	reg := scalarsRegistry(t)
	for _, name := range []string{"", "wfplugintest.v1.Missing", ".wfplugintest.v1.Scalars"} {
		if _, err := reg.EncodeConfig(name, nil); !errors.Is(err, wfplugin.ErrEncode) {
			t.Errorf("EncodeConfig(%q): %v, want ErrEncode", name, err)
		}
	}
}

func TestDecodeOutputLikeTheEngine(t *testing.T) {
	t.Parallel()
	reg, err := wfplugin.NewRegistry(&pluginv1.ContractRegistry{
		FileDescriptorSet: wfplugin.FileDescriptorSet(eventbusv1.File_eventbus_v1_resources_proto),
	})
	if err != nil {
		t.Fatal(err)
	}
	a, err := anypb.New(&eventbusv1.StreamConfig{
		Name:            "ORDERS",
		NumReplicas:     3,
		MaxMsgs:         5,
		RetentionPolicy: eventbusv1.RetentionPolicy_RETENTION_POLICY_WORKQUEUE,
		MaxAge:          durationpb.New(90 * time.Second),
		Subjects:        []string{"orders.>"},
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := reg.DecodeOutput("eventbus.v1.StreamConfig", a)
	if err != nil {
		t.Fatalf("DecodeOutput: %v", err)
	}
	want := map[string]any{
		"name":             "ORDERS",
		"num_replicas":     3,   // int32 becomes a Go int
		"max_msgs":         "5", // int64 stays a string
		"retention_policy": "RETENTION_POLICY_WORKQUEUE",
		"max_age":          "90s",
		"subjects":         []any{"orders.>"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("DecodeOutput:\n got %#v\nwant %#v", got, want)
	}
	if _, err := reg.DecodeOutput("eventbus.v1.ConsumerConfig", a); !errors.Is(err, wfplugin.ErrDecode) {
		t.Fatalf("DecodeOutput with another message: %v, want ErrDecode", err)
	}
	if _, err := reg.DecodeOutput("eventbus.v1.StreamConfig", nil); !errors.Is(err, wfplugin.ErrDecode) {
		t.Fatalf("DecodeOutput(nil): %v, want ErrDecode", err)
	}
}

func TestNewRegistry(t *testing.T) {
	t.Parallel()
	full := wfplugin.FileDescriptorSet(eventbusv1.File_eventbus_v1_plugin_proto)
	last := full.GetFile()[len(full.GetFile())-1]
	step := func(mode pluginv1.ContractMode, cfg, in string) *pluginv1.ContractDescriptor {
		return &pluginv1.ContractDescriptor{
			Kind: pluginv1.ContractKind_CONTRACT_KIND_STEP, StepType: "step.x",
			ConfigMessage: cfg, InputMessage: in, Mode: mode,
		}
	}
	mixed := pluginv1.ContractMode_CONTRACT_MODE_PROTO_WITH_LEGACY_STRUCT
	tests := []struct {
		name string
		reg  *pluginv1.ContractRegistry
		ok   bool
	}{
		{"nil", nil, true},
		{"complete set", &pluginv1.ContractRegistry{
			Contracts:         []*pluginv1.ContractDescriptor{step(mixed, "eventbus.v1.SettleStepConfig", "google.protobuf.Empty")},
			FileDescriptorSet: full,
		}, true},
		{"missing imports", &pluginv1.ContractRegistry{
			FileDescriptorSet: &descriptorpb.FileDescriptorSet{File: []*descriptorpb.FileDescriptorProto{last}},
		}, false},
		{"duplicate file", &pluginv1.ContractRegistry{
			FileDescriptorSet: &descriptorpb.FileDescriptorSet{File: append(full.GetFile(), last)},
		}, false},
		{"typed contract names an unknown message", &pluginv1.ContractRegistry{
			Contracts:         []*pluginv1.ContractDescriptor{step(mixed, "eventbus.v1.Nope", "")},
			FileDescriptorSet: full,
		}, false},
		{"legacy contract names are not resolved", &pluginv1.ContractRegistry{
			Contracts: []*pluginv1.ContractDescriptor{step(pluginv1.ContractMode_CONTRACT_MODE_LEGACY_STRUCT, "eventbus.v1.Nope", "")},
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := wfplugin.NewRegistry(tt.reg)
			if tt.ok && err != nil {
				t.Fatalf("NewRegistry: %v", err)
			}
			if !tt.ok && !errors.Is(err, wfplugin.ErrInvalidContracts) {
				t.Fatalf("NewRegistry: %v, want ErrInvalidContracts", err)
			}
		})
	}
}

func TestFileDescriptorSetPutsImportsFirst(t *testing.T) {
	t.Parallel()
	set := wfplugin.FileDescriptorSet(eventbusv1.File_eventbus_v1_plugin_proto, eventbusv1.File_eventbus_v1_resources_proto)
	seen := map[string]bool{}
	for _, f := range set.GetFile() {
		if seen[f.GetName()] {
			t.Fatalf("%s appears twice", f.GetName())
		}
		for _, dep := range f.GetDependency() {
			if !seen[dep] {
				t.Fatalf("%s comes before its import %s", f.GetName(), dep)
			}
		}
		seen[f.GetName()] = true
	}
	for _, want := range []string{"google/protobuf/duration.proto", "google/protobuf/struct.proto", "eventbus/v1/resources.proto", "eventbus/v1/plugin.proto"} {
		if !seen[want] {
			t.Errorf("set lacks %s", want)
		}
	}
}
