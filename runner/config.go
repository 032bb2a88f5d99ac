package runner

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is an app config in the workflow engine's shape. Load and Parse
// fill it from YAML and remember where each value was written, so that
// Validate can name file and line; a Config built in code validates too,
// without positions.
type Config struct {
	// File is the name problems are reported under, usually the path the
	// user gave.
	File string
	// Dir is the absolute directory of the config file, passed to modules
	// and steps as _config_dir as the engine does; "" when unknown.
	Dir string
	// Modules in declaration order.
	Modules []Module
	// Pipelines in declaration order.
	Pipelines []Pipeline
	// Triggers is the top-level triggers section, in declaration order.
	Triggers []Trigger
	// Warnings are what Parse, Check and Validate found that the engine
	// accepts but that is likely a mistake (a key the engine ignores, a
	// step-level on_error it ignores, a ${VAR} left unexpanded). They do
	// not stop an app; New logs them.
	Warnings []*Problem

	// lookupEnv is the environment the config was read with.
	lookupEnv LookupEnv
	// configValues is the config.provider registry; nil without one.
	configValues map[string]string
}

// Module is one entry of modules.
type Module struct {
	Name      string
	Type      string
	Config    map[string]any
	DependsOn []string

	// Pos is where the entry starts.
	Pos Pos
	src *mapSrc
	// unresolved are the ${...} references of Config that the engine's
	// rules left as written.
	unresolved []unresolvedRef
}

// Pipeline is one entry of pipelines.
type Pipeline struct {
	Name string
	// Trigger is nil when the pipeline has none: the engine accepts such
	// pipelines, and so does the runner, though nothing can fire them.
	Trigger *PipelineTrigger
	Steps   []Step
	// Compensation steps run in reverse order when a step fails and
	// OnError is "compensate".
	Compensation []Step
	// OnError is "skip" or "compensate"; anything else (empty, "stop", a
	// typo) stops the run at the first failing step, as in the engine.
	OnError string
	// Timeout bounds a run; zero means no bound.
	Timeout time.Duration
	// StrictTemplates makes a template that reads a missing key fail the
	// step instead of rendering "<no value>".
	StrictTemplates bool

	Pos Pos
	src *mapSrc
}

// PipelineTrigger is a pipeline's trigger.
type PipelineTrigger struct {
	Type   string
	Config map[string]any

	Pos Pos
	src *mapSrc
}

// Step is one step of a pipeline.
type Step struct {
	Name   string
	Type   string
	Config map[string]any
	// If, when set, is a template: the step runs only when it renders
	// truthy (anything but "", "false" and "0" once trimmed) and without
	// error.
	If string
	// SkipIf, when set, is a template evaluated before If: the step is
	// skipped when it renders truthy; an error counts as false.
	SkipIf string
	// ErrorStatus is error_status: the HTTP status of a failure, which
	// changes nothing for pipelines run by triggers.
	ErrorStatus int

	Pos Pos
	src *mapSrc
}

// Trigger is an entry of the top-level triggers section: the engine
// creates it with the name of its workflowType key (or its type when that
// key is absent).
type Trigger struct {
	Type   string
	Config map[string]any

	Pos Pos
	src *mapSrc
}

// mapSrc keeps the YAML of a config entry: its path, its mapping node and
// its config node, so problems can name lines inside the config.
type mapSrc struct {
	path   string
	node   *yaml.Node
	config *yaml.Node
}

// LookupEnv reports the value of an environment variable and whether it is
// set, like os.LookupEnv.
type LookupEnv func(key string) (string, bool)

// Load reads and parses the app config at path; see Parse. Dir is set to
// the file's absolute directory.
func Load(path string, lookupEnv LookupEnv) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("runner: read app config: %w", err)
	}
	cfg, err := Parse(path, data, lookupEnv)
	if err != nil {
		return nil, err
	}
	if abs, err := filepath.Abs(path); err == nil {
		cfg.Dir = filepath.Dir(abs)
	}
	return cfg, nil
}

