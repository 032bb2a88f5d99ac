// Package envref resolves ${...} references to environment variables in
// module config strings, with the workflow engine's rules and with the
// eventbus plugin's extension for defaults.
//
// The engine (engine-pipelines.md §1.7) resolves ${NAME} and ${env:NAME}
// in every string of a module's config: the name is upper-cased and "."
// becomes "_"; a variable set to "" substitutes "". When any reference of
// a string fails (an unset variable, an unknown scheme, a shell-style
// default such as ${NAME:-d}), the whole string is left exactly as
// written. $NAME without braces is never expanded.
//
// The eventbus plugin resolves what the engine left in its own module
// config with the same rules plus ${NAME:-default}, which gives default
// when NAME is unset or empty. Both hosts leave such a string to the
// plugin, so a default written that way works in both.
package envref

import "strings"

// Lookup reports a variable's value and whether it is set.
type Lookup func(name string) (string, bool)

// Ref is a reference that did not resolve.
type Ref struct {
	// Text is the reference as written, such as "${PORT:-4222}".
	Text string
	// Name is the variable it reads, upper-cased ("" for an unknown
	// scheme).
	Name string
	// Default is true for a ${NAME:-default} reference.
	Default bool
}

// Expand applies the engine's rules to s. It returns s with every
// reference replaced, or s unchanged and the references that failed.
func Expand(s string, lookup Lookup) (string, []Ref) {
	return expand(s, lookup, false)
}

// ExpandDefaults applies the eventbus plugin's rules: the engine's, and
// ${NAME:-default} gives default when NAME is unset or empty.
func ExpandDefaults(s string, lookup Lookup) (string, []Ref) {
	return expand(s, lookup, true)
}

// Name is the variable a reference's key reads: upper-cased, "." as "_".
func Name(key string) string {
	return strings.ReplaceAll(strings.ToUpper(key), ".", "_")
}

func expand(s string, lookup Lookup, defaults bool) (string, []Ref) {
	if !strings.Contains(s, "${") {
		return s, nil
	}
	var out strings.Builder
	var failed []Ref
	rest := s
	for {
		open := strings.Index(rest, "${")
		if open < 0 {
			break
		}
		end := strings.IndexByte(rest[open:], '}')
		if end < 0 {
			break
		}
		end += open
		out.WriteString(rest[:open])
		text := rest[open : end+1]
		val, ref, ok := resolve(text, rest[open+2:end], lookup, defaults)
		if !ok {
			failed = append(failed, ref)
		}
		out.WriteString(val)
		rest = rest[end+1:]
	}
	if len(failed) > 0 {
		return s, failed
	}
	out.WriteString(rest)
	return out.String(), nil
}

// resolve resolves one reference whose text between the braces is inner.
func resolve(text, inner string, lookup Lookup, defaults bool) (string, Ref, bool) {
	if name, def, ok := strings.Cut(strings.TrimPrefix(inner, "env:"), ":-"); ok && validName(name) {
		n := Name(name)
		if !defaults {
			return "", Ref{Text: text, Name: n, Default: true}, false
		}
		if v, set := get(lookup, n); set && v != "" {
			return v, Ref{}, true
		}
		return def, Ref{}, true
	}
	key := inner
	if scheme, k, ok := strings.Cut(inner, ":"); ok && isScheme(scheme) {
		if scheme != "env" {
			return "", Ref{Text: text}, false
		}
		key = k
	}
	n := Name(key)
	v, set := get(lookup, n)
	if !set {
		return "", Ref{Text: text, Name: n}, false
	}
	return v, Ref{}, true
}

func get(lookup Lookup, name string) (string, bool) {
	if lookup == nil {
		return "", false
	}
	return lookup(name)
}

// isScheme reports whether s is a provider scheme: ASCII letters, digits
// and '-' only.
func isScheme(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// validName reports whether s can name a variable in a default
// reference: a letter or '_', then letters, digits, '_' and '.'.
func validName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_'
		if !(letter || i > 0 && (c >= '0' && c <= '9' || c == '.')) {
			return false
		}
	}
	return true
}

// Walk returns a copy of v with f applied to every string inside maps
// and lists; other values are kept.
func Walk(v any, f func(string) string) any {
	switch v := v.(type) {
	case string:
		return f(v)
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = Walk(e, f)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = Walk(e, f)
		}
		return out
	}
	return v
}
