package protomap_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	eventbusv1 "github.com/wfeventbus/eventbus/gen/eventbus/v1"
	"github.com/wfeventbus/eventbus/internal/protomap"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/structpb"
)

// FuzzDecode decodes arbitrary JSON objects into several messages and
// checks that Decode never panics, reports only *FieldErrors wrapping the
// package's sentinels, is deterministic and, when it succeeds, produces a
// message that marshals.
func FuzzDecode(f *testing.F) {
	seeds := []string{
		`{}`,
		`{"name":"ORDERS","subjects":["orders.>"],"retention_policy":"workqueue","storage":"file","num_replicas":3,"max_age":"24h","discard":"new","duplicate_window":"2m"}`,
		`{"subjects":"orders.>","max_msgs":"1e3","max_bytes":-1,"maxAge":"1m30s","max_age":"1s"}`,
		`{"retension_policy":"limits","_config_dir":"/etc","num_replicas":1.5,"max_msg_size":3e9}`,
		`{"deliver_policy":"by-start-sequence","opt_start_seq":"42","opt_start_time":"2024-05-01T12:00:00Z","backoff":["1s","5s",3,null]}`,
		`{"credentials":{"user":"u","tls_ca_file":"/ca"},"embedded":{"port":-1,"memory_only":"yes"},"jetstream":{"max_age":30}}`,
		`{"payload":{"a":[1,"x",null,{"b":true}]},"headers":{"x-id":1,"a.b":"c"},"messages":[{"subject":"a"},{"subjct":"b"},"c"]}`,
		`{"b":"on","i32":"{{ .n }}","u64":"18446744073709551616","fl":1e39,"db":"NaN","by":"aGk=","color":"dark-blue","colors":[1,"red",9]}`,
		`{"child":{"child":{"child":{"s":2}}},"children":[{},{"nums":"4"}],"kids":{"a":{"b":1}},"counts":{"1":2,"x":3},"flags":{"yes":"y"}}`,
		`{"dur":"-1s","durs":"1s","ts":"0000-01-01T00:00:00Z","val":null,"vals":[null],"st":{"k":[]},"lv":[{}],"wi32":"7","ws":5,"one_a":"a","one_b":1,"opt":0,"renamed":"r","timeouts":{"t":"1s"},"meta":{"m":null},"blobs":"x"}`,
		`{"":1,"MaxAge":"1s","concurrency":"0x10","ordered_by_subject":"maybe","workflowType":"pipeline:x"}`,
	}
	for _, s := range seeds {
		f.Add([]byte(s), false, false)
		f.Add([]byte(s), true, true)
	}
	kitchen := kitchenDescriptor(f)
	targets := []func() proto.Message{
		func() proto.Message { return &eventbusv1.StreamConfig{} },
		func() proto.Message { return &eventbusv1.ConsumerConfig{} },
		func() proto.Message { return &eventbusv1.BrokerConfig{} },
		func() proto.Message { return &eventbusv1.PublishStepConfig{} },
		func() proto.Message { return &eventbusv1.SubscribeTriggerConfig{} },
		func() proto.Message { return dynamicpb.NewMessage(kitchen) },
		func() proto.Message { return &structpb.Struct{} },
	}
	sentinels := []error{protomap.ErrUnknownField, protomap.ErrDuplicateField, protomap.ErrWrongType,
		protomap.ErrInvalidValue, protomap.ErrOutOfRange}

	f.Fuzz(func(t *testing.T, data []byte, templates, useNumber bool) {
		dec := json.NewDecoder(bytes.NewReader(data))
		if useNumber {
			dec.UseNumber()
		}
		var src map[string]any
		if dec.Decode(&src) != nil {
			return
		}
		opts := []protomap.Option{protomap.Path("config")}
		if templates {
			opts = append(opts, protomap.AllowTemplates())
		}
		for _, newMsg := range targets {
			first, second := newMsg(), newMsg()
			err := protomap.Decode(src, first, opts...)
			again := protomap.Decode(src, second, opts...)

			fieldErrs := protomap.FieldErrors(err)
			if (err == nil) != (len(fieldErrs) == 0) {
				t.Fatalf("%T: error %v holds %d field errors", first, err, len(fieldErrs))
			}
			for _, fe := range fieldErrs {
				matched := 0
				for _, s := range sentinels {
					if errors.Is(fe, s) {
						matched++
					}
				}
				if matched != 1 {
					t.Fatalf("%T: %v wraps %d sentinels, want 1", first, fe, matched)
				}
			}
			if (err == nil) != (again == nil) || (err != nil && err.Error() != again.Error()) {
				t.Fatalf("%T: two decodes of one input differ:\n%v\n%v", first, err, again)
			}
			if !proto.Equal(first, second) {
				t.Fatalf("%T: two decodes of one input give different messages", first)
			}
			if err == nil {
				if _, merr := proto.Marshal(first); merr != nil {
					t.Fatalf("%T: decoded message does not marshal: %v", first, merr)
				}
			}
		}
	})
}
