package wfplugin

import (
	"fmt"
	"strconv"
	"strings"

	"google.golang.org/protobuf/types/known/structpb"
)

// ToStruct converts a JSON-shaped map to a google.protobuf.Struct. Values
// may only be string, bool, nil, the Go integer and float kinds, []any and
// map[string]any, nested freely. Anything else (typed maps and slices such
// as map[string]string or []string, []byte, time.Time, structs) fails with
// an error that wraps ErrNotJSONShaped and gives the value's path: the
// engine's hosts disagree on how to carry such values, so none is sent.
// Numbers become float64 on the other side. A nil map yields an empty
// Struct.
func ToStruct(m map[string]any) (*structpb.Struct, error) {
	s, err := toStruct(m)
	if err != nil {
		return nil, err.(*shapeError).final()
	}
	return s, nil
}

// ToValue converts one JSON-shaped value, with the rules of ToStruct.
func ToValue(v any) (*structpb.Value, error) {
	pv, err := toValue(v)
	if err != nil {
		return nil, err.(*shapeError).final()
	}
	return pv, nil
}

// FromStruct converts a Struct to a map; a nil Struct yields an empty map.
// Numbers are float64.
func FromStruct(s *structpb.Struct) map[string]any {
	if s == nil {
		return map[string]any{}
	}
	return s.AsMap()
}

// shapeError is a value that is not JSON-shaped. Its path is collected on
// the way out of the recursion, so converting a good value builds no path
// strings at all.
type shapeError struct {
	path []string // innermost first
	typ  any
}

func (e *shapeError) Error() string { return e.final().Error() }

func (e *shapeError) final() error {
	where := "value"
	if len(e.path) > 0 {
		var b strings.Builder
		for i := len(e.path) - 1; i >= 0; i-- {
			seg := e.path[i]
			if b.Len() > 0 && !strings.HasPrefix(seg, "[") {
				b.WriteByte('.')
			}
			b.WriteString(seg)
		}
		where = strconv.Quote(b.String())
	}
	return fmt.Errorf("%w: %s has type %T; only string, number, bool, nil, []any and map[string]any are allowed", ErrNotJSONShaped, where, e.typ)
}

func toStruct(m map[string]any) (*structpb.Struct, error) {
	s := &structpb.Struct{Fields: make(map[string]*structpb.Value, len(m))}
	for k, e := range m {
		pv, err := toValue(e)
		if err != nil {
			se := err.(*shapeError)
			se.path = append(se.path, k)
			return nil, se
		}
		s.Fields[k] = pv
	}
	return s, nil
}

func toValue(v any) (*structpb.Value, error) {
	switch v := v.(type) {
	case nil:
		return structpb.NewNullValue(), nil
	case string:
		return structpb.NewStringValue(v), nil
	case bool:
		return structpb.NewBoolValue(v), nil
	case float64:
		return structpb.NewNumberValue(v), nil
	case float32:
		return structpb.NewNumberValue(float64(v)), nil
	case int:
		return structpb.NewNumberValue(float64(v)), nil
	case int8:
		return structpb.NewNumberValue(float64(v)), nil
	case int16:
		return structpb.NewNumberValue(float64(v)), nil
	case int32:
		return structpb.NewNumberValue(float64(v)), nil
	case int64:
		return structpb.NewNumberValue(float64(v)), nil
	case uint:
		return structpb.NewNumberValue(float64(v)), nil
	case uint8:
		return structpb.NewNumberValue(float64(v)), nil
	case uint16:
		return structpb.NewNumberValue(float64(v)), nil
	case uint32:
		return structpb.NewNumberValue(float64(v)), nil
	case uint64:
		return structpb.NewNumberValue(float64(v)), nil
	case map[string]any:
		s, err := toStruct(v)
		if err != nil {
			return nil, err
		}
		return structpb.NewStructValue(s), nil
	case []any:
		l := &structpb.ListValue{Values: make([]*structpb.Value, len(v))}
		for i, e := range v {
			pv, err := toValue(e)
			if err != nil {
				se := err.(*shapeError)
				se.path = append(se.path, "["+strconv.Itoa(i)+"]")
				return nil, se
			}
			l.Values[i] = pv
		}
		return structpb.NewListValue(l), nil
	default:
		return nil, &shapeError{typ: v}
	}
}

// filteredStruct converts m like ToStruct but drops top-level entries that
// cannot be represented, as the engine does for pipeline metadata.
func filteredStruct(m map[string]any) *structpb.Struct {
	s := &structpb.Struct{Fields: make(map[string]*structpb.Value, len(m))}
	for k, v := range m {
		if pv, err := toValue(v); err == nil {
			s.Fields[k] = pv
		}
	}
	return s
}

// shape is how a value stands to the rules of ToStruct.
type shape int

const (
	// canonical values are what FromStruct returns: string, float64,
	// bool, nil, and non-nil []any and map[string]any, nested freely.
	canonical shape = iota
	// convertible values are JSON-shaped, with numbers of other kinds
	// or nil maps or slices.
	convertible
	// invalid values cannot travel in a Struct.
	invalid
)

// shapeOf classifies v without allocating.
func shapeOf(v any) shape {
	switch v := v.(type) {
	case nil, string, bool, float64:
		return canonical
	case float32, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		return convertible
	case map[string]any:
		if v == nil {
			// FromStruct returns an empty map, which JSON writes as {}.
			return convertible
		}
		return mapShape(v)
	case []any:
		if v == nil {
			// FromStruct returns an empty slice, which JSON writes as [].
			return convertible
		}
		out := canonical
		for _, e := range v {
			switch shapeOf(e) {
			case invalid:
				return invalid
			case convertible:
				out = convertible
			}
		}
		return out
	}
	return invalid
}

func mapShape(m map[string]any) shape {
	out := canonical
	for _, e := range m {
		switch shapeOf(e) {
		case invalid:
			return invalid
		case convertible:
			out = convertible
		}
	}
	return out
}

// jsonShaped returns m as FromStruct(ToStruct(m)) would, without building
// the Struct: m itself when it holds only canonical values, else a copy
// with every number a float64. A nil m yields an empty map. A value that
// is not JSON-shaped fails with ToStruct's error.
func jsonShaped(m map[string]any) (map[string]any, error) {
	switch mapShape(m) {
	case canonical:
		if m == nil {
			return map[string]any{}, nil
		}
		return m, nil
	case convertible:
		return copyMap(m), nil
	}
	_, err := ToStruct(m)
	return nil, err
}

// copyMap copies a JSON-shaped map as FromStruct(ToStruct(m)) would:
// every map and slice anew, every number a float64.
func copyMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = copyValue(v)
	}
	return out
}

// copyValue copies one JSON-shaped value; see copyMap.
func copyValue(v any) any {
	switch v := v.(type) {
	case float32:
		return float64(v)
	case int:
		return float64(v)
	case int8:
		return float64(v)
	case int16:
		return float64(v)
	case int32:
		return float64(v)
	case int64:
		return float64(v)
	case uint:
		return float64(v)
	case uint8:
		return float64(v)
	case uint16:
		return float64(v)
	case uint32:
		return float64(v)
	case uint64:
		return float64(v)
	case map[string]any:
		return copyMap(v)
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = copyValue(e)
		}
		return out
	}
	return v
}

// filteredCopy is filteredStruct's map: m without the top-level entries
// that cannot travel, copied as copyMap does.
func filteredCopy(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		if shapeOf(v) != invalid {
			out[k] = copyValue(v)
		}
	}
	return out
}
