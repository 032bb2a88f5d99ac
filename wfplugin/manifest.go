package wfplugin

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"

	pluginv1 "github.com/wfeventbus/eventbus/gen/workflow/plugin/v1"
)

// Manifest describes a plugin to the host.
type Manifest struct {
	// Name: lowercase letters, digits and hyphens, starting with a letter
	// and not ending with a hyphen (for example "workflow-plugin-eventbus").
	Name string
	// Version: MAJOR.MINOR.PATCH with an optional leading "v"; pre-release
	// suffixes and "dev" are rejected by the engine.
	Version string
	// Author must not be empty.
	Author string
	// Description must not be empty.
	Description string
	// ConfigMutable lets tenants override the plugin's config fragment.
	ConfigMutable bool
	// SampleCategory, when set, marks a sample plugin.
	SampleCategory string
}

var (
	manifestName    = regexp.MustCompile(`^(?:[a-z]|[a-z][a-z0-9-]*[a-z0-9])$`)
	manifestVersion = regexp.MustCompile(`^v?[0-9]+\.[0-9]+\.[0-9]+$`)
)

// ValidateManifest applies the engine's manifest rules. The error wraps
// ErrInvalidManifest and names the field.
func ValidateManifest(m Manifest) error {
	var errs []error
	if !manifestName.MatchString(m.Name) {
		errs = append(errs, fmt.Errorf("invalid name %q: expected lowercase letters, digits and hyphens, starting with a letter and not ending with a hyphen", m.Name))
	}
	if !manifestVersion.MatchString(m.Version) {
		errs = append(errs, fmt.Errorf("invalid version %q: expected major.minor.patch", m.Version))
	}
	if strings.TrimSpace(m.Author) == "" {
		errs = append(errs, errors.New("author is required"))
	}
	if strings.TrimSpace(m.Description) == "" {
		errs = append(errs, errors.New("description is required"))
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: manifest: %w", ErrInvalidManifest, errors.Join(errs...))
}

func (m Manifest) toProto() *pluginv1.Manifest {
	return &pluginv1.Manifest{
		Name:           m.Name,
		Version:        m.Version,
		Author:         m.Author,
		Description:    m.Description,
		ConfigMutable:  m.ConfigMutable,
		SampleCategory: m.SampleCategory,
	}
}

func manifestFromProto(p *pluginv1.Manifest) Manifest {
	return Manifest{
		Name:           p.GetName(),
		Version:        p.GetVersion(),
		Author:         p.GetAuthor(),
		Description:    p.GetDescription(),
		ConfigMutable:  p.GetConfigMutable(),
		SampleCategory: p.GetSampleCategory(),
	}
}

// manifestFile is the part of plugin.json the host reads; other keys are
// ignored.
type manifestFile struct {
	Name           string          `json:"name"`
	Version        string          `json:"version"`
	Author         string          `json:"author"`
	Description    string          `json:"description"`
	ConfigMutable  bool            `json:"configMutable"`
	SampleCategory string          `json:"sampleCategory"`
	Capabilities   json.RawMessage `json:"capabilities"`
}

// readManifestFile reads and validates a plugin.json. found is false when
// the file does not exist.
func readManifestFile(path string) (m Manifest, found bool, err error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return Manifest{}, false, nil
	}
	if err != nil {
		return Manifest{}, true, fmt.Errorf("%w: %w", ErrInvalidManifest, err)
	}
	var f manifestFile
	if err := json.Unmarshal(data, &f); err != nil {
		return Manifest{}, true, fmt.Errorf("%w: %s: %w", ErrInvalidManifest, path, err)
	}
	// capabilities is either an array or the legacy object; the engine
	// skips a plugin whose capabilities have any other JSON type.
	if c := strings.TrimSpace(string(f.Capabilities)); c != "" && c != "null" && c[0] != '[' && c[0] != '{' {
		return Manifest{}, true, fmt.Errorf("%w: %s: capabilities must be an array or an object", ErrInvalidManifest, path)
	}
	m = Manifest{
		Name:           f.Name,
		Version:        f.Version,
		Author:         f.Author,
		Description:    f.Description,
		ConfigMutable:  f.ConfigMutable,
		SampleCategory: f.SampleCategory,
	}
	if err := ValidateManifest(m); err != nil {
		return Manifest{}, true, fmt.Errorf("%s: %w", path, err)
	}
	return m, true, nil
}
