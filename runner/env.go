package runner

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/wfeventbus/eventbus/internal/envref"
)

// unresolvedRef is a ${...} reference in a module config that the engine
// leaves as written (engine-pipelines.md §1.7): rel is the path of its
// string below the config.
type unresolvedRef struct {
	ref envref.Ref
	rel string
}

// expandModuleConfig applies the engine's ${NAME} / ${env:NAME} rules to
// every string of a module config and returns the new config and the
// references it left unexpanded.
func expandModuleConfig(cfg map[string]any, lookup LookupEnv) (map[string]any, []unresolvedRef) {
	var refs []unresolvedRef
	var walk func(v any, rel string) any
	walk = func(v any, rel string) any {
		switch v := v.(type) {
		case string:
			out, failed := envref.Expand(v, envref.Lookup(lookup))
			for _, f := range failed {
				refs = append(refs, unresolvedRef{ref: f, rel: rel})
			}
			return out
		case map[string]any:
			out := make(map[string]any, len(v))
			for _, k := range slices.Sorted(maps.Keys(v)) {
				out[k] = walk(v[k], relJoin(rel, pathKeyRel(k)))
			}
			return out
		case []any:
			out := make([]any, len(v))
			for i, e := range v {
				out[i] = walk(e, fmt.Sprintf("%s[%d]", rel, i))
			}
			return out
		}
		return v
	}
	out, _ := walk(cfg, "").(map[string]any)
	return out, refs
}

// relJoin appends a relative path (a key, `["k"]` or "[i]") to another.
func relJoin(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	case b[0] == '[':
		return a + b
	}
	return a + "." + b
}

// unsetNote says which references of a module config were left as
// written, for the error of a module the plugin refused; "" when none.
func unsetNote(refs []unresolvedRef) string {
	var notes []string
	for _, u := range refs {
		if u.ref.Name != "" && !u.ref.Default {
			notes = append(notes, fmt.Sprintf("%s is left as written: %s is not set", u.ref.Text, u.ref.Name))
		}
	}
	if len(notes) == 0 {
		return ""
	}
	return " (" + strings.Join(notes, "; ") + ")"
}
