package pluginserver_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/wfeventbus/eventbus/eventbus"
	pluginv1 "github.com/wfeventbus/eventbus/gen/workflow/plugin/v1"
	"github.com/wfeventbus/eventbus/pluginserver"
	"github.com/wfeventbus/eventbus/wfplugin"
)

// strictSemver is the engine's manifest version rule: three dot-separated
// integers with an optional leading v, nothing else.
var strictSemver = regexp.MustCompile(`^v?[0-9]+\.[0-9]+\.[0-9]+$`)

// typeOf is the module, step or trigger type a contract describes.
func typeOf(c *pluginv1.ContractDescriptor) string {
	switch c.GetKind() {
	case pluginv1.ContractKind_CONTRACT_KIND_MODULE:
		return c.GetModuleType()
	case pluginv1.ContractKind_CONTRACT_KIND_STEP:
		return c.GetStepType()
	case pluginv1.ContractKind_CONTRACT_KIND_TRIGGER:
		return c.GetTriggerType()
	}
	return ""
}

// descriptorFiles parses a registry's FileDescriptorSet on its own, as the
// engine does, without the global registry, and checks no file is in it
// twice.
func descriptorFiles(t *testing.T, reg *pluginv1.ContractRegistry) *protoregistry.Files {
	t.Helper()
	seen := map[string]bool{}
	for _, f := range reg.GetFileDescriptorSet().GetFile() {
		if seen[f.GetName()] {
			t.Errorf("file %s is in the descriptor set twice", f.GetName())
		}
		seen[f.GetName()] = true
	}
	files, err := protodesc.NewFiles(reg.GetFileDescriptorSet())
	if err != nil {
		t.Fatalf("the descriptor set does not resolve on its own: %v", err)
	}
	return files
}

// checkContracts asserts the contract rules the engine depends on: every
// declared type has one contract of its kind, in mixed mode; every message a
// contract names is in files (the plugin's set alone); steps name both a
// config and an input message.
func checkContracts(t *testing.T, contracts []*pluginv1.ContractDescriptor, files *protoregistry.Files, modules, steps, triggers []string) {
	t.Helper()
	resolves := func(c *pluginv1.ContractDescriptor, role, name string) {
		t.Helper()
		if name == "" {
			t.Errorf("%s %s: no %s message", c.GetKind(), typeOf(c), role)
			return
		}
		d, err := files.FindDescriptorByName(protoreflect.FullName(name))
		if err != nil {
			t.Errorf("%s %s: %s message %s is not in the descriptor set: %v", c.GetKind(), typeOf(c), role, name, err)
			return
		}
		if _, ok := d.(protoreflect.MessageDescriptor); !ok {
			t.Errorf("%s %s: %s %s is a %T, not a message", c.GetKind(), typeOf(c), role, name, d)
		}
	}

	want := map[pluginv1.ContractKind][]string{
		pluginv1.ContractKind_CONTRACT_KIND_MODULE:  modules,
		pluginv1.ContractKind_CONTRACT_KIND_STEP:    steps,
		pluginv1.ContractKind_CONTRACT_KIND_TRIGGER: triggers,
	}
	got := map[pluginv1.ContractKind][]string{}
	for _, c := range contracts {
		typ := typeOf(c)
		if typ == "" {
			t.Errorf("contract of kind %s names no type: %v", c.GetKind(), c)
			continue
		}
		got[c.GetKind()] = append(got[c.GetKind()], typ)
		if c.GetMode() != pluginv1.ContractMode_CONTRACT_MODE_PROTO_WITH_LEGACY_STRUCT {
			t.Errorf("%s %s: mode %s, want PROTO_WITH_LEGACY_STRUCT", c.GetKind(), typ, c.GetMode())
		}
		resolves(c, "config", c.GetConfigMessage())
		if c.GetKind() == pluginv1.ContractKind_CONTRACT_KIND_STEP {
			resolves(c, "input", c.GetInputMessage())
		} else if c.GetInputMessage() != "" {
			resolves(c, "input", c.GetInputMessage())
		}
		if c.GetOutputMessage() != "" {
			resolves(c, "output", c.GetOutputMessage())
		}
	}
	for kind, types := range want {
		g := slices.Sorted(slices.Values(got[kind]))
		w := slices.Sorted(slices.Values(types))
		if !slices.Equal(g, w) {
			t.Errorf("%s contracts are for %v, want exactly one for each of %v", kind, g, w)
		}
	}
}

