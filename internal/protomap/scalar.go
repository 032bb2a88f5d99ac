package protomap

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// errBlank reports an empty or blank string given for a field that is not
// a string: the field is left unset, as for a nil value.
var errBlank = errors.New("blank")

// boolValue reads a bool, 0 or 1, or one of the words of parseBool.
func boolValue(v any) (bool, error) {
	switch x := v.(type) {
	case bool:
		return x, nil
	case string:
		s := strings.TrimSpace(x)
		if s == "" {
			return false, errBlank
		}
		if b, ok := parseBool(s); ok {
			return b, nil
		}
		return false, fmt.Errorf("%w: %s is not a bool; write true or false", ErrInvalidValue, show(v))
	}
	if isNumber(v) {
		switch n, err := intValue(v, 64, "int64"); {
		case err == nil && n == 0:
			return false, nil
		case err == nil && n == 1:
			return true, nil
		}
		return false, fmt.Errorf("%w: %s is not a bool; write true or false", ErrInvalidValue, show(v))
	}
	return false, wrongType(v, "a bool")
}

// parseBool reads true, false, 1, 0, yes, no, on and off in any case.
func parseBool(s string) (value, ok bool) {
	switch strings.ToLower(s) {
	case "true", "1", "yes", "on":
		return true, true
	case "false", "0", "no", "off":
		return false, true
	}
	return false, false
}

// intValue reads a signed integer that fits in bits bits; kind names the
// field's type in errors.
func intValue(v any, bits int, kind string) (int64, error) {
	var n int64
	switch x := v.(type) {
	case int:
		n = int64(x)
	case int8:
		n = int64(x)
	case int16:
		n = int64(x)
	case int32:
		n = int64(x)
	case int64:
		n = x
	case uint, uint8, uint16, uint32, uint64, uintptr:
		u := reflect.ValueOf(x).Uint()
		if u > math.MaxInt64 {
			return 0, intRangeError(v, bits, kind)
		}
		n = int64(u)
	case float32:
		return intFromFloat(v, float64(x), bits, kind)
	case float64:
		return intFromFloat(v, x, bits, kind)
	case json.Number:
		return intFromString(v, string(x), bits, kind)
	case string:
		s := strings.TrimSpace(x)
		if s == "" {
			return 0, errBlank
		}
		return intFromString(v, s, bits, kind)
	default:
		return 0, wrongType(v, "an integer")
	}
	if bits < 64 && (n < -1<<(bits-1) || n > 1<<(bits-1)-1) {
		return 0, intRangeError(v, bits, kind)
	}
	return n, nil
}

func intFromString(v any, s string, bits int, kind string) (int64, error) {
	n, err := strconv.ParseInt(s, 10, bits)
	switch {
	case err == nil:
		return n, nil
	case errors.Is(err, strconv.ErrRange):
		return 0, intRangeError(v, bits, kind)
	case decimalFloat(s):
		if f, ferr := strconv.ParseFloat(s, 64); ferr == nil {
			return intFromFloat(v, f, bits, kind)
		}
	}
	return 0, fmt.Errorf("%w: %s is not an integer", ErrInvalidValue, show(v))
}

func intFromFloat(v any, f float64, bits int, kind string) (int64, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) || f != math.Trunc(f) {
		return 0, fmt.Errorf("%w: %s is not an integer", ErrInvalidValue, show(v))
	}
	// -2^(bits-1) and 2^(bits-1) are exact in a float64.
	limit := math.Ldexp(1, bits-1)
	if f < -limit || f >= limit {
		return 0, intRangeError(v, bits, kind)
	}
	return int64(f), nil
}

func intRangeError(v any, bits int, kind string) error {
	return fmt.Errorf("%w: %s is outside the range of %s (%d to %d)", ErrOutOfRange, show(v), kind,
		int64(-1)<<(bits-1), uint64(1)<<(bits-1)-1)
}

// uintValue reads an unsigned integer that fits in bits bits; kind names
// the field's type in errors.
func uintValue(v any, bits int, kind string) (uint64, error) {
	var u uint64
	switch x := v.(type) {
	case int, int8, int16, int32, int64:
		n := reflect.ValueOf(x).Int()
		if n < 0 {
			return 0, uintRangeError(v, bits, kind)
		}
		u = uint64(n)
	case uint:
		u = uint64(x)
	case uint8:
		u = uint64(x)
	case uint16:
		u = uint64(x)
	case uint32:
		u = uint64(x)
	case uint64:
		u = x
	case uintptr:
		u = uint64(x)
	case float32:
		return uintFromFloat(v, float64(x), bits, kind)
	case float64:
		return uintFromFloat(v, x, bits, kind)
	case json.Number:
		return uintFromString(v, string(x), bits, kind)
	case string:
		s := strings.TrimSpace(x)
		if s == "" {
			return 0, errBlank
		}
		return uintFromString(v, s, bits, kind)
	default:
		return 0, wrongType(v, "an integer")
	}
	if bits < 64 && u > 1<<bits-1 {
		return 0, uintRangeError(v, bits, kind)
	}
	return u, nil
}

