package protomap

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/structpb"
)

// wellKnown identifies the message types decoded from a value of their own
// form instead of a map of their fields.
type wellKnown uint8

const (
	notWellKnown wellKnown = iota
	wkDuration
	wkTimestamp
	wkValue
	wkStruct
	wkListValue
	wkWrapper
)

func wellKnownOf(md protoreflect.MessageDescriptor) wellKnown {
	if md.ParentFile() == nil || md.ParentFile().Package() != "google.protobuf" {
		return notWellKnown
	}
	switch md.Name() {
	case "Duration":
		return wkDuration
	case "Timestamp":
		return wkTimestamp
	case "Value":
		return wkValue
	case "Struct":
		return wkStruct
	case "ListValue":
		return wkListValue
	case "DoubleValue", "FloatValue", "Int64Value", "UInt64Value", "Int32Value", "UInt32Value",
		"BoolValue", "StringValue", "BytesValue":
		return wkWrapper
	}
	return notWellKnown
}

// durationValue reads a Go duration string such as "1m30s".
func durationValue(v any) (time.Duration, error) {
	var d time.Duration
	switch x := v.(type) {
	case time.Duration:
		d = x
	case string:
		s := strings.TrimSpace(x)
		if s == "" {
			return 0, errBlank
		}
		var err error
		d, err = time.ParseDuration(s)
		if err != nil {
			if _, ferr := strconv.ParseFloat(s, 64); ferr == nil {
				return 0, fmt.Errorf("%w: %s has no unit; write one, such as %q", ErrInvalidValue, show(v), s+"s")
			}
			return 0, fmt.Errorf("%w: %s is not a duration; write a number with a unit (ns, us, ms, s, m, h), such as \"1m30s\"",
				ErrInvalidValue, show(v))
		}
	default:
		if isNumber(v) {
			return 0, fmt.Errorf("%w: got number %s; write a unit, such as %q", ErrWrongType, show(v), show(v)+"s")
		}
		return 0, wrongType(v, `a duration such as "30s"`)
	}
	if d < 0 {
		return 0, fmt.Errorf("%w: %s is negative", ErrOutOfRange, show(v))
	}
	return d, nil
}

// timestampValue reads an RFC 3339 time.
func timestampValue(v any) (time.Time, error) {
	var t time.Time
	switch x := v.(type) {
	case time.Time:
		t = x
	case string:
		s := strings.TrimSpace(x)
		if s == "" {
			return t, errBlank
		}
		var err error
		t, err = time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return t, fmt.Errorf("%w: %s is not an RFC 3339 time, such as \"2024-05-01T12:00:00Z\"", ErrInvalidValue, show(v))
		}
	default:
		return t, wrongType(v, `an RFC 3339 time such as "2024-05-01T12:00:00Z"`)
	}
	if y := t.UTC().Year(); y < 1 || y > 9999 {
		return t, fmt.Errorf("%w: %s is not between the years 1 and 9999", ErrOutOfRange, show(v))
	}
	return t, nil
}

// setSecondsNanos fills the seconds (1) and nanos (2) fields shared by
// Duration and Timestamp, through reflection so that it works for dynamic
// messages of these types as well as for the generated ones.
func setSecondsNanos(m protoreflect.Message, seconds int64, nanos int32) {
	fields := m.Descriptor().Fields()
	if seconds != 0 {
		m.Set(fields.ByNumber(1), protoreflect.ValueOfInt64(seconds))
	}
	if nanos != 0 {
		m.Set(fields.ByNumber(2), protoreflect.ValueOfInt32(nanos))
	}
}

// adopt returns built as a value of the type of target: built itself when
// target is of the generated type too, else target filled with a copy.
func adopt(target protoreflect.Message, built proto.Message) protoreflect.Value {
	if reflect.TypeOf(target.Interface()) == reflect.TypeOf(built) {
		return protoreflect.ValueOfMessage(built.ProtoReflect())
	}
	// target may be a dynamic message (from a descriptor set) whose
	// descriptor is not built's; the wire form carries the value across.
	b, err := proto.Marshal(built)
	if err == nil {
		err = proto.Unmarshal(b, target.Interface())
	}
	if err != nil {
		panic(fmt.Sprintf("protomap: %s cannot hold a %s: %v", target.Descriptor().FullName(), built.ProtoReflect().Descriptor().FullName(), err))
	}
	return protoreflect.ValueOfMessage(target)
}

// toValue converts a JSON-shaped value into a google.protobuf.Value, by
// the rules of structpb.NewValue, with also the maps and lists of any
// element type that YAML decoders produce, json.Number and times (as
// RFC 3339 strings). It reports every unconvertible element at its path
// and returns false when there was one.
func (d *decoder) toValue(v any) (*structpb.Value, bool) {
	switch x := v.(type) {
	case nil:
		return structpb.NewNullValue(), true
	case bool:
		return structpb.NewBoolValue(x), true
	case string:
		if !utf8.ValidString(x) {
			d.fail(fmt.Errorf("%w: %s is not valid UTF-8", ErrInvalidValue, show(v)))
			return nil, false
		}
		return structpb.NewStringValue(x), true
	case json.Number:
		f, err := x.Float64()
		if err != nil {
			d.fail(fmt.Errorf("%w: %s is not a number", ErrInvalidValue, show(v)))
			return nil, false
		}
		return structpb.NewNumberValue(f), true
	case []byte:
		return structpb.NewStringValue(base64.StdEncoding.EncodeToString(x)), true
	case time.Time:
		return structpb.NewStringValue(x.Format(time.RFC3339Nano)), true
	case time.Duration:
		return structpb.NewStringValue(x.String()), true
	case *structpb.Value:
		return proto.CloneOf(x), true
	}
	if isNumber(v) {
		f, _ := floatValue(v, 64, "double")
		return structpb.NewNumberValue(f), true
	}
	if isMap(v) {
		s, ok := d.toStruct(v)
		if !ok {
			return nil, false
		}
		return structpb.NewStructValue(s), true
	}
	if elems, ok := listElems(v); ok {
		l, ok := d.toList(elems)
		if !ok {
			return nil, false
		}
		return structpb.NewListValue(l), true
	}
	d.fail(wrongType(v, "a JSON value"))
	return nil, false
}

// toStruct converts a map into a google.protobuf.Struct.
func (d *decoder) toStruct(v any) (*structpb.Struct, bool) {
	entries, ok := mapEntries(v)
	if !ok {
		d.fail(wrongType(v, "a map"))
		return nil, false
	}
	if !d.enter() {
		return nil, false
	}
	defer d.leave()
	s := &structpb.Struct{Fields: make(map[string]*structpb.Value, len(entries))}
	good := true
	for _, e := range entries {
		d.push(segment{kind: segKey, key: e.key})
		if !utf8.ValidString(e.key) {
			d.fail(fmt.Errorf("%w: key %s is not valid UTF-8", ErrInvalidValue, show(e.key)))
			good = false
		} else if val, ok := d.toValue(e.val); ok {
			s.Fields[e.key] = val
		} else {
			good = false
		}
		d.pop()
	}
	return s, good
}

// toList converts list elements into a google.protobuf.ListValue.
func (d *decoder) toList(elems []any) (*structpb.ListValue, bool) {
	if !d.enter() {
		return nil, false
	}
	defer d.leave()
	l := &structpb.ListValue{Values: make([]*structpb.Value, 0, len(elems))}
	good := true
	for i, e := range elems {
		d.push(segment{kind: segIndex, index: i})
		if val, ok := d.toValue(e); ok {
			l.Values = append(l.Values, val)
		} else {
			good = false
		}
		d.pop()
	}
	return l, good
}