// Parse reads an app config from YAML as the engine does. file names it
// in problems. In module configs only, ${NAME} and ${env:NAME} are
// replaced from lookupEnv (nil: no variable is set) with the engine's
// rules (engine-pipelines.md §1.7): the name is upper-cased and "." read
// as "_"; a string with any reference that does not resolve is kept as
// written. Every problem of shape (syntax, wrong kinds, duplicate keys,
// malformed durations) is reported at once in a *ConfigError; what the
// engine accepts but is likely a mistake goes to Config.Warnings. Parse
// does not know the plugin's types; Validate checks those.
func Parse(file string, data []byte, lookupEnv LookupEnv) (*Config, error) {
	cfg, p, _ := parseConfig(file, data, lookupEnv)
	if err := p.problems.err(); err != nil {
		return nil, err
	}
	cfg.Warnings = p.warnings.sorted()
	return cfg, nil
}

// Check is Parse and Validate in one pass: it reports the problems of
// shape and those against the catalog together, so a user sees every
// problem of the file at once. A problem of shape hides what Validate
// would report about the same field. The Config is returned only when
// there is no problem.
func Check(file string, data []byte, lookupEnv LookupEnv, cat Catalog) (*Config, error) {
	cfg, p, ok := parseConfig(file, data, lookupEnv)
	if !ok {
		return nil, p.problems.err()
	}
	var ce *ConfigError
	if err := Validate(cfg, cat); errors.As(err, &ce) {
		for _, vp := range ce.Problems {
			if !p.problems.covers(vp.Field) {
				p.problems.list = append(p.problems.list, vp)
			}
		}
	}
	if err := p.problems.err(); err != nil {
		return nil, err
	}
	p.warnings.list = append(p.warnings.list, cfg.Warnings...)
	cfg.Warnings = p.warnings.sorted()
	return cfg, nil
}

// CheckFile reads the app config at path and checks it; see Check. Dir is
// set to the file's absolute directory.
func CheckFile(path string, lookupEnv LookupEnv, cat Catalog) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("runner: read app config: %w", err)
	}
	cfg, err := Check(path, data, lookupEnv, cat)
	if err != nil {
		return nil, err
	}
	if abs, err := filepath.Abs(path); err == nil {
		cfg.Dir = filepath.Dir(abs)
	}
	return cfg, nil
}

// parseConfig reads what it can of an app config. ok is false when nothing
// useful could be read (a syntax error, a document that is no mapping).
func parseConfig(file string, data []byte, lookupEnv LookupEnv) (cfg *Config, p *parser, ok bool) {
	p = &parser{file: file, env: lookupEnv}
	cfg = &Config{File: file, lookupEnv: lookupEnv}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		line, msg := yamlErrorLine(err), "invalid YAML: "+yamlErrorText(err)
		if real := syntaxErrorLine(data); real > 0 && real != line {
			if line > 0 {
				msg += fmt.Sprintf(" (the YAML parser reports line %d, where the enclosing block starts)", line)
			}
			line = real
		}
		p.problems.add(Pos{File: file, Line: line}, "", ErrSyntax, "%s", msg)
		return nil, p, false
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return cfg, p, true
	}
	root := deref(doc.Content[0])
	if root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" {
		return cfg, p, true
	}
	if !p.expect(root, "", yaml.MappingNode) {
		return nil, p, false
	}
	for _, kv := range p.pairs(root, "") {
		key := kv.key.Value
		switch key {
		case "modules":
			cfg.Modules = p.modules(kv.value)
		case "pipelines":
			cfg.Pipelines = p.pipelines(kv.value)
		case "triggers":
			cfg.Triggers = p.triggers(kv.value)
		case "imports":
			p.problems.add(p.pos(kv.key), key, ErrUnsupported, "imports are not supported by eventbus run; put every module and pipeline in one file")
		default:
			// The engine ignores keys it does not know; a key that looks
			// like a misspelt section gets a warning.
			known := []string{"modules", "pipelines", "triggers", "workflows"}
			if !ignoredTopLevel(key) && suggest(known, key) != "" {
				p.unknownKey(kv.key, "", known)
			}
		}
	}
	// The engine's order: {{config}} replacement first, then each
	// module's ${...} expansion.
	p.applyConfigProvider(cfg)
	for i := range cfg.Modules {
		m := &cfg.Modules[i]
		m.Config, m.unresolved = expandModuleConfig(m.Config, p.env)
	}
	return cfg, p, true
}

