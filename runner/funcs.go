package runner

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/google/uuid"
)

// templateFuncs is the engine's template function map (without step and
// trigger, which read a run's data): the functions and argument orders of
// engine-pipelines.md §2.5, and nothing else. now reads clock; config
// reads the config.provider registry (nil: every key is "").
func templateFuncs(clock func() time.Time, config func(string) (string, bool)) template.FuncMap {
	return template.FuncMap{
		"uuid":   newUUID,
		"uuidv4": newUUID,
		"now": func(layout ...string) string {
			l := time.RFC3339
			if len(layout) > 0 && layout[0] != "" {
				l = timeLayout(layout[0])
			}
			return clock().UTC().Format(l)
		},
		"lower":    strings.ToLower,
		"upper":    strings.ToUpper,
		"title":    title,
		"default":  defaultValue,
		"coalesce": coalesce,
		"trimPrefix": func(prefix, s string) string {
			return strings.TrimPrefix(s, prefix)
		},
		"trimSuffix": func(suffix, s string) string {
			return strings.TrimSuffix(s, suffix)
		},
		"trimSpace": strings.TrimSpace,
		"replace": func(old, repl, s string) string {
			return strings.ReplaceAll(s, old, repl)
		},
		"contains":  func(substr, s string) bool { return strings.Contains(s, substr) },
		"hasPrefix": func(prefix, s string) bool { return strings.HasPrefix(s, prefix) },
		"hasSuffix": func(suffix, s string) bool { return strings.HasSuffix(s, suffix) },
		"split":     func(sep, s string) []string { return strings.Split(s, sep) },
		"join":      join,
		"urlEncode": url.QueryEscape,
		"b64":       func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) },
		"json":      jsonText,
		"config": func(key string) string {
			if config == nil {
				return ""
			}
			v, _ := config(key)
			return v
		},
		"add": func(a, b any) any {
			if isIntKind(a) && isIntKind(b) {
				return int64(num(a)) + int64(num(b))
			}
			return num(a) + num(b)
		},
		"sub": func(a, b any) any {
			if isIntKind(a) && isIntKind(b) {
				return int64(num(a)) - int64(num(b))
			}
			return num(a) - num(b)
		},
		"mul": func(a, b any) any {
			if isIntKind(a) && isIntKind(b) {
				return int64(num(a)) * int64(num(b))
			}
			return num(a) * num(b)
		},
		"div": func(a, b any) any {
			d := num(b)
			if d == 0 {
				return float64(0)
			}
			return num(a) / d
		},
		"toInt":    func(v any) int64 { return int64(num(v)) },
		"toFloat":  num,
		"toString": func(v any) string { return fmt.Sprintf("%v", v) },
		"length":   length,
		"sum":      sum,
		"min":      func(slice any, key ...string) any { return extreme(slice, key, -1) },
		"max":      func(slice any, key ...string) any { return extreme(slice, key, 1) },
		"first": func(slice any) any {
			items := anySlice(slice)
			if len(items) == 0 {
				return nil
			}
			return items[0]
		},
		"last": func(slice any) any {
			items := anySlice(slice)
			if len(items) == 0 {
				return nil
			}
			return items[len(items)-1]
		},
		"pluck":   pluck,
		"flatten": flatten,
		"unique":  unique,
		"groupBy": groupBy,
		"sortBy":  sortBy,
	}
}

// TemplateFunctions lists the template functions pipelines may call, in
// the order of engine-pipelines.md §2.5: the engine's function map, the
// run-bound step and trigger, then Go's built-in template functions.
func TemplateFunctions() []string {
	return []string{
		"uuid", "uuidv4", "now", "lower", "upper", "title", "default", "coalesce",
		"trimPrefix", "trimSuffix", "trimSpace", "replace", "contains", "hasPrefix", "hasSuffix",
		"split", "join", "urlEncode", "b64", "json", "config",
		"add", "sub", "mul", "div", "toInt", "toFloat", "toString", "length",
		"sum", "min", "max", "first", "last", "pluck", "flatten", "unique", "groupBy", "sortBy",
		"step", "trigger",
		"and", "or", "not", "len", "index", "slice", "print", "printf", "println",
		"eq", "ne", "lt", "le", "gt", "ge", "html", "js", "urlquery", "call",
	}
}

