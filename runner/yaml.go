package runner

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// maxYAMLDepth bounds the nesting of a config value, so that aliases that
// refer to themselves end in a problem instead of a stack overflow.
const maxYAMLDepth = 200

// parser turns YAML nodes into a Config, collecting problems as it goes.
type parser struct {
	file     string
	env      LookupEnv
	problems problems
	warnings problems
}

// keyValue is one entry of a YAML mapping.
type keyValue struct {
	key   *yaml.Node
	value *yaml.Node
}

func (p *parser) pos(n *yaml.Node) Pos {
	return Pos{File: p.file, Line: n.Line, Column: n.Column}
}

// deref follows aliases and enters documents.
func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && i < maxYAMLDepth; i++ {
		switch {
		case n.Kind == yaml.AliasNode && n.Alias != nil:
			n = n.Alias
		case n.Kind == yaml.DocumentNode && len(n.Content) > 0:
			n = n.Content[0]
		default:
			return n
		}
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || n.Kind == 0 || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

// expect reports whether n has the wanted kind, recording a problem if not.
func (p *parser) expect(n *yaml.Node, field string, kind yaml.Kind) bool {
	if n.Kind == kind {
		return true
	}
	want := map[yaml.Kind]string{yaml.MappingNode: "a mapping", yaml.SequenceNode: "a list", yaml.ScalarNode: "a scalar"}[kind]
	p.problems.add(p.pos(n), field, ErrWrongType, "want %s, got %s", want, describeNode(n))
	return false
}

// describeNode names what a node holds, for messages.
func describeNode(n *yaml.Node) string {
	n = deref(n)
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return "null"
		case "!!bool":
			return n.Value
		case "!!int", "!!float":
			return "number " + n.Value
		default:
			return "string " + strconv.Quote(n.Value)
		}
	}
	return "nothing"
}

// pairs returns the entries of a mapping in order, with merge keys (<<)
// expanded in place: a key written in the mapping itself wins over a merged
// one, and among merged mappings the first wins. A key written twice is a
// problem.
func (p *parser) pairs(n *yaml.Node, path string) []keyValue {
	own := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if isMergeKey(k) {
			continue
		}
		if k.Kind != yaml.ScalarNode {
			p.problems.add(p.pos(k), path, ErrWrongType, "a key must be a scalar, got %s", describeNode(k))
			continue
		}
		if first, dup := own[k.Value]; dup {
			p.problems.add(p.pos(k), joinPath(path, k.Value), ErrDuplicate, "key %q is declared twice (first at line %d)", k.Value, first.Line)
			continue
		}
		own[k.Value] = k
	}
	seen := map[string]bool{}
	var out []keyValue
	var addMerged func(src *yaml.Node, depth int)
	addMerged = func(src *yaml.Node, depth int) {
		src = deref(src)
		if depth > maxYAMLDepth {
			return
		}
		switch src.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(src.Content); i += 2 {
				k, v := src.Content[i], src.Content[i+1]
				if isMergeKey(k) {
					addMerged(v, depth+1)
					continue
				}
				if k.Kind != yaml.ScalarNode || own[k.Value] != nil || seen[k.Value] {
					continue
				}
				seen[k.Value] = true
				out = append(out, keyValue{key: k, value: v})
			}
		case yaml.SequenceNode:
			for _, m := range src.Content {
				addMerged(m, depth+1)
			}
		default:
			p.problems.add(p.pos(src), path, ErrWrongType, "a merge (<<) needs a mapping or a list of mappings, got %s", describeNode(src))
		}
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if isMergeKey(k) {
			addMerged(v, 0)
			continue
		}
		if k.Kind != yaml.ScalarNode || own[k.Value] != k {
			continue
		}
		seen[k.Value] = true
		out = append(out, keyValue{key: k, value: v})
	}
	return out
}

func isMergeKey(k *yaml.Node) bool {
	return k.Kind == yaml.ScalarNode && k.Value == "<<" && (k.Tag == "!!merge" || k.Tag == "")
}

// lookup returns the value of key in mapping n (merges included), or nil.
func lookup(n *yaml.Node, key string) (k, v *yaml.Node) {
	n = deref(n)
	if n == nil || n.Kind != yaml.MappingNode {
		return nil, nil
	}
	var scratch parser
	for _, kv := range scratch.pairs(n, "") {
		if kv.key.Value == key {
			return kv.key, kv.value
		}
	}
	return nil, nil
}

// str reads a scalar as a string (numbers and bools as written, as the
// engine's typed string fields do); null is "".
func (p *parser) str(n *yaml.Node, field string) string {
	n = deref(n)
	if isNull(n) {
		return ""
	}
	if n.Kind != yaml.ScalarNode {
		p.problems.add(p.pos(n), field, ErrWrongType, "want a string, got %s", describeNode(n))
		return ""
	}
	return n.Value
}

// strList reads a list of strings.
func (p *parser) strList(n *yaml.Node, field string) []string {
	n = deref(n)
	if isNull(n) || !p.expect(n, field, yaml.SequenceNode) {
		return nil
	}
	out := make([]string, 0, len(n.Content))
	for i, e := range n.Content {
		out = append(out, p.str(e, fmt.Sprintf("%s[%d]", field, i)))
	}
	return out
}

