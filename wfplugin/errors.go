package wfplugin

import (
	"errors"
	"fmt"
	"strings"
)

// Errors of both halves of the protocol, wrapped with context; match them
// with errors.Is.
var (
	// ErrInvalidManifest: the plugin's manifest breaks the engine's rules
	// (name, strict semver version, author, description). The engine refuses
	// such a plugin; fix the manifest.
	ErrInvalidManifest = errors.New("invalid plugin manifest")

	// ErrInvalidContracts: the plugin's contract registry cannot be resolved,
	// usually because its FileDescriptorSet lacks an imported file or names a
	// message it does not declare. Ship every file and its imports.
	ErrInvalidContracts = errors.New("invalid contract registry")

	// ErrNotJSONShaped: a value cannot travel in a google.protobuf.Struct.
	// Only string, numbers, bool, nil, []any and map[string]any can; convert
	// typed maps and slices, and encode binary data as base64 strings.
	ErrNotJSONShaped = errors.New("value is not JSON-shaped")

	// ErrEncode: a map does not encode as a contract's protobuf message (an
	// unknown field, a wrong value type, or no message name). The wrapping
	// *EncodeError names the message and the field.
	ErrEncode = errors.New("cannot encode typed payload")

	// ErrDecode: a typed payload from the other side does not decode as the
	// message its contract names.
	ErrDecode = errors.New("cannot decode typed payload")

	// ErrRemote: the other side answered with an application error (a
	// non-empty error field). The wrapping *RemoteError carries its text.
	ErrRemote = errors.New("remote error")

	// ErrWorkflowFailed: the host ran TriggerWorkflow and the workflow failed
	// or has no handler. The message was delivered; the work was not done.
	ErrWorkflowFailed = errors.New("workflow failed")

	// ErrNoCallback: the host never configured its callback channel, so a
	// trigger cannot fire workflows. It happens with hosts that serve no
	// callbacks, or when the plugin declares no trigger types.
	ErrNoCallback = errors.New("no callback channel to the host")

	// ErrUnknownHandle: a handle was not created by this plugin process (or
	// was destroyed).
	ErrUnknownHandle = errors.New("unknown handle")

	// ErrUnknownType: a module, step or trigger type that the plugin does
	// not declare.
	ErrUnknownType = errors.New("unknown type")

	// ErrUnstableTypes: the plugin answered the same type-list RPC
	// differently during one load; the engine requires stable answers.
	ErrUnstableTypes = errors.New("type lists are not deterministic")

	// ErrLaunch: the plugin process could not be started or did not
	// complete the go-plugin handshake.
	ErrLaunch = errors.New("cannot launch plugin")

	// ErrPluginExited: the plugin process exited while the host still used
	// it. The wrapping *ExitError carries the last lines of its stderr.
	ErrPluginExited = errors.New("plugin process exited")

	// ErrClosed: the client was closed.
	ErrClosed = errors.New("plugin client closed")

	// ErrPanic: plugin code panicked while serving an RPC; the panic was
	// recovered and answered as an application error.
	ErrPanic = errors.New("plugin code panicked")

	// ErrInvalidArgument: an argument of a call is invalid; the message
	// names it.
	ErrInvalidArgument = errors.New("invalid argument")

	// ErrInvalidOption: an option passed to Serve or Launch is invalid; the
	// message names the option.
	ErrInvalidOption = errors.New("invalid option")
)

// EncodeError reports why a map does not encode as a protobuf message.
type EncodeError struct {
	// Message is the full name of the target message ("" when none was
	// named).
	Message string
	// Field is the top-level key that failed, when one can be singled out.
	Field string
	// Reason is the underlying explanation.
	Reason string
}

func (e *EncodeError) Error() string {
	var b strings.Builder
	b.WriteString("wfplugin: encode ")
	if e.Message == "" {
		b.WriteString(`message ""`)
	} else {
		b.WriteString(e.Message)
	}
	if e.Field != "" {
		fmt.Fprintf(&b, ": field %q", e.Field)
	}
	b.WriteString(": ")
	b.WriteString(e.Reason)
	return b.String()
}

// Unwrap makes errors.Is(err, ErrEncode) true.
func (e *EncodeError) Unwrap() error { return ErrEncode }

// RemoteError is an application error answered in a response's error field.
type RemoteError struct {
	// Op is the RPC that failed, for example "ExecuteStep".
	Op string
	// Message is the text of the error field.
	Message string
	// Detail is the plugin's own words: Message without the name of the
	// instance that a plugin served by this package puts in front of an
	// error of CreateModule, CreateStep or CreateTrigger for the engine
	// (`create module "orders" (eventbus.stream): `), which a host that
	// names the instance itself need not repeat. It is Message when there
	// is no such prefix.
	Detail string
	// kind is the sentinel the error matches besides ErrRemote.
	kind error
}

// Prefixes a served plugin puts in front of the error of a create call,
// naming the instance for the engine, whose own error names only the type.
func createModulePrefix(name, typ string) string {
	return fmt.Sprintf("create module %q (%s): ", name, typ)
}

func createStepPrefix(name, typ string) string {
	return fmt.Sprintf("create step %q (%s): ", name, typ)
}

func createTriggerPrefix(typ, workflowType string) string {
	return fmt.Sprintf("create trigger %s for %q: ", typ, workflowType)
}

// remoteError is the error of a response's error field msg for op; prefix
// is what the serving side puts in front of it, "" for none.
func remoteError(op, msg, prefix string) *RemoteError {
	detail := msg
	if prefix != "" {
		if d, ok := strings.CutPrefix(msg, prefix); ok {
			detail = d
		}
	}
	return &RemoteError{Op: op, Message: msg, Detail: detail}
}

func (e *RemoteError) Error() string {
	return fmt.Sprintf("wfplugin: %s: %s", e.Op, e.Message)
}

// Unwrap makes errors.Is match ErrRemote and, for TriggerWorkflow,
// ErrWorkflowFailed.
func (e *RemoteError) Unwrap() []error {
	if e.kind != nil {
		return []error{ErrRemote, e.kind}
	}
	return []error{ErrRemote}
}

// ExitError reports a plugin process that exited on its own.
type ExitError struct {
	// Plugin names the plugin (the executable's base name).
	Plugin string
	// Status is the process's exit status, for example "exit status 3".
	Status string
	// Stderr holds the last lines the plugin wrote to its stderr, oldest
	// first.
	Stderr []string
}

func (e *ExitError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "wfplugin: plugin %s exited", e.Plugin)
	if e.Status != "" {
		fmt.Fprintf(&b, " (%s)", e.Status)
	}
	if len(e.Stderr) == 0 {
		b.WriteString("; it wrote nothing to stderr")
		return b.String()
	}
	b.WriteString("; last stderr lines:")
	for _, l := range e.Stderr {
		b.WriteString("\n  ")
		b.WriteString(l)
	}
	return b.String()
}

// Unwrap makes errors.Is(err, ErrPluginExited) true.
func (e *ExitError) Unwrap() error { return ErrPluginExited }
