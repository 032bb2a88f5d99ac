package wfplugin

import (
	"errors"
	"fmt"
	"slices"

	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"

	pluginv1 "github.com/wfeventbus/eventbus/gen/workflow/plugin/v1"
)

// Registry is a parsed contract registry: the plugin's typed contracts and
// a private type registry built from its FileDescriptorSet, as the engine
// builds it. Message lookups try the plugin's set first and then the
// process's global registry, so well-known types such as
// google.protobuf.Empty resolve too. A Registry is immutable and safe for
// concurrent use.
type Registry struct {
	raw       *pluginv1.ContractRegistry
	files     *protoregistry.Files
	types     *dynamicpb.Types
	contracts map[contractKey]*pluginv1.ContractDescriptor
}

type contractKey struct {
	kind pluginv1.ContractKind
	name string
}

// NewRegistry parses a contract registry. A nil or empty registry yields a
// Registry without contracts (every payload is a Struct). The error wraps
// ErrInvalidContracts when the FileDescriptorSet does not resolve on its own
// (a missing import, a duplicate file) or when a typed contract names a
// message that resolves nowhere.
func NewRegistry(cr *pluginv1.ContractRegistry) (*Registry, error) {
	r := &Registry{
		raw:       cr,
		files:     new(protoregistry.Files),
		contracts: make(map[contractKey]*pluginv1.ContractDescriptor),
	}
	if set := cr.GetFileDescriptorSet(); len(set.GetFile()) > 0 {
		files, err := protodesc.NewFiles(set)
		if err != nil {
			return nil, fmt.Errorf("%w: file_descriptor_set: %w", ErrInvalidContracts, err)
		}
		r.files = files
	}
	r.types = dynamicpb.NewTypes(r.files)

	var errs []error
	for i, c := range cr.GetContracts() {
		key, ok := keyOf(c)
		if !ok {
			continue
		}
		r.contracts[key] = c
		if !typedMode(c.GetMode()) {
			continue
		}
		for _, name := range []string{c.GetConfigMessage(), c.GetInputMessage(), c.GetOutputMessage()} {
			if name == "" {
				continue
			}
			if _, err := r.FindMessage(name); err != nil {
				errs = append(errs, fmt.Errorf("contracts[%d] (%s %q): %w", i, c.GetKind(), key.name, err))
			}
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: %w", ErrInvalidContracts, errors.Join(errs...))
	}
	return r, nil
}

// keyOf returns the lookup key of a contract: its type for modules, steps
// and triggers, "service/method" for services and the contract type for
// message contracts.
func keyOf(c *pluginv1.ContractDescriptor) (contractKey, bool) {
	var name string
	switch c.GetKind() {
	case pluginv1.ContractKind_CONTRACT_KIND_MODULE:
		name = c.GetModuleType()
	case pluginv1.ContractKind_CONTRACT_KIND_STEP:
		name = c.GetStepType()
	case pluginv1.ContractKind_CONTRACT_KIND_TRIGGER:
		name = c.GetTriggerType()
	case pluginv1.ContractKind_CONTRACT_KIND_SERVICE:
		name = c.GetServiceName() + "/" + c.GetMethod()
	case pluginv1.ContractKind_CONTRACT_KIND_MESSAGE:
		name = c.GetContractType()
	default:
		return contractKey{}, false
	}
	return contractKey{kind: c.GetKind(), name: name}, name != ""
}

func typedMode(m pluginv1.ContractMode) bool {
	return m == pluginv1.ContractMode_CONTRACT_MODE_PROTO_WITH_LEGACY_STRUCT ||
		m == pluginv1.ContractMode_CONTRACT_MODE_STRICT_PROTO
}

// Contract returns the contract of a module, step or trigger type (for
// services, name is "service/method"). The descriptor must not be modified.
func (r *Registry) Contract(kind pluginv1.ContractKind, name string) (*pluginv1.ContractDescriptor, bool) {
	c, ok := r.contracts[contractKey{kind: kind, name: name}]
	return c, ok
}

// Contracts returns every contract in the registry's order. The descriptors
// must not be modified.
func (r *Registry) Contracts() []*pluginv1.ContractDescriptor {
	return slices.Clone(r.raw.GetContracts())
}

// Files returns the files of the plugin's FileDescriptorSet alone, without
// the global fallback.
func (r *Registry) Files() *protoregistry.Files { return r.files }

// FindMessage resolves a fully-qualified message name (no leading dot): in
// the plugin's set first, then in the global registry.
func (r *Registry) FindMessage(name string) (protoreflect.MessageType, error) {
	if name == "" {
		return nil, errors.New("missing protobuf message name")
	}
	fn := protoreflect.FullName(name)
	if mt, err := r.types.FindMessageByName(fn); err == nil {
		return mt, nil
	}
	if mt, err := protoregistry.GlobalTypes.FindMessageByName(fn); err == nil {
		return mt, nil
	}
	return nil, fmt.Errorf("message %q not found", name)
}

// FileDescriptorSet returns the given files and every file they import,
// transitively, each once and imports first: a set the engine can resolve
// on its own. Pass the File_… descriptors of the generated packages that
// declare the contract messages.
func FileDescriptorSet(files ...protoreflect.FileDescriptor) *descriptorpb.FileDescriptorSet {
	set := &descriptorpb.FileDescriptorSet{}
	seen := make(map[string]bool)
	var add func(fd protoreflect.FileDescriptor)
	add = func(fd protoreflect.FileDescriptor) {
		if seen[fd.Path()] {
			return
		}
		seen[fd.Path()] = true
		imports := fd.Imports()
		for i := range imports.Len() {
			add(imports.Get(i).FileDescriptor)
		}
		set.File = append(set.File, protodesc.ToFileDescriptorProto(fd))
	}
	for _, fd := range files {
		add(fd)
	}
	return set
}
