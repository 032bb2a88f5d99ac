package protomap_test

import (
	"slices"
	"testing"

	eventbusv1 "github.com/wfeventbus/eventbus/gen/eventbus/v1"
	"github.com/wfeventbus/eventbus/internal/protomap"
)

// field finds the field named name in fields.
func field(t *testing.T, fields []protomap.Field, name string) protomap.Field {
	t.Helper()
	for _, f := range fields {
		if f.Name == name {
			return f
		}
	}
	t.Fatalf("no field %q", name)
	return protomap.Field{}
}

func TestFieldsOfGeneratedMessages(t *testing.T) {
	t.Parallel()
	fields := protomap.Fields((&eventbusv1.ConsumerConfig{}).ProtoReflect().Descriptor())
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.Name
	}
	wantNames := []string{"name", "stream_name", "filter_subject", "filter_subjects", "deliver_policy", "opt_start_seq",
		"opt_start_time", "ack_policy", "ack_wait", "max_deliver", "backoff", "max_ack_pending", "dead_letter_subject",
		"broker_ref", "description"}
	if !slices.Equal(names, wantNames) {
		t.Errorf("names %v\nwant  %v", names, wantNames)
	}
	tests := []struct {
		name string
		want protomap.Field
	}{
		{"name", protomap.Field{Name: "name", JSONName: "name", Type: "string"}},
		{"filter_subjects", protomap.Field{Name: "filter_subjects", JSONName: "filterSubjects", Type: "string", Repeated: true}},
		{"opt_start_seq", protomap.Field{Name: "opt_start_seq", JSONName: "optStartSeq", Type: "uint64"}},
		{"opt_start_time", protomap.Field{Name: "opt_start_time", JSONName: "optStartTime", Type: "timestamp"}},
		{"ack_wait", protomap.Field{Name: "ack_wait", JSONName: "ackWait", Type: "duration"}},
		{"backoff", protomap.Field{Name: "backoff", JSONName: "backoff", Type: "duration", Repeated: true}},
		{"deliver_policy", protomap.Field{Name: "deliver_policy", JSONName: "deliverPolicy", Type: "enum",
			Enum: []string{"all", "last", "new", "by_start_sequence", "by_start_time", "last_per_subject"}}},
	}
	for _, tt := range tests {
		got := field(t, fields, tt.name)
		if got.Name != tt.want.Name || got.JSONName != tt.want.JSONName || got.Type != tt.want.Type ||
			got.Repeated != tt.want.Repeated || got.MapKey != "" || !slices.Equal(got.Enum, tt.want.Enum) {
			t.Errorf("%s: %+v\nwant %+v", tt.name, got, tt.want)
		}
	}

	broker := protomap.Fields((&eventbusv1.BrokerConfig{}).ProtoReflect().Descriptor())
	creds := field(t, broker, "credentials")
	if creds.Type != "message" || creds.Message != "eventbus.v1.Credentials" || field(t, creds.Fields, "tls_ca_file").Type != "string" {
		t.Errorf("credentials: %+v", creds)
	}
	js := field(t, broker, "jetstream")
	if field(t, js.Fields, "max_age").Type != "duration" {
		t.Errorf("jetstream.max_age: %+v", js)
	}

	pub := protomap.Fields((&eventbusv1.PublishStepConfig{}).ProtoReflect().Descriptor())
	if h := field(t, pub, "headers"); h.Type != "string" || h.MapKey != "string" || h.Repeated {
		t.Errorf("headers: %+v", h)
	}
	if p := field(t, pub, "payload"); p.Type != "value" {
		t.Errorf("payload: %+v", p)
	}
	if m := field(t, pub, "messages"); !m.Repeated || m.Type != "message" || len(m.Fields) != 6 {
		t.Errorf("messages: %+v", m)
	}
}

func TestFieldsOfRecursiveMessage(t *testing.T) {
	t.Parallel()
	fields := protomap.Fields(kitchenDescriptor(t))
	tests := []struct {
		name, typ, mapKey string
	}{
		{"sf64", "sfixed64", ""},
		{"fl", "float", ""},
		{"by", "bytes", ""},
		{"counts", "int64", "int32"},
		{"flags", "string", "bool"},
		{"st", "struct", ""},
		{"lv", "list", ""},
		{"wi32", "int32", ""},
		{"ws", "string", ""},
		{"timeouts", "duration", "string"},
		{"meta", "value", "string"},
	}
	for _, tt := range tests {
		if got := field(t, fields, tt.name); got.Type != tt.typ || got.MapKey != tt.mapKey {
			t.Errorf("%s: type %q key %q, want %q %q", tt.name, got.Type, got.MapKey, tt.typ, tt.mapKey)
		}
	}
	if got := field(t, fields, "color").Enum; !slices.Equal(got, []string{"red", "dark_blue"}) {
		t.Errorf("color values %v", got)
	}
	if got := field(t, fields, "custom"); got.JSONName != "renamed" {
		t.Errorf("custom: JSON name %q", got.JSONName)
	}
	// A message containing itself is described once.
	for _, name := range []string{"child", "children", "kids"} {
		if got := field(t, fields, name); got.Type != "message" || got.Message != "kitchen.Kitchen" || got.Fields != nil {
			t.Errorf("%s: %+v", name, got)
		}
	}
}