func TestContracts(t *testing.T) {
	t.Parallel()
	reg := pluginserver.Contracts()
	checkContracts(t, reg.GetContracts(), descriptorFiles(t, reg), eventbus.ModuleTypes(), eventbus.StepTypes(), eventbus.TriggerTypes())
}

func TestManifest(t *testing.T) {
	t.Parallel()
	for _, v := range []string{"0.1.0", "1.12.3", "v2.0.0"} {
		m := pluginserver.Manifest(v)
		if err := wfplugin.ValidateManifest(m); err != nil {
			t.Errorf("Manifest(%q): %v", v, err)
		}
	}
	for _, v := range []string{"dev", "(devel)", "1.2", "1.2.3-rc.1"} {
		if err := wfplugin.ValidateManifest(pluginserver.Manifest(v)); !errors.Is(err, wfplugin.ErrInvalidManifest) {
			t.Errorf("Manifest(%q) validates (%v); the engine rejects that version", v, err)
		}
	}
}

// TestContractsOverTheWire loads the built binary as the engine does and
// checks what it answers: manifest, type lists, contracts, the plugin.json
// its manifest command writes, and that the configs users write encode as
// the typed contract messages (otherwise the typed half of mixed mode would
// never be sent).
func TestContractsOverTheWire(t *testing.T) {
	t.Parallel()
	c := launch(t, nil)

	m := c.Manifest()
	if !strictSemver.MatchString(m.Version) {
		t.Errorf("manifest version %q is not strict semver", m.Version)
	}
	if err := wfplugin.ValidateManifest(m); err != nil {
		t.Errorf("manifest: %v", err)
	}
	if m.Name != pluginserver.Name {
		t.Errorf("manifest name %q, want %q", m.Name, pluginserver.Name)
	}

	for _, l := range []struct {
		what      string
		got, want []string
	}{
		{"module types", c.ModuleTypes(), eventbus.ModuleTypes()},
		{"step types", c.StepTypes(), eventbus.StepTypes()},
		{"trigger types", c.TriggerTypes(), eventbus.TriggerTypes()},
	} {
		if !slices.Equal(slices.Sorted(slices.Values(l.got)), slices.Sorted(slices.Values(l.want))) {
			t.Errorf("%s over the wire: %v, want %v", l.what, l.got, l.want)
		}
	}

	checkContracts(t, c.Contracts().Contracts(), c.Contracts().Files(), c.ModuleTypes(), c.StepTypes(), c.TriggerTypes())
	for _, want := range pluginserver.Contracts().GetContracts() {
		got, ok := c.Contract(want.GetKind(), typeOf(want))
		if !ok || !proto.Equal(got, want) {
			t.Errorf("contract of %s over the wire = %v, want %v", typeOf(want), got, want)
		}
	}
	if files := c.Contracts().Files(); files.NumFiles() != len(pluginserver.Contracts().GetFileDescriptorSet().GetFile()) {
		t.Errorf("the host parsed %d files, the plugin declares %d", files.NumFiles(), len(pluginserver.Contracts().GetFileDescriptorSet().GetFile()))
	}

	t.Run("plugin.json", func(t *testing.T) {
		b, err := os.ReadFile(filepath.Join(filepath.Dir(pluginBinary(t)), "plugin.json"))
		if err != nil {
			t.Fatal(err)
		}
		var pj struct {
			Name, Version, Author, Description   string
			ModuleTypes, StepTypes, TriggerTypes []string
		}
		if err := json.Unmarshal(b, &pj); err != nil {
			t.Fatal(err)
		}
		if err := wfplugin.ValidateManifest(wfplugin.Manifest{Name: pj.Name, Version: pj.Version, Author: pj.Author, Description: pj.Description}); err != nil {
			t.Errorf("plugin.json: %v", err)
		}
		if pj.Version != m.Version || !slices.Equal(pj.ModuleTypes, eventbus.ModuleTypes()) ||
			!slices.Equal(pj.StepTypes, eventbus.StepTypes()) || !slices.Equal(pj.TriggerTypes, eventbus.TriggerTypes()) {
			t.Errorf("plugin.json disagrees with the served manifest and types: %s", b)
		}
	})

	t.Run("typed encoding", func(t *testing.T) {
		msg := func(kind pluginv1.ContractKind, typ string) *pluginv1.ContractDescriptor {
			t.Helper()
			d, ok := c.Contract(kind, typ)
			if !ok {
				t.Fatalf("no contract for %s", typ)
			}
			return d
		}
		module, step := pluginv1.ContractKind_CONTRACT_KIND_MODULE, pluginv1.ContractKind_CONTRACT_KIND_STEP
		encodes := []struct {
			typ    string
			d      *pluginv1.ContractDescriptor
			config map[string]any
		}{
			{"broker", msg(module, eventbus.TypeBroker), map[string]any{"embedded": map[string]any{"port": float64(-1), "store_dir": "/tmp/x"}, "_config_dir": "/app"}},
			{"reference broker", msg(module, eventbus.TypeBrokerAlias), map[string]any{
				"provider": "nats", "deploy_target": "kubernetes", "version": "2.10", "replicas": float64(3),
				"jetstream": map[string]any{"enabled": true, "max_storage_bytes": float64(1 << 30), "max_memory_bytes": float64(1 << 20), "max_age": "86400s"},
				"limits":    map[string]any{"cpu": "500m", "memory": "512Mi", "storage": "10Gi"},
				"dsn":       "nats://127.0.0.1:4222", "poll_interval": "1s", "broker_target": "in_process", "max_conns": float64(10),
			}},
			{"stream", msg(module, eventbus.TypeStreamAlias), map[string]any{
				"name": "ORDERS", "subjects": []any{"orders.>"}, "retention_policy": "RETENTION_POLICY_WORKQUEUE",
				"num_replicas": float64(1), "max_bytes": float64(1 << 20), "max_age": "3600s", "ack_wait": "30s", "broker_ref": "events",
			}},
			{"consumer", msg(module, eventbus.TypeConsumerAlias), map[string]any{
				"name": "worker", "stream_name": "ORDERS", "filter_subject": "orders.>", "deliver_policy": "DELIVER_POLICY_ALL",
				"ack_policy": "ACK_POLICY_EXPLICIT", "max_deliver": float64(5), "broker_ref": "events",
			}},
			{"rendered consume", msg(step, eventbus.StepConsume), map[string]any{"consumer": "worker", "batch_size": "25", "max_wait": "2s"}},
			{"publish", msg(step, eventbus.StepPublish), map[string]any{"subject": "orders.new", "payload": map[string]any{"id": float64(1)}, "headers": map[string]any{"k": "v"}, "correlation_id": "c-1"}},
			{"batch publish", msg(step, eventbus.StepPublish), map[string]any{"messages": []any{map[string]any{"subject": "a.b", "payload": "x"}}}},
			{"ack", msg(step, eventbus.StepAck), map[string]any{"ack_token": "t"}},
			{"trigger", msg(pluginv1.ContractKind_CONTRACT_KIND_TRIGGER, eventbus.TriggerSubscribe), map[string]any{
				"name": "worker2", "stream_name": "ORDERS2", "concurrency": float64(8), "max_deliver": float64(3),
				"backoff": []any{"0.050s"}, "dead_letter_subject": "dlq.orders2", "workflowType": "pipeline:orders",
			}},
		}
		for _, e := range encodes {
			if _, err := c.EncodeConfig(e.d.GetConfigMessage(), e.config); err != nil {
				t.Errorf("%s config does not encode as %s: %v", e.typ, e.d.GetConfigMessage(), err)
			}
		}
		ack := msg(step, eventbus.StepAck)
		if _, err := c.Contracts().EncodeInput(ack.GetInputMessage(), map[string]any{"ack_token": "t", "payload": "p", "sequence": float64(3)}); err != nil {
			t.Errorf("a consumed message does not encode as the ack step's input %s: %v", ack.GetInputMessage(), err)
		}
		// Two configs users write cannot encode before the plugin reads
		// them: a template in a number field, and a Go duration such as "1h"
		// (protojson only reads seconds, "3600s"). That is why the contracts
		// are mixed mode, which then sends the Struct alone instead of
		// failing the app build; the wire tests run both.
		consume := msg(step, eventbus.StepConsume)
		if _, err := c.EncodeConfig(consume.GetConfigMessage(), map[string]any{"consumer": "worker", "batch_size": "{{ .n }}"}); !errors.Is(err, wfplugin.ErrEncode) {
			t.Errorf("templated batch_size encoded (%v); the typed half should fail and fall back", err)
		}
		stream := msg(module, eventbus.TypeStream)
		if _, err := c.EncodeConfig(stream.GetConfigMessage(), map[string]any{"name": "S", "subjects": []any{"s.>"}, "max_age": "1h"}); !errors.Is(err, wfplugin.ErrEncode) {
			t.Errorf(`max_age "1h" encoded (%v); the typed half should fail and fall back`, err)
		}
	})
}
