package wfplugin

import (
	"encoding/json"
	"math"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
)

// EncodeConfig builds the typed config payload of a contract the way the
// engine does: top-level keys starting with "_" are dropped (the engine adds
// _config_dir), top-level strings of singular bool and number fields are
// coerced (see Coerce), and the result is decoded with protojson, rejecting
// unknown fields, then packed with type URL
// type.googleapis.com/<msgName>. The error is an *EncodeError that names
// the field when one is at fault.
func (r *Registry) EncodeConfig(msgName string, m map[string]any) (*anypb.Any, error) {
	return r.encode(msgName, m, false)
}

// EncodeInput builds the typed input payload of a step from the pipeline's
// current data: only keys that name a field of the input message (by proto,
// JSON or text name) are kept, then the rules of EncodeConfig apply ("_"
// keys are kept if they name a field).
func (r *Registry) EncodeInput(msgName string, m map[string]any) (*anypb.Any, error) {
	return r.encode(msgName, m, true)
}

func (r *Registry) encode(msgName string, m map[string]any, input bool) (*anypb.Any, error) {
	mt, err := r.FindMessage(msgName)
	if err != nil {
		return nil, &EncodeError{Message: msgName, Reason: err.Error()}
	}
	fields := mt.Descriptor().Fields()
	prepared := make(map[string]any, len(m))
	for k, v := range m {
		fd := fieldByAnyName(fields, k)
		if input {
			if fd == nil {
				continue
			}
		} else {
			if strings.HasPrefix(k, "_") {
				continue
			}
			if fd == nil {
				return nil, &EncodeError{Message: msgName, Field: k, Reason: "unknown field"}
			}
		}
		if s, ok := v.(string); ok && singularScalar(fd) {
			cv, keep := Coerce(fd.Kind(), s)
			if !keep {
				continue
			}
			v = cv
		}
		prepared[k] = v
	}
	msg, err := decodeJSON(mt, prepared)
	if err != nil {
		return nil, locateEncodeError(mt, msgName, prepared, err)
	}
	a, err := anypb.New(msg)
	if err != nil {
		return nil, &EncodeError{Message: msgName, Reason: err.Error()}
	}
	return a, nil
}

// decodeJSON marshals m to JSON and decodes it as a message of type mt,
// rejecting unknown fields.
func decodeJSON(mt protoreflect.MessageType, m map[string]any) (proto.Message, error) {
	data, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	msg := mt.New().Interface()
	if err := protojson.Unmarshal(data, msg); err != nil {
		return nil, err
	}
	return msg, nil
}

// locateEncodeError finds the first top-level key (in sorted order) that
// fails on its own, so the error can name it.
func locateEncodeError(mt protoreflect.MessageType, msgName string, m map[string]any, whole error) error {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if _, err := decodeJSON(mt, map[string]any{k: m[k]}); err != nil {
			return &EncodeError{Message: msgName, Field: k, Reason: cleanProtoError(err)}
		}
	}
	return &EncodeError{Message: msgName, Reason: cleanProtoError(whole)}
}

var protoErrorPrefix = regexp.MustCompile(`^proto:\s*(?:\(line \d+:\d+\):\s*)?`)

// cleanProtoError drops protojson's "proto: (line 1:2):" prefix, which
// points into JSON the user never wrote.
func cleanProtoError(err error) string {
	return protoErrorPrefix.ReplaceAllString(strings.ReplaceAll(err.Error(), "\u00a0", " "), "")
}

// fieldByAnyName finds a field by proto name, JSON name or text name.
func fieldByAnyName(fields protoreflect.FieldDescriptors, name string) protoreflect.FieldDescriptor {
	if fd := fields.ByName(protoreflect.Name(name)); fd != nil {
		return fd
	}
	if fd := fields.ByJSONName(name); fd != nil {
		return fd
	}
	return fields.ByTextName(name)
}

// singularScalar reports whether strings are coerced for the field: a
// singular bool, integer or floating-point field.
func singularScalar(fd protoreflect.FieldDescriptor) bool {
	if fd.Cardinality() == protoreflect.Repeated || fd.IsMap() {
		return false
	}
	switch fd.Kind() {
	case protoreflect.BoolKind,
		protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind,
		protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind,
		protoreflect.Uint32Kind, protoreflect.Fixed32Kind,
		protoreflect.Uint64Kind, protoreflect.Fixed64Kind,
		protoreflect.FloatKind, protoreflect.DoubleKind:
		return true
	}
	return false
}

// Coerce converts a top-level string for a singular field of the given kind
// the way the engine does before typed encoding:
//
//	bool                      true/false/1/0/yes/no/on/off (any case, trimmed)
//	int32/int64/sint*/sfixed* base-10 integer
//	uint32/uint64/fixed*      base-10 unsigned integer
//	float/double              floating-point number
//
// For these kinds an empty (or blank) string returns keep=false: the field
// is dropped and keeps its default. A string that does not parse is returned
// unchanged, so protojson reports it. Strings for every other kind (string,
// enum, bytes, messages) are returned unchanged.
func Coerce(kind protoreflect.Kind, s string) (v any, keep bool) {
	t := strings.TrimSpace(s)
	switch kind {
	case protoreflect.BoolKind:
		if t == "" {
			return nil, false
		}
		switch strings.ToLower(t) {
		case "true", "1", "yes", "on":
			return true, true
		case "false", "0", "no", "off":
			return false, true
		}
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		if t == "" {
			return nil, false
		}
		if n, err := strconv.ParseInt(t, 10, 32); err == nil {
			return n, true
		}
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		if t == "" {
			return nil, false
		}
		if n, err := strconv.ParseInt(t, 10, 64); err == nil {
			return n, true
		}
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		if t == "" {
			return nil, false
		}
		if n, err := strconv.ParseUint(t, 10, 32); err == nil {
			return n, true
		}
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		if t == "" {
			return nil, false
		}
		if n, err := strconv.ParseUint(t, 10, 64); err == nil {
			return n, true
		}
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		if t == "" {
			return nil, false
		}
		bits := 64
		if kind == protoreflect.FloatKind {
			bits = 32
		}
		// NaN and infinities stay strings: JSON has no literal for them and
		// protojson accepts "NaN", "Infinity" and "-Infinity".
		if f, err := strconv.ParseFloat(t, bits); err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) {
			return f, true
		}
	}
	return s, true
}