func uintFromString(v any, s string, bits int, kind string) (uint64, error) {
	u, err := strconv.ParseUint(s, 10, bits)
	switch {
	case err == nil:
		return u, nil
	case errors.Is(err, strconv.ErrRange):
		return 0, uintRangeError(v, bits, kind)
	case decimalFloat(s):
		// Also the path of negative integers, which ParseUint rejects as
		// a syntax error.
		if f, ferr := strconv.ParseFloat(s, 64); ferr == nil {
			return uintFromFloat(v, f, bits, kind)
		}
	}
	return 0, fmt.Errorf("%w: %s is not an integer", ErrInvalidValue, show(v))
}

func uintFromFloat(v any, f float64, bits int, kind string) (uint64, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) || f != math.Trunc(f) {
		return 0, fmt.Errorf("%w: %s is not an integer", ErrInvalidValue, show(v))
	}
	if f < 0 || f >= math.Ldexp(1, bits) {
		return 0, uintRangeError(v, bits, kind)
	}
	return uint64(f), nil
}

func uintRangeError(v any, bits int, kind string) error {
	return fmt.Errorf("%w: %s is outside the range of %s (0 to %d)", ErrOutOfRange, show(v), kind,
		uint64(math.MaxUint64)>>(64-bits))
}

// decimalFloat reports whether s is written with digits, signs, a point
// and exponents only, so that a float parse of it is a plain decimal one
// (no hexadecimal, Inf or NaN).
func decimalFloat(s string) bool {
	return strings.Trim(s, "0123456789+-.eE") == ""
}

// floatValue reads a number or numeric string as a float of bits bits.
func floatValue(v any, bits int, kind string) (float64, error) {
	var f float64
	switch x := v.(type) {
	case float64:
		f = x
	case float32:
		f = float64(x)
	case int, int8, int16, int32, int64:
		f = float64(reflect.ValueOf(x).Int())
	case uint, uint8, uint16, uint32, uint64, uintptr:
		f = float64(reflect.ValueOf(x).Uint())
	case json.Number, string:
		s := strings.TrimSpace(reflect.ValueOf(x).String())
		if s == "" {
			return 0, errBlank
		}
		var err error
		f, err = strconv.ParseFloat(s, 64)
		switch {
		case errors.Is(err, strconv.ErrRange):
			return 0, fmt.Errorf("%w: %s is outside the range of %s", ErrOutOfRange, show(v), kind)
		case err != nil:
			return 0, fmt.Errorf("%w: %s is not a number", ErrInvalidValue, show(v))
		}
	default:
		return 0, wrongType(v, "a number")
	}
	if bits == 32 && !math.IsInf(f, 0) && math.Abs(f) > math.MaxFloat32 {
		return 0, fmt.Errorf("%w: %s is outside the range of %s", ErrOutOfRange, show(v), kind)
	}
	return f, nil
}

// stringValue reads a string, or formats a number or bool as one.
func stringValue(v any) (string, error) {
	var s string
	switch x := v.(type) {
	case string:
		s = x
	case bool:
		s = strconv.FormatBool(x)
	case int, int8, int16, int32, int64:
		s = strconv.FormatInt(reflect.ValueOf(x).Int(), 10)
	case uint, uint8, uint16, uint32, uint64, uintptr:
		s = strconv.FormatUint(reflect.ValueOf(x).Uint(), 10)
	case float32:
		s = formatFloat(float64(x), 32)
	case float64:
		s = formatFloat(x, 64)
	case json.Number:
		s = string(x)
	case []byte:
		s = string(x)
	case time.Time:
		s = x.Format(time.RFC3339Nano)
	default:
		return "", wrongType(v, "a string")
	}
	if !utf8.ValidString(s) {
		return "", fmt.Errorf("%w: %s is not valid UTF-8", ErrInvalidValue, show(v))
	}
	return s, nil
}

// formatFloat writes f as YAML and JSON users write numbers: 2 and 0.5
// rather than 2e+00 and 5e-01, with an exponent only for very large or
// small magnitudes.
func formatFloat(f float64, bits int) string {
	if a := math.Abs(f); a != 0 && (a < 1e-6 || a >= 1e21) {
		return strconv.FormatFloat(f, 'g', -1, bits)
	}
	return strconv.FormatFloat(f, 'f', -1, bits)
}

// bytesValue reads a string as its UTF-8 bytes.
func bytesValue(v any) ([]byte, error) {
	switch x := v.(type) {
	case string:
		return []byte(x), nil
	case []byte:
		return bytes.Clone(x), nil
	}
	return nil, wrongType(v, "a string")
}