// ignoredTopLevel reports whether key is a section of the engine's app
// config that the runner accepts and ignores: none of them changes how
// eventbus pipelines run.
func ignoredTopLevel(key string) bool {
	switch key {
	case "workflows", "platform", "requires", "plugins", "sidecars", "infrastructure",
		"engine", "ci", "environments", "secrets", "infra", "secretStores",
		"services", "mesh", "networking", "security":
		return true
	}
	return false
}

func (p *parser) modules(n *yaml.Node) []Module {
	n = deref(n)
	if isNull(n) || !p.expect(n, "modules", yaml.SequenceNode) {
		return nil
	}
	out := make([]Module, 0, len(n.Content))
	for i, item := range n.Content {
		path := fmt.Sprintf("modules[%d]", i)
		item = deref(item)
		if !p.expect(item, path, yaml.MappingNode) {
			continue
		}
		m := Module{Pos: p.pos(item), src: &mapSrc{path: path, node: item}}
		for _, kv := range p.pairs(item, path) {
			field := path + "." + kv.key.Value
			switch kv.key.Value {
			case "name":
				m.Name = p.str(kv.value, field)
			case "type":
				m.Type = p.str(kv.value, field)
			case "config":
				m.Config = p.configMap(kv.value, field)
				m.src.config = deref(kv.value)
			case "dependsOn":
				m.DependsOn = p.strList(kv.value, field)
			case "branches", "environments", "satisfies", "protected":
			default:
				p.unknownKey(kv.key, path, []string{"name", "type", "config", "dependsOn"})
			}
		}
		out = append(out, m)
	}
	return out
}

func (p *parser) pipelines(n *yaml.Node) []Pipeline {
	n = deref(n)
	if isNull(n) || !p.expect(n, "pipelines", yaml.MappingNode) {
		return nil
	}
	var out []Pipeline
	for _, kv := range p.pairs(n, "pipelines") {
		name := kv.key.Value
		path := "pipelines" + pathKey(name)
		body := deref(kv.value)
		pl := Pipeline{Name: name, Pos: p.pos(kv.key), src: &mapSrc{path: path, node: body}}
		if isNull(body) {
			out = append(out, pl)
			continue
		}
		if !p.expect(body, path, yaml.MappingNode) {
			continue
		}
		for _, f := range p.pairs(body, path) {
			field := path + "." + f.key.Value
			switch f.key.Value {
			case "trigger":
				pl.Trigger = p.pipelineTrigger(f.value, field)
			case "steps":
				pl.Steps = p.steps(f.value, field)
			case "compensation":
				pl.Compensation = p.steps(f.value, field)
			case "on_error":
				pl.OnError = p.str(f.value, field)
				if pl.OnError != "" && pl.OnError != "stop" && pl.OnError != "skip" && pl.OnError != "compensate" {
					p.warnings.add(p.pos(f.value), field, ErrInvalidValue, "%q is not an error policy, so the engine stops at the first failing step; write stop, skip or compensate", pl.OnError)
				}
			case "timeout":
				pl.Timeout = p.timeout(f.value, field)
			case "strict_templates":
				pl.StrictTemplates = p.boolean(f.value, field)
			case "outputs", "description":
			default:
				p.unknownKey(f.key, path, []string{"trigger", "steps", "compensation", "on_error", "timeout", "strict_templates", "outputs"})
			}
		}
		for i := range pl.Steps {
			roundTrip(pl.Steps[i].Config)
		}
		for i := range pl.Compensation {
			roundTrip(pl.Compensation[i].Config)
		}
		if pl.Trigger != nil {
			roundTrip(pl.Trigger.Config)
		}
		out = append(out, pl)
	}
	return out
}

