package protomap

import (
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Field describes one field of a message as a configuration writes it, for
// documentation and for checking configurations without decoding them.
type Field struct {
	// Name is the field's proto name, such as "max_age"; JSONName, such as
	// "maxAge", is accepted as a key too.
	Name     string `json:"name"`
	JSONName string `json:"json_name"`
	// Type is what a value of the field (one element of a repeated or map
	// field) is written as: a scalar kind ("string", "int32", "bool",
	// "double", ...), "enum", "duration", "timestamp", "value" (any JSON
	// value), "struct" (a map), "list" (google.protobuf.ListValue) or
	// "message". A wrapper message reports the kind it wraps.
	Type string `json:"type"`
	// Repeated is set for a repeated field, which takes a list.
	Repeated bool `json:"repeated,omitempty"`
	// MapKey is the kind of the keys of a map field, "" for other fields.
	MapKey string `json:"map_key,omitempty"`
	// Enum lists the accepted short names, in lower case, of an enum.
	Enum []string `json:"enum,omitempty"`
	// Message is the full name of the message type of a "message" field.
	Message string `json:"message,omitempty"`
	// Fields describes the fields of a "message" field; nil where the
	// type contains itself, which is described once, higher up.
	Fields []Field `json:"fields,omitempty"`
}

// Fields describes the fields of md in declaration order, nested messages
// included.
func Fields(md protoreflect.MessageDescriptor) []Field {
	return describeFields(md, nil)
}

func describeFields(md protoreflect.MessageDescriptor, outer []protoreflect.FullName) []Field {
	outer = append(outer, md.FullName())
	fields := md.Fields()
	out := make([]Field, fields.Len())
	for i := range out {
		fd := fields.Get(i)
		f := Field{Name: string(fd.Name()), JSONName: fd.JSONName(), Repeated: fd.IsList()}
		elem := fd
		if fd.IsMap() {
			f.MapKey = fd.MapKey().Kind().String()
			elem = fd.MapValue()
		}
		describeType(&f, elem, outer)
		out[i] = f
	}
	return out
}

func describeType(f *Field, fd protoreflect.FieldDescriptor, outer []protoreflect.FullName) {
	md := fd.Message()
	if md == nil {
		f.Type = fd.Kind().String()
		if fd.Enum() != nil {
			f.Enum = enumChoices(fd.Enum())
		}
		return
	}
	switch wellKnownOf(md) {
	case wkDuration:
		f.Type = "duration"
	case wkTimestamp:
		f.Type = "timestamp"
	case wkValue:
		f.Type = "value"
	case wkStruct:
		f.Type = "struct"
	case wkListValue:
		f.Type = "list"
	case wkWrapper:
		describeType(f, md.Fields().ByNumber(1), outer)
	default:
		f.Type = "message"
		f.Message = string(md.FullName())
		for _, name := range outer {
			if name == md.FullName() {
				return
			}
		}
		f.Fields = describeFields(md, outer)
	}
}
