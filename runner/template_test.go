package runner

import (
	"errors"
	"regexp"
	"testing"
	"time"
)

func testRunData() *runData {
	return &runData{
		trigger: map[string]any{
			"id":      "42",
			"count":   float64(1e6),
			"ratio":   0.25,
			"tiny":    1e-9,
			"payload": map[string]any{"order-id": "o-1", "items": []any{"a", "b"}},
			"my-key":  "hyphen",
			"flag":    true,
			"nothing": nil,
		},
		steps: map[string]map[string]any{
			"parse-request": {"id": float64(7), "name": "ann"},
			"plain":         {"sequence": "9"},
		},
		current: map[string]any{"id": "42", "name": "ann", "steps": "shadowed"},
		meta:    map[string]any{"pipeline": "orders", "started_at": "2026-01-02T03:04:05Z"},
	}
}

func TestRenderString(t *testing.T) {
	t.Parallel()
	clock := func() time.Time { return time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC) }
	tests := []struct {
		name   string
		in     string
		strict bool
		want   string
		match  string // a regexp the output must match instead of want
		err    error
	}{
		{name: "plain text is kept", in: "no template here", want: "no template here"},
		{name: "trigger field", in: "id {{ .trigger.id }}", want: "id 42"},
		{name: "current at top level", in: "{{ .name }}", want: "ann"},
		{name: "steps and meta win over current keys", in: "{{ .meta.pipeline }} {{ .steps.plain.sequence }}", want: "orders 9"},
		{name: "hyphenated step name", in: "{{ .steps.parse-request.name }}", want: "ann"},
		{name: "hyphenated keys at any depth", in: "{{ .trigger.payload.order-id }}/{{ .trigger.my-key }}", want: "o-1/hyphen"},
		{name: "hyphen inside a string literal is kept", in: `{{ printf "%s-x" .trigger.id }}`, want: "42-x"},
		{name: "hyphenated field of a variable", in: "{{ $p := .trigger.payload }}{{ $p.order-id }}", want: "o-1"},
		{name: "step helper", in: `{{ step "parse-request" "name" }}`, want: "ann"},
		{name: "trigger helper", in: `{{ trigger "payload" "order-id" }}`, want: "o-1"},
		{name: "helper on a missing step", in: `[{{ step "nope" "x" }}]`, want: "[]"},
		{name: "missing key renders empty", in: "[{{ .trigger.missing }}]", want: "[]"},
		{name: "missing nested key renders empty", in: "[{{ .steps.nope.field }}]", want: "[]"},
		{name: "nil value renders empty", in: "[{{ .trigger.nothing }}]", want: "[]"},
		{name: "integral float without exponent", in: "{{ .trigger.count }}", want: "1000000"},
		{name: "integral step output", in: "{{ .steps.parse-request.id }}", want: "7"},
		{name: "fraction", in: "{{ .trigger.ratio }}", want: "0.25"},
		{name: "tiny number keeps its exponent", in: "{{ .trigger.tiny }}", want: "1e-09"},
		{name: "bool", in: "{{ .trigger.flag }}", want: "true"},
		{name: "toJson", in: "{{ toJson .trigger.payload }}", want: `{"items":["a","b"],"order-id":"o-1"}`},
		{name: "json alias", in: "{{ json .trigger.count }}", want: "1000000"},
		{name: "fromJson", in: `{{ (fromJson "{\"a\":{\"b\":3}}").a.b }}`, want: "3"},
		{name: "default on missing", in: `{{ .trigger.missing | default "fallback" }}`, want: "fallback"},
		{name: "default on present", in: `{{ .trigger.id | default "fallback" }}`, want: "42"},
		{name: "now", in: "{{ now }}", want: "2026-05-06T07:08:09Z"},
		{name: "now with layout name", in: `{{ now "DateOnly" }}`, want: "2026-05-06"},
		{name: "uuid", in: "{{ uuid }}", match: `^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`},
		{name: "range and if", in: "{{ range .trigger.payload.items }}{{ if eq . \"b\" }}B{{ else }}{{ . }}{{ end }}{{ end }}", want: "aB"},
		{name: "string helpers", in: `{{ upper .name }} {{ join "," (split "-" "a-b") }} {{ length .trigger.payload.items }}`, want: "ANN a,b 2"},
		{name: "strict: present key", in: "{{ .trigger.id }}", strict: true, want: "42"},
		{name: "strict: missing key fails", in: "{{ .trigger.missing }}", strict: true, err: ErrTemplate},
		{name: "strict: step helper fails", in: `{{ step "nope" }}`, strict: true, err: ErrTemplate},
		{name: "exec error", in: "{{ .trigger.id.deeper }}", err: ErrTemplate},
		{name: "parse error", in: "{{ .trigger.id ", err: ErrTemplate},
		{name: "fromJson error", in: `{{ fromJson "{" }}`, err: ErrTemplate},
	}
	r := newRenderer(clock)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := r.scope(testRunData(), tt.strict).renderString(tt.in)
			switch {
			case tt.err != nil:
				if !errors.Is(err, tt.err) {
					t.Fatalf("render %q: want %v, got %q, %v", tt.in, tt.err, got, err)
				}
			case err != nil:
				t.Fatalf("render %q: %v", tt.in, err)
			case tt.match != "":
				if !regexp.MustCompile(tt.match).MatchString(got) {
					t.Errorf("render %q: got %q, want a match of %s", tt.in, got, tt.match)
				}
			case got != tt.want:
				t.Errorf("render %q: got %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestRenderConfig(t *testing.T) {
	t.Parallel()
	cfg := map[string]any{
		"subject": "orders.{{ .trigger.id }}",
		"count":   "{{ .trigger.count }}",
		"literal": 5,
		"flag":    true,
		"nested":  map[string]any{"list": []any{"{{ .name }}", 1, map[string]any{"deep": "{{ .meta.pipeline }}"}}},
	}
	got, err := newRenderer(time.Now).scope(testRunData(), false).renderConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"subject": "orders.42",
		"count":   "1000000",
		"literal": 5,
		"flag":    true,
		"nested":  map[string]any{"list": []any{"ann", 1, map[string]any{"deep": "orders"}}},
	}
	if !equalJSON(got, want) {
		t.Errorf("got %#v\nwant %#v", got, want)
	}
	if cfg["subject"] != "orders.{{ .trigger.id }}" {
		t.Errorf("the raw config was modified: %v", cfg["subject"])
	}
	_, err = newRenderer(time.Now).scope(testRunData(), false).renderConfig(map[string]any{"a": map[string]any{"b": "{{ .x "}})
	if !errors.Is(err, ErrTemplate) {
		t.Errorf("want ErrTemplate, got %v", err)
	}
}

