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
