package pluginserver

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/wfeventbus/eventbus/eventbus"
	"github.com/wfeventbus/eventbus/internal/protomap"
)

// pluginJSON is plugin.json, the manifest the engine reads before it launches
// the binary.
type pluginJSON struct {
	Name         string   `json:"name"`
	Version      string   `json:"version"`
	Author       string   `json:"author"`
	Description  string   `json:"description"`
	License      string   `json:"license"`
	ModuleTypes  []string `json:"moduleTypes"`
	StepTypes    []string `json:"stepTypes"`
	TriggerTypes []string `json:"triggerTypes"`
}

// contractsJSON is plugin.contracts.json: every contract with the fields its
// config and input messages take, for editors and documentation.
type contractsJSON struct {
	Plugin    string         `json:"plugin"`
	Version   string         `json:"version"`
	Contracts []contractJSON `json:"contracts"`
}

type contractJSON struct {
	Kind          string           `json:"kind"`
	Type          string           `json:"type"`
	Mode          string           `json:"mode"`
	ConfigMessage string           `json:"config_message"`
	ConfigFields  []protomap.Field `json:"config_fields"`
	InputMessage  string           `json:"input_message,omitempty"`
	InputFields   []protomap.Field `json:"input_fields,omitempty"`
}

// WriteManifests writes plugin.json and plugin.contracts.json into the
// directory named by -dir (default ".").
func WriteManifests(args []string, version string) error {
	fs := flag.NewFlagSet("manifest", flag.ContinueOnError)
	dir := fs.String("dir", ".", "directory to write plugin.json and plugin.contracts.json into")
	if err := fs.Parse(args); err != nil {
		return err
	}
	m := Manifest(version)
	pj := pluginJSON{
		Name: m.Name, Version: m.Version, Author: m.Author, Description: m.Description, License: "MIT",
		ModuleTypes: eventbus.ModuleTypes(), StepTypes: eventbus.StepTypes(), TriggerTypes: eventbus.TriggerTypes(),
	}
	cj, err := contractsDoc(version)
	if err != nil {
		return err
	}
	if err := writeJSON(filepath.Join(*dir, "plugin.json"), pj); err != nil {
		return err
	}
	return writeJSON(filepath.Join(*dir, "plugin.contracts.json"), cj)
}

func contractsDoc(version string) (contractsJSON, error) {
	doc := contractsJSON{Plugin: Name, Version: version}
	for _, c := range Contracts().GetContracts() {
		e := contractJSON{
			Kind:          strings.ToLower(strings.TrimPrefix(c.GetKind().String(), "CONTRACT_KIND_")),
			Type:          c.GetModuleType() + c.GetStepType() + c.GetTriggerType(),
			Mode:          strings.ToLower(strings.TrimPrefix(c.GetMode().String(), "CONTRACT_MODE_")),
			ConfigMessage: c.GetConfigMessage(),
			InputMessage:  c.GetInputMessage(),
		}
		var err error
		if e.ConfigFields, err = messageFields(c.GetConfigMessage()); err != nil {
			return doc, err
		}
		if c.GetInputMessage() != "" {
			if e.InputFields, err = messageFields(c.GetInputMessage()); err != nil {
				return doc, err
			}
		}
		doc.Contracts = append(doc.Contracts, e)
	}
	return doc, nil
}

func messageFields(name string) ([]protomap.Field, error) {
	mt, err := protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName(name))
	if err != nil {
		return nil, fmt.Errorf("contract message %s: %w", name, err)
	}
	fields := protomap.Fields(mt.Descriptor())
	if fields == nil {
		fields = []protomap.Field{}
	}
	return fields, nil
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