func (p *parser) pipelineTrigger(n *yaml.Node, path string) *PipelineTrigger {
	n = deref(n)
	if isNull(n) || !p.expect(n, path, yaml.MappingNode) {
		return nil
	}
	t := &PipelineTrigger{Pos: p.pos(n), src: &mapSrc{path: path, node: n}}
	for _, kv := range p.pairs(n, path) {
		field := path + "." + kv.key.Value
		switch kv.key.Value {
		case "type":
			t.Type = p.str(kv.value, field)
		case "config":
			t.Config = p.configMap(kv.value, field)
			t.src.config = deref(kv.value)
		default:
			p.unknownKey(kv.key, path, []string{"type", "config"})
		}
	}
	return t
}

func (p *parser) steps(n *yaml.Node, path string) []Step {
	n = deref(n)
	if isNull(n) || !p.expect(n, path, yaml.SequenceNode) {
		return nil
	}
	out := make([]Step, 0, len(n.Content))
	for i, item := range n.Content {
		spath := fmt.Sprintf("%s[%d]", path, i)
		item = deref(item)
		if !p.expect(item, spath, yaml.MappingNode) {
			continue
		}
		s := Step{Pos: p.pos(item), src: &mapSrc{path: spath, node: item}}
		for _, kv := range p.pairs(item, spath) {
			field := spath + "." + kv.key.Value
			switch kv.key.Value {
			case "name":
				s.Name = p.str(kv.value, field)
			case "type":
				s.Type = p.str(kv.value, field)
			case "config":
				s.Config = p.configMap(kv.value, field)
				s.src.config = deref(kv.value)
			case "if":
				s.If = p.str(kv.value, field)
			case "skip_if":
				s.SkipIf = p.str(kv.value, field)
			case "on_error", "timeout":
				p.str(kv.value, field)
				p.warnings.add(p.pos(kv.key), field, ErrUnsupported, "the engine ignores a step's %s; set it on the pipeline", kv.key.Value)
			case "error_status":
				s.ErrorStatus = p.integer(kv.value, field)
			case "description":
			default:
				p.unknownKey(kv.key, spath, []string{"name", "type", "config", "if", "skip_if", "error_status"})
			}
		}
		out = append(out, s)
	}
	return out
}

func (p *parser) triggers(n *yaml.Node) []Trigger {
	n = deref(n)
	if isNull(n) || !p.expect(n, "triggers", yaml.MappingNode) {
		return nil
	}
	var out []Trigger
	for _, kv := range p.pairs(n, "triggers") {
		path := "triggers" + pathKey(kv.key.Value)
		t := Trigger{Type: kv.key.Value, Pos: p.pos(kv.key), src: &mapSrc{path: path, node: deref(kv.value), config: deref(kv.value)}}
		t.Config = p.configMap(kv.value, path)
		out = append(out, t)
	}
	return out
}

// timeout reads a pipeline timeout as the engine does: a Go duration,
// whose parse error fails the build; zero or negative means none.
func (p *parser) timeout(n *yaml.Node, field string) time.Duration {
	s := p.str(n, field)
	if s == "" {
		return 0
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		p.problems.add(p.pos(n), field, ErrInvalidValue, "invalid timeout %q: %v", s, err)
		return 0
	}
	return d
}

// integer reads a typed int field: a quoted number is not one.
func (p *parser) integer(n *yaml.Node, field string) int {
	n = deref(n)
	if isNull(n) {
		return 0
	}
	var i int
	if n.Kind != yaml.ScalarNode || n.Decode(&i) != nil {
		p.problems.add(p.pos(n), field, ErrWrongType, "want an integer, got %s", describeNode(n))
		return 0
	}
	return i
}

func (p *parser) boolean(n *yaml.Node, field string) bool {
	n = deref(n)
	if isNull(n) {
		return false
	}
	var b bool
	if n.Kind != yaml.ScalarNode || n.Decode(&b) != nil {
		p.problems.add(p.pos(n), field, ErrWrongType, "want true or false, got %s", describeNode(n))
		return false
	}
	return b
}
