package runner

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/wfeventbus/eventbus/wfplugin"
)

// messages builds empty messages of a plugin's contract types for
// checking configs. The plugin's files are rebuilt so that the
// google/protobuf files they import are this process's own: a field of a
// well-known type (Duration, Value, ...) then has the descriptor of the
// generated Go type, which the decoder fills directly.
type messages struct {
	reg   *wfplugin.Registry
	files *protoregistry.Files // nil when the rebuild failed
}

func newMessages(reg *wfplugin.Registry) *messages {
	m := &messages{reg: reg}
	if reg == nil || reg.Files() == nil {
		return m
	}
	protos := map[string]*descriptorpb.FileDescriptorProto{}
	reg.Files().RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		protos[fd.Path()] = protodesc.ToFileDescriptorProto(fd)
		return true
	})
	files := new(protoregistry.Files)
	var build func(path string, depth int) error
	build = func(path string, depth int) error {
		if _, err := files.FindFileByPath(path); err == nil || wellKnownFile(path) {
			return nil
		}
		fdp, ok := protos[path]
		if !ok {
			return fmt.Errorf("file %q is not in the set", path)
		}
		if depth > 100 {
			return fmt.Errorf("imports of %q nest too deeply", path)
		}
		for _, dep := range fdp.GetDependency() {
			if err := build(dep, depth+1); err != nil {
				return err
			}
		}
		fd, err := protodesc.NewFile(fdp, resolver{files})
		if err != nil {
			return err
		}
		return files.RegisterFile(fd)
	}
	for path := range protos {
		if err := build(path, 0); err != nil {
			return m
		}
	}
	m.files = files
	return m
}

// wellKnownFile reports whether path is a google/protobuf file this
// process has compiled in.
func wellKnownFile(path string) bool {
	if !strings.HasPrefix(path, "google/protobuf/") {
		return false
	}
	_, err := protoregistry.GlobalFiles.FindFileByPath(path)
	return err == nil
}

// resolver finds the rebuilt files first, then the process's own.
type resolver struct{ files *protoregistry.Files }

func (r resolver) FindFileByPath(path string) (protoreflect.FileDescriptor, error) {
	if wellKnownFile(path) {
		return protoregistry.GlobalFiles.FindFileByPath(path)
	}
	return r.files.FindFileByPath(path)
}

func (r resolver) FindDescriptorByName(name protoreflect.FullName) (protoreflect.Descriptor, error) {
	if d, err := r.files.FindDescriptorByName(name); err == nil {
		return d, nil
	}
	return protoregistry.GlobalFiles.FindDescriptorByName(name)
}

// newMessage returns an empty message of the named type.
func (m *messages) newMessage(name string) (proto.Message, error) {
	if m.files != nil {
		if d, err := m.files.FindDescriptorByName(protoreflect.FullName(name)); err == nil {
			if md, ok := d.(protoreflect.MessageDescriptor); ok {
				return dynamicpb.NewMessage(md), nil
			}
		}
	}
	if mt, err := protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName(name)); err == nil {
		return mt.New().Interface(), nil
	}
	if m.reg == nil {
		return nil, fmt.Errorf("message %q not found", name)
	}
	mt, err := m.reg.FindMessage(name)
	if err != nil {
		return nil, err
	}
	return mt.New().Interface(), nil
}
