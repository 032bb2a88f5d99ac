package protomap_test

import (
	"fmt"

	eventbusv1 "github.com/wfeventbus/eventbus/gen/eventbus/v1"
	"github.com/wfeventbus/eventbus/internal/protomap"
	"go.yaml.in/yaml/v3"
)

func Example() {
	const config = `
name: ORDERS
subjects: orders.>
retention_policy: workqueue
num_replicas: "3"
max_age: 24h
duplicate_window: 2m
_config_dir: /etc/app
`
	var src map[string]any
	if err := yaml.Unmarshal([]byte(config), &src); err != nil {
		panic(err)
	}
	cfg := &eventbusv1.StreamConfig{}
	if err := protomap.Decode(src, cfg, protomap.Path("config")); err != nil {
		panic(err)
	}
	fmt.Println(cfg.GetName(), cfg.GetSubjects(), cfg.GetRetentionPolicy(), cfg.GetNumReplicas())
	fmt.Println(cfg.GetMaxAge().AsDuration(), cfg.GetDuplicateWindow().AsDuration())
	// Output:
	// ORDERS [orders.>] RETENTION_POLICY_WORKQUEUE 3
	// 24h0m0s 2m0s
}

func Example_errors() {
	const config = `
name: ORDERS
retension_policy: workqueue
storage: disk
max_age: 30
num_replicas: 1.5
`
	var src map[string]any
	if err := yaml.Unmarshal([]byte(config), &src); err != nil {
		panic(err)
	}
	err := protomap.Decode(src, &eventbusv1.StreamConfig{}, protomap.Path("config"))
	fmt.Println(err)
	// Output:
	// config.max_age: wrong type: got number 30; write a unit, such as "30s"
	// config.num_replicas: invalid value: 1.5 is not an integer
	// config.retension_policy: unknown field; did you mean "retention_policy"?
	// config.storage: invalid value: "disk" is not one of file, memory
}

func ExampleAllowTemplates() {
	src := map[string]any{
		"subject":                "orders.{{ .region }}",
		"expected_last_sequence": "{{ .seq }}",
	}
	// Checked when the pipeline is built: the template is no error.
	cfg := &eventbusv1.PublishStepConfig{}
	fmt.Println(protomap.Decode(src, cfg, protomap.AllowTemplates()), cfg.GetExpectedLastSequence())

	// Decoded again once the host has rendered it.
	rendered := map[string]any{"subject": "orders.eu", "expected_last_sequence": "41"}
	cfg = &eventbusv1.PublishStepConfig{}
	fmt.Println(protomap.Decode(rendered, cfg), cfg.GetSubject(), cfg.GetExpectedLastSequence())
	// Output:
	// <nil> 0
	// <nil> orders.eu 41
}

func ExampleFields() {
	for _, f := range protomap.Fields((&eventbusv1.SettleStepConfig{}).ProtoReflect().Descriptor()) {
		fmt.Println(f.Name, f.Type)
	}
	// Output:
	// ack_token string
	// broker_ref string
	// delay duration
	// reason string
}