// configMap reads a config mapping (null is an empty config) as a
// JSON-shaped map.
func (p *parser) configMap(n *yaml.Node, field string) map[string]any {
	n = deref(n)
	if isNull(n) {
		return map[string]any{}
	}
	if !p.expect(n, field, yaml.MappingNode) {
		return map[string]any{}
	}
	m, _ := p.value(n, field, 0).(map[string]any)
	if m == nil {
		m = map[string]any{}
	}
	return m
}

// value converts a node to the value yaml.v3 decodes it to for an
// interface{} target, as the engine reads config maps (engine-pipelines.md
// §1.1): string, int (uint64 beyond int64), float64, bool, nil, time.Time
// for an unquoted timestamp, []any or map[string]any. A mapping key that
// is not a string (200: ok) is a problem: the engine would keep it as a
// number, which neither its steps nor a plugin can take.
func (p *parser) value(n *yaml.Node, path string, depth int) any {
	n = deref(n)
	if depth > maxYAMLDepth {
		p.problems.add(p.pos(n), path, ErrInvalidValue, "nested too deeply (a self-referencing alias?)")
		return nil
	}
	switch n.Kind {
	case yaml.ScalarNode:
		var v any
		if err := n.Decode(&v); err != nil {
			p.problems.add(p.pos(n), path, ErrInvalidValue, "%s", yamlErrorText(err))
			return nil
		}
		return v
	case yaml.SequenceNode:
		out := make([]any, len(n.Content))
		for i, e := range n.Content {
			out[i] = p.value(e, fmt.Sprintf("%s[%d]", path, i), depth+1)
		}
		return out
	case yaml.MappingNode:
		kvs := p.pairs(n, path)
		out := make(map[string]any, len(kvs))
		for _, kv := range kvs {
			if tag := kv.key.ShortTag(); tag != "!!str" {
				p.problems.add(p.pos(kv.key), joinPath(path, kv.key.Value), ErrWrongType,
					"key %s is a %s, not a string; quote it (\"%s\": ...)", kv.key.Value, strings.TrimPrefix(tag, "!!"), kv.key.Value)
			}
			out[kv.key.Value] = p.value(kv.value, joinPath(path, kv.key.Value), depth+1)
		}
		return out
	}
	return nil
}

// roundTrip gives a pipeline config value the types the engine's second
// decoding pass gives it: each pipeline is re-marshalled to YAML and
// decoded again, so integral floats become ints (1.0 -> 1, 1e3 -> 1000).
func roundTrip(v any) any {
	switch v := v.(type) {
	case float64:
		b, err := yaml.Marshal(v)
		if err != nil {
			return v
		}
		var out any
		if yaml.Unmarshal(b, &out) != nil {
			return v
		}
		return out
	case map[string]any:
		for k, e := range v {
			v[k] = roundTrip(e)
		}
	case []any:
		for i, e := range v {
			v[i] = roundTrip(e)
		}
	}
	return v
}

// unknownKey records a key that names no field, suggesting a close one.
// The engine ignores keys it does not know, so this is a warning.
func (p *parser) unknownKey(k *yaml.Node, path string, known []string) {
	msg := fmt.Sprintf("%q is not a field here; the engine ignores it", k.Value)
	if s := suggest(known, k.Value); s != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", s)
	} else if len(known) > 0 {
		msg += " (known: " + strings.Join(known, ", ") + ")"
	}
	p.warnings.add(p.pos(k), joinPath(path, k.Value), ErrUnknownField, "%s", msg)
}

// joinPath appends a mapping key to a field path.
func joinPath(path, key string) string {
	seg := pathKey(key)
	if path == "" {
		return strings.TrimPrefix(seg, ".")
	}
	return path + seg
}

// pathKey renders a key as a path segment: ".key" when it has only
// letters, digits, '_' and '-', else `["key"]`.
func pathKey(key string) string {
	if simpleKey(key) {
		return "." + key
	}
	return "[" + strconv.Quote(key) + "]"
}

func simpleKey(key string) bool {
	if key == "" {
		return false
	}
	for _, r := range key {
		if !(r == '_' || r == '-' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): `)

// yamlErrorLine extracts the line number from a YAML syntax error.
func yamlErrorLine(err error) int {
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n
	}
	return 0
}

// syntaxErrorLine finds the line a syntax error is really on. The parser
// names the line where the construct it was reading began (a list that
// starts on line 1 for a key misindented on line 4); the line sought is
// the last one that turns a prefix of the file that parses into one that
// does not. 0 when no such line exists.
func syntaxErrorLine(data []byte) int {
	lines := strings.SplitAfter(string(data), "\n")
	parses := func(k int) bool {
		var n yaml.Node
		return yaml.Unmarshal([]byte(strings.Join(lines[:k], "")), &n) == nil
	}
	for k := len(lines); k > 0; k-- {
		if !parses(k) && parses(k-1) {
			return k
		}
	}
	return 0
}

// yamlErrorText drops the "yaml: line N:" prefix, which the position
// already says.
func yamlErrorText(err error) string {
	s := yamlLine.ReplaceAllString(err.Error(), "")
	return strings.TrimPrefix(s, "yaml: ")
}

// suggest returns the name in known closest to s, if it is close enough to
// be a likely misspelling.
func suggest(known []string, s string) string {
	best, bestDist := "", len(s)/3+1
	if bestDist > 3 {
		bestDist = 3
	}
	for _, k := range known {
		if d := editDistance(strings.ToLower(s), strings.ToLower(k)); d <= bestDist && (best == "" || d < editDistance(strings.ToLower(s), strings.ToLower(best))) {
			best = k
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
