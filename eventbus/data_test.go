package eventbus_test

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/nats-io/nats.go"

	"github.com/wfeventbus/eventbus/eventbus"
)

// jsonBody returns a JSON object of exactly n bytes.
func jsonBody(n int) string {
	const head, tail = `{"pad":"`, `"}`
	return head + strings.Repeat("x", n-len(head)-len(tail)) + tail
}

// TestMessageData checks what a pipeline gets of a message: the payload as
// text, and parsed as json only up to MaxParsedPayload bytes; subjects and
// header values as valid UTF-8.
func TestMessageData(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	a := newApp(t,
		decl{eventbus.TypeBroker, "bus", map[string]any{
			"embedded": map[string]any{"port": float64(port), "store_dir": t.TempDir(), "max_payload": float64(4 << 20)},
		}},
		decl{eventbus.TypeStream, "big", map[string]any{"name": "BIG", "subjects": []any{"big.>"}}},
		decl{eventbus.TypeConsumer, "reader", map[string]any{"stream_name": "BIG"}},
	)
	tests := []struct {
		name     string
		payload  string
		header   string
		wantJSON bool
	}{
		{"small JSON", `{"id":1}`, "", true},
		{"JSON at the limit", jsonBody(eventbus.MaxParsedPayload), "", true},
		{"JSON over the limit", jsonBody(eventbus.MaxParsedPayload + 1), "", false},
		{"text", "not json", "", false},
		{"header not UTF-8", `{"id":2}`, "a\xffb", true},
	}
	// Published with nats.go: the publish step accepts only valid UTF-8.
	nc, err := nats.Connect("nats://127.0.0.1:" + strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	for _, tt := range tests {
		m := nats.NewMsg("big.x")
		m.Data = []byte(tt.payload)
		if tt.header != "" {
			m.Header.Set("x-raw", tt.header)
		}
		if _, err := nc.RequestMsgWithContext(context.Background(), m); err != nil {
			t.Fatalf("%s: publish: %v", tt.name, err)
		}
	}
	conCfg := map[string]any{"consumer": "reader", "batch_size": float64(len(tests)), "max_wait": "2s"}
	msgs := a.exec(a.step(eventbus.StepConsume, conCfg), conCfg, nil)["messages"].([]any)
	if len(msgs) != len(tests) {
		t.Fatalf("consumed %d messages, want %d", len(msgs), len(tests))
	}
	for i, tt := range tests {
		m := msgs[i].(map[string]any)
		if m["payload"] != tt.payload {
			t.Errorf("%s: payload of %d bytes, want the %d published", tt.name, len(m["payload"].(string)), len(tt.payload))
		}
		if _, ok := m["json"]; ok != tt.wantJSON {
			t.Errorf("%s (%d bytes): json present %v, want %v", tt.name, len(tt.payload), ok, tt.wantJSON)
		}
		for k, v := range m["headers"].(map[string]any) {
			if s := v.(string); !utf8.ValidString(k) || !utf8.ValidString(s) {
				t.Errorf("%s: header %q: %q is not valid UTF-8", tt.name, k, s)
			}
		}
	}
	if got := msgs[4].(map[string]any)["headers"].(map[string]any)["x-raw"]; got != "a\uFFFDb" {
		t.Errorf("header x-raw = %q, want its invalid byte replaced", got)
	}
}

func TestBrokerMaxPayload(t *testing.T) {
	t.Parallel()
	env := func(k string) string {
		if k == "EVENTBUS_REMOTE_URI" {
			return "nats://nats.example:4222"
		}
		return ""
	}
	tests := []struct {
		name, typ, module string
		config            map[string]any
		want              int
		ok                bool
	}{
		{"embedded default", eventbus.TypeBroker, "bus", nil, 1 << 20, true},
		{"embedded raised", eventbus.TypeBroker, "bus", map[string]any{"embedded": map[string]any{"max_payload": 8 << 20}}, 8 << 20, true},
		{"alias, float", eventbus.TypeBrokerAlias, "bus", map[string]any{"embedded": map[string]any{"max_payload": float64(2 << 20)}}, 2 << 20, true},
		{"external by url", eventbus.TypeBroker, "bus", map[string]any{"url": "nats://nats.example:4222"}, 64 << 20, true},
		{"external by environment", eventbus.TypeBroker, "remote", nil, 64 << 20, true},
		{"postgres default", eventbus.TypeBroker, "bus", map[string]any{"provider": "postgres", "dsn": "postgres://db/app"}, 1 << 20, true},
		{"postgres raised", eventbus.TypeBroker, "bus", map[string]any{"provider": "pgchannel", "dsn": "postgres://db/app", "max_payload": 16 << 20}, 16 << 20, true},
		{"not a broker", eventbus.TypeStream, "s", map[string]any{"name": "S"}, 0, false},
		{"unreadable config", eventbus.TypeBroker, "bus", map[string]any{"embedded": map[string]any{"max_payload": "lots"}}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			n, ok := eventbus.BrokerMaxPayload(tt.typ, tt.module, tt.config, env)
			if n != tt.want || ok != tt.ok {
				t.Errorf("BrokerMaxPayload = %d, %v; want %d, %v", n, ok, tt.want, tt.ok)
			}
		})
	}
}