func newUUID() string { return uuid.NewString() }

// title upper-cases the first byte of each whitespace-separated word and
// joins the words with single spaces.
func title(s string) string {
	words := strings.Fields(s)
	for i, w := range words {
		words[i] = strings.ToUpper(w[:1]) + w[1:]
	}
	return strings.Join(words, " ")
}

// empty is the engine's test for default and coalesce: nil or "".
func empty(v any) bool {
	if v == nil {
		return true
	}
	s, ok := v.(string)
	return ok && s == ""
}

func defaultValue(fallback, v any) any {
	if empty(v) {
		return fallback
	}
	return v
}

func coalesce(vs ...any) any {
	for _, v := range vs {
		if !empty(v) {
			return v
		}
	}
	return nil
}

// join formats each element of a slice with %v; anything else is
// formatted whole.
func join(sep string, v any) string {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Slice {
		return fmt.Sprintf("%v", v)
	}
	parts := make([]string, rv.Len())
	for i := range parts {
		parts[i] = fmt.Sprintf("%v", rv.Index(i).Interface())
	}
	return strings.Join(parts, sep)
}

// jsonText is compact encoding/json output; a value it cannot encode
// gives "{}".
func jsonText(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return "{}"
	}
	return string(b)
}

// num is the engine's number conversion: Go int and float kinds as they
// are, strings parsed as floats, json.Number; anything else (uint kinds,
// bool, nil included) and unparseable strings are 0.
func num(v any) float64 {
	switch n := v.(type) {
	case int:
		return float64(n)
	case int8:
		return float64(n)
	case int16:
		return float64(n)
	case int32:
		return float64(n)
	case int64:
		return float64(n)
	case float32:
		return float64(n)
	case float64:
		return n
	case string:
		f, _ := strconv.ParseFloat(n, 64)
		return f
	case json.Number:
		f, _ := n.Float64()
		return f
	}
	return 0
}

// isIntKind reports whether v is an int, int8, int16, int32 or int64.
func isIntKind(v any) bool {
	switch v.(type) {
	case int, int8, int16, int32, int64:
		return true
	}
	return false
}

// intValue converts an int kind to int64 without going through float64.
func intValue(v any) int64 {
	switch n := v.(type) {
	case int:
		return int64(n)
	case int8:
		return int64(n)
	case int16:
		return int64(n)
	case int32:
		return int64(n)
	case int64:
		return n
	}
	return 0
}

func length(v any) int {
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.String, reflect.Slice, reflect.Array, reflect.Map:
		return rv.Len()
	}
	return 0
}

