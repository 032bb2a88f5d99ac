package runner

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
)

// ModuleConfigProvider is the engine's config.provider module type, which
// eventbus run implements itself (engine-pipelines.md §1.7): its registry
// replaces {{config "key"}} in every other config string at load time and
// answers the config template function.
const ModuleConfigProvider = "config.provider"

// configRef matches {{config "key"}} (or 'key') as the load-time pass
// replaces it.
var configRef = regexp.MustCompile(`\{\{\s*config\s+(?:"([^"]*)"|'([^']*)')\s*\}\}`)

// configLookup returns the config function's lookup: nil when the app
// has no config.provider module.
func (c *Config) configLookup() func(string) (string, bool) {
	if c.configValues == nil {
		return nil
	}
	values := c.configValues
	return func(k string) (string, bool) {
		v, ok := values[k]
		return v, ok
	}
}

// applyConfigProvider builds the registry of the config.provider modules
// and replaces {{config "key"}} in the other modules' configs, the
// pipelines and the top-level triggers.
func (p *parser) applyConfigProvider(cfg *Config) {
	var values map[string]string
	for i := range cfg.Modules {
		m := &cfg.Modules[i]
		if m.Type != ModuleConfigProvider {
			continue
		}
		if values == nil {
			values = map[string]string{}
		}
		if err := readConfigProvider(m.Config, p.env, values); err != nil {
			p.problems.add(m.Pos, srcPath(m.src, fmt.Sprintf("modules[%d]", i))+".config", ErrInvalidValue, "%v", err)
		}
	}
	if values == nil {
		return
	}
	cfg.configValues = values
	replace := func(s string) string {
		return configRef.ReplaceAllStringFunc(s, func(ref string) string {
			m := configRef.FindStringSubmatch(ref)
			key := m[1] + m[2]
			if v, ok := values[key]; ok {
				return v
			}
			return ref
		})
	}
	walk := func(m map[string]any) map[string]any {
		out, _ := walkStrings(m, replace).(map[string]any)
		return out
	}
	for i := range cfg.Modules {
		if cfg.Modules[i].Type != ModuleConfigProvider {
			cfg.Modules[i].Config = walk(cfg.Modules[i].Config)
		}
	}
	for i := range cfg.Triggers {
		cfg.Triggers[i].Config = walk(cfg.Triggers[i].Config)
	}
	for i := range cfg.Pipelines {
		pl := &cfg.Pipelines[i]
		if pl.Trigger != nil {
			pl.Trigger.Config = walk(pl.Trigger.Config)
		}
		for _, steps := range [][]Step{pl.Steps, pl.Compensation} {
			for j := range steps {
				s := &steps[j]
				s.Config = walk(s.Config)
				s.If, s.SkipIf = replace(s.If), replace(s.SkipIf)
			}
		}
	}
}

// readConfigProvider applies one config.provider's sources, in order, to
// its schema: defaults sets every non-empty default, env reads
// <prefix><env> for every key that names an env variable.
func readConfigProvider(c map[string]any, lookup LookupEnv, values map[string]string) error {
	schema, ok := c["schema"].(map[string]any)
	if !ok {
		return fmt.Errorf("config.provider: 'schema' is required")
	}
	sources, ok := c["sources"].([]any)
	if !ok {
		return fmt.Errorf("config.provider: 'sources' is required")
	}
	for _, src := range sources {
		sm, _ := src.(map[string]any)
		switch typ, _ := sm["type"].(string); typ {
		case "defaults":
			for k, e := range schema {
				em, _ := e.(map[string]any)
				if d, ok := em["default"]; ok && d != nil && fmt.Sprint(d) != "" {
					values[k] = fmt.Sprint(d)
				}
			}
		case "env":
			prefix, _ := sm["prefix"].(string)
			for k, e := range schema {
				em, _ := e.(map[string]any)
				name, _ := em["env"].(string)
				if name == "" || lookup == nil {
					continue
				}
				if v, ok := lookup(prefix + name); ok {
					values[k] = v
				}
			}
		default:
			return fmt.Errorf("config.provider: unknown source type %q (expected defaults or env)", typ)
		}
	}
	var missing []string
	for k, e := range schema {
		em, _ := e.(map[string]any)
		if req, _ := em["required"].(bool); req {
			if _, ok := values[k]; !ok {
				missing = append(missing, k)
			}
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return fmt.Errorf("missing required config keys: %s", strings.Join(missing, ", "))
	}
	return nil
}

// walkStrings returns a copy of v with f applied to every string.
func walkStrings(v any, f func(string) string) any {
	switch v := v.(type) {
	case string:
		return f(v)
	case map[string]any:
		out := make(map[string]any, len(v))
		for _, k := range slices.Sorted(maps.Keys(v)) {
			out[k] = walkStrings(v[k], f)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = walkStrings(e, f)
		}
		return out
	}
	return v
}
