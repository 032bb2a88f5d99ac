package wfplugin_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	pluginv1 "github.com/wfeventbus/eventbus/gen/workflow/plugin/v1"
	"github.com/wfeventbus/eventbus/wfplugin"
)

func TestToStructAcceptsOnlyJSONShapedValues(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   map[string]any
		want map[string]any // AsMap of the result; nil when it must fail
	}{
		{"nil map", nil, map[string]any{}},
		{"scalars", map[string]any{"s": "x", "b": true, "n": nil, "f": 1.5},
			map[string]any{"s": "x", "b": true, "n": nil, "f": 1.5}},
		{"integers become float64", map[string]any{"i": 3, "u8": uint8(4), "i64": int64(-5), "f32": float32(0.5)},
			map[string]any{"i": 3.0, "u8": 4.0, "i64": -5.0, "f32": 0.5}},
		{"nested", map[string]any{"m": map[string]any{"l": []any{"a", map[string]any{"k": 1}}}},
			map[string]any{"m": map[string]any{"l": []any{"a", map[string]any{"k": 1.0}}}}},
		{"map[string]string", map[string]any{"h": map[string]string{"a": "b"}}, nil},
		{"[]string", map[string]any{"l": []string{"a"}}, nil},
		{"[]map[string]any", map[string]any{"l": []map[string]any{{"a": 1}}}, nil},
		{"[]byte", map[string]any{"b": []byte("x")}, nil},
		{"time.Time", map[string]any{"t": time.Now()}, nil},
		{"struct", map[string]any{"s": struct{ A int }{1}}, nil},
		{"json.Number", map[string]any{"n": json.Number("1")}, nil},
		{"deep bad value", map[string]any{"a": []any{map[string]any{"b": time.Second}}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := wfplugin.ToStruct(tt.in)
			if tt.want == nil {
				if !errors.Is(err, wfplugin.ErrNotJSONShaped) {
					t.Fatalf("ToStruct: %v, want ErrNotJSONShaped", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ToStruct: %v", err)
			}
			if got := wfplugin.FromStruct(s); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("round trip = %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestToValue(t *testing.T) {
	t.Parallel()
	v, err := wfplugin.ToValue([]any{1, "a"})
	if err != nil || !reflect.DeepEqual(v.AsInterface(), []any{1.0, "a"}) {
		t.Fatalf("ToValue = %v, %v", v, err)
	}
	if _, err := wfplugin.ToValue(map[string]int{}); !errors.Is(err, wfplugin.ErrNotJSONShaped) {
		t.Fatalf("ToValue(map[string]int): %v, want ErrNotJSONShaped", err)
	}
	if got := wfplugin.FromStruct(nil); got == nil || len(got) != 0 {
		t.Fatalf("FromStruct(nil) = %#v, want an empty map", got)
	}
}

func TestStepRequestReadsLazily(t *testing.T) {
	t.Parallel()
	cur, err := structpb.NewStruct(map[string]any{"ack_token": "tok", "n": 2})
	if err != nil {
		t.Fatal(err)
	}
	prev, err := structpb.NewStruct(map[string]any{"ok": true})
	if err != nil {
		t.Fatal(err)
	}
	req := wfplugin.NewStepRequest(&pluginv1.ExecuteStepRequest{
		HandleId:    "step-1",
		Current:     cur,
		StepOutputs: map[string]*structpb.Struct{"prev": prev},
	})
	if req.Handle() != "step-1" || req.CurrentStruct() != cur {
		t.Fatalf("Handle() = %q, CurrentStruct() is a copy", req.Handle())
	}
	if v, ok := req.CurrentValue("ack_token"); !ok || v != "tok" {
		t.Errorf("CurrentValue(ack_token) = %v, %v", v, ok)
	}
	if _, ok := req.ConfigValue("x"); ok {
		t.Error("ConfigValue on an absent config found a key")
	}
	if out, ok := req.StepOutput("prev"); !ok || out["ok"] != true {
		t.Errorf("StepOutput(prev) = %v, %v", out, ok)
	}
	if _, ok := req.StepOutput("nope"); ok {
		t.Error("StepOutput(nope) found an output")
	}
	if got := req.Config(); got == nil || len(got) != 0 {
		t.Errorf("Config() = %#v, want an empty map", got)
	}
	if got := wfplugin.NewStepRequest(nil).Current(); got == nil || len(got) != 0 {
		t.Errorf("Current() of an empty request = %#v", got)
	}
}