// enumValue reads the number of an enum value from its full name, its name
// without the prefix all values share, or its number.
func enumValue(ed protoreflect.EnumDescriptor, v any) (protoreflect.EnumNumber, error) {
	values := ed.Values()
	var n int64
	switch x := v.(type) {
	case string:
		s := strings.TrimSpace(x)
		if s == "" {
			return 0, errBlank
		}
		if !decimalFloat(s) || !strings.ContainsAny(s, "0123456789") {
			return enumByName(ed, v, s)
		}
		num, err := intValue(s, 32, "enum")
		if err != nil {
			return 0, err
		}
		n = num
	default:
		if !isNumber(v) {
			return 0, wrongType(v, "one of "+strings.Join(enumChoices(ed), ", "))
		}
		num, err := intValue(v, 32, "enum")
		if err != nil {
			return 0, err
		}
		n = num
	}
	if values.ByNumber(protoreflect.EnumNumber(n)) == nil {
		return 0, fmt.Errorf("%w: %s is not a value of %s; want one of %s", ErrInvalidValue, show(v), ed.Name(),
			strings.Join(enumChoices(ed), ", "))
	}
	return protoreflect.EnumNumber(n), nil
}

func enumByName(ed protoreflect.EnumDescriptor, v any, s string) (protoreflect.EnumNumber, error) {
	name := strings.ReplaceAll(s, "-", "_")
	prefix := enumPrefix(ed)
	values := ed.Values()
	for i := range values.Len() {
		ev := values.Get(i)
		full := string(ev.Name())
		if strings.EqualFold(full, name) || strings.EqualFold(full[len(prefix):], name) {
			return ev.Number(), nil
		}
	}
	choices := enumChoices(ed)
	msg := fmt.Sprintf("%s is not one of %s", show(v), strings.Join(choices, ", "))
	if near := suggestName(choices, name); near != "" {
		msg += fmt.Sprintf("; did you mean %q?", near)
	}
	return 0, fmt.Errorf("%w: %s", ErrInvalidValue, msg)
}

// enumPrefix is the prefix that the names of all values of ed share, up to
// and including its last underscore: "RETENTION_POLICY_" for
// RETENTION_POLICY_UNSPECIFIED, RETENTION_POLICY_LIMITS, ...
func enumPrefix(ed protoreflect.EnumDescriptor) string {
	values := ed.Values()
	if values.Len() == 0 {
		return ""
	}
	prefix := string(values.Get(0).Name())
	for i := 1; i < values.Len(); i++ {
		name := string(values.Get(i).Name())
		j := 0
		for j < len(prefix) && j < len(name) && prefix[j] == name[j] {
			j++
		}
		prefix = prefix[:j]
	}
	prefix = prefix[:strings.LastIndexByte(prefix, '_')+1]
	// A value named exactly like the prefix would lose its whole name.
	for i := range values.Len() {
		if len(values.Get(i).Name()) == len(prefix) {
			return ""
		}
	}
	return prefix
}

// enumChoices lists the short names of ed's values in lower case, leaving
// out a zero value named UNSPECIFIED, which no configuration needs to
// write.
func enumChoices(ed protoreflect.EnumDescriptor) []string {
	prefix := enumPrefix(ed)
	values := ed.Values()
	out := make([]string, 0, values.Len())
	for i := range values.Len() {
		ev := values.Get(i)
		short := string(ev.Name())[len(prefix):]
		if ev.Number() == 0 && strings.HasSuffix(short, "UNSPECIFIED") {
			continue
		}
		out = append(out, strings.ToLower(short))
	}
	return out
}

// isNumber reports whether v is a Go number or a json.Number.
func isNumber(v any) bool {
	switch v.(type) {
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, uintptr,
		float32, float64, json.Number:
		return true
	}
	return false
}

// wrongType is the error for a value of a kind the field cannot take.
func wrongType(v any, want string) error {
	return fmt.Errorf("%w: got %s, want %s", ErrWrongType, describe(v), want)
}

// describe names the kind of v and, for scalars, its value: `number 30`,
// `string "abc"`, `list`.
func describe(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return "bool " + strconv.FormatBool(x)
	case string:
		return "string " + show(v)
	case []byte:
		return "bytes"
	}
	if isNumber(v) {
		return "number " + show(v)
	}
	switch reflect.ValueOf(v).Kind() {
	case reflect.Map:
		return "map"
	case reflect.Slice, reflect.Array:
		return "list"
	}
	return fmt.Sprintf("%T", v)
}

// show writes a scalar as it would appear in a configuration: strings
// quoted (and shortened when long), numbers as written.
func show(v any) string {
	switch x := v.(type) {
	case string:
		const limit = 64
		if len(x) > limit {
			cut := limit
			for cut > 0 && !utf8.RuneStart(x[cut]) {
				cut--
			}
			return strconv.Quote(x[:cut]) + "..."
		}
		return strconv.Quote(x)
	case float64:
		return formatFloat(x, 64)
	case float32:
		return formatFloat(float64(x), 32)
	case json.Number:
		return string(x)
	}
	return fmt.Sprint(v)
}
