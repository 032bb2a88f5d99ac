package protomap_test

import (
	"testing"

	eventbusv1 "github.com/wfeventbus/eventbus/gen/eventbus/v1"
	"github.com/wfeventbus/eventbus/internal/protomap"
)

func BenchmarkDecodeConsumerConfig(b *testing.B) {
	src := map[string]any{
		"name":            "billing",
		"stream_name":     "ORDERS",
		"filter_subjects": []any{"orders.created", "orders.paid"},
		"deliver_policy":  "all",
		"ack_policy":      "explicit",
		"ack_wait":        "30s",
		"max_deliver":     5.0,
		"backoff":         []any{"1s", "5s", "30s"},
		"max_ack_pending": "1000",
		"_config_dir":     "/etc/app",
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := protomap.Decode(src, &eventbusv1.ConsumerConfig{}, protomap.Path("config")); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodePublishBatch(b *testing.B) {
	messages := make([]any, 100)
	for i := range messages {
		messages[i] = map[string]any{
			"subject": "orders.created",
			"payload": map[string]any{"id": float64(i), "items": []any{"a", "b"}, "total": 12.5},
			"headers": map[string]any{"x-tenant": "acme", "x-attempt": 1.0},
			"msg_id":  "id",
		}
	}
	src := map[string]any{"messages": messages}
	b.ReportAllocs()
	for b.Loop() {
		if err := protomap.Decode(src, &eventbusv1.PublishStepConfig{}); err != nil {
			b.Fatal(err)
		}
	}
}
