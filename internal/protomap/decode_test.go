package protomap_test

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	eventbusv1 "github.com/wfeventbus/eventbus/gen/eventbus/v1"
	"github.com/wfeventbus/eventbus/internal/protomap"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// target makes the empty message a test case decodes into.
type target func(testing.TB) proto.Message

func stream(testing.TB) proto.Message    { return &eventbusv1.StreamConfig{} }
func consumer(testing.TB) proto.Message  { return &eventbusv1.ConsumerConfig{} }
func broker(testing.TB) proto.Message    { return &eventbusv1.BrokerConfig{} }
func publish(testing.TB) proto.Message   { return &eventbusv1.PublishStepConfig{} }
func subscribe(testing.TB) proto.Message { return &eventbusv1.SubscribeTriggerConfig{} }
func kitchen(t testing.TB) proto.Message { return newKitchen(t) }

// fromJSON is the message of the type of like that protojson reads from
// js: the independent reference each decoded message is compared with.
func fromJSON(t testing.TB, like proto.Message, js string) proto.Message {
	t.Helper()
	m := like.ProtoReflect().Type().New().Interface()
	if err := protojson.Unmarshal([]byte(js), m); err != nil {
		t.Fatalf("reference %s: %v", js, err)
	}
	return m
}

func TestDecodeAcceptedValues(t *testing.T) {
	t.Parallel()
	ts := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		msg  target
		src  map[string]any
		want string // protojson of the expected message
	}{
		// Names.
		{"proto name", stream, map[string]any{"max_age": "30s"}, `{"maxAge":"30s"}`},
		{"json name", stream, map[string]any{"maxAge": "30s"}, `{"maxAge":"30s"}`},
		{"explicit json name", subscribe, map[string]any{"workflowType": "pipeline:x"}, `{"workflowType":"pipeline:x"}`},
		{"proto name of field with json_name", subscribe, map[string]any{"workflow_type": "pipeline:x"}, `{"workflowType":"pipeline:x"}`},
		{"custom json_name", kitchen, map[string]any{"renamed": "a"}, `{"renamed":"a"}`},
		{"proto name beside custom json_name", kitchen, map[string]any{"custom": "a"}, `{"renamed":"a"}`},
		{"underscore keys skipped", broker, map[string]any{"_config_dir": "/etc", "dsn": "nats://x", "credentials": map[string]any{"_note": 1, "user": "u"}}, `{"dsn":"nats://x","credentials":{"user":"u"}}`},
		{"empty map", stream, map[string]any{}, `{}`},
		{"nil map", stream, nil, `{}`},

		// bool.
		{"bool true", kitchen, map[string]any{"b": true}, `{"b":true}`},
		{"bool string true", kitchen, map[string]any{"b": "true"}, `{"b":true}`},
		{"bool string TRUE", kitchen, map[string]any{"b": "TRUE"}, `{"b":true}`},
		{"bool string yes trimmed", kitchen, map[string]any{"b": " Yes "}, `{"b":true}`},
		{"bool string on", kitchen, map[string]any{"b": "on"}, `{"b":true}`},
		{"bool string 1", kitchen, map[string]any{"b": "1"}, `{"b":true}`},
		{"bool number 1", kitchen, map[string]any{"b": 1.0}, `{"b":true}`},
		{"bool int 1", kitchen, map[string]any{"b": 1}, `{"b":true}`},
		{"bool false", kitchen, map[string]any{"b": false}, `{}`},
		{"bool string no", kitchen, map[string]any{"b": "no"}, `{}`},
		{"bool string off", kitchen, map[string]any{"b": "OFF"}, `{}`},
		{"bool string 0", kitchen, map[string]any{"b": "0"}, `{}`},
		{"bool number 0", kitchen, map[string]any{"b": 0}, `{}`},

		// Integers.
		{"int32 from float64", stream, map[string]any{"num_replicas": 3.0}, `{"numReplicas":3}`},
		{"int32 from int", stream, map[string]any{"num_replicas": 3}, `{"numReplicas":3}`},
		{"int32 from uint8", stream, map[string]any{"num_replicas": uint8(3)}, `{"numReplicas":3}`},
		{"int32 from string", stream, map[string]any{"num_replicas": "3"}, `{"numReplicas":3}`},
		{"int32 from padded string", stream, map[string]any{"num_replicas": " 3 "}, `{"numReplicas":3}`},
		{"int32 from json.Number", stream, map[string]any{"num_replicas": json.Number("3")}, `{"numReplicas":3}`},
		{"int32 from exponent string", stream, map[string]any{"max_msg_size": "1e3"}, `{"maxMsgSize":1000}`},
		{"int32 negative", kitchen, map[string]any{"i32": -5.0}, `{"i32":-5}`},
		{"int32 min", kitchen, map[string]any{"i32": float64(math.MinInt32)}, `{"i32":-2147483648}`},
		{"int32 max string", kitchen, map[string]any{"i32": "2147483647"}, `{"i32":2147483647}`},
		{"sint32", kitchen, map[string]any{"si32": -7}, `{"si32":-7}`},
		{"sfixed32", kitchen, map[string]any{"sf32": "-8"}, `{"sf32":-8}`},
		{"int64 from string beyond float precision", stream, map[string]any{"max_msgs": "9007199254740993"}, `{"maxMsgs":"9007199254740993"}`},
		{"int64 max", kitchen, map[string]any{"i64": int64(math.MaxInt64)}, `{"i64":"9223372036854775807"}`},
		{"int64 min string", kitchen, map[string]any{"i64": "-9223372036854775808"}, `{"i64":"-9223372036854775808"}`},
		{"sint64", kitchen, map[string]any{"si64": -9.0}, `{"si64":"-9"}`},
		{"sfixed64", kitchen, map[string]any{"sf64": json.Number("-10")}, `{"sf64":"-10"}`},
		{"uint32", kitchen, map[string]any{"u32": 4294967295.0}, `{"u32":4294967295}`},
		{"fixed32", kitchen, map[string]any{"f32": "12"}, `{"f32":12}`},
		{"uint64 max string", kitchen, map[string]any{"u64": "18446744073709551615"}, `{"u64":"18446744073709551615"}`},
		{"uint64 from uint64", kitchen, map[string]any{"u64": uint64(math.MaxUint64)}, `{"u64":"18446744073709551615"}`},
		{"fixed64", kitchen, map[string]any{"f64": 64}, `{"f64":"64"}`},
		{"uint64 field of a config", consumer, map[string]any{"opt_start_seq": 42.0}, `{"optStartSeq":"42"}`},

		// Floats.
		{"float from number", kitchen, map[string]any{"fl": 1.5}, `{"fl":1.5}`},
		{"float from string", kitchen, map[string]any{"fl": "2.5"}, `{"fl":2.5}`},
		{"double from int", kitchen, map[string]any{"db": 3}, `{"db":3}`},
		{"double from json.Number", kitchen, map[string]any{"db": json.Number("1e300")}, `{"db":1e300}`},
		{"double from string", kitchen, map[string]any{"db": "-0.25"}, `{"db":-0.25}`},

		// Strings.
		{"string", stream, map[string]any{"name": "ORDERS"}, `{"name":"ORDERS"}`},
		{"string from int", broker, map[string]any{"version": 2}, `{"version":"2"}`},
		{"string from float64", broker, map[string]any{"version": 2.0}, `{"version":"2"}`},
		{"string from fractional float64", broker, map[string]any{"version": 2.5}, `{"version":"2.5"}`},
		{"string from large float64", broker, map[string]any{"version": 1e21}, `{"version":"1e+21"}`},
		{"string from bool", broker, map[string]any{"version": true}, `{"version":"true"}`},
		{"string from json.Number", broker, map[string]any{"version": json.Number("1.50")}, `{"version":"1.50"}`},
		{"empty string", stream, map[string]any{"name": ""}, `{}`},

		// Bytes.
		{"bytes from string", kitchen, map[string]any{"by": "hi"}, `{"by":"aGk="}`},
		{"bytes from []byte", kitchen, map[string]any{"by": []byte("hi")}, `{"by":"aGk="}`},

		// Enums.
		{"enum full name", stream, map[string]any{"retention_policy": "RETENTION_POLICY_WORKQUEUE"}, `{"retentionPolicy":"RETENTION_POLICY_WORKQUEUE"}`},
		{"enum full name lower case", stream, map[string]any{"retention_policy": "retention_policy_workqueue"}, `{"retentionPolicy":"RETENTION_POLICY_WORKQUEUE"}`},
		{"enum short name", stream, map[string]any{"retention_policy": "WORKQUEUE"}, `{"retentionPolicy":"RETENTION_POLICY_WORKQUEUE"}`},
		{"enum short name lower case", stream, map[string]any{"retention_policy": "workqueue"}, `{"retentionPolicy":"RETENTION_POLICY_WORKQUEUE"}`},
		{"enum short name mixed case", stream, map[string]any{"storage": "Memory"}, `{"storage":"STORAGE_TYPE_MEMORY"}`},
		{"enum dashes", consumer, map[string]any{"deliver_policy": "by-start-sequence"}, `{"deliverPolicy":"DELIVER_POLICY_BY_START_SEQUENCE"}`},
		{"enum underscores", consumer, map[string]any{"deliver_policy": "last_per_subject"}, `{"deliverPolicy":"DELIVER_POLICY_LAST_PER_SUBJECT"}`},
		{"enum number", stream, map[string]any{"discard": 2.0}, `{"discard":"DISCARD_POLICY_NEW"}`},
		{"enum number string", stream, map[string]any{"discard": "2"}, `{"discard":"DISCARD_POLICY_NEW"}`},
		{"enum unspecified", stream, map[string]any{"discard": "unspecified"}, `{}`},
		{"enum padded", kitchen, map[string]any{"color": " dark-blue "}, `{"color":"COLOR_DARK_BLUE"}`},

		// Durations.
		{"duration seconds", stream, map[string]any{"max_age": "30s"}, `{"maxAge":"30s"}`},
		{"duration compound", stream, map[string]any{"max_age": "1m30s"}, `{"maxAge":"90s"}`},
		{"duration milliseconds", stream, map[string]any{"duplicate_window": "250ms"}, `{"duplicateWindow":"0.250s"}`},
		{"duration hours", stream, map[string]any{"max_age": "1h"}, `{"maxAge":"3600s"}`},
		{"duration fractional", stream, map[string]any{"max_age": "1.5h"}, `{"maxAge":"5400s"}`},
		{"duration padded", stream, map[string]any{"max_age": " 5s "}, `{"maxAge":"5s"}`},
		{"duration zero", stream, map[string]any{"max_age": "0"}, `{"maxAge":"0s"}`},
		{"duration from time.Duration", stream, map[string]any{"max_age": 2 * time.Second}, `{"maxAge":"2s"}`},
		{"duration nanoseconds", kitchen, map[string]any{"dur": "1s5ns"}, `{"dur":"1.000000005s"}`},

		// Timestamps.
		{"timestamp UTC", consumer, map[string]any{"opt_start_time": "2024-05-01T12:00:00Z"}, `{"optStartTime":"2024-05-01T12:00:00Z"}`},
		{"timestamp offset", consumer, map[string]any{"opt_start_time": "2024-05-01T14:00:00+02:00"}, `{"optStartTime":"2024-05-01T12:00:00Z"}`},
		{"timestamp fraction", consumer, map[string]any{"opt_start_time": "2024-05-01T12:00:00.5Z"}, `{"optStartTime":"2024-05-01T12:00:00.500Z"}`},
		{"timestamp from time.Time", consumer, map[string]any{"opt_start_time": ts}, `{"optStartTime":"2024-05-01T12:00:00Z"}`},

		// google.protobuf.Value, Struct, ListValue.
		{"value string", publish, map[string]any{"payload": "hi"}, `{"payload":"hi"}`},
		{"value number", publish, map[string]any{"payload": 3}, `{"payload":3}`},
		{"value bool", publish, map[string]any{"payload": false}, `{"payload":false}`},
		{"value json.Number", publish, map[string]any{"payload": json.Number("2.5")}, `{"payload":2.5}`},
		{"value map", publish, map[string]any{"payload": map[string]any{"id": 1.0, "tags": []any{"a", nil, true}}}, `{"payload":{"id":1,"tags":["a",null,true]}}`},
		{"value map with any keys", publish, map[string]any{"payload": map[any]any{"a": 1, 2: "b"}}, `{"payload":{"a":1,"2":"b"}}`},
		{"value typed list", publish, map[string]any{"payload": []string{"a", "b"}}, `{"payload":["a","b"]}`},
		{"value typed map", publish, map[string]any{"payload": map[string]int{"n": 1}}, `{"payload":{"n":1}}`},
		{"value bytes as base64", publish, map[string]any{"payload": []byte("hi")}, `{"payload":"aGk="}`},
		{"value time as RFC 3339", publish, map[string]any{"payload": ts}, `{"payload":"2024-05-01T12:00:00Z"}`},
		{"value of structpb", publish, map[string]any{"payload": structpb.NewStringValue("s")}, `{"payload":"s"}`},
		{"value in dynamic message", kitchen, map[string]any{"val": map[string]any{"a": []any{1, "x"}}}, `{"val":{"a":[1,"x"]}}`},
		{"repeated value with null", kitchen, map[string]any{"vals": []any{1, nil, "x"}}, `{"vals":[1,null,"x"]}`},
		{"struct", kitchen, map[string]any{"st": map[string]any{"k": 1, "l": []any{}}}, `{"st":{"k":1,"l":[]}}`},
		{"list value", kitchen, map[string]any{"lv": []any{1, "a", map[string]any{}}}, `{"lv":[1,"a",{}]}`},

		// Wrappers.
		{"int32 wrapper from string", kitchen, map[string]any{"wi32": "7"}, `{"wi32":7}`},
		{"int32 wrapper zero", kitchen, map[string]any{"wi32": 0}, `{"wi32":0}`},
		{"string wrapper from number", kitchen, map[string]any{"ws": 5}, `{"ws":"5"}`},

		// Repeated fields.
		{"list", stream, map[string]any{"subjects": []any{"orders.>", "billing.*"}}, `{"subjects":["orders.>","billing.*"]}`},
		{"typed list", stream, map[string]any{"subjects": []string{"a", "b"}}, `{"subjects":["a","b"]}`},
		{"array", stream, map[string]any{"subjects": [2]string{"a", "b"}}, `{"subjects":["a","b"]}`},
		{"single value as list", stream, map[string]any{"subjects": "orders.>"}, `{"subjects":["orders.>"]}`},
		{"empty list", stream, map[string]any{"subjects": []any{}}, `{}`},
		{"list of formatted strings", kitchen, map[string]any{"names": []any{1, true, "x"}}, `{"names":["1","true","x"]}`},
		{"list of ints from strings", kitchen, map[string]any{"nums": []any{"1", 2.0, 3}}, `{"nums":[1,2,3]}`},
		{"single int as list", kitchen, map[string]any{"nums": 4}, `{"nums":[4]}`},
		{"list of enums", kitchen, map[string]any{"colors": []any{"red", "COLOR_DARK_BLUE", 1}}, `{"colors":["COLOR_RED","COLOR_DARK_BLUE","COLOR_RED"]}`},
		{"list of durations", consumer, map[string]any{"backoff": []any{"1s", "5s", "1m"}}, `{"backoff":["1s","5s","60s"]}`},
		{"single duration as list", consumer, map[string]any{"backoff": "10s"}, `{"backoff":["10s"]}`},
		{"list of bytes", kitchen, map[string]any{"blobs": []any{"a", "b"}}, `{"blobs":["YQ==","Yg=="]}`},
		{"list of messages", publish, map[string]any{"messages": []any{
			map[string]any{"subject": "a", "payload": map[string]any{"n": 1}},
			map[string]any{"subject": "b", "expected_last_sequence": "7"},
		}}, `{"messages":[{"subject":"a","payload":{"n":1}},{"subject":"b","expectedLastSequence":"7"}]}`},
		{"typed list of maps", publish, map[string]any{"messages": []map[string]any{{"subject": "a"}}}, `{"messages":[{"subject":"a"}]}`},
		{"list of dynamic messages", kitchen, map[string]any{"children": []any{map[string]any{"i32": 1}, map[string]any{}}}, `{"children":[{"i32":1},{}]}`},

		// Map fields.
		{"map of strings", publish, map[string]any{"headers": map[string]any{"x-id": "1", "n": 2, "b": true, "f": 1.5}}, `{"headers":{"x-id":"1","n":"2","b":"true","f":"1.5"}}`},
		{"map of strings typed", publish, map[string]any{"headers": map[string]string{"a": "b"}}, `{"headers":{"a":"b"}}`},
		{"map with any keys", publish, map[string]any{"headers": map[any]any{"a": "b", 200: "ok"}}, `{"headers":{"a":"b","200":"ok"}}`},
		{"map null value left out", publish, map[string]any{"headers": map[string]any{"a": nil, "b": "c"}}, `{"headers":{"b":"c"}}`},
		{"map with int keys", kitchen, map[string]any{"counts": map[string]any{"1": 2, "-3": "4"}}, `{"counts":{"1":"2","-3":"4"}}`},
		{"map with int keys from yaml", kitchen, map[string]any{"counts": map[any]any{1: 2}}, `{"counts":{"1":"2"}}`},
		{"map with bool keys", kitchen, map[string]any{"flags": map[string]any{"true": "y", "off": 0}}, `{"flags":{"true":"y","false":"0"}}`},
		{"map of messages", kitchen, map[string]any{"kids": map[string]any{"a": map[string]any{"s": "x", "child": map[string]any{"b": "yes"}}}}, `{"kids":{"a":{"s":"x","child":{"b":true}}}}`},
		{"map of durations", kitchen, map[string]any{"timeouts": map[string]any{"read": "1s", "write": "2m"}}, `{"timeouts":{"read":"1s","write":"120s"}}`},
		{"map of values with null", kitchen, map[string]any{"meta": map[string]any{"a": nil, "b": []any{1}}}, `{"meta":{"a":null,"b":[1]}}`},
		{"empty map field", publish, map[string]any{"headers": map[string]any{}}, `{}`},

		// Nested messages.
		{"nested message", broker, map[string]any{"credentials": map[string]any{"tls_ca_file": "/ca.pem", "user": "u"}}, `{"credentials":{"tlsCaFile":"/ca.pem","user":"u"}}`},
		{"nested message json names", broker, map[string]any{"embedded": map[string]any{"storeDir": "/d", "memoryOnly": "true", "port": -1}}, `{"embedded":{"storeDir":"/d","memoryOnly":true,"port":-1}}`},
		{"nested duration", broker, map[string]any{"jetstream": map[string]any{"max_age": "24h", "enabled": "yes"}}, `{"jetstream":{"maxAge":"86400s","enabled":true}}`},
		{"nested from yaml any map", broker, map[string]any{"credentials": map[any]any{"user": "u"}}, `{"credentials":{"user":"u"}}`},
		{"empty nested message", broker, map[string]any{"credentials": map[string]any{}}, `{"credentials":{}}`},
		{"recursive dynamic message", kitchen, map[string]any{"child": map[string]any{"child": map[string]any{"s": "deep"}}}, `{"child":{"child":{"s":"deep"}}}`},

		// Oneofs and explicit presence.
		{"oneof member", kitchen, map[string]any{"one_b": "3"}, `{"oneB":3}`},
		{"oneof member zero", kitchen, map[string]any{"one_a": ""}, `{"oneA":""}`},
		{"proto3 optional zero", kitchen, map[string]any{"opt": 0}, `{"opt":0}`},

		// Nil and blank values.
		{"nil scalar", stream, map[string]any{"name": nil, "num_replicas": nil}, `{}`},
		{"nil message", broker, map[string]any{"credentials": nil}, `{}`},
		{"nil list and map", publish, map[string]any{"messages": nil, "headers": nil, "payload": nil}, `{}`},
		{"blank number", stream, map[string]any{"num_replicas": ""}, `{}`},
		{"blank bool", kitchen, map[string]any{"b": "  "}, `{}`},
		{"blank enum", stream, map[string]any{"storage": ""}, `{}`},
		{"blank duration", stream, map[string]any{"max_age": ""}, `{}`},
		{"blank timestamp", consumer, map[string]any{"opt_start_time": " "}, `{}`},
		{"blank wrapper", kitchen, map[string]any{"wi32": ""}, `{}`},
		{"blank element leaves list unset", consumer, map[string]any{"backoff": []any{"1s", ""}}, `{}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := tt.msg(t)
			if err := protomap.Decode(tt.src, got); err != nil {
				t.Fatalf("Decode: %v", err)
			}
			want := fromJSON(t, got, tt.want)
			if !proto.Equal(got, want) {
				t.Errorf("decoded %v\nwant      %v", protojson.Format(got), protojson.Format(want))
			}
		})
	}
}

// wantErr is one expected *FieldError: its path and the sentinel it wraps.
type wantErr struct {
	path string
	is   error
}

func TestDecodeErrors(t *testing.T) {
	t.Parallel()
	selfMap := map[string]any{}
	selfMap["child"] = selfMap
	selfValue := map[string]any{}
	selfValue["a"] = selfValue
	tests := []struct {
		name string
		msg  target
		src  map[string]any
		want []wantErr
	}{
		// Names.
		{"unknown field", stream, map[string]any{"retension_policy": "limits"}, []wantErr{{"config.retension_policy", protomap.ErrUnknownField}}},
		{"unknown nested field", broker, map[string]any{"credentials": map[string]any{"tls_ca": "x"}}, []wantErr{{"config.credentials.tls_ca", protomap.ErrUnknownField}}},
		{"unknown field in list element", publish, map[string]any{"messages": []any{map[string]any{"subject": "a"}, map[string]any{"subjct": "b"}}}, []wantErr{{"config.messages[1].subjct", protomap.ErrUnknownField}}},
		{"unknown field in map value", kitchen, map[string]any{"kids": map[string]any{"k": map[string]any{"nope": 1}}}, []wantErr{{"config.kids.k.nope", protomap.ErrUnknownField}}},
		{"field name in another case", stream, map[string]any{"Name": "x"}, []wantErr{{"config.Name", protomap.ErrUnknownField}}},
		{"empty key", stream, map[string]any{"": "x"}, []wantErr{{`config[""]`, protomap.ErrUnknownField}}},
		{"proto and json name together", stream, map[string]any{"max_age": "1s", "maxAge": "2s"}, []wantErr{{"config.max_age", protomap.ErrDuplicateField}}},
		{"two members of a oneof", kitchen, map[string]any{"one_a": "x", "one_b": 1}, []wantErr{{"config.one_b", protomap.ErrDuplicateField}}},

		// bool.
		{"bool unknown word", kitchen, map[string]any{"b": "maybe"}, []wantErr{{"config.b", protomap.ErrInvalidValue}}},
		{"bool number 2", kitchen, map[string]any{"b": 2}, []wantErr{{"config.b", protomap.ErrInvalidValue}}},
		{"bool list", kitchen, map[string]any{"b": []any{true}}, []wantErr{{"config.b", protomap.ErrWrongType}}},

		// Integers.
		{"int fraction", stream, map[string]any{"num_replicas": 1.5}, []wantErr{{"config.num_replicas", protomap.ErrInvalidValue}}},
		{"int fraction string", stream, map[string]any{"num_replicas": "1.5"}, []wantErr{{"config.num_replicas", protomap.ErrInvalidValue}}},
		{"int word", stream, map[string]any{"num_replicas": "three"}, []wantErr{{"config.num_replicas", protomap.ErrInvalidValue}}},
		{"int hexadecimal", stream, map[string]any{"num_replicas": "0x10"}, []wantErr{{"config.num_replicas", protomap.ErrInvalidValue}}},
		{"int NaN", stream, map[string]any{"num_replicas": math.NaN()}, []wantErr{{"config.num_replicas", protomap.ErrInvalidValue}}},
		{"int infinity", stream, map[string]any{"max_msgs": math.Inf(1)}, []wantErr{{"config.max_msgs", protomap.ErrInvalidValue}}},
		{"int bad json.Number", stream, map[string]any{"max_msgs": json.Number("x")}, []wantErr{{"config.max_msgs", protomap.ErrInvalidValue}}},
		{"int32 too large", stream, map[string]any{"num_replicas": 3e9}, []wantErr{{"config.num_replicas", protomap.ErrOutOfRange}}},
		{"int32 too small string", stream, map[string]any{"num_replicas": "-2147483649"}, []wantErr{{"config.num_replicas", protomap.ErrOutOfRange}}},
		{"int32 too large int64", stream, map[string]any{"num_replicas": int64(1) << 40}, []wantErr{{"config.num_replicas", protomap.ErrOutOfRange}}},
		{"int64 too large string", stream, map[string]any{"max_msgs": "9223372036854775808"}, []wantErr{{"config.max_msgs", protomap.ErrOutOfRange}}},
		{"int64 too large float", stream, map[string]any{"max_msgs": 9.3e18}, []wantErr{{"config.max_msgs", protomap.ErrOutOfRange}}},
		{"int64 from too large uint64", stream, map[string]any{"max_msgs": uint64(math.MaxUint64)}, []wantErr{{"config.max_msgs", protomap.ErrOutOfRange}}},
		{"int32 too large exponent string", stream, map[string]any{"num_replicas": "1e10"}, []wantErr{{"config.num_replicas", protomap.ErrOutOfRange}}},
		{"uint negative", consumer, map[string]any{"opt_start_seq": -1.0}, []wantErr{{"config.opt_start_seq", protomap.ErrOutOfRange}}},
		{"uint negative string", consumer, map[string]any{"opt_start_seq": "-1"}, []wantErr{{"config.opt_start_seq", protomap.ErrOutOfRange}}},
		{"uint negative int", kitchen, map[string]any{"u32": -1}, []wantErr{{"config.u32", protomap.ErrOutOfRange}}},
		{"uint32 too large", kitchen, map[string]any{"u32": "4294967296"}, []wantErr{{"config.u32", protomap.ErrOutOfRange}}},
		{"uint64 too large string", kitchen, map[string]any{"u64": "18446744073709551616"}, []wantErr{{"config.u64", protomap.ErrOutOfRange}}},
		{"uint64 too large float", kitchen, map[string]any{"u64": 1.9e19}, []wantErr{{"config.u64", protomap.ErrOutOfRange}}},
		{"uint fraction", kitchen, map[string]any{"u64": "2.5"}, []wantErr{{"config.u64", protomap.ErrInvalidValue}}},
		{"int map", stream, map[string]any{"num_replicas": map[string]any{}}, []wantErr{{"config.num_replicas", protomap.ErrWrongType}}},
		{"int bool", stream, map[string]any{"num_replicas": true}, []wantErr{{"config.num_replicas", protomap.ErrWrongType}}},

		// Floats.
		{"float word", kitchen, map[string]any{"fl": "abc"}, []wantErr{{"config.fl", protomap.ErrInvalidValue}}},
		{"float32 too large", kitchen, map[string]any{"fl": 1e39}, []wantErr{{"config.fl", protomap.ErrOutOfRange}}},
		{"double too large string", kitchen, map[string]any{"db": "1e400"}, []wantErr{{"config.db", protomap.ErrOutOfRange}}},
		{"double list", kitchen, map[string]any{"db": []any{}}, []wantErr{{"config.db", protomap.ErrWrongType}}},

		// Strings and bytes.
		{"string map", stream, map[string]any{"name": map[string]any{"a": 1}}, []wantErr{{"config.name", protomap.ErrWrongType}}},
		{"string list", stream, map[string]any{"name": []any{"a"}}, []wantErr{{"config.name", protomap.ErrWrongType}}},
		{"string invalid UTF-8", stream, map[string]any{"name": "a\xffb"}, []wantErr{{"config.name", protomap.ErrInvalidValue}}},
		{"bytes number", kitchen, map[string]any{"by": 1}, []wantErr{{"config.by", protomap.ErrWrongType}}},

		// Enums.
		{"enum misspelled", stream, map[string]any{"retention_policy": "workqeue"}, []wantErr{{"config.retention_policy", protomap.ErrInvalidValue}}},
		{"enum unknown number", stream, map[string]any{"retention_policy": 9}, []wantErr{{"config.retention_policy", protomap.ErrInvalidValue}}},
		{"enum fractional number", stream, map[string]any{"retention_policy": 1.5}, []wantErr{{"config.retention_policy", protomap.ErrInvalidValue}}},
		{"enum number out of range", stream, map[string]any{"retention_policy": "99999999999"}, []wantErr{{"config.retention_policy", protomap.ErrOutOfRange}}},
		{"enum bool", stream, map[string]any{"retention_policy": true}, []wantErr{{"config.retention_policy", protomap.ErrWrongType}}},
		{"enum prefix only", stream, map[string]any{"retention_policy": "RETENTION_POLICY_"}, []wantErr{{"config.retention_policy", protomap.ErrInvalidValue}}},

		// Durations.
		{"duration number", stream, map[string]any{"max_age": 30.0}, []wantErr{{"config.max_age", protomap.ErrWrongType}}},
		{"duration int", stream, map[string]any{"max_age": 30}, []wantErr{{"config.max_age", protomap.ErrWrongType}}},
		{"duration without unit", stream, map[string]any{"max_age": "30"}, []wantErr{{"config.max_age", protomap.ErrInvalidValue}}},
		{"duration in days", stream, map[string]any{"max_age": "1d"}, []wantErr{{"config.max_age", protomap.ErrInvalidValue}}},
		{"duration negative", stream, map[string]any{"max_age": "-5s"}, []wantErr{{"config.max_age", protomap.ErrOutOfRange}}},
		{"duration negative time.Duration", stream, map[string]any{"max_age": -time.Second}, []wantErr{{"config.max_age", protomap.ErrOutOfRange}}},
		{"duration map", stream, map[string]any{"max_age": map[string]any{"seconds": 1}}, []wantErr{{"config.max_age", protomap.ErrWrongType}}},

		// Timestamps.
		{"timestamp bad month", consumer, map[string]any{"opt_start_time": "2024-13-01T00:00:00Z"}, []wantErr{{"config.opt_start_time", protomap.ErrInvalidValue}}},
		{"timestamp date only", consumer, map[string]any{"opt_start_time": "2024-05-01"}, []wantErr{{"config.opt_start_time", protomap.ErrInvalidValue}}},
		{"timestamp year zero", consumer, map[string]any{"opt_start_time": "0000-01-01T00:00:00Z"}, []wantErr{{"config.opt_start_time", protomap.ErrOutOfRange}}},
		{"timestamp past year 9999 in UTC", consumer, map[string]any{"opt_start_time": "9999-12-31T23:00:00-02:00"}, []wantErr{{"config.opt_start_time", protomap.ErrOutOfRange}}},
		{"timestamp number", consumer, map[string]any{"opt_start_time": 1714564800}, []wantErr{{"config.opt_start_time", protomap.ErrWrongType}}},

		// Values, Structs, ListValues, wrappers.
		{"value unsupported element", publish, map[string]any{"payload": map[string]any{"a": []any{1, struct{}{}}}}, []wantErr{{"config.payload.a[1]", protomap.ErrWrongType}}},
		{"value invalid UTF-8", publish, map[string]any{"payload": []any{"ok", "\xff"}}, []wantErr{{"config.payload[1]", protomap.ErrInvalidValue}}},
		{"value key invalid UTF-8", publish, map[string]any{"payload": map[string]any{"\xff": 1}}, []wantErr{{`config.payload["\xff"]`, protomap.ErrInvalidValue}}},
		{"value bad json.Number", publish, map[string]any{"payload": json.Number("1x")}, []wantErr{{"config.payload", protomap.ErrInvalidValue}}},
		{"value several bad elements", publish, map[string]any{"payload": map[string]any{"b": struct{}{}, "a": make(chan int)}}, []wantErr{{"config.payload.a", protomap.ErrWrongType}, {"config.payload.b", protomap.ErrWrongType}}},
		{"struct list", kitchen, map[string]any{"st": []any{1}}, []wantErr{{"config.st", protomap.ErrWrongType}}},
		{"list value map", kitchen, map[string]any{"lv": map[string]any{}}, []wantErr{{"config.lv", protomap.ErrWrongType}}},
		{"list value scalar", kitchen, map[string]any{"lv": "a"}, []wantErr{{"config.lv", protomap.ErrWrongType}}},
		{"wrapper bad value", kitchen, map[string]any{"wi32": "x"}, []wantErr{{"config.wi32", protomap.ErrInvalidValue}}},
		{"wrapper map", kitchen, map[string]any{"wi32": map[string]any{"value": 1}}, []wantErr{{"config.wi32", protomap.ErrWrongType}}},

		// Repeated fields.
		{"list element", consumer, map[string]any{"backoff": []any{"1s", 2, "3s", "x"}}, []wantErr{{"config.backoff[1]", protomap.ErrWrongType}, {"config.backoff[3]", protomap.ErrInvalidValue}}},
		{"single bad element", consumer, map[string]any{"backoff": 5}, []wantErr{{"config.backoff", protomap.ErrWrongType}}},
		{"list null element", stream, map[string]any{"subjects": []any{"a", nil}}, []wantErr{{"config.subjects[1]", protomap.ErrWrongType}}},
		{"list given a map", stream, map[string]any{"subjects": map[string]any{"a": "b"}}, []wantErr{{"config.subjects", protomap.ErrWrongType}}},
		{"list of messages given scalars", publish, map[string]any{"messages": []any{"a"}}, []wantErr{{"config.messages[0]", protomap.ErrWrongType}}},
		{"nested path in list", publish, map[string]any{"messages": []any{map[string]any{}, map[string]any{}, map[string]any{"subject": []any{}}}}, []wantErr{{"config.messages[2].subject", protomap.ErrWrongType}}},

		// Map fields.
		{"map value", publish, map[string]any{"headers": map[string]any{"x-id": []any{"a"}}}, []wantErr{{"config.headers.x-id", protomap.ErrWrongType}}},
		{"map value under a dotted key", publish, map[string]any{"headers": map[string]any{"a.b": map[string]any{}}}, []wantErr{{`config.headers["a.b"]`, protomap.ErrWrongType}}},
		{"map given a list", publish, map[string]any{"headers": []any{"a"}}, []wantErr{{"config.headers", protomap.ErrWrongType}}},
		{"map given a string", publish, map[string]any{"headers": "a=b"}, []wantErr{{"config.headers", protomap.ErrWrongType}}},
		{"map int key", kitchen, map[string]any{"counts": map[string]any{"x": 1, "2": 2}}, []wantErr{{"config.counts.x", protomap.ErrInvalidValue}}},
		{"map int key out of range", kitchen, map[string]any{"counts": map[string]any{"3000000000": 1}}, []wantErr{{"config.counts.3000000000", protomap.ErrOutOfRange}}},
		{"map blank int key", kitchen, map[string]any{"counts": map[string]any{"": 1}}, []wantErr{{`config.counts[""]`, protomap.ErrInvalidValue}}},
		{"map bool key", kitchen, map[string]any{"flags": map[string]any{"maybe": "x"}}, []wantErr{{"config.flags.maybe", protomap.ErrInvalidValue}}},
		{"map string key invalid UTF-8", kitchen, map[string]any{"labels": map[string]any{"\xff": "x"}}, []wantErr{{`config.labels["\xff"]`, protomap.ErrInvalidValue}}},
		{"map of durations", kitchen, map[string]any{"timeouts": map[string]any{"read": 5}}, []wantErr{{"config.timeouts.read", protomap.ErrWrongType}}},

		// Nested messages.
		{"message given a string", broker, map[string]any{"credentials": "user:pass"}, []wantErr{{"config.credentials", protomap.ErrWrongType}}},
		{"message given a list", broker, map[string]any{"embedded": []any{}}, []wantErr{{"config.embedded", protomap.ErrWrongType}}},
		{"nested field", broker, map[string]any{"embedded": map[string]any{"port": "http"}}, []wantErr{{"config.embedded.port", protomap.ErrInvalidValue}}},
		{"deeply nested field", broker, map[string]any{"jetstream": map[string]any{"max_age": 5}}, []wantErr{{"config.jetstream.max_age", protomap.ErrWrongType}}},
		{"self-referencing map", kitchen, map[string]any{"child": selfMap}, []wantErr{{"", protomap.ErrInvalidValue}}},
		{"self-referencing value", publish, map[string]any{"payload": selfValue}, []wantErr{{"", protomap.ErrInvalidValue}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := protomap.Decode(tt.src, tt.msg(t), protomap.Path("config"))
			checkErrors(t, err, tt.want)
		})
	}
}

// checkErrors compares the field errors of err with want; a want path of
// "" matches any path.
func checkErrors(t *testing.T, err error, want []wantErr) {
	t.Helper()
	got := protomap.FieldErrors(err)
	if len(got) != len(want) {
		t.Fatalf("got %d field errors, want %d: %v", len(got), len(want), err)
	}
	for i, w := range want {
		if w.path != "" && got[i].Path != w.path {
			t.Errorf("error %d: path %q, want %q (%v)", i, got[i].Path, w.path, got[i])
		}
		if !errors.Is(got[i], w.is) {
			t.Errorf("error %d: %v does not wrap %v", i, got[i], w.is)
		}
		if !errors.Is(err, w.is) {
			t.Errorf("the joined error does not wrap %v", w.is)
		}
	}
}

// TestDecodeErrorText fixes the messages users read, suggestions included.
func TestDecodeErrorText(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		msg  target
		src  map[string]any
		want string
	}{
		{"suggestion", stream, map[string]any{"retension_policy": "limits"},
			`config.retension_policy: unknown field; did you mean "retention_policy"?`},
		{"suggestion for a json name", stream, map[string]any{"maxAgee": "1s"},
			`config.maxAgee: unknown field; did you mean "max_age"?`},
		{"suggestion across case", stream, map[string]any{"MaxAge": "1s"},
			`config.MaxAge: unknown field; did you mean "max_age"?`},
		{"suggestion nested", broker, map[string]any{"credentials": map[string]any{"tls_ca_fil": "x"}},
			`config.credentials.tls_ca_fil: unknown field; did you mean "tls_ca_file"?`},
		{"no suggestion", stream, map[string]any{"colour": "red"},
			`config.colour: unknown field`},
		{"duplicate", stream, map[string]any{"max_age": "1s", "maxAge": "2s"},
			`config.max_age: duplicate field: "maxAge" and "max_age" both set max_age; keep one`},
		{"enum", stream, map[string]any{"retention_policy": "workqeue"},
			`config.retention_policy: invalid value: "workqeue" is not one of limits, interest, workqueue; did you mean "workqueue"?`},
		{"enum number", stream, map[string]any{"discard": 7},
			`config.discard: invalid value: 7 is not a value of DiscardPolicy; want one of old, new`},
		{"duration number", stream, map[string]any{"max_age": 30.0},
			`config.max_age: wrong type: got number 30; write a unit, such as "30s"`},
		{"duration without unit", stream, map[string]any{"max_age": "90"},
			`config.max_age: invalid value: "90" has no unit; write one, such as "90s"`},
		{"duration in days", stream, map[string]any{"max_age": "7d"},
			`config.max_age: invalid value: "7d" is not a duration; write a number with a unit (ns, us, ms, s, m, h), such as "1m30s"`},
		{"negative duration", stream, map[string]any{"max_age": "-1s"},
			`config.max_age: out of range: "-1s" is negative`},
		{"fraction", stream, map[string]any{"num_replicas": 1.5},
			`config.num_replicas: invalid value: 1.5 is not an integer`},
		{"range", stream, map[string]any{"num_replicas": 3e9},
			`config.num_replicas: out of range: 3000000000 is outside the range of int32 (-2147483648 to 2147483647)`},
		{"unsigned range", consumer, map[string]any{"opt_start_seq": "-1"},
			`config.opt_start_seq: out of range: "-1" is outside the range of uint64 (0 to 18446744073709551615)`},
		{"wrong type", stream, map[string]any{"subjects": map[string]any{}},
			`config.subjects: wrong type: got map, want a list`},
		{"bool", subscribe, map[string]any{"ordered_by_subject": "sometimes"},
			`config.ordered_by_subject: invalid value: "sometimes" is not a bool; write true or false`},
		{"long string shortened", stream, map[string]any{"num_replicas": strings.Repeat("abcdefgh", 9)},
			`config.num_replicas: invalid value: "` + strings.Repeat("abcdefgh", 8) + `"... is not an integer`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := protomap.Decode(tt.src, tt.msg(t), protomap.Path("config"))
			if err == nil || err.Error() != tt.want {
				t.Errorf("error\n%v\nwant\n%s", err, tt.want)
			}
		})
	}
}

func TestDecodeReportsEveryErrorInOrder(t *testing.T) {
	t.Parallel()
	src := map[string]any{
		"zeta":        1,
		"alpha":       1,
		"credentials": map[string]any{"zz": 1, "aa": 1, "user": []any{}},
		"urls":        []any{"nats://a", map[string]any{}, "nats://c", []any{}},
		"embedded":    map[string]any{"port": "x", "host": "127.0.0.1"},
		"replicas":    1.5,
		"dsn":         "nats://ok",
	}
	want := []wantErr{
		{"config.alpha", protomap.ErrUnknownField},
		{"config.credentials.aa", protomap.ErrUnknownField},
		{"config.credentials.user", protomap.ErrWrongType},
		{"config.credentials.zz", protomap.ErrUnknownField},
		{"config.embedded.port", protomap.ErrInvalidValue},
		{"config.replicas", protomap.ErrInvalidValue},
		{"config.urls[1]", protomap.ErrWrongType},
		{"config.urls[3]", protomap.ErrWrongType},
		{"config.zeta", protomap.ErrUnknownField},
	}
	first := ""
	for i := range 20 {
		cfg := &eventbusv1.BrokerConfig{}
		err := protomap.Decode(src, cfg, protomap.Path("config"))
		checkErrors(t, err, want)
		if i == 0 {
			first = err.Error()
		} else if err.Error() != first {
			t.Fatalf("run %d gave\n%v\nthe first run gave\n%s", i, err, first)
		}
		// The fields without problems are decoded all the same.
		if cfg.GetDsn() != "nats://ok" || cfg.GetEmbedded().GetHost() != "127.0.0.1" {
			t.Errorf("good fields not decoded: %v", cfg)
		}
	}
}

func TestDecodeAllowTemplates(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		msg        target
		src        map[string]any
		want       string    // protojson of the message decoded with AllowTemplates
		withoutErr []wantErr // errors without AllowTemplates
	}{
		{"int", stream, map[string]any{"num_replicas": "{{ .replicas }}", "name": "S"}, `{"name":"S"}`,
			[]wantErr{{"num_replicas", protomap.ErrInvalidValue}}},
		{"uint", consumer, map[string]any{"opt_start_seq": "{{ .seq }}"}, `{}`,
			[]wantErr{{"opt_start_seq", protomap.ErrInvalidValue}}},
		{"float", kitchen, map[string]any{"db": "{{.x}}"}, `{}`,
			[]wantErr{{"db", protomap.ErrInvalidValue}}},
		{"bool", kitchen, map[string]any{"b": "{{ .flag }}"}, `{}`,
			[]wantErr{{"b", protomap.ErrInvalidValue}}},
		{"enum", stream, map[string]any{"storage": "{{ .storage }}"}, `{}`,
			[]wantErr{{"storage", protomap.ErrInvalidValue}}},
		{"duration", stream, map[string]any{"max_age": "{{ .age }}s"}, `{}`,
			[]wantErr{{"max_age", protomap.ErrInvalidValue}}},
		{"timestamp", consumer, map[string]any{"opt_start_time": "{{ now }}"}, `{}`,
			[]wantErr{{"opt_start_time", protomap.ErrInvalidValue}}},
		{"wrapper", kitchen, map[string]any{"wi32": "{{ .n }}"}, `{}`,
			[]wantErr{{"wi32", protomap.ErrInvalidValue}}},
		{"message", broker, map[string]any{"credentials": "{{ .creds }}"}, `{}`,
			[]wantErr{{"credentials", protomap.ErrWrongType}}},
		{"struct", kitchen, map[string]any{"st": "{{ .st }}"}, `{}`,
			[]wantErr{{"st", protomap.ErrWrongType}}},
		{"list value", kitchen, map[string]any{"lv": "{{ .lv }}"}, `{}`,
			[]wantErr{{"lv", protomap.ErrWrongType}}},
		{"map field", publish, map[string]any{"headers": "{{ .headers }}"}, `{}`,
			[]wantErr{{"headers", protomap.ErrWrongType}}},
		{"list element leaves the list unset", consumer, map[string]any{"backoff": []any{"1s", "{{ .b }}"}}, `{}`,
			[]wantErr{{"backoff[1]", protomap.ErrInvalidValue}}},
		{"single template for a list", consumer, map[string]any{"backoff": "{{ .backoff }}"}, `{}`,
			[]wantErr{{"backoff", protomap.ErrInvalidValue}}},
		{"map value leaves the map unset", kitchen, map[string]any{"timeouts": map[string]any{"a": "1s", "b": "{{ .t }}"}}, `{}`,
			[]wantErr{{"timeouts.b", protomap.ErrInvalidValue}}},
		{"nested field", broker, map[string]any{"embedded": map[string]any{"port": "{{ .port }}", "host": "h"}}, `{"embedded":{"host":"h"}}`,
			[]wantErr{{"embedded.port", protomap.ErrInvalidValue}}},
		{"list of messages", publish, map[string]any{"messages": []any{map[string]any{"subject": "a", "expected_last_sequence": "{{ .seq }}"}}}, `{"messages":[{"subject":"a"}]}`,
			[]wantErr{{"messages[0].expected_last_sequence", protomap.ErrInvalidValue}}},
		{"string kept", stream, map[string]any{"name": "{{ .name }}"}, `{"name":"{{ .name }}"}`, nil},
		{"bytes kept", kitchen, map[string]any{"by": "{{ x }}"}, `{"by":"e3sgeCB9fQ=="}`, nil},
		{"string list kept", stream, map[string]any{"subjects": "{{ .subject }}"}, `{"subjects":["{{ .subject }}"]}`, nil},
		{"string map kept", publish, map[string]any{"headers": map[string]any{"a": "{{ .id }}"}}, `{"headers":{"a":"{{ .id }}"}}`, nil},
		{"value kept", publish, map[string]any{"payload": "{{ json .body }}"}, `{"payload":"{{ json .body }}"}`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := tt.msg(t)
			if err := protomap.Decode(tt.src, got, protomap.AllowTemplates()); err != nil {
				t.Fatalf("Decode with AllowTemplates: %v", err)
			}
			want := fromJSON(t, got, tt.want)
			if !proto.Equal(got, want) {
				t.Errorf("decoded %v\nwant      %v", protojson.Format(got), protojson.Format(want))
			}
			err := protomap.Decode(tt.src, tt.msg(t))
			checkErrors(t, err, tt.withoutErr)
		})
	}
}

func TestDecodeAllowTemplatesStillReportsOtherErrors(t *testing.T) {
	t.Parallel()
	src := map[string]any{
		"max_age":      "{{ .age }}",
		"max_agee":     "{{ .age }}",
		"num_replicas": "3.5",
		"storage":      "{{ .storage }}",
	}
	err := protomap.Decode(src, &eventbusv1.StreamConfig{}, protomap.AllowTemplates(), protomap.Path("config"))
	checkErrors(t, err, []wantErr{
		{"config.max_agee", protomap.ErrUnknownField},
		{"config.num_replicas", protomap.ErrInvalidValue},
	})
}

func TestDecodeKeepsFieldsNotNamed(t *testing.T) {
	t.Parallel()
	dst := &eventbusv1.BrokerConfig{
		Provider: "nats",
		Urls:     []string{"nats://old"},
		Embedded: &eventbusv1.EmbeddedConfig{Port: 4222, Host: "127.0.0.1"},
		Replicas: 3,
		Limits:   &eventbusv1.ResourceLimits{Cpu: "1"},
	}
	src := map[string]any{
		"urls":     []any{"nats://new"},
		"embedded": map[string]any{"store_dir": "/data", "host": nil},
		"replicas": "",
		"limits":   "{{ .limits }}",
	}
	if err := protomap.Decode(src, dst, protomap.AllowTemplates()); err != nil {
		t.Fatalf("Decode: %v", err)
	}
	want := &eventbusv1.BrokerConfig{
		Provider: "nats",
		Urls:     []string{"nats://new"},
		Embedded: &eventbusv1.EmbeddedConfig{Port: 4222, Host: "127.0.0.1", StoreDir: "/data"},
		Replicas: 3,
		Limits:   &eventbusv1.ResourceLimits{Cpu: "1"},
	}
	if !proto.Equal(dst, want) {
		t.Errorf("decoded %v\nwant      %v", dst, want)
	}
}

func TestDecodeReplacesListsAndMaps(t *testing.T) {
	t.Parallel()
	dst := &eventbusv1.PublishStepConfig{
		Headers:  map[string]string{"old": "1"},
		Messages: []*eventbusv1.PublishMessage{{Subject: "old"}},
	}
	src := map[string]any{
		"headers":  map[string]any{"new": "2"},
		"messages": []any{map[string]any{"subject": "new"}},
	}
	if err := protomap.Decode(src, dst); err != nil {
		t.Fatalf("Decode: %v", err)
	}
	want := &eventbusv1.PublishStepConfig{
		Headers:  map[string]string{"new": "2"},
		Messages: []*eventbusv1.PublishMessage{{Subject: "new"}},
	}
	if !proto.Equal(dst, want) {
		t.Errorf("decoded %v\nwant      %v", dst, want)
	}
}

func TestDecodeGeneratedWellKnownTypes(t *testing.T) {
	t.Parallel()
	cfg := &eventbusv1.ConsumerConfig{}
	src := map[string]any{"ack_wait": "1m30s", "opt_start_time": "2024-05-01T12:00:00.25Z", "backoff": []any{"1s", "250ms"}}
	if err := protomap.Decode(src, cfg); err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if got := cfg.GetAckWait().AsDuration(); got != 90*time.Second {
		t.Errorf("ack_wait = %v, want 1m30s", got)
	}
	if got, want := cfg.GetOptStartTime().AsTime(), time.Date(2024, 5, 1, 12, 0, 0, 250e6, time.UTC); !got.Equal(want) {
		t.Errorf("opt_start_time = %v, want %v", got, want)
	}
	want := []*durationpb.Duration{durationpb.New(time.Second), durationpb.New(250 * time.Millisecond)}
	if len(cfg.GetBackoff()) != len(want) || !proto.Equal(cfg.GetBackoff()[0], want[0]) || !proto.Equal(cfg.GetBackoff()[1], want[1]) {
		t.Errorf("backoff = %v, want %v", cfg.GetBackoff(), want)
	}
}

func TestDecodeIntoWellKnownMessages(t *testing.T) {
	t.Parallel()
	src := map[string]any{"a": 1, "b": []any{"x"}, "_c": true}

	s := &structpb.Struct{Fields: map[string]*structpb.Value{"old": structpb.NewNullValue()}}
	if err := protomap.Decode(src, s); err != nil {
		t.Fatalf("Decode into Struct: %v", err)
	}
	want, err := structpb.NewStruct(map[string]any{"a": 1, "b": []any{"x"}, "_c": true})
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(s, want) {
		t.Errorf("Struct = %v, want %v", s, want)
	}

	v := &structpb.Value{}
	if err := protomap.Decode(src, v); err != nil {
		t.Fatalf("Decode into Value: %v", err)
	}
	if !proto.Equal(v, structpb.NewStructValue(want)) {
		t.Errorf("Value = %v, want %v", v, want)
	}

	// Other well-known messages are read field by field.
	d := &durationpb.Duration{}
	if err := protomap.Decode(map[string]any{"seconds": "5", "nanos": 7}, d); err != nil {
		t.Fatalf("Decode into Duration: %v", err)
	}
	if !proto.Equal(d, &durationpb.Duration{Seconds: 5, Nanos: 7}) {
		t.Errorf("Duration = %v", d)
	}
}

func TestDecodeStruct(t *testing.T) {
	t.Parallel()
	src, err := structpb.NewStruct(map[string]any{"name": "ORDERS", "num_replicas": 3, "max_age": "1h", "subjects": "orders.>"})
	if err != nil {
		t.Fatal(err)
	}
	got := &eventbusv1.StreamConfig{}
	if err := protomap.DecodeStruct(src, got); err != nil {
		t.Fatalf("DecodeStruct: %v", err)
	}
	want := &eventbusv1.StreamConfig{Name: "ORDERS", NumReplicas: 3, MaxAge: durationpb.New(time.Hour), Subjects: []string{"orders.>"}}
	if !proto.Equal(got, want) {
		t.Errorf("decoded %v, want %v", got, want)
	}
	if err := protomap.DecodeStruct(nil, got); err != nil {
		t.Errorf("DecodeStruct(nil): %v", err)
	}
	err = protomap.DecodeStruct(src, &eventbusv1.ConsumerConfig{}, protomap.Path("config"))
	checkErrors(t, err, []wantErr{
		{"config.max_age", protomap.ErrUnknownField},
		{"config.num_replicas", protomap.ErrUnknownField},
		{"config.subjects", protomap.ErrUnknownField},
	})
}

func TestDecodeNilDestination(t *testing.T) {
	t.Parallel()
	if err := protomap.Decode(map[string]any{"name": "x"}, nil); err == nil {
		t.Error("Decode into nil: no error")
	}
	var cfg *eventbusv1.StreamConfig
	if err := protomap.Decode(map[string]any{"name": "x"}, cfg); err == nil {
		t.Error("Decode into a nil *StreamConfig: no error")
	}
}

func TestDecodeTimestampKeepsNanoseconds(t *testing.T) {
	t.Parallel()
	cfg := &eventbusv1.ConsumerConfig{}
	if err := protomap.Decode(map[string]any{"opt_start_time": "1970-01-01T00:00:01.000000001Z"}, cfg); err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if !proto.Equal(cfg.GetOptStartTime(), &timestamppb.Timestamp{Seconds: 1, Nanos: 1}) {
		t.Errorf("opt_start_time = %v", cfg.GetOptStartTime())
	}
}
