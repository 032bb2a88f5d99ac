package deploy

import (
	"fmt"
	"os"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"

	eventbusv1 "github.com/wfeventbus/eventbus/gen/eventbus/v1"
	"github.com/wfeventbus/eventbus/internal/protomap"
)

// isBrokerType reports whether typ is the module type of a broker, the
// alias included.
func isBrokerType(typ string) bool {
	switch typ {
	case "eventbus.broker", "infra.eventbus":
		return true
	}
	return false
}

// App is an app YAML as deploy sees it: the file as written, which runs
// unchanged in the app's containers, and its broker modules.
type App struct {
	// File names the app in messages, usually the path the user gave.
	File string
	// Data is the YAML as written.
	Data []byte
	// Brokers are the app's broker modules in declaration order.
	Brokers []Broker
}

// Broker is one broker module of an app.
type Broker struct {
	// Module is the module's name.
	Module string
	// Line is where the module is declared.
	Line int
	// Config is the module's config.
	Config *eventbusv1.BrokerConfig
}

// LoadApp reads and parses the app YAML at path; see ParseApp.
func LoadApp(path string) (*App, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrApp, err)
	}
	return ParseApp(path, data)
}

// ParseApp reads the broker modules of an app YAML: the modules list and,
// of each eventbus.broker (or infra.eventbus) module, its name and config.
// The rest of the app is left to `eventbus run`, which checks it when the
// app starts. Errors wrap ErrApp and name the file and line.
func ParseApp(file string, data []byte) (*App, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%w: %s: invalid YAML: %v", ErrApp, file, err)
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%w: %s: not a mapping with a modules list", ErrApp, file)
	}
	app := &App{File: file, Data: data}
	modules := mapValue(doc.Content[0], "modules")
	if modules == nil || modules.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("%w: %s: no modules list", ErrApp, file)
	}
	for _, m := range modules.Content {
		if m.Kind != yaml.MappingNode {
			return nil, fmt.Errorf("%w: %s:%d: a module is a mapping with name, type and config", ErrApp, file, m.Line)
		}
		typ := scalar(mapValue(m, "type"))
		if !isBrokerType(typ) {
			continue
		}
		name := scalar(mapValue(m, "name"))
		if name == "" {
			return nil, fmt.Errorf("%w: %s:%d: module of type %s has no name", ErrApp, file, m.Line, typ)
		}
		cfg := &eventbusv1.BrokerConfig{}
		if node := mapValue(m, "config"); node != nil {
			var raw map[string]any
			if err := node.Decode(&raw); err != nil {
				return nil, fmt.Errorf("%w: %s:%d: module %s: config: %v", ErrApp, file, node.Line, name, err)
			}
			expandDefaults(raw)
			if err := protomap.Decode(raw, cfg); err != nil {
				return nil, fmt.Errorf("%w: %s:%d: module %s: %w", ErrApp, file, node.Line, name, err)
			}
		}
		app.Brokers = append(app.Brokers, Broker{Module: name, Line: m.Line, Config: cfg})
	}
	if len(app.Brokers) == 0 {
		return nil, fmt.Errorf("%w: %s: no eventbus.broker module: there is no broker to deploy", ErrApp, file)
	}
	return app, nil
}

// mapValue returns the value of key in the mapping m, or nil.
func mapValue(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// scalar returns the value of a scalar node, "" for anything else.
func scalar(n *yaml.Node) string {
	if n == nil || n.Kind != yaml.ScalarNode {
		return ""
	}
	return strings.TrimSpace(n.Value)
}

// envRef matches the environment references `eventbus run` replaces in
// string values: ${NAME} and ${NAME:-default}.
var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}`)

// expandDefaults replaces the environment references in the string values
// of v as `eventbus run` does where the variables are unset: by their
// default, or by nothing. The values deploy reads are those the app gets
// where its environment does not say otherwise.
func expandDefaults(v any) any {
	switch t := v.(type) {
	case string:
		return envRef.ReplaceAllString(t, "$2")
	case map[string]any:
		for k, e := range t {
			t[k] = expandDefaults(e)
		}
	case []any:
		for i, e := range t {
			t[i] = expandDefaults(e)
		}
	}
	return v
}

// urlEnvVar is the environment variable a broker module reads its URL from
// when its config names none: EVENTBUS_<NAME>_URI, the module name
// upper-cased with '-' and '.' as '_'.
func urlEnvVar(module string) string {
	n := strings.ToUpper(strings.NewReplacer("-", "_", ".", "_").Replace(module))
	return "EVENTBUS_" + n + "_URI"
}