func TestRewriteHyphens(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"no actions - here", "no actions - here"},
		{"{{ .a.b }}", "{{ .a.b }}"},
		{"{{ .steps.my-step.id }}", `{{ (index .steps "my-step" "id") }}`},
		{"{{ .my-key }}", `{{ (index . "my-key") }}`},
		{"{{- .a-b -}}", `{{- (index . "a-b") -}}`},
		{`{{ printf "%s" .x-y }}`, `{{ printf "%s" (index . "x-y") }}`},
		{`{{ "a.b-c" }}`, `{{ "a.b-c" }}`},
		{"{{ `.raw-x` }}", "{{ `.raw-x` }}"},
		{"{{/* .a-b */}}", "{{/* .a-b */}}"},
		{"{{ $v.c-d }}", `{{ (index $v "c-d") }}`},
		{"{{ $.steps.s-1.x }}", `{{ (index $.steps "s-1" "x") }}`},
		{"{{ sub 3 1 }}-{{ .a-b }}", `{{ sub 3 1 }}-{{ (index . "a-b") }}`},
		{"a-{{ .x }}-b", "a-{{ .x }}-b"},
		{"{{ .x }} {{ unclosed .a-b", "{{ .x }} {{ unclosed .a-b"},
	}
	for _, tt := range tests {
		if got := rewriteHyphens(tt.in); got != tt.want {
			t.Errorf("rewriteHyphens(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestTruthy(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]bool{"": false, " ": false, "false": false, "FALSE": false, "0": false, "true": true, "1": true, "no": true, "x": true} {
		if got := truthy(s); got != want {
			t.Errorf("truthy(%q) = %v, want %v", s, got, want)
		}
	}
}

// equalJSON compares JSON-shaped values.
func equalJSON(a, b any) bool {
	switch a := a.(type) {
	case map[string]any:
		bm, ok := b.(map[string]any)
		if !ok || len(a) != len(bm) {
			return false
		}
		for k, v := range a {
			if !equalJSON(v, bm[k]) {
				return false
			}
		}
		return true
	case []any:
		bl, ok := b.([]any)
		if !ok || len(a) != len(bl) {
			return false
		}
		for i := range a {
			if !equalJSON(a[i], bl[i]) {
				return false
			}
		}
		return true
	}
	return a == b
}
