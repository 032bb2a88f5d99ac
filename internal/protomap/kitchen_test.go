package protomap_test

import (
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"

	// The well-known types the kitchen descriptor imports.
	_ "google.golang.org/protobuf/types/known/durationpb"
	_ "google.golang.org/protobuf/types/known/structpb"
	_ "google.golang.org/protobuf/types/known/timestamppb"
	_ "google.golang.org/protobuf/types/known/wrapperspb"
)

// kitchenDescriptor builds, at run time, a message with a field of every
// kind the generated eventbus messages lack (floats, bytes, signed and
// fixed integers, maps with integer and bool keys, oneofs, wrappers,
// Struct, ListValue, a custom json_name), so Decode is tested on a dynamic
// message as well as on generated ones:
//
//	enum Color { COLOR_UNSPECIFIED = 0; COLOR_RED = 1; COLOR_DARK_BLUE = 2; }
//	message Kitchen {
//	  bool b = 1; int32 i32 = 2; sint32 si32 = 3; sfixed32 sf32 = 4;
//	  int64 i64 = 5; sint64 si64 = 6; sfixed64 sf64 = 7; uint32 u32 = 8;
//	  fixed32 f32 = 9; uint64 u64 = 10; fixed64 f64 = 11; float fl = 12;
//	  double db = 13; string s = 14; bytes by = 15; Color color = 16;
//	  Kitchen child = 17; repeated Kitchen children = 18;
//	  repeated int32 nums = 19; repeated string names = 20;
//	  repeated Color colors = 21; map<string, string> labels = 22;
//	  map<int32, int64> counts = 23; map<bool, string> flags = 24;
//	  map<string, Kitchen> kids = 25; google.protobuf.Duration dur = 26;
//	  repeated google.protobuf.Duration durs = 27;
//	  google.protobuf.Timestamp ts = 28; google.protobuf.Value val = 29;
//	  repeated google.protobuf.Value vals = 30; google.protobuf.Struct st = 31;
//	  google.protobuf.ListValue lv = 32; google.protobuf.Int32Value wi32 = 33;
//	  google.protobuf.StringValue ws = 34;
//	  oneof choice { string one_a = 35; int32 one_b = 36; }
//	  optional int32 opt = 37; string custom = 38 [json_name = "renamed"];
//	  map<string, google.protobuf.Duration> timeouts = 39;
//	  map<string, google.protobuf.Value> meta = 40;
//	  repeated bytes blobs = 41; uint32 u32b = 42;
//	}
func kitchenDescriptor(t testing.TB) protoreflect.MessageDescriptor {
	t.Helper()
	type fieldSpec struct {
		name     string
		typ      descriptorpb.FieldDescriptorProto_Type
		typeName string
		repeated bool
		oneof    *int32
		optional bool
		jsonName string
	}
	const (
		tBool     = descriptorpb.FieldDescriptorProto_TYPE_BOOL
		tInt32    = descriptorpb.FieldDescriptorProto_TYPE_INT32
		tSint32   = descriptorpb.FieldDescriptorProto_TYPE_SINT32
		tSfixed32 = descriptorpb.FieldDescriptorProto_TYPE_SFIXED32
		tInt64    = descriptorpb.FieldDescriptorProto_TYPE_INT64
		tSint64   = descriptorpb.FieldDescriptorProto_TYPE_SINT64
		tSfixed64 = descriptorpb.FieldDescriptorProto_TYPE_SFIXED64
		tUint32   = descriptorpb.FieldDescriptorProto_TYPE_UINT32
		tFixed32  = descriptorpb.FieldDescriptorProto_TYPE_FIXED32
		tUint64   = descriptorpb.FieldDescriptorProto_TYPE_UINT64
		tFixed64  = descriptorpb.FieldDescriptorProto_TYPE_FIXED64
		tFloat    = descriptorpb.FieldDescriptorProto_TYPE_FLOAT
		tDouble   = descriptorpb.FieldDescriptorProto_TYPE_DOUBLE
		tString   = descriptorpb.FieldDescriptorProto_TYPE_STRING
		tBytes    = descriptorpb.FieldDescriptorProto_TYPE_BYTES
		tEnum     = descriptorpb.FieldDescriptorProto_TYPE_ENUM
		tMessage  = descriptorpb.FieldDescriptorProto_TYPE_MESSAGE
	)
	choice, opt := int32(0), int32(1)
	specs := []fieldSpec{
		{name: "b", typ: tBool}, {name: "i32", typ: tInt32}, {name: "si32", typ: tSint32},
		{name: "sf32", typ: tSfixed32}, {name: "i64", typ: tInt64}, {name: "si64", typ: tSint64},
		{name: "sf64", typ: tSfixed64}, {name: "u32", typ: tUint32}, {name: "f32", typ: tFixed32},
		{name: "u64", typ: tUint64}, {name: "f64", typ: tFixed64}, {name: "fl", typ: tFloat},
		{name: "db", typ: tDouble}, {name: "s", typ: tString}, {name: "by", typ: tBytes},
		{name: "color", typ: tEnum, typeName: ".kitchen.Color"},
		{name: "child", typ: tMessage, typeName: ".kitchen.Kitchen"},
		{name: "children", typ: tMessage, typeName: ".kitchen.Kitchen", repeated: true},
		{name: "nums", typ: tInt32, repeated: true},
		{name: "names", typ: tString, repeated: true},
		{name: "colors", typ: tEnum, typeName: ".kitchen.Color", repeated: true},
		{name: "labels", typ: tMessage, typeName: ".kitchen.Kitchen.LabelsEntry", repeated: true},
		{name: "counts", typ: tMessage, typeName: ".kitchen.Kitchen.CountsEntry", repeated: true},
		{name: "flags", typ: tMessage, typeName: ".kitchen.Kitchen.FlagsEntry", repeated: true},
		{name: "kids", typ: tMessage, typeName: ".kitchen.Kitchen.KidsEntry", repeated: true},
		{name: "dur", typ: tMessage, typeName: ".google.protobuf.Duration"},
		{name: "durs", typ: tMessage, typeName: ".google.protobuf.Duration", repeated: true},
		{name: "ts", typ: tMessage, typeName: ".google.protobuf.Timestamp"},
		{name: "val", typ: tMessage, typeName: ".google.protobuf.Value"},
		{name: "vals", typ: tMessage, typeName: ".google.protobuf.Value", repeated: true},
		{name: "st", typ: tMessage, typeName: ".google.protobuf.Struct"},
		{name: "lv", typ: tMessage, typeName: ".google.protobuf.ListValue"},
		{name: "wi32", typ: tMessage, typeName: ".google.protobuf.Int32Value"},
		{name: "ws", typ: tMessage, typeName: ".google.protobuf.StringValue"},
		{name: "one_a", typ: tString, oneof: &choice},
		{name: "one_b", typ: tInt32, oneof: &choice},
		{name: "opt", typ: tInt32, oneof: &opt, optional: true},
		{name: "custom", typ: tString, jsonName: "renamed"},
		{name: "timeouts", typ: tMessage, typeName: ".kitchen.Kitchen.TimeoutsEntry", repeated: true},
		{name: "meta", typ: tMessage, typeName: ".kitchen.Kitchen.MetaEntry", repeated: true},
		{name: "blobs", typ: tBytes, repeated: true},
		{name: "u32b", typ: tUint32},
	}
	fields := make([]*descriptorpb.FieldDescriptorProto, len(specs))
	for i, s := range specs {
		label := descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL
		if s.repeated {
			label = descriptorpb.FieldDescriptorProto_LABEL_REPEATED
		}
		f := &descriptorpb.FieldDescriptorProto{
			Name:       proto.String(s.name),
			Number:     proto.Int32(int32(i + 1)),
			Label:      label.Enum(),
			Type:       s.typ.Enum(),
			OneofIndex: s.oneof,
		}
		if s.typeName != "" {
			f.TypeName = proto.String(s.typeName)
		}
		if s.optional {
			f.Proto3Optional = proto.Bool(true)
		}
		if s.jsonName != "" {
			f.JsonName = proto.String(s.jsonName)
		}
		fields[i] = f
	}
	entry := func(name string, key descriptorpb.FieldDescriptorProto_Type, val descriptorpb.FieldDescriptorProto_Type, valType string) *descriptorpb.DescriptorProto {
		optional := descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL
		v := &descriptorpb.FieldDescriptorProto{Name: proto.String("value"), Number: proto.Int32(2), Label: optional.Enum(), Type: val.Enum()}
		if valType != "" {
			v.TypeName = proto.String(valType)
		}
		return &descriptorpb.DescriptorProto{
			Name: proto.String(name),
			Field: []*descriptorpb.FieldDescriptorProto{
				{Name: proto.String("key"), Number: proto.Int32(1), Label: optional.Enum(), Type: key.Enum()},
				v,
			},
			Options: &descriptorpb.MessageOptions{MapEntry: proto.Bool(true)},
		}
	}
	file := &descriptorpb.FileDescriptorProto{
		Name:       proto.String("kitchen/kitchen.proto"),
		Package:    proto.String("kitchen"),
		Syntax:     proto.String("proto3"),
		Dependency: []string{"google/protobuf/duration.proto", "google/protobuf/timestamp.proto", "google/protobuf/struct.proto", "google/protobuf/wrappers.proto"},
		EnumType: []*descriptorpb.EnumDescriptorProto{{
			Name: proto.String("Color"),
			Value: []*descriptorpb.EnumValueDescriptorProto{
				{Name: proto.String("COLOR_UNSPECIFIED"), Number: proto.Int32(0)},
				{Name: proto.String("COLOR_RED"), Number: proto.Int32(1)},
				{Name: proto.String("COLOR_DARK_BLUE"), Number: proto.Int32(2)},
			},
		}},
		MessageType: []*descriptorpb.DescriptorProto{{
			Name:  proto.String("Kitchen"),
			Field: fields,
			NestedType: []*descriptorpb.DescriptorProto{
				entry("LabelsEntry", tString, tString, ""),
				entry("CountsEntry", tInt32, tInt64, ""),
				entry("FlagsEntry", tBool, tString, ""),
				entry("KidsEntry", tString, tMessage, ".kitchen.Kitchen"),
				entry("TimeoutsEntry", tString, tMessage, ".google.protobuf.Duration"),
				entry("MetaEntry", tString, tMessage, ".google.protobuf.Value"),
			},
			OneofDecl: []*descriptorpb.OneofDescriptorProto{{Name: proto.String("choice")}, {Name: proto.String("_opt")}},
		}},
	}
	fd, err := protodesc.NewFile(file, protoregistry.GlobalFiles)
	if err != nil {
		t.Fatalf("building the kitchen descriptor: %v", err)
	}
	return fd.Messages().ByName("Kitchen")
}

// newKitchen returns an empty dynamic Kitchen message.
func newKitchen(t testing.TB) *dynamicpb.Message {
	t.Helper()
	return dynamicpb.NewMessage(kitchenDescriptor(t))
}