// anySlice returns the elements of any slice; nil for anything else.
func anySlice(v any) []any {
	if v == nil {
		return nil
	}
	if s, ok := v.([]any); ok {
		return s
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Slice {
		return nil
	}
	out := make([]any, rv.Len())
	for i := range out {
		out[i] = rv.Index(i).Interface()
	}
	return out
}

// field returns the keyed field of a map element, or the element itself
// when no key is given or it is no map.
func field(item any, key []string) any {
	if len(key) > 0 {
		if m, ok := item.(map[string]any); ok {
			return m[key[0]]
		}
	}
	return item
}

// sum adds the elements (or their key field): int64 while every value is
// an int kind, float64 from the first one that is not.
func sum(slice any, key ...string) any {
	items := anySlice(slice)
	if items == nil {
		return float64(0)
	}
	allInt := true
	var ints int64
	var floats float64
	for _, item := range items {
		v := field(item, key)
		switch {
		case allInt && isIntKind(v):
			ints += intValue(v)
		case allInt:
			allInt = false
			floats = float64(ints) + num(v)
		default:
			floats += num(v)
		}
	}
	if allInt {
		return ints
	}
	return floats
}

// extreme is min (dir -1) or max (dir 1), typed as sum is; nil for an
// empty slice.
func extreme(slice any, key []string, dir int) any {
	items := anySlice(slice)
	if len(items) == 0 {
		return nil
	}
	first := field(items[0], key)
	allInt := isIntKind(first)
	bestInt, bestFloat := intValue(first), num(first)
	better := func(a, b float64) bool { return (dir < 0 && a < b) || (dir > 0 && a > b) }
	for _, item := range items[1:] {
		v := field(item, key)
		switch {
		case allInt && isIntKind(v):
			if n := intValue(v); (dir < 0 && n < bestInt) || (dir > 0 && n > bestInt) {
				bestInt = n
			}
		case allInt:
			allInt = false
			bestFloat = float64(bestInt)
			if f := num(v); better(f, bestFloat) {
				bestFloat = f
			}
		default:
			if f := num(v); better(f, bestFloat) {
				bestFloat = f
			}
		}
	}
	if allInt {
		return bestInt
	}
	return bestFloat
}

func pluck(slice any, key string) []any {
	items := anySlice(slice)
	out := make([]any, 0, len(items))
	for _, item := range items {
		if m, ok := item.(map[string]any); ok {
			out = append(out, m[key])
		}
	}
	return out
}

func flatten(slice any) []any {
	items := anySlice(slice)
	if items == nil {
		return []any{}
	}
	var out []any
	for _, item := range items {
		if inner := anySlice(item); inner != nil {
			out = append(out, inner...)
		} else {
			out = append(out, item)
		}
	}
	return out
}

func unique(slice any, key ...string) []any {
	items := anySlice(slice)
	if items == nil {
		return []any{}
	}
	seen := map[string]bool{}
	var out []any
	for _, item := range items {
		k := fmt.Sprintf("%v", field(item, key))
		if !seen[k] {
			seen[k] = true
			out = append(out, item)
		}
	}
	return out
}

func groupBy(slice any, key string) map[string][]any {
	groups := map[string][]any{}
	for _, item := range anySlice(slice) {
		if m, ok := item.(map[string]any); ok {
			k := fmt.Sprintf("%v", m[key])
			groups[k] = append(groups[k], item)
		}
	}
	return groups
}

// sortBy sorts map elements by a field, stably and ascending: numbers and
// numeric strings first (by value), then other values (by their text),
// then nil.
func sortBy(slice any, key string) []any {
	items := anySlice(slice)
	out := make([]any, len(items))
	copy(out, items)
	sort.SliceStable(out, func(i, j int) bool {
		return compareSortKeys(field(out[i], []string{key}), field(out[j], []string{key})) < 0
	})
	return out
}

func compareSortKeys(a, b any) int {
	ra, na, sa := sortKey(a)
	rb, nb, sb := sortKey(b)
	switch {
	case ra != rb:
		return ra - rb
	case ra == 0 && na < nb, ra == 1 && sa < sb:
		return -1
	case ra == 0 && na > nb, ra == 1 && sa > sb:
		return 1
	}
	return 0
}

// sortKey ranks a value: 0 numeric (with its value), 1 text, 2 nil.
func sortKey(v any) (rank int, n float64, s string) {
	switch x := v.(type) {
	case nil:
		return 2, 0, ""
	case string:
		if f, err := strconv.ParseFloat(x, 64); err == nil {
			return 0, f, ""
		}
		return 1, 0, x
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32, float64:
		return 0, num(v), ""
	}
	return 1, 0, fmt.Sprintf("%v", v)
}

// timeLayout maps the name of a time package layout to the layout; any
// other string is a layout itself.
func timeLayout(name string) string {
	switch name {
	case "ANSIC":
		return time.ANSIC
	case "UnixDate":
		return time.UnixDate
	case "RubyDate":
		return time.RubyDate
	case "RFC822":
		return time.RFC822
	case "RFC822Z":
		return time.RFC822Z
	case "RFC850":
		return time.RFC850
	case "RFC1123":
		return time.RFC1123
	case "RFC1123Z":
		return time.RFC1123Z
	case "RFC3339":
		return time.RFC3339
	case "RFC3339Nano":
		return time.RFC3339Nano
	case "Kitchen":
		return time.Kitchen
	case "Stamp":
		return time.Stamp
	case "StampMilli":
		return time.StampMilli
	case "StampMicro":
		return time.StampMicro
	case "StampNano":
		return time.StampNano
	case "DateTime":
		return time.DateTime
	case "DateOnly":
		return time.DateOnly
	case "TimeOnly":
		return time.TimeOnly
	}
	return name
}