// DecodeOutput reads a typed step output the way the engine does: the type
// URL must end in "/<msgName>"; the message is rendered with protojson using
// proto field names and without unpopulated fields, so zero values are
// absent, 64-bit integers are strings, enums are names and bytes are base64;
// top-level int32 and uint32 numbers become Go ints.
func (r *Registry) DecodeOutput(msgName string, a *anypb.Any) (map[string]any, error) {
	if a == nil {
		return nil, &decodeError{msg: msgName, reason: "no typed payload"}
	}
	if !strings.HasSuffix(a.GetTypeUrl(), "/"+msgName) {
		return nil, &decodeError{msg: msgName, reason: "type URL " + strconv.Quote(a.GetTypeUrl()) + " does not name it"}
	}
	mt, err := r.FindMessage(msgName)
	if err != nil {
		return nil, &decodeError{msg: msgName, reason: err.Error()}
	}
	msg := mt.New().Interface()
	if err := proto.Unmarshal(a.GetValue(), msg); err != nil {
		return nil, &decodeError{msg: msgName, reason: err.Error()}
	}
	data, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(msg)
	if err != nil {
		return nil, &decodeError{msg: msgName, reason: err.Error()}
	}
	out := map[string]any{}
	if err := json.Unmarshal(data, &out); err != nil {
		return nil, &decodeError{msg: msgName, reason: err.Error()}
	}
	fields := mt.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		v, ok := out[string(fd.Name())]
		if !ok || !int32Kind(fd.Kind()) || fd.IsMap() {
			continue
		}
		if list, isList := v.([]any); isList {
			for j, e := range list {
				list[j] = toInt(e)
			}
			continue
		}
		out[string(fd.Name())] = toInt(v)
	}
	return out, nil
}

func int32Kind(k protoreflect.Kind) bool {
	switch k {
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind,
		protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return true
	}
	return false
}

func toInt(v any) any {
	if f, ok := v.(float64); ok && f == math.Trunc(f) && math.Abs(f) <= math.MaxInt32*2 {
		return int(f)
	}
	return v
}

type decodeError struct {
	msg    string
	reason string
}

func (e *decodeError) Error() string {
	return "wfplugin: decode " + e.msg + ": " + e.reason
}

func (e *decodeError) Unwrap() error { return ErrDecode }

// StepExecError is a failed step execution worded as the engine words it
// (engine-pipelines.md §5.2): "remote step execute: <text>" for a failure
// the plugin answered or a failed call, or the engine's text for a payload
// the host could not build or read. It matches what it wraps.
type StepExecError struct {
	// Text is the engine's wording.
	Text string
	// Err is the underlying error: a *RemoteError, an RPC error, an
	// *EncodeError.
	Err error
}

func (e *StepExecError) Error() string { return e.Text }

// Unwrap returns the underlying error.
func (e *StepExecError) Unwrap() error { return e.Err }

// normalize gives a value the shape the engine gives it before building a
// Struct: typed maps with string keys become map[string]any, typed slices
// []any, and []byte a list of numbers. Other values are kept, so that the
// Struct conversion rejects what it cannot hold.
func normalize(v any) any {
	switch v := v.(type) {
	case nil, string, bool, float64, float32, int, int8, int16, int32, int64,
		uint, uint8, uint16, uint32, uint64, json.Number:
		return v
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = normalize(e)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = normalize(e)
		}
		return out
	case []byte:
		out := make([]any, len(v))
		for i, b := range v {
			out[i] = float64(b)
		}
		return out
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Map:
		if rv.Type().Key().Kind() != reflect.String {
			return v
		}
		out := make(map[string]any, rv.Len())
		for it := rv.MapRange(); it.Next(); {
			out[it.Key().String()] = normalize(it.Value().Interface())
		}
		return out
	case reflect.Slice, reflect.Array:
		out := make([]any, rv.Len())
		for i := range out {
			out[i] = normalize(rv.Index(i).Interface())
		}
		return out
	}
	return v
}

// engineStruct converts a map to a Struct as the engine does for step
// outputs, trigger data, current and config: normalised first; a value a
// Struct cannot hold fails with protobuf's "proto: invalid type: <T>".
func engineStruct(m map[string]any) (*structpb.Struct, error) {
	n, _ := normalize(m).(map[string]any)
	return structpb.NewStruct(n)
}

// normalizeMap normalises every value of a map (see normalize).
func normalizeMap(m map[string]any) map[string]any {
	n, _ := normalize(m).(map[string]any)
	return n
}
