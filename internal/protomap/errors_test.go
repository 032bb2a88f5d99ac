package protomap_test

import (
	"errors"
	"fmt"
	"testing"

	eventbusv1 "github.com/wfeventbus/eventbus/gen/eventbus/v1"
	"github.com/wfeventbus/eventbus/internal/protomap"
)

func TestErrorPaths(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		msg    target
		prefix []protomap.Option
		src    map[string]any
		want   string
	}{
		{"no prefix", stream, nil, map[string]any{"nope": 1}, "nope"},
		{"prefix", stream, []protomap.Option{protomap.Path("config")}, map[string]any{"nope": 1}, "config.nope"},
		{"indexed prefix", stream, []protomap.Option{protomap.Path("pipelines.p.steps[0].config")}, map[string]any{"nope": 1}, "pipelines.p.steps[0].config.nope"},
		{"last prefix wins", stream, []protomap.Option{protomap.Path("a"), protomap.Path("b")}, map[string]any{"nope": 1}, "b.nope"},
		{"nested without prefix", broker, nil, map[string]any{"credentials": map[string]any{"nope": 1}}, "credentials.nope"},
		{"index without prefix", stream, nil, map[string]any{"subjects": []any{"a", nil}}, "subjects[1]"},
		{"map key with dash", publish, nil, map[string]any{"headers": map[string]any{"x-id": []any{}}}, "headers.x-id"},
		{"map key with dot", publish, nil, map[string]any{"headers": map[string]any{"a.b": []any{}}}, `headers["a.b"]`},
		{"map key with space", publish, nil, map[string]any{"headers": map[string]any{"a b": []any{}}}, `headers["a b"]`},
		{"map key with quote", publish, nil, map[string]any{"headers": map[string]any{`a"b`: []any{}}}, `headers["a\"b"]`},
		{"non-ASCII map key", publish, nil, map[string]any{"headers": map[string]any{"größe": []any{}}}, "headers.größe"},
		{"unknown key with space", stream, nil, map[string]any{"max age": "1s"}, `["max age"]`},
		{"json name as written", stream, nil, map[string]any{"maxAge": 1}, "maxAge"},
		{"list in map in list", publish, []protomap.Option{protomap.Path("config")},
			map[string]any{"messages": []any{map[string]any{}, map[string]any{"payload": map[string]any{"k": []any{0, 1, struct{}{}}}}}},
			"config.messages[1].payload.k[2]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			errs := protomap.FieldErrors(protomap.Decode(tt.src, tt.msg(t), tt.prefix...))
			if len(errs) != 1 {
				t.Fatalf("got %d errors, want 1: %v", len(errs), errs)
			}
			if errs[0].Path != tt.want {
				t.Errorf("path %q, want %q", errs[0].Path, tt.want)
			}
		})
	}
}

func TestFieldError(t *testing.T) {
	t.Parallel()
	inner := fmt.Errorf("%w: got list, want a string", protomap.ErrWrongType)
	e := &protomap.FieldError{Path: "config.name", Err: inner}
	if got, want := e.Error(), "config.name: wrong type: got list, want a string"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(e, protomap.ErrWrongType) || errors.Is(e, protomap.ErrUnknownField) {
		t.Error("errors.Is does not follow Err")
	}
	if errors.Unwrap(e) != inner {
		t.Error("Unwrap does not return Err")
	}
	if got := (&protomap.FieldError{Err: inner}).Error(); got != inner.Error() {
		t.Errorf("Error() without path = %q, want %q", got, inner.Error())
	}
}

func TestFieldErrors(t *testing.T) {
	t.Parallel()
	if got := protomap.FieldErrors(nil); got != nil {
		t.Errorf("FieldErrors(nil) = %v", got)
	}
	if got := protomap.FieldErrors(errors.New("other")); got != nil {
		t.Errorf("FieldErrors(other) = %v", got)
	}
	err := protomap.Decode(map[string]any{"a": 1, "b": 2}, &eventbusv1.StreamConfig{})
	wrapped := fmt.Errorf("module orders: %w", err)
	got := protomap.FieldErrors(wrapped)
	if len(got) != 2 || got[0].Path != "a" || got[1].Path != "b" {
		t.Errorf("FieldErrors of a wrapped Decode error = %v", got)
	}
	var fe *protomap.FieldError
	if !errors.As(wrapped, &fe) || fe.Path != "a" {
		t.Errorf("errors.As finds %v, want the error of a", fe)
	}
	if !errors.Is(wrapped, protomap.ErrUnknownField) {
		t.Error("the wrapped error does not match ErrUnknownField")
	}
}
